"""`tradeloop serve --config loop.toml --live`: the service operating a live loop.

A real `tradeloop serve --live` process trades a USD-M perpetual loop on the local Binance
venue (signed REST orders and the user-data stream, spoken to by the unmodified ccxt client)
while the replay server feeds recorded klines over a WebSocket. The test reads /status,
/orders and /health (the broker is the venue's), parses /metrics with prometheus_client's
text parser (orders by status follow the venue's fills, the circuit state and the rate budget
come from the venue broker), flattens over the API (the venue's own position goes to zero),
then makes the venue answer 503 until the circuit breaker opens: /health turns 503 naming
the broker and /metrics shows the open circuit.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tradeloop.testing.replay import ReplayServer
from tradeloop.testing.venue import VenueData
from tradeloop.testing.venue.trading_server import (
    API_KEY,
    API_SECRET,
    LocalBinanceExchange,
    TradingFault,
)

START_MS = 1_748_169_180_000 + 600 * 60_000  # inside the USD-M 1m recording
SYMBOL = "BTC/USDT:USDT"
VENUE_SYMBOL = "BTCUSDT"
KEY = "live-serve-key-0123456789"

LOOP_TOML = f"""
[run]
id = "serve-live"
exchange = "binance"
market = "perp"
symbols = ["{SYMBOL}"]
timeframe = "1m"
balance = 10000
state = "state.db"
analytics = "analytics.duckdb"
status = "status.json"
warmup_bars = 30

[risk]
profile = "permissive"

