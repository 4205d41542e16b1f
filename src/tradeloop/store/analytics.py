"""``AnalyticsStore``: signal feedback and adaptive weight versions in DuckDB.

All SQL of the signal loop lives here. Rows are plain mappings so the store depends on no
message model; ``signal_feedback`` is keyed on ``(signal_id, source)`` and inserts are
idempotent (``INSERT OR IGNORE``): a replayed record is stored, and counted, once.

**One writer, many readers, several processes.** DuckDB locks a database file per process: a
process that opens it read-write excludes every other process, even read-only ones, for as
long as its connection is open. So the store has three ways to open a file:

* ``AnalyticsStore(path)`` (``hold=True``): one read-write connection for the store's lifetime.
  The embedded default for a single process (tests, notebooks, the all-in-one service).
* ``AnalyticsStore(path, hold=False)``: the *single writer* of a multi-process deployment (the
  ``signals consume`` process). Each operation, or each :meth:`AnalyticsStore.session`, opens
  the file, does its work and closes it again, so the lock is held only for milliseconds.
* ``AnalyticsStore(path, read_only=True, hold=False)``: a *reader* (``serve``,
  ``signals status``): short-lived read-only connections. A reader never migrates or writes; a
  reader of a file that does not exist yet sees an empty store.

Opening a file another process holds is retried with backoff for up to ``lock_timeout_s``;
after that :class:`~tradeloop.core.errors.TemporaryError` is raised.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa

from tradeloop.core.errors import ConfigError, TemporaryError
from tradeloop.store.migrations import migrate

__all__ = ["FEEDBACK_COLUMNS", "JOURNAL_COLUMNS", "AnalyticsStore", "WeightVersion"]

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

#: the signal journal's columns: every signal a strategy emitted, what the risk gate (or the
#: model) decided, and the outcome of the trade it opened
JOURNAL_COLUMNS: tuple[str, ...] = (
    "source",
    "signal_key",
    "signal_id",
    "mode",
    "strategy",
    "ts",
    "symbol",
    "action",
    "tag",
    "size",
    "confidence",
    "executed",
    "reason",
    "detail",
    "pnl",
    "pnl_pct",
    "exit_ts",
)
_JOURNAL_TYPES = {
    "ts": pa.int64(),
    "size": pa.float64(),
    "confidence": pa.float64(),
    "executed": pa.bool_(),
    "pnl": pa.float64(),
    "pnl_pct": pa.float64(),
    "exit_ts": pa.int64(),
}


class WeightVersion(dict[str, Any]):
    """One stored weight version: ``version``, ``ts``, ``reason``, ``weights``."""


class AnalyticsStore:
    """DuckDB analytics store; migrations run when a writer opens it.

    Parameters
    ----------
    path
        Database file, or ``":memory:"`` (always held, read-write).
    read_only
        Open the file read-only (a reader process); writes raise ``ConfigError``.
    hold
        Keep one connection open for the store's lifetime (True) or open one per operation or
        :meth:`session` (False), releasing the file lock in between (see the module docstring).
    lock_timeout_s
        How long to retry opening a file that another process has locked.

    Attributes
    ----------
    opens
        How many times the file was opened.
    lock_waits
        How many times an open found the file locked by another process and retried.
    """

    def __init__(
        self,
        path: str | Path = ":memory:",
        *,
        read_only: bool = False,
        hold: bool = True,
        lock_timeout_s: float = 10.0,
    ) -> None:
        self.path = str(path)
        memory = self.path == ":memory:"
        if memory and (read_only or not hold):
            raise ConfigError("an in-memory analytics store is always held and writable")
        self.read_only = read_only
        self.hold = hold
        self.lock_timeout_s = lock_timeout_s
        self._file = None if memory else Path(path).expanduser()
        if self._file is not None and not read_only:
            self._file.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._con: Any = None
        self.opens = 0
        self.lock_waits = 0
        if read_only:
            if hold:
                self._con = self._open()
            log.info("analytics store open read-only", extra={"path": self.path})
            return
        con = self._open()
        before = migrate(con)
        if hold:
            self._con = con
        else:
            con.close()
        log.info("analytics store open", extra={"path": self.path, "schema_from": before})

    def close(self) -> None:
        """Close the held connection (a no-op for short-lived connections)."""
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None

    def _open(self) -> Any:
        """Open a connection, retrying while another process holds the file's lock."""
        import duckdb

        if self._file is None:
            return duckdb.connect(":memory:")
        if self.read_only and not self._file.exists():
            # a reader started before any writer: an empty store, not an error
            con = duckdb.connect(":memory:")
            migrate(con)
            return con
        deadline = time.monotonic() + self.lock_timeout_s
        delay = 0.002
        while True:
            try:
                con = duckdb.connect(str(self._file), read_only=self.read_only)
                self.opens += 1
                return con
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower():
                    raise
                if time.monotonic() >= deadline:
                    raise TemporaryError(
                        f"analytics store {self.path} is locked by another process "
                        f"(retried {self.lock_timeout_s:g}s): {exc}"
                    ) from exc
                self.lock_waits += 1
                time.sleep(delay)
                delay = min(delay * 2, 0.05)

    @contextmanager
    def session(self) -> Iterator[Any]:
        """Use one connection for every operation inside the block.

        With ``hold=False`` the file is opened at the start of the outermost block and closed
        (releasing the lock) at its end; with ``hold=True`` the held connection is used.
        """
        with self._lock:
            if self._con is not None:
                yield self._con
                return
            con = self._open()
            self._con = con
            try:
                yield con
            finally:
                self._con = None
                con.close()

    def _writable(self) -> None:
        if self.read_only:
            raise ConfigError(f"analytics store {self.path} is open read-only")

    # ------------------------------------------------------------------ signal journal
    def insert_journal(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Insert signal-journal rows (see :data:`JOURNAL_COLUMNS`); return how many were new.

        A row whose ``(source, signal_key)`` is stored already is ignored (a restarted run
        journals nothing twice).
        """
        if not rows:
            return 0
        table = pa.table(
            {
                c: pa.array([r.get(c) for r in rows], type=_JOURNAL_TYPES.get(c, pa.string()))
                for c in JOURNAL_COLUMNS
            }
        )
        names = ", ".join(JOURNAL_COLUMNS)
        self._writable()
        with self.session() as con:
            con.register("_journal", table)
            try:
                res = con.execute(
                    f"INSERT OR IGNORE INTO signal_journal ({names}) "
                    f"SELECT DISTINCT ON (source, signal_key) {names} FROM _journal"
                ).fetchall()
            finally:
                con.unregister("_journal")
            return int(res[0][0]) if res else 0

    def journal_outcomes(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Set ``pnl``, ``pnl_pct``, ``exit_ts`` of journaled entries by ``(source,
        signal_id)``; return how many rows were updated."""
        if not rows:
            return 0
        self._writable()
        updated = 0
        with self.session() as con:
            for r in rows:
                res = con.execute(
                    "UPDATE signal_journal SET pnl = ?, pnl_pct = ?, exit_ts = ? "
                    "WHERE source = ? AND signal_id = ? AND action <> 'close'",
                    [r["pnl"], r["pnl_pct"], r["exit_ts"], r["source"], r["signal_id"]],
                ).fetchall()
                updated += int(res[0][0]) if res else 0
        return updated

    def journal(self, source: str | None = None) -> list[dict[str, Any]]:
        """The journal's rows (of one ``source`` when given), oldest signal first."""
        where, args = ("WHERE source = ?", [source]) if source is not None else ("", [])
        with self.session() as con:
            cur = con.execute(
                f"SELECT {', '.join(JOURNAL_COLUMNS)} FROM signal_journal {where} "
                "ORDER BY ts, signal_key",
                args,
            )
            return [dict(zip(JOURNAL_COLUMNS, row, strict=True)) for row in cur.fetchall()]

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
        self._writable()
        with self.session() as con:
            before = self._count(con)
            con.register("_batch", table)
            try:
                con.execute(
                    f"INSERT OR IGNORE INTO signal_feedback ({names}) "
                    f"SELECT DISTINCT ON (signal_id, source) {names} FROM _batch"
                )
            finally:
                con.unregister("_batch")
            return self._count(con) - before

    @staticmethod
    def _count(con: Any) -> int:
        rows = con.execute("SELECT count(*) FROM signal_feedback").fetchall()
        return int(rows[0][0])

    def feedback_count(self) -> int:
        """Number of stored feedback rows."""
        with self.session() as con:
            return self._count(con)

    def feedback(self) -> list[dict[str, Any]]:
        """Every feedback row, oldest exit first."""
        with self.session() as con:
            cur = con.execute(
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
        with self.session() as con:
            rows = con.execute(sql, [since_ts, until]).fetchall()
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
        self._writable()
        with self.session() as con:
            rows = con.execute("SELECT coalesce(max(version), 0) FROM adaptive_weights").fetchall()
            version = int(rows[0][0]) + 1
            con.executemany(
                "INSERT INTO adaptive_weights VALUES (?, ?, ?, ?, ?)",
                [[version, k, float(v), ts, reason] for k, v in sorted(weights.items())],
            )
            return version

    def weights(self, version: int | None = None) -> WeightVersion | None:
        """Return the given (default: latest) weight version, or None when none is stored."""
        with self.session() as con:
            if version is None:
                top = con.execute("SELECT max(version) FROM adaptive_weights").fetchall()
                if top[0][0] is None:
                    return None
                version = int(top[0][0])
            rows = con.execute(
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
        with self.session() as con:
            rows = con.execute(
                "SELECT version, min(ts), min(reason) FROM adaptive_weights "
                "GROUP BY version ORDER BY version"
            ).fetchall()
        return [{"version": int(v), "ts": int(t), "reason": r} for v, t, r in rows]
