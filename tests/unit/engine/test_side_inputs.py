"""Side inputs: the liquidation-zone source feeds a strategy identically in backtest and paper,
causally, and a missing input is a clear error."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from tradeloop.core.bar import BarArrays
from tradeloop.core.errors import ConfigError
from tradeloop.core.portfolio import Portfolio
from tradeloop.core.signal import Signal
from tradeloop.data.loader import load_ohlcv
from tradeloop.engine.config import RunConfig
from tradeloop.engine.inputs import ZoneSource
from tradeloop.engine.kernel import BacktestEngine
from tradeloop.engine.live import LiveKernel
from tradeloop.engine.market import MarketData
from tradeloop.engine.parity import trade_key
from tradeloop.strategy.base import NO_SIGNALS, Strategy
from tradeloop.strategy.examples.zone_magnet import ZoneMagnet
from tradeloop.strategy.view import MarketView
from tradeloop.testing.kernels import bar_row, stream_bars, test_instrument

PERP = "crypto_futures/binance_usdm_2025/BTC_USDT_USDT-5m-futures.feather"
WARMUP = 500


@pytest.fixture(scope="module")
def perp_5m(shared_data: Path) -> BarArrays:
    return load_ohlcv(shared_data / PERP).bars.slice(0, 3_500)


def _engine(strategy: Strategy, bars: BarArrays, cfg: RunConfig) -> BacktestEngine:
    market = MarketData({bars.symbol: bars}, {bars.symbol: test_instrument(bars.symbol)}, "5m")
    return BacktestEngine(strategy, market, cfg)


def test_the_zone_strategy_trades_identically_in_backtest_and_paper(perp_5m) -> None:
    # Arrange
    cfg = RunConfig(fee=0.0005, trade_start=int(perp_5m.ts[WARMUP]))
    engine = _engine(ZoneMagnet(), perp_5m, cfg)
    result = engine.run()
    sym = perp_5m.symbol
    kernel = LiveKernel(ZoneMagnet(), {sym: test_instrument(sym)}, "5m", cfg)
    kernel.warm_up({sym: [bar_row(perp_5m, i) for i in range(WARMUP)]})
    # Act
    stream_bars(kernel, {sym: perp_5m}, WARMUP, len(perp_5m))
    # Assert: it trades on the zones, identically; the source saw every bar once
    assert len(engine.orders) > 10
    assert [s.order for s in kernel._orders.values()] == engine.orders
    closed = [t for t in result.trades if t.exit_ts is not None]
    assert [trade_key(t) for t in kernel.portfolio.trades] == [trade_key(t) for t in closed]
    assert any(t.exit_reason is not None and t.exit_reason.value == "take_profit" for t in closed)
    (source,) = kernel.step.inputs
    assert isinstance(source, ZoneSource)
    assert source.bars_seen == len(perp_5m)


def test_zones_never_use_future_bars(perp_5m) -> None:
    # Arrange: the same run on the data cut at bar 2,000 and on all of it
    cfg = RunConfig(fee=0.0005)
    cut = 2_000
    short = _engine(ZoneMagnet(), perp_5m.slice(0, cut), cfg).run()
    full = _engine(ZoneMagnet(), perp_5m, cfg).run()
    # Act
    before = [(ts, s) for ts, s in full.signals if ts < int(perp_5m.ts[cut - 1])]
    # Assert
    assert len(before) > 5
    assert [(ts, s) for ts, s in short.signals if ts < int(perp_5m.ts[cut - 1])] == before


class ReadsNothing(Strategy):
    name = "reads_nothing"
    inputs = ("order_book_imbalance",)

    def on_bar(self, view: MarketView, portfolio: Portfolio) -> Sequence[Signal]:
        return NO_SIGNALS


class ReadsUndeclared(Strategy):
    name = "reads_undeclared"

    def on_bar(self, view: MarketView, portfolio: Portfolio) -> Sequence[Signal]:
        view.input("liquidation_zone")
        return NO_SIGNALS


def test_an_input_nobody_provides_is_refused_before_the_run(perp_5m) -> None:
    with pytest.raises(ConfigError, match=r"'order_book_imbalance'.*Known: liquidation_zones"):
        _engine(ReadsNothing(), perp_5m, RunConfig())


def test_reading_an_undeclared_input_names_it(perp_5m) -> None:
    with pytest.raises(ConfigError, match="no side input 'liquidation_zone'"):
        _engine(ReadsUndeclared(), perp_5m.slice(0, 50), RunConfig()).run()
