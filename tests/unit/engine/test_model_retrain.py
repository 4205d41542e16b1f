"""Retraining in a running loop: closed trades feed the retrain monitor, its event starts one
retrain in the background on a copy of the kernel's bars, the candidate is validated against
the running model on the most recent entries, saved as the next registry version and swapped
into the enrichment between two steps. Real BTC/USDT perpetual 5m bars; the models are trained
by the project's own training code."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

from tradeloop.bus.base import InProcessBus
from tradeloop.core.bar import BarArrays
from tradeloop.core.errors import ConfigError
from tradeloop.data.loader import load_ohlcv
from tradeloop.engine.config import RunConfig
from tradeloop.engine.enrichment import ModelEnrichment
from tradeloop.engine.live import LiveKernel
from tradeloop.engine.loop_config import parse_loop_config
from tradeloop.engine.ml_strategy import primary_events
from tradeloop.engine.retrain import (
    ModelRetrainer,
    RetrainConfig,
    retrainer_for,
    train_config_of,
)
from tradeloop.engine.runner import run_on_bars
from tradeloop.ml.features import FeatureSet
from tradeloop.ml.model import MetaModel
from tradeloop.ml.monitor import RetrainEvent
from tradeloop.ml.registry import ModelCatalog, ModelRegistry
from tradeloop.ml.training import TrainConfig, train_meta_model
from tradeloop.strategy.examples.sma_cross import SmaCross
from tradeloop.testing.kernels import bar_row, stream_bars, test_instrument

PERP = "crypto_futures/binance_usdm_2025/BTC_USDT_USDT-5m-futures.feather"
PARAMS = {"fast": 5, "slow": 20, "short": True}
TRAIN_END = 4_000  # the first model's history
LIVE = 5_000  # warm-up bars [TRAIN_END, LIVE), then streamed bar by bar
NAME = "btc5m"
WAIT_S = 300.0  # bound on waiting for a background retrain (never reached when it works)


@pytest.fixture(scope="module")
def perp_5m(shared_data: Path) -> BarArrays:
    return load_ohlcv(shared_data / PERP).bars


@dataclass(frozen=True)
class Trained:
    model: MetaModel
    config: TrainConfig


@pytest.fixture(scope="module")
def first_model(perp_5m: BarArrays) -> Trained:
    """The running model: sma_cross's entries on the first 4000 bars, the project's training."""
    history = perp_5m.slice(0, TRAIN_END)
    plain = run_on_bars(SmaCross(**PARAMS), {history.symbol: history}, RunConfig())
    events, sides = primary_events(plain, history)
    cfg = TrainConfig(estimator_params={"n_estimators": 30}, n_splits=3)
    return Trained(train_meta_model(history, events, sides, cfg).model, cfg)


@pytest.fixture
def models(tmp_path: Path, first_model: Trained, perp_5m: BarArrays) -> Path:
    """A model folder holding ``btc5m`` v0001, saved as ``tradeloop train`` saves it."""
    root = tmp_path / "models"
    ModelCatalog(root).registry(NAME).save(
        replace(first_model.model),
        params={"strategy": "sma_cross", "train": repr(first_model.config)},
        bars=perp_5m.slice(0, TRAIN_END),
    )
    return root


@dataclass
class Run:
    kernel: LiveKernel
    enrichment: ModelEnrichment
    retrainer: ModelRetrainer
    bars: BarArrays
    i: int = LIVE  # the next bar to stream

    def step(self) -> bool:
        """Stream one bar (one step), then the loop's housekeeping; True when it swapped."""
        stream_bars(self.kernel, {self.bars.symbol: self.bars}, self.i, self.i + 1)
        self.i += 1
        return self.retrainer.apply_pending(self.kernel)

    def until_started(self) -> None:
        while self.retrainer.started == 0:
            assert self.i < len(self.bars), "the monitor never asked for a retrain"
            self.step()


