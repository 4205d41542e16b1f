"""A regime model inside the one kernel step: backtest and paper alike, risk sized by the
regime's gradual exposure, events on the bus.

The series is constructed: calm 5-minute bars, then a volatile block, then calm again. A real
HMM is fitted on it; a strategy enters on a fixed schedule, so a run with the regime and one
without send the same orders except for their size, and only where the regime's exposure was
below 1.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tradeloop.bus.base import InProcessBus
from tradeloop.bus.events import RegimeEvent
from tradeloop.core.bar import BarArrays
from tradeloop.core.portfolio import Portfolio
from tradeloop.core.signal import Signal
from tradeloop.engine.config import RunConfig
from tradeloop.engine.kernel import BacktestEngine
from tradeloop.engine.live import LiveKernel
from tradeloop.engine.market import MarketData
from tradeloop.engine.regime import RegimeSource
from tradeloop.ml.regimes import HMMDetector, TransitionManager
from tradeloop.risk.config import RiskConfig
from tradeloop.risk.engine import RiskEngine
from tradeloop.store.state import SqliteStateStore
from tradeloop.strategy.base import Strategy
from tradeloop.strategy.view import MarketView
from tradeloop.testing.kernels import bar_row, stream_bars, test_instrument

MIN5 = 300_000_000_000
T0 = 1_700_000_000 // 300 * MIN5
CALM, WILD = 600, 300  # bars
SYM = "REG/USDT"


def constructed() -> BarArrays:
    rng = np.random.default_rng(11)
    sig = np.r_[np.full(CALM, 0.001), np.full(WILD, 0.012), np.full(CALM, 0.001)]
    ret = sig * rng.standard_normal(sig.size)
    close = 100.0 * np.exp(np.cumsum(ret))
    open_ = np.r_[100.0, close[:-1]]
    high = np.maximum(open_, close) * (1 + sig / 4)
    low = np.minimum(open_, close) * (1 - sig / 4)
    volume = np.exp(rng.normal(8.0, 0.2, sig.size))
    ts = T0 + np.arange(sig.size, dtype=np.int64) * MIN5
    return BarArrays(SYM, "5m", ts, open_, high, low, close, volume)


class Every(Strategy):
    """Long 50% of equity every 20 bars, flat 10 bars later."""

    name = "every_20"

    def on_bar(self, view: MarketView, portfolio: Portfolio) -> list[Signal]:
        i = view.index()
        if i % 20 == 0:
            return [Signal.open_long(SYM, 0.5)]
        if i % 20 == 10 and SYM in portfolio.positions:
            return [Signal.close(SYM)]
        return []


@pytest.fixture(scope="module")
def bars() -> BarArrays:
    return constructed()


@pytest.fixture(scope="module")
def detector(bars: BarArrays) -> HMMDetector:
    return HMMDetector(2, seed=0, n_init=1).fit(bars)


def source(detector: HMMDetector) -> RegimeSource:
    return RegimeSource(detector, TransitionManager(duration_ns=30 * 60_000_000_000), name="t")


def backtest(bars: BarArrays, regime: RegimeSource | None, bus=None):
    market = MarketData({SYM: bars}, {SYM: test_instrument(SYM)}, "5m")
    engine = BacktestEngine(
        Every(), market, RunConfig(balance=10_000), inputs=(regime,) if regime else (), bus=bus
    )
    return engine, engine.run()


def test_regime_scaled_backtest_differs_exactly_where_the_regime_cut_exposure(
    bars: BarArrays, detector: HMMDetector
) -> None:
    # Arrange
    regime = source(detector)
    # Act
    plain, _ = backtest(bars, None)
    scaled, _ = backtest(bars, regime)
    # Assert: one regime state per step; the same orders at the same steps
    assert len(regime.history) == len(bars)
    exposure = {ts: s.exposure for ts, s in zip(regime.step_ts, regime.history, strict=True)}
    assert len(plain.orders) == len(scaled.orders) > 60
    differ = set()
    for a, b in zip(plain.orders, scaled.orders, strict=True):
        assert (a.ts_created, a.side, a.reduce_only) == (b.ts_created, b.side, b.reduce_only)
        if a.reduce_only:
            continue  # closes are never scaled
        e = exposure[a.ts_created]
        assert b.equity_fraction == pytest.approx(a.equity_fraction * e, rel=1e-12)
        if e != 1.0:
            differ.add(a.ts_created)
    # the entries that differ are exactly those taken while the regime cut the exposure ...
    cut = {t for t, e in exposure.items() if e < 1.0}
    entries = {o.ts_created for o in plain.orders if not o.reduce_only}
    assert differ == cut & entries
    assert differ
    # ... which began after the volatile block began (causal), within its warm-up and hysteresis
    switch = min(cut)
    first_wild = int(bars.ts[CALM])
    assert first_wild < switch <= first_wild + 40 * MIN5
    labels = {
        s.label
        for s in regime.history
        if s.ts > first_wild + 40 * MIN5 and s.ts < int(bars.ts[CALM + WILD])
    }
    assert labels == {"high_vol"}
    # and the exposure ramped: never more than 5/30 of the 0.5 change between two bars
    steps = np.diff([s.exposure for s in regime.history])
    assert np.abs(steps).max() <= 0.5 * 5 / 30 + 1e-12
    assert min(s.exposure for s in regime.history) == 0.5


def test_regime_events_on_the_bus_one_per_step(bars: BarArrays, detector: HMMDetector) -> None:
    # Arrange
    bus = InProcessBus()
    seen: list[RegimeEvent] = []
    bus.subscribe("tradeloop.regimes", seen.append)
    regime = source(detector)
    # Act
    backtest(bars, regime, bus=bus)
    # Assert: every step published, in order, with what the step applied
    assert len(seen) == len(bars) == len(regime.history)
    assert [m.ts for m in seen] == bars.ts.tolist()
    assert [m.exposure for m in seen] == [s.exposure for s in regime.history]
    assert [m.regime for m in seen] == [s.label for s in regime.history]
    assert {m.model for m in seen} == {"t"} or {m.model for m in seen} == {"t"}
    assert sum(m.detected == "" for m in seen) == detector.lookback


def test_paper_kernel_gives_the_backtests_regimes_and_orders(
    bars: BarArrays, detector: HMMDetector
) -> None:
    # Arrange
    warm = 200
    cfg = RunConfig(balance=10_000, trade_start=int(bars.ts[warm]))
    back_regime, live_regime = source(detector), source(detector)
    engine, _ = BacktestEngine(
        Every(), MarketData({SYM: bars}, {SYM: test_instrument(SYM)}, "5m"), cfg,
        inputs=(back_regime,),
    ), None  # fmt: skip
    engine.run()
    kernel = LiveKernel(Every(), {SYM: test_instrument(SYM)}, "5m", cfg, inputs=(live_regime,))
    kernel.warm_up({SYM: [bar_row(bars, i) for i in range(warm)]})
    # Act: bar by bar, as a live feed delivers them
    stream_bars(kernel, {SYM: bars}, warm, len(bars))
    # Assert: the same regime at every traded step, the same orders
    assert kernel.steps == len(bars) - warm
    live = dict(zip(live_regime.step_ts, live_regime.history, strict=True))
    back = dict(zip(back_regime.step_ts, back_regime.history, strict=True))
    traded = [int(t) for t in bars.ts[warm:]]
    assert [live[t] for t in traded] == [back[t] for t in traded]
    assert live_regime.bars_seen == len(bars)
    orders = [s.order for s in kernel._orders.values()]
    assert orders == engine.orders
    assert any(o.equity_fraction is not None and o.equity_fraction < 0.5 for o in orders)


def test_risk_engine_sizes_entries_by_the_regime_exposure() -> None:
    # Arrange: the default (full) profile and the permissive pass-through
    from tradeloop.core.rejection import Rejection

    instruments = {SYM: test_instrument(SYM)}

    class Market:
        ts, bar_ns, regime = T0, MIN5, None

        def price(self, symbol: str) -> float:
            return 100.0

        def returns(self, symbols, n):
            return np.empty((0, len(symbols)))

        def ranges(self, symbol, n):
            return None

    def order(config: RiskConfig, regime: str | None, mult: float):
        risk = RiskEngine(config, instruments)
        risk.set_regime(regime, mult)
        return risk, risk.check(Signal.open_long(SYM, 0.05), Portfolio(10_000), Market())

    # Act
    _, full = order(RiskConfig.default(), None, 1.0)
    _, half = order(RiskConfig.default(), "high_vol", 0.5)
    _, plain = order(RiskConfig.permissive(), None, 1.0)
    _, scaled = order(RiskConfig.permissive(), "high_vol", 0.25)
    risk, refused = order(RiskConfig.default(), None, 0.0)
    _, crisis = order(RiskConfig.default(), "crisis", 0.0)
    # Assert
    assert half.quantity == pytest.approx(full.quantity * 0.5, rel=1e-4)
    assert scaled.equity_fraction == pytest.approx(plain.equity_fraction * 0.25)
    assert isinstance(refused, Rejection)
    assert refused.reason == "regime"
    assert "no new exposure" in refused.detail
    assert isinstance(crisis, Rejection)
    assert crisis.reason == "leverage"  # crisis: the regime's leverage cap is 0
    assert risk.export_state()["size_multiplier"] == 0.0
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        risk.set_regime("x", 1.5)


def test_the_regime_confidence_is_the_enrichments_regime_weight(sample_1h) -> None:
    # Arrange: a meta-model trained by the project on sma_cross's entries of the bundled
    # sample, and an HMM fitted on the same bars
    from tradeloop.data.loader import load_ohlcv
    from tradeloop.engine.enrichment import ModelEnrichment
    from tradeloop.engine.ml_strategy import primary_events
    from tradeloop.engine.runner import run_on_bars
    from tradeloop.ml.training import TrainConfig, train_meta_model
    from tradeloop.strategy.examples.sma_cross import SmaCross

    btc = load_ohlcv(sample_1h).bars.slice(0, 3_000)
    sym = btc.symbol
    plain = run_on_bars(SmaCross(short=True), {sym: btc}, RunConfig())
    events, sides = primary_events(plain, btc)
    model = train_meta_model(
        btc, events, sides, TrainConfig(estimator_params={"n_estimators": 30}, n_splits=3)
    ).model
    enrichment = ModelEnrichment(model, name="meta", version="v1", min_confidence=0.0)
    regime = RegimeSource(HMMDetector(3, seed=0, n_init=1).fit(btc), name="btc")
    # Act
    run_on_bars(
        SmaCross(short=True), {sym: btc}, RunConfig(), enrichment=enrichment, inputs=(regime,)
    )
    # Assert: every scored entry carries the regime's confidence at its step as its weight,
    # and its confidence is the meta-confidence times that weight
    by_ts = dict(zip(regime.step_ts, regime.history, strict=True))
    records = list(enrichment.records)
    assert len(records) == enrichment.counts.enriched > 20
    weights = []
    for r in records:
        conf = by_ts[r.ts].confidence
        weight = conf if np.isfinite(conf) else 1.0  # warm-up: no regime, no weight
        assert r.regime_weight == weight
        assert r.confidence == pytest.approx(min(1.0, max(0.0, r.meta_confidence * weight)))
        weights.append(r.regime_weight)
    assert min(weights) < 1.0  # the weight did change something


def test_a_restarted_paper_run_continues_the_regime_as_if_never_stopped(
    bars: BarArrays, detector: HMMDetector, tmp_path
) -> None:
    # Arrange: an uninterrupted paper run, and the same run killed and restarted from its
    # state store at cuts inside the hysteresis and the exposure ramps around both switches
    warm = 200
    cfg = RunConfig(balance=10_000, trade_start=int(bars.ts[warm]))
    ref_regime = source(detector)
    ref = LiveKernel(Every(), {SYM: test_instrument(SYM)}, "5m", cfg, inputs=(ref_regime,))
    ref.warm_up({SYM: [bar_row(bars, i) for i in range(warm)]})
    stream_bars(ref, {SYM: bars}, warm, len(bars))
    ref_states = dict(zip(ref_regime.step_ts, ref_regime.history, strict=True))
    ramps = [t for t, s in ref_states.items() if s.exposure not in (0.5, 1.0)]
    first_ramp = bars.ts.tolist().index(min(ramps))
    last_ramp = bars.ts.tolist().index(max(ramps))
    # a cut 1 bar into a confirmation (candidate pending) and 2 bars into each ramp
    cuts = [warm, first_ramp - 2, first_ramp + 2, last_ramp - 2, len(bars)]
    assert cuts == sorted(cuts)
    # Act
    states: dict[int, object] = {}
    restarted: list[dict] = []
    for k, (lo, hi) in enumerate(itertools.pairwise(cuts)):
        store = SqliteStateStore(tmp_path / "state.db")
        regime = source(detector)
        kernel = LiveKernel(
            Every(), {SYM: test_instrument(SYM)}, "5m", cfg, run_id="r", store=store,
            inputs=(regime,),
        )  # fmt: skip
        assert kernel.restore() == (k > 0)
        if k == 0:
            kernel.warm_up({SYM: [bar_row(bars, i) for i in range(warm)]})
        else:
            restarted.append(regime.manager.export_state())
        stream_bars(kernel, {SYM: bars}, lo, hi)
        states.update(zip(regime.step_ts, regime.history, strict=True))
        store.close()
    # Assert: the restored managers were mid-way (a pending candidate or a ramp), and every
    # step's regime, exposure and the orders equal the uninterrupted run's
    traded = [int(t) for t in bars.ts[warm:]]
    assert len(states) == len(traded)
    assert [states[t] for t in traded] == [ref_states[t] for t in traded]
    assert kernel.steps == ref.steps == len(traded)
    assert regime.manager.switches == ref_regime.manager.switches >= 2
    assert regime.bars_seen == ref_regime.bars_seen == len(bars)
    assert [s.order for s in kernel._orders.values()] == [s.order for s in ref._orders.values()]
    assert any(r["candidate"] is not None for r in restarted)
    assert any(r["since"] is not None and r["from"] != r["target"] for r in restarted)
