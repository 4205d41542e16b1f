"""Batched PostgreSQL storage of a normalised market stream (a pipeline sink).

Tables ``<prefix>trades``, ``<prefix>bars``, ``<prefix>book`` (one row per level),
``<prefix>funding`` and ``<prefix>open_interest``, each with a ``time`` column (timestamptz of
the venue time) beside the int64 ns stamps. When the server offers the TimescaleDB extension
they become hypertables on ``time``; otherwise they are plain tables partitioned by range of
``time``, one partition per UTC day, created as data for a new day arrives. New tables store
their columns widest first (see :func:`stored_order`), so rows carry no alignment padding.

Events are buffered as columns (numpy arrays for numbers) and written with binary ``COPY`` in
batches of ``batch_rows``, one transaction per batch with the server's normal (durable) commit,
so a crash loses at most the unwritten batch and never leaves a half batch. A batch's binary
rows are built by :func:`copy_binary` with numpy, without a Python object per row; a batch
within the same UTC day as the previous one is copied straight into that day's partition (the
partition is created once per day, and the server routes no rows). A batch is sent as one
query of several ``COPY`` statements of at most ``copy_rows`` rows each, which the server runs
as one transaction (see :meth:`PostgresRecorder._send`). The
connection URL (which may hold a password) is never logged; only host and database are.
"""

from __future__ import annotations

import logging
import math
import selectors
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import numpy as np
import psycopg
from psycopg import pq, sql
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

__all__ = ["PostgresRecorder", "safe_target", "stored_order"]

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


_PG_EPOCH_US = 946_684_800 * 1_000_000
"""2000-01-01 UTC in Unix microseconds (PostgreSQL's timestamp epoch)."""
_BINARY: dict[str, str] = {
    "timestamptz": ">i8", "bigint": ">i8", "smallint": ">i2", "double precision": ">f8",
    "boolean": "?",
}  # fmt: skip
"""Big-endian numpy type of each fixed-width column type in COPY's binary format."""
_NUMPY = {"timestamptz": np.int64, "bigint": np.int64, "smallint": np.int16,
          "double precision": np.float64, "boolean": np.bool_}  # fmt: skip
_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
_TRAILER = b"\xff\xff"


def _layout(kind: str) -> tuple[list[str], list[str], np.dtype[Any]]:
    """``(fixed columns, text columns, row-prefix dtype)`` of ``kind``'s binary COPY rows.

    The fixed-width columns come first in the COPY column list, so every row starts with the
    same fixed-size record (field count, then length + value of each fixed column) and ends
    with its variable-length text fields.
    """
    cols = COLUMNS[kind]
    fixed = [n for n, t in cols if t != "text"]
    text = [n for n, t in cols if t == "text"]
    fields: list[tuple[str, str]] = [("_n", ">i2")]
    types = dict(cols)
    for n in fixed:
        fields += [(f"_len_{n}", ">i4"), (n, _BINARY[types[n]])]
    return fixed, text, np.dtype(fields)


LAYOUTS = {kind: _layout(kind) for kind in COLUMNS}
"""Binary COPY layout of each kind (see :func:`_layout`)."""


def stored_order(kind: str) -> list[tuple[str, str]]:
    """``(name, type)`` of ``kind``'s columns in the order a new table stores them.

    The widest fixed-width columns first, then the narrower ones, then the text columns: no
    field needs alignment padding (``COLUMNS`` order would pad the 8-byte ``ts`` after the
    variable-length ``venue`` and ``symbol``), so every row, and the WAL of every batch, is
    7 bytes shorter for trades. The ``COPY`` names its columns, so a table created in
    ``COLUMNS`` order (an older recorder's) is written the same way and needs no migration.
    """
    fixed, text, dtype = LAYOUTS[kind]
    types = dict(COLUMNS[kind])
    widest = sorted(fixed, key=lambda name: -dtype[name].itemsize)
    return [(name, types[name]) for name in widest + text]


