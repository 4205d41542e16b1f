"""Batched PostgreSQL storage of a normalised market stream (a pipeline sink).

Tables ``<prefix>trades``, ``<prefix>bars``, ``<prefix>book`` (one row per level),
``<prefix>funding`` and ``<prefix>open_interest``, each with a ``time`` column (timestamptz of
the venue time) beside the int64 ns stamps. When the server offers the TimescaleDB extension
they become hypertables on ``time``; otherwise they are plain tables partitioned by range of
``time``, one partition per UTC day, created as data for a new day arrives.

Rows are buffered and written with ``COPY`` in batches of ``batch_rows`` (one transaction per
batch), so a crash loses at most the unwritten batch and never leaves a half batch. The
connection URL (which may hold a password) is never logged; only host and database are.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from tradeloop.core.errors import ConfigError
from tradeloop.core.market_events import (
    BookDelta,
    BookSnapshot,
    FundingRate,
    MarketEvent,
    MarketTrade,
    OpenInterest,
    StreamBar,
)

__all__ = ["PostgresRecorder", "safe_target"]

logger = logging.getLogger(__name__)

_NS_PER_DAY = 86_400 * 1_000_000_000

COLUMNS: dict[str, list[tuple[str, str]]] = {
    "trades": [
        ("time", "timestamptz"), ("venue", "text"), ("symbol", "text"), ("ts", "bigint"),
        ("recv_ts", "bigint"), ("price", "double precision"), ("amount", "double precision"),
        ("side", "smallint"), ("trade_id", "text"),
    ],
    "bars": [
        ("time", "timestamptz"), ("venue", "text"), ("symbol", "text"), ("timeframe", "text"),
        ("ts", "bigint"), ("recv_ts", "bigint"), ("open", "double precision"),
        ("high", "double precision"), ("low", "double precision"),
        ("close", "double precision"), ("volume", "double precision"), ("closed", "boolean"),
    ],
    "book": [
        ("time", "timestamptz"), ("venue", "text"), ("symbol", "text"), ("ts", "bigint"),
        ("recv_ts", "bigint"), ("seq", "bigint"), ("prev_seq", "bigint"),
        ("snapshot", "boolean"), ("side", "smallint"), ("price", "double precision"),
        ("size", "double precision"),
    ],
    "funding": [
        ("time", "timestamptz"), ("venue", "text"), ("symbol", "text"), ("ts", "bigint"),
        ("recv_ts", "bigint"), ("rate", "double precision"), ("next_ts", "bigint"),
    ],
    "open_interest": [
        ("time", "timestamptz"), ("venue", "text"), ("symbol", "text"), ("ts", "bigint"),
        ("recv_ts", "bigint"), ("value", "double precision"),
    ],
}  # fmt: skip

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _time(ns: int) -> datetime:
    return _EPOCH + timedelta(microseconds=ns // 1000)


def safe_target(url: str) -> str:
    """``host:port/db`` of a connection URL, without user or password (for logs)."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "(unparseable PostgreSQL URL)"
    return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"


_FORMATS = {"timestamptz": "%s+00", "text": "%s", "bigint": "%d", "smallint": "%d",
            "double precision": "%r", "boolean": "%s"}  # fmt: skip
ROW_FORMATS = {kind: "\t".join(_FORMATS[t] for _, t in cols) for kind, cols in COLUMNS.items()}
"""COPY text line of each kind (column 0: the ISO time)."""


def _text(value: str) -> str:
    """``value`` escaped for COPY text format."""
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return (
            value.replace("\\", "\\\\")
            .replace("\t", "\\t")
            .replace("\n", "\\n")
            .replace("\r", "\\r")
        )
    return value


def _copy_text(kind: str, batch: Sequence[tuple[Any, ...]]) -> str:
    """``COPY ... FROM STDIN`` text of ``batch``; column 0 (UTC ns) becomes an ISO time."""
    ns = np.fromiter((r[0] for r in batch), np.int64, len(batch))
    times = np.datetime_as_string(ns.view("datetime64[ns]").astype("datetime64[us]"), unit="us")
    fmt = ROW_FORMATS[kind]
    return (
        "\n".join([fmt % (t, *row[1:]) for t, row in zip(times.tolist(), batch, strict=True)])
        + "\n"
    )


