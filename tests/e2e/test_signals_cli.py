"""``tradeloop signals publish`` as a user runs it: replay a real file, publish to real Redis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis


@pytest.fixture
def redis_client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url, socket_connect_timeout=1)


def test_signals_publish_replay_reaches_a_raw_redis_subscriber(
    shared_data: Path, tmp_path: Path, redis_client: redis.Redis, redis_url: str
) -> None:
    # Arrange: a raw subscriber (not our bus) on a channel prefix unique to this test
    prefix = f"test:{os.getpid()}:{time.time_ns()}:signals"
    pubsub = redis_client.pubsub()
    pubsub.subscribe(f"{prefix}:BTCUSDT")
    pubsub.get_message(timeout=1.0)  # the subscribe confirmation
    data = shared_data / "crypto_futures/binance_usdm_2025/BTC_USDT_USDT-5m-futures.feather"
    env = {
        **os.environ,
        "TRADELOOP_SIGNAL_CHANNEL_PREFIX": prefix,
        "TRADELOOP_REDIS_URL": redis_url,
        "COLUMNS": "200",
    }
    # Act
    ran = subprocess.run(
        [
            sys.executable,
            "-m",
            "tradeloop",
            "signals",
            "publish",
            "--symbol",
            "BTC/USDT:USDT",
            "--data",
            str(data),
            "--every",
            "1000",
            "--store",
            str(tmp_path / "a.duckdb"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    # Assert: every published update arrived with the top-N zones
    assert ran.returncode == 0, ran.stderr + ran.stdout
    received = []
    while (message := pubsub.get_message(timeout=2.0)) is not None:
        if message["type"] == "message":
            received.append(json.loads(message["data"]))
    pubsub.close()
    assert len(received) >= 8  # 8,639 bars, an update every 1,000th bar
    assert f"{len(received)} signals" in " ".join(ran.stdout.split())
    assert "8639" in " ".join(ran.stdout.split())
    payload = json.dumps(received[-1])
    assert "BTC" in payload
