"""The one kernel step every mode runs: backtest, paper and live.

A step is one base-timeframe bar time across the run's symbols::

    fill waiting orders at the new bars' opens
      -> check stops, targets and trailing stops against the bars' ranges, mark the closes
      -> risk.on_bar (kill switches, black-swan flatten)
      -> side inputs (e.g. the regime: view.regime, risk.set_regime, the regime weight)
      -> strategy.on_bar
      -> enrichment.enrich (ML: meta confidence, toxicity, regime weight; weak entries dropped)
      -> risk.check (sized order or rejection with a reason)
      -> broker.submit_order

:class:`Step` holds this sequence once. The backtest's multi-symbol loop and the paper/live
kernel call :meth:`Step.run` for every step; the backtest's single-symbol loops are
specialisations of its market phase (they skip bars where nothing can happen) that call
:meth:`Step.submit` for the decision phase, and a test runs every example strategy through both
and requires identical orders, trades and equity.

The strategy contract is identical in every mode (:func:`init_strategy` once, then
:meth:`~tradeloop.strategy.base.Strategy.on_new_bars` when paper/live bars arrive, and the
instance kept between bars).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol, overload

from tradeloop.core.clock import HistoricalClock
from tradeloop.core.errors import StrategyError
from tradeloop.core.orders import Order
from tradeloop.core.portfolio import Portfolio
from tradeloop.core.rejection import Rejection
from tradeloop.core.signal import Signal, SignalAction, signal_id
from tradeloop.execution.broker import Broker
from tradeloop.risk.engine import RiskEngine
from tradeloop.strategy.base import Strategy, strategy_error
from tradeloop.strategy.view import MarketView

if TYPE_CHECKING:  # the bus events load only when a run publishes
    from tradeloop.engine.events import StepEvents

__all__ = [
    "BarUpdate",
    "Enrichment",
    "InputSource",
    "SignalRecord",
    "Step",
    "StepCounts",
    "init_strategy",
    "reference_close",
    "signal_id",
]

logger = logging.getLogger(__name__)

_CLOSE = SignalAction.CLOSE
_PAUSED = "engine paused by an operator"

#: One symbol's bar at a step: ``(symbol, open, high, low, close)``.
BarUpdate = tuple[str, float, float, float, float]


class Enrichment(Protocol):
    """ML enrichment between the strategy and the risk gate.

    :class:`tradeloop.engine.enrichment.ModelEnrichment` implements it with a registered model.
    """

    def prepare(self, view: MarketView) -> None:
        """Once before the first bar, like ``Strategy.on_init``: precompute causal features."""
        ...

    def extend(self, view: MarketView) -> None:
        """Paper/live: bars were added to the view (old ones may have left the window)."""
        ...

    def enrich(self, signals: Sequence[Signal], view: MarketView) -> list[Signal]:
        """Return the signals for the risk gate: entries scored (``confidence``) or dropped."""
        ...


class InputSource(Protocol):
    """Computes a side input (``view.input(name)``) from completed bars, once per step."""

    name: str

    def update(self, view: MarketView) -> None:
        """Bring ``view.inputs[self.name]`` up to the view's current step (every bar up to it
        that the source has not seen yet, so warm-up bars count too)."""
        ...


class StepCounts:
    """What went through the step's stages (signals, enriched, rejected by reason, orders)."""

    __slots__ = ("dropped", "orders", "rejected", "signals", "steps")

    def __init__(self) -> None:
        self.steps = 0
        self.signals = 0
        self.dropped = 0
        self.orders = 0
        self.rejected: Counter[str] = Counter()

    def as_dict(self) -> dict[str, Any]:
        """The counts as plain values (for status files and run records)."""
        return {
            "steps": self.steps,
            "signals": self.signals,
            "dropped_by_model": self.dropped,
            "rejected": dict(sorted(self.rejected.items())),
            "orders": self.orders,
        }

    def export_state(self) -> dict[str, Any]:
        """Counters to store with a paper/live step."""
        return self.as_dict()

    def restore_state(self, state: Mapping[str, Any]) -> None:
        """Continue counting from :meth:`export_state`."""
        self.steps = int(state.get("steps", 0))
        self.signals = int(state.get("signals", 0))
        self.dropped = int(state.get("dropped_by_model", 0))
        self.orders = int(state.get("orders", 0))
        self.rejected = Counter({str(k): int(v) for k, v in state.get("rejected", {}).items()})


