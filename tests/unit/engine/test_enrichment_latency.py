"""ModelEnrichment times each scoring call (the service's ML inference latency histogram reads
these): one duration per step that scored entries, none for exits only."""

from __future__ import annotations

from pathlib import Path

from tradeloop.core.bar import BarArrays
from tradeloop.data.loader import load_ohlcv
from tradeloop.engine.config import RunConfig
from tradeloop.engine.enrichment import ModelEnrichment
from tradeloop.engine.ml_strategy import primary_events
from tradeloop.engine.runner import run_on_bars
from tradeloop.ml.training import TrainConfig, train_meta_model
from tradeloop.strategy.examples.sma_cross import SmaCross


def test_every_scoring_call_is_timed_once(sample_1h: Path) -> None:
    # Arrange: the project's own model on sma_cross's entries of the sample
    bars: BarArrays = load_ohlcv(sample_1h).bars.slice(0, 2_000)
    plain = run_on_bars(SmaCross(short=True), {bars.symbol: bars}, RunConfig())
    events, sides = primary_events(plain, bars)
    cfg = TrainConfig(estimator_params={"n_estimators": 10}, n_splits=3)
    model = train_meta_model(bars, events, sides, cfg).model
    enrichment = ModelEnrichment(model, name="meta", version="v1", min_confidence=0.5)
    # Act
    run_on_bars(SmaCross(short=True), {bars.symbol: bars}, RunConfig(), enrichment=enrichment)
    # Assert: one timing per step whose signals held an entry
    steps_scored = {r.ts for r in enrichment.records}
    assert enrichment.counts.enriched == len(enrichment.records) > 0
    assert len(enrichment.latencies) == len(steps_scored)
    assert all(0.0 < s < 5.0 for s in enrichment.latencies)
