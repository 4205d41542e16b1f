"""Oscillators: RSI, MACD and the stochastic oscillator."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from tradeloop.core.errors import ConfigError
from tradeloop.indicators._nb import (
    as_float_array,
    check_period,
    check_same_length,
    ewm_seeded_nb,
    rolling_sum_nb,
    rsi_nb,
    stochastic_raw_nb,
)

__all__ = ["macd", "rsi", "stochastic"]


def rsi(close: ArrayLike, n: int = 14) -> np.ndarray:
    """Return Wilder's relative strength index, as TA-Lib computes it.

    With changes ``d[i] = close[i] - close[i-1]``, gains ``max(d, 0)`` and losses
    ``max(-d, 0)``: the first average gain and loss are the simple means of the first ``n``
    changes (``d[1..n]``), then ``avg = (avg_prev * (n - 1) + value) / n`` (Wilder smoothing,
    alpha ``1/n``). ``rsi = 100 * avg_gain / (avg_gain + avg_loss)``, first defined at index
    ``n``. An average loss of 0 gives 100. When both averages are 0 (a flat series) the
    result is 0.0, which is what TA-Lib returns. A change involving a NaN close is skipped.

    Parameters
    ----------
    close
        Closing prices.
    n
        Smoothing period, an integer >= 1.

    Returns
    -------
    numpy.ndarray
        float64 array of ``len(close)`` in [0, 100], NaN for the first ``n`` values.

    Raises
    ------
    ConfigError
        If ``n`` is not an integer >= 1 or ``close`` is not a 1-D numeric array.

    Examples
    --------
    Changes +1, -1, +2: seed gain ``(1 + 0) / 2 = 0.5``, loss ``(0 + 1) / 2 = 0.5`` -> 50;
    then gain ``(0.5 + 2) / 2 = 1.25``, loss ``(0.5 + 0) / 2 = 0.25`` -> ``100 * 1.25 / 1.5``.

    >>> rsi([1.0, 2.0, 1.0, 3.0], 2).round(4)
    array([    nan,     nan, 50.    , 83.3333])
    """
    arr = as_float_array(close, "close")
    n = check_period(n, "n")
    return rsi_nb(arr, n)


def macd(
    close: ArrayLike, fast: int = 12, slow: int = 26, signal: int = 9
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the MACD line, its signal line and the histogram.

    ``macd = ema(close, fast) - ema(close, slow)``, ``signal_line = ema(macd, signal)`` and
    ``histogram = macd - signal_line``, with :func:`~tradeloop.indicators.ema` (SMA-seeded,
    alpha ``2 / (n + 1)``). Each EMA is seeded independently on its own first window, as
    pandas-ta does; TA-Lib instead starts the fast EMA so that it seeds at the same bar as the
    slow one, which changes the first values slightly (the difference decays geometrically).
    The MACD line starts at index ``slow - 1``; the signal line and histogram at
    ``slow + signal - 2``.

    Parameters
    ----------
    close
        Closing prices.
    fast, slow
        EMA spans, integers with ``1 <= fast < slow``.
    signal
        Span of the signal-line EMA, an integer >= 1.

    Returns
    -------
    tuple of numpy.ndarray
        ``(macd, signal, histogram)``, each float64 of ``len(close)``.

    Raises
    ------
    ConfigError
        If a span is not an integer >= 1, ``fast >= slow``, or ``close`` is not 1-D numeric.

    Examples
    --------
    With ``fast=1`` the fast EMA is ``close`` itself; slow EMA (span 2, alpha 2/3) seeds at
    ``(1 + 2) / 2 = 1.5`` then ``1.5 + 2/3 * (4 - 1.5) = 3.1667``; MACD ``0.5, 0.8333``; the
    signal (span 2) seeds at their mean ``0.6667``.

    >>> m, s, h = macd([1.0, 2.0, 4.0], fast=1, slow=2, signal=2)
    >>> m.round(4)
    array([   nan, 0.5   , 0.8333])
    >>> s.round(4)
    array([   nan,    nan, 0.6667])
    >>> h.round(4)
    array([   nan,    nan, 0.1667])
    """
    arr = as_float_array(close, "close")
    fast = check_period(fast, "fast")
    slow = check_period(slow, "slow")
    signal = check_period(signal, "signal")
    if fast >= slow:
        raise ConfigError(f"fast must be smaller than slow, got fast={fast}, slow={slow}")
    line = ewm_seeded_nb(arr, fast, 2.0 / (fast + 1.0)) - ewm_seeded_nb(
        arr, slow, 2.0 / (slow + 1.0)
    )
    sig = ewm_seeded_nb(line, signal, 2.0 / (signal + 1.0))
    return line, sig, line - sig


def stochastic(
    high: ArrayLike,
    low: ArrayLike,
    close: ArrayLike,
    k: int = 14,
    d: int = 3,
    smooth_k: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Return the stochastic oscillator ``(%K, %D)``.

    Raw ``%K = 100 * (close - LL) / (HH - LL)`` where ``HH`` and ``LL`` are the highest high
    and lowest low of the last ``k`` bars; when ``HH == LL`` the raw %K is 50.0. ``%K`` is the
    ``smooth_k``-bar simple mean of raw %K (``smooth_k=1``: fast stochastic; ``3``: slow), and
    ``%D`` is the ``d``-bar simple mean of ``%K``. %K starts at index ``k + smooth_k - 2`` and
    %D at ``k + smooth_k + d - 3``.

    Parameters
    ----------
    high, low, close
        Bar prices, all of the same length.
    k
        Look-back for the highest high and lowest low, an integer >= 1.
    d
        %D smoothing window, an integer >= 1.
    smooth_k
        %K smoothing window, an integer >= 1.

    Returns
    -------
    tuple of numpy.ndarray
        ``(percent_k, percent_d)``, each float64 of the input length.

    Raises
    ------
    ConfigError
        If a window is not an integer >= 1 or the input lengths differ.

    Examples
    --------
    Bar 1: HH 3, LL 1 -> ``100 * (2 - 1) / 2 = 50``; bar 2: HH 4, LL 2 -> ``100 * (4 - 2) / 2
    = 100``; %D is their mean 75.

    >>> pk, pd_ = stochastic([2.0, 3.0, 4.0], [1.0, 2.0, 3.0], [1.5, 2.0, 4.0], k=2, d=2)
    >>> pk, pd_
    (array([ nan,  50., 100.]), array([nan, nan, 75.]))
    """
    h = as_float_array(high, "high")
    lo = as_float_array(low, "low")
    c = as_float_array(close, "close")
    check_same_length(high=h, low=lo, close=c)
    k = check_period(k, "k")
    d = check_period(d, "d")
    smooth_k = check_period(smooth_k, "smooth_k")
    raw = stochastic_raw_nb(h, lo, c, k)
    pct_k = raw if smooth_k == 1 else rolling_sum_nb(raw, smooth_k) / smooth_k
    pct_d = rolling_sum_nb(pct_k, d) / d
    return pct_k, pct_d
