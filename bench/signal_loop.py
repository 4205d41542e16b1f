"""Signal-loop benchmark: end-to-end replay, Redis latency, feedback ingest, heatmap update.

Figures:

* **end to end, full replay**: ``SignalPublisher.replay`` of the whole real 5-minute futures
  series (every bar, top 5 zones) on a ``RedisBus``, at full speed, while a plain redis-py
  subscriber in another thread counts what arrives. Signals per second from the first bar to
  the last message received, and delivered/published (must be 100%).
* **bus ceiling with back-pressure**: ``--burst`` prebuilt signals (default 100,000) published
  in one synchronous loop into a 1,000-message outbox, counted by the same raw subscriber. The
  producer outruns the writer thread, so it has to wait (back-pressure) instead of dropping.
* **publish -> receive latency** over Redis loopback: bus A publishes a ``LiquidationSignal``
  (local dispatch, codec, outbox, pipelined ``PUBLISH``); bus B, a second ``RedisBus`` in the
  same process, receives it from its pub/sub listener and decodes it. One message in flight at
  a time, ``--messages`` messages (default 10,000); p50/p99/max of the send->handler time.
* **feedback ingest into DuckDB**: ``--feedback`` ``TradeFeedback`` messages through
  ``FeedbackConsumer.handle`` in batches of ``--batch`` (model dump + one ``INSERT OR IGNORE``
  per batch), and the same messages again (all duplicates).
* **stream -> DuckDB**: the same path fed from a Redis Stream with a consumer group
  (``XADD`` by bus A, ``XREADGROUP`` + insert + ``XACK`` by the consumer), into an in-memory
  store, then into a file store opened per batch (``hold=False``, as ``signals consume`` does
  so that ``serve`` and ``signals status`` can read the file next to it).
* **heatmap update per bar**: ``LiquidationHeatmap.update`` + ``top_signals`` over a real
  5-minute futures series (volume flow: the file has no open interest).

Needs a redis-server at ``--redis-url`` (default ``redis://127.0.0.1:6379/0``). Prints a rich
table and the same as markdown.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import threading
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
    SignalPublisher,
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


async def _stream_ingest(url: str, n: int, store: AnalyticsStore) -> float:
    """Stream -> ``store`` rate; a file store with ``hold=False`` is what ``consume`` uses."""
    symbol = f"BENCH{uuid.uuid4().hex[:6].upper()}"
    topic = f"liquidation:feedback:{symbol}"
    consumer = FeedbackConsumer(store, batch_size=5_000)
    a = RedisBus(RedisBusConfig(url=url), signal_codec())
    b = RedisBus(RedisBusConfig(url=url), signal_codec())
    await a.start()
    await b.start()
    for i in range(n):
        a.publish(topic, _fb(i, "st"))  # waits while the outbox is full (back-pressure)
    await a.flush(60)
    assert a.stats["dropped_stream"] == 0
    stop = asyncio.Event()
    t0 = time.perf_counter()
    task = asyncio.create_task(consumer.run(b, [symbol], stop=stop))
    deadline = time.perf_counter() + 120
    while consumer.stored < n and time.perf_counter() < deadline:
        await asyncio.sleep(0.005)
    if consumer.stored < n:
        raise RuntimeError(f"only {consumer.stored} of {n} stream messages arrived")
    elapsed = time.perf_counter() - t0
    stop.set()
    await task
    await a._client.delete(topic)
    await a.stop()
    await b.stop()
    return n / elapsed


class _RawCounter:
    """A plain redis-py subscriber (not our bus) counting messages in a thread."""

    def __init__(self, url: str, channel: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url)
        self.pubsub = self.client.pubsub()
        self.pubsub.subscribe(channel)
        self.pubsub.get_message(timeout=5.0)  # subscribe confirmation
        self.received = 0
        self.last = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._count, daemon=True)
        self._thread.start()

    def _count(self) -> None:
        while not self._stop.is_set():
            msg = self.pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
            if msg is not None and msg["type"] == "message":
                self.received += 1
                self.last = time.perf_counter()

    async def wait_for(self, n: int, limit_s: float = 120.0) -> None:
        deadline = time.perf_counter() + limit_s
        while self.received < n and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)
        self._stop.set()
        self._thread.join()
        self.pubsub.close()
        self.client.close()


async def _end_to_end(url: str, path: Path) -> tuple[int, int, float, int]:
    """Replay ``path`` through a publisher on Redis; count on a raw subscriber.

    Returns (published, received, signals per second, back-pressure waits).
    """
    loaded = load_ohlcv(path, symbol="BTC/USDT")
    bus = RedisBus(RedisBusConfig(url=url), signal_codec())
    await bus.start()
    pub = SignalPublisher(bus, LiquidationHeatmap(f"E2E{uuid.uuid4().hex[:6].upper()}/USDT"))
    raw = _RawCounter(url, pub.topic)
    t0 = time.perf_counter()
    published = pub.replay(loaded.bars, loaded.extras.get("volume_delta"))
    await bus.flush(120)
    await raw.wait_for(published)
    await bus.stop()
    rate = raw.received / (raw.last - t0) if raw.received else 0.0
    return published, raw.received, rate, bus.stats["backpressure_waits"]


async def _burst(url: str, n: int, buffer_max: int) -> tuple[int, int, float, int]:
    """Publish ``n`` prebuilt signals in one loop; same return as :func:`_end_to_end`."""
    topic = f"liquidation:signals:BURST{uuid.uuid4().hex[:6].upper()}"
    msgs = [
        LiquidationSignal(
            id=f"b{i}",
            symbol="BURST",
            price_level=100.0,
            side="long",
            strength=1.0,
            distance_pct=-0.01,
            confidence=0.5,
            ts=i,
            current_price=101.0,
        )
        for i in range(n)
    ]
    bus = RedisBus(RedisBusConfig(url=url, buffer_max=buffer_max), signal_codec())
    await bus.start()
    raw = _RawCounter(url, topic)
    t0 = time.perf_counter()
    for m in msgs:
        bus.publish(topic, m)
    await bus.flush(120)
    await raw.wait_for(n)
    await bus.stop()
    rate = raw.received / (raw.last - t0) if raw.received else 0.0
    return n, raw.received, rate, bus.stats["backpressure_waits"]


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
    ap.add_argument("--burst", type=int, default=100_000)
    ap.add_argument("--data", type=Path, default=SERIES)
    args = ap.parse_args()

    e2e = {
        "end to end, full replay (heatmap + publish)": asyncio.run(
            _end_to_end(args.redis_url, args.data)
        ),
        "bus ceiling, outbox 1,000 (back-pressure)": asyncio.run(
            _burst(args.redis_url, args.burst, 1_000)
        ),
    }
    lat = asyncio.run(_latency(args.redis_url, args.messages)) / 1e3  # microseconds
    new_rate, dup_rate = _ingest(args.feedback, args.batch)
    stream_rate = asyncio.run(_stream_ingest(args.redis_url, args.stream, AnalyticsStore()))
    with tempfile.TemporaryDirectory() as tmp:
        shared = AnalyticsStore(Path(tmp) / "bench.duckdb", hold=False)
        shared_rate = asyncio.run(_stream_ingest(args.redis_url, args.stream, shared))
        shared_opens = shared.opens
    update_us, top_us, nbars, flow = _heatmap(args.data, 5)

    rows = [
        (
            name,
            f"{rate:,.0f} signals/s",
            f"delivered {got:,}/{sent:,} ({100 * got / sent:.2f}%); back-pressure waits {waits:,}",
        )
        for name, (sent, got, rate, waits) in e2e.items()
    ]
    rows += [
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
        (
            "stream -> DuckDB file, writer releasing the lock",
            f"{shared_rate:,.0f} msg/s",
            f"what `signals consume` does: {shared_opens:,} opens of the file",
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
