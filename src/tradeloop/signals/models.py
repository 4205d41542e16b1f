"""Bus messages of the signal loop (pydantic, at the boundary).

Timestamps are int64 nanoseconds since the epoch, UTC (the same convention external engines
such as NautilusTrader use on the wire).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tradeloop.bus.codec import MessageCodec

__all__ = [
    "DEFAULT_COMPONENT",
    "AdaptiveWeights",
    "LiquidationSignal",
    "TradeFeedback",
    "signal_codec",
    "symbol_key",
]

DEFAULT_COMPONENT = "liquidation_zone"


def symbol_key(symbol: str) -> str:
    """Return the channel form of a symbol.

    >>> symbol_key("BTC/USDT:USDT"), symbol_key("eth-usdt")
    ('BTCUSDT', 'ETHUSDT')
    """
    base = symbol.split(":", 1)[0]
    return "".join(ch for ch in base.upper() if ch.isalnum())


class LiquidationSignal(BaseModel):
    """A zone where leveraged positions would be liquidated.

    ``side`` is the side of the positions at risk: ``long`` zones lie below the price,
    ``short`` zones above. ``distance_pct`` is ``(price_level - current_price) / current_price``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    symbol: str
    price_level: float = Field(gt=0)
    side: Literal["long", "short"]
    strength: float = Field(ge=0)
    distance_pct: float
    confidence: float = Field(ge=0, le=1)
    ts: int
    current_price: float = Field(gt=0)
    component: str = DEFAULT_COMPONENT


class TradeFeedback(BaseModel):
    """Realized outcome of a trade taken on a signal."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    signal_id: str = Field(min_length=1)
    symbol: str
    side: Literal["long", "short"]
    entry_price: float = Field(gt=0)
    exit_price: float = Field(gt=0)
    entry_ts: int
    exit_ts: int
    pnl: float
    pnl_pct: float
    source: str = Field(min_length=1)
    component: str = DEFAULT_COMPONENT


class AdaptiveWeights(BaseModel):
    """A weight version, broadcast by the process that adapts (the feedback consumer).

    Publishers in other processes read the last one retained on the bus, so they follow the
    weights without opening the analytics store.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = Field(ge=0)
    weights: dict[str, float]
    reason: str = ""
    ts: int = 0


def signal_codec() -> MessageCodec:
    """Return a codec with the signal-loop messages registered."""
    return MessageCodec((LiquidationSignal, TradeFeedback, AdaptiveWeights))
