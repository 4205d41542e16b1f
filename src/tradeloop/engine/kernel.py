"""The historical driver of the one kernel step (:mod:`tradeloop.engine.step`).

Backtest, paper and live differ only in the clock, the data feed and the broker. This module
walks a run's data; every step is one base-timeframe bar time across all symbols, run by
:meth:`Step.run <tradeloop.engine.step.Step.run>`: waiting orders fill at the opens, stops and
targets are checked against the ranges, closes are marked, the risk engine's per-bar checks
run, then the strategy sees the completed bars and its signals go through the enrichment and
the risk engine's pre-trade check to the broker (filled at the next open by default).

Single-symbol runs use specialised loops for the market phase (they skip the broker on bars
where nothing waits or is watched, and with a ``signal_bars`` hint skip bars where the
strategy cannot act); their decision phase is :meth:`Step.submit`. ``loop="general"`` runs
every bar through :meth:`Step.run` instead, and the tests require identical results.
"""

from __future__ import annotations

import gc
import logging
import math
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import numpy as np

from tradeloop.analysis.metrics import compute_metrics, given_annualization
from tradeloop.analysis.trades import trade_columns
from tradeloop.core.errors import ConfigError, StrategyError
from tradeloop.core.orders import Order
from tradeloop.core.portfolio import Portfolio
from tradeloop.core.signal import Signal
from tradeloop.engine.config import RunConfig
from tradeloop.engine.factories import make_broker
from tradeloop.engine.inputs import input_sources
from tradeloop.engine.market import MarketData
from tradeloop.engine.result import BacktestResult
from tradeloop.engine.step import Enrichment, InputSource, Step, init_strategy
from tradeloop.execution.exit_scan import Windows, window_extremes
from tradeloop.execution.simulated import SimulatedBroker
from tradeloop.risk.engine import RiskEngine
from tradeloop.risk.report import RiskReport
from tradeloop.strategy.base import Strategy, strategy_error

if TYPE_CHECKING:  # the bus and its events load only when a run publishes
    from tradeloop.bus.base import MessageBus
    from tradeloop.engine.events import StepEvents

__all__ = ["LOOPS", "BacktestEngine", "ProgressCallback", "held_values"]

logger = logging.getLogger(__name__)

#: Called as ``progress(done_steps, total_steps)`` about every 1% of a run.
ProgressCallback = Callable[[int, int], None]

#: ``auto`` picks the specialised single-symbol loops where they apply; ``general`` runs every
#: step through :meth:`Step.run` (the reference the specialisations are tested against).
LOOPS = ("auto", "general")


class _Lane(NamedTuple):
    """One symbol's view of the steps: numpy arrays, or Python lists in the general loop."""

    symbol: str
    idx: Any
    new: Any
    open: Any
    high: Any
    low: Any
    close: Any
    volume: Any


#: the exit scan's columns of one symbol (:meth:`BacktestEngine._range_lanes`)
_RangeLanes = tuple[
    tuple[Sequence[float] | None, Sequence[float], Sequence[float]],
    tuple[np.ndarray | None, np.ndarray, np.ndarray],
    Windows | None,
]


#: per wake bar of a sparse run, the highest high and the lowest low of the bars after it up
#: to and including the next wake bar (:meth:`BacktestEngine._wake_spans`)
_Spans = tuple[list[float], list[float]]


