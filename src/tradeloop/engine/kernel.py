"""The event kernel: one synchronous loop that drives data, strategy and broker in time order.

Backtest, paper and live differ only in the clock, the data feed and the broker. This module
holds the historical driver; every step is one base-timeframe bar time across all symbols.
At each step, for every symbol with a bar: waiting orders fill at its open, stops and targets
are checked against its range, and the close is marked. Then the strategy sees the completed
bars and its signals go, through the risk engine's pre-trade check, to the broker (filled at
the next open by default).

Risk work stays out of the per-bar loop unless the profile needs it: with the permissive
profile (the backtest default) only the signals pass through ``RiskEngine.check``; the kill
switches and the black-swan protocol run per bar in a separate loop variant when enabled.
"""

from __future__ import annotations

import gc
import logging
import math
from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, replace
from typing import Any, NamedTuple

import numpy as np

from tradeloop.analysis.metrics import compute_metrics
from tradeloop.core.clock import HistoricalClock
from tradeloop.core.errors import ConfigError, StrategyError
from tradeloop.core.orders import Order
from tradeloop.core.portfolio import Portfolio
from tradeloop.core.rejection import Rejection
from tradeloop.core.signal import Signal
from tradeloop.engine.config import BacktestConfig
from tradeloop.engine.market import MarketData
from tradeloop.engine.result import BacktestResult
from tradeloop.execution.config import SimulatedBrokerConfig
from tradeloop.execution.simulated import SimulatedBroker
from tradeloop.risk.engine import RiskEngine
from tradeloop.risk.report import RiskReport
from tradeloop.strategy.base import Strategy, strategy_error

__all__ = ["BacktestEngine", "ProgressCallback"]

logger = logging.getLogger(__name__)

#: Called as ``progress(done_steps, total_steps)`` about every 1% of a run.
ProgressCallback = Callable[[int, int], None]


class _Lane(NamedTuple):
    """One symbol's view of the steps: numpy arrays, or Python lists in multi-symbol runs."""

    symbol: str
    idx: Any
    new: Any
    open: Any
    high: Any
    low: Any
    close: Any


