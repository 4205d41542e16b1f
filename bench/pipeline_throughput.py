"""Streaming pipeline throughput: normalise -> quality -> book -> bus, per stage and end to end.

Messages are the real Binance BTC/USDT trades (2,001) and the L2 depth stream derived from
the real best bid/ask quotes (451 updates) of the shared data folder, repeated end to end to
``--messages`` (half trades, half depth updates; trade ids and book sequences continued, so
nothing is a duplicate or a gap). They are fed in batches of ``--batch`` messages on one core:

* **normalise**: ccxt unified trade dicts -> ``TradeBatch`` (``normalise_trades``) and book
  deltas -> columns (``delta_columns``); peer: ``pandas.DataFrame(list_of_dicts)``.
* **quality**: duplicate suppression, rolling z-score/IQR outliers, trade-id gaps, live CVD
  (``MarketPipeline.process_batch`` without a bus); peer: pandas rolling mean/std/quantiles.
* **book**: ``L2Book.apply_batch`` with sequence checks; peer: ccxt's own ``OrderBook``
  (``ccxt.async_support.base.ws.order_book``, what ``watch_order_book`` keeps) fed the same
  levels.
* **bus**: one ``tradeloop.market.trades`` and one ``tradeloop.market.book`` message per batch
  on the in-process bus with a subscriber.
* **end to end**: all four per batch.

Each figure is the median of ``--repeat`` runs; the load average is printed. Then, unless
skipped: the failover switch time (two local Binance servers, the primary killed mid-stream;
detection -> takeover, and kill -> takeover) and the PostgreSQL batch write time per 1,000
trades (p50/p99 of 100 batches: encoding + binary ``COPY`` + commit, normal synchronous commit)
on the real server at ``TRADELOOP_TEST_POSTGRES_URL``, side by side with psycopg's own
``Copy.write_row`` (text COPY of row tuples), the two alternating every 10 batches, with the
WAL our batches wrote (kB per batch) and each run's p50/p99.

Usage::

    .venv/bin/python bench/pipeline_throughput.py [--messages N] [--batch B] [--repeat K]
        [--skip-failover] [--skip-postgres] [--skip-pipeline]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tradeloop.adapters.streams.normalise import normalise_trades
from tradeloop.adapters.streams.pipeline import MarketPipeline
from tradeloop.bus.base import InProcessBus
from tradeloop.bus.events import BookTopEvent
from tradeloop.core.market_events import BookDelta, BookSnapshot, TradeBatch
from tradeloop.data.stream.book import L2Book, delta_columns
from tradeloop.testing.streams import load_script

DEFAULT_SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _shared() -> Path:
    override = os.environ.get("TRADELOOP_SHARED_DATA")
    return Path(override) if override else DEFAULT_SHARED


def build(messages: int) -> tuple[list[dict[str, Any]], list[BookDelta]]:
    """ccxt-style trade dicts and book deltas, half each, from the recorded data repeated."""
    script = load_script(_shared(), klines=1)
    n_trades = messages // 2
    n_deltas = messages - n_trades
    trades: list[dict[str, Any]] = []
    span = script.trades[-1].ts_ms - script.trades[0].ts_ms + 1
    first_id = script.trades[0].trade_id
    copy = 0
    while len(trades) < n_trades:
        for t in script.trades:
            if len(trades) == n_trades:
                break
            k = len(trades)
            trades.append({
                "info": {}, "timestamp": t.ts_ms + copy * span, "symbol": "BTC/USDT",
                "id": str(first_id + k), "order": None, "type": None, "side": t.side,
                "takerOrMaker": "taker", "price": t.price, "amount": t.amount,
                "cost": t.price * t.amount, "fee": None,
            })  # fmt: skip
        copy += 1
    deltas: list[BookDelta] = []
    seq = script.first_seq
    while len(deltas) < n_deltas:
        for d in script.depth:
            if len(deltas) == n_deltas:
                break
            deltas.append(BookDelta("binance", "BTC/USDT", d.ts_ms * 10**6, 0, seq, seq - 1,
                                    d.bids, d.asks))  # fmt: skip
            seq += 1
    return trades, deltas


def _clock() -> float:
    """CPU seconds of this process (one thread): the cost on one core, whatever else the
    machine runs; ``--wall`` switches to wall-clock time."""
    return time.perf_counter() if WALL else time.process_time()


WALL = False


def _median(fn: Callable[[], float], repeat: int) -> float:
    return statistics.median(fn() for _ in range(repeat))


def _book() -> L2Book:
    book = L2Book("binance", "BTC/USDT")
    return book


def run(args: argparse.Namespace) -> list[tuple[str, float, float | None]]:
    trades, deltas = build(args.messages)
    n_msgs = len(trades) + len(deltas)
    b = args.batch // 2
    trade_chunks = [trades[i : i + b] for i in range(0, len(trades), b)]
    delta_chunks = [deltas[i : i + b] for i in range(0, len(deltas), b)]
    recv = time.time_ns()
    # warm the numba kernels
    warm = MarketPipeline("warm")
    warm.process_batch(normalise_trades("binance", "BTC/USDT", trades[:2000], recv))
    wb = _book()
    wb.apply_snapshot(BookSnapshot("binance", "BTC/USDT", 0, 0, deltas[0].prev_seq, (), ()))
    wb.apply_batch(*delta_columns(deltas[:100]))

    batches = [normalise_trades("binance", "BTC/USDT", c, recv) for c in trade_chunks]
    columns = [delta_columns(c) for c in delta_chunks]

    def t_normalise() -> float:
        t0 = _clock()
        for c in trade_chunks:
            normalise_trades("binance", "BTC/USDT", c, recv)
        for d in delta_chunks:
            delta_columns(d)
        return n_msgs / (_clock() - t0)

    def p_normalise() -> float:
        t0 = _clock()
        for c in trade_chunks:
            pd.DataFrame(c, columns=["timestamp", "price", "amount", "side", "id"])
        for d in delta_chunks:
            pd.DataFrame([(x.seq, x.prev_seq, p, s) for x in d for p, s in (*x.bids, *x.asks)])
        return n_msgs / (_clock() - t0)

    def t_quality() -> float:
        pipe = MarketPipeline("bench")
        t0 = _clock()
        for batch in batches:
            pipe.process_batch(batch)
        dt = _clock() - t0
        assert pipe.trades_out == len(trades), "quality lost trades"
        return len(trades) / dt

    def p_quality() -> float:
        t0 = _clock()
        for batch in batches:
            s = pd.Series(batch.price)
            r = s.rolling(500, min_periods=50)
            z = (s - r.mean()) / r.std()
            q1, q3 = r.quantile(0.25), r.quantile(0.75)
            _ = (z.abs() > 8) | (s < q1 - 6 * (q3 - q1)) | (s > q3 + 6 * (q3 - q1))
            pd.Series(batch.trade_id).duplicated()
            np.cumsum(batch.amount * batch.side)
        return len(trades) / (_clock() - t0)

    def t_book() -> float:
        book = _book()
        book.apply_snapshot(BookSnapshot("binance", "BTC/USDT", 0, 0, deltas[0].prev_seq, (), ()))
        t0 = _clock()
        for cols in columns:
            used = book.apply_batch(*cols)
            assert used == len(cols[0]), "book gap in the bench stream"
        return len(deltas) / (_clock() - t0)

    def p_book() -> float:
        from ccxt.async_support.base.ws.order_book import OrderBook

        ob = OrderBook({"bids": [], "asks": [], "nonce": deltas[0].prev_seq})
        t0 = _clock()
        for d in deltas:
            for p, s in d.bids:
                ob["bids"].store(p, s)
            for p, s in d.asks:
                ob["asks"].store(p, s)
            ob["nonce"] = d.seq
        return len(deltas) / (_clock() - t0)

    def t_bus() -> float:
        bus = InProcessBus()
        got: list[object] = []
        bus.subscribe("tradeloop.market.trades", got.append)
        bus.subscribe("tradeloop.market.book", got.append)
        MarketPipeline("bench", bus=bus)
        book = _book()
        book.apply_snapshot(BookSnapshot("binance", "BTC/USDT", 0, 0, deltas[0].prev_seq, (), ()))
        book.apply_batch(*delta_columns(deltas[:50]))
        from tradeloop.bus.events import MarketTradesEvent

        t0 = _clock()
        for batch in batches:
            bus.publish(
                "tradeloop.market.trades",
                MarketTradesEvent.model_construct(
                    v=1, run="bench", ts=int(batch.ts[-1]), venue=batch.venue,
                    symbol=batch.symbol, trade_ts=batch.ts.tolist(), price=batch.price.tolist(),
                    amount=batch.amount.tolist(), side=batch.side.tolist(),
                    trade_id=batch.trade_id.tolist(), outlier=[False] * len(batch), cvd=0.0,
                ),
            )  # fmt: skip
            top = book.top()
            assert top is not None
            bus.publish("tradeloop.market.book", BookTopEvent(
                run="bench", ts=top.ts, venue="binance", symbol=top.symbol, seq=top.seq,
                bid=top.bid, bid_size=top.bid_size, ask=top.ask, ask_size=top.ask_size,
                spread=top.spread, microprice=top.microprice, imbalance=top.imbalance))  # fmt: skip
        dt = _clock() - t0
        assert len(got) == 2 * len(batches)
        return n_msgs / dt

    def t_end_to_end() -> float:
        bus = InProcessBus()
        got: list[object] = []
        bus.subscribe("tradeloop.market.trades", got.append)
        bus.subscribe("tradeloop.market.book", got.append)
        pipe = MarketPipeline("bench", bus=bus)
        book = _book()
        book.apply_snapshot(BookSnapshot("binance", "BTC/USDT", 0, 0, deltas[0].prev_seq, (), ()))
        t0 = _clock()
        for tc, dc in zip(trade_chunks, delta_chunks, strict=False):
            batch = normalise_trades("binance", "BTC/USDT", tc, recv)
            pipe.process_batch(batch)
            used = book.apply_batch(*delta_columns(dc))
            assert used == len(dc)
            top = book.top()
            if top is not None:
                bus.publish("tradeloop.market.book", BookTopEvent(
                    run="bench", ts=top.ts, venue="binance", symbol=top.symbol, seq=top.seq,
                    bid=top.bid, bid_size=top.bid_size, ask=top.ask, ask_size=top.ask_size,
                    spread=top.spread, microprice=top.microprice,
                    imbalance=top.imbalance))  # fmt: skip
        dt = _clock() - t0
        assert pipe.trades_out == len(trades)
        assert len(got) == 2 * len(trade_chunks)
        return n_msgs / dt

    rows: list[tuple[str, float, float | None]] = []
    for name, ours, peer in (
        ("normalise", t_normalise, p_normalise),
        ("quality", t_quality, p_quality),
        ("book", t_book, p_book),
        ("bus", t_bus, None),
        ("end to end", t_end_to_end, None),
    ):
        rows.append((name, _median(ours, args.repeat),
                     _median(peer, args.repeat) if peer is not None else None))  # fmt: skip
    return rows


def failover(repeat: int) -> list[tuple[float, float]]:
    """(detection -> takeover ms, kill -> takeover ms) per run."""
    from tradeloop.adapters.streams.ccxt_source import CcxtMarketSource
    from tradeloop.adapters.streams.service import MarketStream
    from tradeloop.core.market_events import MarketTrade
    from tradeloop.testing.streams import StreamServer, ccxt_config

    script = load_script(_shared(), klines=10)
    out = []
    for _ in range(repeat):
        epoch = time.time() + 1.5
        with (
            StreamServer("binance", script, interval_s=0.002, epoch=epoch, join="live") as a,
            StreamServer("binance", script, interval_s=0.002, epoch=epoch, join="live") as b,
        ):

            def src(name: str, server: StreamServer) -> CcxtMarketSource:
                return CcxtMarketSource(
                    "binance", ["BTC/USDT"], ["trades"], name=name,
                    config=ccxt_config("binance", ["BTC/USDT"]), urls=server.urls(),
                )  # fmt: skip

            stream = MarketStream(src("primary", a), MarketPipeline("f"),
                                  backup=src("backup", b), stall_s=0.5).start()  # fmt: skip
            try:
                stream.run_for(
                    20.0, until=lambda ev: sum(isinstance(e, MarketTrade) for e in ev) > 200
                )
                killed = time.monotonic()
                a.kill()
                router = stream.router
                assert router is not None
                deadline = time.monotonic() + 10
                while not router.switches and time.monotonic() < deadline:
                    stream.poll(0.001)
            finally:
                stream.stop()
            sw = router.switches[0]
            out.append((sw.switch_ms, (sw.switched_at - killed) * 1e3))
    return out


def _peer_batches(url: str, table: str, events: list[Any], rows: int) -> list[float]:
    """Seconds per batch of the peer: psycopg's own ``Copy.write_row`` of row tuples (text
    COPY) into the partitioned parent table, one COPY (transaction) per batch, the time column
    converted per row."""
    import psycopg

    from tradeloop.data.stream.pg_store import COLUMNS

    cols = ", ".join(n for n, _ in COLUMNS["trades"])
    out = []
    with psycopg.connect(url, autocommit=True) as conn:
        for i in range(0, len(events) - rows + 1, rows):
            t0 = time.perf_counter()
            stmt = f"copy {table} ({cols}) from stdin"
            with conn.cursor() as cur, cur.copy(stmt) as copy:
                for e in events[i : i + rows]:
                    copy.write_row(
                        (datetime.fromtimestamp(e.ts / 1e9, UTC), e.venue, e.symbol, e.ts,
                         e.recv_ts, e.price, e.amount, e.side, e.trade_id)
                    )  # fmt: skip
            out.append(time.perf_counter() - t0)
    return out


def postgres(repeat: int, batches: int = 100) -> list[tuple[float, float, float, float, float]]:
    """(ours p50, ours p99, peer p50, peer p99) ms of COPY batches of 1,000 trades and ours'
    WAL kB per batch, per run; ours and the peer alternate in each run (same server, same
    moment)."""
    import psycopg

    from tradeloop.core.market_events import MarketTrade
    from tradeloop.data.stream.pg_store import PostgresRecorder

    url = os.environ.get("TRADELOOP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    trades, _ = build(2 * 1000 * (batches + 1))
    batch = normalise_trades("binance", "BTC/USDT", trades, time.time_ns())
    events: list[MarketTrade] = TradeBatch.to_trades(batch)
    kinds = ("trades", "bars", "book", "funding", "open_interest")

    def drop(conn: Any) -> None:
        for kind in kinds:
            conn.execute(f"drop table if exists bench_stream_{kind} cascade")
            conn.execute(f"drop table if exists bench_peer_{kind} cascade")

    out = []
    for _ in range(repeat):
        with psycopg.connect(url, autocommit=True) as conn:
            drop(conn)
        rec = PostgresRecorder(url, prefix="bench_stream_", batch_rows=1000, timescale=False)
        peer = PostgresRecorder(url, prefix="bench_peer_", batch_rows=1000, timescale=False)
        # steady state: each side's first batch (the day's partition created, once a day) is
        # written before the timed ones
        rec.write(events[:1000])
        peer.write(events[:1000])
        peer.close()
        ours: list[float] = []
        theirs: list[float] = []
        wal = 0.0  # bytes of WAL our batches wrote (the peer writes between, never during)
        with psycopg.connect(url, autocommit=True) as mon:
            lsn = "select pg_current_wal_insert_lsn()"
            for i in range(1000, len(events), 10_000):  # alternate chunks of 10 batches
                chunk = events[i : i + 10_000]
                before = len(rec.batch_seconds)
                start = mon.execute(lsn).fetchone()
                rec.write(chunk)
                diff = mon.execute(f"select pg_wal_lsn_diff(({lsn}), %s)", start).fetchone()
                assert diff is not None
                wal += float(diff[0])
                ours += rec.batch_seconds[before:]
                theirs += _peer_batches(url, "bench_peer_trades", chunk, 1000)
        rec.close()
        ms, pms = np.array(ours) * 1e3, np.array(theirs) * 1e3
        out.append((float(np.percentile(ms, 50)), float(np.percentile(ms, 99)),
                    float(np.percentile(pms, 50)), float(np.percentile(pms, 99)),
                    wal / len(ours) / 1e3))  # fmt: skip
        with psycopg.connect(url, autocommit=True) as conn:
            n = conn.execute("select count(*) from bench_stream_trades").fetchone()
            m = conn.execute("select count(*) from bench_peer_trades").fetchone()
            assert n is not None
            assert m is not None
            assert n[0] == len(events)
            assert m[0] == len(events)
            drop(conn)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-failover", action="store_true")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-pipeline", action="store_true", help="only failover / PostgreSQL")
    parser.add_argument("--wall", action="store_true", help="time by wall clock, not CPU time")
    args = parser.parse_args()
    global WALL
    WALL = args.wall
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    rows = [] if args.skip_pipeline else run(args)
    clock = "wall-clock" if args.wall else "CPU"
    if rows:
        print(f"\n{args.messages:,} messages (half trades, half book updates), batches of "
              f"{args.batch:,}, one core ({clock} time), median of {args.repeat}\n")  # fmt: skip
        print("| stage | msgs/s | peer | peer msgs/s | ratio |")
        print("|---|---:|---|---:|---:|")
    peers = {"normalise": "pandas DataFrame", "quality": "pandas rolling",
             "book": "ccxt OrderBook"}  # fmt: skip
    for name, ours, peer in rows:
        ratio = f"{ours / peer:.1f}x" if peer else "-"
        peer_s = f"{peer:,.0f}" if peer else "-"
        print(f"| {name} | {ours:,.0f} | {peers.get(name, '-')} | {peer_s} | {ratio} |")
    if not args.skip_failover:
        runs = failover(args.repeat)
        det = statistics.median(r[0] for r in runs)
        kill = statistics.median(r[1] for r in runs)
        print(f"\n| failover | ms (median of {args.repeat}) |\n|---|---:|")
        print(f"| detection -> backup takes over | {det:.2f} |")
        print(f"| primary killed -> backup takes over | {kill:.2f} |")
    if not args.skip_postgres:
        runs_pg = postgres(args.repeat)
        med = [statistics.median(r[k] for r in runs_pg) for k in range(4)]
        print(f"\n| PostgreSQL batch of 1,000 trades (ms, median of {args.repeat} runs of "
              f"100 batches) | ours: binary COPY | peer: psycopg write_row | ratio |")  # fmt: skip
        print("|---|---:|---:|---:|")
        print(f"| p50 | {med[0]:.2f} | {med[2]:.2f} | {med[2] / med[0]:.1f}x |")
        print(f"| p99 | {med[1]:.2f} | {med[3]:.2f} | {med[3] / med[1]:.1f}x |")
        per_run = ", ".join(f"{r[0]:.2f} / {r[1]:.2f}" for r in runs_pg)
        wal_kb = statistics.median(r[4] for r in runs_pg)
        print(f"\nours: WAL {wal_kb:.1f} kB per batch; per run (p50 / p99 ms): {per_run}")
    print(f"\nload at start: {load}")
    print(
        "load at end:   "
        + subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    )


if __name__ == "__main__":
    main()
