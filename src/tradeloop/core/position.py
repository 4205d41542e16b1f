"""Positions and closed trades."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from tradeloop.core.money import pnl_for
from tradeloop.core.slots_init import slots_init

__all__ = ["ExitReason", "Position", "Trade"]


class ExitReason(StrEnum):
    """Why a trade was closed."""

    SIGNAL = "signal"
    STOP_LOSS = "stop_loss"
    TAKE_PROFIT = "take_profit"
    TRAILING = "trailing"
    END = "end"
    RISK = "risk"


@slots_init
@dataclass(frozen=True, slots=True)
class Position:
    """An open position. ``quantity`` is always positive; ``direction`` is +1 long, -1 short.

    Stops are absolute prices; ``trail_fraction`` with ``trail_anchor`` (best price seen) define
    a trailing stop. With ``trail_activation`` the trailing stop is armed only once the anchor
    is that fraction beyond the entry price (0.02: +2% for a long, -2% for a short).
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
    trail_activation: float | None = None

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

    def active_stop(self) -> tuple[float | None, ExitReason]:
        """Return the stop level in force and its exit reason.

        That is the tighter of the fixed stop and the (armed) trailing stop; the level is None
        when neither is set.
        """
        stop = self.stop_loss
        trail = self.trailing_stop_price()
        if trail is not None and (
            stop is None or (trail > stop if self.direction > 0 else trail < stop)
        ):
            return trail, ExitReason.TRAILING
        return stop, ExitReason.STOP_LOSS

    def trailing_stop_price(self) -> float | None:
        """Current trailing stop level, or None when no trailing stop is set."""
        if self.trail_fraction is None or self.trail_anchor is None:
            return None
        activation = self.trail_activation
        if self.direction > 0:
            if activation and self.trail_anchor < self.entry_price * (1.0 + activation):
                return None
            return self.trail_anchor * (1.0 - self.trail_fraction)
        if activation and self.trail_anchor > self.entry_price * (1.0 - activation):
            return None
        return self.trail_anchor * (1.0 + self.trail_fraction)


@slots_init
@dataclass(frozen=True, slots=True)
class Trade:
    """A round trip: entry and (unless still open) exit. ``pnl`` is net of both fees.

    ``stop_loss`` and ``take_profit`` are the fixed exit levels the position carried (None when
    it had none); a trailing stop's moving level is not recorded.
    """

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
    stop_loss: float | None = None
    take_profit: float | None = None

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