def reference_close(
    symbol: str, closes: Mapping[str, float] | None, close: float, market: MarketView
) -> float:
    """The close an order for ``symbol`` is made at, around which a signal's stop and target
    distances are placed: this step's (``closes``, or ``close`` for a one-symbol run), else,
    when the symbol has no bar at this step, its latest close (``market.price``), as the risk
    gate takes it."""
    price = close if closes is None else closes.get(symbol, math.nan)
    return price if price == price else market.price(symbol)


def init_strategy(strategy: Strategy, view: MarketView) -> None:
    """Call ``strategy.on_init(view)`` once and remember what it set.

    The default :meth:`~tradeloop.strategy.base.Strategy.on_new_bars` uses the record to tell
    precomputed attributes (refreshed when bars arrive) from state kept by ``on_bar``.
    """
    strategy.on_init(view)
    strategy.remember_init()


class SignalRecord(Sequence[tuple[int, Signal]]):
    """Every signal a step recorded, with its step time; each opening one carries its id.

    The decision phase records a lone opening signal as the strategy returned it (its id
    travels on the order instead); the record gives it its id (``strategy:symbol:ts``, see
    :func:`~tradeloop.core.signal.signal_id`) when it is first read, once per signal, so a run
    whose signals nobody reads (a throughput run, an optimisation trial) names none. Compares
    equal to a list of the same pairs; pickles as that list.
    """

    __slots__ = ("_name", "_named", "_raw")

    def __init__(self, strategy_name: str, raw: list[tuple[int, Signal]]) -> None:
        self._name = strategy_name
        self._raw = raw
        self._named: list[tuple[int, Signal]] = []

    def _filled(self) -> list[tuple[int, Signal]]:
        raw, named = self._raw, self._named
        if len(named) < len(raw):
            name = self._name
            for ts, signal in raw[len(named) :]:
                if signal.position_id is None and signal.action is not _CLOSE:
                    signal = signal.with_position_id(signal_id(name, signal.symbol, ts))
                named.append((ts, signal))
        return named

    def __len__(self) -> int:
        return len(self._raw)

    @overload
    def __getitem__(self, index: int) -> tuple[int, Signal]: ...

    @overload
    def __getitem__(self, index: slice) -> list[tuple[int, Signal]]: ...

    def __getitem__(self, index: int | slice) -> tuple[int, Signal] | list[tuple[int, Signal]]:
        return self._filled()[index]

    def __iter__(self) -> Iterator[tuple[int, Signal]]:
        return iter(self._filled())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SignalRecord):
            other = other._filled()
        if not isinstance(other, list):
            return NotImplemented
        return self._filled() == other

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"SignalRecord({self._filled()!r})"

    def __reduce__(self) -> tuple[type[list[Any]], tuple[list[tuple[int, Signal]]]]:
        return (list, (self._filled(),))


