"""Every stage of the step on the bus: complete counts, the same events in backtest and paper,
and a backtest with a bus gives the same result as one without."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from pydantic import BaseModel

from tradeloop.bus.base import InProcessBus
from tradeloop.bus.events import TOPICS, event_codec
from tradeloop.core.bar import BarArrays
from tradeloop.core.signal import SignalAction
from tradeloop.data.loader import load_ohlcv
from tradeloop.engine.config import RunConfig
from tradeloop.engine.kernel import BacktestEngine
from tradeloop.engine.live import LiveKernel
from tradeloop.engine.market import MarketData
from tradeloop.strategy.examples.sma_cross import SmaCross
from tradeloop.testing.kernels import bar_row, stream_bars, test_instrument

WARMUP = 200


class Capture:
    """Subscribes to every step topic and keeps what arrives, in order."""

    def __init__(self, bus: InProcessBus) -> None:
        self.messages: list[tuple[str, BaseModel]] = []
        for topic in TOPICS:
            bus.subscribe(topic, lambda m, t=topic: self.messages.append((t, m)))

    def count(self) -> Counter[str]:
        return Counter(t for t, _ in self.messages)

    def of(self, topic: str) -> list[BaseModel]:
        return [m for t, m in self.messages if t == topic]


@pytest.fixture(scope="module")
def btc_1m(shared_data: Path) -> BarArrays:
    bars = load_ohlcv(shared_data / "crypto_1m/binance_spot_2025/BTC_USDT-1m.feather").bars
    return bars.slice(0, 2_500)


def _backtest(bars: BarArrays, cfg: RunConfig, bus: InProcessBus | None) -> BacktestEngine:
    market = MarketData({bars.symbol: bars}, {bars.symbol: test_instrument(bars.symbol)}, "1m")
    return BacktestEngine(
        SmaCross(fast=5, slow=20, stop_loss=0.002), market, cfg, bus=bus, run_id="bt"
    )


def test_a_backtest_publishes_every_stage_and_its_result_is_unchanged(btc_1m) -> None:
    # Arrange
    cfg = RunConfig(fee=0.001, risk="default")
    bus = InProcessBus()
    capture = Capture(bus)
    plain = _backtest(btc_1m, cfg, None)
    published = _backtest(btc_1m, cfg, bus)
    # Act
    a, b = plain.run(), published.run()
    # Assert: identical results
    assert a.trades == b.trades
    assert np.array_equal(a.equity, b.equity)
    # every stage counted in full
    counts = capture.count()
    closed = [t for t in b.trades if t.exit_ts is not None]
    assert counts["tradeloop.bars"] == len(btc_1m)
    assert counts["tradeloop.equity"] == len(btc_1m)
    assert counts["tradeloop.signals"] == len(b.signals) > 20
    assert counts["tradeloop.risk.decisions"] == len(b.signals)
    assert counts["tradeloop.orders"] == len(published.orders)
    assert counts["tradeloop.fills"] == len(published.broker.fills())
    assert counts["tradeloop.trades"] == len(closed) > 10
    assert "tradeloop.signals.enriched" not in counts  # no model
    rejected = [d for d in capture.of("tradeloop.risk.decisions") if not d.accepted]  # type: ignore[attr-defined]
    assert len(rejected) == len(b.signals) - len(published.orders)
    # each closed trade names the signal that opened it
    opened = {s.position_id for _, s in b.signals if s.action is not SignalAction.CLOSE}
    trade_ids = [m.signal_id for m in capture.of("tradeloop.trades")]  # type: ignore[attr-defined]
    assert set(trade_ids) <= opened
    assert trade_ids == [t.id for t in closed]
    # the last equity event is the run's last equity
    assert capture.of("tradeloop.equity")[-1].equity == pytest.approx(b.equity[-1])  # type: ignore[attr-defined]


def test_paper_publishes_the_same_events_as_the_backtest(btc_1m) -> None:
    # Arrange
    cfg = RunConfig(fee=0.001, trade_start=int(btc_1m.ts[WARMUP]))
    bt_bus, paper_bus = InProcessBus(), InProcessBus()
    bt, paper = Capture(bt_bus), Capture(paper_bus)
    engine = _backtest(btc_1m, cfg, bt_bus)
    engine.run()
    sym = btc_1m.symbol
    kernel = LiveKernel(
        SmaCross(fast=5, slow=20, stop_loss=0.002),
        {sym: test_instrument(sym)},
        "1m",
        cfg,
        run_id="bt",
        bus=paper_bus,
    )
    kernel.warm_up({sym: [bar_row(btc_1m, i) for i in range(WARMUP)]})
    # Act
    stream_bars(kernel, {sym: btc_1m}, WARMUP, len(btc_1m))
    # Assert: the same messages on every topic (bars: paper's carry the volume, the
    # backtest's too; equity per step from the first live bar in both)
    for topic in (
        "tradeloop.signals",
        "tradeloop.risk.decisions",
        "tradeloop.orders",
        "tradeloop.fills",
        "tradeloop.trades",
    ):
        assert paper.of(topic) == bt.of(topic), topic
        assert paper.of(topic), topic
    live_equity = bt.of("tradeloop.equity")
    assert len(live_equity) == len(btc_1m) - WARMUP
    assert paper.of("tradeloop.bars") == bt.of("tradeloop.bars")
    assert [m.equity for m in paper.of("tradeloop.equity")] == pytest.approx(  # type: ignore[attr-defined]
        [m.equity for m in live_equity]  # type: ignore[attr-defined]
    )


def test_every_event_survives_the_wire_codec(btc_1m) -> None:
    bus = InProcessBus()
    capture = Capture(bus)
    _backtest(btc_1m.slice(0, 800), RunConfig(), bus).run()
    codec = event_codec()
    seen = set()
    for _, message in capture.messages:
        assert codec.decode(codec.encode(message, origin="test")).message == message
        seen.add(type(message).__name__)
    assert seen >= {
        "BarEvent",
        "SignalEvent",
        "RiskDecisionEvent",
        "OrderEvent",
        "FillEvent",
        "TradeEvent",
        "EquityEvent",
    }


def test_enriched_signals_carry_the_models_findings_identically_in_backtest_and_paper(
    sample_1h: Path,
) -> None:
    # Arrange: the project's own training on sma_cross's entries of the bundled sample
    from tradeloop.engine.enrichment import ModelEnrichment
    from tradeloop.engine.ml_strategy import primary_events
    from tradeloop.engine.runner import run_on_bars
    from tradeloop.ml.training import TrainConfig, train_meta_model

    bars = load_ohlcv(sample_1h).bars.slice(0, 3_000)
    sym = bars.symbol
    plain = run_on_bars(SmaCross(short=True), {sym: bars}, RunConfig())
    events, sides = primary_events(plain, bars)
    model = train_meta_model(
        bars, events, sides, TrainConfig(estimator_params={"n_estimators": 30}, n_splits=3)
    ).model
    cfg = RunConfig(trade_start=int(bars.ts[WARMUP]), risk="default")
    bt_bus, paper_bus = InProcessBus(), InProcessBus()
    bt, paper = Capture(bt_bus), Capture(paper_bus)
    market = MarketData({sym: bars}, {sym: test_instrument(sym)}, "1h")
    BacktestEngine(
        SmaCross(short=True), market, cfg, bus=bt_bus, run_id="ml",
        enrichment=ModelEnrichment(model, name="meta", version="v1", min_confidence=0.5),
    ).run()  # fmt: skip
    kernel = LiveKernel(
        SmaCross(short=True), {sym: test_instrument(sym)}, "1h", cfg, run_id="ml",
        bus=paper_bus,
        enrichment=ModelEnrichment(model, name="meta", version="v1", min_confidence=0.5),
    )  # fmt: skip
    kernel.warm_up({sym: [bar_row(bars, i) for i in range(WARMUP)]})
    # Act
    stream_bars(kernel, {sym: bars}, WARMUP, len(bars))
    # Assert: every entry scored (some dropped), with the model's own numbers, in both modes
    enriched = bt.of("tradeloop.signals.enriched")
    entries = [m for m in enriched if m.action != "close"]  # type: ignore[attr-defined]
    assert len(entries) > 20
    assert any(not m.kept for m in entries)  # type: ignore[attr-defined]
    assert all(m.meta_confidence is not None for m in entries)  # type: ignore[attr-defined]
    assert all(m.regime_weight == 1.0 for m in entries)  # type: ignore[attr-defined]
    kept = [m for m in entries if m.kept]  # type: ignore[attr-defined]
    assert all(m.confidence == pytest.approx(m.meta_confidence) for m in kept)  # type: ignore[attr-defined]
    assert paper.of("tradeloop.signals.enriched") == enriched
    assert paper.of("tradeloop.orders") == bt.of("tradeloop.orders")


def test_a_signal_event_carries_the_stop_its_distance_is_placed_at(btc_1m) -> None:
    # Arrange: SmaCross gives its 0.2% stop as a distance from the signal bar's close
    bus = InProcessBus()
    capture = Capture(bus)
    engine = _backtest(btc_1m, RunConfig(fee=0.001), bus)
    close_at = dict(zip(btc_1m.ts.tolist(), btc_1m.close.tolist(), strict=True))
    # Act
    result = engine.run()
    # Assert: every entry's event names the price the stop is placed at, the trade's stop
    entries = [e for e in capture.of("tradeloop.signals") if e.action == "open_long"]  # type: ignore[attr-defined]
    assert len(entries) > 10
    for event in entries:
        assert event.stop_loss == close_at[event.ts] * (1 - 0.002)
        assert event.take_profit is None
    stops = {e.signal_id: e.stop_loss for e in entries}
    assert all(t.stop_loss == stops[t.id] for t in result.trades)
