"""RedisBus with no server: in-process delivery continues, the buffer is bounded, nothing hangs."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest
from pydantic import BaseModel

from tradeloop.bus import MessageCodec, RedisBus, RedisBusConfig


class Ping(BaseModel):
    n: int


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends


def test_redis_bus_unreachable_keeps_working_in_process(caplog: pytest.LogCaptureFixture) -> None:
    cfg = RedisBusConfig(
        url=f"redis://127.0.0.1:{_closed_port()}/0",
        stream_prefixes=("s:",),
        buffer_max=5,
        backoff_base_s=0.01,
        backoff_max_s=0.02,
        socket_timeout_s=0.2,
    )

    async def run() -> tuple[RedisBus, list[BaseModel]]:
        bus = RedisBus(cfg, MessageCodec((Ping,)))
        await bus.start()
        got: list[BaseModel] = []
        bus.subscribe("s:feedback", got.append)
        bus.subscribe("p:signals", got.append)
        for i in range(8):
            bus.publish("s:feedback", Ping(n=i))
        bus.publish("p:signals", Ping(n=99))
        await asyncio.sleep(0.2)  # several reconnect attempts
        await bus.stop()
        return bus, got

    with caplog.at_level(logging.WARNING, logger="tradeloop.bus.redis_bus"):
        bus, got = asyncio.run(run())
    assert [m.n for m in got] == [*range(8), 99]  # type: ignore[attr-defined]
    assert bus.connected is False
    assert bus.buffered == 5
    assert bus.stats["dropped_stream"] == 3
    assert bus.stats["fallback"] == 1  # the pub/sub message reached local subscribers only
    assert bus.stats["mirrored"] == 0
    assert bus.stats["unsent"] == 5  # still buffered when the bus stopped: counted, not hidden
    assert bus.stats["backpressure_waits"] == 0  # a dead server never blocks the producer
    assert sum("redis unreachable" in r.getMessage() for r in caplog.records) == 1


def test_unreachable_url_password_is_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    cfg = RedisBusConfig(url=f"redis://:hunter2@127.0.0.1:{_closed_port()}/0", backoff_base_s=0.01)

    async def run() -> None:
        bus = RedisBus(cfg, MessageCodec((Ping,)))
        await bus.start()
        await bus.stop()

    with caplog.at_level(logging.DEBUG, logger="tradeloop.bus.redis_bus"):
        asyncio.run(run())
    logged = " ".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    assert "redis unreachable" in logged
    assert "hunter2" not in logged
    assert ":***@127.0.0.1" in logged