class _BacktestMarket:
    """The risk engine's :class:`~tradeloop.risk.market.MarketContext` over a run's arrays.

    The kernel moves :attr:`step` and :attr:`ts` together; nothing is computed per bar.
    Step-aligned returns are built on the first request for history (never in a permissive
    run).
    """

    def __init__(self, market: MarketData) -> None:
        self.market = market
        self.step = 0
        self.ts = int(market.step_ts[0]) if market.step_ts.size else 0
        self.regime_label: str | None = None
        self._base = market.base_timeframe
        self._returns: dict[str, np.ndarray] | None = None

    def move(self, step: int) -> None:
        """Point at ``step``."""
        self.step = step
        self.ts = int(self.market.step_ts[step])

    @property
    def bar_ns(self) -> int:
        return self.market.base_ns

    @property
    def regime(self) -> str | None:
        return self.regime_label

    def price(self, symbol: str) -> float:
        arrays = self.market.series.get((symbol, self._base))
        if arrays is None:
            return math.nan
        i = int(self.market.index_at_step(symbol, self._base)[self.step])
        return float(arrays.close[i]) if i >= 0 else math.nan

    def _build(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for symbol in self.market.symbols:
            close = self.market.series[(symbol, self._base)].close
            idx = self.market.index_at_step(symbol, self._base)
            ret = np.full(idx.size, np.nan)
            if idx.size:
                new = np.zeros(idx.size, dtype=bool)
                new[1:] = idx[1:] != idx[:-1]
                new &= idx >= 1
                at = idx[new]
                ret[new] = close[at] / close[at - 1] - 1.0
            out[symbol] = ret
        return out

    def returns(self, symbols: Sequence[str], n: int) -> np.ndarray:
        if self._returns is None:
            self._returns = self._build()
        hi = self.step + 1
        lo = max(0, hi - n)
        cols = []
        for symbol in symbols:
            series = self._returns.get(symbol)
            cols.append(series[lo:hi] if series is not None else np.full(hi - lo, np.nan))
        return np.column_stack(cols) if cols else np.empty((hi - lo, 0))

    def ranges(self, symbol: str, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        arrays = self.market.series.get((symbol, self._base))
        if arrays is None:
            return None
        i = int(self.market.index_at_step(symbol, self._base)[self.step])
        lo = max(0, i - n + 1)
        return arrays.high[lo : i + 1], arrays.low[lo : i + 1], arrays.close[lo : i + 1]


class BacktestEngine:
    """Runs one strategy over :class:`MarketData` with a :class:`SimulatedBroker`.

    Every signal passes through ``risk`` (default: a :class:`RiskEngine` built from
    ``config.risk``) before the broker; pass your own engine to keep it after the run (for its
    report, events and audit).
    """

    def __init__(
        self,
        strategy: Strategy,
        market: MarketData,
        config: BacktestConfig,
        *,
        risk: RiskEngine | None = None,
    ) -> None:
        self.strategy = strategy
        self.market = market
        if risk is not None and risk.config != config.risk:
            config = replace(config, risk=risk.config)  # the run record shows what was used
        self.config = config
        self.clock = HistoricalClock()
        self.portfolio = Portfolio(config.balance)
        self.broker = SimulatedBroker(
            self.portfolio,
            market.instruments,
            market.base_timeframe,
            SimulatedBrokerConfig(config.fill_price, config.slippage_bps, config.allow_short),
            intrabar=market,
        )
        self.risk = risk if risk is not None else RiskEngine(config.risk)
        self.risk.bind(market.instruments, self.broker.next_order_id)
        self.risk_market = _BacktestMarket(market)
        self.view = market.view()
        self.signals: list[tuple[int, Signal]] = []
        #: every order sent to the broker (after the risk check), in submission order
        self.orders: list[Order] = []
        wanted = tuple(strategy.symbols)
        missing = [s for s in wanted if s not in market.symbols]
        if missing:
            raise ConfigError(
                f"strategy '{strategy.strategy_name()}' trades {missing} but the run has data "
                f"for {list(market.symbols)}"
            )

    def run(self, progress: ProgressCallback | None = None) -> BacktestResult:
        """Run to the end of the data and return the result.

        Raises
        ------
        StrategyError
            If strategy code raises; names the strategy and the bar time.
        """
        market, view, strategy = self.market, self.view, self.strategy
        n_steps = int(market.step_ts.size)
        self._close_lists: dict[str, list[float]] = {}
        try:
            strategy.on_init(view)
        except Exception as exc:
            raise strategy_error(strategy, exc, None) from exc
        logger.info(
            "backtest start",
            extra={
                "strategy": strategy.strategy_name(),
                "params": dict(strategy.params),
                "config": asdict(self.config),
                "steps": n_steps,
            },
        )
        lanes = self._lanes(n_steps)
        if len(lanes) > 1:
            # many symbols: every bar reads several fields, so index Python lists
            self._ts_list = market.step_ts.tolist()
            lanes = [_Lane(ln.symbol, *(np.asarray(a).tolist() for a in ln[1:])) for ln in lanes]
        risk_per_bar = self.risk.needs_bar_updates
        wake = self._wake_steps(lanes, n_steps) if len(lanes) == 1 and not risk_per_bar else None
        chunk = max(1, min(50_000, n_steps // 100))
        first = 0
        if self.config.trade_start is not None:
            # warm-up bars: nothing can be open or waiting before the first strategy call
            first = int(np.searchsorted(market.step_ts, self.config.trade_start, side="left"))
        # The lanes hold millions of floats; a cyclic-GC pass over them costs more than the
        # loop itself, and the loop makes no reference cycles of its own, so pause the
        # collector while it runs.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            for start in range(first, n_steps, chunk):
                stop = min(start + chunk, n_steps)
                if len(lanes) == 1:
                    if risk_per_bar:
                        self._steps_single_risk(lanes[0], start, stop)
                    elif wake is not None:
                        self._steps_single_sparse(lanes[0], start, stop, wake)
                    else:
                        self._steps_single(lanes[0], start, stop)
                else:
                    self._steps_multi(lanes, start, stop, risk_per_bar)
                if progress is not None:
                    progress(stop, n_steps)
        finally:
            if gc_was_enabled:
                gc.enable()
        if wake is not None and n_steps and self.portfolio.positions:
            # the sparse loop marks only the bars it visits: mark the last close
            symbol = lanes[0].symbol
            self.portfolio.marks[symbol] = float(lanes[0].close[n_steps - 1])
        return self._finish(n_steps)

    def _wake_steps(self, lanes: list[_Lane], n_steps: int) -> list[int] | None:
        """Steps where the strategy asked to be called (its ``signal_bars`` hint), or None."""
        strategy = self.strategy
        try:
            mask = strategy.signal_bars(self.view)
        except Exception as exc:
            raise strategy_error(strategy, exc, None) from exc
        if mask is None:
            return None
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (n_steps,):
            raise ConfigError(
                f"strategy '{strategy.strategy_name()}': signal_bars() returned shape "
                f"{mask.shape}, expected ({n_steps},) - one flag per base-timeframe bar"
            )
        steps: list[int] = np.flatnonzero(mask).tolist()
        return steps

    def _steps_single_sparse(self, lane: _Lane, start: int, stop: int, wake: list[int]) -> None:
        """Steps ``[start, stop)`` of a one-symbol run whose strategy gave ``signal_bars``.

        Bars are visited while an order waits or a stop is watched, and at the strategy's
        wake bars; the bars in between cannot fill, exit or signal, so they are skipped. An
        open position is marked at every visited bar, which is every bar where anything
        reads the portfolio.
        """
        broker, view, portfolio, strategy = self.broker, self.view, self.portfolio, self.strategy
        step_ts = self.market.step_ts
        symbol, c = lane.symbol, lane.close
        on_bar = strategy.on_bar
        pending, positions, watched = broker.pending, portfolio.positions, broker.watched
        marks = portfolio.marks
        n_wake = len(wake)
        ptr = bisect_left(wake, start)
        step = start
        try:
            while step < stop:
                if pending or watched:
                    self._broker_step(lane, step, float(c[step]))
                elif positions:
                    marks[symbol] = float(c[step])
                while ptr < n_wake and wake[ptr] < step:
                    ptr += 1
                if ptr < n_wake and wake[ptr] == step:
                    ptr += 1
                    view.step = view.i = step
                    signals = on_bar(view, portfolio)
                    if signals:
                        self._submit(signals, step, float(c[step]), None)
                if pending or watched:
                    step += 1
                else:
                    step = min(wake[ptr], stop) if ptr < n_wake else stop
        except StrategyError:
            raise
        except Exception as exc:
            raise strategy_error(strategy, exc, int(step_ts[step])) from exc

    def _lanes(self, n_steps: int) -> list[_Lane]:
        """Per symbol: bar index at each step, new-bar flags and OHLC arrays."""
        market = self.market
        base = market.base_timeframe
        lanes = []
        for symbol in market.symbols:
            arrays = market.series[(symbol, base)]
            idx = market.index_at_step(symbol, base)
            new_bar = np.zeros(n_steps, dtype=bool)
            if n_steps:
                new_bar[0] = idx[0] >= 0
                new_bar[1:] = idx[1:] != idx[:-1]
            new_bar &= idx >= 0
            lanes.append(
                _Lane(symbol, idx, new_bar, arrays.open, arrays.high, arrays.low, arrays.close)
            )
        return lanes

    def _steps_single(self, lane: _Lane, start: int, stop: int) -> None:
        """Steps ``[start, stop)`` of a one-symbol run, where step ``k`` is bar ``k``.

        Only the close is read on most bars, so only it becomes a Python list (fast to
        index); the broker is called only on bars where an order waits or a stop is watched.
        """
        broker, view, portfolio, strategy = self.broker, self.view, self.portfolio, self.strategy
        symbol = lane.symbol
        c = self._close_list(lane)
        on_bar = strategy.on_bar
        pending, positions, watched = broker.pending, portfolio.positions, broker.watched
        marks = portfolio.marks
        step = start
        try:
            for step in range(start, stop):
                if pending or watched:
                    self._broker_step(lane, step, c[step])
                elif positions:
                    marks[symbol] = c[step]
                view.step = view.i = step
                signals = on_bar(view, portfolio)
                if signals:
                    self._submit(signals, step, c[step], None)
        except StrategyError:
            raise
        except Exception as exc:
            raise strategy_error(strategy, exc, int(self.market.step_ts[step])) from exc

    def _broker_step(self, lane: _Lane, step: int, close: float) -> None:
        """One symbol's bar at ``step`` for the broker: fill orders waiting for its open, then
        check stops and targets against its range (or just mark the close)."""
        broker, portfolio = self.broker, self.portfolio
        symbol = lane.symbol
        ts = int(self.market.step_ts[step])
        broker.step = step
        if broker.pending:
            if portfolio.positions and step:
                portfolio.marks[symbol] = float(lane.close[step - 1])
            broker.on_open(symbol, ts, float(lane.open[step]))
        if portfolio.positions:
            if broker.watched:
                broker.on_bar_range(
                    symbol,
                    ts,
                    float(lane.open[step]),
                    float(lane.high[step]),
                    float(lane.low[step]),
                    close,
                )
            else:
                portfolio.marks[symbol] = close

    def _close_list(self, lane: _Lane) -> list[float]:
        cached = self._close_lists.get(lane.symbol)
        if cached is None:
            cached = self._close_lists[lane.symbol] = lane.close.tolist()
        return cached

    def _steps_single_risk(self, lane: _Lane, start: int, stop: int) -> None:
        """:meth:`_steps_single` plus the risk engine's per-bar kill switches and black-swan
        check, after the close is marked (flattening on a black swan)."""
        broker, view, portfolio, strategy = self.broker, self.view, self.portfolio, self.strategy
        step_ts = self.market.step_ts
        symbol = lane.symbol
        c = self._close_list(lane)
        on_bar = strategy.on_bar
        pending, positions, watched = broker.pending, portfolio.positions, broker.watched
        marks = portfolio.marks
        risk_on_bar, risk_market = self.risk.on_bar, self.risk_market
        closes_now = {symbol: math.nan}
        step = start
        try:
            for step in range(start, stop):
                ts = int(step_ts[step])
                if pending or watched:
                    self._broker_step(lane, step, c[step])
                elif positions:
                    marks[symbol] = c[step]
                closes_now[symbol] = c[step]
                risk_market.step, risk_market.ts = step, ts
                if risk_on_bar(ts, closes_now, portfolio):
                    self._flatten(step, ts, closes_now)
                view.step = view.i = step
                signals = on_bar(view, portfolio)
                if signals:
                    self._submit(signals, step, c[step], None)
        except StrategyError:
            raise
        except Exception as exc:
            raise strategy_error(strategy, exc, int(step_ts[step])) from exc

    def _flatten(self, step: int, ts: int, closes: Mapping[str, float]) -> None:
        """Black swan: cancel waiting orders and close every position by the fill rule."""
        self.broker.step = step
        count = self.broker.flatten(ts, closes)
        logger.warning("black swan: flattening %d position(s)", count)

    def _steps_multi(self, lanes: list[_Lane], start: int, stop: int, risk_per_bar: bool) -> None:
        """Steps ``[start, stop)`` of a multi-symbol run on the union of bar times."""
        broker, view, portfolio, strategy = self.broker, self.view, self.portfolio, self.strategy
        ts_list = self._ts_list
        on_bar = strategy.on_bar
        risk_on_bar, risk_market = self.risk.on_bar, self.risk_market
        pending, positions = broker.pending, portfolio.positions
        primary_idx = lanes[0].idx
        closes_now: dict[str, float] = {}
        step = start
        try:
            for step in range(start, stop):
                ts = ts_list[step]
                broker.step = step
                closes_now.clear()
                # every open of this step fills before any range or close of it is seen
                if pending:
                    for lane in lanes:
                        if lane.new[step] and lane.symbol in pending:
                            broker.on_open(lane.symbol, ts, lane.open[lane.idx[step]])
                for lane in lanes:
                    if lane.new[step]:
                        i = lane.idx[step]
                        if lane.symbol in positions:
                            broker.on_bar_range(
                                lane.symbol,
                                ts,
                                lane.open[i],
                                lane.high[i],
                                lane.low[i],
                                lane.close[i],
                            )
                        closes_now[lane.symbol] = lane.close[i]
                if risk_per_bar:
                    risk_market.step, risk_market.ts = step, ts
                    if risk_on_bar(ts, closes_now, portfolio):
                        self._flatten(step, ts, closes_now)
                view.step = step
                view.i = primary_idx[step]
                signals = on_bar(view, portfolio)
                if signals:
                    self._submit(signals, step, None, closes_now)
        except StrategyError:
            raise
        except Exception as exc:
            raise strategy_error(strategy, exc, ts_list[step]) from exc

    def _submit(
        self,
        signals: Sequence[Signal],
        step: int,
        close: float | None,
        closes: dict[str, float] | None,
    ) -> None:
        ts = int(self.market.step_ts[step])
        broker, portfolio, market = self.broker, self.portfolio, self.risk_market
        broker.step = step
        market.step, market.ts = step, ts
        self.clock.advance_to(ts)
        check = self.risk.check
        for signal in signals:
            self.signals.append((ts, signal))
            decision = check(signal, portfolio, market)
            if isinstance(decision, Rejection):
                continue
            if closes is not None:
                price = closes.get(signal.symbol, math.nan)
            else:
                price = math.nan if close is None else close
            self.orders.append(decision)
            broker.submit_order(decision, ts, price)

    def _finish(self, n_steps: int) -> BacktestResult:
        market, broker, portfolio = self.market, self.broker, self.portfolio
        dropped = broker.cancel_pending()
        if dropped:
            logger.info("%d order(s) from the last bar were not filled", dropped)
        if self.config.close_at_end and portfolio.positions and n_steps:
            last_step = n_steps - 1
            broker.step = last_step
            prices = {}
            for symbol in portfolio.positions:
                arrays = market.series[(symbol, market.base_timeframe)]
                prices[symbol] = float(
                    arrays.close[market.index_at_step(symbol, market.base_timeframe)[last_step]]
                )
            broker.close_all(int(market.step_ts[last_step]), prices)
        rejections = list(broker.rejections)
        if self.risk.rejections:
            rejections = sorted(rejections + self.risk.rejections, key=lambda r: r.ts)
        if n_steps:
            self.risk_market.move(n_steps - 1)
            self.risk.finish(portfolio, self.risk_market, rejections)
        equity, cash, exposure = self._equity_curve(n_steps)
        trades = list(portfolio.trades) + broker.open_trades()
        metrics = compute_metrics(
            equity,
            market.step_ts,
            trades,
            market.base_ns,
            initial_equity=self.config.balance,
            exposure_mask=exposure,
        )
        strategy = self.strategy
        return BacktestResult(
            strategy=strategy.strategy_name(),
            params=dict(strategy.params),
            symbols=market.symbols,
            timeframe=market.base_timeframe,
            ts=market.step_ts,
            equity=equity,
            cash=cash,
            exposure=exposure,
            trades=trades,
            metrics=metrics,
            signals=self.signals,
            rejections=rejections,
            intrabar=broker.intrabar_stats.as_dict(),
            config=asdict(self.config),
            bars_processed=n_steps,
        )

    def risk_report(self) -> RiskReport:
        """Return the risk report of the portfolio at the end of the run.

        Raises
        ------
        ValueError
            Before :meth:`run` has finished.
        """
        return self.risk.report()

    def _equity_curve(self, n_steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mark equity at every step in bulk from the broker's fill ledger."""
        ledger = self.broker.ledger
        steps = np.arange(n_steps)
        cash = np.full(n_steps, self.config.balance)
        if ledger.steps:
            at = np.searchsorted(np.asarray(ledger.steps), steps, side="right") - 1
            cash = np.where(at >= 0, np.asarray(ledger.cash)[np.maximum(at, 0)], cash)
        equity = cash.copy()
        exposure = np.zeros(n_steps, dtype=bool)
        for symbol, (q_steps, q_vals) in ledger.qty.items():
            at = np.searchsorted(np.asarray(q_steps), steps, side="right") - 1
            qty = np.where(at >= 0, np.asarray(q_vals)[np.maximum(at, 0)], 0.0)
            idx = self.market.index_at_step(symbol, self.market.base_timeframe)
            closes = self.market.series[(symbol, self.market.base_timeframe)].close
            marks = np.where(idx >= 0, closes[np.maximum(idx, 0)], 0.0)
            equity += qty * marks
            exposure |= qty != 0
        return equity, cash, exposure
