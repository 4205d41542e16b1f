"""Publishing the step's events (:mod:`tradeloop.bus.events`) on a :class:`MessageBus`.

:class:`StepEvents` is given to the :class:`~tradeloop.engine.step.Step` of a run that has a
bus; without one the step builds no event at all (a backtest pays nothing). The step calls
it at each stage; fills, closed trades and equity are collected after every step (and, in
paper and live, after every price update that filled or closed something).

Every message gets its ``event_id`` here (``<run>:<topic>:<ts>:<n>``, see
:mod:`tradeloop.bus.events`). In paper and live (``deferred``) a step's messages are held until
the state store has committed the step, and :meth:`StepEvents.export_state` (stored with the
step, in the same transaction) holds them as the step's outbox: a process that dies between
the commit and the publish publishes them after its restart (:meth:`StepEvents.restore_state`).
Delivery is therefore at least once; consumers skip ids they have seen.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from tradeloop.bus.base import MessageBus
from tradeloop.bus.events import (
    TOPICS,
    BarEvent,
    EnrichedSignalEvent,
    EquityEvent,
    FillEvent,
    OrderEvent,
    RegimeEvent,
    RiskDecisionEvent,
    SignalEvent,
    TradeEvent,
)
from tradeloop.core.orders import Order
from tradeloop.core.portfolio import Portfolio
from tradeloop.core.rejection import Rejection
from tradeloop.core.signal import Signal
from tradeloop.execution.broker import Broker

__all__ = ["StepEvents"]


class StepEvents:
    """Turns what a step did into bus messages.

    Parameters
    ----------
    bus
        Where to publish.
    run_id
        The run's id (every message carries it).
    strategy
        The strategy's name (signals and trades carry it).
    timeframe
        The run's base timeframe (bars carry it).
    deferred
        Hold the messages until :meth:`flush` (paper/live publish a step only after the state
        store has committed it, so a restarted run never publishes a step twice).
    """

    def __init__(
        self,
        bus: MessageBus,
        run_id: str,
        strategy: str,
        timeframe: str,
        *,
        deferred: bool = False,
    ) -> None:
        self.bus = bus
        self.deferred = deferred
        self._held: list[tuple[str, BaseModel]] = []
        self.run_id = run_id
        self.strategy = strategy
        self.timeframe = timeframe
        self._fills_seen = 0
        self._trades_seen = 0
        #: per topic: the ``ts`` of its last message and how many it had at that ``ts``
        self._last: dict[str, tuple[int, int]] = {}
        #: messages published, by topic
        self.counts: dict[str, int] = {}

    def _publish(self, topic: str, message: BaseModel) -> None:
        ts = int(getattr(message, "ts", 0))
        last_ts, n = self._last.get(topic, (ts, 0))
        n = n if last_ts == ts else 0
        self._last[topic] = (ts, n + 1)
        message = message.model_copy(update={"event_id": f"{self.run_id}:{topic}:{ts}:{n}"})
        if self.deferred:
            self._held.append((topic, message))
            return
        self.bus.publish(topic, message)
        self.counts[topic] = self.counts.get(topic, 0) + 1

    def flush(self) -> int:
        """Publish the held messages (deferred mode); returns how many."""
        held, self._held = self._held, []
        publish, counts = self.bus.publish, self.counts
        for topic, message in held:
            publish(topic, message)
            counts[topic] = counts.get(topic, 0) + 1
        return len(held)

    @property
    def pending(self) -> tuple[tuple[str, BaseModel], ...]:
        """The held messages (deferred mode), oldest first: the outbox not yet published."""
        return tuple(self._held)

    def export_state(self) -> dict[str, Any]:
        """The id counters and the outbox (the held messages), stored with the step."""
        return {
            "last": {t: list(v) for t, v in self._last.items()},
            "outbox": [(t, m.model_dump(mode="json")) for t, m in self._held],
        }

    def restore_state(self, state: Mapping[str, Any]) -> int:
        """After a restore: the id counters, and the stored outbox held again (published with
        the next step: consumers are attached by then); returns how many messages."""
        self._last = {t: (int(v[0]), int(v[1])) for t, v in state.get("last", {}).items()}
        held = [(t, TOPICS[t].model_validate(m)) for t, m in state.get("outbox", [])]
        self._held = held + self._held
        return len(held)

    def resume(self, fills: int, trades: int) -> None:
        """After a restore: the fills and closed trades already published before."""
        self._fills_seen, self._trades_seen = fills, trades

    # -- stages --------------------------------------------------------------------------------
    def regime(self, ts: int, symbol: str, state: Any, model: str = "") -> None:
        """The regime after the step's bar (a
        :class:`~tradeloop.ml.regimes.transitions.RegimeState`)."""
        conf = state.confidence
        self._publish(
            "tradeloop.regimes",
            RegimeEvent(
                run=self.run_id,
                ts=ts,
                symbol=symbol,
                model=model,
                regime=state.label,
                detected=state.detected,
                confidence=conf if math.isfinite(conf) else None,
                exposure=state.exposure,
                target=state.target,
            ),
        )

    def signals(
        self,
        ts: int,
        signals: Sequence[Signal],
        reference: Callable[[str], float] | None = None,
    ) -> None:
        """The strategy's signals (with their ids). A stop or target given as a distance is
        published as the price it is placed at: around ``reference(symbol)``, the close the
        order is made at (:func:`~tradeloop.engine.step.reference_close`); None without one."""
        for s in signals:
            if s.stop_loss_pct is None and s.take_profit_pct is None:
                stop_loss, take_profit = s.stop_loss, s.take_profit
            else:
                price = reference(s.symbol) if reference is not None else math.nan
                try:
                    stop_loss, take_profit = s.exit_levels(price)
                except ValueError:  # no close: the risk gate refuses the entry (no_price)
                    stop_loss = take_profit = None
            self._publish(
                "tradeloop.signals",
                SignalEvent(
                    run=self.run_id,
                    ts=ts,
                    strategy=self.strategy,
                    signal_id=s.position_id,
                    symbol=s.symbol,
                    action=s.action.value,  # type: ignore[arg-type]
                    size=s.size,
                    size_mode=s.size_mode.value,
                    stop_loss=stop_loss,
                    take_profit=take_profit,
                    trailing_stop=s.trailing_stop,
                    tag=s.tag,
                    confidence=s.confidence,
                ),
            )

    def enriched(
        self,
        ts: int,
        before: Sequence[Signal],
        kept: Sequence[Signal],
        records: Sequence[Any] | None = None,
    ) -> None:
        """Each signal through the model: its confidence, or dropped; ``records`` are the
        enrichment's per-entry findings (newest last), matched by signal id."""
        scored = {id(s): s for s in kept}
        by_key = {(s.symbol, s.action, s.position_id): s for s in kept}
        found: dict[str | None, Any] = {}
        if records:
            for record in itertools.islice(reversed(records), len(before)):
                found.setdefault(getattr(record, "signal_id", None), record)
        for s in before:
            out = scored.get(id(s)) or by_key.get((s.symbol, s.action, s.position_id))
            record = found.get(s.position_id) if s.position_id is not None else None
            self._publish(
                "tradeloop.signals.enriched",
                EnrichedSignalEvent(
                    run=self.run_id,
                    ts=ts,
                    signal_id=s.position_id,
                    symbol=s.symbol,
                    action=s.action.value,
                    confidence=out.confidence if out is not None else None,
                    kept=out is not None,
                    meta_confidence=_finite(getattr(record, "meta_confidence", None)),
                    toxicity=_finite(getattr(record, "toxicity", None)),
                    regime_weight=_finite(getattr(record, "regime_weight", None)),
                ),
            )

    def decision(self, ts: int, signal: Signal, decision: Order | Rejection) -> None:
        """The risk gate's answer, then the order when there is one."""
        rejected = isinstance(decision, Rejection)
        self._publish(
            "tradeloop.risk.decisions",
            RiskDecisionEvent(
                run=self.run_id,
                ts=ts,
                signal_id=signal.position_id,
                symbol=signal.symbol,
                accepted=not rejected,
                order_id=None if isinstance(decision, Rejection) else decision.id,
                reason=decision.reason if isinstance(decision, Rejection) else None,
                detail=decision.detail if isinstance(decision, Rejection) else None,
            ),
        )
        if isinstance(decision, Order):
            self._publish(
                "tradeloop.orders",
                OrderEvent(
                    run=self.run_id,
                    ts=ts,
                    order_id=decision.id,
                    signal_id=decision.position_id,
                    symbol=decision.symbol,
                    side=decision.side.value,
                    type=decision.type.value,
                    quantity=decision.quantity,
                    equity_fraction=decision.equity_fraction,
                    reduce_only=decision.reduce_only,
                    tag=decision.tag,
                ),
            )

    def bars(
        self,
        ts: int,
        bars: Sequence[tuple[str, float, float, float, float]],
        volumes: Sequence[float] | None = None,
    ) -> None:
        """The bars completed at the step."""
        for n, (symbol, o, h, low, c) in enumerate(bars):
            self._publish(
                "tradeloop.bars",
                BarEvent(
                    run=self.run_id,
                    ts=ts,
                    symbol=symbol,
                    timeframe=self.timeframe,
                    open=o,
                    high=h,
                    low=low,
                    close=c,
                    volume=volumes[n] if volumes is not None else None,
                ),
            )

    def fills_and_trades(self, ts: int, broker: Broker, portfolio: Portfolio) -> None:
        """Fills and closed trades since the last call."""
        fills = broker.fills()
        for f in fills[self._fills_seen :]:
            self._publish(
                "tradeloop.fills",
                FillEvent(
                    run=self.run_id,
                    ts=f.ts,
                    order_id=f.order_id,
                    symbol=f.symbol,
                    side=f.side.value,
                    quantity=f.quantity,
                    price=f.price,
                    fee=f.fee,
                    reason=f.reason,
                ),
            )
        self._fills_seen = len(fills)
        trades = portfolio.trades
        for t in trades[self._trades_seen :]:
            if t.exit_ts is None or t.exit_price is None:
                continue
            self._publish(
                "tradeloop.trades",
                TradeEvent(
                    run=self.run_id,
                    ts=t.exit_ts,
                    signal_id=t.id,
                    strategy=self.strategy,
                    symbol=t.symbol,
                    side="long" if t.direction > 0 else "short",
                    quantity=t.quantity,
                    entry_ts=t.entry_ts,
                    entry_price=t.entry_price,
                    exit_ts=t.exit_ts,
                    exit_price=t.exit_price,
                    pnl=t.pnl,
                    pnl_pct=t.pnl_pct,
                    fees=t.entry_fee + t.exit_fee,
                    exit_reason=t.exit_reason.value if t.exit_reason is not None else "",
                    tag=t.tag,
                ),
            )
        self._trades_seen = len(trades)

    def after_step(self, step: int, ts: int, broker: Broker, portfolio: Portfolio) -> None:
        """Fills, trades and the equity at the end of a step."""
        self.fills_and_trades(ts, broker, portfolio)
        self._publish(
            "tradeloop.equity",
            EquityEvent(
                run=self.run_id,
                ts=ts,
                step=step,
                equity=portfolio.equity,
                cash=portfolio.balance,
                open_positions=len(portfolio.positions),
            ),
        )


def _finite(value: float | None) -> float | None:
    """``value`` as a JSON-safe float (NaN and infinities become None)."""
    return float(value) if value is not None and math.isfinite(value) else None
