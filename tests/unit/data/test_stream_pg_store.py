"""Batched PostgreSQL recording: binary COPY from columns, read back from the real server.

Every kind goes in, batches split at ``batch_rows`` and across UTC days, and what the server
holds equals the events field by field (text with tabs, backslashes, newlines and non-ASCII
characters, negative and huge numbers, both booleans)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from tradeloop.core.bar import Bar
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
from tradeloop.data.stream.pg_store import COLUMNS, PostgresRecorder, stored_order

DAY = 86_400 * 10**9
T0 = 1_704_153_600 * 10**9 - 25 * 10**8  # 2024-01-01 23:59:57.5 UTC: a batch crosses midnight


@pytest.fixture
def prefix(pg_url: str) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:10]}_"
    yield name
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for kind in COLUMNS:
            conn.execute(f"drop table if exists {name}{kind} cascade")


def _trades(n: int) -> list[MarketTrade]:
    ids = ["a\tb", "back\\slash", "new\nline", "café €", "", "x" * 40]
    return [
        MarketTrade(
            "binance" if i % 7 else "bybit", "BTC/USDT", T0 + i * 10**8, T0 + i * 10**8 + 5,
            100.0 + i * 0.25 - (1e6 if i == 3 else 0), 0.001 * (i + 1), (1, -1, 0)[i % 3],
            f"{ids[i % len(ids)]}{i}",
        )
        for i in range(n)
    ]  # fmt: skip


@pytest.mark.parametrize("copy_rows", [500, 4])  # one COPY statement per batch, or three
def test_every_kind_round_trips_through_binary_copy(
    pg_url: str, prefix: str, copy_rows: int
) -> None:
    trades = _trades(57)  # 57 trades 0.1 s apart: batch 3 spans midnight
    bar = Bar("ETH/USDT", "1m", T0, 1.0, 2.0, 0.5, 1.5, 10.0)
    events: list[MarketEvent] = [
        *trades[:20],
        StreamBar("okx", T0 + 9, bar, True),
        StreamBar("okx", T0 + 9, Bar("ETH/USDT", "1m", T0 + DAY, 2, 3, 1, 2, 0.0), False),
        BookSnapshot("kraken", "BTC/USD", T0, T0 + 1, 41, ((100.0, 1.0), (99.5, 2.0)),
                     ((100.5, 3.0),)),
        BookDelta("kraken", "BTC/USD", T0 + 1, T0 + 2, 42, 41, ((100.0, 0.0),), ()),
        *trades[20:],
        FundingRate("bybit", "BTC/USDT:USDT", T0, T0 + 3, -0.0001, T0 + 8 * 3600 * 10**9),
        OpenInterest("binance", "BTC/USDT:USDT", T0, T0 + 4, 123456.789),
    ]  # fmt: skip
    with PostgresRecorder(
        pg_url, prefix=prefix, batch_rows=10, copy_rows=copy_rows, timescale=False
    ) as rec:
        rec.write(events)
        assert rec.rows_written == 50  # five full trade batches so far; the rest is buffered
    assert rec.rows_written == 57 + 2 + 4 + 1 + 1
    assert len(rec.batch_seconds) == 6 + 4  # trades: 5 full + 1 of 7; one per other kind
    with psycopg.connect(pg_url) as conn:
        got = conn.execute(
            f"select time, venue, symbol, ts, recv_ts, price, amount, side, trade_id "
            f"from {prefix}trades order by ts"
        ).fetchall()
        assert [tuple(r[1:]) for r in got] == [
            (t.venue, t.symbol, t.ts, t.recv_ts, t.price, t.amount, t.side, t.trade_id)
            for t in trades
        ]
        assert [r[0] for r in got] == [
            datetime.fromtimestamp(t.ts // 1000 / 1e6, UTC) for t in trades
        ]
        days = conn.execute(
            f"select count(*) from pg_inherits where inhparent = '{prefix}trades'::regclass"
        ).fetchone()
        assert days == (2,)
        bars = conn.execute(
            f"select venue, symbol, timeframe, ts, recv_ts, open, high, low, close, volume, "
            f"closed from {prefix}bars order by ts"
        ).fetchall()
        assert bars == [
            ("okx", "ETH/USDT", "1m", T0, T0 + 9, 1.0, 2.0, 0.5, 1.5, 10.0, True),
            ("okx", "ETH/USDT", "1m", T0 + DAY, T0 + 9, 2.0, 3.0, 1.0, 2.0, 0.0, False),
        ]
        book = conn.execute(
            f"select seq, prev_seq, snapshot, side, price, size from {prefix}book "
            f"order by seq, side desc, price desc"
        ).fetchall()
        assert book == [
            (41, 41, True, 1, 100.0, 1.0), (41, 41, True, 1, 99.5, 2.0),
            (41, 41, True, -1, 100.5, 3.0), (42, 41, False, 1, 100.0, 0.0),
        ]  # fmt: skip
        assert conn.execute(f"select rate, next_ts from {prefix}funding").fetchall() == [
            (-0.0001, T0 + 8 * 3600 * 10**9)
        ]
        assert conn.execute(f"select value from {prefix}open_interest").fetchall() == [
            (123456.789,)
        ]


def test_batches_of_one_day_go_straight_to_the_days_partition(pg_url: str, prefix: str) -> None:
    """After the first batch of a day, later batches of that day skip partition creation and
    row routing (COPY into the partition itself); a batch of a new day creates it."""
    rec = PostgresRecorder(pg_url, prefix=prefix, batch_rows=5, timescale=False)
    statements: list[str] = []
    execute = rec.conn.execute

    def spy(query: object, *args: object, **kwargs: object) -> object:
        statements.append(str(query))
        return execute(query, *args, **kwargs)  # type: ignore[arg-type]

    rec.conn.execute = spy  # type: ignore[method-assign]
    trades = [
        MarketTrade("binance", "BTC/USDT", T0 - 60 * 10**9 + i, 0, 1.0, 1.0, 1, str(i))
        for i in range(20)
    ]
    rec.write(trades)  # four batches, all on the first day: one partition created
    rec.write(
        [MarketTrade("binance", "BTC/USDT", T0 + DAY, 0, 1.0, 1.0, 1, f"n{i}") for i in range(5)]
    )
    rec.close()
    assert sum("partition of" in s for s in statements) == 2
    assert rec.rows_written == 25
    with psycopg.connect(pg_url) as conn:
        counts = conn.execute(
            f"select tableoid::regclass::text, count(*) from {prefix}trades group by 1 order by 1"
        ).fetchall()
    assert counts == [(f"{prefix}trades_20240101", 20), (f"{prefix}trades_20240102", 5)]


def test_new_tables_store_columns_widest_first_and_old_tables_take_the_same_rows(
    pg_url: str, prefix: str
) -> None:
    """A new table stores its fixed-width columns widest first and text last, so its rows
    carry no alignment padding; a table an older recorder created in ``COLUMNS`` order is
    written by the same COPY and holds the same rows (no migration needed)."""
    old = f"{prefix}old_"
    body = ", ".join(f"{n} {t}" for n, t in COLUMNS["trades"])
    trades = _trades(40)
    cols = "time, venue, symbol, ts, recv_ts, price, amount, side, trade_id"
    try:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"create table {old}trades ({body}) partition by range (time)")
        for name in (prefix, old):
            with PostgresRecorder(pg_url, prefix=name, batch_rows=15, timescale=False) as rec:
                rec.write(trades)
            assert rec.rows_written == 40
        with psycopg.connect(pg_url) as conn:
            layout = {
                name: conn.execute(
                    "select column_name, data_type from information_schema.columns "
                    "where table_name = %s order by ordinal_position",
                    (f"{name}trades",),
                ).fetchall()
                for name in (prefix, old)
            }
            rows = {
                name: conn.execute(f"select {cols} from {name}trades order by ts").fetchall()
                for name in (prefix, old)
            }
            width = {
                name: conn.execute(f"select sum(pg_column_size(t.*)) from {name}trades t")
                .fetchall()[0][0]
                for name in (prefix, old)
            }  # fmt: skip
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            for kind in COLUMNS:
                conn.execute(f"drop table if exists {old}{kind} cascade")
    assert [n for n, _ in layout[prefix]] == [
        "time", "ts", "recv_ts", "price", "amount", "side", "venue", "symbol", "trade_id",
    ]  # fmt: skip
    assert [n for n, _ in layout[old]] == [n for n, _ in COLUMNS["trades"]]
    assert dict(layout[prefix]) == dict(layout[old])
    assert rows[prefix] == rows[old]
    assert [r[1:] for r in rows[prefix]] == [
        (t.venue, t.symbol, t.ts, t.recv_ts, t.price, t.amount, t.side, t.trade_id) for t in trades
    ]
    # the old order pads ``ts`` to 8 bytes after venue and symbol: 7 bytes per row where they
    # take 8 + 9 bytes ("binance"), 1 where they take 6 + 9 ("bybit"); the new order none
    padding = sum(7 if t.venue == "binance" else 1 for t in trades)
    assert width[old] - width[prefix] == padding


def test_stored_order_puts_no_narrow_column_before_a_wider_one() -> None:
    """Every kind: fixed-width columns in non-increasing width, then the text columns; the
    same set of columns and types as ``COLUMNS``."""
    width = {"timestamptz": 8, "bigint": 8, "double precision": 8, "smallint": 2, "boolean": 1}
    for kind, cols in COLUMNS.items():
        order = stored_order(kind)
        assert sorted(order) == sorted(cols)
        fixed = [width[t] for _, t in order if t != "text"]
        assert fixed == sorted(fixed, reverse=True)
        assert all(t == "text" for _, t in order[len(fixed) :])
    assert [n for n, _ in stored_order("book")][5:9] == ["price", "size", "side", "snapshot"]


def _statement_log(conn: psycopg.Connection[Any], table: str, log: str) -> None:
    """Log one row per INSERT statement on ``table``: its transaction and row count."""
    conn.execute(f"create table {log} (xid bigint, n bigint)")
    conn.execute(
        f"create function {log}_fn() returns trigger language plpgsql as $$ begin "
        f"insert into {log} select txid_current(), count(*) from new_rows; return null; end $$"
    )
    conn.execute(
        f"create trigger {log}_t after insert on {table} referencing new table as new_rows "
        f"for each statement execute function {log}_fn()"
    )


def test_a_batch_is_several_copy_statements_in_one_transaction(pg_url: str, prefix: str) -> None:
    """``copy_rows`` splits each batch into COPY statements of at most that many rows, all in
    the batch's one transaction; the rows read back equal the events, in order."""
    trades = [
        MarketTrade("binance", "BTC/USDT", T0 - 60 * 10**9 + i, i, 1.0 + i, 0.5, 1, f"id{i}")
        for i in range(25)
    ]
    day = f"{prefix}trades_20240101"
    log = f"{prefix}log"
    rec = PostgresRecorder(pg_url, prefix=prefix, batch_rows=10, copy_rows=3, timescale=False)
    try:
        rec.write(trades[:1])
        rec.flush()  # the day's partition exists: a statement trigger on it logs each COPY
        with psycopg.connect(pg_url, autocommit=True) as conn:
            _statement_log(conn, day, log)
        rec.write(trades[1:])  # batches of 10, 10; 4 buffered
        rec.close()
        with psycopg.connect(pg_url) as conn:
            statements = conn.execute(f"select xid, n from {log} order by xid").fetchall()
            got = conn.execute(f"select ts, recv_ts, price, trade_id from {day} order by ts")
            rows = got.fetchall()
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"drop table if exists {log}")
            conn.execute(f"drop function if exists {log}_fn() cascade")
    by_xid: dict[int, list[int]] = {}
    for xid, n in statements:
        by_xid.setdefault(xid, []).append(n)
    # each batch: one transaction of ceil(rows / 3) statements of near-equal size
    assert sorted(sorted(v) for v in by_xid.values()) == [[2, 2], [2, 2, 3, 3], [2, 2, 3, 3]]
    assert rows == [(t.ts, t.recv_ts, t.price, t.trade_id) for t in trades]
    assert rec.rows_written == 25
    assert len(rec.batch_seconds) == 4


