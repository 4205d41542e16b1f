"""Aggregate bars to a higher timeframe on exchange (UTC-epoch, Monday-week) boundaries."""

from __future__ import annotations

import numpy as np

from tradeloop.core.bar import BarArrays
from tradeloop.core.errors import ConfigError, DataError
from tradeloop.core.timeframes import bucket_start, timeframe_ns

__all__ = ["resample"]


def resample(
    bars: BarArrays,
    timeframe: str,
    *,
    drop_partial: bool = True,
    session_closes: np.ndarray | None = None,
) -> BarArrays:
    """Aggregate ``bars`` into ``timeframe`` bars stamped by bucket open time.

    Buckets come from :func:`tradeloop.core.timeframes.bucket_start` (aligned to the UTC epoch;
    weeks start Monday 00:00 UTC). Each output bar takes the first open, max high, min low,
    last close and summed volume of the source bars in its bucket; ``open_interest`` and the
    cumulative ``cvd`` take the last value. Buckets without any source bar produce no row (no
    dense grid is assumed); interior buckets with only some source bars are still output.

    Parameters
    ----------
    bars
        Source bars, strictly increasing in time, each aligned to its own timeframe's grid.
    timeframe
        Target timeframe, a whole multiple of ``bars.timeframe`` (e.g. ``"4h"`` from ``"1h"``).
    drop_partial
        Drop the last bucket when the source data ends before that bucket closes, i.e. when
        ``last ts + source step < bucket open + target step``.
    session_closes
        Sorted UTC ns closes of a market calendar's sessions (``--calendar``): the last bucket
        is complete once its last session has closed (a daily bar of XNYS minutes at 21:00
        UTC, not at midnight).

    Returns
    -------
    BarArrays
        New bars with the same symbol and ``timeframe`` set to the target.

    Raises
    ------
    ConfigError
        If either timeframe is unknown or the target is not a whole multiple of the source.
    DataError
        If the source timestamps are not strictly increasing or a source bar is not aligned to
        the source timeframe's grid (it would straddle two target buckets).

    Examples
    --------
    >>> m = 60_000_000_000
    >>> ts = np.arange(10) * m
    >>> b = BarArrays("X", "1m", ts, ts + 1.0, ts + 2.0, ts + 0.5, ts + 1.5, np.ones(10))
    >>> r = resample(b, "5m")
    >>> r.ts.tolist(), r.volume.tolist()
    ([0, 300000000000], [5.0, 5.0])
    """
    src_step = timeframe_ns(bars.timeframe)
    dst_step = timeframe_ns(timeframe)
    if dst_step % src_step:
        raise ConfigError(
            f"cannot resample {bars.timeframe} bars to {timeframe}: "
            f"{timeframe} is not a whole multiple of {bars.timeframe}"
        )
    n = len(bars)
    ts = bars.ts
    if n == 0:
        return _with(bars, timeframe, ts, None)
    if n > 1:
        step = np.diff(ts)
        if not (step > 0).all():
            i = int(np.argmax(step <= 0)) + 1
            raise DataError(
                "timestamps must be strictly increasing to resample",
                file=bars.symbol,
                row=i,
                field="ts",
            )
    anchor = int(bucket_start(0, timeframe))  # 0 for m/h/d, Monday 1970-01-05 for weeks
    off_grid = (ts - anchor) % src_step != 0
    if off_grid.any():
        i = int(np.argmax(off_grid))
        raise DataError(
            f"bar is not aligned to the {bars.timeframe} grid, so it would straddle "
            f"{timeframe} buckets",
            file=bars.symbol,
            row=i,
            field="ts",
        )
    if dst_step == src_step:
        return bars

    keys = np.asarray(bucket_start(ts, timeframe), dtype=np.int64)
    new_bucket = np.empty(n, dtype=bool)
    new_bucket[0] = True
    np.not_equal(keys[1:], keys[:-1], out=new_bucket[1:])
    starts = np.flatnonzero(new_bucket)
    bucket_end = int(keys[-1]) + dst_step
    if session_closes is not None and len(session_closes):
        # the bucket closes with the last session close inside it
        j = int(np.searchsorted(session_closes, bucket_end, side="right")) - 1
        if j >= 0 and int(session_closes[j]) > int(keys[-1]):
            bucket_end = int(session_closes[j])
    if drop_partial and int(ts[-1]) + src_step < bucket_end:
        # The last bucket has not closed by the end of the data: drop it and its source bars.
        n = int(starts[-1])
        starts = starts[:-1]
    if starts.shape[0] == 0:
        return _with(bars, timeframe, ts[:0], None)
    last = np.empty_like(starts)
    last[:-1] = starts[1:] - 1
    last[-1] = n - 1
    return _with(bars, timeframe, keys[starts], (starts, last, n))


def _with(
    bars: BarArrays,
    timeframe: str,
    out_ts: np.ndarray,
    groups: tuple[np.ndarray, np.ndarray, int] | None,
) -> BarArrays:
    # Build the output BarArrays; groups = (first index, last index, rows used) per bucket.
    if groups is None:
        empty = np.empty(0, dtype=np.float64)
        return BarArrays(
            bars.symbol,
            timeframe,
            np.asarray(out_ts, dtype=np.int64),
            empty,
            empty,
            empty,
            empty,
            empty,
            None if bars.open_interest is None else empty,
            None if bars.cvd is None else empty,
        )
    starts, last, n = groups
    return BarArrays(
        bars.symbol,
        timeframe,
        out_ts,
        bars.open[starts],
        np.maximum.reduceat(bars.high[:n], starts),
        np.minimum.reduceat(bars.low[:n], starts),
        bars.close[last],
        np.add.reduceat(bars.volume[:n], starts),
        None if bars.open_interest is None else bars.open_interest[last],
        None if bars.cvd is None else bars.cvd[last],
    )
