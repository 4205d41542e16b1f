"""AdaptiveEngine: raise, lower, rollback, restore after restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from tradeloop.signals import AdaptiveConfig, AdaptiveEngine, FeedbackConsumer, TradeFeedback
from tradeloop.store import AnalyticsStore

HOUR = 3_600_000_000_000
NOW = 1_000 * HOUR
DEFAULTS = {"lev_10x": 1.0, "lev_50x": 1.0}
CFG = AdaptiveConfig(alpha=0.5, min_samples=20, min_component_samples=5)


def _feed(store: AnalyticsStore, component: str, wins: int, losses: int, tag: str) -> None:
    consumer = FeedbackConsumer(store)
    for i in range(wins + losses):
        pnl = 1.0 if i < wins else -1.0
        consumer.handle(
            TradeFeedback(
                signal_id=f"{tag}-{i}",
                symbol="BTCUSDT",
                side="long",
                entry_price=100.0,
                exit_price=100.0 + pnl,
                entry_ts=NOW - 2 * HOUR,
                exit_ts=NOW - HOUR,
                pnl=pnl,
                pnl_pct=pnl / 100,
                source="ext",
                component=component,
            )
        )
    consumer.flush()


def test_adaptive_good_component_raised_bad_component_lowered() -> None:
    store = AnalyticsStore()
    engine = AdaptiveEngine(store, DEFAULTS, CFG, now_ns=NOW)
    _feed(store, "lev_10x", 9, 1, "a")  # hit 0.9
    _feed(store, "lev_50x", 3, 7, "b")  # hit 0.3; total hit 0.6 -> no rollback
    change = engine.update(NOW)
    assert change is not None
    assert not change.rollback
    assert engine.weights["lev_10x"] == pytest.approx(0.5 * 1.0 + 0.5 * 1.8)
    assert engine.weights["lev_50x"] == pytest.approx(0.5 * 1.0 + 0.5 * 0.6)
    assert "lev_10x" in change.reason
    assert store.weights()["version"] == 2


def test_adaptive_weights_respect_bounds() -> None:
    store = AnalyticsStore()
    engine = AdaptiveEngine(
        store, DEFAULTS, AdaptiveConfig(alpha=1.0, max_weight=1.5, min_component_samples=5)
    )
    _feed(store, "lev_10x", 10, 0, "a")
    engine.update(NOW)
    assert engine.weights["lev_10x"] == 1.5


def test_adaptive_low_24h_hit_rate_rolls_back_to_defaults() -> None:
    store = AnalyticsStore()
    engine = AdaptiveEngine(store, DEFAULTS, CFG, now_ns=NOW)
    _feed(store, "lev_10x", 10, 0, "good")
    engine.update(NOW)
    assert engine.weights != DEFAULTS
    _feed(store, "lev_50x", 2, 28, "bad")  # total 12/40 = 0.30 < 0.50 over 40 >= 20
    change = engine.update(NOW)
    assert change is not None
    assert change.rollback
    assert engine.weights == DEFAULTS
    assert "rollback" in store.weights()["reason"]
    assert engine.update(NOW) is None  # already at defaults: no new version


def test_adaptive_below_min_samples_no_rollback() -> None:
    store = AnalyticsStore()
    engine = AdaptiveEngine(store, DEFAULTS, CFG)
    _feed(store, "lev_10x", 1, 3, "few")
    assert engine.update(NOW) is None


def test_adaptive_restart_restores_latest_weights(tmp_path: Path) -> None:
    path = tmp_path / "a.duckdb"
    store = AnalyticsStore(path)
    engine = AdaptiveEngine(store, DEFAULTS, CFG, now_ns=NOW)
    _feed(store, "lev_10x", 9, 1, "a")
    engine.update(NOW)
    saved, version = engine.current(), engine.version
    store.close()
    # Act: a new process opens the same file
    reopened = AdaptiveEngine(AnalyticsStore(path), DEFAULTS, CFG, now_ns=NOW)
    assert reopened.current() == saved
    assert reopened.version == version
    back = reopened.restore(1, NOW)
    assert back.weights == DEFAULTS
    assert reopened.version == version + 1


def test_outcomes_of_other_components_do_not_roll_back_the_weighted_ones() -> None:
    # Arrange: a losing strategy shares the account (component "sma_cross", 2 of 30 won) with
    # a winning zone tier (6 of 7): over all rows the 24h hit rate is 8/37 < 0.5
    def run(own_only: bool) -> AdaptiveEngine:
        store = AnalyticsStore()
        cfg = AdaptiveConfig(
            alpha=0.5, min_samples=20, min_component_samples=5, own_components_only=own_only
        )
        engine = AdaptiveEngine(store, DEFAULTS, cfg, now_ns=NOW)
        _feed(store, "sma_cross", 2, 28, "other")
        _feed(store, "lev_10x", 6, 1, "zone")
        engine.update(NOW)
        return engine

    # Act
    everything, own = run(False), run(True)
    # Assert: judged on all rows nothing moves (the rollback rule holds them at the defaults);
    # judged on the weighted components the winning tier is raised by the EMA rule
    assert everything.weights == DEFAULTS
    assert own.weights["lev_10x"] == pytest.approx(0.5 * 1.0 + 0.5 * 2.0 * 6 / 7)
    assert own.weights["lev_50x"] == 1.0
    assert "sma_cross" not in own.weights
