"""Positions and closed trades."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from tradeloop.core.money import pnl_for

__all__ = ["ExitReason", "Position", "Trade"]


class ExitReason(StrEnum):
    """Why a trade was closed."""

    SIGNAL = "signal"
    STOP_LOSS = "stop_loss"
    TAKE_PROFIT = "take_profit"
    TRAILING = "trailing"
    END = "end"


@dataclass(frozen=True, slots=True)
class Position:
    """An open position. ``quantity`` is always positive; ``direction`` is +1 long, -1 short.

    Stops are absolute prices; ``trail_fraction`` with ``trail_anchor`` (best price seen) define
    a trailing stop.
    """

    id: str
    symbol: str
    direction: int
    quantity: float
    entry_price: float
    entry_ts: int
    entry_fee: float
    stop_loss: float | None = None
    take_profit: float | None = None
    trail_fraction: float | None = None
    trail_anchor: float | None = None
    tag: str = ""

    @property
    def is_long(self) -> bool:
        """True for a long position."""
        return self.direction > 0

    @property
    def signed_quantity(self) -> float:
        """Quantity with the sign of the direction."""
        return self.direction * self.quantity

    def market_value(self, price: float) -> float:
        """Signed value of the position at ``price``."""
        return self.direction * self.quantity * price

    def unrealized_pnl(self, price: float) -> float:
        """P&L if closed at ``price``, before exit fees, after the entry fee."""
        return pnl_for(self.direction, self.quantity, self.entry_price, price) - self.entry_fee

    def trailing_stop_price(self) -> float | None:
        """Current trailing stop level, or None when no trailing stop is set."""
        if self.trail_fraction is None or self.trail_anchor is None:
            return None
        if self.direction > 0:
            return self.trail_anchor * (1.0 - self.trail_fraction)
        return self.trail_anchor * (1.0 + self.trail_fraction)


@dataclass(frozen=True, slots=True)
class Trade:
    """A round trip: entry and (unless still open) exit. ``pnl`` is net of both fees."""

    id: str
    symbol: str
    direction: int
    quantity: float
    entry_ts: int
    entry_price: float
    exit_ts: int | None
    exit_price: float | None
    entry_fee: float
    exit_fee: float
    pnl: float
    exit_reason: ExitReason | None
    tag: str = ""

    @property
    def is_closed(self) -> bool:
        """True when the trade has an exit."""
        return self.exit_ts is not None

    @property
    def fees(self) -> float:
        """Entry plus exit fees."""
        return self.entry_fee + self.exit_fee

    @property
    def pnl_pct(self) -> float:
        """Net P&L as a fraction of the entry notional."""
        notional = self.quantity * self.entry_price
        return self.pnl / notional if notional else 0.0

    @property
    def holding_ns(self) -> int:
        """Time held in nanoseconds (0 while open)."""
        return 0 if self.exit_ts is None else self.exit_ts - self.entry_ts