[[strategies]]
name = "sma_cross"
weight = 1.0
params = {{ fast = 2, slow = 5, short = true }}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _metrics(url: str) -> dict[str, float]:
    """Every sample of /metrics as ``name{labels}`` -> value (prometheus_client's parser)."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(httpx.get(url + "/metrics", timeout=10).text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}"] = s.value
    return out


def _wait(proc: subprocess.Popen[bytes], ok: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"serve exited: {proc.stderr.read().decode()[-3000:]}")  # type: ignore[union-attr]
        try:
            if ok():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def _venue_position(ex: LocalBinanceExchange) -> float:
    return sum(
        float(p["positionAmt"]) for p in ex.book.positions_json() if p["symbol"] == VENUE_SYMBOL
    )


def _filled_at_venue(ex: LocalBinanceExchange) -> int:
    return sum(1 for o in ex.book.orders if o.status == "FILLED")


def test_serve_live_loop_health_metrics_flatten_and_open_circuit(
    venue: VenueData, tmp_path: Path
) -> None:
    # Arrange: the replay feed, the trading venue on the replay's clock, `tradeloop serve --live`
    config = tmp_path / "loop.toml"
    config.write_text(LOOP_TOML, encoding="utf-8")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    auth = {"X-API-Key": KEY, "X-Operator": "e2e-live"}
    with (
        ReplayServer(
            venue,
            start_ms=START_MS,
            end_ms=START_MS + 3_000 * 60_000,
            bar_interval_s=0.1,
            advance_when_idle=True,
            binance_market="linear",
        ) as ws,
        LocalBinanceExchange(venue, lambda: ws.cursor_ms) as ex,
    ):
        env = dict(os.environ)
        env.update(
            TRADELOOP_BINANCE_URL=ex.url,
            TRADELOOP_BINANCE_WS_URL=ws.url,
            TRADELOOP_BINANCE_API_KEY=API_KEY,
            TRADELOOP_BINANCE_API_SECRET=API_SECRET,
            TRADELOOP_API_KEY=KEY,
        )
        env.pop("TRADELOOP_DISCORD_WEBHOOK_URL", None)
        command = [sys.executable, "-m", "tradeloop", "serve", "--config", str(config)]
        command += ["--port", str(port), "--live", "--broker", "ccxt", "--reconcile-every", "0"]
        command += ["--feed-stale-s", "30", "--output", str(tmp_path / "output")]
        proc = subprocess.Popen(
            command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            _run_scenario(proc, url, auth, ex)
        finally:
            ex.faults.clear()
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            finally:
                if proc.poll() is None:
                    proc.kill()
        stderr = proc.stderr.read().decode()  # type: ignore[union-attr]
    assert proc.returncode in (0, -signal.SIGTERM), stderr[-3000:]
    assert "live testnet" in stderr
    assert API_SECRET not in stderr
    assert API_SECRET not in (tmp_path / "status.json").read_text()


def _run_scenario(
    proc: subprocess.Popen[bytes], url: str, auth: dict[str, str], ex: LocalBinanceExchange
) -> None:
    def get(path: str) -> Any:
        return httpx.get(url + path, timeout=10)

    # healthy, and the broker component is the venue broker with a closed circuit
    _wait(proc, lambda: get("/health").status_code == 200, 90, "a healthy live service")
    health = get("/health").json()
    broker = health["components"]["broker"]
    assert broker["ok"] is True
    assert "VenueBroker" in broker["detail"]
    assert "circuit closed" in broker["detail"]

    # orders reach the venue and fill; the broker series follow
    _wait(proc, lambda: _filled_at_venue(ex) >= 2, 60, "two fills at the venue")
    first = _metrics(url)
    assert first["tradeloop_broker_circuit_state{state=closed}"] == 1.0
    assert first["tradeloop_broker_circuit_state{state=open}"] == 0.0
    limit = first["tradeloop_broker_rate_limit{}"]
    left = first["tradeloop_broker_rate_budget{}"]
    assert 0 < left < limit  # the venue calls made so far were drawn from the budget
    filled_before = first.get("tradeloop_broker_orders{status=filled}", 0.0)
    _wait(
        proc,
        lambda: (
            _metrics(url).get("tradeloop_broker_orders{status=filled}", 0.0)
            > max(filled_before, 1.0)
        ),
        60,
        "filled orders to grow in /metrics",
    )

    # pause (no new order), let the engine settle: the API's orders are the venue's orders
    assert httpx.post(url + "/control/pause", headers=auth, timeout=20).status_code == 200
    _wait(
        proc,
        lambda: (
            _metrics(url).get("tradeloop_broker_orders{status=filled}") == _filled_at_venue(ex)
            and get("/orders").json()["open"] == []
        ),
        30,
        "the engine's fills to equal the venue's",
    )
    assert abs(_venue_position(ex)) > 0  # sma_cross with shorts: always in after a first fill
    settled = _metrics(url)
    venue_filled = _filled_at_venue(ex)
    assert len(ex.book.orders) == venue_filled  # market orders: all filled
    assert settled["tradeloop_broker_orders{status=filled}"] == venue_filled
    orders = get("/orders").json()
    assert orders["by_status"] == {"filled": venue_filled}
    assert orders["open"] == []
    assert len(orders["recent"]) == venue_filled
    status = get("/status").json()
    assert status["run_id"] == "serve-live"
    assert status["paused"] is True
    assert status["mode"] == "live"
    [position] = get("/positions").json()
    assert position["symbol"] == SYMBOL
    assert position["quantity"] == pytest.approx(abs(_venue_position(ex)), rel=1e-9)

    # flatten over the API: the venue's own position goes to zero
    refused = httpx.post(url + "/control/flatten", timeout=20)
    assert refused.status_code == 401
    flat = httpx.post(url + "/control/flatten", headers=auth, timeout=20)
    assert flat.status_code == 200, flat.text
    _wait(proc, lambda: _venue_position(ex) == 0.0, 30, "the venue position closed")
    _wait(proc, lambda: get("/positions").json() == [], 30, "no position in the API")
    assert _filled_at_venue(ex) == venue_filled + 1  # one closing order, filled

    # the venue fails every order call: retries, then the breaker opens
    ex.add_fault(TradingFault("status", "/fapi/v1/order", status=503, times=-1))
    assert httpx.post(url + "/control/resume", headers=auth, timeout=20).status_code == 200
    _wait(proc, lambda: get("/health").status_code == 503, 60, "/health 503 (breaker open)")
    down = get("/health")
    body = down.json()
    assert body["status"] == "down"
    assert body["components"]["broker"]["ok"] is False
    assert "circuit open" in body["components"]["broker"]["detail"]
    # the reason is the venue's own answer to the failing calls (Binance -1001 with the 503)
    assert "-1001" in body["components"]["broker"]["detail"]
    assert [n for n, c in body["components"].items() if not c["ok"]] == ["broker"]
    opened = _metrics(url)
    assert opened["tradeloop_broker_circuit_state{state=open}"] == 1.0
    assert opened["tradeloop_broker_circuit_state{state=closed}"] == 0.0
    # nothing got through while failing
    assert _filled_at_venue(ex) == venue_filled + 1
