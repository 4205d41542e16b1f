"""Market data: files, the Parquet cache of exchange history, order flow and quality checks.

The cache, history, order-flow and quality names are imported on first use, so a backtest
that only reads files does not pay for them at start-up.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from tradeloop.data.loader import (
    ColumnMap,
    LoadedBars,
    infer_price_decimals,
    infer_symbol,
    infer_timeframe,
    load_ohlcv,
)
from tradeloop.data.resample import resample
from tradeloop.data.validation import validate_ohlcv, validate_timestamps

if TYPE_CHECKING:
    from tradeloop.data.cache import CacheKey, ParquetCache
    from tradeloop.data.cached import load_cached
    from tradeloop.data.gaps import fill_forward, find_gaps
    from tradeloop.data.history import HistoricalDataProvider, HistorySource
    from tradeloop.data.quality import QualityReport, QualityThresholds, check_quality

_LAZY = {
    "CacheKey": "tradeloop.data.cache",
    "ParquetCache": "tradeloop.data.cache",
    "load_cached": "tradeloop.data.cached",
    "fill_forward": "tradeloop.data.gaps",
    "find_gaps": "tradeloop.data.gaps",
    "HistoricalDataProvider": "tradeloop.data.history",
    "HistorySource": "tradeloop.data.history",
    "QualityReport": "tradeloop.data.quality",
    "QualityThresholds": "tradeloop.data.quality",
    "check_quality": "tradeloop.data.quality",
}

__all__ = [
    "CacheKey",
    "ColumnMap",
    "HistoricalDataProvider",
    "HistorySource",
    "LoadedBars",
    "ParquetCache",
    "QualityReport",
    "QualityThresholds",
    "check_quality",
    "fill_forward",
    "find_gaps",
    "infer_price_decimals",
    "infer_symbol",
    "infer_timeframe",
    "load_cached",
    "load_ohlcv",
    "resample",
    "validate_ohlcv",
    "validate_timestamps",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tradeloop.data' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