def _run(models: Path, bars: BarArrays, config: RetrainConfig) -> Run:
    bus = InProcessBus()
    enrichment = ModelEnrichment.from_registry(NAME, models, min_confidence=0.0)
    sym = bars.symbol
    kernel = LiveKernel(
        SmaCross(**PARAMS), {sym: test_instrument(sym)}, "5m", RunConfig(), run_id="loop",
        bus=bus, enrichment=enrichment,
    )  # fmt: skip
    kernel.warm_up({sym: [bar_row(bars, i) for i in range(TRAIN_END, LIVE)]})
    retrainer = ModelRetrainer(enrichment, bus, config)
    retrainer.attach()
    return Run(kernel, enrichment, retrainer, bars)


def _closed(kernel: LiveKernel) -> int:
    return sum(1 for t in kernel.portfolio.trades if t.exit_ts is not None)


def test_a_retrain_runs_in_the_background_and_its_model_is_swapped_in_between_two_steps(
    models: Path, perp_5m: BarArrays
) -> None:
    # Arrange: retrain after every 60 closed trades; the candidate must beat or match
    config = RetrainConfig(
        every_n=60, min_train_bars=1_000, validation_share=0.3, min_validation_events=10
    )
    run = _run(models, perp_5m, config)
    registry = ModelRegistry(models / NAME)
    # Act 1: stream until the monitor's event started a retrain
    run.until_started()
    started_at = run.kernel.steps
    # Assert: it started in the background; the loop goes on with v0001
    assert run.retrainer.outcomes_recorded == 60
    assert run.retrainer.monitor.events[0].reason == "sample_count"
    assert run.retrainer.busy
    assert run.enrichment.version == "v0001"
    # a second event while one is under way is ignored and counted
    again = RetrainEvent("operator", 0.5, 0.4, 60, 60, 0.05)
    assert not run.retrainer.request(again)
    # Act 2: the background job finishes; the kernel steps once more before its housekeeping
    assert run.retrainer.wait(WAIT_S)
    assert registry.versions() == ["v0001", "v0002"]  # saved in the background ...
    stream_bars(run.kernel, {perp_5m.symbol: perp_5m}, run.i, run.i + 1)
    run.i += 1
    assert run.enrichment.version == "v0001"  # ... but not used before the housekeeping
    swap_ts = run.kernel.last_step_ts
    assert swap_ts is not None
    swapped = run.retrainer.apply_pending(run.kernel)
    closed_at_swap = _closed(run.kernel)
    # Act 3: the loop goes on with the new model
    later = [run.step() for _ in range(400)]
    # Assert: validated on held-out entries, saved as v0002 with its evidence, swapped once
    (outcome,) = run.retrainer.outcomes
    assert swapped
    assert not any(later)
    assert outcome.status == "accepted"
    assert outcome.version == "v0002"
    assert outcome.metric == "log_loss"
    assert outcome.candidate_score <= outcome.running_score
    assert outcome.validation_events >= 10
    assert outcome.train_events >= 12
    meta = registry.metadata("v0002")
    assert meta["retrained_from"] == "v0001"
    assert meta["trigger"]["reason"] == "sample_count"
    assert meta["params"]["strategy"] == "sma_cross"
    assert meta["metrics"]["validation"]["candidate"]["log_loss"] == outcome.candidate_score
    assert train_config_of(meta, 0.5) == first_model_config(models)
    assert run.enrichment.version == "v0002"
    assert run.enrichment.ref is not None
    assert run.enrichment.ref.version == "v0002"
    counts = run.retrainer.counts()
    assert counts["retrain_events"] == 2
    assert counts["retrain_events_ignored"] == 1
    assert counts["retrains_started"] == 1
    assert counts["candidates_accepted"] == 1
    assert counts["candidates_rejected"] == 0
    assert counts["models_swapped"] == 1
    assert counts["model_version"] == "v0002"
    # the monitor watches the new model from its held-out accuracy
    assert run.retrainer.monitor.baseline == outcome.candidate_accuracy
    assert not run.retrainer.monitor.pending
    # every step scored with one model: v0001 up to the swap, v0002 after it
    records = list(run.enrichment.records)
    before = {r.version for r in records if r.ts <= swap_ts}
    after = [r for r in records if r.ts > swap_ts]
    assert before == {"v0001"}
    assert len(after) > 20
    assert {r.version for r in after} == {"v0002"}
    assert run.kernel.steps > started_at + 400
    assert _closed(run.kernel) > closed_at_swap + 20
    # later entries carry the new model's probability, not the old one's
    new = registry.load("v0002")
    old = registry.load("v0001")
    fs = new.feature_set
    held = fs.compute_bars(perp_5m.slice(TRAIN_END, run.i))
    new_p, old_p = [], []
    for r in after:
        row = fs.with_signal(held[int(np.searchsorted(perp_5m.ts, r.ts)) - TRAIN_END], r.side)
        new_p.append(float(new.predict_proba(row)[0]))
        old_p.append(float(old.predict_proba(row)[0]))
    assert [r.meta_confidence for r in after] == pytest.approx(new_p, rel=1e-6)
    assert any(abs(a - b) > 1e-3 for a, b in zip(new_p, old_p, strict=True))
    # the trade open at the swap was the old model's call: left out of the new model's record
    assert run.retrainer.outcomes_stale >= 1


