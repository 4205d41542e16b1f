"""``AnalyticsStore``: signal feedback and adaptive weight versions in DuckDB.

All SQL of the signal loop lives here. Rows are plain mappings so the store depends on no
message model; ``signal_feedback`` is keyed on ``(signal_id, source)`` and inserts are
idempotent (``INSERT OR IGNORE``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from tradeloop.store.migrations import migrate

__all__ = ["FEEDBACK_COLUMNS", "AnalyticsStore", "WeightVersion"]

log = logging.getLogger(__name__)

FEEDBACK_COLUMNS: tuple[str, ...] = (
    "signal_id",
    "source",
    "symbol",
    "side",
    "entry_price",
    "exit_price",
    "entry_ts",
    "exit_ts",
    "pnl",
    "pnl_pct",
    "component",
    "ingested_ts",
)
_TYPES = {
    "entry_price": pa.float64(),
    "exit_price": pa.float64(),
    "pnl": pa.float64(),
    "pnl_pct": pa.float64(),
    "entry_ts": pa.int64(),
    "exit_ts": pa.int64(),
    "ingested_ts": pa.int64(),
}


class WeightVersion(dict[str, Any]):
    """One stored weight version: ``version``, ``ts``, ``reason``, ``weights``."""


class AnalyticsStore:
    """DuckDB analytics store; migrations run when it opens.

    Parameters
    ----------
    path
        Database file, or ``":memory:"``.
    """

    def __init__(self, path: str | Path = ":memory:") -> None:
        import duckdb

        if str(path) != ":memory:":
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        self.path = str(path)
        self._con = duckdb.connect(
            str(Path(path).expanduser()) if self.path != ":memory:" else ":memory:"
        )
        self._lock = threading.Lock()
        before = migrate(self._con)
        log.info("analytics store open", extra={"path": self.path, "schema_from": before})

    def close(self) -> None:
        """Close the connection."""
        self._con.close()

    # ------------------------------------------------------------------ feedback
    def insert_feedback(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Insert feedback rows in one batch; return how many were new.

        A row whose ``(signal_id, source)`` is already stored (or repeated in the batch) is
        ignored. Missing ``component`` defaults to ``liquidation_zone``.
        """
        if not rows:
            return 0
        now = time.time_ns()
        cols: dict[str, list[Any]] = {c: [] for c in FEEDBACK_COLUMNS}
        for row in rows:
            for c in FEEDBACK_COLUMNS:
                if c == "component":
                    cols[c].append(row.get(c) or "liquidation_zone")
                elif c == "ingested_ts":
                    cols[c].append(now)
                else:
                    cols[c].append(row[c])
        table = pa.table({c: pa.array(v, type=_TYPES.get(c, pa.string())) for c, v in cols.items()})
        names = ", ".join(FEEDBACK_COLUMNS)
        with self._lock:
            before = self._count()
            self._con.register("_batch", table)
            try:
                self._con.execute(
                    f"INSERT OR IGNORE INTO signal_feedback ({names}) "
                    f"SELECT DISTINCT ON (signal_id, source) {names} FROM _batch"
                )
            finally:
                self._con.unregister("_batch")
            return self._count() - before

    def _count(self) -> int:
        rows = self._con.execute("SELECT count(*) FROM signal_feedback").fetchall()
        return int(rows[0][0])

    def feedback_count(self) -> int:
        """Number of stored feedback rows."""
        with self._lock:
            return self._count()

    def feedback(self) -> list[dict[str, Any]]:
        """Every feedback row, oldest exit first."""
        with self._lock:
            cur = self._con.execute(
                f"SELECT {', '.join(FEEDBACK_COLUMNS)} FROM signal_feedback "
                "ORDER BY exit_ts, signal_id"
            )
            return [dict(zip(FEEDBACK_COLUMNS, r, strict=True)) for r in cur.fetchall()]

    def rolling_metrics(self, since_ts: int, until_ts: int | None = None) -> list[dict[str, Any]]:
        """Hit rate, mean P&L and count per ``(source, component)`` for exits in the window.

        Rows with ``source == "*"`` or ``component == "*"`` are the totals (``GROUPING SETS``).
        """
        until = until_ts if until_ts is not None else 2**62
        sql = """
            SELECT coalesce(source, '*'), coalesce(component, '*'), count(*),
                   avg(CASE WHEN pnl > 0 THEN 1.0 ELSE 0.0 END), avg(pnl)
            FROM signal_feedback WHERE exit_ts >= ? AND exit_ts <= ?
            GROUP BY GROUPING SETS ((source, component), (source), (component), ())
        """
        with self._lock:
            rows = self._con.execute(sql, [since_ts, until]).fetchall()
        return [
            {
                "source": s,
                "component": c,
                "count": int(n),
                "hit_rate": float(h),
                "mean_pnl": float(p),
            }
            for s, c, n, h, p in rows
            if n
        ]

    # ------------------------------------------------------------------ weights
    def save_weights(self, weights: Mapping[str, float], ts: int, reason: str) -> int:
        """Store ``weights`` as a new version and return its number."""
        with self._lock:
            rows = self._con.execute(
                "SELECT coalesce(max(version), 0) FROM adaptive_weights"
            ).fetchall()
            version = int(rows[0][0]) + 1
            self._con.executemany(
                "INSERT INTO adaptive_weights VALUES (?, ?, ?, ?, ?)",
                [[version, k, float(v), ts, reason] for k, v in sorted(weights.items())],
            )
            return version

    def weights(self, version: int | None = None) -> WeightVersion | None:
        """Return the given (default: latest) weight version, or None when none is stored."""
        with self._lock:
            if version is None:
                top = self._con.execute("SELECT max(version) FROM adaptive_weights").fetchall()
                if top[0][0] is None:
                    return None
                version = int(top[0][0])
            rows = self._con.execute(
                "SELECT component, weight, ts, reason FROM adaptive_weights WHERE version = ?",
                [version],
            ).fetchall()
        if not rows:
            return None
        return WeightVersion(
            version=version,
            ts=int(rows[0][2]),
            reason=rows[0][3],
            weights={c: float(w) for c, w, _, _ in rows},
        )

    def weight_history(self) -> list[dict[str, Any]]:
        """One row per version: ``version``, ``ts``, ``reason``."""
        with self._lock:
            rows = self._con.execute(
                "SELECT version, min(ts), min(reason) FROM adaptive_weights "
                "GROUP BY version ORDER BY version"
            ).fetchall()
        return [{"version": int(v), "ts": int(t), "reason": r} for v, t, r in rows]
