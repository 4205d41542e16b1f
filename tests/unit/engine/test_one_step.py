"""One step for every mode: the backtest's specialised loops equal the general step, and the
strategy contract (``on_init`` once, instance state kept between bars) holds in paper exactly
as in a backtest."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from tradeloop.core.bar import BarArrays
from tradeloop.core.portfolio import Portfolio
from tradeloop.core.signal import Signal, SignalAction
from tradeloop.data.loader import load_ohlcv
from tradeloop.engine.config import RunConfig
from tradeloop.engine.kernel import BacktestEngine
from tradeloop.engine.live import LiveKernel
from tradeloop.engine.market import MarketData
from tradeloop.engine.parity import trade_key
from tradeloop.engine.step import signal_id
from tradeloop.indicators import sma
from tradeloop.indicators.crossover import sma_crossover_exact
from tradeloop.risk.config import RiskConfig
from tradeloop.store.state import SqliteStateStore
from tradeloop.strategy.base import NO_SIGNALS, Strategy
from tradeloop.strategy.registry import discover_strategies
from tradeloop.strategy.view import MarketView
from tradeloop.testing.kernels import bar_row, stream_bars, test_instrument

WARMUP = 300


class EveryNth(Strategy):
    """The backtesting.py idiom: a counter in ``on_bar``, nothing precomputed.

    Enters every 20th bar it sees and closes 10 bars later.
    """

    name = "every_nth"
    #: (instance id, bars seen) of every on_init call; the default on_new_bars re-runs on_init
    #: on a copy (to refresh precomputed values), never on the instance itself
    inits: ClassVar[list[tuple[int, int]]] = []

    def on_init(self, view: MarketView) -> None:
        self.count = 0
        EveryNth.inits.append((id(self), len(view.arrays())))

    def on_bar(self, view: MarketView, portfolio: Portfolio) -> Sequence[Signal]:
        self.count += 1
        symbol = view.symbols[0]
        if portfolio.is_flat(symbol):
            if self.count % 20 == 0:
                return [Signal.open_long(symbol, 0.5, tag="nth")]
        elif self.count % 20 == 10:
            return [Signal.close(symbol, tag="nth")]
        return NO_SIGNALS

    def get_state(self) -> dict[str, Any]:
        return {"count": self.count}

    def set_state(self, state: dict[str, Any]) -> None:  # type: ignore[override]
        self.count = int(state["count"])


class CappedSmaTrend(Strategy):
    """Precomputes an SMA in ``on_init`` and keeps state in ``on_bar``: a list of its entries
    (grown in place) and a cool-down counter (rebound). Stops entering after 6 entries."""

    name = "capped_sma_trend"

    def on_init(self, view: MarketView) -> None:
        self.average = sma(view.arrays().close, 15)
        self.entries: list[int] = []
        self.cooldown = 0

    def on_bar(self, view: MarketView, portfolio: Portfolio) -> Sequence[Signal]:
        symbol = view.symbols[0]
        close, average = view.close(), self.average[view.i]
        if self.cooldown:
            self.cooldown -= 1
        if portfolio.is_flat(symbol):
            if close > average and not self.cooldown and len(self.entries) < 6:
                self.entries.append(view.ts)
                return [Signal.open_long(symbol, 1.0)]
        elif close < average:
            self.cooldown = 25
            return [Signal.close(symbol)]
        return NO_SIGNALS


@pytest.fixture(scope="module")
def btc_1m(shared_data: Path) -> BarArrays:
    bars = load_ohlcv(shared_data / "crypto_1m/binance_spot_2025/BTC_USDT-1m.feather").bars
    return bars.slice(0, 3_000)


def _engine(
    strategy: Strategy, bars: BarArrays, cfg: RunConfig, loop: str = "auto"
) -> BacktestEngine:
    base = cfg.timeframe or bars.timeframe
    declared = tuple(t for t in strategy.timeframes[1:] if t != base)  # the first is the base
    market = MarketData(
        {bars.symbol: bars},
        {bars.symbol: test_instrument(bars.symbol)},
        cfg.timeframe or bars.timeframe,
        declared,
    )
    return BacktestEngine(strategy, market, cfg, loop=loop)


def _paper(strategy: Strategy, bars: BarArrays, cfg: RunConfig, **kw: Any) -> LiveKernel:
    sym = bars.symbol
    kernel = LiveKernel(strategy, {sym: test_instrument(sym)}, bars.timeframe, cfg, **kw)
    kernel.warm_up({sym: [bar_row(bars, i) for i in range(WARMUP)]})
    return kernel


# -- the specialised loops are the general step ------------------------------------------------

CASES = [
    ("sma_cross", {}, "permissive"),
    ("sma_cross", {"stop_loss": 0.02, "take_profit": 0.04, "short": True}, "permissive"),
    ("sma_cross", {"stop_loss": 0.02}, "default"),
    ("sma_cross", {"trailing_stop": 0.02, "short": True}, "permissive"),
    ("sma_cross", {"stop_loss": 0.03, "take_profit": 0.05, "trailing_stop": 0.015}, "permissive"),
    # long holds: stretches past the exit scan's Python part (vectorized windows)
    (
        "sma_cross",
        {"fast": 40, "slow": 400, "trailing_stop": 0.12, "take_profit": 0.4, "short": True},
        "permissive",
    ),
    ("rsi_reversion", {}, "permissive"),
    ("rsi_reversion", {"trailing_stop": 0.03}, "permissive"),
    ("rsi_reversion", {"stop_loss": 0.02}, "default"),
    ("donchian_breakout", {"trailing_stop": 0.03}, "permissive"),
    ("donchian_breakout", {}, "default"),
    ("vwap_momentum", {}, "permissive"),
    ("vwap_momentum", {}, "default"),
    ("mtf_trend", {"short": True}, "permissive"),
]


@pytest.mark.parametrize(
    ("name", "params", "risk"), CASES, ids=[f"{n}-{p}-{r}" for n, p, r in CASES]
)
def test_every_specialised_loop_equals_the_general_step(
    name: str, params: dict[str, Any], risk: str, sample_1h: Path
) -> None:
    # Arrange: the bundled 1h sample; "default" risk runs the per-bar risk loop, "permissive"
    # the plain or the sparse (signal_bars) loop
    cls = discover_strategies(None)[name].cls
    bars = load_ohlcv(sample_1h).bars.slice(0, 12_000)
    cfg = RunConfig(fee=0.001, slippage_bps=2.0, timeframe="1h", risk=risk)
    fast = _engine(cls(**params), bars, cfg)
    general = _engine(cls(**params), bars, cfg, loop="general")
    # Act
    a, b = fast.run(), general.run()
    # Assert
    assert len(a.trades) > 5
    assert fast.orders == general.orders
    assert a.trades == b.trades
    assert a.signals == b.signals
    assert a.rejections == b.rejections
    assert np.array_equal(a.equity, b.equity)
    assert np.array_equal(a.cash, b.cash)
    assert a.metrics == b.metrics


def test_an_unknown_loop_name_is_refused(sample_1h: Path) -> None:
    bars = load_ohlcv(sample_1h).bars.slice(0, 100)
    with pytest.raises(Exception, match="loop must be one of"):
        _engine(EveryNth(), bars, RunConfig(), loop="fastest")


# -- the strategy contract in paper ------------------------------------------------------------


def test_a_stateful_strategy_trades_in_paper_exactly_as_in_the_backtest(btc_1m) -> None:
    # Arrange: a counter kept in on_bar, no precompute (gave 0 orders in paper before)
    cfg = RunConfig(balance=10_000, slippage_bps=1.0, trade_start=int(btc_1m.ts[WARMUP]))
    engine = _engine(EveryNth(), btc_1m, cfg)
    result = engine.run()
    EveryNth.inits.clear()
    kernel = _paper(EveryNth(), btc_1m, cfg)
    # Act
    stream_bars(kernel, {btc_1m.symbol: btc_1m}, WARMUP, len(btc_1m))
    # Assert: it trades, identically, and on_init ran once (on the first live step)
    n_live = len(btc_1m) - WARMUP
    assert len(engine.orders) == 2 * (n_live // 20) - (1 if n_live % 20 < 10 else 0)
    assert [s.order for s in kernel._orders.values()] == engine.orders
    closed = [t for t in result.trades if t.exit_ts is not None]
    assert [trade_key(t) for t in kernel.portfolio.trades] == [trade_key(t) for t in closed]
    own = [n for who, n in EveryNth.inits if who == id(kernel.strategy)]
    assert own == [WARMUP + 1]
    assert kernel.strategy.count == n_live  # type: ignore[attr-defined]


def test_precomputed_arrays_are_refreshed_and_on_bar_state_survives(btc_1m) -> None:
    # Arrange: the default on_new_bars must refresh `average` (else the index runs past it)
    # and keep `entries` (grown in place) and `cooldown` (rebound) as on_bar left them
    cfg = RunConfig(balance=10_000, trade_start=int(btc_1m.ts[WARMUP]))
    engine = _engine(CappedSmaTrend(), btc_1m, cfg)
    result = engine.run()
    kernel = _paper(CappedSmaTrend(), btc_1m, cfg)
    # Act
    stream_bars(kernel, {btc_1m.symbol: btc_1m}, WARMUP, len(btc_1m))
    # Assert
    strategy = kernel.strategy
    assert len(strategy.entries) == 6  # type: ignore[attr-defined]
    assert len(strategy.average) == len(btc_1m)  # type: ignore[attr-defined]
    assert strategy.entries == engine.strategy.entries  # type: ignore[attr-defined]
    assert [s.order for s in kernel._orders.values()] == engine.orders
    closed = [t for t in result.trades if t.exit_ts is not None]
    assert [trade_key(t) for t in kernel.portfolio.trades] == [trade_key(t) for t in closed]


def test_a_restarted_stateful_strategy_continues_from_its_stored_state(
    btc_1m, tmp_path: Path
) -> None:
    # Arrange
    cfg = RunConfig(balance=10_000, trade_start=int(btc_1m.ts[WARMUP]))
    engine = _engine(EveryNth(), btc_1m, cfg)
    engine.run()
    cuts = [WARMUP, 917, 1_403, 2_222, len(btc_1m)]
    # Act: four processes, each restored from the store
    for k, (lo, hi) in enumerate(itertools.pairwise(cuts)):
        store = SqliteStateStore(tmp_path / "state.db")
        kernel = LiveKernel(
            EveryNth(),
            {btc_1m.symbol: test_instrument(btc_1m.symbol)},
            "1m",
            cfg,
            run_id="r",
            store=store,
        )
        if not kernel.restore():
            assert k == 0
            kernel.warm_up({btc_1m.symbol: [bar_row(btc_1m, i) for i in range(WARMUP)]})
        stream_bars(kernel, {btc_1m.symbol: btc_1m}, lo, hi)
        store.close()
    # Assert
    assert [s.order for s in kernel._orders.values()] == engine.orders
    assert kernel.signals == len(engine.signals)


def test_on_new_bars_override_is_called_instead_of_a_re_init(btc_1m) -> None:
    # Arrange
    calls: list[tuple[int, int]] = []

    class Incremental(EveryNth):
        def on_new_bars(self, view: MarketView) -> None:
            calls.append((len(view.arrays()), view.step))

    cfg = RunConfig(trade_start=int(btc_1m.ts[WARMUP]))
    EveryNth.inits.clear()
    kernel = _paper(Incremental(), btc_1m, cfg, max_bars=500)
    # Act
    stream_bars(kernel, {btc_1m.symbol: btc_1m}, WARMUP, WARMUP + 400)
    # Assert: one on_init, then one call per later step; the view is the held window
    assert EveryNth.inits == [(id(kernel.strategy), WARMUP + 1)]
    assert len(calls) == 399
    assert calls[0] == (WARMUP + 2, WARMUP + 1)
    assert calls[-1] == (500, 499)


# -- signal ids --------------------------------------------------------------------------------


def test_every_opening_signal_gets_a_unique_id_that_its_trade_carries(sample_1h: Path) -> None:
    # Arrange
    bars = load_ohlcv(sample_1h).bars.slice(0, 8_000)
    cls = discover_strategies(None)["sma_cross"].cls
    engine = _engine(cls(short=True), bars, RunConfig(fee=0.001, risk=RiskConfig.default()))
    # Act
    result = engine.run()
    # Assert
    opening = [(ts, s) for ts, s in result.signals if s.action is not SignalAction.CLOSE]
    ids = [s.position_id for _, s in opening]
    assert len(ids) > 50
    assert len(set(ids)) == len(ids)
    assert ids == [signal_id("sma_cross", s.symbol, ts) for ts, s in opening]
    assert {t.id for t in result.trades} <= set(ids)
    assert len({t.id for t in result.trades}) == len(result.trades)
    assert [o.position_id for o in engine.orders if o.position_id] == [t.id for t in result.trades]


def test_sma_cross_streams_new_bars_in_paper_and_matches_its_re_init_twin(btc_1m) -> None:
    # Arrange: SmaCross as shipped (incremental on_new_bars) against the same strategy with the
    # default hook (on_init re-run over the window), with a window that drops bars every step
    sma_cross = discover_strategies(None)["sma_cross"].cls

    class ReInit(sma_cross):  # type: ignore[valid-type, misc]
        on_new_bars = Strategy.on_new_bars

    cfg = RunConfig(balance=10_000, trade_start=int(btc_1m.ts[WARMUP]))
    incremental = _paper(sma_cross(fast=5, slow=20, short=True), btc_1m, cfg, max_bars=WARMUP)
    re_init = _paper(ReInit(fast=5, slow=20, short=True), btc_1m, cfg, max_bars=WARMUP)
    # Act
    stream_bars(incremental, {btc_1m.symbol: btc_1m}, WARMUP, len(btc_1m))
    stream_bars(re_init, {btc_1m.symbol: btc_1m}, WARMUP, len(btc_1m))
    # Assert: the same orders; the stream saw each live bar once and holds one cross per bar
    orders = [s.order for s in incremental._orders.values()]
    assert len(orders) > 50
    assert orders == [s.order for s in re_init._orders.values()]
    streamed = incremental.strategy._streams  # type: ignore[attr-defined]
    assert streamed is not None
    _, crosses, last_ts = streamed[btc_1m.symbol]
    assert len(crosses) == WARMUP
    assert last_ts == int(btc_1m.ts[-1])
    # the backtest's values over all bars (a re-init over the window restarts the averages at
    # the window's start; the stream carries on as the backtest does)
    full = sma_crossover_exact(btc_1m.close, 5, 20, 0.01)
    assert list(crosses) == full[-WARMUP:].tolist()