class _Views(NamedTuple):
    """One symbol's step times and OHLC as memoryviews: indexing gives a Python int or float
    directly (a numpy scalar and its conversion cost several times more per read)."""

    ts: Sequence[int]
    open: Sequence[float]
    high: Sequence[float]
    low: Sequence[float]
    close: Sequence[float]


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
        config: RunConfig,
        *,
        risk: RiskEngine | None = None,
        enrichment: Enrichment | None = None,
        loop: str = "auto",
        bus: MessageBus | None = None,
        run_id: str = "backtest",
        inputs: Sequence[InputSource] = (),
    ) -> None:
        if loop not in LOOPS:
            raise ConfigError(f"loop must be one of {list(LOOPS)}, got {loop!r}")
        self.strategy = strategy
        self.market = market
        if risk is not None and risk.config != config.risk:
            config = replace(config, risk=risk.config)  # the run record shows what was used
        self.config = config
        sources = input_sources(strategy, inputs)
        #: a bus or a side input makes every step go through the general step (which publishes
        #: the events and updates the inputs)
        self.loop = loop if bus is None and not sources else "general"
        self.portfolio = Portfolio(config.balance)
        broker = make_broker(
            "backtest",
            self.portfolio,
            market.instruments,
            market.base_timeframe,
            config,
            intrabar=market,
        )
        assert isinstance(broker, SimulatedBroker)  # the equity curve reads its fill ledger
        self.broker = broker
        self.risk = risk if risk is not None else RiskEngine(config.risk)
        self.risk.bind(market.instruments, self.broker.next_order_id)
        self.enrichment = enrichment
        self.view = market.view()
        events: StepEvents | None = None
        if bus is not None:
            from tradeloop.engine.events import StepEvents

            events = StepEvents(bus, run_id, strategy.strategy_name(), market.base_timeframe)
        self.step = Step(
            strategy,
            self.broker,
            self.portfolio,
            self.risk,
            enrichment=enrichment,
            events=events,
            inputs=sources,
        )
        wanted = tuple(strategy.symbols)
        missing = [s for s in wanted if s not in market.symbols]
        if missing:
            raise ConfigError(
                f"strategy '{strategy.strategy_name()}' trades {missing} but the run has data "
                f"for {list(market.symbols)}"
            )

    @property
    def clock(self) -> Any:
        """The run's historical clock (moved by the step)."""
        return self.step.clock

    @property
    def signals(self) -> Sequence[tuple[int, Signal]]:
        """Every signal the strategy returned, with its step time (ids assigned)."""
        return self.step.signals

    @property
    def orders(self) -> list[Order]:
        """Every order sent to the broker (after enrichment and the risk check), in order."""
        return self.step.orders

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
        self._views: dict[str, _Views] = {}
        self._ranges: dict[str, _RangeLanes] = {}  # the exit scan's columns per symbol
        self._spans: dict[str, _Spans | None] = {}  # the wake spans' extremes per symbol
        self._wake_at = np.zeros(0, dtype=np.int64)  # the wake bars, as :meth:`_wake_steps` found
        self._inside: dict[str, bool] = {}  # per symbol: every open inside its bar's range
        try:
            init_strategy(strategy, view)
        except Exception as exc:
            raise strategy_error(strategy, exc, None) from exc
        if self.enrichment is not None:
            self.enrichment.prepare(view)
        if logger.isEnabledFor(logging.INFO):  # the config's deep copy only when logged
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
        general = len(lanes) > 1 or self.loop == "general"
        if general:
            # every bar reads several fields, so index Python lists (volumes only when the
            # step publishes bar events)
            self._ts_list = market.step_ts.tolist()
            publishing = self.step.events is not None
            lanes = [
                _Lane(
                    ln.symbol,
                    *(np.asarray(a).tolist() for a in ln[1:-1]),
                    ln.volume.tolist() if publishing else None,
                )
                for ln in lanes
            ]
        risk_per_bar = self.risk.needs_bar_updates
        wake = self._wake_steps(lanes, n_steps) if not general and not risk_per_bar else None
        chunk = max(1, min(50_000, n_steps // 100))
        first = 0
        if self.config.trade_start is not None:
            # warm-up bars: nothing can be open or waiting before the first strategy call
            first = int(np.searchsorted(market.step_ts, self.config.trade_start, side="left"))
        # The lanes hold millions of floats; a cyclic-GC pass over them costs more than the
        # loop itself, and the loop makes no reference cycles of its own, so pause the
        # collector while it runs, and while the result is built from the run's tens of
        # thousands of fills and trades (re-enabled, the collector would at once walk them all).
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            for start in range(first, n_steps, chunk):
                stop = min(start + chunk, n_steps)
                if general:
                    self._steps_general(lanes, start, stop)
                else:
                    if risk_per_bar:
                        self._steps_single_risk(lanes[0], start, stop)
                    elif wake is not None:
                        self._steps_single_sparse(lanes[0], start, stop, wake)
                    else:
                        self._steps_single(lanes[0], start, stop)
                if progress is not None:
                    progress(stop, n_steps)
            if wake is not None and n_steps and self.portfolio.positions:
                # the sparse loop marks only the bars it visits: mark the last close
                symbol = lanes[0].symbol
                self.portfolio.marks[symbol] = float(lanes[0].close[n_steps - 1])
            return self._finish(n_steps)
        finally:
            if gc_was_enabled:
                gc.enable()

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
        found = np.flatnonzero(mask)
        self._wake_at = found  # as an array too, for the spans' reductions (:meth:`_wake_spans`)
        steps: list[int] = found.tolist()
        return steps

    def _steps_single_sparse(self, lane: _Lane, start: int, stop: int, wake: list[int]) -> None:
        """Steps ``[start, stop)`` of a one-symbol run whose strategy gave ``signal_bars``.

        Bars are visited while an order waits or a stop is watched, and at the strategy's
        wake bars; the bars in between cannot fill, exit or signal, so they are skipped. An
        open position is marked at every visited bar, which is every bar where anything
        reads the portfolio.
        """
        broker, view, portfolio, strategy = self.broker, self.view, self.portfolio, self.strategy
        symbol = lane.symbol
        views = self._bar_views(lane)
        step_ts, c = views.ts, views.close
        on_bar, submit = strategy.on_bar, self.step.submit
        pending, positions, watched = broker.pending, portfolio.positions, broker.watched
        marks = portfolio.marks
        skip_to_exit = broker.skip_to_exit
        ranges = self._ranges.get(symbol)  # the exit scan's columns, once it ran (below)
        # the extremes of the spans between wake bars, once a position was watched (below)
        spans = self._spans.get(symbol)
        spans_known = symbol in self._spans
        n_wake = len(wake)
        # the bars the exit scan may read one by one before it builds window extremes
        budget = len(c) // 8
        ptr = bisect_left(wake, start)
        step = start
        scanned = -1  # a wake bar the exit scan already checked (it reaches no level)
        try:
            while step < stop:
                while ptr < n_wake and wake[ptr] < step:
                    ptr += 1
                wakes = ptr < n_wake and wake[ptr] == step
                first = step + 1  # the first bar the exit scan below may cover
                at_fill = -1  # the bar the broker's scan at an entry's fill found
                span_tried = False  # the fill's span was tested (it may reach a level)
                if step == scanned:
                    marks[symbol] = c[step]  # the scan moved the trailing anchor over it
                elif pending and not wakes:
                    # an entry bar: fill at the open; the exit scan checks this bar's range
                    # with the ones after it (it comes back here when the range reaches a
                    # level: the broker then checks the bar). Once the scan's columns exist,
                    # the broker runs it at an entry's fill, over the bars the scan below
                    # would cover, and builds the position once (the anchor moved); not
                    # when a watched position is open (the order is most likely its close;
                    # a reversal is scanned below). When the bars to scan are the span from
                    # the signal's wake bar to the next, the broker first tests the span's
                    # extremes: when they reach no level, there is nothing to scan
                    if not watched and (spans is not None or ranges is not None):
                        if ptr < n_wake and wake[ptr] < stop:
                            nxt = wake[ptr]
                            end = nxt if broker.resting else nxt + 1
                        else:
                            nxt = end = stop
                        broker.fill_scan_stop = end  # the bars [step, end)
                        if spans is not None and end > nxt and ptr:
                            last = ptr - 1  # the signal's wake bar, when it is the bar before
                            if wake[last] == step - 1:
                                broker.fill_span = (spans[0][last], spans[1][last])
                                span_tried = True
                    try:
                        if self._broker_step(lane, step, c[step], defer=True):
                            first = step
                            marks[symbol] = c[step]
                            at_fill = broker.fill_scan_hit
                    finally:
                        broker.fill_scan_stop = broker.fill_scan_hit = -1
                        broker.fill_span = None
                elif pending or watched:
                    self._broker_step(lane, step, c[step])
                elif positions:
                    marks[symbol] = c[step]
                if wakes:
                    ptr += 1
                    view.step = view.i = step
                    signals = on_bar(view, portfolio)
                    if signals:
                        submit(signals, step, step_ts[step], view, None, c[step])
                if pending:
                    step += 1
                elif at_fill >= 0:
                    # scanned at the fill up to the next wake bar, ``nxt`` as the entry
                    # branch found it (an entry bar is no wake bar: ``ptr`` is unchanged)
                    if at_fill > nxt:
                        scanned = nxt
                    else:
                        nxt = at_fill
                    step = nxt
                else:
                    nxt = wake[ptr] if ptr < n_wake and wake[ptr] < stop else stop
                    # the scan covers the next wake bar too when it lies in this chunk: a
                    # wake bar whose range reaches no level needs no exit check either
                    end = nxt + 1 if nxt < stop and not broker.resting else nxt
                    if watched and first < end:
                        # jump to the first bar whose range reaches a stop, trailing stop or
                        # target (the anchor follows the bars skipped)
                        if not spans_known:
                            spans, spans_known = self._wake_spans(lane), True
                        if (
                            spans is not None
                            and not span_tried
                            and end == nxt + 1
                            and ptr
                            and wake[ptr - 1] == first - 1
                            and broker.clears_span(symbol, spans[0][ptr - 1], spans[1][ptr - 1])
                        ):
                            hit = end  # the span from the last wake bar reaches no level
                        else:
                            wide = broker.windowless_bars > budget  # windows pay off
                            if ranges is None or (wide and ranges[2] is None):
                                ranges = broker.fill_scan = self._range_lanes(lane, wide)
                            hit = skip_to_exit(symbol, ranges[0], ranges[1], first, end, ranges[2])
                        if hit > nxt:
                            scanned = nxt
                        else:
                            nxt = hit
                    step = nxt
        except StrategyError:
            raise
        except Exception as exc:
            raise strategy_error(strategy, exc, step_ts[step]) from exc

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
                _Lane(
                    symbol,
                    idx,
                    new_bar,
                    arrays.open,
                    arrays.high,
                    arrays.low,
                    arrays.close,
                    arrays.volume,
                )
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
        on_bar, submit = strategy.on_bar, self.step.submit
        views = self._bar_views(lane)
        step_ts = views.ts
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
                    submit(signals, step, step_ts[step], view, None, c[step])
        except StrategyError:
            raise
        except Exception as exc:
            raise strategy_error(strategy, exc, int(self.market.step_ts[step])) from exc

    def _broker_step(self, lane: _Lane, step: int, close: float, *, defer: bool = False) -> bool:
        """One symbol's bar at ``step`` for the broker: fill orders waiting for its open, then
        check stops and targets against its range (or just mark the close).

        With ``defer``, a bar whose open leaves a position with stops to watch (and no
        resting entry) is not checked: the caller's exit scan takes its range; returns True
        then (and the close is not marked), else False.
        """
        broker, portfolio = self.broker, self.portfolio
        symbol = lane.symbol
        views = self._views.get(symbol) or self._bar_views(lane)
        ts = views.ts[step]
        broker.step = step
        if broker.pending:
            if portfolio.positions and step:
                portfolio.marks[symbol] = views.close[step - 1]
            broker.on_open(symbol, ts, views.open[step])
        if portfolio.positions or broker.resting:
            if broker.resting or (broker.watched and not defer):
                broker.on_bar_range(
                    symbol, ts, views.open[step], views.high[step], views.low[step], close
                )
            elif broker.watched:
                return True
            else:
                portfolio.marks[symbol] = close
        return False

    def _opens_inside(self, lane: _Lane) -> bool:
        """Whether every open of the lane lies inside its bar's range (``low <= open <=
        high``, as the data check requires): a level the open reaches, the range reaches."""
        inside = self._inside.get(lane.symbol)
        if inside is None:
            o = lane.open
            inside = bool(np.all(lane.low <= o)) and bool(np.all(o <= lane.high))
            self._inside[lane.symbol] = inside
        return inside

    def _wake_spans(self, lane: _Lane) -> _Spans | None:
        """Per wake bar ``wake[i]`` of a one-symbol sparse run (the bars :meth:`_wake_steps`
        found), the highest high and the lowest low of the bars ``wake[i] + 1`` to
        ``wake[i + 1]`` (the span an entry filled after it, or a position carried past it, is
        scanned over up to the next wake bar); None when an open lies outside its bar's range
        (the extremes would not cover it) or there is no such span. Two numpy reductions for
        the whole run, made once per symbol (see :meth:`SimulatedBroker.clears_span`)."""
        spans: _Spans | None = None
        if self._opens_inside(lane):
            high, low = lane.high, lane.low
            starts = self._wake_at + 1
            starts = starts[starts < min(len(high), len(low))]
            if starts.size:
                spans = (
                    np.maximum.reduceat(high, starts).tolist(),
                    np.minimum.reduceat(low, starts).tolist(),
                )
        self._spans[lane.symbol] = spans
        return spans

    def _range_lanes(self, lane: _Lane, windows: bool = False) -> _RangeLanes:
        """Opens, highs and lows as memoryviews (index like lists, with no conversion of the
        whole column) and as the lane's numpy arrays, for the exit scan. The opens are None
        when every open lies inside its bar's range (data that passed the data check): the
        scan then reads the range only, which reaches every level an open reaches, and, once
        asked for with ``windows``, a stretch at a time (the third item: the bars' window
        extremes, else None; building them costs about 10 ns a bar, so the kernel asks once
        the bars scanned one by one would have paid for them)."""
        cached = self._ranges.get(lane.symbol)
        if cached is None:
            views = self._bar_views(lane)
            o, h, low = lane.open, lane.high, lane.low
            if self._opens_inside(lane):
                cached = (None, views.high, views.low), (None, h, low), None
            else:
                cached = (views.open, views.high, views.low), (o, h, low), None
        if windows and cached[2] is None and cached[0][0] is None:
            arrays = cached[1]
            cached = cached[0], arrays, window_extremes(arrays[1], arrays[2])
        self._ranges[lane.symbol] = cached
        return cached

    def _bar_views(self, lane: _Lane) -> _Views:
        """The lane's step times and OHLC as memoryviews (made once per symbol; no copy of a
        column that is already contiguous float64 / int64)."""
        cached = self._views.get(lane.symbol)
        if cached is None:
            columns = (lane.open, lane.high, lane.low, lane.close)
            cached = self._views[lane.symbol] = _Views(
                cast(Sequence[int], np.ascontiguousarray(self.market.step_ts, np.int64).data),
                *(cast(Sequence[float], np.ascontiguousarray(a, np.float64).data) for a in columns),
            )
        return cached

    def _close_list(self, lane: _Lane) -> list[float]:
        cached = self._close_lists.get(lane.symbol)
        if cached is None:
            cached = self._close_lists[lane.symbol] = lane.close.tolist()
        return cached

    def _steps_single_risk(self, lane: _Lane, start: int, stop: int) -> None:
        """:meth:`_steps_single` plus the risk engine's per-bar kill switches and black-swan
        check, after the close is marked (flattening on a black swan)."""
        broker, view, portfolio, strategy = self.broker, self.view, self.portfolio, self.strategy
        views = self._bar_views(lane)
        step_ts = views.ts
        symbol = lane.symbol
        c = self._close_list(lane)
        on_bar, submit = strategy.on_bar, self.step.submit
        pending, positions, watched = broker.pending, portfolio.positions, broker.watched
        marks = portfolio.marks
        risk_on_bar = self.risk.on_bar
        black_swan = self.step.black_swan
        closes_now = {symbol: math.nan}
        step = start
        try:
            for step in range(start, stop):
                ts = step_ts[step]
                if pending or watched:
                    self._broker_step(lane, step, c[step])
                elif positions:
                    marks[symbol] = c[step]
                closes_now[symbol] = c[step]
                if risk_on_bar(ts, closes_now, portfolio):
                    black_swan(step, ts, closes_now)
                view.step = view.i = step
                signals = on_bar(view, portfolio)
                if signals:
                    submit(signals, step, ts, view, None, c[step])
        except StrategyError:
            raise
        except Exception as exc:
            raise strategy_error(strategy, exc, step_ts[step]) from exc

    def _steps_general(self, lanes: list[_Lane], start: int, stop: int) -> None:
        """Steps ``[start, stop)`` on the union of bar times, each through :meth:`Step.run`."""
        view, run = self.view, self.step.run
        ts_list = self._ts_list
        primary_idx = lanes[0].idx
        publishing = self.step.events is not None
        volumes: list[float] | None = None
        for step in range(start, stop):
            bars = []
            if publishing:
                volumes = []
            for lane in lanes:
                if lane.new[step]:
                    i = lane.idx[step]
                    o, h, low, c = lane.open[i], lane.high[i], lane.low[i], lane.close[i]
                    bars.append((lane.symbol, o, h, low, c))
                    if volumes is not None:
                        volumes.append(lane.volume[i])
            view.step = step
            view.i = primary_idx[step]
            run(step, ts_list[step], bars, view, volumes=volumes)

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
            self.view.step = n_steps - 1
            self.risk.finish(portfolio, self.view, rejections)
        equity, cash, exposure = self._equity_curve(n_steps)
        trades = list(portfolio.trades) + broker.open_trades()
        columns = trade_columns(trades)  # once: the metrics, the analysis and the report
        metrics = compute_metrics(
            equity,
            market.step_ts,
            columns,
            market.base_ns,
            initial_equity=self.config.balance,
            exposure_mask=exposure,
            periods=given_annualization(self.config.periods_per_year, self.config.periods_basis),
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
            trade_columns=columns,
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
        cash = held_values(ledger.steps, ledger.cash, self.config.balance, n_steps)
        equity = cash.copy()
        exposure = np.zeros(n_steps, dtype=bool)
        market = self.market
        for symbol, (q_steps, q_vals) in ledger.qty.items():
            qty = held_values(q_steps, q_vals, 0.0, n_steps)
            series = market.series[(symbol, market.base_timeframe)]
            if series.ts is market.step_ts:  # the steps are this series' bars: no gather
                marks = series.close
            else:
                idx = market.index_at_step(symbol, market.base_timeframe)
                marks = np.where(idx >= 0, series.close[np.maximum(idx, 0)], 0.0)
            equity += qty * marks
            exposure |= qty != 0
        return equity, cash, exposure


def held_values(
    steps: Sequence[int], values: Sequence[float], initial: float, n_steps: int
) -> np.ndarray:
    """The value in force at every step ``0 .. n_steps - 1``: ``values[j]`` from ``steps[j]``
    until the next entry's step, ``initial`` before the first; of several entries at one step
    the last holds. ``steps`` must be in non-decreasing order (the broker's ledger records
    them so); entries before step 0 or at/after ``n_steps`` are clipped to the range.

    One ``np.repeat`` of the values by the lengths of their runs (O(n_steps), no binary
    search per step and no index array).

    Raises:
        ValueError: ``steps`` out of order, or ``steps`` and ``values`` of different lengths.
    """
    if len(steps) != len(values):
        raise ValueError(f"held_values: {len(steps)} steps but {len(values)} values")
    if not len(steps):
        return np.full(n_steps, initial, dtype=np.float64)
    at = np.clip(np.asarray(steps, dtype=np.int64), 0, n_steps)
    runs = np.diff(at, prepend=0, append=n_steps)
    if runs.min() < 0:
        raise ValueError("held_values: ledger steps out of order")
    held = np.concatenate(([initial], np.asarray(values, dtype=np.float64)))
    return np.repeat(held, runs)
