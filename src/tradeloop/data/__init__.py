"""Market data from files: load and check OHLCV bars, and resample them to higher timeframes."""

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

__all__ = [
    "ColumnMap",
    "LoadedBars",
    "infer_price_decimals",
    "infer_symbol",
    "infer_timeframe",
    "load_ohlcv",
    "resample",
    "validate_ohlcv",
    "validate_timestamps",
]
