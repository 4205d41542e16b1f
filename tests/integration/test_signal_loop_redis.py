"""The whole loop over real Redis: signals out, external feedback in, weights adapt."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import redis.asyncio as aioredis

from tradeloop.bus import RedisBus, RedisBusConfig
from tradeloop.config.settings import Settings
from tradeloop.signals import SignalService, signal_codec

HOUR = 3_600_000_000_000


def test_signal_loop_external_feedback_moves_weights(redis_url: str, tmp_path: Path) -> None:
    symbol = f"L{uuid.uuid4().hex[:8].upper()}/USDT"
    key = symbol.replace("/", "")

    async def run() -> SignalService:
        bus = RedisBus(RedisBusConfig(url=redis_url), signal_codec())
        await bus.start()
        settings = Settings(analytics_path=tmp_path / "loop.duckdb", signal_top_n=3)
        service = SignalService(settings, bus=bus)
        raw = aioredis.Redis.from_url(redis_url)
        ps = raw.pubsub()
        await ps.subscribe(f"liquidation:signals:{key}")
        await ps.get_message(timeout=1.0)
        pub = service.publisher(symbol)
        assert pub is not None
        pub.on_bar(10 * HOUR, 100, 101, 99, 100.8, 1_000.0)
        await bus.flush()
        # the external trader: every signal it receives wins if it is a 10x zone
        seen = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while seen < 3 and loop.time() < deadline:
            msg = await ps.get_message(ignore_subscribe_messages=True, timeout=0.1)
            if msg is None:
                continue
            seen += 1
            sig = json.loads(msg["data"])["data"]
            for rep in range(6):
                win = sig["component"] == "lev_10x" or rep == 0
                fb = {
                    "signal_id": f"{sig['id']}#{rep}",
                    "symbol": key,
                    "side": sig["side"],
                    "entry_price": 100.0,
                    "exit_price": 101.0 if win else 99.0,
                    "entry_ts": 10 * HOUR,
                    "exit_ts": 11 * HOUR,
                    "pnl": 1.0 if win else -1.0,
                    "pnl_pct": 0.01 if win else -0.01,
                    "source": "external",
                    "component": sig["component"],
                }
                envelope = json.dumps({"v": 1, "type": "TradeFeedback", "data": fb})
                await raw.xadd(f"liquidation:feedback:{key}", {"data": envelope})
        stop = asyncio.Event()
        assert service.consumer is not None
        task = asyncio.create_task(service.consumer.run(bus, [symbol], stop=stop))
        while service.store.feedback_count() < 18 and loop.time() < deadline:  # type: ignore[union-attr]
            await asyncio.sleep(0.01)
        stop.set()
        await task
        await raw.delete(f"liquidation:feedback:{key}")
        await ps.aclose()
        await raw.aclose()
        await bus.stop()
        return service

    service = asyncio.run(run())
    assert service.store is not None
    assert service.adaptive is not None
    assert service.store.feedback_count() == 18
    components = {r["component"] for r in service.store.feedback()}
    change = service.adaptive.update(12 * HOUR)
    assert change is not None
    for comp in components:
        if comp == "lev_10x":
            assert service.adaptive.weights[comp] > 1.0
        else:
            assert service.adaptive.weights[comp] < 1.0
    service.close()