def test_a_failing_statement_rolls_the_whole_batch_back(pg_url: str, prefix: str) -> None:
    """A row the server rejects (NUL in text) in the batch's last COPY statement: the
    statements before it are rolled back with it, the server's error is raised, and the
    next batch is written on the same connection."""
    good = [
        MarketTrade("binance", "BTC/USDT", T0 - 60 * 10**9 + i, 0, 1.0, 1.0, 1, f"g{i}")
        for i in range(20)
    ]
    bad = [*good[:9], MarketTrade("binance", "BTC/USDT", T0 - 10**9, 0, 1.0, 1.0, 1, "nul\x00")]
    rec = PostgresRecorder(pg_url, prefix=prefix, batch_rows=10, copy_rows=4, timescale=False)
    rec.write(good[:10])
    with pytest.raises(psycopg.errors.CharacterNotInRepertoire, match="0x00"):
        rec.write(bad)
    rec.write(good[10:])
    rec.close()
    assert rec.rows_written == 20
    with psycopg.connect(pg_url) as conn:
        ids = conn.execute(f"select trade_id from {prefix}trades order by ts").fetchall()
    assert ids == [(t.trade_id,) for t in good]


def test_copy_rows_must_be_positive(pg_url: str, prefix: str) -> None:
    with pytest.raises(ConfigError, match="copy_rows"):
        PostgresRecorder(pg_url, prefix=prefix, copy_rows=0, timescale=False)


