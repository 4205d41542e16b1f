"""Volatility indicators: true range, ATR, Bollinger bands and the rolling z-score."""

from __future__ import annotations

import math
import numbers

import numpy as np
from numpy.typing import ArrayLike

from tradeloop.core.errors import ConfigError
from tradeloop.indicators._nb import (
    as_float_array,
    check_period,
    check_same_length,
    rolling_mean_std_nb,
    true_range_nb,
    wilder_nb,
)

__all__ = ["atr", "bollinger", "rolling_zscore", "true_range"]


def _hlc(
    high: ArrayLike, low: ArrayLike, close: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    h = as_float_array(high, "high")
    lo = as_float_array(low, "low")
    c = as_float_array(close, "close")
    check_same_length(high=h, low=lo, close=c)
    return h, lo, c


def true_range(high: ArrayLike, low: ArrayLike, close: ArrayLike) -> np.ndarray:
    """Return the true range of each bar.

    ``tr[i] = max(high[i] - low[i], |high[i] - close[i-1]|, |low[i] - close[i-1]|)``; the
    first bar has no previous close, so ``tr[0] = high[0] - low[0]`` (as in the ``ta``
    package; TA-Lib leaves bar 0 undefined).

    Parameters
    ----------
    high, low, close
        Bar prices, all of the same length.

    Returns
    -------
    numpy.ndarray
        float64 array of the input length (no warm-up).

    Raises
    ------
    ConfigError
        If the input lengths differ or an input is not a 1-D numeric array.

    Examples
    --------
    Bar 1: ``max(12 - 11, |12 - 9|, |11 - 9|) = 3`` (gap up over the previous close of 9).

    >>> true_range([10.0, 12.0], [8.0, 11.0], [9.0, 11.5])
    array([2., 3.])
    """
    h, lo, c = _hlc(high, low, close)
    return true_range_nb(h, lo, c)


def atr(high: ArrayLike, low: ArrayLike, close: ArrayLike, n: int = 14) -> np.ndarray:
    """Return Wilder's average true range.

    The first value, at index ``n - 1``, is the simple mean of the first ``n`` true ranges
    (with ``tr[0] = high[0] - low[0]``, see :func:`true_range`); after that
    ``atr[i] = (atr[i-1] * (n - 1) + tr[i]) / n``. This matches the ``ta`` package. TA-Lib
    drops bar 0 instead and starts one bar later, from the mean of ``tr[1..n]``.

    Parameters
    ----------
    high, low, close
        Bar prices, all of the same length.
    n
        Smoothing period, an integer >= 1.

    Returns
    -------
    numpy.ndarray
        float64 array of the input length, NaN for the first ``n - 1`` values.

    Raises
    ------
    ConfigError
        If ``n`` is not an integer >= 1 or the input lengths differ.

    Examples
    --------
    True ranges 2, 3, 1: seed ``(2 + 3) / 2 = 2.5``, then ``(2.5 * 1 + 1) / 2 = 1.75``.

    >>> atr([10.0, 12.0, 12.0], [8.0, 11.0, 11.0], [9.0, 11.5, 11.5], n=2)
    array([ nan, 2.5 , 1.75])
    """
    h, lo, c = _hlc(high, low, close)
    n = check_period(n, "n")
    return wilder_nb(true_range_nb(h, lo, c), n)


def bollinger(
    close: ArrayLike, n: int = 20, k: float = 2.0, ddof: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return Bollinger bands ``(middle, upper, lower)``.

    ``middle = sma(close, n)``, ``upper = middle + k * std``, ``lower = middle - k * std``,
    with the rolling standard deviation over the same ``n`` values using ``ddof`` (0, the
    population std, is the usual Bollinger/TA-Lib definition). A window of identical values
    has a std of exactly 0.

    Parameters
    ----------
    close
        Closing prices.
    n
        Window length, an integer >= 1 (>= 2 when ``ddof`` is 1).
    k
        Band width in standard deviations, a finite number >= 0.
    ddof
        Delta degrees of freedom of the std, 0 or 1.

    Returns
    -------
    tuple of numpy.ndarray
        ``(middle, upper, lower)``, each float64 of ``len(close)``, NaN for the first
        ``n - 1`` values and wherever the window holds a NaN.

    Raises
    ------
    ConfigError
        If ``n``, ``k`` or ``ddof`` is invalid or ``close`` is not a 1-D numeric array.

    Examples
    --------
    Window ``[1, 3]``: mean 2, population std 1, so bands at ``2 +/- 2``.

    >>> bollinger([1.0, 3.0], n=2, k=2.0)
    (array([nan,  2.]), array([nan,  4.]), array([nan,  0.]))
    """
    arr = as_float_array(close, "close")
    n = check_period(n, "n")
    if (
        isinstance(k, bool)
        or not isinstance(k, numbers.Real)
        or not math.isfinite(float(k))
        or k < 0
    ):
        raise ConfigError(f"k must be a finite number >= 0, got {k!r}")
    if isinstance(ddof, bool) or not isinstance(ddof, numbers.Integral) or ddof not in (0, 1):
        raise ConfigError(f"ddof must be 0 or 1, got {ddof!r}")
    if n - ddof < 1:
        raise ConfigError(f"n must be > ddof, got n={n}, ddof={ddof}")
    mid, std = rolling_mean_std_nb(arr, n, int(ddof))
    width = float(k) * std
    return mid, mid + width, mid - width


def rolling_zscore(x: ArrayLike, n: int) -> np.ndarray:
    """Return the rolling z-score ``(x - mean) / std`` over the last ``n`` values.

    Mean and population std (``ddof=0``) are taken over ``x[i-n+1 : i+1]``, the window that
    includes the current value. A window with zero std (all values equal) gives 0.0 rather
    than NaN or infinity.

    Parameters
    ----------
    x
        Input series.
    n
        Window length, an integer >= 1 (``n == 1`` always gives 0.0).

    Returns
    -------
    numpy.ndarray
        float64 array of ``len(x)``, NaN for the first ``n - 1`` values and wherever the
        window holds a NaN.

    Raises
    ------
    ConfigError
        If ``n`` is not an integer >= 1 or ``x`` is not a 1-D numeric array.

    Examples
    --------
    Window ``[1, 2, 3]``: mean 2, std ``sqrt(2/3)``, so ``(3 - 2) / 0.8165 = 1.2247``.

    >>> rolling_zscore([1.0, 2.0, 3.0, 3.0, 3.0, 3.0], 3).round(4)
    array([   nan,    nan, 1.2247, 0.7071, 0.    , 0.    ])
    """
    arr = as_float_array(x, "x")
    n = check_period(n, "n")
    mean, std = rolling_mean_std_nb(arr, n, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(std > 0.0, (arr - mean) / std, 0.0)
    z[np.isnan(std)] = np.nan
    return z
