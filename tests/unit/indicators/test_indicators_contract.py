"""Contract of the indicator functions: argument checks, shapes, NaN handling, precision, speed."""

from __future__ import annotations

import doctest
import math
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import tradeloop.indicators as ind
from tradeloop.core.errors import ConfigError
from tradeloop.indicators import (
    _nb,
    moving,
    oscillators,
    volatility,
    volume,
)

nan = math.nan
X = np.array([1.0, 2.0, 4.0, 3.0, 5.0, 6.0, 4.0, 7.0])
HI = X + 1.0
LO = X - 1.0
VOL = np.arange(1.0, 9.0)
TS = np.arange(8, dtype=np.int64) * 3_600 * 10**9

# (function name, call with the period argument set to p, name of the period argument)
PERIOD_CALLS: list[tuple[str, Callable[[Any], object], str]] = [
    ("sma", lambda p: ind.sma(X, p), "n"),
    ("ema", lambda p: ind.ema(X, p), "n"),
    ("wma", lambda p: ind.wma(X, p), "n"),
    ("rsi", lambda p: ind.rsi(X, p), "n"),
    ("macd.fast", lambda p: ind.macd(X, fast=p, slow=5), "fast"),
    ("macd.slow", lambda p: ind.macd(X, fast=1, slow=p), "slow"),
    ("macd.signal", lambda p: ind.macd(X, 2, 3, signal=p), "signal"),
    ("stochastic.k", lambda p: ind.stochastic(HI, LO, X, k=p), "k"),
    ("stochastic.d", lambda p: ind.stochastic(HI, LO, X, d=p), "d"),
    ("stochastic.smooth_k", lambda p: ind.stochastic(HI, LO, X, smooth_k=p), "smooth_k"),
    ("atr", lambda p: ind.atr(HI, LO, X, p), "n"),
    ("bollinger", lambda p: ind.bollinger(X, p), "n"),
    ("rolling_zscore", lambda p: ind.rolling_zscore(X, p), "n"),
    ("vwap", lambda p: ind.vwap(HI, LO, X, VOL, window=p), "window"),
]

# Every public function on valid inputs, returning a tuple of output arrays.
ALL_CALLS: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, ...]]] = {
    "sma": lambda h, lo, c: (ind.sma(c, 3),),
    "ema": lambda h, lo, c: (ind.ema(c, 3),),
    "wma": lambda h, lo, c: (ind.wma(c, 3),),
    "rsi": lambda h, lo, c: (ind.rsi(c, 3),),
    "macd": lambda h, lo, c: ind.macd(c, 2, 3, 2),
    "stochastic": lambda h, lo, c: ind.stochastic(h, lo, c, 3, 2, 2),
    "true_range": lambda h, lo, c: (ind.true_range(h, lo, c),),
    "atr": lambda h, lo, c: (ind.atr(h, lo, c, 3),),
    "bollinger": lambda h, lo, c: ind.bollinger(c, 3),
    "rolling_zscore": lambda h, lo, c: (ind.rolling_zscore(c, 3),),
    "vwap": lambda h, lo, c: (ind.vwap(h, lo, c, np.ones_like(c)),),
    "vwap_window": lambda h, lo, c: (ind.vwap(h, lo, c, np.ones_like(c), window=3),),
    "session_vwap": lambda h, lo, c: (
        ind.session_vwap(h, lo, c, np.ones_like(c), np.arange(len(c), dtype=np.int64)),
    ),
}


def test_public_api_all_lists_every_function() -> None:
    assert sorted(ind.__all__) == sorted(
        [
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
    )
    for name in ind.__all__:
        assert callable(getattr(ind, name))


# --------------------------------------------------------------------------- argument checks


BAD_PERIODS: list[object] = [0, -3, 2.0, 2.5, "3", None, True, np.float64(3.0)]
BAD_PERIOD_CASES = [
    pytest.param(call, arg, bad, id=f"{label}-{bad!r}")
    for label, call, arg in PERIOD_CALLS
    for bad in BAD_PERIODS
    if not (arg == "window" and bad is None)  # vwap(window=None) is the cumulative VWAP
]


@pytest.mark.parametrize(("call", "arg", "bad"), BAD_PERIOD_CASES)
def test_period_invalid_value_raises_config_error_naming_argument(
    call: Callable[[Any], object], arg: str, bad: object
) -> None:
    with pytest.raises(ConfigError, match=rf"\b{arg}\b"):
        call(bad)


@pytest.mark.parametrize(("label", "call", "arg"), PERIOD_CALLS, ids=[c[0] for c in PERIOD_CALLS])
def test_period_numpy_integer_is_accepted(
    label: str, call: Callable[[Any], object], arg: str
) -> None:
    value = np.int64(4) if arg == "slow" else np.int32(2)
    call(value)


def test_macd_fast_not_below_slow_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="fast must be smaller than slow"):
        ind.macd(X, fast=5, slow=5)


