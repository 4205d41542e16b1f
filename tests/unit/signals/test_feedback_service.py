"""FeedbackConsumer, engine trades -> feedback, SignalService on/off."""

from __future__ import annotations

from dataclasses import dataclass, replace
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
    assert [f.signal_id for f in fb] == ["t1", "t0"]  # keyed by trade, never by the tag
    assert fb[0].side == "short"
    assert fb[0].symbol == "BTCUSDT"
    assert fb[0].source == "tradeloop"
    assert fb[0].pnl_pct == pytest.approx(2.0 / 200.0)


def test_trades_of_one_strategy_tag_are_one_feedback_row_each() -> None:
    # Arrange: 1,642 closed trades, all tagged with the same strategy tag
    trades = [replace(_trade(i, 1.0 if i % 3 else -1.0), tag="sma_cross") for i in range(1642)]
    store = AnalyticsStore()
    consumer = FeedbackConsumer(store)
    # Act
    new = consumer.add_trades(trades)
    # Assert: one row per trade, and the outcomes are all counted
    assert new == 1642
    assert store.feedback_count() == 1642
    total = next(r for r in store.rolling_metrics(0) if r["source"] == r["component"] == "*")
    assert total["count"] == 1642
    assert total["hit_rate"] == pytest.approx(sum(1 for i in range(1642) if i % 3) / 1642)


@dataclass(frozen=True, slots=True)
class _SignalTrade(Trade):
    signal_id: str = ""


def test_trade_signal_id_is_preferred_when_the_trade_carries_one() -> None:
    base = _trade(7, 1.0)
    with_id = _SignalTrade(
        **{f: getattr(base, f) for f in base.__dataclass_fields__}, signal_id="s-9"
    )
    without = _SignalTrade(**{f: getattr(base, f) for f in base.__dataclass_fields__})
    assert [f.signal_id for f in trades_to_feedback([with_id, without])] == ["s-9", "t7"]


def test_replayed_feedback_is_stored_and_counted_once() -> None:
    # Arrange: the same outcome arrives three times (a bus replay, and twice in one batch)
    store = AnalyticsStore()
    consumer = FeedbackConsumer(store)
    fb = trades_to_feedback([_trade(1, 2.0)])[0]
    # Act
    consumer.handle(fb)
    consumer.flush()
    consumer.handle(fb)
    consumer.handle(fb)
    consumer.flush()
    # Assert
    assert (consumer.received, consumer.stored, consumer.duplicates) == (3, 1, 2)
    assert store.feedback_count() == 1
    assert [r["count"] for r in store.rolling_metrics(0) if r["source"] == "*"] == [1, 1]


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
