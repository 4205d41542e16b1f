"""ModelEnrichment: a real meta-model (trained here on the bundled BTC/USDT 1h sample) scoring
entry signals on a MarketView, in backtest (prepare) and paper (prepare + extend) form."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tradeloop.core.bar import BarArrays
from tradeloop.core.errors import ConfigError
from tradeloop.core.instrument import Instrument
from tradeloop.core.signal import Signal
from tradeloop.data.loader import load_ohlcv
from tradeloop.engine.config import RunConfig
from tradeloop.engine.enrichment import ModelEnrichment
from tradeloop.engine.market import MarketData
from tradeloop.engine.ml_strategy import primary_events
from tradeloop.engine.runner import run_on_bars
from tradeloop.ml.model import MetaModel
from tradeloop.ml.registry import ModelCatalog
from tradeloop.ml.training import TrainConfig, train_meta_model
from tradeloop.strategy.examples.sma_cross import SmaCross
from tradeloop.strategy.view import MarketView

SYMBOL = "BTC/USDT"


@pytest.fixture(scope="module")
def bars(sample_1h: Path) -> BarArrays:
    return load_ohlcv(sample_1h).bars.slice(0, 3_000)


@pytest.fixture(scope="module")
def model(bars: BarArrays) -> MetaModel:
    """The project's own training on sma_cross's entries (long and short) of the sample."""
    plain = run_on_bars(SmaCross(short=True), {SYMBOL: bars}, RunConfig())
    events, sides = primary_events(plain, bars)
    cfg = TrainConfig(estimator_params={"n_estimators": 30}, n_splits=3)
    return train_meta_model(bars, events, sides, cfg).model


def view_of(bars: BarArrays, step: int | None = None) -> MarketView:
    view = MarketData({bars.symbol: bars}, {bars.symbol: Instrument(bars.symbol)}, "1h").view()
    if step is not None:
        view.step = view.i = step
    return view


def expected(model: MetaModel, bars: BarArrays, i: int, side: int) -> float:
    """The model's calibrated probability for an entry on bar ``i``, computed independently."""
    fs = model.feature_set
    row = fs.compute_bars(bars)[i]
    return float(model.predict_proba(fs.with_signal(row, float(side)))[0])


def test_entries_get_the_models_confidence_exits_pass_and_weak_entries_are_dropped(
    bars: BarArrays, model: MetaModel
) -> None:
    # Arrange: a bar where the model tells long from short
    k = next(i for i in range(300, 3_000) if abs(
        expected(model, bars, i, 1) - expected(model, bars, i, -1)) > 0.01)  # fmt: skip
    long_p, short_p = expected(model, bars, k, 1), expected(model, bars, k, -1)
    view = view_of(bars, k)
    keep_all = ModelEnrichment(model, min_confidence=0.0)
    strict = ModelEnrichment(model, min_confidence=max(long_p, short_p))
    exit_ = Signal.close(SYMBOL)
    signals = [
        Signal.open_long(SYMBOL, position_id="a"),
        Signal.open_short(SYMBOL, position_id="b"),
        exit_,
    ]
    for e in (keep_all, strict):
        e.prepare(view)
    # Act
    all_out = keep_all.enrich(signals, view)
    strict_out = strict.enrich(signals, view)
    # Assert
    assert [s.confidence for s in all_out[:2]] == [long_p, short_p]
    assert all_out[2] is exit_
    weaker = "b" if short_p < long_p else "a"
    assert [s.position_id for s in strict_out] == [p for p in ("a", "b", None) if p != weaker]
    assert strict.counts.as_dict() == {
        "signals": 3, "exits": 1, "enriched": 2, "cold": 0, "dropped": 1,
    }  # fmt: skip
    records = {r.signal_id: r for r in strict.drain()}
    assert not records[weaker].kept
    assert records["a"].side == 1
    assert records["b"].side == -1
    assert records["a"].ts == int(bars.ts[k])
    assert records["a"].meta_confidence == long_p
    assert records["a"].regime_weight == 1.0
    assert 0.0 <= records["a"].toxicity <= 1.0
    assert strict.records == type(strict.records)(maxlen=strict.records.maxlen)


def test_toxicity_lowers_the_confidence_when_switched_on(bars: BarArrays, model: MetaModel) -> None:
    # Arrange
    k = 1_000
    fs = model.feature_set
    vpin = float(fs.compute_bars(bars)[k, fs.bar_features.index("vpin_50")])
    view = view_of(bars, k)
    enrichment = ModelEnrichment(model, min_confidence=0.0, use_toxicity=True)
    enrichment.prepare(view)
    # Act
    (out,) = enrichment.enrich([Signal.open_long(SYMBOL)], view)
    # Assert
    assert 0.0 < vpin < 1.0
    assert out.confidence == pytest.approx(expected(model, bars, k, 1) * (1.0 - vpin), rel=1e-15)
    assert enrichment.records[0].toxicity == vpin


def test_cold_start_confidence_before_the_features_are_ready(
    bars: BarArrays, model: MetaModel
) -> None:
    # Arrange: bar 10 is inside the features' warm-up
    view = view_of(bars, 10)
    enrichment = ModelEnrichment(model, min_confidence=0.5)
    enrichment.prepare(view)
    # Act
    out = enrichment.enrich([Signal.open_long(SYMBOL)], view)
    # Assert
    assert [s.confidence for s in out] == [0.5]
    assert enrichment.counts.cold == 1
    assert enrichment.records[0].cold