@pytest.mark.parametrize("k", [-1.0, nan, math.inf, "2", True])
def test_bollinger_invalid_k_raises_config_error(k: object) -> None:
    with pytest.raises(ConfigError, match=r"\bk\b"):
        ind.bollinger(X, 3, k)  # type: ignore[arg-type]


@pytest.mark.parametrize("ddof", [-1, 2, 0.0, True])
def test_bollinger_invalid_ddof_raises_config_error(ddof: object) -> None:
    with pytest.raises(ConfigError, match="ddof"):
        ind.bollinger(X, 3, 2.0, ddof)  # type: ignore[arg-type]


def test_bollinger_window_one_with_sample_std_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="n must be > ddof"):
        ind.bollinger(X, 1, 2.0, 1)


@pytest.mark.parametrize(
    "call",
    [
        lambda: ind.stochastic(HI, LO[:-1], X),
        lambda: ind.true_range(HI, LO, X[:-1]),
        lambda: ind.atr(HI[:-1], LO, X),
        lambda: ind.vwap(HI, LO, X, VOL[:-1]),
        lambda: ind.vwap(HI, LO, X, VOL[:-1], window=2),
        lambda: ind.session_vwap(HI, LO, X, VOL, TS[:-1]),
    ],
    ids=["stochastic", "true_range", "atr", "vwap", "vwap_window", "session_vwap"],
)
def test_mismatched_lengths_raise_config_error(call: Callable[[], object]) -> None:
    with pytest.raises(ConfigError, match="same length"):
        call()


def test_two_dimensional_input_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="x must be 1-D"):
        ind.sma(np.ones((3, 2)), 2)


def test_non_numeric_input_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="close must be numeric"):
        ind.rsi(["a", "b"], 2)


@pytest.mark.parametrize("period", ["1x", "", "0d"])
def test_session_vwap_invalid_period_raises_config_error(period: str) -> None:
    with pytest.raises(ConfigError, match="timeframe"):
        ind.session_vwap(HI, LO, X, VOL, TS, period)


def test_session_vwap_float_timestamps_raise_config_error() -> None:
    with pytest.raises(ConfigError, match="ts_ns"):
        ind.session_vwap(HI, LO, X, VOL, TS.astype(float))


# --------------------------------------------------------------------------- shapes and dtypes


@pytest.mark.parametrize("name", list(ALL_CALLS))
def test_outputs_float64_same_length_as_input(name: str) -> None:
    outputs = ALL_CALLS[name](HI, LO, X)
    for out in outputs:
        assert out.dtype == np.float64
        assert out.shape == X.shape


@pytest.mark.parametrize("name", list(ALL_CALLS))
def test_empty_input_returns_empty_arrays(name: str) -> None:
    empty = np.array([], dtype=np.float64)
    for out in ALL_CALLS[name](empty, empty, empty):
        assert out.shape == (0,)


@pytest.mark.parametrize("name", list(ALL_CALLS))
def test_list_and_int_inputs_are_converted(name: str) -> None:
    as_arrays = ALL_CALLS[name](HI, LO, X)
    as_lists = ALL_CALLS[name](HI.tolist(), LO.tolist(), X.astype(np.int64))  # type: ignore[arg-type]
    for a, b in zip(as_arrays, as_lists, strict=True):
        assert_array_equal(a, b)


@pytest.mark.parametrize("name", list(ALL_CALLS))
def test_inputs_are_not_modified(name: str) -> None:
    h, lo, c = HI.copy(), LO.copy(), X.copy()
    ALL_CALLS[name](h, lo, c)
    assert_array_equal(h, HI)
    assert_array_equal(lo, LO)
    assert_array_equal(c, X)


