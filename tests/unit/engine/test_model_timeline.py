"""A model swapped while a run goes on is recorded with the run: a restart continues with the
new version, and a replay scores every step with the version then in force."""

from __future__ import annotations

from pathlib import Path

import pytest

from tradeloop.core.bar import BarArrays
from tradeloop.core.errors import ConfigError
from tradeloop.data.loader import load_ohlcv
from tradeloop.engine.config import RunConfig
from tradeloop.engine.enrichment import ModelEnrichment, ModelTimeline
from tradeloop.engine.kernel import BacktestEngine
from tradeloop.engine.market import MarketData
from tradeloop.engine.ml_strategy import primary_events
from tradeloop.engine.paper import enrichment_of, record_model_swap
from tradeloop.engine.runner import run_on_bars
from tradeloop.ml.registry import ModelCatalog
from tradeloop.ml.training import TrainConfig, train_meta_model
from tradeloop.store.state import SqliteStateStore
from tradeloop.strategy.examples.sma_cross import SmaCross
from tradeloop.testing.kernels import test_instrument


@pytest.fixture(scope="module")
def bars(sample_1h: Path) -> BarArrays:
    return load_ohlcv(sample_1h).bars.slice(0, 3_000)


@pytest.fixture(scope="module")
def models(bars: BarArrays, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``meta`` v0001 and v0002: the project's training on two different stretches."""
    root = tmp_path_factory.mktemp("models")
    registry = ModelCatalog(root).registry("meta")
    for part in (bars.slice(0, 1_500), bars):
        plain = run_on_bars(SmaCross(short=True), {part.symbol: part}, RunConfig())
        events, sides = primary_events(plain, part)
        cfg = TrainConfig(estimator_params={"n_estimators": 20}, n_splits=3)
        registry.save(train_meta_model(part, events, sides, cfg).model, bars=part)
    return root


def _meta(models: Path) -> dict[str, object]:
    return {
        "mode": "paper",
        "model": {"name": "meta", "version": "v0001", "min_confidence": 0.0,
                  "use_toxicity": False},
        "model_registry": str(models),
    }  # fmt: skip


def test_a_swap_is_recorded_and_the_run_continues_with_the_new_version(
    models: Path, tmp_path: Path
) -> None:
    store = SqliteStateStore(tmp_path / "state.db")
    store.save_run_meta("r", _meta(models), 123)
    # Act
    record_model_swap(store, "r", "v0002", 1_000)
    meta = store.load_run_meta("r")
    # Assert
    assert meta is not None
    assert meta["model"]["version"] == "v0002"
    assert meta["model_history"] == [
        {"version": "v0001", "after_ts": None},
        {"version": "v0002", "after_ts": 1_000},
    ]
    assert store.run_created_ns("r") == 123
    timeline = enrichment_of(meta)
    assert isinstance(timeline, ModelTimeline)
    assert [e.version for _, e in timeline.versions] == ["v0001", "v0002"]
    restarted = enrichment_of({"model": meta["model"], "model_registry": str(models)})
    assert isinstance(restarted, ModelEnrichment)
    assert restarted.version == "v0002"
    store.save_run_meta("plain", {"mode": "paper"}, 1)
    with pytest.raises(ConfigError, match="no stored model"):
        record_model_swap(store, "plain", "v0002", 1)
    store.close()


def test_a_replay_scores_each_step_with_the_version_then_in_force(
    bars: BarArrays, models: Path
) -> None:
    # Arrange: the swap took over after the bar at the middle of the run
    swap_ts = int(bars.ts[1_800])
    meta = {**_meta(models), "model_history": [
        {"version": "v0001", "after_ts": None}, {"version": "v0002", "after_ts": swap_ts},
    ]}  # fmt: skip
    timeline = enrichment_of(meta)
    assert isinstance(timeline, ModelTimeline)
    market = MarketData({bars.symbol: bars}, {bars.symbol: test_instrument(bars.symbol)}, "1h")
    # Act
    BacktestEngine(SmaCross(short=True), market, RunConfig(), enrichment=timeline).run()
    # Assert: every entry before or at the swap bar by v0001, every later one by v0002
    before = [r for r in timeline.versions[0][1].records]
    after = [r for r in timeline.versions[1][1].records]
    assert len(before) > 10
    assert len(after) > 5
    assert all(r.ts <= swap_ts and r.version == "v0001" for r in before)
    assert all(r.ts > swap_ts and r.version == "v0002" for r in after)
