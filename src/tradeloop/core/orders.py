"""Orders and fills."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Fill", "Order", "OrderSide", "OrderType", "TimeInForce"]


class OrderSide(StrEnum):
    """Buy or sell."""

    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    """Order types the brokers understand."""

    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"


class TimeInForce(StrEnum):
    """How long an order stays working."""

    GTC = "gtc"
    IOC = "ioc"
    FOK = "fok"
    DAY = "day"


@dataclass(frozen=True, slots=True)
class Order:
    """An order to a broker. ``quantity`` is positive; the side gives the direction.

    For equity-fraction sizing the broker resolves ``quantity`` at fill time from
    ``equity_fraction`` (then ``quantity`` is 0 until filled).
    """

    id: int
    symbol: str
    side: OrderSide
    type: OrderType
    quantity: float
    ts_created: int
    limit_price: float | None = None
    stop_price: float | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    equity_fraction: float | None = None
    reduce_only: bool = False
    tag: str = ""


@dataclass(frozen=True, slots=True)
class Fill:
    """An execution of (part of) an order."""

    order_id: int
    symbol: str
    side: OrderSide
    quantity: float
    price: float
    fee: float
    ts: int
    reason: str = "signal"
