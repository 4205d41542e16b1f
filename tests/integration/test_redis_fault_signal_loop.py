"""Fault test: our own redis-server is killed mid-stream and restarted."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tradeloop.bus import RedisBus, RedisBusConfig
from tradeloop.signals import FeedbackConsumer, TradeFeedback, signal_codec
from tradeloop.store import AnalyticsStore
from tradeloop.testing.environment import unavailable


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server:
    def __init__(self, binary: str, port: int) -> None:
        self.binary, self.port = binary, port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--bind",
                "127.0.0.1",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        for _ in range(200):
            try:
                client.ping()
                return
            except redis.exceptions.ConnectionError:
                time.sleep(0.025)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@pytest.fixture
def own_redis() -> Iterator[_Server]:
    """A private redis-server on a free port (missing binary: fail under CI, else skip)."""
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server binary not found")
    server = _Server(binary, _free_port())
    server.start()
    try:
        yield server
    finally:
        server.kill()


def _fb(i: int) -> TradeFeedback:
    return TradeFeedback(
        signal_id=f"sig-{i}",
        symbol="BTCUSDT",
        side="long",
        entry_price=100.0,
        exit_price=101.0,
        entry_ts=i,
        exit_ts=i + 1,
        pnl=1.0,
        pnl_pct=0.01,
        source="fault",
    )


async def _until(cond: Callable[[], bool], limit_s: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while loop.time() < deadline and not cond():
        await asyncio.sleep(0.01)


def test_redis_killed_and_restarted_no_feedback_lost_or_duplicated(
    own_redis: _Server, tmp_path: Path
) -> None:
    topic = "liquidation:feedback:BTCUSDT"
    url = f"redis://127.0.0.1:{own_redis.port}/0"
    cfg = RedisBusConfig(url=url, backoff_base_s=0.02, backoff_max_s=0.2, socket_timeout_s=0.5)

    async def run() -> dict[str, object]:
        store = AnalyticsStore(tmp_path / "fault.duckdb")
        consumer = FeedbackConsumer(store)
        producer = RedisBus(cfg, signal_codec())
        reader = RedisBus(cfg, signal_codec())
        await producer.start()
        await reader.start()
        local: list[object] = []
        producer.subscribe(topic, local.append)
        stop = asyncio.Event()
        task = asyncio.create_task(consumer.run(reader, ["BTC/USDT"], stop=stop))
        # phase 1: stream flowing, then the server dies mid-stream
        for i in range(150):
            producer.publish(topic, _fb(i))
            if i % 25 == 0:
                await asyncio.sleep(0)
        await producer.flush()
        own_redis.kill()
        # phase 2: server down; publishing keeps working in-process and is buffered
        for i in range(150, 300):
            producer.publish(topic, _fb(i))
        await _until(lambda: not producer.connected)
        down = {"connected": producer.connected, "buffered": producer.buffered, "local": len(local)}
        # phase 3: server back (empty: no persistence); buffer flushed, window replayed
        own_redis.start()
        await _until(lambda: store.feedback_count() >= 300 and producer.buffered == 0)
        stop.set()
        await task
        await producer.stop()
        await reader.stop()
        return {
            "down": down,
            "stats": dict(producer.stats),
            "rows": store.feedback(),
            "local": len(local),
            "dups": consumer.duplicates,
        }

    result = asyncio.run(run())
    down = result["down"]
    assert down["connected"] is False  # type: ignore[index]
    assert down["local"] == 300  # type: ignore[index]  # in-process path never stopped
    assert down["buffered"] > 0  # type: ignore[index,operator]
    rows = result["rows"]
    ids = [r["signal_id"] for r in rows]  # type: ignore[union-attr]
    assert len(ids) == 300
    assert sorted(ids) == sorted(f"sig-{i}" for i in range(300))
    stats = result["stats"]
    assert stats["reconnects"] >= 1  # type: ignore[index,operator]
    assert stats["dropped_stream"] == 0  # type: ignore[index]
