"""FeedbackConsumer, engine trades -> feedback, SignalService on/off."""

from __future__ import annotations

from pathlib import Path

import pytest

from tradeloop.bus import InProcessBus
from tradeloop.config.settings import Settings
from tradeloop.core.position import Trade
from tradeloop.signals import FeedbackConsumer, LiquidationSignal, SignalService, trades_to_feedback
from tradeloop.store import AnalyticsStore


def _trade(i: int, pnl: float, exit_ts: int | None = 20) -> Trade:
    return Trade(
        id=f"t{i}",
        symbol="BTC/USDT",
        direction=-1,
        quantity=2.0,
        entry_ts=10,
        entry_price=100.0,
        exit_ts=exit_ts,
        exit_price=None if exit_ts is None else 99.0,
        entry_fee=0.0,
        exit_fee=0.0,
        pnl=pnl,
        exit_reason=None,
        tag=f"sig-{i}" if i else "",
    )


def test_trades_to_feedback_maps_closed_trades_only() -> None:
    fb = trades_to_feedback([_trade(1, 2.0), _trade(2, 1.0, exit_ts=None), _trade(0, -1.0)])
    assert [f.signal_id for f in fb] == ["sig-1", "t0"]
    assert fb[0].side == "short"
    assert fb[0].symbol == "BTCUSDT"
    assert fb[0].source == "tradeloop"
    assert fb[0].pnl_pct == pytest.approx(2.0 / 200.0)


def test_feedback_consumer_engine_trades_stored_idempotently() -> None:
    store = AnalyticsStore()
    consumer = FeedbackConsumer(store)
    assert consumer.add_trades([_trade(1, 2.0), _trade(2, -1.0)]) == 2
    assert consumer.add_trades([_trade(1, 2.0)]) == 0
    assert consumer.duplicates == 1
    assert store.feedback_count() == 2


def test_feedback_consumer_wrong_message_type_raises_for_dead_letter() -> None:
    bus = InProcessBus()
    consumer = FeedbackConsumer(AnalyticsStore())
    bus.subscribe("fb", consumer.handle)
    sig = LiquidationSignal(
        id="x",
        symbol="BTCUSDT",
        price_level=1.0,
        side="long",
        strength=1.0,
        distance_pct=0.0,
        confidence=0.5,
        ts=0,
        current_price=1.0,
    )
    bus.publish("fb", sig)
    assert consumer.received == 0
    assert "TradeFeedback" in bus.dead_letters[0].error


def test_signal_service_disabled_opens_nothing(tmp_path: Path) -> None:
    path = tmp_path / "x.duckdb"
    service = SignalService(Settings(signals_enabled=False, analytics_path=path))
    assert service.publisher("BTC/USDT") is None
    assert service.status() == {"enabled": False}
    assert service.metrics() == {"enabled": False}
    assert not path.exists()


def test_signal_service_enabled_publishes_top_n(tmp_path: Path) -> None:
    bus = InProcessBus()
    settings = Settings(signal_top_n=3, analytics_path=tmp_path / "x.duckdb")
    service = SignalService(settings, bus=bus)
    got: list[object] = []
    bus.subscribe("liquidation:signals:BTCUSDT", got.append)
    pub = service.publisher("BTC/USDT")
    assert pub is not None
    pub.on_bar(0, 100, 101, 99, 100.5, 50.0)
    assert len(got) == 3
    status = service.status()
    assert status["publishers"]["BTCUSDT"]["published"] == 3
    assert status["weights"]["version"] == 1
    service.close()