def first_model_config(models: Path) -> TrainConfig:
    """The label settings stored with v0001."""
    return train_config_of(ModelRegistry(models / NAME).metadata("v0001"), 0.5)


def test_a_candidate_that_fails_validation_is_rejected_and_the_running_model_stays(
    models: Path, perp_5m: BarArrays
) -> None:
    # Arrange: the monitor's accuracy-drop trigger; a candidate must beat the running model
    # by a log-loss of 1.0, which no model here can
    config = RetrainConfig(
        min_samples=30, window=60, min_train_bars=1_000, validation_share=0.3,
        min_validation_events=5, margin=-1.0,
    )  # fmt: skip
    run = _run(models, perp_5m, config)
    # Act
    run.until_started()
    assert run.retrainer.wait(WAIT_S)
    swapped = run.step()
    later = [run.step() for _ in range(100)]
    # Assert: validated, rejected with its reason, nothing saved or swapped
    (outcome,) = run.retrainer.outcomes
    assert run.retrainer.monitor.events[0].reason == "accuracy_drop"
    assert not swapped
    assert not any(later)
    assert outcome.status == "rejected"
    assert outcome.reason == "worse_than_running"
    assert outcome.version is None
    assert math.isfinite(outcome.running_score)
    assert outcome.candidate_score > outcome.running_score - 1.0
    assert ModelRegistry(models / NAME).versions() == ["v0001"]
    assert run.enrichment.version == "v0001"
    assert {r.version for r in run.enrichment.records} == {"v0001"}
    counts = run.retrainer.counts()
    assert counts["retrains_started"] == 1
    assert counts["candidates_rejected"] == 1
    assert counts["candidates_rejected_by"] == {"worse_than_running": 1}
    assert counts["candidates_accepted"] == counts["models_swapped"] == 0
    # the running model is watched afresh with its own baseline
    assert not run.retrainer.monitor.pending
    assert run.retrainer.monitor.baseline == run.enrichment.model.baseline_accuracy


def test_a_retrain_that_raises_is_counted_and_the_kernel_keeps_running(
    models: Path, perp_5m: BarArrays
) -> None:
    # Arrange: 90% of the entries held out leaves too few to train with three folds
    config = RetrainConfig(
        every_n=60, min_train_bars=1_000, validation_share=0.9, min_validation_events=10
    )
    run = _run(models, perp_5m, config)
    # Act
    run.until_started()
    assert run.retrainer.wait(WAIT_S)
    steps, closed = run.kernel.steps, _closed(run.kernel)
    swapped = [run.step() for _ in range(200)]
    # Assert
    (outcome,) = run.retrainer.outcomes
    assert outcome.status == "failed"
    assert outcome.reason == "too_little_data"
    assert "too few to train" in outcome.detail
    assert not any(swapped)
    counts = run.retrainer.counts()
    assert counts["retrains_started"] == counts["retrains_failed"] == 1
    assert counts["retrains_failed_by"] == {"too_little_data": 1}
    assert counts["models_swapped"] == 0
    assert run.enrichment.version == "v0001"
    assert ModelRegistry(models / NAME).versions() == ["v0001"]
    assert run.kernel.steps == steps + 200
    assert _closed(run.kernel) > closed
    assert not run.retrainer.busy
    assert not run.retrainer.monitor.pending


