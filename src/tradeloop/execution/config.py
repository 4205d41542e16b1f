"""Configuration of the simulated broker."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from tradeloop.core.errors import ConfigError

__all__ = ["FillPrice", "SimulatedBrokerConfig"]


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
    """

    fill_price: FillPrice = FillPrice.NEXT_OPEN
    slippage_bps: float = 0.0
    allow_short: bool = True
    post_only_entries: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.slippage_bps) and self.slippage_bps >= 0):
            raise ConfigError(f"slippage_bps must be >= 0, got {self.slippage_bps}")
        object.__setattr__(self, "fill_price", FillPrice(self.fill_price))