class PostgresRecorder:
    """Writes normalised events to PostgreSQL in ``COPY`` batches (see the module doc).

    Parameters
    ----------
    url
        ``postgresql://`` connection URL.
    prefix
        Table name prefix (letters, digits, underscores).
    batch_rows
        Rows per ``COPY`` batch.
    timescale
        Use hypertables: None = when the extension is available, True = required,
        False = plain partitioned tables.

    Raises
    ------
    ConfigError
        For a bad prefix, an unreachable server, or ``timescale=True`` without the extension.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "market_",
        batch_rows: int = 1000,
        timescale: bool | None = None,
    ) -> None:
        if not prefix.replace("_", "").isalnum():
            raise ConfigError(f"table prefix {prefix!r} must be letters, digits and underscores")
        if batch_rows < 1:
            raise ConfigError(f"batch_rows must be >= 1, got {batch_rows}")
        self.prefix = prefix
        self.batch_rows = batch_rows
        self.target = safe_target(url)
        try:
            self.conn = psycopg.connect(url, autocommit=True, connect_timeout=5)
        except psycopg.OperationalError:
            raise ConfigError(f"cannot connect to PostgreSQL at {self.target}") from None
        available = self._has_timescale()
        if timescale and not available:
            raise ConfigError(f"TimescaleDB is not available on {self.target}")
        self.timescale = available if timescale is None else timescale
        self._days: set[tuple[str, int]] = set()
        self._rows: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        self.batch_seconds: list[float] = []
        """Wall time of every ``COPY`` batch written (for the p99 figure)."""
        self.rows_written = 0
        self._create()
        logger.info(
            "recording to PostgreSQL %s (%s)",
            self.target,
            "TimescaleDB hypertables" if self.timescale else "daily partitions",
        )

    def table(self, kind: str) -> str:
        """The table name of ``kind``."""
        return f"{self.prefix}{kind}"

    def _has_timescale(self) -> bool:
        row = self.conn.execute(
            "select 1 from pg_available_extensions where name = 'timescaledb'"
        ).fetchone()
        return row is not None

    def _create(self) -> None:
        if self.timescale:
            self.conn.execute("create extension if not exists timescaledb")
        for kind, cols in COLUMNS.items():
            body = sql.SQL(", ").join(
                sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t)) for n, t in cols
            )
            name = sql.Identifier(self.table(kind))
            if self.timescale:
                self.conn.execute(sql.SQL("create table if not exists {} ({})").format(name, body))
                self.conn.execute(
                    "select create_hypertable(%s, 'time', if_not_exists => true)",
                    (self.table(kind),),
                )
            else:
                self.conn.execute(
                    sql.SQL("create table if not exists {} ({}) partition by range (time)").format(
                        name, body
                    )
                )

    def _partition(self, kind: str, day: int) -> None:
        if self.timescale or (kind, day) in self._days:
            return
        start = _time(day * _NS_PER_DAY)
        end = start + timedelta(days=1)
        part = f"{self.table(kind)}_{start:%Y%m%d}"
        self.conn.execute(
            sql.SQL("create table if not exists {} partition of {} for values from ({}) to ({})")
            .format(
                sql.Identifier(part), sql.Identifier(self.table(kind)),
                sql.Literal(start), sql.Literal(end),
            )
        )  # fmt: skip
        self._days.add((kind, day))

    # -- sink -------------------------------------------------------------------------------
    def write(self, events: Sequence[MarketEvent]) -> None:
        """Buffer ``events``; write every full batch."""
        rows = self._rows
        for ev in events:
            if isinstance(ev, MarketTrade):
                rows["trades"].append(
                    (ev.ts, _text(ev.venue), _text(ev.symbol), ev.ts, ev.recv_ts, ev.price,
                     ev.amount, ev.side, _text(ev.trade_id))
                )  # fmt: skip
            elif isinstance(ev, StreamBar):
                b = ev.bar
                rows["bars"].append(
                    (b.ts, _text(ev.venue), _text(b.symbol), _text(b.timeframe), b.ts,
                     ev.recv_ts, b.open, b.high, b.low, b.close, b.volume, ev.closed)
                )  # fmt: skip
            elif isinstance(ev, BookSnapshot | BookDelta):
                snap = isinstance(ev, BookSnapshot)
                prev = ev.seq if isinstance(ev, BookSnapshot) else ev.prev_seq
                head = (
                    ev.ts,
                    _text(ev.venue),
                    _text(ev.symbol),
                    ev.ts,
                    ev.recv_ts,
                    ev.seq,
                    prev,
                    snap,
                )
                for side, levels in ((1, ev.bids), (-1, ev.asks)):
                    for p, s in levels:
                        rows["book"].append((*head, side, p, s))
            elif isinstance(ev, FundingRate):
                rows["funding"].append(
                    (
                        ev.ts,
                        _text(ev.venue),
                        _text(ev.symbol),
                        ev.ts,
                        ev.recv_ts,
                        ev.rate,
                        ev.next_ts,
                    )
                )
            elif isinstance(ev, OpenInterest):
                rows["open_interest"].append(
                    (ev.ts, _text(ev.venue), _text(ev.symbol), ev.ts, ev.recv_ts, ev.value)
                )
        for kind, buf in rows.items():
            while len(buf) >= self.batch_rows:
                batch, rows[kind] = buf[: self.batch_rows], buf[self.batch_rows :]
                buf = rows[kind]
                self._copy(kind, batch)

    def flush(self) -> None:
        """Write every buffered row."""
        for kind in list(self._rows):
            batch, self._rows[kind] = self._rows[kind], []
            if batch:
                self._copy(kind, batch)

    def _copy(self, kind: str, batch: list[tuple[Any, ...]]) -> None:
        for day in {r[0] // _NS_PER_DAY for r in batch}:
            self._partition(kind, day)
        cols = [n for n, _ in COLUMNS[kind]]
        stmt = sql.SQL("copy {} ({}) from stdin").format(
            sql.Identifier(self.table(kind)), sql.SQL(", ").join(map(sql.Identifier, cols))
        )
        t0 = time.perf_counter()
        data = _copy_text(kind, batch)
        with self.conn.transaction(), self.conn.cursor() as cur, cur.copy(stmt) as copy:
            copy.write(data)
        self.batch_seconds.append(time.perf_counter() - t0)
        self.rows_written += len(batch)

    def close(self) -> None:
        """Flush and close the connection."""
        try:
            self.flush()
        finally:
            self.conn.close()

    def __enter__(self) -> PostgresRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