# --------------------------------------------------------------------------- NaN handling


def test_rolling_windows_with_nan_return_nan_then_recover() -> None:
    # Arrange: a NaN at index 5 spoils every window of 3 that contains it (indices 5..7).
    x = np.arange(1.0, 12.0)
    x[5] = nan
    spoiled = [5, 6, 7]
    # Act
    outputs = {
        "sma": ind.sma(x, 3),
        "wma": ind.wma(x, 3),
        "mid": ind.bollinger(x, 3)[0],
        "z": ind.rolling_zscore(x, 3),
        "k": ind.stochastic(x + 1, x - 1, x, k=3)[0],
    }
    # Assert
    for name, out in outputs.items():
        assert np.isnan(out[spoiled]).all(), name
        assert not np.isnan(out[[2, 3, 4, 8, 9, 10]]).any(), name
    assert_allclose(outputs["sma"][8:], [(7 + 8 + 9) / 3, (8 + 9 + 10) / 3, (9 + 10 + 11) / 3])


def test_ema_interior_nan_is_skipped_and_recursion_continues() -> None:
    # Seed (1 + 2) / 2 = 1.5 at index 1; the NaN at index 2 is skipped; alpha = 2/3.
    out = ind.ema([1.0, 2.0, nan, 5.0], 2)
    assert_allclose(out, [nan, 1.5, nan, 1.5 + 2 / 3 * (5 - 1.5)])


def test_macd_leading_nan_input_delays_every_line() -> None:
    x = np.concatenate([[nan, nan], np.linspace(1.0, 2.0, 20)])
    line, signal, _ = ind.macd(x, 2, 4, 3)
    assert np.isnan(line[: 2 + 3]).all()
    assert not np.isnan(line[2 + 3])
    assert np.isnan(signal[: 2 + 3 + 2]).all()
    assert not np.isnan(signal[2 + 3 + 2])


# --------------------------------------------------------------------------- precision


def test_sma_million_points_matches_direct_window_mean() -> None:
    # Arrange: a large level with small moves is where running sums drift the most.
    rng = np.random.default_rng(7)
    x = 1e6 + np.cumsum(rng.normal(0.0, 5.0, 1_000_000))
    n = 50
    direct = np.lib.stride_tricks.sliding_window_view(x, n).mean(axis=1)
    # Act
    out = ind.sma(x, n)
    # Assert
    rel = np.abs(out[n - 1 :] - direct) / np.abs(direct)
    assert rel.max() < 1e-9


def test_sma_zero_mean_million_points_matches_direct_window_mean() -> None:
    rng = np.random.default_rng(11)
    x = rng.normal(0.0, 1.0, 1_000_000) * 1e3
    n = 20
    direct = np.lib.stride_tricks.sliding_window_view(x, n).mean(axis=1)
    assert_allclose(ind.sma(x, n)[n - 1 :], direct, rtol=0, atol=1e-9)


def test_bollinger_million_points_matches_two_pass_std() -> None:
    rng = np.random.default_rng(3)
    x = 3e4 + np.cumsum(rng.normal(0.0, 50.0, 1_000_000))
    n = 20
    sd = np.lib.stride_tricks.sliding_window_view(x, n).std(axis=1)
    mid, upper, _ = ind.bollinger(x, n, 1.0)
    assert_allclose(upper[n - 1 :] - mid[n - 1 :], sd, rtol=1e-9)


def test_rolling_extreme_kernel_matches_direct_window_max_and_min() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=1_000)
    for n in (1, 2, 7, 64):
        windows = np.lib.stride_tricks.sliding_window_view(x, n)
        assert_array_equal(_nb.rolling_extreme_nb(x, n, True)[n - 1 :], windows.max(axis=1))
        assert_array_equal(_nb.rolling_extreme_nb(x, n, False)[n - 1 :], windows.min(axis=1))


# --------------------------------------------------------------------------- doctests


@pytest.mark.parametrize(
    "module", [moving, oscillators, volatility, volume], ids=lambda m: m.__name__
)
def test_docstring_examples_pass(module: ModuleType) -> None:
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
