"""Quality report of an OHLCV series: what could poison a backtest, counted and judged.

Checks (all vectorized):

* **gaps**: count, total missing bars, longest (see :func:`~tradeloop.data.gaps.find_gaps`);
* **duplicates** (repeated timestamps) and **unsorted** rows;
* **OHLC violations**: ``high < max(open, close)``, ``low > min(open, close)``, ``high < low``,
  non-positive prices; **invalid values**: NaN or infinite fields;
* **zero-volume** bars (synthetic bars excluded);
* **outliers** on log returns and on relative ranges ``(high - low) / close``: a rolling
  z-score and a rolling IQR fence, both over the *previous* ``window`` bars (the bar itself
  does not dilute its own statistics), returns across gaps excluded;
* **stale runs**: consecutive bars identical in all of OHLCV; **interpolated runs**: bars whose
  open, high, low and close all move by the same non-zero step, i.e. lie on a straight line
  (what a linear gap filler produces);
* **off-grid** timestamps, not on the timeframe's grid.

By default OHLC violations, invalid values, duplicates, unsorted rows, off-grid timestamps and
interpolated runs of 5+ bars fail the report; gaps, zero-volume bars, outliers and stale runs
fail only past the limits set in :class:`QualityThresholds`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tradeloop.core.timeframes import bucket_start, timeframe_ns
from tradeloop.data.gaps import Gaps, find_gaps
from tradeloop.data.loader import RawOhlcv

__all__ = ["QualityReport", "QualityThresholds", "check_quality", "run_lengths"]


@dataclass(frozen=True, slots=True)
class QualityThresholds:
    """Limits of :func:`check_quality` (None: report only) and detector settings."""

    max_gaps: int | None = None
    max_missing_bars: int | None = None
    max_gap_bars: int | None = None
    max_zero_volume: int | None = None
    max_outliers: int | None = None
    max_stale_bars: int | None = None
    interpolated_run: int = 5
    stale_run: int = 3
    fail_on_ohlc: bool = True
    fail_on_duplicates: bool = True
    fail_on_off_grid: bool = True
    outlier_window: int = 500
    zscore_limit: float = 8.0
    iqr_multiplier: float = 10.0


@dataclass(frozen=True)
class QualityReport:
    """Result of :func:`check_quality`; ``failures`` says which limits were exceeded."""

    source: str
    timeframe: str
    rows: int
    first_ns: int | None
    last_ns: int | None
    gaps: Gaps
    duplicates: int
    unsorted: int
    ohlc_violations: int
    invalid_values: int
    zero_volume: int
    zero_volume_ts: np.ndarray
    outliers: dict[str, int]
    outlier_rows: int
    stale_runs: int
    stale_bars: int
    interpolated_runs: int
    interpolated_bars: int
    longest_interpolated: int
    off_grid: int
    synthetic: int
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no limit is exceeded."""
        return not self.failures


