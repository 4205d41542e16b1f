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
* **off-grid** timestamps, not on the timeframe's grid (or, with session opens given, not on
  the grid anchored at each session's open: US-equity hourly bars at 9:30, 10:30...);
* **extreme values**: a bar whose high or low is ``spike_factor`` (10) times above or below
  the median close of its neighbours (the 5 bars before and after it): a price near 1e300, a
  100x spike, a mis-scaled tick.

By default OHLC violations, invalid values, duplicates, unsorted rows, off-grid timestamps,
extreme values and interpolated runs of 5+ bars fail the report; gaps, zero-volume bars,
outliers and stale runs fail only past the limits set in :class:`QualityThresholds`.

Every kind of problem found is also listed as a :class:`Finding` with *where* it is: the first
data rows (0-based, in file order, header excluded) and bar times, so a failed check can be
fixed, and a backtest refusing the data can say which bars it refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from tradeloop.core.errors import ConfigError
from tradeloop.core.timeframes import bucket_start, timeframe_ns
from tradeloop.data.gaps import Gaps, find_gaps, find_session_gaps
from tradeloop.data.loader import RawOhlcv

if TYPE_CHECKING:
    from tradeloop.data.sessions import Sessions

_DAY_NS = 86_400_000_000_000

__all__ = [
    "Finding",
    "QualityReport",
    "QualityThresholds",
    "check_quality",
    "run_lengths",
]

#: How many locations a :class:`Finding` keeps.
MAX_LOCATIONS = 20


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
    spike_factor: float = 10.0
    spike_neighbours: int = 5

    def __post_init__(self) -> None:
        for name, flag in (
            ("max_gaps", "--max-gaps"),
            ("max_missing_bars", "--max-missing"),
            ("max_gap_bars", "--max-gap-bars"),
            ("max_zero_volume", "--max-zero-volume"),
            ("max_outliers", "--max-outliers"),
            ("max_stale_bars", "--max-stale"),
        ):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigError(f"{name} ({flag}) must be 0 or more, got {value}")
        problems = [
            (self.interpolated_run == 0 or self.interpolated_run >= 3, "interpolated_run",
             "--interpolated-run", "0 (off) or 3 or more"),
            (self.stale_run >= 2, "stale_run", "", "2 or more"),
            (self.outlier_window >= 10, "outlier_window", "--window", "10 or more bars"),
            (self.zscore_limit > 0, "zscore_limit", "--zscore", "above 0"),
            (self.iqr_multiplier > 0, "iqr_multiplier", "--iqr", "above 0"),
            (self.spike_factor == 0 or self.spike_factor > 1, "spike_factor", "--spike-factor",
             "0 (off) or above 1"),
            (self.spike_neighbours >= 1, "spike_neighbours", "", "1 or more"),
        ]  # fmt: skip
        for ok, name, flag, wanted in problems:
            if not ok:
                shown = f"{name} ({flag})" if flag else name
                raise ConfigError(f"{shown} must be {wanted}, got {getattr(self, name)}")


@dataclass(frozen=True)
class Finding:
    """One kind of problem in a series and where it is.

    Attributes
    ----------
    check
        What was found (``"extreme values"``, ``"interpolated runs"``...).
    count
        How many bars (or runs, for run-shaped findings) have it.
    fails
        Whether it fails the check (False: reported only).
    rows
        The first :data:`MAX_LOCATIONS` data rows (0-based, file order, header excluded).
    times
        Their bar open times (UTC ns), aligned with ``rows``.
    where
        Human-readable locations (``"row 5000 (2018-03-01T08:00:00Z): high 1e+300 vs
        neighbours' median close 10,231"``), aligned with ``rows``.
    """

    check: str
    count: int
    fails: bool
    rows: tuple[int, ...] = ()
    times: tuple[int, ...] = ()
    where: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        """JSON-safe form (times as ISO-8601 text), for run records and reports."""
        return {
            "check": self.check,
            "count": self.count,
            "fails": self.fails,
            "rows": list(self.rows),
            "times": [_iso(t) for t in self.times],
            "where": list(self.where),
        }

    def summary(self, limit: int = 5) -> str:
        """One line: the check, its count and the first ``limit`` locations."""
        shown = "; ".join(self.where[:limit])
        more = self.count - min(limit, len(self.where))
        tail = f"; and {more:,} more" if more > 0 and shown else ""
        return f"{self.check}: {self.count:,}" + (f" — {shown}{tail}" if shown else "")