def test_paper_extend_equals_the_backtest_features_bar_for_bar(
    bars: BarArrays, model: MetaModel
) -> None:
    # Arrange: the backtest sees every bar at once; paper starts with 350 and gets the rest
    # one bar at a time, sometimes three at once (a backfill)
    full = view_of(bars)
    backtest = ModelEnrichment(model, min_confidence=0.0)
    backtest.prepare(full)
    paper = ModelEnrichment(model, min_confidence=0.0)
    paper.prepare(view_of(bars.slice(0, 350)))
    stop, seen = 350, 0
    # Act / Assert
    while stop < 800:
        stop += 3 if stop % 50 == 0 else 1
        window = view_of(bars.slice(0, stop), stop - 1)
        paper.extend(window)
        full.step = full.i = stop - 1
        for side_signal in (Signal.open_long(SYMBOL), Signal.open_short(SYMBOL)):
            (p,) = paper.enrich([side_signal], window)
            (b,) = backtest.enrich([side_signal], full)
            assert p.confidence == b.confidence, stop
            seen += 1
    assert seen > 800


def test_paper_extend_follows_a_rolling_window(bars: BarArrays, model: MetaModel) -> None:
    # Arrange: a 400-bar window whose oldest bars leave as new ones arrive
    held = 400
    paper = ModelEnrichment(model, min_confidence=0.0)
    paper.prepare(view_of(bars.slice(0, held)))
    # Act / Assert: the newest bar scores as a fresh start on the same window would
    for stop in range(held + 1, held + 300, 7):
        window = view_of(bars.slice(stop - held, stop), held - 1)
        paper.extend(window)
        fresh = ModelEnrichment(model, min_confidence=0.0)
        fresh.prepare(window)
        signal = [Signal.open_long(SYMBOL)]
        (p,), (f,) = paper.enrich(signal, window), fresh.enrich(signal, window)
        assert p.confidence == f.confidence, stop


def test_two_symbols_are_scored_on_their_own_bars(bars: BarArrays, model: MetaModel) -> None:
    # Arrange: a second symbol on the same clock with another stretch of real prices
    other_src = bars.slice(1_000, 2_000)
    a = bars.slice(0, 1_000)
    b = BarArrays(
        "ETH/USDT", "1h", a.ts, other_src.open, other_src.high, other_src.low, other_src.close,
        other_src.volume,
    )  # fmt: skip
    instruments = {s: Instrument(s) for s in (SYMBOL, "ETH/USDT")}
    view = MarketData({SYMBOL: a, "ETH/USDT": b}, instruments, "1h").view()
    view.step = view.i = 700
    enrichment = ModelEnrichment(model, min_confidence=0.0)
    enrichment.prepare(view)
    # Act
    out = enrichment.enrich([Signal.open_long(SYMBOL), Signal.open_long("ETH/USDT")], view)
    # Assert
    assert [s.confidence for s in out] == [expected(model, a, 700, 1), expected(model, b, 700, 1)]


def test_from_registry_names_the_model_and_lists_names_and_versions(
    tmp_path: Path, bars: BarArrays, model: MetaModel
) -> None:
    # Arrange
    catalog = ModelCatalog(tmp_path)
    catalog.registry("btc_meta").save(model, bars=bars)
    catalog.registry("btc_meta").save(model, bars=bars)
    # Act
    latest = ModelEnrichment.from_registry("btc_meta", tmp_path, threads=2)
    pinned = ModelEnrichment.from_registry("btc_meta:1", tmp_path, min_confidence=0.4)
    # Assert
    assert (latest.spec, pinned.spec) == ("btc_meta:v0002", "btc_meta:v0001")
    described = pinned.describe()
    assert described["name"] == "btc_meta"
    assert described["version"] == "v0001"
    assert described["min_confidence"] == 0.4
    assert described["trained_on"]["timeframe"] == "1h"
    assert latest.min_confidence == model.threshold
    assert latest.threads == 2
    with pytest.raises(ConfigError, match="Available: btc_meta"):
        ModelEnrichment.from_registry("eth_meta", tmp_path)
    with pytest.raises(ConfigError, match="versions: v0001, v0002"):
        ModelEnrichment.from_registry("btc_meta:v0003", tmp_path)


@pytest.mark.parametrize(
    ("options", "message"),
    [({"min_confidence": 1.5}, "min_confidence"), ({"threads": 0}, "ML threads"),
     ({"extend_window": 100}, "extend_window")],
)  # fmt: skip
def test_bad_settings_are_refused(model: MetaModel, options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ModelEnrichment(model, **options)


def test_records_are_bounded(bars: BarArrays, model: MetaModel) -> None:
    view = view_of(bars, 500)
    enrichment = ModelEnrichment(model, min_confidence=0.0, max_records=3)
    enrichment.prepare(view)
    for _ in range(5):
        enrichment.enrich([Signal.open_long(SYMBOL)], view)
    assert len(enrichment.records) == 3
    assert enrichment.counts.enriched == 5
    assert all(math.isfinite(r.confidence) for r in enrichment.records)
    assert np.isfinite(enrichment.records[0].as_dict()["meta_confidence"])
