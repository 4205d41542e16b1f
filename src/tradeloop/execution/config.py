"""Configuration of the simulated broker."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from tradeloop.core.errors import ConfigError

__all__ = ["FillPrice", "SimulatedBrokerConfig", "check_cash_buffer"]


def check_cash_buffer(value: float, name: str = "cash_buffer_pct") -> None:
    """Refuse a cash buffer outside [0, 0.5), naming the setting."""
    if not (math.isfinite(value) and 0.0 <= value < 0.5):
        raise ConfigError(f"{name} is a fraction of cash in [0, 0.5), got {value}")


class FillPrice(StrEnum):
    """Which price a market order created on a completed bar fills at."""

    NEXT_OPEN = "next_open"
    CLOSE = "close"


@dataclass(frozen=True, slots=True)
class SimulatedBrokerConfig:
    """Fill rules of :class:`~tradeloop.execution.simulated.SimulatedBroker`.

    fill_price
        ``next_open`` (default): a signal on bar t fills at the open of the symbol's next bar.
        ``close``: it fills at bar t's close.
    slippage_bps
        Adverse slippage on market and stop fills, in basis points of the price.
    allow_short
        Accept ``open_short`` signals.
    post_only_entries
        Send entries (an order that opens a position from flat) as post-only limit orders at
        the touch (the signal bar's close) instead of market orders. The order reaches the
        market at the next bar's open: if the open is already at or through the limit it
        would take liquidity and is rejected (``post_only_would_take``, as the venue refuses
        it); otherwise the bar fills it at the limit, with the maker fee, only if it trades
        through the limit (low < limit for a buy, high > limit for a sell), else it expires
        at the bar's end (status ``expired``, rejection ``post_only_expired``). Exits and
        reversals stay market orders. Off by default.
    cash_buffer_pct
        A buy entry is sized, when it is sent, to leave this fraction of the cash unspent at
        the last price (:func:`~tradeloop.core.money.affordable_quantity`), so a next open up
        to about that much higher still pays for it; the venue broker applies the same rule.
        0 (default): orders keep their size (an unaffordable buy is refused at the fill).
    """

    fill_price: FillPrice = FillPrice.NEXT_OPEN
    slippage_bps: float = 0.0
    allow_short: bool = True
    post_only_entries: bool = False
    cash_buffer_pct: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.slippage_bps) and self.slippage_bps >= 0):
            raise ConfigError(f"slippage_bps must be >= 0, got {self.slippage_bps}")
        check_cash_buffer(self.cash_buffer_pct)
        object.__setattr__(self, "fill_price", FillPrice(self.fill_price))
