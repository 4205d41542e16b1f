"""``view.closes(n)`` and its siblings: the last n completed bars as plain array slices, the
same values as ``view.history(n=n)``, causal at every step of a real run."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from tradeloop.core.bar import BarArrays
from tradeloop.core.errors import ConfigError
from tradeloop.core.instrument import Instrument
from tradeloop.core.portfolio import Portfolio
from tradeloop.core.signal import Signal
from tradeloop.engine.config import RunConfig
from tradeloop.engine.kernel import BacktestEngine
from tradeloop.engine.market import MarketData
from tradeloop.strategy.base import NO_SIGNALS, Strategy
from tradeloop.strategy.view import MarketView

MIN = 60_000_000_000


def _bars(symbol: str, minutes: list[int], closes: list[float]) -> BarArrays:
    ts = np.array(minutes, dtype=np.int64) * MIN
    c = np.array(closes)
    return BarArrays(symbol, "1m", ts, c - 0.5, c + 1, c - 1, c, c * 10)


def test_tails_of_every_column_at_every_step_equal_the_history() -> None:
    # Arrange: B has no bar at minute 2
    a = _bars("A", [0, 1, 2, 3, 4], [100.0, 101.0, 102.0, 103.0, 104.0])
    b = _bars("B", [0, 1, 3, 4], [50.0, 51.0, 53.0, 54.0])
    market = MarketData({"A": a, "B": b}, {"A": Instrument("A"), "B": Instrument("B")}, "1m")
    view = market.view()
    idx_a = market.index_at_step("A", "1m")
    seen = 0
    for step in range(len(market.step_ts)):
        view.step, view.i = step, int(idx_a[step])
        for symbol in (None, "A", "B"):
            for n in (1, 2, 3, 10):
                hist = view.history(symbol, n=n)
                # Act / Assert: the same values as the history object, as plain slices
                assert view.closes(n, symbol).tolist() == hist.close.tolist()
                assert view.opens(n, symbol).tolist() == hist.open.tolist()
                assert view.highs(n, symbol).tolist() == hist.high.tolist()
                assert view.lows(n, symbol).tolist() == hist.low.tolist()
                assert view.volumes(n, symbol).tolist() == hist.volume.tolist()
                seen += 1
    assert seen == 5 * 3 * 4
    view.step, view.i = 2, 2
    assert view.closes(2, "B").tolist() == [50.0, 51.0]  # B's latest completed bar is minute 1
    assert view.closes(10).tolist() == [100.0, 101.0, 102.0]  # fewer at the start


def test_a_per_bar_strategy_sees_only_completed_closes_in_a_backtest() -> None:
    # Arrange: a strategy that records its window at every bar
    closes = [float(v) for v in range(100, 160)]
    bars = _bars("A", list(range(len(closes))), closes)

    class Recorder(Strategy):
        name = "recorder"

        def on_init(self, view: MarketView) -> None:
            self.windows: list[list[float]] = []

        def on_bar(self, view: MarketView, portfolio: Portfolio) -> Sequence[Signal]:
            self.windows.append(view.closes(5).tolist())
            return NO_SIGNALS

    strategy = Recorder()
    market = MarketData({"A": bars}, {"A": Instrument("A")}, "1m")
    # Act
    BacktestEngine(strategy, market, RunConfig()).run()
    # Assert: one window per bar, ending at that bar's close
    assert len(strategy.windows) == len(closes)
    for i, window in enumerate(strategy.windows):
        assert window == closes[max(0, i - 4) : i + 1]


def test_sma_is_the_mean_of_the_last_n_closes_at_every_step() -> None:
    # Arrange: B has no bar at minute 2; A's closes on a 0.01 grid
    import statistics

    from tradeloop.indicators import sma

    rng = np.random.default_rng(5)
    closes_a = np.round(100 + np.cumsum(rng.normal(0, 1, 60)), 2)
    a = _bars("A", list(range(60)), closes_a.tolist())
    b = _bars("B", [0, 1, *range(3, 60)], [float(50 + k) for k in range(59)])
    market = MarketData({"A": a, "B": b}, {"A": Instrument("A"), "B": Instrument("B")}, "1m")
    view = market.view()
    idx_a = market.index_at_step("A", "1m")
    vectorized = {n: sma(closes_a, n) for n in (1, 3, 10, 30)}
    checked = 0
    for step in range(len(market.step_ts)):
        view.step, view.i = step, int(idx_a[step])
        for symbol in (None, "A", "B"):
            for n in (1, 3, 10, 30):
                window = view.closes(n, symbol)
                # Act
                value = view.sma(n, symbol)
                # Assert: fmean of the window once n bars completed, NaN before
                if len(window) < n:
                    assert np.isnan(value)
                    continue
                assert value == statistics.fmean(window.tolist())
                if symbol != "B":
                    assert value == pytest.approx(vectorized[n][view.i], rel=1e-13)
                checked += 1
    assert checked > 300


def test_sma_of_a_window_with_a_nan_is_nan_and_n_must_be_positive() -> None:
    # Arrange
    closes = [100.0, 101.0, float("nan"), 103.0, 104.0, 105.0]
    market = MarketData({"A": _bars("A", list(range(6)), closes)}, {"A": Instrument("A")}, "1m")
    view = market.view()
    # Act / Assert
    view.step = view.i = 3
    assert np.isnan(view.sma(2))  # 103 and the NaN
    view.step = view.i = 5
    assert view.sma(3) == 104.0  # 103, 104, 105
    with pytest.raises(ConfigError, match="n >= 1"):
        view.sma(0)


def test_a_bar_by_bar_sma_strategy_trades_as_the_precomputed_crossover() -> None:
    # Arrange: SMA 3/8 crossover from view.sma at every bar vs SmaCross (exact, vectorized)
    from tradeloop.strategy.examples.sma_cross import SmaCross

    rng = np.random.default_rng(11)
    closes = np.round(100 + np.cumsum(rng.normal(0, 0.5, 3000)), 2).tolist()
    bars = _bars("A", list(range(len(closes))), closes)

    class BarByBar(Strategy):
        name = "bar_by_bar"

        def on_init(self, view: MarketView) -> None:
            self.side = 0

        def on_bar(self, view: MarketView, portfolio: Portfolio) -> Sequence[Signal]:
            diff = view.sma(3) - view.sma(8)
            previous = self.side
            # a difference below half the smallest non-zero one on the tick grid is a tie
            side = 1 if diff > 0.0002 else -1 if diff < -0.0002 else previous
            self.side = side
            if previous < 0 < side and "A" not in portfolio.positions:
                return [Signal.open_long("A", 1.0)]
            if side < 0 < previous and "A" in portfolio.positions:
                return [Signal.close("A")]
            return NO_SIGNALS

    def run(strategy: Strategy) -> list[tuple[int, int | None]]:
        market = MarketData({"A": bars}, {"A": Instrument("A", tick_size=0.01)}, "1m")
        result = BacktestEngine(strategy, market, RunConfig(fee=0.001)).run()
        return [(t.entry_ts, t.exit_ts) for t in result.trades]

    # Act
    ours, reference = run(BarByBar()), run(SmaCross(fast=3, slow=8))
    # Assert
    assert len(reference) > 50
    assert ours == reference
