"""Signal-loop benchmark: Redis publish->receive latency, feedback ingest rate, heatmap update.

Figures:

* **publish -> receive latency** over Redis loopback: bus A publishes a ``LiquidationSignal``
  (local dispatch, codec, outbox, pipelined ``PUBLISH``); bus B, a second ``RedisBus`` in the
  same process, receives it from its pub/sub listener and decodes it. One message in flight at
  a time, ``--messages`` messages (default 10,000); p50/p99/max of the send->handler time.
* **feedback ingest into DuckDB**: ``--feedback`` ``TradeFeedback`` messages through
  ``FeedbackConsumer.handle`` in batches of ``--batch`` (model dump + one ``INSERT OR IGNORE``
  per batch), and the same messages again (all duplicates).
* **stream -> DuckDB**: the same path fed from a Redis Stream with a consumer group
  (``XADD`` by bus A, ``XREADGROUP`` + insert + ``XACK`` by the consumer).
* **heatmap update per bar**: ``LiquidationHeatmap.update`` + ``top_signals`` over a real
  5-minute futures series (volume flow: the file has no open interest).

Needs a redis-server at ``--redis-url`` (default ``redis://127.0.0.1:6379/0``). Prints a rich
table and the same as markdown.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from tradeloop.bus import RedisBus, RedisBusConfig
from tradeloop.data.loader import load_ohlcv
from tradeloop.signals import (
    FeedbackConsumer,
    LiquidationHeatmap,
    LiquidationSignal,
    TradeFeedback,
    signal_codec,
)
from tradeloop.store import AnalyticsStore

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("TRADELOOP_SHARED_DATA", REPO.parent / "shared" / "data"))
SERIES = DATA / "crypto_futures" / "binance_usdm_2025" / "BTC_USDT_USDT-5m-futures.feather"


def _fb(i: int, tag: str) -> TradeFeedback:
    return TradeFeedback(
        signal_id=f"{tag}-{i}",
        symbol="BTCUSDT",
        side="long" if i % 2 else "short",
        entry_price=100.0,
        exit_price=101.0,
        entry_ts=i,
        exit_ts=i + 1,
        pnl=1.0 - (i % 3),
        pnl_pct=0.01,
        source="bench",
    )


async def _latency(url: str, n: int) -> np.ndarray:
    topic = f"liquidation:signals:BENCH{uuid.uuid4().hex[:6]}"
    a = RedisBus(RedisBusConfig(url=url), signal_codec())
    b = RedisBus(RedisBusConfig(url=url), signal_codec())
    await a.start()
    await b.start()
    got = asyncio.Event()
    out = np.empty(n, dtype=np.int64)
    idx = [0]

    def on_signal(msg: object) -> None:
        assert isinstance(msg, LiquidationSignal)
        out[idx[0]] = time.perf_counter_ns() - msg.ts
        idx[0] += 1
        got.set()

    b.subscribe(topic, on_signal)
    await asyncio.sleep(0.3)
    for i in range(n + 200):  # the first 200 warm up and are not kept
        got.clear()
        if i == 200:
            idx[0] = 0
        a.publish(
            topic,
            LiquidationSignal(
                id=f"b{i}",
                symbol="BENCH",
                price_level=100.0,
                side="long",
                strength=1.0,
                distance_pct=-0.01,
                confidence=0.5,
                ts=time.perf_counter_ns(),
                current_price=101.0,
            ),
        )
        await asyncio.wait_for(got.wait(), 5.0)
    await a.stop()
    await b.stop()
    return out[:n]


def _ingest(n: int, batch: int) -> tuple[float, float]:
    store = AnalyticsStore()
    consumer = FeedbackConsumer(store, batch_size=batch)
    msgs = [_fb(i, "ing") for i in range(n)]
    t0 = time.perf_counter()
    for m in msgs:
        consumer.handle(m)
    consumer.flush()
    first = time.perf_counter() - t0
    assert store.feedback_count() == n
    t0 = time.perf_counter()
    for m in msgs:
        consumer.handle(m)
    consumer.flush()
    again = time.perf_counter() - t0
    assert store.feedback_count() == n
    return n / first, n / again


async def _stream_ingest(url: str, n: int) -> float:
    symbol = f"BENCH{uuid.uuid4().hex[:6].upper()}"
    topic = f"liquidation:feedback:{symbol}"
    store = AnalyticsStore()
    consumer = FeedbackConsumer(store, batch_size=5_000)
    a = RedisBus(RedisBusConfig(url=url), signal_codec())
    b = RedisBus(RedisBusConfig(url=url), signal_codec())
    await a.start()
    await b.start()
    for i in range(n):
        a.publish(topic, _fb(i, "st"))
        if i % 1000 == 999:  # let the writer drain; the outbox is bounded
            await a.flush(60)
    await a.flush(60)
    assert a.stats["dropped_stream"] == 0
    stop = asyncio.Event()
    t0 = time.perf_counter()
    task = asyncio.create_task(consumer.run(b, [symbol], stop=stop))
    deadline = time.perf_counter() + 120
    while store.feedback_count() < n and time.perf_counter() < deadline:
        await asyncio.sleep(0.005)
    if store.feedback_count() < n:
        raise RuntimeError(f"only {store.feedback_count()} of {n} stream messages arrived")
    elapsed = time.perf_counter() - t0
    stop.set()
    await task
    await a._client.delete(topic)
    await a.stop()
    await b.stop()
    return n / elapsed


def _heatmap(path: Path, top_n: int) -> tuple[float, float, int, str | None]:
    bars = load_ohlcv(path, symbol="BTC/USDT").bars
    hm = LiquidationHeatmap("BTC/USDT")
    cols = [bars.ts, bars.open, bars.high, bars.low, bars.close, bars.volume]
    rows = list(zip(*(c.tolist() for c in cols), strict=True))
    t0 = time.perf_counter()
    for r in rows:
        hm.update(*r)
    t1 = time.perf_counter()
    for _ in rows:
        hm.top_signals(top_n)
    t2 = time.perf_counter()
    return (t1 - t0) / len(rows) * 1e6, (t2 - t1) / len(rows) * 1e6, len(rows), hm.flow_source


def main() -> None:
    """Run the benchmark and print the tables."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--feedback", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=5_000)
    ap.add_argument("--stream", type=int, default=20_000)
    ap.add_argument("--data", type=Path, default=SERIES)
    args = ap.parse_args()

    lat = asyncio.run(_latency(args.redis_url, args.messages)) / 1e3  # microseconds
    new_rate, dup_rate = _ingest(args.feedback, args.batch)
    stream_rate = asyncio.run(_stream_ingest(args.redis_url, args.stream))
    update_us, top_us, nbars, flow = _heatmap(args.data, 5)

    rows = [
        ("publish->receive p50 (Redis loopback)", f"{np.percentile(lat, 50):.0f} µs", "-"),
        (
            "publish->receive p99",
            f"{np.percentile(lat, 99):.0f} µs",
            f"target < 2,000 µs: {'met' if np.percentile(lat, 99) < 2000 else 'MISSED'}",
        ),
        ("publish->receive max", f"{lat.max():.0f} µs", f"{args.messages:,} messages"),
        (
            "feedback ingest, new rows",
            f"{new_rate:,.0f} msg/s",
            f"batch {args.batch:,}; target >= 10,000: {'met' if new_rate >= 1e4 else 'MISSED'}",
        ),
        ("feedback ingest, all duplicates", f"{dup_rate:,.0f} msg/s", "stored once"),
        (
            "stream -> DuckDB (XREADGROUP+insert+XACK)",
            f"{stream_rate:,.0f} msg/s",
            f"{args.stream:,} messages",
        ),
        ("heatmap update per bar", f"{update_us:.1f} µs", f"{nbars:,} bars, flow from {flow}"),
        ("top-5 zones -> signals per update", f"{top_us:.1f} µs", "5 LiquidationSignal built"),
    ]
    table = Table(title="signal loop")
    for col in ("figure", "value", "note"):
        table.add_column(col)
    for r in rows:
        table.add_row(*r)
    Console().print(table)
    print("\n| figure | value | note |\n|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} |")


if __name__ == "__main__":
    main()