def test_a_retrain_with_too_few_bars_held_does_not_start(models: Path, perp_5m: BarArrays) -> None:
    # Arrange: the kernel holds the 1000 warm-up bars; a retrain needs 5000
    run = _run(models, perp_5m, RetrainConfig(min_train_bars=5_000))
    event = RetrainEvent("operator", 0.55, 0.4, 100, 100, 0.05)
    # Act
    accepted = run.retrainer.request(event)
    swapped = run.retrainer.apply_pending(run.kernel)
    # Assert
    assert accepted
    assert not swapped
    assert run.retrainer.started == 0
    assert run.retrainer.counts()["retrains_failed_by"] == {"too_little_data": 1}
    assert "1000 bars held" in run.retrainer.outcomes[0].detail
    assert not run.retrainer.busy
    assert run.retrainer.request(event)  # the next request is taken


def test_the_enrichment_swaps_only_a_model_of_its_feature_set(
    models: Path, first_model: Trained
) -> None:
    enrichment = ModelEnrichment.from_registry(NAME, models)
    other = replace(first_model.model, feature_set=FeatureSet(version=2))
    with pytest.raises(ConfigError, match="feature set meta_v1@2"):
        enrichment.swap(other, "v0009")
    with pytest.raises(ConfigError, match="needs a version"):
        enrichment.swap(replace(first_model.model, version=""))
    assert enrichment.version == "v0001"
    assert enrichment.swaps == 0
    assert enrichment.swap(replace(first_model.model), "v0009") == "v0001"
    assert enrichment.version == "v0009"
    assert enrichment.swaps == 1


def test_stored_training_settings_are_read_as_literals_only() -> None:
    stored = {"params": {"train": repr(TrainConfig(horizon=30, n_splits=3, pt=1.5))}}
    expected = TrainConfig(horizon=30, n_splits=3, pt=1.5, threshold=0.6)
    assert train_config_of(stored, 0.6) == expected
    assert train_config_of({}, 0.5) == TrainConfig()
    code = "TrainConfig(horizon=__import__('os').getpid())"
    with pytest.raises(ConfigError, match="cannot be read"):
        train_config_of({"params": {"train": code}}, 0.5)
    with pytest.raises(ConfigError, match="unknown keys"):
        train_config_of({"params": {"train": "TrainConfig(horizn=30)"}}, 0.5)


LOOP = """
[run]
id = "loop-1"
symbols = ["BTC/USDT:USDT"]

[[strategies]]
name = "sma_cross"
"""


def test_retraining_is_off_unless_loop_toml_turns_it_on(models: Path) -> None:
    import tomllib

    base = tomllib.loads(LOOP)
    enrichment = ModelEnrichment.from_registry(NAME, models)
    bus = InProcessBus()
    # off by default, also with a model
    plain = parse_loop_config({**base, "model": {"name": NAME}}, "loop.toml", models.parent)
    assert not plain.retrain.enabled
    assert retrainer_for(plain, enrichment, bus) is None
    # on: the section's settings, attached to the bus
    on = parse_loop_config(
        {**base, "model": {"name": NAME},
         "retrain": {"enabled": True, "every_n": 50, "margin": 0.01, "metric": "accuracy"}},
        "loop.toml", models.parent,
    )  # fmt: skip
    retrainer = retrainer_for(on, enrichment, bus)
    assert retrainer is not None
    assert retrainer.config == RetrainConfig(every_n=50, margin=0.01, metric="accuracy")
    assert retrainer.monitor.every_n == 50
    assert bus.has_subscribers("tradeloop.trades")
    assert bus.has_subscribers("tradeloop.signals")
    retrainer.close()
    assert not bus.has_subscribers("tradeloop.trades")
    # refused: no model to retrain, or a window shorter than min_samples
    with pytest.raises(ConfigError, match="needs a \\[model\\]"):
        parse_loop_config({**base, "retrain": {"enabled": True}}, "loop.toml", models.parent)
    with pytest.raises(ConfigError, match="retrain: window \\(10\\) must be >= min_samples"):
        parse_loop_config(
            {**base, "retrain": {"window": 10, "min_samples": 20}}, "loop.toml", models.parent
        )
