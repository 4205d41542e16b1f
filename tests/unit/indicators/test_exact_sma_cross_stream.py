"""The streaming exact SMA cross equals the vectorized one, one close at a time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradeloop.core.errors import ConfigError
from tradeloop.data.loader import load_ohlcv
from tradeloop.indicators.crossover import ExactSmaCross, sma_crossover_exact


def _streamed(close: np.ndarray, fast: int, slow: int, start: int, tick: float) -> list[int]:
    stream, crosses = ExactSmaCross.from_history(close[:start], fast, slow, tick)
    return [int(x) for x in crosses] + [stream.update(x) for x in close[start:].tolist()]


@pytest.mark.parametrize(("fast", "slow", "start"), [(10, 30, 100), (5, 20, 3), (30, 10, 500)])
def test_stream_equals_the_vectorized_cross_on_real_prices(
    fast: int, slow: int, start: int, shared_data: Path
) -> None:
    close = load_ohlcv(shared_data / "crypto_1m/binance_spot_2025/BTC_USDT-1m.feather").bars.close
    close = close[:20_000]
    expected = sma_crossover_exact(close, fast, slow, 0.01)
    assert np.abs(expected).sum() > 500  # the data crosses often
    assert _streamed(close, fast, slow, start, 0.01) == expected.tolist()


@settings(max_examples=200, deadline=None)
@given(
    ticks=st.lists(st.integers(1, 6), min_size=1, max_size=120),  # few levels: many exact ties
    fast=st.integers(1, 8),
    slow=st.integers(1, 12),
    start=st.integers(0, 40),
)
def test_stream_equals_the_vectorized_cross_with_ties(
    ticks: list[int], fast: int, slow: int, start: int
) -> None:
    close = np.array(ticks, dtype=np.float64) * 0.5
    start = min(start, close.size)
    expected = sma_crossover_exact(close, fast, slow, 0.5).tolist()
    assert _streamed(close, fast, slow, start, 0.5) == expected


def test_a_history_that_needs_the_float_fallback_is_refused() -> None:
    close = np.full(50, 1e9)  # 1e17 ticks: 30-bar sums could overflow int64
    with pytest.raises(ConfigError, match="float fallback"):
        ExactSmaCross.from_history(close, 10, 30, 1e-8)


def test_a_price_without_an_int64_tick_form_takes_the_float_path_without_a_warning() -> None:
    # Arrange: a 2-decimal series with one bar at 1e300 (data let through with
    # --allow-data-issues): 1e300 / 0.01 ticks does not fit an int64
    import warnings

    close = np.round(100 + np.cumsum(np.sin(np.arange(200) / 7.0)), 2)
    close[120] = 1e300
    # Act
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a cast of 1e302 to int64 warns (and wraps negative)
        crosses = sma_crossover_exact(close, 10, 30, 0.01)
    # Assert: the spike lifts the fast average above the slow one: the side at that bar is up
    # (the wrapped int64 would have been a huge negative price: down)
    last_cross = crosses[:121][crosses[:121] != 0][-1]
    assert last_cross == 1


def test_ties_keep_the_sign_before_them_worked_by_hand() -> None:
    # SMA(1) vs SMA(2). [1, 1, 1, 1, 2, 2, 1, 1]: ties from the first full window (no sign
    # yet: no cross when the first sign appears), up at bar 4, a tie at 5 keeps up, down at 6.
    # [2, 1, 1, 1, 2]: down from bar 1, two ties keep down, up at bar 4: a cross.
    first = sma_crossover_exact(np.array([1.0, 1, 1, 1, 2, 2, 1, 1]), 1, 2, 1.0)
    second = sma_crossover_exact(np.array([2.0, 1, 1, 1, 2]), 1, 2, 1.0)
    assert first.tolist() == [0, 0, 0, 0, 0, 0, -1, 0]
    assert second.tolist() == [0, 0, 0, 0, 1]
