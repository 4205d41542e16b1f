"""Volume-weighted average price: cumulative, rolling-window and session-reset."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from tradeloop.core.errors import ConfigError
from tradeloop.core.timeframes import bucket_start
from tradeloop.indicators._nb import (
    as_float_array,
    check_period,
    check_same_length,
    cumulative_vwap_nb,
    rolling_sum_nb,
)

__all__ = ["session_vwap", "vwap"]


def _typical_pv(
    high: ArrayLike, low: ArrayLike, close: ArrayLike, volume: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    h = as_float_array(high, "high")
    lo = as_float_array(low, "low")
    c = as_float_array(close, "close")
    v = as_float_array(volume, "volume")
    check_same_length(high=h, low=lo, close=c, volume=v)
    return (h + lo + c) / 3.0 * v, v


def vwap(
    high: ArrayLike,
    low: ArrayLike,
    close: ArrayLike,
    volume: ArrayLike,
    window: int | None = None,
) -> np.ndarray:
    """Return the volume-weighted average of the typical price ``(high + low + close) / 3``.

    With ``window=None`` the average is cumulative from the first bar:
    ``sum(tp * volume) / sum(volume)`` over ``[0, i]``. With an integer ``window`` it is taken
    over the last ``window`` bars only (NaN for the first ``window - 1``). Whenever the summed
    volume is 0 (no volume traded yet, or a zero-volume window) the result is NaN, never a
    division by zero; the last value is not carried forward. Running sums are compensated, so
    long series do not drift.

    Parameters
    ----------
    high, low, close
        Bar prices, all of the same length.
    volume
        Bar volumes, same length.
    window
        Rolling window length, an integer >= 1, or None for the cumulative VWAP.

    Returns
    -------
    numpy.ndarray
        float64 array of the input length.

    Raises
    ------
    ConfigError
        If ``window`` is not None or an integer >= 1, or the input lengths differ.

    Examples
    --------
    Typical prices 2 and 5, volumes 1 and 3: ``(2*1 + 5*3) / 4 = 4.25``. The zero-volume
    first bar has no VWAP yet.

    >>> vwap([3.0, 3.0, 6.0], [1.0, 1.0, 4.0], [2.0, 2.0, 5.0], [0.0, 1.0, 3.0])
    array([ nan, 2.  , 4.25])
    >>> vwap([3.0, 3.0, 6.0], [1.0, 1.0, 4.0], [2.0, 2.0, 5.0], [0.0, 1.0, 3.0], window=1)
    array([nan,  2.,  5.])
    """
    pv, v = _typical_pv(high, low, close, volume)
    if window is None:
        return cumulative_vwap_nb(pv, v, np.zeros(len(v), dtype=np.bool_))
    window = check_period(window, "window")
    num = rolling_sum_nb(pv, window)
    den = rolling_sum_nb(v, window)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den != 0.0, num / den, np.nan)


def session_vwap(
    high: ArrayLike,
    low: ArrayLike,
    close: ArrayLike,
    volume: ArrayLike,
    ts_ns: ArrayLike,
    period: str = "1d",
) -> np.ndarray:
    """Return the cumulative VWAP restarted at every ``period`` boundary (e.g. daily at 00:00 UTC).

    Bars are grouped by the UTC-epoch-aligned ``period`` bucket of their timestamp (weekly
    buckets start on Monday, see :func:`tradeloop.core.timeframes.bucket_start`); the sums
    restart whenever a bar's bucket differs from the previous bar's. Within a session this is
    :func:`vwap` with ``window=None``, including NaN while the session has no volume.

    Parameters
    ----------
    high, low, close
        Bar prices, all of the same length.
    volume
        Bar volumes, same length.
    ts_ns
        Bar open times as UTC int64 nanoseconds since the epoch (``datetime64[ns]`` is
        accepted too), same length.
    period
        Session length as a timeframe string such as ``"1d"``, ``"4h"`` or ``"1w"``.

    Returns
    -------
    numpy.ndarray
        float64 array of the input length.

    Raises
    ------
    ConfigError
        If ``period`` is not a valid timeframe, ``ts_ns`` is not an integer array, or the
        input lengths differ.

    Examples
    --------
    Two bars on day 0 and one on day 1 (``86_400e9`` ns): the third bar starts a new session.

    >>> day = 86_400 * 10**9
    >>> session_vwap([2.0, 4.0, 9.0], [2.0, 4.0, 9.0], [2.0, 4.0, 9.0], [1.0, 1.0, 2.0],
    ...              [0, 3_600 * 10**9, day])
    array([2., 3., 9.])
    """
    pv, v = _typical_pv(high, low, close, volume)
    ts = np.asarray(ts_ns)
    if np.issubdtype(ts.dtype, np.datetime64):
        ts = ts.astype("datetime64[ns]").view(np.int64)
    if ts.ndim != 1 or not np.issubdtype(ts.dtype, np.integer):
        raise ConfigError(
            f"ts_ns must be a 1-D int64 nanosecond array, got dtype {ts.dtype} and shape {ts.shape}"
        )
    ts = ts.astype(np.int64, copy=False)
    check_same_length(volume=v, ts_ns=ts)
    if not isinstance(period, str):
        raise ConfigError(f"period must be a timeframe string like '1d', got {period!r}")
    buckets = np.asarray(bucket_start(ts, period))
    reset = np.empty(len(ts), dtype=np.bool_)
    if len(ts):
        reset[0] = True
        reset[1:] = buckets[1:] != buckets[:-1]
    return cumulative_vwap_nb(pv, v, reset)
