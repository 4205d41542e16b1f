"""What a live market-data feed hands to the engine: kline updates and feed status changes.

Feeds run on an asyncio loop in the adapter layer and put these events on a thread-safe queue
that the single-threaded kernel drains (parity rule 3 in the architecture).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["FeedEvent", "FeedState", "FeedStatus", "KlineUpdate"]

FeedState = Literal["connecting", "connected", "disconnected", "stale", "failed", "malformed"]


@dataclass(frozen=True, slots=True)
class KlineUpdate:
    """One kline (candle) message from an exchange stream.

    Attributes
    ----------
    exchange
        ccxt id of the exchange (``binance``, ``bybit``).
    symbol
        Unified symbol (``BTC/USDT``).
    timeframe
        Timeframe code (``1m``).
    ts
        Open time of the bar, UTC nanoseconds.
    open, high, low, close, volume
        The bar so far (final when ``closed``).
    closed
        True when the exchange marks the bar as final.
    """

    exchange: str
    symbol: str
    timeframe: str
    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    closed: bool


@dataclass(frozen=True, slots=True)
class FeedStatus:
    """A change of a feed connection's state.

    ``attempt`` counts consecutive failed connection attempts (0 once connected);
    ``reconnects`` counts successful reconnections since the feed started.
    """

    exchange: str
    state: FeedState
    detail: str = ""
    attempt: int = 0
    reconnects: int = 0


FeedEvent = KlineUpdate | FeedStatus