def _iso(ns: int) -> str:
    from tradeloop.core.time import to_iso

    return to_iso(int(ns)).replace("+00:00", "Z")


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
    extreme_bars: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no limit is exceeded."""
        return not self.failures

    @property
    def failing(self) -> list[Finding]:
        """The findings that fail the check, with their locations."""
        return [f for f in self.findings if f.fails]


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
    raw: RawOhlcv,
    timeframe: str,
    thresholds: QualityThresholds | None = None,
    *,
    sessions: Sessions | None = None,
    outliers: bool = True,
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
        rows, off-grid stamps, extreme values and interpolated runs of 5+ bars.
    sessions
        A market calendar's sessions (see ``--calendar``): the grid of intraday bars is
        anchored at the open of the session they fall in (09:30 New York for XNYS, whatever
        the DST offset), and only bars the market would trade count as missing (a night, a
        weekend or a holiday is no gap). None: the UTC epoch grid, every step a bar.
    outliers
        Compute the rolling outlier statistics (the slowest check; a backtest's data gate
        skips them when no ``max_outliers`` limit is set, since they only report).

    Returns
    -------
    QualityReport
        Counts, the findings with their locations, and the list of failures.
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
    findings: list[Finding] = []
    # the file's data row of each row here (a newest-first file reversed, rows dropped
    # outside a calendar's sessions or by --repair): locations name the file's rows
    labels = None if raw.file_rows is None else np.asarray(raw.file_rows, dtype=np.int64)

    def fr(r: int | np.integer) -> int:
        return int(labels[r]) if labels is not None else int(r)

    def found(
        check: str, rows: np.ndarray, fails: bool, describe: Any = None, count: int | None = None
    ) -> None:
        rows = np.asarray(rows, dtype=np.int64)
        total = int(rows.shape[0]) if count is None else count
        if total == 0:
            return
        first = rows[:MAX_LOCATIONS]
        where = tuple(
            f"row {fr(r):,} ({_iso(int(ts_raw[r]))})"
            + (f": {describe(int(r))}" if describe else "")
            for r in first
        )
        findings.append(
            Finding(
                check,
                total,
                fails,
                tuple(fr(r) for r in first),
                tuple(int(ts_raw[r]) for r in first),
                where,
            )
        )

    diffs = np.diff(ts_raw)
    backwards = np.flatnonzero(diffs < 0) + 1
    unsorted = int(backwards.shape[0])
    in_order = unsorted == 0 and not bool(np.any(diffs == 0))
    if in_order:  # the usual case: no sort, no copies
        order = np.arange(n)
        first = np.ones(n, dtype=bool)
        duplicates = 0
        keep = order
        ts = ts_raw
    else:
        order = np.argsort(ts_raw, kind="stable")
        ts_sorted = ts_raw[order]
        first = np.ones(n, dtype=bool)
        first[1:] = ts_sorted[1:] != ts_sorted[:-1]
        duplicates = int(n - np.count_nonzero(first))
        keep = order[first]  # file row of each distinct bar, in time order
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
    off_grid_mask = _off_grid(ts_raw, timeframe, step, None if sessions is None else sessions.opens)
    off_grid = int(np.count_nonzero(off_grid_mask))

    def ohlcv_text(r: int) -> str:
        return f"o={o[r]:.10g} h={h[r]:.10g} l={lo[r]:.10g} c={c[r]:.10g} v={v[r]:.10g}"

    found("OHLC violations", np.flatnonzero(bad_ohlc), th.fail_on_ohlc, ohlcv_text)
    found("invalid (NaN/inf) values", np.flatnonzero(~finite), th.fail_on_ohlc, ohlcv_text)
    found(
        "duplicate timestamps", np.sort(order[~first]), th.fail_on_duplicates, lambda r: "repeated"
    )
    found(
        "unsorted rows",
        backwards,
        th.fail_on_duplicates,
        lambda r: f"earlier than row {r - 1:,} ({_iso(int(ts_raw[r - 1]))})",
    )
    found("off-grid timestamps", np.flatnonzero(off_grid_mask), th.fail_on_off_grid)

    if not in_order:
        o, h, lo, c, v = (a[keep] for a in (o, h, lo, c, v))
    synthetic = synthetic_raw if in_order else synthetic_raw[keep]
    if sessions is None:
        gaps = find_gaps(ts, step)
    else:
        gaps = find_session_gaps(ts, step, sessions.opens, sessions.closes, sessions.dates)
    zero = (v == 0) & ~synthetic & raw.has_volume  # no volume at all: nothing to report
    zero_volume = int(np.count_nonzero(zero))
    consecutive = np.zeros(ts.shape[0], dtype=bool)  # bar i directly follows bar i-1
    consecutive[1:] = np.diff(ts) == step
    real = ~synthetic

    extreme, reference = _extreme(o, h, lo, c, th)
    extreme_bars = int(np.count_nonzero(extreme))
    extreme_at = np.flatnonzero(extreme)
    ref_by_row = dict(
        zip(
            keep[extreme_at[:MAX_LOCATIONS]].tolist(),
            reference[extreme_at[:MAX_LOCATIONS]].tolist(),
            strict=True,
        )
    )
    found(
        "extreme values",
        keep[extreme_at],
        th.spike_factor > 0,
        lambda r: (
            f"high {raw.high[r]:.6g}, low {raw.low[r]:.6g} vs neighbours' median close "
            f"{ref_by_row[r]:.6g}"
        ),
    )
    if outliers or th.max_outliers is not None:
        outlier_counts, outlier_mask = _outliers(o, h, lo, c, consecutive & real, th)
    else:
        outlier_counts, outlier_mask = {}, np.zeros(ts.shape[0], dtype=bool)
    outlier_rows = int(np.count_nonzero(outlier_mask))
    found(
        "outlier bars",
        keep[np.flatnonzero(outlier_mask)],
        th.max_outliers is not None and outlier_rows > th.max_outliers,
    )
    stale_runs, stale_bars, stale_starts, stale_lengths = _stale(
        o, h, lo, c, v, consecutive & real, th.stale_run
    )
    interp_runs, interp_bars, longest_interp, interp_starts, interp_lengths = _interpolated(
        o, h, lo, c, consecutive & real, th.interpolated_run
    )

    def runs(check: str, starts: np.ndarray, lengths: np.ndarray, fails: bool) -> None:
        if starts.size == 0:
            return
        shown = starts[:MAX_LOCATIONS]
        where = tuple(
            f"rows {fr(keep[s]):,}-{fr(keep[s + k - 1]):,} "
            f"({_iso(int(ts[s]))} → {_iso(int(ts[s + k - 1]))}, {int(k)} bars)"
            for s, k in zip(shown, lengths[:MAX_LOCATIONS], strict=True)
        )
        findings.append(
            Finding(
                check,
                int(starts.shape[0]),
                fails,
                tuple(fr(keep[s]) for s in shown),
                tuple(int(ts[s]) for s in shown),
                where,
            )
        )

    runs(
        f"straight-line interpolated runs ({th.interpolated_run}+ bars)",
        interp_starts,
        interp_lengths,
        th.interpolated_run > 0,
    )
    runs(
        f"stale runs ({th.stale_run}+ identical bars)",
        stale_starts,
        stale_lengths,
        th.max_stale_bars is not None and stale_bars > th.max_stale_bars,
    )
    found(
        "zero-volume bars",
        keep[np.flatnonzero(zero)],
        th.max_zero_volume is not None and zero_volume > th.max_zero_volume,
    )
    if len(gaps):
        top = np.argsort(-gaps.missing, kind="stable")[:MAX_LOCATIONS]
        gap_fails = any(
            limit is not None and value > limit
            for value, limit in (
                (len(gaps), th.max_gaps),
                (gaps.total_missing, th.max_missing_bars),
                (gaps.longest, th.max_gap_bars),
            )
        )
        before_rows = keep[np.searchsorted(ts, gaps.before_ns[top])]
        findings.append(
            Finding(
                "gaps",
                len(gaps),
                gap_fails,
                tuple(fr(r) for r in before_rows),
                tuple(int(t) for t in gaps.before_ns[top]),
                tuple(
                    f"after row {fr(r):,} ({_iso(int(gaps.before_ns[i]))}): "
                    f"{int(gaps.missing[i]):,} missing bars until {_iso(int(gaps.after_ns[i]))}"
                    for r, i in zip(before_rows, top, strict=True)
                ),
            )
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
    if th.spike_factor > 0:
        over(f"extreme values ({th.spike_factor:g}x the neighbours)", extreme_bars, 0)
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
        outliers=outlier_counts,
        outlier_rows=outlier_rows,
        stale_runs=stale_runs,
        stale_bars=stale_bars,
        interpolated_runs=interp_runs,
        interpolated_bars=interp_bars,
        longest_interpolated=longest_interp,
        off_grid=off_grid,
        synthetic=int(np.count_nonzero(synthetic_raw)),
        failures=failures,
        extreme_bars=extreme_bars,
        findings=findings,
    )


def _off_grid(
    ts: np.ndarray, timeframe: str, step: int, session_opens: np.ndarray | None
) -> np.ndarray:
    """Mask of stamps off the timeframe grid: the clock's (epoch-anchored) grid, or with
    ``session_opens`` also each session's own grid from its open (an XNYS hour bar may start
    at 14:30 or, as clock-hour buckets do, at 14:00). Daily and longer bars are on the grid
    of their own phase: whole days apart from the weekday most of them share (a week's bars
    may be stamped Monday or Sunday), at the time of day most share or an hour either side
    (daily bars stamped at a local midnight, 04:00 or 05:00 UTC with daylight saving)."""
    if step >= _DAY_NS and ts.size:
        # daily and longer bars: on the grid when they are whole days apart from the bars'
        # own phase (a vendor's weekly bars stamped Sunday, daily bars stamped at 05:00 UTC)
        days, clock = np.divmod(ts, _DAY_NS)
        every = step // _DAY_NS
        phase = int(np.bincount(days % every).argmax())
        # the time of day most bars share, or an hour either side (a local midnight in UTC
        # moves with daylight saving time)
        times, counts = np.unique(clock, return_counts=True)
        usual = int(times[counts.argmax()])
        hour = 3_600_000_000_000
        same_time = (clock == usual) | (np.abs(clock - usual) == hour)
        return np.asarray(((days - phase) % every != 0) | ~same_time)
    anchor = int(bucket_start(0, timeframe))
    off_clock = np.asarray((ts - anchor) % step != 0)
    if session_opens is None or step >= _DAY_NS or ts.size == 0:
        return off_clock
    opens = np.asarray(session_opens, dtype=np.int64)
    i = np.searchsorted(opens, ts, side="right") - 1
    session_anchor = np.where(i >= 0, opens[np.clip(i, 0, None)], 0)
    return off_clock & np.asarray((ts - session_anchor) % step != 0)


# ---------------------------------------------------------------------- detectors


def _outliers(
    o: np.ndarray,
    h: np.ndarray,
    lo: np.ndarray,
    c: np.ndarray,
    usable: np.ndarray,
    th: QualityThresholds,
) -> tuple[dict[str, int], np.ndarray]:
    import pandas as pd

    n = c.shape[0]
    counts = {"zscore_returns": 0, "zscore_ranges": 0, "iqr_returns": 0, "iqr_ranges": 0}
    if n < 3:
        return counts, np.zeros(n, dtype=bool)
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
    return counts, flagged


def _extreme(
    o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, th: QualityThresholds
) -> tuple[np.ndarray, np.ndarray]:
    """Bars whose high/low is ``spike_factor`` x above/below their neighbours' median close.

    The reference is the median close of the ``spike_neighbours`` bars on each side (the bar
    itself excluded, so a run of up to ``spike_neighbours`` bad bars cannot hide itself).
    A longer run of bad bars fills half a bar's neighbours and moves that median: the bars
    near one are also measured against the median of four times as many neighbours, and a
    bar is extreme only if it is off that wider median too; where the two medians disagree
    by more than the square root of the factor, the wider one decides (the bad run's own
    bars are named, not the good bars beside it). Returns ``(mask, reference)``.
    """
    n = c.shape[0]
    factor = th.spike_factor
    if n < 2 or factor <= 0:
        return np.zeros(n, dtype=bool), np.full(n, np.nan)
    k = max(1, th.spike_neighbours)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        clean = np.where(np.isfinite(c) & (c > 0), c, np.nan)
        top = np.fmax(np.fmax(o, h), np.fmax(lo, c))
        bottom = np.fmin(np.fmin(o, h), np.fmin(lo, c))
        # cheap pre-filter: a bar's close can only be F x off the median of its 2k neighbours
        # if about half of them are, and some of those are within ceil((k + 1) / 2) bars, so
        # the close moves by F ** (1 / that) in one step nearby; a high/low spike widens the
        # bar's own range; a missing value counts too. Only bars near one get the median.
        half = np.log(factor) / ((k + 2) // 2)
        logc = np.log(clean)
        jumps = np.flatnonzero(~(np.abs(np.diff(logc)) <= half))  # NaN counts as a jump
        wide = np.flatnonzero(~(np.log(top / bottom) <= half))
    seeds = np.unique(np.concatenate([jumps, jumps + 1, wide]))
    reference = np.full(n, np.nan)
    if seeds.size == 0:
        return np.zeros(n, dtype=bool), reference
    wide = 4 * k
    cand = np.unique(np.clip(seeds[:, None] + np.arange(-k, k + 1)[None, :], 0, n - 1).ravel())
    near = _neighbour_median(clean, cand, k)
    far = _neighbour_median(clean, cand, wide)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        t, b = top[cand], bottom[cand]
        off_near = (t > near * factor) | ((b > 0) & (b * factor < near))
        off_far = (t > far * factor) | ((b > 0) & (b * factor < far))
        ratio = near / far
        disagree = ~((ratio <= np.sqrt(factor)) & (ratio * np.sqrt(factor) >= 1.0))
    disagree &= np.isfinite(far)
    hit_cand = np.where(disagree, off_far, off_near & (off_far | ~np.isfinite(far)))
    reference[cand] = np.where(disagree, far, near)
    hit = np.zeros(n, dtype=bool)
    hit[cand] = hit_cand & np.isfinite(reference[cand])
    return hit, reference


def _neighbour_median(clean: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """The median of the ``k`` closes on each side of each of ``rows`` (the row itself and
    missing values left out; NaN when none)."""
    offsets = np.concatenate([np.arange(-k, 0), np.arange(1, k + 1)])
    padded = np.concatenate([np.full(k, np.nan), clean, np.full(k, np.nan)])
    around = np.sort(padded[rows[:, None] + k + offsets[None, :]], axis=1)  # NaN sorts last
    valid = np.count_nonzero(~np.isnan(around), axis=1)
    index = np.arange(rows.size)
    lo_i = np.clip((valid - 1) // 2, 0, None)
    hi_i = np.clip(valid // 2, 0, None)
    return np.where(valid > 0, (around[index, lo_i] + around[index, hi_i]) / 2.0, np.nan)


def _stale(
    o: np.ndarray,
    h: np.ndarray,
    lo: np.ndarray,
    c: np.ndarray,
    v: np.ndarray,
    consecutive: np.ndarray,
    min_run: int,
) -> tuple[int, int, np.ndarray, np.ndarray]:
    empty = np.zeros(0, dtype=np.int64)
    if c.shape[0] < 2:
        return 0, 0, empty, empty
    same = np.zeros(c.shape[0], dtype=bool)
    same[1:] = (
        (o[1:] == o[:-1])
        & (h[1:] == h[:-1])
        & (lo[1:] == lo[:-1])
        & (c[1:] == c[:-1])
        & (v[1:] == v[:-1])
    )
    same &= consecutive
    starts, lengths = run_lengths(same)
    bars = lengths + 1  # a run of k repeats spans k + 1 identical bars
    hit = bars >= max(2, min_run)
    return int(np.count_nonzero(hit)), int(bars[hit].sum()), starts[hit] - 1, bars[hit]


def _interpolated(
    o: np.ndarray,
    h: np.ndarray,
    lo: np.ndarray,
    c: np.ndarray,
    consecutive: np.ndarray,
    min_bars: int,
) -> tuple[int, int, int, np.ndarray, np.ndarray]:
    n = c.shape[0]
    empty = np.zeros(0, dtype=np.int64)
    if n < 3 or min_bars <= 0:
        return 0, 0, 0, empty, empty
    from tradeloop.core.precision import price_decimals

    scale = float(np.nanmax(np.abs(c))) if n else 1.0
    tol = 1e-9 * (scale if np.isfinite(scale) and scale > 0 else 1.0)
    # a straight line rounded to the prices' tick (a fill written at 2 or 8 decimals) bends
    # by up to a tick between neighbours: allow one tick, and ask for steps above two ticks
    # (a market creeping by a tick a bar is not a fill)
    decimals = price_decimals(c)
    tick = 10.0**-decimals if decimals is not None else 0.0
    bend = max(tol, 1.0001 * tick)
    d = [np.diff(x) for x in (o, h, lo, c)]
    # line[k]: bars k, k+1, k+2 are collinear in every field with a non-zero step
    line = np.ones(n - 2, dtype=bool)
    for dx in d:
        line &= np.abs(dx[1:] - dx[:-1]) <= bend
    line &= np.abs(d[3][1:]) > max(tol, 2.0001 * tick)
    line &= consecutive[1:-1] & consecutive[2:]
    starts, lengths = run_lengths(line)
    bars = lengths + 2
    hit = bars >= min_bars
    longest = int(bars.max()) if bars.size else 0
    return int(np.count_nonzero(hit)), int(bars[hit].sum()), longest, starts[hit], bars[hit]
