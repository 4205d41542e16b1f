"""The paper/live kernel: the backtest's strategy, risk and fill path driven by streamed bars.

Backtest and paper differ only in the clock, the feed and where bars come from (parity rule
2 of the architecture). :class:`LiveKernel` is synchronous and single-threaded: a session
hands it kline updates drained from the feed's queue, one at a time.

- A bar becomes visible to the strategy when it is complete, exactly as in a backtest: at
  each step the kernel builds the run's :class:`~tradeloop.engine.market.MarketData` over
  views of the bars held (no copy) and runs the one step (:class:`~tradeloop.engine.step.Step`)
  on it. The strategy's contract is the backtest's: ``on_init`` once (on the first step, or
  the first after a restore, followed by ``set_state`` with the stored state), then
  ``on_new_bars`` and ``on_bar`` on every step, the instance kept in between.
- Orders fill through the same :class:`~tradeloop.execution.simulated.SimulatedBroker` as in a
  backtest: waiting orders at the first price of the next bar (its open), stops, targets and
  trailing stops on every price update (a bar's range so far), P&L marked on every update.
- With several symbols a step happens once every symbol has closed the bar (or moved past
  it), and the step processes opens, then ranges, then the strategy, like the backtest's
  union-of-bar-times loop.
- Each step that changed anything is written to the state store in one transaction
  (:class:`~tradeloop.engine.journal.Journal`) before the next event is taken;
  :meth:`LiveKernel.restore` rebuilds bars, portfolio, waiting orders, counters, strategy
  state and the risk engine's state (a kill-switch halt stays a halt), so a run killed at any
  moment continues exactly.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tradeloop.bus.base import MessageBus
from tradeloop.core.bar import BarArrays
from tradeloop.core.errors import ConfigError, StrategyError
from tradeloop.core.instrument import Instrument
from tradeloop.core.order_status import InvalidTransitionError, OrderStatus, check_transition
from tradeloop.core.orders import Fill, Order, OrderSide, OrderType
from tradeloop.core.portfolio import Portfolio
from tradeloop.core.position import Position, Trade
from tradeloop.core.timeframes import timeframe_ns
from tradeloop.engine.config import RunConfig
from tradeloop.engine.daily import DaySummary, DayTracker
from tradeloop.engine.events import StepEvents
from tradeloop.engine.factories import VenueSpec, make_broker
from tradeloop.engine.inputs import input_sources
from tradeloop.engine.journal import Journal
from tradeloop.engine.market import MarketData
from tradeloop.engine.step import BarUpdate, Enrichment, InputSource, Step, init_strategy
from tradeloop.risk.engine import RiskEngine
from tradeloop.store.state import StateStore, StoredBar, StoredOrder
from tradeloop.strategy.base import Strategy, strategy_error
from tradeloop.strategy.view import MarketView

__all__ = ["LiveKernel", "StepOutcome"]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class StepOutcome:
    """What one event changed: new orders, fills, closed trades and opened positions."""

    orders: list[StoredOrder] = field(default_factory=list)
    fills: list[Fill] = field(default_factory=list)
    closed: list[Trade] = field(default_factory=list)
    opened: list[Position] = field(default_factory=list)
    steps: int = 0
    days: list[DaySummary] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.orders or self.fills or self.closed or self.opened or self.steps or self.days
        )


Bar6 = tuple[int, float, float, float, float, float]


class _Series:
    """A growing bar buffer of one symbol.

    Bars live in preallocated numpy columns; :meth:`arrays` hands out views of the held range,
    so a step costs O(1) here whatever the window. Trimming only moves the start. When an
    append reaches the end of the columns, the held bars are copied into new columns twice
    their size (one copy per ~held appends). A view handed out earlier stays valid: appends
    write past its end, and a copy leaves the old columns to it.
    """

    __slots__ = ("_live", "_prices", "_start", "_stop", "_ts")

    def __init__(self, capacity: int = 1024) -> None:
        self._ts = np.empty(capacity, dtype=np.int64)
        self._prices = np.empty((5, capacity), dtype=np.float64)  # open high low close volume
        self._live = np.empty(capacity, dtype=np.bool_)
        self._start = 0
        self._stop = 0

    def __len__(self) -> int:
        return self._stop - self._start

    def last_ts(self) -> int | None:
        """Open time of the newest held bar."""
        return int(self._ts[self._stop - 1]) if self._stop > self._start else None

    def first_ts(self) -> int | None:
        """Open time of the oldest held bar."""
        return int(self._ts[self._start]) if self._stop > self._start else None

    def rows(self) -> list[tuple[Bar6, bool]]:
        """The held bars as tuples, oldest first, with their live flag."""
        a, b = self._start, self._stop
        prices = self._prices[:, a:b].T.tolist()
        return [
            ((t, *p), bool(lv))  # type: ignore[misc]
            for t, p, lv in zip(self._ts[a:b].tolist(), prices, self._live[a:b], strict=True)
        ]

    def _reserve(self, extra: int) -> None:
        if self._stop + extra <= self._ts.size:
            return
        held = len(self)
        capacity = max(2 * (held + extra), 1024)  # a copy every ~held appends: O(1) amortized
        a, b = self._start, self._stop
        ts = np.empty(capacity, dtype=np.int64)
        prices = np.empty((5, capacity), dtype=np.float64)
        live = np.empty(capacity, dtype=np.bool_)
        ts[:held] = self._ts[a:b]
        prices[:, :held] = self._prices[:, a:b]
        live[:held] = self._live[a:b]
        self._ts, self._prices, self._live = ts, prices, live
        self._start, self._stop = 0, held

    def append(self, bar: Bar6, live: bool) -> None:
        """Add the newest bar."""
        self._reserve(1)
        i = self._stop
        self._ts[i] = bar[0]
        self._prices[:, i] = bar[1:]
        self._live[i] = live
        self._stop = i + 1

    def trim(self, keep: int) -> None:
        """Drop the oldest bars beyond ``keep``."""
        if len(self) > keep:
            self._start = self._stop - keep

    def arrays(self, symbol: str, timeframe: str) -> BarArrays:
        """The held bars as the backtest's columns (views, no copy)."""
        a, b = self._start, self._stop
        p = self._prices
        return BarArrays(
            symbol, timeframe, self._ts[a:b], p[0, a:b], p[1, a:b], p[2, a:b], p[3, a:b], p[4, a:b]
        )


