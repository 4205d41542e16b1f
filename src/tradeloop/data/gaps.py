"""Missing bars: find them, and optionally fill them forward as ``synthetic`` bars.

Gap policy: gaps are reported, never filled silently. Filling is explicit
(``tradeloop data fetch --fill forward`` or ``load_cached(..., fill="forward")``): each
missing bar becomes a flat bar at the previous close with zero volume, and a boolean
``synthetic`` column (True for filled bars) is stored with the data (``LoadedBars.synthetic``
in memory) so the engine can refuse to trade on them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Gaps", "fill_forward", "find_gaps", "find_session_gaps"]

_DAY_NS = 86_400_000_000_000


@dataclass(frozen=True, slots=True)
class Gaps:
    """Gaps between consecutive bars.

    Attributes
    ----------
    before_ns
        Open time of the last bar before each gap.
    after_ns
        Open time of the first bar after each gap.
    missing
        Number of bars missing in each gap.
    """

    before_ns: np.ndarray
    after_ns: np.ndarray
    missing: np.ndarray

    def __len__(self) -> int:
        return int(self.missing.shape[0])

    @property
    def total_missing(self) -> int:
        """Sum of missing bars over all gaps."""
        return int(self.missing.sum())

    @property
    def longest(self) -> int:
        """Missing bars of the longest gap (0 when there is none)."""
        return int(self.missing.max()) if self.missing.size else 0

    @property
    def longest_span_ns(self) -> int:
        """Time between the bars around the longest gap (34 h for 33 missing 1h bars)."""
        return int((self.after_ns - self.before_ns).max()) if self.missing.size else 0


def find_gaps(ts: np.ndarray, step_ns: int) -> Gaps:
    """Return the gaps of sorted bar open times ``ts`` on a grid of ``step_ns``.

    A gap is a step between consecutive bars longer than one bar; its size is the number of
    whole bars that fit between them (``(diff - 1) // step``, so off-grid stamps count only
    complete missing bars). Unsorted or repeated stamps are ignored here (the quality report
    counts them separately).

    >>> m = 60_000_000_000
    >>> g = find_gaps(np.array([0, m, 4 * m, 5 * m, 9 * m]), m)
    >>> g.missing.tolist(), g.total_missing, g.longest
    ([2, 3], 5, 3)
    """
    ts = np.asarray(ts, dtype=np.int64)
    if ts.shape[0] < 2:
        empty = np.empty(0, dtype=np.int64)
        return Gaps(empty, empty, empty)
    diff = np.diff(ts)
    missing = np.where(diff > step_ns, (diff - 1) // step_ns, 0)
    idx = np.flatnonzero(missing > 0)
    return Gaps(ts[idx], ts[idx + 1], missing[idx].astype(np.int64))


def find_session_gaps(
    ts: np.ndarray,
    step_ns: int,
    opens: np.ndarray,
    closes: np.ndarray,
    dates: np.ndarray,
) -> Gaps:
    """The gaps of sorted bar open times ``ts`` counting only bars a market would trade.

    A night, a weekend or a holiday between two bars is no gap: intraday bars miss the bars
    that fit in the session time between them (``opens[i] <= t < closes[i]``, sorted UTC ns
    intervals), daily bars the session ``dates`` (UTC midnights) strictly between their days.

    >>> m, h = 60_000_000_000, 3_600_000_000_000
    >>> opens, closes = np.array([0, 24 * h]), np.array([6 * h, 30 * h])  # two 6-hour sessions
    >>> g = find_session_gaps(np.array([0, 5 * h, 24 * h, 27 * h]), h, opens, closes, opens)
    >>> g.missing.tolist()  # 1h..4h of the first session, 25h and 26h of the second
    [4, 2]
    """
    ts = np.asarray(ts, dtype=np.int64)
    if ts.shape[0] < 2:
        empty = np.empty(0, dtype=np.int64)
        return Gaps(empty, empty, empty)
    before, after = ts[:-1], ts[1:]
    if step_ns >= _DAY_NS:
        days = np.asarray(dates, dtype=np.int64)
        missing = np.searchsorted(days, after - after % _DAY_NS, side="left") - np.searchsorted(
            days, before - before % _DAY_NS, side="right"
        )
    else:
        starts = np.asarray(opens, dtype=np.int64)
        lengths = np.asarray(closes, dtype=np.int64) - starts
        done = np.concatenate(([0], np.cumsum(lengths)))  # session time before session i

        def session_time(t: np.ndarray) -> np.ndarray:
            """Session time from the first open up to ``t``."""
            i = np.searchsorted(starts, t, side="right") - 1
            k = np.clip(i, 0, None)
            within = np.clip(t - starts[k], 0, lengths[k])
            return np.where(i >= 0, done[k] + within, 0)

        span = session_time(after) - session_time(np.minimum(before + step_ns, after))
        missing = span // step_ns
    missing = np.maximum(np.where(after > before, missing, 0), 0)
    idx = np.flatnonzero(missing > 0)
    return Gaps(before[idx], after[idx], missing[idx].astype(np.int64))


def fill_forward(
    ts: np.ndarray,
    columns: dict[str, np.ndarray],
    step_ns: int,
) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """Insert a flat bar at the previous close for every missing bar between the first and last.

    Parameters
    ----------
    ts
        Sorted, unique bar open times on the ``step_ns`` grid.
    columns
        ``open``, ``high``, ``low``, ``close``, ``volume`` and optionally other float columns
        (carried forward from the previous bar; ``volume`` becomes 0).
    step_ns
        Bar duration.

    Returns
    -------
    tuple
        ``(ts, columns, synthetic)`` where ``synthetic`` is True for inserted bars. When
        ``columns`` has a ``synthetic`` entry, bars already marked stay marked.

    >>> m = 60
    >>> cols = {k: np.array([1.0, 2.0]) for k in ("open", "high", "low", "close", "volume")}
    >>> t, c, s = fill_forward(np.array([0, 3 * m]), cols, m)
    >>> t.tolist(), c["close"].tolist(), c["volume"].tolist(), s.tolist()
    ([0, 60, 120, 180], [1.0, 1.0, 1.0, 2.0], [1.0, 0.0, 0.0, 2.0], [False, True, True, False])
    """
    ts = np.asarray(ts, dtype=np.int64)
    prior = columns.get("synthetic")
    prior_mask = (
        np.zeros(ts.shape[0], dtype=bool) if prior is None else np.asarray(prior, dtype=bool)
    )
    if ts.shape[0] < 2:
        return ts, {k: v for k, v in columns.items() if k != "synthetic"}, prior_mask
    slots = (ts - ts[0]) // step_ns
    n_out = int(slots[-1]) + 1
    out_ts = ts[0] + np.arange(n_out, dtype=np.int64) * step_ns
    source = np.zeros(n_out, dtype=np.int64)
    present = np.zeros(n_out, dtype=bool)
    present[slots] = True
    source[slots] = np.arange(ts.shape[0])
    source = np.maximum.accumulate(np.where(present, source, 0))
    synthetic = ~present
    synthetic[slots] = prior_mask
    out: dict[str, np.ndarray] = {}
    close = np.asarray(columns["close"], dtype=np.float64)[source]
    for name, values in columns.items():
        if name == "synthetic":
            continue
        arr = np.asarray(values)[source]
        if name in ("open", "high", "low"):
            arr = np.where(present, arr, close)
        elif name == "volume":
            arr = np.where(present, arr, 0.0)
        out[name] = arr
    return out_ts, out, synthetic