class Step:
    """The step sequence over one strategy, broker, portfolio and risk engine.

    Parameters
    ----------
    strategy
        The strategy (already initialised with :func:`init_strategy`).
    broker
        The :class:`~tradeloop.execution.broker.Broker` port.
    portfolio
        The account the broker fills into.
    risk
        The pre-trade gate and per-bar kill switches.
    enrichment
        Optional ML enrichment between strategy and risk.
    on_order
        Called with every order sent to the broker (paper/live track their status).
    events
        Publishes every stage on a bus (:class:`~tradeloop.engine.events.StepEvents`);
        None builds no event at all.
    inputs
        Side-input sources updated before the strategy is called (``view.input(name)``). A
        source with an ``attach(step)`` method is given this step (the regime source sets the
        risk engine's regime and the enrichment's regime weight through it).
    """

    __slots__ = (
        "_counts",
        "_record",
        "_signals",
        "broker",
        "clock",
        "enrichment",
        "events",
        "inputs",
        "on_order",
        "orders",
        "paused",
        "portfolio",
        "record",
        "risk",
        "strategy",
        "strategy_name",
    )

    def __init__(
        self,
        strategy: Strategy,
        broker: Broker,
        portfolio: Portfolio,
        risk: RiskEngine,
        *,
        enrichment: Enrichment | None = None,
        on_order: Callable[[Order], None] | None = None,
        record: bool = True,
        events: StepEvents | None = None,
        inputs: Sequence[InputSource] = (),
    ) -> None:
        self.strategy = strategy
        self.strategy_name = strategy.strategy_name()
        self.broker = broker
        self.portfolio = portfolio
        self.risk = risk
        self.enrichment = enrichment
        self.on_order = on_order
        self.events = events
        self.inputs = tuple(inputs)
        for source in self.inputs:
            attach = getattr(source, "attach", None)
            if attach is not None:
                attach(self)
        self.clock = HistoricalClock()
        #: keep every signal and order in memory (a backtest's result); paper/live store them
        self.record = record
        #: recorded signals as the strategy returned them (opening ones named on reading)
        self._signals: list[tuple[int, Signal]] = []
        self._record = SignalRecord(self.strategy_name, self._signals)
        self.orders: list[Order] = []
        self._counts = StepCounts()
        #: an operator paused the engine (paper/live): the strategy still sees every bar and
        #: positions are still marked and exited, but no signal reaches the risk gate or the
        #: broker; each is rejected with the reason ``paused`` (counted and published)
        self.paused = False

    @property
    def signals(self) -> SignalRecord:
        """Every recorded signal with its step time, each opening one carrying its id.

        The decision phase hands the id of a lone opening signal to the risk gate (it travels
        on the order) instead of copying the signal; the record names it when it is read.
        """
        return self._record

    @property
    def counts(self) -> StepCounts:
        """What went through the stages so far (a recording step counts its lists)."""
        counts = self._counts
        if self.record:
            counts.signals, counts.orders = len(self._signals), len(self.orders)
        return counts

    # -- the whole step --------------------------------------------------------------------
    def run(
        self,
        step: int,
        ts: int,
        bars: Sequence[BarUpdate],
        view: MarketView,
        *,
        opens: Sequence[tuple[str, float]] | None = None,
        volumes: Sequence[float] | None = None,
    ) -> dict[str, float]:
        """Run one step and return the closes it marked.

        ``step`` numbers the kernel's steps (fills and the equity ledger are keyed by it);
        ``view`` is already at the step (``view.step`` indexes the run's market data, which in
        paper/live is the held window). ``bars`` are the symbols' bars completing at this step;
        ``opens`` the opens still to apply (default: every bar's; paper applies an open as soon
        as the bar starts); ``volumes`` the bars' volumes, for the bar events.
        """
        events = self.events
        if events is not None:
            events.bars(ts, bars, volumes)
        closes = self.market_phase(step, ts, bars, opens)
        self.risk_phase(step, ts, closes)
        self.decide(step, ts, view, closes)
        if events is not None:
            events.after_step(step, ts, self.broker, self.portfolio)
        return closes

    def market_phase(
        self,
        step: int,
        ts: int,
        bars: Sequence[BarUpdate],
        opens: Sequence[tuple[str, float]] | None = None,
    ) -> dict[str, float]:
        """Fill waiting orders at the opens, then check exits on the ranges; return the closes.

        Every open of the step fills before any range of it is seen.
        """
        broker, positions = self.broker, self.portfolio.positions
        broker.step = step
        self._counts.steps += 1
        pending = broker.pending
        if pending:
            for symbol, price in opens if opens is not None else [(b[0], b[1]) for b in bars]:
                if symbol in pending:
                    broker.on_open(symbol, ts, price)
        closes: dict[str, float] = {}
        resting = getattr(broker, "resting", None)
        for symbol, o, h, low, c in bars:
            if symbol in positions or (resting and symbol in resting):
                broker.on_bar_range(symbol, ts, o, h, low, c)
            closes[symbol] = c
        return closes

    def risk_phase(self, step: int, ts: int, closes: Mapping[str, float]) -> bool:
        """The risk engine's per-bar checks; flattens everything on a black swan."""
        risk = self.risk
        if not risk.needs_bar_updates:
            return False
        if risk.on_bar(ts, closes, self.portfolio):
            self.black_swan(step, ts, closes)
            return True
        return False

    def black_swan(self, step: int, ts: int, closes: Mapping[str, float]) -> None:
        """The risk engine halted on a black swan: cancel waiting orders, close everything."""
        self.broker.step = step
        count = self.broker.flatten(ts, closes)
        logger.warning("black swan: flattening %d position(s)", count)

    def decide(self, step: int, ts: int, view: MarketView, closes: Mapping[str, float]) -> None:
        """Update the side inputs, call the strategy on the completed step, send its signals on."""
        for source in self.inputs:
            source.update(view)
        strategy = self.strategy
        try:
            signals = strategy.on_bar(view, self.portfolio)
        except StrategyError:
            raise
        except Exception as exc:
            raise strategy_error(strategy, exc, ts) from exc
        if signals:
            self.submit(signals, step, ts, view, closes, math.nan)

    # -- the decision phase ----------------------------------------------------------------
    def submit(
        self,
        signals: Sequence[Signal],
        step: int,
        ts: int,
        view: MarketView,
        closes: Mapping[str, float] | None,
        close: float,
    ) -> None:
        """Signals of one step -> ids -> enrichment -> risk gate -> broker.

        The order's reference price is the signal symbol's close in ``closes`` or, for a
        single-symbol run, ``close``.
        """
        broker, counts = self.broker, self._counts
        broker.step = step
        self.clock.advance_to(ts)
        record, events = self.record, self.events
        if len(signals) == 1 and events is None and self.enrichment is None and not self.paused:
            # the common case: one signal straight to the risk gate. An opening signal's id
            # travels on the order (no copy of the signal); the record names it when read.
            signal = signals[0]
            pid = None
            if signal.action is not _CLOSE and signal.position_id is None:
                # core.signal.signal_id's format, inlined on the hot path (a test holds them equal)
                pid = f"{self.strategy_name}:{signal.symbol}:{ts}"
            if record:
                self._signals.append((ts, signal))
            else:
                counts.signals += 1
            price = close if closes is None else closes.get(signal.symbol, math.nan)
            decision = self.risk.check(signal, self.portfolio, view, pid, ts, price)
            if isinstance(decision, Rejection):
                counts.rejected[decision.reason] += 1
                return
            if pid is not None and decision.position_id is None and not decision.reduce_only:
                # a gate that built the entry without the id: it still names its position
                decision = replace(decision, position_id=pid)
            if record:
                self.orders.append(decision)
            else:
                counts.orders += 1
            broker.submit_order(decision, ts, price)
            if self.on_order is not None:
                self.on_order(decision)
            return
        signals = self.with_ids(signals, ts)
        if record:
            recorded = self._signals
            for signal in signals:
                recorded.append((ts, signal))
        else:
            counts.signals += len(signals)
        if events is not None:
            events.signals(ts, signals, lambda symbol: reference_close(symbol, closes, close, view))
        if self.enrichment is not None:
            kept = self.enrichment.enrich(signals, view)
            counts.dropped += len(signals) - len(kept)
            if events is not None:
                events.enriched(ts, signals, kept, getattr(self.enrichment, "records", None))
            signals = kept
        if self.paused:
            self.refuse_paused(signals, ts)
            return
        check, portfolio, on_order = self.risk.check, self.portfolio, self.on_order
        orders = self.orders
        for signal in signals:
            price = close if closes is None else closes.get(signal.symbol, math.nan)
            decision = check(signal, portfolio, view, None, ts, price)  # view: the MarketContext
            if events is not None:
                events.decision(ts, signal, decision)
            if decision.__class__ is Rejection:
                counts.rejected[decision.reason] += 1  # type: ignore[union-attr]
                continue
            if record:
                orders.append(decision)  # type: ignore[arg-type]
            else:
                counts.orders += 1
            broker.submit_order(decision, ts, price)  # type: ignore[arg-type]
            if on_order is not None:
                on_order(decision)  # type: ignore[arg-type]

    def refuse_paused(self, signals: Sequence[Signal], ts: int) -> None:
        """While paused: every signal is rejected (reason ``paused``), none becomes an order."""
        events = self.events
        for signal in signals:
            rejection = Rejection(
                ts, signal.symbol, "paused", "engine paused by an operator", "control"
            )
            self._counts.rejected["paused"] += 1
            if events is not None:
                events.decision(ts, signal, rejection)

    def with_ids(self, signals: Sequence[Signal], ts: int) -> Sequence[Signal]:
        """Give every opening signal without a position id its :func:`signal_id`."""
        if len(signals) == 1:  # the common case, without the bookkeeping for repeats
            signal = signals[0]
            if signal.action is SignalAction.CLOSE or signal.position_id is not None:
                return signals
            return (signal.with_position_id(f"{self.strategy_name}:{signal.symbol}:{ts}"),)
        out = list(signals)
        seen: dict[str, int] = {}
        for n, signal in enumerate(signals):
            if signal.action is SignalAction.CLOSE or signal.position_id is not None:
                continue
            k = seen.get(signal.symbol, 0)
            seen[signal.symbol] = k + 1
            out[n] = signal.with_position_id(signal_id(self.strategy_name, signal.symbol, ts, k))
        return out