class LiveKernel:
    """Runs one strategy on streamed bars with the backtest's broker and risk engine.

    Parameters
    ----------
    strategy
        The strategy object (the same class and parameters a backtest uses).
    instruments
        Instrument of every traded symbol (the exchange's tick, lot, min-notional and fees).
    timeframe
        Base (trading) timeframe of the stream.
    config
        Fill, sizing and risk rules (the backtest's :class:`RunConfig`).
    run_id
        Key of the run in ``store``.
    store
        Durable state; None keeps everything in memory (tests, benchmarks).
    max_bars
        Bars kept per symbol for the strategy's view (oldest dropped beyond it).
    risk
        A risk engine to use instead of one built from ``config.risk``.
    enrichment
        Optional ML enrichment between the strategy and the risk gate.
    bus
        Where the step's events go (:mod:`tradeloop.bus.events`); None publishes nothing.
    inputs
        Side-input sources (default: one for each input the strategy declares).
    mode, venue
        ``paper`` (default) fills through the simulated broker; ``live`` through the venue
        broker of ``venue`` (:func:`~tradeloop.engine.factories.make_broker`).
    """

    def __init__(
        self,
        strategy: Strategy,
        instruments: Mapping[str, Instrument],
        timeframe: str,
        config: RunConfig,
        *,
        run_id: str = "live",
        store: StateStore | None = None,
        max_bars: int = 100_000,
        risk: RiskEngine | None = None,
        enrichment: Enrichment | None = None,
        bus: MessageBus | None = None,
        inputs: Sequence[InputSource] = (),
        mode: str = "paper",
        venue: VenueSpec | None = None,
    ) -> None:
        symbols = tuple(strategy.symbols) or tuple(instruments)
        missing = [s for s in symbols if s not in instruments]
        if missing:
            raise ConfigError(
                f"strategy '{strategy.strategy_name()}' trades {missing} but the session "
                f"streams {list(instruments)}"
            )
        if max_bars < 2:
            raise ConfigError(f"max_bars must be >= 2, got {max_bars}")
        self.strategy = strategy
        self.symbols: tuple[str, ...] = symbols
        self.instruments = {s: instruments[s] for s in symbols}
        self.timeframe = timeframe
        self.tf_ns = timeframe_ns(timeframe)
        declared = tuple(strategy.timeframes)
        self.extra_timeframes = tuple(tf for tf in declared if tf != timeframe)
        self.config = config
        self.run_id = run_id
        self.store = store
        #: the run's persistence (None: in memory only)
        self.journal = Journal(store, run_id) if store is not None else None
        self.max_bars = max_bars
        self.portfolio = Portfolio(config.balance)
        #: ``paper`` (simulated fills) or ``live`` (the venue of ``venue``)
        self.mode = mode
        self.broker = make_broker(
            mode, self.portfolio, self.instruments, timeframe, config, venue=venue
        )
        self.risk = risk if risk is not None else RiskEngine(config.risk)
        self.risk.bind(self.instruments, self.broker.next_order_id)
        self.enrichment = enrichment
        self.step = Step(
            strategy,
            self.broker,
            self.portfolio,
            self.risk,
            enrichment=enrichment,
            on_order=self._track,
            record=False,
            events=(
                StepEvents(bus, run_id, strategy.strategy_name(), timeframe, deferred=True)
                if bus is not None
                else None
            ),
            inputs=input_sources(strategy, inputs),
        )
        #: the side inputs' values, carried from step to step (each step has a new view)
        self._input_values: dict[str, dict[str, object]] = {}
        #: True once ``on_init`` ran in this process (on the first step)
        self._initialised = False
        self.series: dict[str, _Series] = {s: _Series() for s in symbols}
        #: closed bars waiting for their step (multi-symbol runs), by symbol
        self._queued: dict[str, list[Bar6]] = {s: [] for s in symbols}
        #: open time of the bar whose open has been applied, by symbol
        self._opened: dict[str, int] = {}
        self.last_step_ts: int | None = None
        self.first_live_ts: int | None = None
        self.steps = 0
        self.duplicates = 0
        #: order status changes the state machine refused (logged, never applied)
        self.invalid_transitions = 0
        self._orders: dict[int, StoredOrder] = {}
        self._new_orders: list[int] = []
        #: the strategy's ``get_state()`` after its last call (stored), or restored from the store
        self._strategy_state: dict[str, Any] = {}
        self._seen_fills = 0
        self._seen_trades = 0
        #: the UTC day, its starting equity and the last close's equity (daily summaries)
        self.days = DayTracker()
        self._ended_days: list[DaySummary] = []

    # -- state ---------------------------------------------------------------------------------
    @property
    def has_history(self) -> bool:
        """True once any bar (warm-up or live) is held."""
        return any(len(s) for s in self.series.values())

    @property
    def has_queued(self) -> bool:
        """True while a closed bar waits for the other symbols to close theirs."""
        return any(self._queued.values())

    def last_bar_ts(self, symbol: str) -> int | None:
        """Open time of the last closed bar of ``symbol`` the kernel holds (queued included)."""
        queued = self._queued[symbol]
        if queued:
            return queued[-1][0]
        return self.series[symbol].last_ts()

    def missing_before(self, symbol: str, ts: int) -> tuple[int, int] | None:
        """The bar-time range ``[start, end)`` of ``symbol`` missing before a bar at ``ts``."""
        last = self.last_bar_ts(symbol)
        if last is None or ts <= last + self.tf_ns:
            return None
        return last + self.tf_ns, ts

    def restore(self) -> bool:
        """Load the run from the store; returns False when the store holds nothing of it."""
        if self.journal is None:
            return False
        entry = self.journal.load(self.symbols, self.timeframe)
        if entry is None:
            return False
        state = entry.state
        for symbol in self.symbols:
            for ts, o, h, low, c, v, live in entry.bars[symbol]:
                self.series[symbol].append((ts, o, h, low, c, v), live)
            self.series[symbol].trim(self.max_bars)
        if state.portfolio is not None:
            p = state.portfolio
            self.portfolio.initial_balance = p.initial_balance
            self.portfolio.balance = p.balance
            self.portfolio.marks.update(p.marks)
            self.portfolio.positions.update(p.positions)
            closed = [t for t in p.trades if t.exit_ts is not None]
            self.portfolio.trades.extend(closed)
        engine = entry.engine_state
        stored = entry.orders
        self._orders = dict(stored)
        self.broker.restore_state(engine.get("broker", {}), {k: v.order for k, v in stored.items()})
        self.broker.restore_fills(entry.fills)
        self._seen_fills = len(self.broker.fills())
        self._seen_trades = len(self.portfolio.trades)
        if self.step.events is not None:
            self.step.events.resume(self._seen_fills, self._seen_trades)
            # the last committed step's outbox: maybe never published (at least once)
            self.step.events.restore_state(engine.get("events", {}))
        self.last_step_ts = engine.get("last_step_ts")
        self.first_live_ts = engine.get("first_live_ts")
        self.steps = int(engine.get("steps", 0))
        self.step.counts.restore_state(engine.get("counts", {"signals": engine.get("signals", 0)}))
        self._opened = {k: int(v) for k, v in engine.get("opened", {}).items()}
        self.days.restore_state(engine.get("days", {}))
        self.risk.restore_state(engine.get("risk", {}))
        self.step.paused = bool(engine.get("paused", False))  # a paused run restarts paused
        stored_inputs = engine.get("inputs", {})
        for src in self.step.inputs:
            restore_input = getattr(src, "restore_state", None)
            if restore_input is not None:
                restore_input(stored_inputs.get(src.name, {}))
        self._strategy_state = dict(state.strategy_states.get(self.strategy.strategy_name(), {}))
        logger.info(
            "run restored",
            extra={
                "run_id": self.run_id,
                "bars": {s: len(v) for s, v in self.series.items()},
                "positions": len(self.portfolio.positions),
                "trades": len(self.portfolio.trades),
                "waiting_orders": sum(len(q) for q in self.broker.pending.values()),
                "last_step": self.last_step_ts,
            },
        )
        return True

    def warm_up(self, bars: Mapping[str, Iterable[Bar6]]) -> int:
        """Add history bars the strategy sees but never traded on; returns how many were new.

        Only bars older than anything already held are added; they are stored at once.
        """
        stored: list[StoredBar] = []
        for symbol, rows in bars.items():
            series = self.series[symbol]
            first = series.first_ts()
            new = [r for r in rows if first is None or r[0] < first]
            if not new:
                continue
            held = series.rows()
            merged = _Series(2 * (len(new) + len(held)) + 1)
            for r in new:
                merged.append(r, False)
            for bar, live in held:
                merged.append(bar, live)
            self.series[symbol] = series = merged
            series.trim(self.max_bars)
            stored.extend((symbol, self.timeframe, *r, False) for r in new)
        if stored and self.journal is not None:
            self.journal.save_bars(stored)
        return len(stored)

    # -- events --------------------------------------------------------------------------------
    def on_price(
        self, symbol: str, ts: int, o: float, h: float, low: float, c: float
    ) -> StepOutcome:
        """An update of the bar of ``symbol`` opened at ``ts`` that is still in progress.

        Waiting orders fill at the bar's open (the first update of a new bar), stops and
        targets are checked against the range so far, and the position is marked at ``c``.
        """
        if symbol not in self.series:
            return StepOutcome()
        last = self.last_bar_ts(symbol)
        if last is not None and ts <= last:
            return StepOutcome()  # an update of a bar already closed
        if self._opened.get(symbol) != ts:
            # the bar's first price: fill what waits for the open; the range starts with the
            # next update (marking now would move equity before other symbols' opens fill,
            # which a backtest step does not do)
            self._apply_open(symbol, ts, o)
            return self._commit(ts, bars=())
        if symbol in self.portfolio.positions:
            self.broker.on_bar_range(symbol, ts, o, h, low, c)
        return self._commit(ts, bars=())

    def on_bar(
        self, symbol: str, ts: int, o: float, h: float, low: float, c: float, v: float
    ) -> StepOutcome:
        """A closed bar of ``symbol``; runs every step that became complete."""
        if symbol not in self.series:
            return StepOutcome()
        last = self.last_bar_ts(symbol)
        if last is not None and ts <= last:
            self.duplicates += 1
            return StepOutcome()
        if self.first_live_ts is None:
            self.first_live_ts = ts
        self._queued[symbol].append((ts, o, h, low, c, v))
        outcome = StepOutcome()
        while True:
            step_ts = self._ready_step()
            if step_ts is None:
                break
            outcome = _merge(outcome, self._step(step_ts))
        return outcome

    def flush(self) -> StepOutcome:
        """Run the steps of bars still queued (a symbol that went quiet): at most the oldest."""
        outcome = StepOutcome()
        pending = [q[0][0] for q in self._queued.values() if q]
        if pending:
            outcome = self._step(min(pending))
        return outcome

    # -- internals ---------------------------------------------------------------------------
    def _ready_step(self) -> int | None:
        """The oldest queued bar time every symbol has reached, or None."""
        heads = [q[0][0] for q in self._queued.values() if q]
        if not heads:
            return None
        ts = min(heads)
        for symbol in self.symbols:
            last = self.last_bar_ts(symbol)
            if last is None or last < ts:
                return None
        return ts

    def _apply_open(self, symbol: str, ts: int, open_price: float) -> None:
        if self._opened.get(symbol) == ts:
            return
        if self.last_step_ts is not None and self._behind(symbol):
            return  # the previous step has not run: its orders cannot exist yet
        self._opened[symbol] = ts
        if self.broker.pending.get(symbol):
            self.broker.step = self.steps
            self.broker.on_open(symbol, ts, open_price)

    def _behind(self, symbol: str) -> bool:
        last = self.last_bar_ts(symbol)
        return bool(self._queued[symbol]) or (
            last is not None and self.last_step_ts is not None and last > self.last_step_ts
        )

    def _roll_day(self, ts: int) -> None:
        """At each step (in time order): when a UTC day ended, keep its summary."""
        p = self.portfolio
        summary = self.days.roll(ts, p.equity, p.trades, len(p.positions))
        if summary is not None:
            self._ended_days.append(summary)

    @property
    def signals(self) -> int:
        """Signals the strategy returned so far in this run."""
        return self.step.counts.signals

    def _step(self, ts: int) -> StepOutcome:
        self._roll_day(ts)
        self.risk.poll_inbox()  # an operator's override tokens (no-op without an inbox)
        bars: list[tuple[str, Bar6]] = []
        for symbol in self.symbols:
            queue = self._queued[symbol]
            if queue and queue[0][0] == ts:
                bars.append((symbol, queue.pop(0)))
        opens: list[tuple[str, float]] = []
        for symbol, bar in bars:
            if self._opened.get(symbol) != ts:  # the open was not applied by an update
                self._opened[symbol] = ts
                opens.append((symbol, bar[1]))
        updates: list[BarUpdate] = [(s, b[1], b[2], b[3], b[4]) for s, b in bars]
        volumes = [b[5] for _, b in bars]
        for symbol, bar in bars:
            series = self.series[symbol]
            series.append(bar, True)
            series.trim(self.max_bars)
        number = self.steps
        self.last_step_ts = ts
        self.steps += 1
        view = self._view(ts)
        self.step.run(number, ts, updates, view, opens=opens, volumes=volumes)
        try:
            self._strategy_state = dict(self.strategy.get_state())
        except Exception as exc:
            raise strategy_error(self.strategy, exc, ts) from exc
        self.days.mark(self.portfolio.equity)
        stored = [(s, self.timeframe, *bar, True) for s, bar in bars]
        return self._commit(ts, bars=stored, step=True)

    def _market(self) -> MarketData:
        sources = {s: self.series[s].arrays(s, self.timeframe) for s in self.symbols}
        return MarketData(sources, self.instruments, self.timeframe, self.extra_timeframes)

    def _view(self, ts: int) -> MarketView:
        """The step's market view over the held bars; the strategy and the enrichment are
        initialised on the first step and told of the new bars on every later one."""
        market = self._market()
        view = market.view()
        view.inputs = self._input_values
        strategy = self.strategy
        try:
            if not self._initialised:
                init_strategy(strategy, view)  # before the first step, as in a backtest
                if self._strategy_state:
                    strategy.set_state(self._strategy_state)
                    strategy.remember_init()
                if self.enrichment is not None:
                    self.enrichment.prepare(view)
                self._initialised = True
                self._at_last_step(view, market)
            else:
                self._at_last_step(view, market)
                strategy.on_new_bars(view)
                if self.enrichment is not None:
                    self.enrichment.extend(view)
        except StrategyError:
            raise
        except Exception as exc:
            raise strategy_error(strategy, exc, ts) from exc
        return view

    def _at_last_step(self, view: MarketView, market: MarketData) -> None:
        last = int(market.step_ts.size) - 1
        view.step = last
        view.i = int(market.index_at_step(self.symbols[0], self.timeframe)[last])

    def _track(self, order: Order) -> None:
        """A new order from the step: stored with the status the broker gave it."""
        done = self.broker.order_status
        assert done is not None
        status = done.pop(order.id, None)  # filled at once (close fill rule) or refused
        if status is None:
            waiting = any(o.id == order.id for o in self.broker.pending.get(order.symbol, ()))
            status = OrderStatus.SUBMITTED if waiting else OrderStatus.REJECTED
        self._orders[order.id] = StoredOrder(order, status)
        self._new_orders.append(order.id)

    def record_now(self, ts: int | None = None) -> StepOutcome:
        """Between events (a reconciliation, a venue update): apply and store what changed,
        in one transaction like an event's; the portfolio is written even when no order,
        fill or trade changed."""
        at = ts if ts is not None else (self.last_step_ts or 0)
        return self._commit(at, bars=(), force=True)

    def _commit(
        self, ts: int, *, bars: Sequence[StoredBar], step: bool = False, force: bool = False
    ) -> StepOutcome:
        """Collect what changed since the last commit and write it in one transaction."""
        broker, portfolio = self.broker, self.portfolio
        outcome = StepOutcome(steps=1 if step else 0, days=self._ended_days)
        self._ended_days = []
        changed: dict[int, StoredOrder] = {}
        for order_id in self._new_orders:
            changed[order_id] = self._orders[order_id]
        self._new_orders = []
        status = broker.order_status
        assert status is not None
        # the venue broker's own orders (resting stops and targets with negative ids, exits
        # of the levels it watches): journaled from their placement on, with every status
        # change, like the step's orders (a flatten's exits are tracked already)
        take_new = getattr(broker, "take_new_orders", None)
        for order in take_new() if take_new is not None else ():
            if order.id in self._orders:
                continue
            own = StoredOrder(order, status.pop(order.id, OrderStatus.SUBMITTED))
            self._orders[order.id] = changed[order.id] = own
        for order_id, st in status.items():
            stored = self._orders.get(order_id)
            if stored is None or stored.status == st:
                continue
            try:
                check_transition(order_id, stored.status, st)
            except InvalidTransitionError as exc:
                self.invalid_transitions += 1
                logger.error("%s; kept %s", exc, stored.status, extra={"order_id": order_id})
                continue
            stored = StoredOrder(stored.order, st)
            self._orders[order_id] = stored
            changed[order_id] = stored
        status.clear()
        fills = broker.fills()
        outcome.fills = fills[self._seen_fills :]
        self._seen_fills = len(fills)
        outcome.closed = portfolio.trades[self._seen_trades :]
        self._seen_trades = len(portfolio.trades)
        outcome.orders = list(changed.values())
        outcome.opened = [
            portfolio.positions[f.symbol]
            for f in outcome.fills
            if f.reason == "entry" and f.symbol in portfolio.positions
        ]
        events = self.step.events
        if events is not None and not step:
            events.fills_and_trades(ts, broker, portfolio)  # a price update filled or exited
        if self.journal is not None and (outcome or bars or force):
            self.journal.record(
                ts=ts,
                portfolio=portfolio,
                checkpoints={b[0]: b[2] for b in bars},
                strategy_states={self.strategy.strategy_name(): self._strategy_state},
                orders=outcome.orders,
                fills=outcome.fills,
                trades=outcome.closed + self.broker.open_trades(),
                bars=bars,
                engine_state=self.engine_state(),
            )
        if events is not None:
            events.flush()  # only what the store has committed goes out
        return outcome

    def engine_state(self) -> dict[str, Any]:
        """The kernel's own state as stored with every step."""
        return {
            "broker": self.broker.export_state(),
            "last_step_ts": self.last_step_ts,
            "first_live_ts": self.first_live_ts,
            "steps": self.steps,
            "signals": self.signals,
            "counts": self.step.counts.export_state(),
            "opened": dict(self._opened),
            "days": self.days.export_state(),
            "risk": self.risk.export_state(),
            "paused": self.step.paused,
            # side inputs with a state of their own (the regime's transition manager)
            "inputs": {
                src.name: src.export_state()
                for src in self.step.inputs
                if hasattr(src, "export_state")
            },
            # the bus messages' id counters and the step's outbox (published after the commit)
            "events": self.step.events.export_state() if self.step.events is not None else {},
        }

    def status(self) -> dict[str, Any]:
        """Equity, cash, positions and counters for the status file."""
        p = self.portfolio
        return {
            "equity": p.equity,
            "cash": p.balance,
            "initial_balance": p.initial_balance,
            "positions": [
                {
                    "symbol": pos.symbol,
                    "side": "long" if pos.direction > 0 else "short",
                    "quantity": pos.quantity,
                    "entry_price": pos.entry_price,
                    "mark": p.marks.get(pos.symbol),
                    "stop_loss": pos.stop_loss,
                    "take_profit": pos.take_profit,
                }
                for pos in p.positions.values()
            ],
            "trades": len(p.trades),
            "waiting_orders": sum(len(q) for q in self.broker.pending.values()),
            "steps": self.steps,
            "signals": self.signals,
            "last_bar_ts": self.last_step_ts,
            "risk_state": str(self.risk.state),
            "paused": self.step.paused,
        }

    # -- operator control (called between two events, on the kernel's thread) ------------------
    def set_paused(self, paused: bool) -> bool:
        """Pause (no signal becomes an order; bars, marks, stops and targets go on) or resume;
        stored at once, so a restarted run keeps it. Returns the previous value."""
        before = self.step.paused
        self.step.paused = paused
        if before != paused and self.journal is not None and self.last_step_ts is not None:
            self.journal.record(
                ts=self.last_step_ts,
                portfolio=self.portfolio,
                checkpoints={},
                strategy_states={self.strategy.strategy_name(): self._strategy_state},
                orders=[],
                fills=[],
                trades=self.broker.open_trades(),
                bars=[],
                engine_state=self.engine_state(),
            )
        return before

    def close_positions(self, symbols: Sequence[str] | None = None) -> StepOutcome:
        """Close the open positions of ``symbols`` (every one when None) at once.

        Every symbol: the broker's flatten (waiting orders cancelled, positions closed by
        market orders, exit reason ``risk``). One symbol: its waiting entry orders cancelled
        and a reduce-only market order (tag ``operator_close``). Both fill under the run's fill
        rule (the next open, or the last mark in close mode); the orders are tracked and stored
        like the strategy's. Call it between two events. Returns what changed.
        """
        ts = self.last_step_ts
        if ts is None:
            return StepOutcome()
        broker = self.broker
        before = {o.id for q in broker.pending.values() for o in q}
        marks = dict(self.portfolio.marks)
        if symbols is None:
            broker.flatten(ts, marks)
        else:
            status = broker.order_status
            for symbol in symbols:
                queue = broker.pending.get(symbol, [])
                for order in [o for o in queue if not o.reduce_only]:
                    queue.remove(order)
                    if status is not None and order.id in self._orders:
                        status[order.id] = OrderStatus.CANCELLED
                if not queue:
                    broker.pending.pop(symbol, None)
                pos = self.portfolio.positions.get(symbol)
                if pos is None:
                    continue
                order = Order(
                    id=broker.next_order_id(),
                    symbol=symbol,
                    side=OrderSide.BUY if pos.direction < 0 else OrderSide.SELL,
                    type=OrderType.MARKET,
                    quantity=pos.quantity,
                    ts_created=ts,
                    reduce_only=True,
                    tag="operator_close",
                )
                broker.submit_order(order, ts, marks.get(symbol, float("nan")))
        for queue in list(broker.pending.values()):
            for order in queue:
                if order.id not in before:
                    self._track(order)
        return self._commit(ts, bars=())


def _merge(a: StepOutcome, b: StepOutcome) -> StepOutcome:
    return StepOutcome(
        a.orders + b.orders,
        a.fills + b.fills,
        a.closed + b.closed,
        a.opened + b.opened,
        a.steps + b.steps,
        a.days + b.days,
    )
