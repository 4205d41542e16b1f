"""Streaming indicators equal their vectorized twins value for value (bit for bit)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tradeloop.indicators import atr, bollinger, ema, rsi, sma, vwap
from tradeloop.indicators.streaming import (
    StreamingATR,
    StreamingBollinger,
    StreamingEMA,
    StreamingRSI,
    StreamingSMA,
    StreamingVWAP,
)

# long enough to pass the rolling sums' rebuilds (every 256 updates, 64 for the variance)
_LENGTHS = st.integers(0, 700)
_PERIODS = st.integers(1, 40)


@st.composite
def _prices(draw: st.DrawFn, gaps: bool = False) -> np.ndarray:
    """A random walk of prices (levels 1e-3..1e5, runs of equal values), NaN gaps if asked."""
    n = draw(_LENGTHS)
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    level = 10.0 ** draw(st.integers(-3, 5))
    steps = rng.normal(0, 0.01, n) * (rng.random(n) > 0.2)  # some flat stretches
    x = np.round(level * np.exp(np.cumsum(steps)), 6)
    if gaps and n:
        x[rng.random(n) < 0.02] = np.nan
    return x


@st.composite
def _bars(draw: st.DrawFn) -> tuple[np.ndarray, ...]:
    close = draw(_prices())
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    high = close * (1 + rng.random(close.size) * 0.01)
    low = close * (1 - rng.random(close.size) * 0.01)
    volume = np.round(rng.random(close.size) * 10, 3) * (rng.random(close.size) > 0.1)
    return high, low, close, volume


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.array_equal(a, b, equal_nan=True))


@settings(max_examples=150, deadline=None)
@given(x=_prices(gaps=True), n=_PERIODS)
def test_streaming_sma_and_ema_equal_the_vectorized_ones(x: np.ndarray, n: int) -> None:
    s, e = StreamingSMA(n), StreamingEMA(n)
    assert _same(np.array([s.update(v) for v in x]), sma(x, n))
    assert _same(np.array([e.update(v) for v in x]), ema(x, n))


@settings(max_examples=150, deadline=None)
@given(x=_prices(), n=_PERIODS)
def test_streaming_rsi_equals_the_vectorized_one(x: np.ndarray, n: int) -> None:
    r = StreamingRSI(n)
    assert _same(np.array([r.update(v) for v in x]), rsi(x, n))


@settings(max_examples=150, deadline=None)
@given(bars=_bars(), n=_PERIODS)
def test_streaming_atr_equals_the_vectorized_one(bars: tuple[np.ndarray, ...], n: int) -> None:
    high, low, close, _ = bars
    a = StreamingATR(n)
    streamed = np.array([a.update(h, lo, c) for h, lo, c in zip(high, low, close, strict=True)])
    assert _same(streamed, atr(high, low, close, n))


@settings(max_examples=150, deadline=None)
@given(
    x=_prices(gaps=True),
    n=st.integers(2, 80),
    k=st.sampled_from([0.0, 1.5, 2.0]),
    ddof=st.sampled_from([0, 1]),
)
def test_streaming_bollinger_equals_the_vectorized_one(
    x: np.ndarray, n: int, k: float, ddof: int
) -> None:
    b = StreamingBollinger(n, k, ddof)
    streamed = np.array([b.update(v) for v in x]).reshape(-1, 3)
    mid, upper, lower = bollinger(x, n, k, ddof)
    assert _same(streamed[:, 0], mid)
    assert _same(streamed[:, 1], upper)
    assert _same(streamed[:, 2], lower)


@settings(max_examples=150, deadline=None)
@given(bars=_bars(), window=st.one_of(st.none(), _PERIODS))
def test_streaming_vwap_equals_the_vectorized_one(
    bars: tuple[np.ndarray, ...], window: int | None
) -> None:
    high, low, close, volume = bars
    v = StreamingVWAP(window)
    streamed = np.array([v.update(*bar) for bar in zip(high, low, close, volume, strict=True)])
    assert _same(streamed, vwap(high, low, close, volume, window=window))


def test_a_session_reset_starts_the_cumulative_vwap_again() -> None:
    v = StreamingVWAP()
    v.update(3.0, 1.0, 2.0, 1.0)
    v.reset()
    assert v.update(6.0, 4.0, 5.0, 3.0) == 5.0
