"""Closing the loop in a running process: closed trades -> feedback -> adapted weights.

:class:`FeedbackLoop` subscribes to the step's ``tradeloop.trades`` events. Each closed trade
becomes one :class:`~tradeloop.signals.models.TradeFeedback` keyed by the id of the signal
that opened it (source: the run id), written to the analytics store, which ignores a
signal id it already has (so a restarted run that re-derives feedback from its stored trades,
or receives its last step's events again, loses and doubles nothing); an event id seen before
is skipped. Each time the run's stored outcomes reach a multiple of
``every_outcomes`` (counted over the whole run, so a restarted run adapts at the same trades
as an uninterrupted one), or ``every_s`` seconds pass without that, the adaptive engine
updates the component weights at the data's time; a new version is pushed to the
liquidation-zone source at once (the running strategy sees it on its next bar) and broadcast
on the bus for other processes.

The component of a trade is the leverage tier of the zone it traded when its tag is
``zone:<component>`` (the ``zone_magnet`` example), otherwise the strategy's name (stored,
never adapted).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from pydantic import BaseModel

from tradeloop.bus.base import MessageBus
from tradeloop.bus.dedupe import SeenIds
from tradeloop.bus.events import TradeEvent
from tradeloop.core.position import Trade
from tradeloop.engine.inputs import ZoneSource
from tradeloop.signals.adaptive import AdaptClock, AdaptiveConfig, AdaptiveEngine, AdaptSchedule
from tradeloop.signals.feedback import trades_to_feedback
from tradeloop.signals.models import AdaptiveWeights, TradeFeedback, symbol_key
from tradeloop.store.analytics import AnalyticsStore

__all__ = ["FeedbackLoop", "component_of"]

logger = logging.getLogger(__name__)


def component_of(tag: str, strategy: str) -> str:
    """The weight component a trade's outcome counts for.

    >>> component_of("zone:lev_25x", "zone_magnet"), component_of("sma_cross_up", "sma_cross")
    ('lev_25x', 'sma_cross')
    """
    if tag.startswith("zone:") and len(tag) > 5:
        return tag[5:]
    return strategy


class FeedbackLoop:
    """Feedback and adaptation for one running loop (see the module docstring).

    Parameters
    ----------
    store
        The analytics store (this process is its only writer).
    bus
        The run's bus (trade events in, weight versions out).
    run_id
        The feedback rows' source.
    defaults
        Default weight per component (the zone model's leverage tiers).
    schedule
        When to adapt.
    zones
        The running zone source, given every new weight version.
    weights_topic
        Where weight versions are broadcast.
    config
        Adaptation settings.
    """

    def __init__(
        self,
        store: AnalyticsStore,
        bus: MessageBus,
        run_id: str,
        defaults: Mapping[str, float],
        *,
        schedule: AdaptSchedule | None = None,
        zones: ZoneSource | None = None,
        weights_topic: str = "liquidation:weights",
        config: AdaptiveConfig | None = None,
    ) -> None:
        self.store = store
        self.bus = bus
        self.run_id = run_id
        self.schedule = schedule or AdaptSchedule()
        self.zones = zones
        self.weights_topic = weights_topic
        self.adaptive = AdaptiveEngine(store, defaults, config, now_ns=0)
        self.received = 0
        #: trade events already handled (a step's events can be delivered again)
        self.seen = SeenIds()
        self.stored = 0
        self.duplicates = 0
        #: weight versions made by this process
        self.weight_versions = 0
        self.adaptations = 0
        #: the run's stored outcomes (all processes, restarts included)
        self._total = self._run_rows()
        self.clock = AdaptClock(self.schedule, self._total)
        self._data_now = 0
        if zones is not None:
            zones.weights = self.adaptive.current()

    @property
    def version(self) -> int:
        """The current weight version."""
        return self.adaptive.version

    def attach(self) -> None:
        """Subscribe to the run's own closed trades (not another process's)."""
        self.bus.subscribe_local("tradeloop.trades", self.on_trade)

    def detach(self) -> None:
        """Stop listening."""
        self.bus.unsubscribe("tradeloop.trades", self.on_trade)

    # -- intake --------------------------------------------------------------------------------
    def on_trade(self, message: BaseModel) -> None:
        """A closed trade from the step (a bus handler)."""
        if not isinstance(message, TradeEvent):
            raise TypeError(f"expected TradeEvent, got {type(message).__name__}")
        if not self.seen.first(message.event_id):
            return
        self.received += 1
        row = TradeFeedback(
            signal_id=message.signal_id,
            symbol=symbol_key(message.symbol),
            side=message.side,
            entry_price=message.entry_price,
            exit_price=message.exit_price,
            entry_ts=message.entry_ts,
            exit_ts=message.exit_ts,
            pnl=message.pnl,
            pnl_pct=message.pnl_pct,
            source=self.run_id,
            component=component_of(message.tag, message.strategy),
        )
        self._store([row.model_dump()], message.exit_ts)

    def reconcile(self, trades: Iterable[Trade], strategy: str) -> int:
        """Feedback for closed trades the state store holds (after a restart); returns the
        rows that were missing (a crash between the step's commit and its feedback)."""
        closed = [t for t in trades if t.exit_ts is not None and t.exit_price is not None]
        rows = [
            r.model_dump()
            for r in trades_to_feedback(
                closed, source=self.run_id, component=lambda t: component_of(t.tag, strategy)
            )
        ]
        last = max((t.exit_ts for t in closed if t.exit_ts is not None), default=0)
        if not rows:
            return 0
        before = self.stored
        self._store(rows, last, count_duplicates=False)
        added = self.stored - before
        if added:
            logger.info("feedback reconciled: %d closed trade(s) had no feedback row", added)
        return added

    def _run_rows(self) -> int:
        with self.store.session() as con:
            row = con.execute(
                "SELECT count(*) FROM signal_feedback WHERE source = ?", [self.run_id]
            ).fetchone()
        return int(row[0]) if row else 0

    def _store(
        self, rows: list[dict[str, object]], ts: int, *, count_duplicates: bool = True
    ) -> None:
        new = self.store.insert_feedback(rows)
        self.stored += new
        if count_duplicates:
            self.duplicates += len(rows) - new
        self._total += new
        self._data_now = max(self._data_now, ts)
        self.maybe_adapt()

    # -- adaptation ----------------------------------------------------------------------------
    def maybe_adapt(self, now_ns: int | None = None) -> bool:
        """Adapt when :class:`~tradeloop.signals.adaptive.AdaptClock` says so (the run's
        outcomes reached a new multiple of ``every_outcomes``, or ``every_s`` seconds passed);
        True when a new weight version was made."""
        if now_ns is not None:
            self._data_now = max(self._data_now, now_ns)
        if not self.clock.due(self._total):
            return False
        return self.adapt()

    def adapt(self) -> bool:
        """Update the weights at the data's time now; True when they changed."""
        self.adaptations += 1
        self.clock.mark(self._total)
        change = self.adaptive.update(self._data_now)
        if change is None:
            return False
        self.weight_versions += 1
        if self.zones is not None:
            self.zones.weights = dict(change.weights)
        self.bus.publish(
            self.weights_topic,
            AdaptiveWeights(
                version=change.version,
                weights=change.weights,
                reason=change.reason,
                ts=self._data_now,
            ),
        )
        logger.info(
            "weights v%d: %s", change.version, change.reason, extra={"version": change.version}
        )
        return True

    def counts(self) -> dict[str, int]:
        """Feedback and weight counters for the stage report."""
        return {
            "feedback_received": self.received,
            "feedback_stored": self.stored,
            "feedback_duplicates": self.duplicates,
            "adaptations": self.adaptations,
            "weight_versions": self.weight_versions,
            "weight_version": self.version,
        }
