"""RedisBus against the real redis-server on 127.0.0.1:6379 (raw redis-py on the other end)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import redis.asyncio as aioredis

from tradeloop.bus import RedisBus, RedisBusConfig
from tradeloop.signals import (
    FeedbackConsumer,
    LiquidationHeatmap,
    LiquidationSignal,
    SignalPublisher,
    TradeFeedback,
    signal_codec,
)
from tradeloop.store import AnalyticsStore


async def _until(cond: Callable[[], bool | Awaitable[bool]], limit_s: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while loop.time() < deadline:
        result = cond()
        if result if isinstance(result, bool) else await result:
            return
        await asyncio.sleep(0.01)


def _symbol() -> str:
    return f"T{uuid.uuid4().hex[:8].upper()}/USDT"


def test_raw_subscriber_receives_exactly_the_published_top_n(redis_url: str) -> None:
    async def run() -> tuple[list[LiquidationSignal], list[dict[str, object]]]:
        symbol = _symbol()
        bus = RedisBus(RedisBusConfig(url=redis_url), signal_codec())
        await bus.start()
        pub = SignalPublisher(bus, LiquidationHeatmap(symbol), top_n=5)
        raw = aioredis.Redis.from_url(redis_url)
        ps = raw.pubsub()
        await ps.subscribe(pub.topic)  # like `redis-cli SUBSCRIBE liquidation:signals:...`
        await ps.get_message(timeout=1.0)  # subscribe confirmation
        received: list[dict[str, object]] = []
        pub.on_bar(1, 100.0, 101.0, 99.0, 100.5, 40.0)
        assert await bus.flush()

        async def got_five() -> bool:
            msg = await ps.get_message(ignore_subscribe_messages=True, timeout=0.1)
            if msg is not None:
                received.append(json.loads(msg["data"]))
            return len(received) >= 5

        await _until(got_five)
        extra = await ps.get_message(ignore_subscribe_messages=True, timeout=0.2)
        assert extra is None
        await ps.aclose()
        await raw.aclose()
        await bus.stop()
        return pub.last, received

    sent, received = asyncio.run(run())
    assert len(sent) == 5
    assert [m["type"] for m in received] == ["LiquidationSignal"] * 5
    assert [m["v"] for m in received] == [1] * 5
    assert [LiquidationSignal.model_validate(m["data"]) for m in received] == sent


def test_raw_stream_feedback_lands_in_duckdb_once(redis_url: str, tmp_path: Path) -> None:
    async def run() -> tuple[AnalyticsStore, FeedbackConsumer, RedisBus]:
        symbol = _symbol()
        key = symbol.replace("/", "")
        topic = f"liquidation:feedback:{key}"
        store = AnalyticsStore(tmp_path / "fb.duckdb")
        consumer = FeedbackConsumer(store)
        bus = RedisBus(RedisBusConfig(url=redis_url), signal_codec())
        await bus.start()
        raw = aioredis.Redis.from_url(redis_url)
        # an external engine writes JSON by hand
        data = {
            "signal_id": "ext-1",
            "symbol": key,
            "side": "short",
            "entry_price": 100.0,
            "exit_price": 98.0,
            "entry_ts": 1,
            "exit_ts": 2,
            "pnl": 2.0,
            "pnl_pct": 0.02,
            "source": "nautilus",
        }
        envelope = json.dumps({"v": 1, "type": "TradeFeedback", "data": data})
        await raw.xadd(topic, {"data": envelope})
        await raw.xadd(topic, {"data": envelope})  # sent twice: stored once
        await raw.xadd(topic, {"data": b"{not json"})  # malformed: dead letter
        await raw.xadd(topic, {"data": envelope.replace("ext-1", "ext-2")})
        stop = asyncio.Event()
        task = asyncio.create_task(consumer.run(bus, [symbol], stop=stop))
        await _until(lambda: store.feedback_count() >= 2 and len(bus.dead_letters) >= 1)
        stop.set()
        await task
        pending = await raw.xpending(topic, "tradeloop-feedback")
        assert pending["pending"] == 0  # everything acknowledged
        await raw.delete(topic)
        await raw.aclose()
        await bus.stop()
        return store, consumer, bus

    store, consumer, bus = asyncio.run(run())
    rows = store.feedback()
    assert [(r["signal_id"], r["source"]) for r in rows] == [
        ("ext-1", "nautilus"),
        ("ext-2", "nautilus"),
    ]
    assert consumer.duplicates == 1
    assert bus.stats["dead_letters"] == 1
    assert "invalid JSON" in bus.dead_letters[0].error


def test_pubsub_fans_out_between_processes_without_echo(redis_url: str) -> None:
    async def run() -> tuple[list[object], list[object]]:
        topic = f"liquidation:signals:{uuid.uuid4().hex}"
        a = RedisBus(RedisBusConfig(url=redis_url), signal_codec())
        b = RedisBus(RedisBusConfig(url=redis_url), signal_codec())
        await a.start()
        await b.start()
        got_a: list[object] = []
        got_b: list[object] = []
        a.subscribe(topic, got_a.append)
        b.subscribe(topic, got_b.append)
        await asyncio.sleep(0.3)  # let both pub/sub listeners subscribe
        fb = TradeFeedback(
            signal_id="x",
            symbol="X",
            side="long",
            entry_price=1.0,
            exit_price=1.0,
            entry_ts=0,
            exit_ts=0,
            pnl=0.0,
            pnl_pct=0.0,
            source="s",
        )
        a.publish(topic, fb)
        await _until(lambda: len(got_b) >= 1)
        await asyncio.sleep(0.2)
        await a.stop()
        await b.stop()
        return got_a, got_b

    got_a, got_b = asyncio.run(run())
    assert len(got_a) == 1  # local delivery only; its own Redis echo is skipped
    assert len(got_b) == 1