def _encoded(values: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """UTF-8 bytes of ``values`` back to back (uint8) and the byte length of each value."""
    n = len(values)
    first = values[0] if n else ""
    if isinstance(values, list) and values.count(first) == n:  # venue, symbol
        raw = first.encode()
        return np.frombuffer(raw * n, np.uint8), np.full(n, len(raw), np.int64)
    joined = "".join(values)
    raw = joined.encode()
    if len(raw) == len(joined):  # ASCII: bytes per value = characters per value
        lens = np.fromiter(map(len, values), np.int64, n)
    else:
        each = [v.encode() for v in values]
        raw = b"".join(each)
        lens = np.fromiter(map(len, each), np.int64, n)
    return np.frombuffer(raw, np.uint8), lens


def copy_binary(kind: str, columns: dict[str, Any], streams: int = 1) -> list[bytes]:
    """``COPY ... (FORMAT BINARY)`` data of one batch of ``kind`` from its columns.

    ``columns`` maps every column of the kind to an array-like of equal length (``time``:
    UTC ns; text columns: sequences of ``str``). The rows are built with numpy, no Python
    object per row: a ``(rows, longest row)`` byte matrix gets the fixed-size record of
    every row (field count, then length + value of each fixed-width column) in its first
    columns and each text field (length + UTF-8 bytes) scattered behind it; the rows' bytes
    are then taken out without the padding. The rows come back as ``streams`` complete COPY
    streams (at most one per row) of consecutive rows, as equal in row count as can be.
    """
    fixed, text, dtype = LAYOUTS[kind]
    n = len(columns["time"])
    rec = np.empty(n, dtype)
    rec["_n"] = len(fixed) + len(text)
    for name in fixed:
        rec[f"_len_{name}"] = dtype[name].itemsize
        if name == "time":
            rec[name] = np.asarray(columns[name], np.int64) // 1000 - _PG_EPOCH_US
        else:
            rec[name] = columns[name]
    parts = [_encoded(columns[name]) for name in text]
    width = dtype.itemsize
    row_len = np.full(n, width, np.int64)
    for _, lens in parts:
        row_len += 4 + lens
    stride = int(row_len.max()) if n else 0
    matrix = np.zeros((n, stride), np.uint8)
    matrix[:, :width] = rec.view(np.uint8).reshape(n, width)
    flat = matrix.reshape(-1)
    pos = np.arange(n, dtype=np.int64) * stride + width  # where each row's next field goes
    at = width  # ... the same offset in every row while all earlier text had one length
    for raw, lens in parts:
        same = n > 0 and int(lens.min()) == int(lens.max())
        prefix = lens.astype(">i4").view(np.uint8).reshape(n, 4)
        if at >= 0:
            matrix[:, at : at + 4] = prefix
        else:
            flat[(pos[:, None] + np.arange(4)).ravel()] = prefix.ravel()
        pos += 4
        if len(raw) and at >= 0 and same:
            size = int(lens[0])
            matrix[:, at + 4 : at + 4 + size] = raw.reshape(n, size)
        elif len(raw):
            value_start = np.zeros(n, np.int64)
            np.cumsum(lens[:-1], out=value_start[1:])
            flat[np.repeat(pos - value_start, lens) + np.arange(len(raw))] = raw
        pos += lens
        at = at + 4 + int(lens[0]) if at >= 0 and same else -1
    body = matrix[np.arange(stride)[None, :] < row_len[:, None]].tobytes()
    cuts = [0]
    for rows in np.array_split(row_len, max(1, min(streams, n))):
        cuts.append(cuts[-1] + int(rows.sum()))
    return [_HEADER + body[a:b] + _TRAILER for a, b in pairwise(cuts)]


def _book_columns(books: Sequence[BookSnapshot | BookDelta]) -> dict[str, list[Any]]:
    """One row per price level of ``books`` (bids side 1, asks side -1)."""
    cols: dict[str, list[Any]] = {n: [] for n, _ in COLUMNS["book"] if n != "time"}
    for ev in books:
        snap = isinstance(ev, BookSnapshot)
        prev = ev.seq if isinstance(ev, BookSnapshot) else ev.prev_seq
        for side, levels in ((1, ev.bids), (-1, ev.asks)):
            k = len(levels)
            if not k:
                continue
            for name, value in (
                ("ts", ev.ts), ("venue", ev.venue), ("symbol", ev.symbol),
                ("recv_ts", ev.recv_ts), ("seq", ev.seq), ("prev_seq", prev),
                ("snapshot", snap), ("side", side),
            ):  # fmt: skip
                cols[name] += [value] * k
            cols["price"] += [p for p, _ in levels]
            cols["size"] += [q for _, q in levels]
    return cols


class PostgresRecorder:
    """Writes normalised events to PostgreSQL in ``COPY`` batches (see the module doc).

    Parameters
    ----------
    url
        ``postgresql://`` connection URL.
    prefix
        Table name prefix (letters, digits, underscores).
    batch_rows
        Rows per batch (one transaction).
    copy_rows
        Rows per ``COPY`` statement within a batch. PostgreSQL's ``COPY`` keeps a tuple slot
        for each row it buffers (up to 1,000) and registers every slot with the statement's
        resource owner, which takes time growing with the square of their number (on
        PostgreSQL 15 about 40% of the server's time for a 1,000-row ``COPY``); 500 sends a
        batch of 1,000 as two statements in one query, for one more round trip.
    timescale
        Use hypertables: None = when the extension is available, True = required,
        False = plain partitioned tables.

    Raises
    ------
    ConfigError
        For a bad prefix or size, an unreachable server, or ``timescale=True`` without the
        extension.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "market_",
        batch_rows: int = 1000,
        copy_rows: int = 500,
        timescale: bool | None = None,
    ) -> None:
        if not prefix.replace("_", "").isalnum():
            raise ConfigError(f"table prefix {prefix!r} must be letters, digits and underscores")
        if batch_rows < 1:
            raise ConfigError(f"batch_rows must be >= 1, got {batch_rows}")
        if copy_rows < 1:
            raise ConfigError(f"copy_rows must be >= 1, got {copy_rows}")
        self.prefix = prefix
        self.batch_rows = batch_rows
        self.copy_rows = copy_rows
        self.target = safe_target(url)
        try:
            self.conn = psycopg.connect(url, autocommit=True, connect_timeout=5)
        except psycopg.ProgrammingError:  # the URL itself cannot be read
            raise ConfigError(f"invalid PostgreSQL URL for {self.target}") from None
        except psycopg.OperationalError:
            raise ConfigError(f"cannot connect to PostgreSQL at {self.target}") from None
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.conn.pgconn.socket, selectors.EVENT_READ)
        available = self._has_timescale()
        if timescale and not available:
            raise ConfigError(f"TimescaleDB is not available on {self.target}")
        self.timescale = available if timescale is None else timescale
        self._days: set[tuple[str, int]] = set()
        self._day: dict[str, tuple[int, int, sql.Composed]] = {}
        """Per kind: the UTC day (ns range) of the last batch and its partition's COPY."""
        self._pending: dict[str, list[dict[str, Any]]] = {kind: [] for kind in COLUMNS}
        self._pending_rows: dict[str, int] = dict.fromkeys(COLUMNS, 0)
        self._copy_all = {kind: self._copy_statement(kind, self.table(kind)) for kind in COLUMNS}
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
        for kind in COLUMNS:
            body = sql.SQL(", ").join(
                sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t))
                for n, t in stored_order(kind)
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

    def _partition(self, kind: str, day: int) -> str:
        """Create (once) the partition of ``kind`` for UTC day ``day``; return its name."""
        start = _time(day * _NS_PER_DAY)
        part = f"{self.table(kind)}_{start:%Y%m%d}"
        if (kind, day) in self._days:
            return part
        end = start + timedelta(days=1)
        self.conn.execute(
            sql.SQL("create table if not exists {} partition of {} for values from ({}) to ({})")
            .format(
                sql.Identifier(part), sql.Identifier(self.table(kind)),
                sql.Literal(start), sql.Literal(end),
            )
        )  # fmt: skip
        self._days.add((kind, day))
        return part

    @staticmethod
    def _copy_statement(kind: str, table: str) -> sql.Composed:
        fixed, text, _ = LAYOUTS[kind]
        return sql.SQL("copy {} ({}) from stdin (format binary)").format(
            sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, fixed + text))
        )

    def _target(self, kind: str, ts: np.ndarray) -> sql.Composed:
        """The COPY statement of a batch with venue times ``ts``: straight into the day's
        partition while the batch lies in the same UTC day as the last one (no partition
        lookup, no row routing), else through the parent after creating every day's
        partition. Hypertables always go through the parent."""
        if self.timescale:
            return self._copy_all[kind]
        lo, hi = int(ts.min()), int(ts.max())
        day = self._day.get(kind)
        if day is not None and day[0] <= lo and hi < day[1]:
            return day[2]
        first, last = lo // _NS_PER_DAY, hi // _NS_PER_DAY
        for d in range(first, last + 1):
            part = self._partition(kind, d)
        if first != last:
            return self._copy_all[kind]
        stmt = self._copy_statement(kind, part)
        self._day[kind] = (first * _NS_PER_DAY, (first + 1) * _NS_PER_DAY, stmt)
        return stmt

    # -- sink -------------------------------------------------------------------------------
    def write(self, events: Sequence[MarketEvent]) -> None:
        """Buffer ``events`` as columns; write every full batch."""
        by_kind: dict[type, list[Any]] = {}
        for ev in events:
            by_kind.setdefault(type(ev), []).append(ev)
        trades = by_kind.get(MarketTrade, [])
        if trades:
            self._add("trades", {
                "ts": [e.ts for e in trades], "venue": [e.venue for e in trades],
                "symbol": [e.symbol for e in trades], "recv_ts": [e.recv_ts for e in trades],
                "price": [e.price for e in trades], "amount": [e.amount for e in trades],
                "side": [e.side for e in trades], "trade_id": [e.trade_id for e in trades],
            })  # fmt: skip
        bars = by_kind.get(StreamBar, [])
        if bars:
            b = [e.bar for e in bars]
            self._add("bars", {
                "ts": [x.ts for x in b], "venue": [e.venue for e in bars],
                "symbol": [x.symbol for x in b], "timeframe": [x.timeframe for x in b],
                "recv_ts": [e.recv_ts for e in bars], "open": [x.open for x in b],
                "high": [x.high for x in b], "low": [x.low for x in b],
                "close": [x.close for x in b], "volume": [x.volume for x in b],
                "closed": [e.closed for e in bars],
            })  # fmt: skip
        books = [e for e in events if isinstance(e, BookSnapshot | BookDelta)]
        if books:
            self._add("book", _book_columns(books))
        funding = by_kind.get(FundingRate, [])
        if funding:
            self._add("funding", {
                "ts": [e.ts for e in funding], "venue": [e.venue for e in funding],
                "symbol": [e.symbol for e in funding], "recv_ts": [e.recv_ts for e in funding],
                "rate": [e.rate for e in funding], "next_ts": [e.next_ts for e in funding],
            })  # fmt: skip
        oi = by_kind.get(OpenInterest, [])
        if oi:
            self._add("open_interest", {
                "ts": [e.ts for e in oi], "venue": [e.venue for e in oi],
                "symbol": [e.symbol for e in oi], "recv_ts": [e.recv_ts for e in oi],
                "value": [e.value for e in oi],
            })  # fmt: skip

    def _add(self, kind: str, columns: dict[str, list[Any]]) -> None:
        """Buffer one chunk of ``kind`` (numeric columns as arrays); write full batches."""
        columns["time"] = columns["ts"]
        chunk: dict[str, Any] = {
            name: (columns[name] if typ == "text" else np.asarray(columns[name], _NUMPY[typ]))
            for name, typ in COLUMNS[kind]
        }
        self._pending[kind].append(chunk)
        self._pending_rows[kind] += len(columns["ts"])
        if self._pending_rows[kind] < self.batch_rows:
            return
        # every buffered row merged once, each batch a slice of it (merging what is left
        # for every batch would cost the square of the rows of one write)
        merged = self._take(kind, self._pending_rows[kind])
        total = len(merged["ts"])
        start = 0
        try:
            while total - start >= self.batch_rows:
                batch = {name: col[start : start + self.batch_rows] for name, col in merged.items()}
                start += self.batch_rows  # a batch that fails is not written again
                self._copy(kind, batch)
        finally:
            if start < total:  # the part batch, and after an error the batches not written
                self._pending[kind] = [{name: col[start:] for name, col in merged.items()}]
                self._pending_rows[kind] = total - start

    def _take(self, kind: str, rows: int) -> dict[str, Any]:
        """The first ``rows`` buffered rows of ``kind`` as one set of columns."""
        chunks = self._pending[kind]
        merged = {
            name: (
                [v for ch in chunks for v in ch[name]]
                if typ == "text"
                else np.concatenate([ch[name] for ch in chunks])
            )
            for name, typ in COLUMNS[kind]
        }
        head = {name: col[:rows] for name, col in merged.items()}
        total = self._pending_rows[kind]
        rest = {name: col[rows:] for name, col in merged.items()}
        self._pending[kind] = [rest] if total > rows else []
        self._pending_rows[kind] = total - min(rows, total)
        return head

    def flush(self) -> None:
        """Write every buffered row."""
        for kind in COLUMNS:
            if self._pending_rows[kind]:
                self._copy(kind, self._take(kind, self._pending_rows[kind]))

    def _copy(self, kind: str, columns: dict[str, Any]) -> None:
        """One batch: binary ``COPY`` statements of at most ``copy_rows`` rows in one query,
        one transaction (timed with its encoding)."""
        t0 = time.perf_counter()
        stmt = self._target(kind, columns["ts"]).as_bytes(self.conn)
        rows = len(columns["ts"])
        self._send(stmt, copy_binary(kind, columns, math.ceil(rows / self.copy_rows)))
        self.batch_seconds.append(time.perf_counter() - t0)
        self.rows_written += rows

    def _send(self, stmt: bytes, streams: list[bytes]) -> None:
        """Run ``stmt`` (a ``COPY ... FROM STDIN``) once per stream, as one simple query.

        The server runs the statements of one query string as one implicit transaction
        (autocommit: no ``BEGIN``/``COMMIT`` round trips): all rows or none, committed
        durably once after the last statement, before this returns. Each statement's data
        goes out as soon as the server asks for it. An error stops the server at that
        statement (the transaction rolls back) and is raised once the query has ended, so
        the connection is ready for the next batch.
        """
        pg = self.conn.pgconn
        pg.send_query(b"; ".join([stmt] * len(streams)))  # raises if it cannot
        failed: pq.abc.PGresult | None = None
        interrupted: psycopg.OperationalError | None = None
        done = 0
        try:
            for data in streams:
                result = self._result(pg)
                if result is None or result.status != pq.ExecStatus.COPY_IN:
                    failed = result
                    break
                self._put(pg, data, None)
                result = self._result(pg)
                if result is None or result.status != pq.ExecStatus.COMMAND_OK:
                    failed = result
                    break
                done += 1
        except psycopg.OperationalError as exc:  # the server ended a COPY while we sent
            if pg.status != pq.ConnStatus.OK:
                raise
            interrupted = exc
        while (result := self._result(pg)) is not None:  # the rest, up to ReadyForQuery
            if result.status == pq.ExecStatus.COPY_IN:
                self._put(pg, b"", b"batch abandoned")
            elif result.status != pq.ExecStatus.COMMAND_OK:
                failed = failed or result
        if failed is not None:
            sqlstate = (failed.error_field(pq.DiagnosticField.SQLSTATE) or b"").decode()
            try:
                error = psycopg.errors.lookup(sqlstate)
            except KeyError:
                error = psycopg.DatabaseError
            raise error(failed.get_error_message())
        if interrupted is not None:
            raise interrupted
        if done < len(streams):
            raise psycopg.OperationalError(f"the server ran {done} of {len(streams)} COPY")

    def _wait(self, events: int) -> None:
        """Block (without the GIL) until the connection's socket is ready for ``events``."""
        self._selector.modify(self.conn.pgconn.socket, events)
        self._selector.select()

    def _result(self, pg: pq.abc.PGconn) -> pq.abc.PGresult | None:
        """The next result of the running query (None once it has ended)."""
        while pg.is_busy():
            self._wait(selectors.EVENT_READ)
            pg.consume_input()
        return pg.get_result()

    def _put(self, pg: pq.abc.PGconn, data: bytes, error: bytes | None) -> None:
        """Send one COPY stream and its end (``error``: abort the statement with it)."""
        while data and not pg.put_copy_data(data):  # the socket is non-blocking
            self._wait(selectors.EVENT_WRITE)
        while not pg.put_copy_end(error):
            self._wait(selectors.EVENT_WRITE)
        while pg.flush():
            self._wait(selectors.EVENT_READ | selectors.EVENT_WRITE)
            pg.consume_input()

    def close(self) -> None:
        """Flush and close the connection."""
        try:
            self.flush()
        finally:
            self._selector.close()
            self.conn.close()

    def __enter__(self) -> PostgresRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
