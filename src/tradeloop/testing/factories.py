"""Builders of small, valid market data for tests."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tradeloop.core.bar import BarArrays
from tradeloop.core.time import parse_time
from tradeloop.core.timeframes import timeframe_ns

__all__ = ["make_bars"]


def make_bars(
    closes: Sequence[float],
    *,
    symbol: str = "TEST/USD",
    timeframe: str = "1m",
    start: str = "2024-01-01T00:00:00Z",
    opens: Sequence[float] | None = None,
    highs: Sequence[float] | None = None,
    lows: Sequence[float] | None = None,
    volume: float = 1.0,
) -> BarArrays:
    """Return consecutive bars with the given closes.

    Opens default to the previous close (the first to its own close); highs and lows default
    to the max/min of open and close.
    """
    close = np.asarray(closes, dtype=np.float64)
    open_ = (
        np.asarray(opens, dtype=np.float64)
        if opens is not None
        else np.concatenate((close[:1], close[:-1]))
    )
    high = np.asarray(highs, dtype=np.float64) if highs is not None else np.maximum(open_, close)
    low = np.asarray(lows, dtype=np.float64) if lows is not None else np.minimum(open_, close)
    ts = parse_time(start) + np.arange(close.size, dtype=np.int64) * timeframe_ns(timeframe)
    return BarArrays(symbol, timeframe, ts, open_, high, low, close, np.full(close.size, volume))
