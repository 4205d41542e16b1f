"""The event kernel: one synchronous loop that drives data, strategy and broker in time order.

Backtest, paper and live differ only in the clock, the data feed and the broker. This module
holds the historical driver; every step is one base-timeframe bar time across all symbols.
At each step, for every symbol with a bar: waiting orders fill at its open, stops and targets
are checked against its range, and the close is marked. Then the strategy sees the completed
bars and its signals go to the broker (filled at the next open by default).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict

import numpy as np

from tradeloop.analysis.metrics import compute_metrics
from tradeloop.core.clock import HistoricalClock
from tradeloop.core.errors import ConfigError, StrategyError
from tradeloop.core.portfolio import Portfolio
from tradeloop.core.signal import Signal
from tradeloop.engine.config import BacktestConfig
from tradeloop.engine.market import MarketData
from tradeloop.engine.result import BacktestResult
from tradeloop.execution.config import SimulatedBrokerConfig
from tradeloop.execution.simulated import SimulatedBroker
from tradeloop.strategy.base import Strategy, strategy_error

__all__ = ["BacktestEngine", "ProgressCallback"]

logger = logging.getLogger(__name__)

#: Called as ``progress(done_steps, total_steps)`` about every 1% of a run.
ProgressCallback = Callable[[int, int], None]


class BacktestEngine:
    """Runs one strategy over :class:`MarketData` with a :class:`SimulatedBroker`."""

    def __init__(self, strategy: Strategy, market: MarketData, config: BacktestConfig) -> None:
        self.strategy = strategy
        self.market = market
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
        self.view = market.view()
        self.signals: list[tuple[int, Signal]] = []
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
        market, view, broker, strategy = self.market, self.view, self.broker, self.strategy
        portfolio = self.portfolio
        step_ts = market.step_ts
        n_steps = int(step_ts.size)
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
        every = max(1, n_steps // 100)
        base = market.base_timeframe
        primary = market.symbols[0]
        ts_list = step_ts.tolist()
        on_bar = strategy.on_bar
        submit = broker.submit
        on_open = broker.on_open
        on_range = broker.on_bar_range
        record = self.signals.append
        pending = broker.pending
        positions = portfolio.positions
        clock = self.clock

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
                (
                    symbol,
                    idx.tolist(),
                    new_bar.tolist(),
                    arrays.open.tolist(),
                    arrays.high.tolist(),
                    arrays.low.tolist(),
                    arrays.close.tolist(),
                )
            )
        primary_idx = lanes[0][1]
        single = len(lanes) == 1 and all(lanes[0][2])
        last_close = lanes[0][6]

        step = -1
        try:
            if single:
                (
                    _,
                    _,
                    _,
                    o,
                    h,
                    lo,
                    c,
                ) = lanes[0]
                for step in range(n_steps):
                    ts = ts_list[step]
                    broker.step = step
                    if pending:
                        on_open(primary, ts, o[step])
                    if positions:
                        on_range(primary, ts, o[step], h[step], lo[step], c[step])
                    view.step = step
                    view.i = step
                    signals = on_bar(view, portfolio)
                    if signals:
                        clock.advance_to(ts)
                        for signal in signals:
                            record((ts, signal))
                            submit(signal, ts, c[step])
                    if progress is not None and step % every == 0:
                        progress(step, n_steps)
            else:
                closes_now: dict[str, float] = {}
                for step in range(n_steps):
                    ts = ts_list[step]
                    broker.step = step
                    closes_now.clear()
                    # every open of this step fills before any range or close of it is seen
                    if pending:
                        for symbol, idx, new, o, _h, _lo, _c in lanes:
                            if new[step] and symbol in pending:
                                on_open(symbol, ts, o[idx[step]])
                    for symbol, idx, new, o, h, lo, c in lanes:
                        if new[step]:
                            i = idx[step]
                            if symbol in positions:
                                on_range(symbol, ts, o[i], h[i], lo[i], c[i])
                            closes_now[symbol] = c[i]
                    view.step = step
                    view.i = primary_idx[step]
                    signals = on_bar(view, portfolio)
                    if signals:
                        clock.advance_to(ts)
                        for signal in signals:
                            record((ts, signal))
                            submit(signal, ts, closes_now.get(signal.symbol, float("nan")))
                    if progress is not None and step % every == 0:
                        progress(step, n_steps)
        except StrategyError:
            raise
        except Exception as exc:
            ts_fail = ts_list[step] if 0 <= step < n_steps else None
            raise strategy_error(strategy, exc, ts_fail) from exc
        if progress is not None:
            progress(n_steps, n_steps)
        return self._finish(n_steps, last_close)

    def _finish(self, n_steps: int, primary_close: list[float]) -> BacktestResult:
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
            rejections=list(broker.rejections),
            intrabar=broker.intrabar_stats.as_dict(),
            config=asdict(self.config),
            bars_processed=n_steps,
        )

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