def run_lengths(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(starts, lengths)`` of the runs of True in ``mask``.

    >>> s, n = run_lengths(np.array([0, 1, 1, 0, 1, 1, 1], dtype=bool))
    >>> s.tolist(), n.tolist()
    ([1, 4], [2, 3])
    """
    m = np.asarray(mask, dtype=np.int8)
    edges = np.diff(np.concatenate(([0], m, [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    return starts, ends - starts


def check_quality(
    raw: RawOhlcv, timeframe: str, thresholds: QualityThresholds | None = None
) -> QualityReport:
    """Check ``raw`` bars of ``timeframe`` and judge them against ``thresholds``.

    Parameters
    ----------
    raw
        Columns as read, in file order (see ``tradeloop.data.loader.read_unvalidated``).
    timeframe
        The bars' timeframe (grid for gaps and off-grid stamps).
    thresholds
        Limits; defaults fail only on OHLC violations, invalid values, duplicates, unsorted
        rows, off-grid stamps and interpolated runs of 5+ bars.

    Returns
    -------
    QualityReport
        Counts and the list of failures.
    """
    th = thresholds or QualityThresholds()
    step = timeframe_ns(timeframe)
    ts_raw = np.asarray(raw.ts, dtype=np.int64)
    n = int(ts_raw.shape[0])
    o, h, lo, c, v = (
        np.asarray(a, dtype=np.float64)
        for a in (raw.open, raw.high, raw.low, raw.close, raw.volume)
    )
    synthetic_raw = (
        np.zeros(n, dtype=bool) if raw.synthetic is None else np.asarray(raw.synthetic, dtype=bool)
    )

    diffs = np.diff(ts_raw)
    unsorted = int(np.count_nonzero(diffs < 0))
    order = np.argsort(ts_raw, kind="stable")
    ts_sorted = ts_raw[order]
    first = np.ones(n, dtype=bool)
    first[1:] = ts_sorted[1:] != ts_sorted[:-1]
    duplicates = int(n - np.count_nonzero(first))
    keep = order[first]
    ts = ts_raw[keep]

    finite = np.isfinite(o) & np.isfinite(h) & np.isfinite(lo) & np.isfinite(c) & np.isfinite(v)
    invalid_values = int(n - np.count_nonzero(finite))
    with np.errstate(invalid="ignore"):
        bad_ohlc = finite & (
            (h < np.maximum(o, c))
            | (lo > np.minimum(o, c))
            | (h < lo)
            | (np.minimum(np.minimum(o, h), np.minimum(lo, c)) <= 0)
            | (v < 0)
        )
    ohlc_violations = int(np.count_nonzero(bad_ohlc))
    anchor = int(bucket_start(0, timeframe))
    off_grid = int(np.count_nonzero((ts_raw - anchor) % step != 0))

    o, h, lo, c, v, synthetic = (a[keep] for a in (o, h, lo, c, v, synthetic_raw))
    gaps = find_gaps(ts, step)
    zero = (v == 0) & ~synthetic
    zero_volume = int(np.count_nonzero(zero))
    consecutive = np.zeros(ts.shape[0], dtype=bool)  # bar i directly follows bar i-1
    consecutive[1:] = np.diff(ts) == step
    real = ~synthetic

    outliers, outlier_rows = _outliers(o, h, lo, c, consecutive & real, th)
    stale_runs, stale_bars = _stale(o, h, lo, c, v, consecutive & real, th.stale_run)
    interp_runs, interp_bars, longest_interp = _interpolated(
        o, h, lo, c, consecutive & real, th.interpolated_run
    )

    failures: list[str] = []

    def over(name: str, value: int, limit: int | None) -> None:
        if limit is not None and value > limit:
            failures.append(f"{name} {value:,} > limit {limit:,}")

    if th.fail_on_ohlc:
        over("OHLC violations", ohlc_violations, 0)
        over("invalid (NaN/inf) rows", invalid_values, 0)
    if th.fail_on_duplicates:
        over("duplicate timestamps", duplicates, 0)
        over("unsorted rows", unsorted, 0)
    if th.fail_on_off_grid:
        over("off-grid timestamps", off_grid, 0)
    if th.interpolated_run > 0 and interp_runs:
        failures.append(
            f"straight-line interpolated runs of {th.interpolated_run}+ bars: {interp_runs:,} "
            f"({interp_bars:,} bars, longest {longest_interp})"
        )
    over("gaps", len(gaps), th.max_gaps)
    over("missing bars", gaps.total_missing, th.max_missing_bars)
    over("longest gap (bars)", gaps.longest, th.max_gap_bars)
    over("zero-volume bars", zero_volume, th.max_zero_volume)
    over("outlier bars", outlier_rows, th.max_outliers)
    over("stale bars", stale_bars, th.max_stale_bars)

    return QualityReport(
        source=raw.source,
        timeframe=timeframe,
        rows=n,
        first_ns=int(ts[0]) if ts.size else None,
        last_ns=int(ts[-1]) if ts.size else None,
        gaps=gaps,
        duplicates=duplicates,
        unsorted=unsorted,
        ohlc_violations=ohlc_violations,
        invalid_values=invalid_values,
        zero_volume=zero_volume,
        zero_volume_ts=ts[zero],
        outliers=outliers,
        outlier_rows=outlier_rows,
        stale_runs=stale_runs,
        stale_bars=stale_bars,
        interpolated_runs=interp_runs,
        interpolated_bars=interp_bars,
        longest_interpolated=longest_interp,
        off_grid=off_grid,
        synthetic=int(np.count_nonzero(synthetic_raw)),
        failures=failures,
    )


# ---------------------------------------------------------------------- detectors


def _outliers(
    o: np.ndarray,
    h: np.ndarray,
    lo: np.ndarray,
    c: np.ndarray,
    usable: np.ndarray,
    th: QualityThresholds,
) -> tuple[dict[str, int], int]:
    import pandas as pd

    n = c.shape[0]
    counts = {"zscore_returns": 0, "zscore_ranges": 0, "iqr_returns": 0, "iqr_ranges": 0}
    if n < 3:
        return counts, 0
    with np.errstate(divide="ignore", invalid="ignore"):
        ret = np.full(n, np.nan)
        ret[1:] = np.log(c[1:] / c[:-1])
        ret[~usable] = np.nan
        rng = (h - lo) / c
    rng[~np.isfinite(rng)] = np.nan
    ret[~np.isfinite(ret)] = np.nan
    window = max(10, th.outlier_window)
    min_periods = max(10, window // 5)
    flagged = np.zeros(n, dtype=bool)
    for name, values in (("returns", ret), ("ranges", rng)):
        series = pd.Series(values)
        past = series.shift(1).rolling(window, min_periods=min_periods)
        mean, std = past.mean().to_numpy(), past.std().to_numpy()
        q1, q3 = past.quantile(0.25).to_numpy(), past.quantile(0.75).to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.abs(values - mean) / std
            iqr = q3 - q1
            z_hit = (std > 0) & (z > th.zscore_limit)
            fence = th.iqr_multiplier * iqr
            iqr_hit = (iqr > 0) & ((values < q1 - fence) | (values > q3 + fence))
        z_hit &= np.isfinite(values)
        iqr_hit &= np.isfinite(values)
        counts[f"zscore_{name}"] = int(np.count_nonzero(z_hit))
        counts[f"iqr_{name}"] = int(np.count_nonzero(iqr_hit))
        flagged |= z_hit | iqr_hit
    return counts, int(np.count_nonzero(flagged))


def _stale(
    o: np.ndarray,
    h: np.ndarray,
    lo: np.ndarray,
    c: np.ndarray,
    v: np.ndarray,
    consecutive: np.ndarray,
    min_run: int,
) -> tuple[int, int]:
    if c.shape[0] < 2:
        return 0, 0
    same = np.zeros(c.shape[0], dtype=bool)
    same[1:] = (
        (o[1:] == o[:-1])
        & (h[1:] == h[:-1])
        & (lo[1:] == lo[:-1])
        & (c[1:] == c[:-1])
        & (v[1:] == v[:-1])
    )
    same &= consecutive
    _, lengths = run_lengths(same)
    bars = lengths + 1  # a run of k repeats spans k + 1 identical bars
    hit = bars >= max(2, min_run)
    return int(np.count_nonzero(hit)), int(bars[hit].sum())


def _interpolated(
    o: np.ndarray,
    h: np.ndarray,
    lo: np.ndarray,
    c: np.ndarray,
    consecutive: np.ndarray,
    min_bars: int,
) -> tuple[int, int, int]:
    n = c.shape[0]
    if n < 3 or min_bars <= 0:
        return 0, 0, 0
    scale = float(np.nanmax(np.abs(c))) if n else 1.0
    tol = 1e-9 * (scale if np.isfinite(scale) and scale > 0 else 1.0)
    d = [np.diff(x) for x in (o, h, lo, c)]
    # line[k]: bars k, k+1, k+2 are collinear in every field with a non-zero step
    line = np.ones(n - 2, dtype=bool)
    for dx in d:
        line &= np.abs(dx[1:] - dx[:-1]) <= tol
    line &= np.abs(d[3][1:]) > tol
    line &= consecutive[1:-1] & consecutive[2:]
    _, lengths = run_lengths(line)
    bars = lengths + 2
    hit = bars >= min_bars
    return int(np.count_nonzero(hit)), int(bars[hit].sum()), int(bars.max()) if bars.size else 0
