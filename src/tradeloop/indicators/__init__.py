"""Vectorized technical indicators on 1-D float64 arrays.

Every function takes array-likes (converted to float64), returns float64 arrays of the input
length with NaN during warm-up, and raises :class:`~tradeloop.core.errors.ConfigError` for a
bad period or mismatched input lengths. Recursive indicators run in numba kernels.
"""

from __future__ import annotations

from tradeloop.indicators.moving import ema, sma, wma
from tradeloop.indicators.oscillators import macd, rsi, stochastic
from tradeloop.indicators.volatility import atr, bollinger, rolling_zscore, true_range
from tradeloop.indicators.volume import session_vwap, vwap

__all__ = [
    "atr",
    "bollinger",
    "ema",
    "macd",
    "rolling_zscore",
    "rsi",
    "session_vwap",
    "sma",
    "stochastic",
    "true_range",
    "vwap",
    "wma",
]
