"""API: /signals/status, /signals/metrics and Prometheus /metrics."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tradeloop.api import create_app
from tradeloop.bus import InProcessBus
from tradeloop.config.settings import Settings
from tradeloop.signals import SignalService, TradeFeedback

HOUR = 3_600_000_000_000


def _client(tmp_path: Path, enabled: bool = True) -> tuple[TestClient, SignalService]:
    settings = Settings(signals_enabled=enabled, analytics_path=tmp_path / "api.duckdb")
    service = SignalService(settings, bus=InProcessBus())
    return TestClient(create_app(service)), service


def test_status_reports_publishers_and_weights(tmp_path: Path) -> None:
    client, service = _client(tmp_path)
    pub = service.publisher("ETH/USDT")
    assert pub is not None
    pub.on_bar(0, 10, 11, 9, 10.8, 100.0)
    body = client.get("/signals/status").json()
    assert body["enabled"] is True
    assert body["publishers"]["ETHUSDT"]["published"] == 5
    assert body["weights"]["version"] == 1


def test_metrics_windows_count_feedback(tmp_path: Path) -> None:
    client, service = _client(tmp_path)
    assert service.consumer is not None
    now = 100 * HOUR
    for i, (age_h, pnl) in enumerate([(0.5, 1.0), (5, -1.0), (48, 2.0)]):
        service.consumer.handle(
            TradeFeedback(
                signal_id=f"s{i}",
                symbol="BTCUSDT",
                side="long",
                entry_price=1.0,
                exit_price=1.0,
                entry_ts=0,
                exit_ts=now - int(age_h * HOUR),
                pnl=pnl,
                pnl_pct=pnl,
                source="ext",
            )
        )
    service.consumer.flush()
    body = client.get("/signals/metrics", params={"now_ns": now}).json()
    totals = {
        w: next(r for r in rows if r["source"] == "*" and r["component"] == "*")
        for w, rows in body["windows"].items()
    }
    assert {w: r["count"] for w, r in totals.items()} == {"1h": 1, "24h": 2, "7d": 3}
    assert totals["24h"]["hit_rate"] == 0.5
    assert body["weight_history"][0]["reason"] == "initial defaults"


def test_prometheus_metrics_exposes_signal_gauges(tmp_path: Path) -> None:
    client, service = _client(tmp_path)
    service.publisher("BTC/USDT").on_bar(0, 100, 101, 99, 100.5, 50.0)  # type: ignore[union-attr]
    text = client.get("/metrics").text
    assert "tradeloop_signals_enabled 1.0" in text
    assert 'tradeloop_signals_published_total{symbol="BTCUSDT"} 5.0' in text
    assert 'tradeloop_adaptive_weight{component="lev_10x"} 1.0' in text


def test_disabled_loop_api_says_so(tmp_path: Path) -> None:
    client, _ = _client(tmp_path, enabled=False)
    assert client.get("/signals/status").json() == {"enabled": False}
    assert client.get("/signals/metrics").json() == {"enabled": False}
    assert "tradeloop_signals_enabled 0.0" in client.get("/metrics").text


def test_default_app_is_a_read_only_reader_of_the_consumers_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange: the consumer (the only writer) has stored a weight version
    path = tmp_path / "shared.duckdb"
    monkeypatch.setenv("TRADELOOP_ANALYTICS_PATH", str(path))
    writer = SignalService(Settings(analytics_path=path), role="consumer")
    # Act: `serve` builds its app from settings alone
    client = TestClient(create_app())
    body = client.get("/signals/status").json()
    # Assert
    assert body["role"] == "reader"
    assert body["weights"]["version"] == 1
    assert "tradeloop_adaptive_weights_version 1.0" in client.get("/metrics").text
    assert writer.store is not None
    assert writer.store.save_weights({"lev_5x": 2.0}, 1, "ema") == 2  # not locked out by it
    assert client.get("/signals/status").json()["weights"]["values"]["lev_5x"] == 2.0
    writer.close()