def test_one_write_of_many_batches_merges_the_buffer_once(pg_url: str, prefix: str) -> None:
    """A write of 23 batches and a part merges the buffered rows once (not once per batch:
    that costs the square of the write's rows) and writes every row in order."""
    trades = [
        MarketTrade("binance", "BTC/USDT", T0 - 3600 * 10**9 + i, i, 1.0, 0.5, 1, f"m{i}")
        for i in range(2_345)
    ]
    rec = PostgresRecorder(pg_url, prefix=prefix, batch_rows=100, timescale=False)
    takes: list[int] = []
    take = rec._take

    def spy(kind: str, rows: int) -> dict[str, Any]:
        takes.append(rows)
        return take(kind, rows)

    rec._take = spy  # type: ignore[method-assign]
    rec.write(trades[:7])  # buffered: no batch yet
    rec.write(trades[7:])
    assert takes == [2_345]
    assert rec.rows_written == 2_300
    rec.close()  # the last 45
    assert takes == [2_345, 45]
    with psycopg.connect(pg_url) as conn:
        got = conn.execute(f"select ts, trade_id from {prefix}trades order by ts").fetchall()
    assert got == [(t.ts, t.trade_id) for t in trades]


def test_a_failing_batch_in_a_write_keeps_the_batches_after_it(pg_url: str, prefix: str) -> None:
    """Three batches in one write, the second rejected: the first is written, the second is
    not, the third stays buffered and is written by the next flush."""
    trades = [
        MarketTrade("binance", "BTC/USDT", T0 - 60 * 10**9 + i, 0, 1.0, 1.0, 1, f"k{i}")
        for i in range(30)
    ]
    trades[15] = MarketTrade("binance", "BTC/USDT", trades[15].ts, 0, 1.0, 1.0, 1, "\x00")
    rec = PostgresRecorder(pg_url, prefix=prefix, batch_rows=10, timescale=False)
    with pytest.raises(psycopg.errors.CharacterNotInRepertoire):
        rec.write(trades)
    assert rec.rows_written == 10
    rec.close()
    assert rec.rows_written == 20
    with psycopg.connect(pg_url) as conn:
        ids = conn.execute(f"select trade_id from {prefix}trades order by ts").fetchall()
    assert ids == [(t.trade_id,) for t in trades[:10] + trades[20:]]
