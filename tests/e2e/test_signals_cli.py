"""``tradeloop signals ...`` as a user runs it, against the real Redis, on the real 5m BTC perp.

A raw redis-py client (not our bus) is on the other end of every channel.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tradeloop.bus import InProcessBus
from tradeloop.data.loader import load_ohlcv
from tradeloop.signals import LiquidationHeatmap, SignalPublisher
from tradeloop.testing.raw_redis import RawSubscriber

SERIES = "crypto_futures/binance_usdm_2025/BTC_USDT_USDT-5m-futures.feather"
SYMBOL = "BTC/USDT:USDT"


def _tradeloop(
    *args: str, env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tradeloop", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def _flat(text: str) -> str:
    return " ".join(text.split())


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def prefix() -> str:
    """Channel names unique to one test."""
    return f"test:{uuid.uuid4().hex[:12]}"


@pytest.fixture
def cli_env(redis_url: str, prefix: str, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "TRADELOOP_REDIS_URL": redis_url,
        "TRADELOOP_SIGNAL_CHANNEL_PREFIX": f"{prefix}:signals",
        "TRADELOOP_FEEDBACK_CHANNEL_PREFIX": f"{prefix}:feedback",
        "TRADELOOP_WEIGHTS_CHANNEL": f"{prefix}:weights",
        "TRADELOOP_ANALYTICS_PATH": str(tmp_path / "default.duckdb"),
        "COLUMNS": "200",
    }


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=1)
    yield client
    client.close()


def _in_process_count(data: Path) -> int:
    """How many signals the same replay publishes, counted on an in-process bus."""
    loaded = load_ohlcv(data, symbol=SYMBOL)
    bus = InProcessBus()
    got: list[object] = []
    pub = SignalPublisher(bus, LiquidationHeatmap(SYMBOL), top_n=5)
    bus.subscribe(pub.topic, got.append)
    n = pub.replay(loaded.bars, loaded.extras.get("volume_delta"))
    assert n == len(got)
    return n


def test_full_replay_at_full_speed_reaches_a_raw_subscriber_completely(
    shared_data: Path, tmp_path: Path, redis_url: str, cli_env: dict[str, str], prefix: str
) -> None:
    # Arrange: a raw subscriber; the number of signals the replay makes, counted independently
    data = shared_data / SERIES
    expected = _in_process_count(data)
    sub = RawSubscriber(redis_url, [f"{prefix}:signals:BTCUSDT"])
    # Act: every bar, no --every
    ran = _tradeloop("signals", "publish", "--symbol", SYMBOL, "--data", str(data), env=cli_env)
    sub.wait_for(expected, limit_s=120.0)
    sub.close()
    # Assert: what the command reports == what the model makes == what the subscriber received
    out = _flat(ran.stdout)
    assert ran.returncode == 0, ran.stderr + ran.stdout
    assert f"{expected} signals from 8639 bars" in out
    assert f"delivered to Redis: {expected} of {expected} signals" in out
    assert "in-process fallback: 0; lost: 0" in out
    assert len(sub.payloads()) == expected
    ids = [json.loads(p)["data"]["id"] for p in sub.payloads()]
    assert len(set(ids)) == expected
    assert expected > 40_000  # the full replay, not a sample of bars


def test_publish_with_redis_unreachable_reports_the_fallback_and_fails(
    shared_data: Path, cli_env: dict[str, str]
) -> None:
    url = f"redis://:hunter2@127.0.0.1:{_closed_port()}/0"
    ran = _tradeloop(
        "signals",
        "publish",
        "--symbol",
        SYMBOL,
        "--data",
        str(shared_data / SERIES),
        "--redis-url",
        url,
        env=cli_env,
    )
    out = _flat(ran.stdout)
    n = int(re.search(r"(\d+) signals from 8639 bars", out).group(1))  # type: ignore[union-attr]
    assert ran.returncode == 1
    assert n > 40_000
    assert f"delivered to Redis: 0 of {n} signals; in-process fallback: {n}" in out
    assert f"none of the {n} signals reached Redis ({n} went to the in-process fallback" in out
    assert "hunter2" not in ran.stdout + ran.stderr


def _weights_version(client: redis.Redis, key: str) -> int:
    raw = client.get(key)
    return -1 if raw is None else int(json.loads(raw)["data"]["version"])


def _feedback(i: int, now_ns: int) -> str:
    data = {
        "signal_id": f"cli-{i}",
        "symbol": "BTCUSDT",
        "side": "long",
        "entry_price": 100.0,
        "exit_price": 101.0,
        "entry_ts": now_ns - 60_000_000_000,
        "exit_ts": now_ns,
        "pnl": 1.0,
        "pnl_pct": 0.01,
        "source": "external",
        "component": "lev_10x",
    }
    return json.dumps({"v": 1, "type": "TradeFeedback", "data": data})


def _wait(cond: Callable[[], bool], proc: subprocess.Popen[str], limit_s: float = 120.0) -> None:
    """Poll ``cond`` until true, the limit passes or ``proc`` exits (the caller asserts)."""
    deadline = time.monotonic() + limit_s
    while not cond() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)


def test_running_consumer_adapts_while_publish_and_status_run_alongside(
    shared_data: Path, tmp_path: Path, raw: redis.Redis, cli_env: dict[str, str], prefix: str
) -> None:
    # Arrange: a long-running consumer (no --duration), adapting every 20 outcomes
    store = tmp_path / "loop.duckdb"
    channel, weights_key = f"{prefix}:feedback:BTCUSDT", f"{prefix}:weights"
    out_path, err_path = tmp_path / "consume.out", tmp_path / "consume.err"
    with out_path.open("w") as out_f, err_path.open("w") as err_f:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "tradeloop", "signals", "consume", "--symbol", SYMBOL),
                *("--store", str(store), "--adapt-every", "20", "--adapt-interval", "3600"),
            ],
            stdout=out_f,
            stderr=err_f,
            env=cli_env,
            text=True,
        )
    try:
        _wait(
            lambda: (
                raw.pubsub_numsub(channel)[0][1] >= 1 and _weights_version(raw, weights_key) >= 1
            ),
            proc,
        )
        assert proc.poll() is None, err_path.read_text()
        first = _weights_version(raw, weights_key)
        # Act: an external engine PUBLISHes 20 winning outcomes and two bad messages
        now = time.time_ns()
        for i in range(20):
            raw.publish(channel, _feedback(i, now))
        raw.publish(channel, "{not json")
        raw.publish(channel, json.dumps({"v": 1, "type": "TradeFeedback", "data": {"pnl": 1}}))
        _wait(lambda: _weights_version(raw, weights_key) > first, proc)
        # Assert: the weights advanced while the consumer is still running ...
        adapted = _weights_version(raw, weights_key)
        assert adapted == first + 1
        assert proc.poll() is None
        # ... and the other commands run next to it: status reads the file it writes,
        status = _tradeloop("signals", "status", "--store", str(store), env=cli_env)
        assert status.returncode == 0, status.stderr
        assert f"adaptive weights v{adapted}" in _flat(status.stdout)
        assert re.search(r"24h\W+external\W+lev_10x\W+20\W+1\.000", status.stdout)
        # publish takes the consumer's weights without opening the file
        pub = _tradeloop(
            "signals",
            "publish",
            "--symbol",
            SYMBOL,
            "--data",
            str(shared_data / SERIES),
            "--store",
            str(store),
            env=cli_env,
        )
        assert pub.returncode == 0, pub.stderr
        assert f"weights v{adapted})" in _flat(pub.stdout)
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(120)
        raw.delete(weights_key, channel)
    # the consumer stopped cleanly, counted what it refused, and logged why
    out, err = _flat(out_path.read_text()), err_path.read_text()
    assert proc.returncode == 0, err
    assert f"received 20, stored 20, duplicates 0, refused 2; weights v{adapted}" in out
    # console log lines are readable text: "HH:MM:SS WARNING bus.redis_bus: dead letter on ..."
    reasons = [line for line in err.splitlines() if "dead letter" in line]
    assert len(reasons) == 2
    assert "invalid JSON" in reasons[0]
    assert "invalid TradeFeedback" in reasons[1]
