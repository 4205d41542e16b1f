"""Step events are delivered at least once across a crash between the state commit and the
publish: the step's outbox is stored with the step and published after the restart; a raw
Redis stream reader sees every event id, and the feedback consumer counts each trade once."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import redis

from tradeloop.bus.base import InProcessBus, MessageBus
from tradeloop.bus.codec import MessageCodec
from tradeloop.bus.events import TOPICS
from tradeloop.bus.redis_bus import RedisBus, RedisBusConfig
from tradeloop.core.bar import BarArrays
from tradeloop.data.loader import load_ohlcv
from tradeloop.engine.config import RunConfig
from tradeloop.engine.feedback import FeedbackLoop
from tradeloop.engine.live import LiveKernel
from tradeloop.signals.heatmap import HeatmapConfig
from tradeloop.store.analytics import AnalyticsStore
from tradeloop.store.state import SqliteStateStore
from tradeloop.strategy.examples.sma_cross import SmaCross
from tradeloop.testing.kernels import bar_row, test_instrument

WARMUP, END = 300, 1_200
#: the run's actions in order: each bar's open (a price update), then its close
ACTIONS = [(kind, i) for i in range(WARMUP, END) for kind in ("open", "close")]


class CrashError(Exception):
    """The process dies here (nothing after it runs in this process)."""


def _kernel(run_id: str, store: SqliteStateStore, bus: MessageBus, bars: BarArrays) -> LiveKernel:
    sym = bars.symbol
    return LiveKernel(
        SmaCross(fast=5, slow=20), {sym: test_instrument(sym)}, "1m",
        RunConfig(fee=0.001, trade_start=int(bars.ts[WARMUP])), run_id=run_id, store=store,
        bus=bus,
    )  # fmt: skip


def _act(kernel: LiveKernel, bars: BarArrays, start: int) -> int:
    """Run the actions from ``start``; returns the index of the one that crashed (or len)."""
    for n in range(start, len(ACTIONS)):
        kind, i = ACTIONS[n]
        row = bar_row(bars, i)
        try:
            if kind == "open":
                kernel.on_price(bars.symbol, row[0], row[1], row[1], row[1], row[1])
            else:
                kernel.on_bar(bars.symbol, *row)
        except CrashError:
            return n
    return len(ACTIONS)


def _crash_when(kernel: LiveKernel, before_publish: bool) -> None:
    """Kill the process at the first step whose outbox holds a closed trade, between the
    state commit and the publish (``before_publish``) or just after the publish."""
    events = kernel.step.events
    assert events is not None
    publish: Callable[[], int] = events.flush

    def flush() -> int:
        if not any(topic == "tradeloop.trades" for topic, _ in events.pending):
            return publish()
        if before_publish:
            raise CrashError
        publish()
        raise CrashError

    events.flush = flush  # type: ignore[method-assign]


def _stream_ids(url: str, run_id: str, since_ms: int) -> Counter[str]:
    """Every step event id of ``run_id`` in the Redis streams, read with plain redis-py (the
    run's entries are deleted afterwards: the streams are shared)."""
    raw = redis.Redis.from_url(url)
    seen: Counter[str] = Counter()
    for topic in TOPICS:
        ours = []
        for entry_id, fields in raw.xrange(topic, min=f"{since_ms}-0"):
            body = json.loads(fields[b"data"])["data"]
            if body.get("run") == run_id:
                seen[body["event_id"]] += 1
                ours.append(entry_id)
        if ours:
            raw.xdel(topic, *ours)
    raw.close()
    return seen


def test_a_crash_between_commit_and_publish_loses_no_event_and_counts_none_twice(
    shared_data: Path, tmp_path: Path, redis_url: str
) -> None:
    bars = load_ohlcv(shared_data / "crypto_1m/binance_spot_2025/BTC_USDT-1m.feather").bars
    bars = bars.slice(0, END)
    sym = bars.symbol
    run_id = f"outbox-{uuid.uuid4().hex[:10]}"
    warm = {sym: [bar_row(bars, i) for i in range(WARMUP)]}
    # the reference: the same run without a crash, on an in-process bus
    ref_bus = InProcessBus()
    expected: list[str] = []
    for topic in TOPICS:
        ref_bus.subscribe(topic, lambda m: expected.append(m.event_id))  # type: ignore[attr-defined]
    ref = _kernel(run_id, SqliteStateStore(tmp_path / "ref.db"), ref_bus, bars)
    ref.warm_up(warm)
    assert _act(ref, bars, 0) == len(ACTIONS)
    closed = [t for t in ref.portfolio.trades if t.exit_ts is not None]
    assert len(closed) >= 4
    assert len(set(expected)) == len(expected)  # ids are unique

    store = SqliteStateStore(tmp_path / "state.db")
    analytics = AnalyticsStore(tmp_path / "analytics.duckdb")
    defaults = {c: 1.0 for c in HeatmapConfig().components}
    codec = MessageCodec(tuple(TOPICS.values()))
    since_ms = int(time.time() * 1000) - 1
    stored = 0
    received = 0

    async def process(start: int, crash: bool | None) -> int:
        """One process: restore, attach the feedback consumer, run until the crash."""
        nonlocal stored, received
        bus = RedisBus(RedisBusConfig(url=redis_url, stream_prefixes=("tradeloop.",)), codec)
        await bus.start()
        kernel = _kernel(run_id, store, bus, bars)
        if not kernel.restore():
            kernel.warm_up(warm)
        loop = FeedbackLoop(analytics, bus, run_id, defaults)  # no reconcile: the bus only
        loop.attach()
        if crash is not None:
            _crash_when(kernel, before_publish=crash)
        end = _act(kernel, bars, start)
        await bus.stop(flush_timeout_s=10.0)
        stored += loop.stored
        received += loop.received
        return end + 1

    # Act: killed between commit and publish, restarted, killed just after a publish,
    # restarted and run to the end
    async def run() -> None:
        n = await process(0, crash=True)
        assert n < len(ACTIONS)
        n = await process(n, crash=False)
        assert n < len(ACTIONS)
        assert await process(n, crash=None) == len(ACTIONS) + 1

    asyncio.run(run())
    # Assert: every event id reached the Redis streams, the re-published ones more than once
    arrived = _stream_ids(redis_url, run_id, since_ms)
    assert set(arrived) == set(expected)
    assert max(arrived.values()) >= 2
    # the consumer stored each closed trade once: one feedback row per trade
    rows = [r for r in analytics.feedback() if r["source"] == run_id]
    assert sorted(r["signal_id"] for r in rows) == sorted(t.id for t in closed)
    assert stored == len(closed)
    analytics.close()
    store.close()
