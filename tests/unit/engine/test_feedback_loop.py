"""The loop closed in one process: closed trades -> one feedback row each (keyed by the opening
signal's id) -> weights adapted while the run goes on -> the zone source uses them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tradeloop.bus.base import InProcessBus
from tradeloop.bus.events import TradeEvent
from tradeloop.core.bar import BarArrays
from tradeloop.data.loader import load_ohlcv
from tradeloop.engine.config import RunConfig
from tradeloop.engine.feedback import FeedbackLoop, component_of
from tradeloop.engine.inputs import ZoneSource
from tradeloop.engine.kernel import BacktestEngine
from tradeloop.engine.market import MarketData
from tradeloop.signals.adaptive import AdaptiveConfig, AdaptSchedule
from tradeloop.signals.heatmap import HeatmapConfig
from tradeloop.store.analytics import AnalyticsStore
from tradeloop.strategy.examples.zone_magnet import ZoneMagnet
from tradeloop.testing.kernels import test_instrument

PERP = "crypto_futures/binance_usdm_2025/BTC_USDT_USDT-5m-futures.feather"


@pytest.fixture(scope="module")
def perp_5m(shared_data: Path) -> BarArrays:
    return load_ohlcv(shared_data / PERP).bars


def _run(bars: BarArrays, loop_store: AnalyticsStore, every: int):
    bus = InProcessBus()
    zones = ZoneSource()
    versions: list[tuple[int, int]] = []  # (closed trades so far, weight version) per version
    market = MarketData({bars.symbol: bars}, {bars.symbol: test_instrument(bars.symbol)}, "5m")
    engine = BacktestEngine(
        ZoneMagnet(),
        market,
        RunConfig(fee=0.0005),
        bus=bus,
        run_id="loop-1",
        inputs=[zones],
    )
    loop = FeedbackLoop(
        loop_store,
        bus,
        "loop-1",
        {c: 1.0 for c in HeatmapConfig().components},
        schedule=AdaptSchedule(every_outcomes=every, every_s=1e9),
        zones=zones,
        config=AdaptiveConfig(min_samples=10_000, min_component_samples=3),
    )
    loop.attach()
    bus.subscribe(
        "liquidation:weights",
        lambda m: versions.append((loop.received, m.version)),  # type: ignore[attr-defined]
    )
    return engine, engine.run(), loop, zones, versions


def test_every_closed_trade_gives_one_feedback_row_and_weights_adapt_during_the_run(
    perp_5m, tmp_path: Path
) -> None:
    # Arrange
    store = AnalyticsStore(tmp_path / "analytics.duckdb")
    # Act
    _, result, loop, zones, versions = _run(perp_5m, store, every=5)
    # Assert: one row per closed trade, keyed by the opening signal's id
    closed = [t for t in result.trades if t.exit_ts is not None]
    assert len(closed) > 30
    rows = store.feedback()
    assert len(rows) == len(closed) == loop.stored == loop.received
    assert sorted(r["signal_id"] for r in rows) == sorted(t.id for t in closed)
    assert {r["source"] for r in rows} == {"loop-1"}
    assert {r["component"] for r in rows} <= set(HeatmapConfig().components)
    # weights moved while trades were still coming (not only at the end), and the running
    # zone source holds the latest version
    assert loop.weight_versions >= 2
    assert versions[0][0] < len(closed)
    assert zones.weights == loop.adaptive.current()
    assert zones.weights != {c: 1.0 for c in HeatmapConfig().components}


def test_reconciling_after_a_restart_adds_only_what_is_missing(perp_5m, tmp_path: Path) -> None:
    # Arrange: a run whose last 7 feedback rows were lost (a crash after the step's commit)
    store = AnalyticsStore(tmp_path / "analytics.duckdb")
    _, result, _, _, _ = _run(perp_5m.slice(0, 5_000), store, every=1_000)
    closed = [t for t in result.trades if t.exit_ts is not None]
    keep = {t.id for t in closed[:-7]}
    with store.session() as con:
        con.execute(
            "DELETE FROM signal_feedback WHERE signal_id NOT IN (SELECT unnest(?))", [list(keep)]
        )
    assert store.feedback_count() == len(closed) - 7
    # Act: the restarted process re-derives feedback from the stored trades
    again = FeedbackLoop(store, InProcessBus(), "loop-1", {"lev_5x": 1.0})
    added = again.reconcile(result.trades, "zone_magnet")
    # Assert
    assert added == 7
    assert store.feedback_count() == len(closed)
    assert again.reconcile(result.trades, "zone_magnet") == 0


def test_component_of_a_tag() -> None:
    assert component_of("zone:lev_100x", "zone_magnet") == "lev_100x"
    assert component_of("zone:", "zone_magnet") == "zone_magnet"
    assert component_of("", "sma_cross") == "sma_cross"


def test_a_trade_event_delivered_twice_counts_once(tmp_path: Path) -> None:
    # Arrange: two closed trades; the first is delivered again (at least once delivery)
    store = AnalyticsStore(tmp_path / "analytics.duckdb")
    loop = FeedbackLoop(store, InProcessBus(), "loop-2", {"lev_10x": 1.0})

    def event(n: int) -> TradeEvent:
        return TradeEvent(
            run="loop-2", ts=2_000 + n, event_id=f"loop-2:tradeloop.trades:{2_000 + n}:0",
            signal_id=f"s{n}", strategy="zone_magnet", symbol="BTC/USDT", side="long",
            quantity=1.0, entry_ts=1_000, entry_price=100.0, exit_ts=2_000 + n,
            exit_price=101.0, pnl=1.0, pnl_pct=0.01, fees=0.0, exit_reason="signal",
            tag="zone:lev_10x",
        )  # fmt: skip

    # Act
    for n in (0, 1, 0):
        loop.on_trade(event(n))
    # Assert: the repeated id is skipped before it reaches the store
    assert loop.received == loop.stored == 2
    assert loop.duplicates == 0
    assert loop.seen.skipped == 1
    assert store.feedback_count() == 2
