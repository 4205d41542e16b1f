"""Moving averages: simple, exponential and linearly weighted."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from tradeloop.indicators._nb import (
    as_float_array,
    check_period,
    ewm_seeded_nb,
    rolling_sum_nb,
    rolling_wma_nb,
)

__all__ = ["ema", "sma", "wma"]


def sma(x: ArrayLike, n: int) -> np.ndarray:
    """Return the simple moving average of the last ``n`` values.

    ``sma[i] = mean(x[i-n+1 : i+1])``. The running window sum is kept with compensated
    (Neumaier) summation and rebuilt from the window at least every 256 steps, so the result
    does not drift on long series (relative error stays near machine precision on 10^6+
    values).

    Parameters
    ----------
    x
        Input series.
    n
        Window length, an integer >= 1.

    Returns
    -------
    numpy.ndarray
        float64 array of ``len(x)``; the first ``n - 1`` values are NaN, and so is any value
        whose window contains a NaN or an infinity.

    Raises
    ------
    ConfigError
        If ``n`` is not an integer >= 1 or ``x`` is not a 1-D numeric array.

    Examples
    --------
    >>> sma([1.0, 2.0, 3.0, 4.0, 5.0], 3)
    array([nan, nan,  2.,  3.,  4.])
    """
    arr = as_float_array(x, "x")
    n = check_period(n, "n")
    return rolling_sum_nb(arr, n) / n


def ema(x: ArrayLike, n: int) -> np.ndarray:
    """Return the exponential moving average with ``alpha = 2 / (n + 1)`` (TA-Lib convention).

    The average is seeded with the simple mean of the first ``n`` values, placed at index
    ``n - 1``; after that ``ema[i] = ema[i-1] + alpha * (x[i] - ema[i-1])`` (the recursive,
    ``adjust=False`` form). NaN inputs are treated as missing: the output there is NaN and the
    recursion continues from the last value, so leading NaNs simply delay the seed.

    Parameters
    ----------
    x
        Input series.
    n
        Span, an integer >= 1.

    Returns
    -------
    numpy.ndarray
        float64 array of ``len(x)``, NaN before the seed.

    Raises
    ------
    ConfigError
        If ``n`` is not an integer >= 1 or ``x`` is not a 1-D numeric array.

    Examples
    --------
    Seed ``(1 + 2 + 3) / 3 = 2``, alpha ``2 / 4 = 0.5``: ``2 + 0.5 * (4 - 2) = 3``, then
    ``3 + 0.5 * (6 - 3) = 4.5``.

    >>> ema([1.0, 2.0, 3.0, 4.0, 6.0], 3)
    array([nan, nan, 2. , 3. , 4.5])
    """
    arr = as_float_array(x, "x")
    n = check_period(n, "n")
    return ewm_seeded_nb(arr, n, 2.0 / (n + 1.0))


def wma(x: ArrayLike, n: int) -> np.ndarray:
    """Return the linearly weighted moving average, weights ``1..n`` with the latest heaviest.

    ``wma[i] = sum(k * x[i-n+k] for k in 1..n) / (n * (n + 1) / 2)``.

    Parameters
    ----------
    x
        Input series.
    n
        Window length, an integer >= 1.

    Returns
    -------
    numpy.ndarray
        float64 array of ``len(x)``; the first ``n - 1`` values are NaN, and so is any value
        whose window contains a NaN or an infinity.

    Raises
    ------
    ConfigError
        If ``n`` is not an integer >= 1 or ``x`` is not a 1-D numeric array.

    Examples
    --------
    ``(1*1 + 2*2 + 3*4) / 6 = 17 / 6``:

    >>> wma([1.0, 2.0, 4.0], 3).round(4)
    array([   nan,    nan, 2.8333])
    """
    arr = as_float_array(x, "x")
    n = check_period(n, "n")
    return rolling_wma_nb(arr, n)
