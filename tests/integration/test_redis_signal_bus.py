"""RedisBus against the real redis-server on 127.0.0.1:6379 (raw redis-py on the other end)."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from tradeloop.bus import RedisBus, RedisBusConfig
from tradeloop.signals import (
    AdaptiveWeights,
    FeedbackConsumer,
    LiquidationHeatmap,
    LiquidationSignal,
    SharedWeights,
    SignalPublisher,
    TradeFeedback,
    bus_weights,
    signal_codec,
)
from tradeloop.store import AnalyticsStore
from tradeloop.testing.raw_redis import RawSubscriber


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


def _signal(i: int) -> LiquidationSignal:
    return LiquidationSignal(
        id=f"bp-{i}",
        symbol="BP",
        price_level=100.0,
        side="long",
        strength=1.0,
        distance_pct=-0.01,
        confidence=0.5,
        ts=i,
        current_price=101.0,
    )


def codec_envelope(message: LiquidationSignal) -> bytes:
    return signal_codec().encode(message, origin="elsewhere")


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


def test_full_outbox_makes_the_producer_wait_and_nothing_is_lost(redis_url: str) -> None:
    # Arrange: a tiny outbox, a producer that never yields, a raw subscriber counting
    topic = f"liquidation:signals:BP{uuid.uuid4().hex[:8].upper()}"
    raw = RawSubscriber(redis_url, [topic])
    n = 20_000

    async def run() -> dict[str, int]:
        bus = RedisBus(RedisBusConfig(url=redis_url, buffer_max=64, batch_max=32), signal_codec())
        await bus.start()
        for i in range(n):  # synchronous: the writer thread is the only thing draining
            bus.publish(topic, _signal(i))
        assert bus.buffered <= 64  # memory stayed bounded
        assert await bus.flush(60)
        await bus.stop()
        return dict(bus.stats)

    # Act
    stats = asyncio.run(run())
    raw.wait_for(n)
    raw.close()
    # Assert: every message arrived, in order, and the producer was held back to get there
    ids = [json.loads(p)["data"]["id"] for p in raw.payloads()]
    assert ids == [f"bp-{i}" for i in range(n)]
    assert stats["mirrored"] == n
    assert stats["backpressure_waits"] > 0
    assert stats["fallback"] + stats["dropped_pubsub"] + stats["unsent"] == 0


def _feedback_json(signal_id: str, key: str) -> str:
    data = {
        "signal_id": signal_id,
        "symbol": key,
        "side": "long",
        "entry_price": 100.0,
        "exit_price": 101.0,
        "entry_ts": 1,
        "exit_ts": 2,
        "pnl": 1.0,
        "pnl_pct": 0.01,
        "source": "pub",
    }
    return json.dumps({"v": 1, "type": "TradeFeedback", "data": data})


def test_published_feedback_is_stored_and_malformed_is_refused_with_a_reason(
    redis_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    symbol = _symbol()
    key = symbol.replace("/", "")
    channel = f"liquidation:feedback:{key}"  # the seed's wording: PUBLISH on this channel

    async def run() -> tuple[AnalyticsStore, FeedbackConsumer, RedisBus]:
        store = AnalyticsStore(tmp_path / "pub.duckdb")
        consumer = FeedbackConsumer(store)
        bus = RedisBus(RedisBusConfig(url=redis_url), signal_codec())
        await bus.start()
        stop = asyncio.Event()
        task = asyncio.create_task(consumer.run(bus, [symbol], stop=stop))
        assert await bus.subscribed(channel)
        raw = aioredis.Redis.from_url(redis_url)
        # Act: an external engine PUBLISHes (not XADD)
        assert await raw.publish(channel, _feedback_json("p-1", key)) == 1
        await raw.publish(channel, _feedback_json("p-1", key))  # again: stored once
        await raw.publish(channel, b"{not json")
        await raw.publish(channel, codec_envelope(_signal(0)))  # a signal, not feedback
        await raw.publish(channel, _feedback_json("p-2", key))
        await _until(lambda: store.feedback_count() >= 2 and len(bus.dead_letters) >= 2)
        stop.set()
        await task
        await raw.delete(channel)
        await raw.aclose()
        await bus.stop()
        return store, consumer, bus

    with caplog.at_level(logging.WARNING, logger="tradeloop.bus.redis_bus"):
        store, consumer, bus = asyncio.run(run())
    # Assert: rows appear; the two bad messages are refused, each with its reason logged
    assert [r["signal_id"] for r in store.feedback()] == ["p-1", "p-2"]
    assert (consumer.received, consumer.stored, consumer.duplicates) == (3, 2, 1)
    reasons = [r.getMessage() for r in caplog.records if "dead letter" in r.getMessage()]
    assert len(reasons) == 2
    assert f"dead letter on {channel}" in reasons[0]
    assert "invalid JSON" in reasons[0]
    assert "expected TradeFeedback, got LiquidationSignal" in reasons[1]
    assert bus.stats["dead_letters"] == 2


def test_running_publisher_takes_new_weights_without_restart(redis_url: str) -> None:
    topic = f"liquidation:weights:{uuid.uuid4().hex}"  # a retained topic, unique to this test
    symbol = _symbol()

    async def run() -> tuple[list[list[LiquidationSignal]], SharedWeights, LiquidationHeatmap]:
        adapter = RedisBus(RedisBusConfig(url=redis_url), signal_codec())
        publisher_bus = RedisBus(RedisBusConfig(url=redis_url), signal_codec())
        await adapter.start()
        await publisher_bus.start()
        heatmap = LiquidationHeatmap(symbol)
        shared = SharedWeights(
            bus_weights(publisher_bus, topic),
            {c: 1.0 for c in heatmap.config.components},
            refresh_s=0.0,
        )
        pub = SignalPublisher(publisher_bus, heatmap, top_n=5, weights=shared)
        batches = [pub.on_bar(1, 100.0, 101.0, 99.0, 100.5, 40.0)]
        # Act: the consumer process adapts and broadcasts v7 while the publisher keeps running
        new = {"lev_5x": 0.1, "lev_10x": 0.1, "lev_25x": 0.1, "lev_50x": 0.1, "lev_100x": 3.0}
        adapter.publish(topic, AdaptiveWeights(version=7, weights=new, reason="ema"))
        assert await adapter.flush()
        batches.append(pub.on_bar(2, 100.5, 101.5, 99.5, 100.0, 40.0))
        await adapter._client.delete(topic)
        await adapter.stop()
        await publisher_bus.stop()
        return batches, shared, heatmap

    batches, shared, heatmap = asyncio.run(run())
    assert shared.version == 7
    assert shared.weights["lev_100x"] == 3.0
    assert batches[1] == heatmap.top_signals(5, shared.weights)  # published with v7
    assert batches[1] != heatmap.top_signals(5, None)  # which differs from the defaults
