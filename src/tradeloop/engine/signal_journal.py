"""The learning loop's record: every signal a strategy emitted, executed or rejected.

:class:`SignalJournal` is a bus subscriber, like the feedback loop: it listens to the step's own
events (``tradeloop.signals``, ``tradeloop.signals.enriched``, ``tradeloop.risk.decisions``,
``tradeloop.trades``) and writes one journal row per signal to the analytics store: when and
what (strategy, symbol, action, tag, size, confidence), whether it was executed, and if not
why (the risk gate's reason and detail, or ``model`` when the ML model dropped it); the P&L
of the trade an executed entry opened is added when that trade closes. The step publishes the
same events in backtest, paper and live, so one recorder serves every mode; it never reaches
into the kernel.

Rows are keyed ``(source, signal_key)`` (the signal id for entries; time, symbol, action and a
sequence for exits) and inserted idempotently, so a restarted run journals nothing twice.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any

from pydantic import BaseModel

from tradeloop.bus.base import MessageBus
from tradeloop.bus.dedupe import SeenIds
from tradeloop.bus.events import (
    EnrichedSignalEvent,
    RiskDecisionEvent,
    SignalEvent,
    TradeEvent,
)
from tradeloop.store.analytics import AnalyticsStore

__all__ = ["JOURNAL_TOPICS", "SignalJournal"]

logger = logging.getLogger(__name__)

JOURNAL_TOPICS = (
    "tradeloop.signals",
    "tradeloop.signals.enriched",
    "tradeloop.risk.decisions",
    "tradeloop.trades",
)


class SignalJournal:
    """Journal every signal of one run (see the module docstring).

    Parameters
    ----------
    store
        The analytics store (the journal table).
    bus
        The run's bus.
    source
        The run's id (the rows' ``source``).
    mode
        ``backtest``, ``paper`` or ``live``.
    batch
        Rows held before a write (a flush also happens on :meth:`detach`).
    max_delay_s
        Also write when this many seconds passed since the last write (None: only by count).
        A live loop bounds what a killed process loses this way without paying a store write
        per signal.
    """

    def __init__(
        self,
        store: AnalyticsStore,
        bus: MessageBus,
        source: str,
        mode: str,
        *,
        batch: int = 256,
        max_delay_s: float | None = None,
    ) -> None:
        self.store = store
        self.bus = bus
        self.source = source
        self.mode = mode
        self.batch = max(1, batch)
        self.max_delay_s = max_delay_s
        self._flushed_at = time.monotonic()
        #: signals of the current step waiting for their decision, oldest first
        self._waiting: deque[dict[str, Any]] = deque()
        self._rows: list[dict[str, Any]] = []
        self._outcomes: list[dict[str, Any]] = []
        self._seq = 0
        #: step events already handled (a step's events can be delivered again)
        self.seen = SeenIds()
        self.signals = 0
        self.executed = 0
        self.rejected = 0
        self.outcomes = 0
        self.written = 0

    def attach(self) -> None:
        """Subscribe to the run's own step events."""
        for topic in JOURNAL_TOPICS:
            self.bus.subscribe_local(topic, self.on_event)

    def detach(self) -> None:
        """Stop listening and write what is held."""
        for topic in JOURNAL_TOPICS:
            self.bus.unsubscribe(topic, self.on_event)
        self.flush()

    def on_event(self, message: BaseModel) -> None:
        """One step event (a bus handler); an event id seen before is skipped."""
        if not self.seen.first(getattr(message, "event_id", "")):
            return
        if isinstance(message, SignalEvent):
            self._signal(message)
        elif isinstance(message, EnrichedSignalEvent):
            if not message.kept:
                self._decide(message.signal_id, message.symbol, False, "model", None)
        elif isinstance(message, RiskDecisionEvent):
            self._decide(
                message.signal_id, message.symbol, message.accepted, message.reason, message.detail
            )
        elif isinstance(message, TradeEvent):
            self._outcomes.append(
                {
                    "source": self.source,
                    "signal_id": message.signal_id,
                    "pnl": message.pnl,
                    "pnl_pct": message.pnl_pct,
                    "exit_ts": message.exit_ts,
                }
            )
            self.outcomes += 1
            self._maybe_flush(len(self._outcomes))

    def _signal(self, event: SignalEvent) -> None:
        self._seq += 1
        sid = event.signal_id
        strategy = sid.split(":", 1)[0] if sid else event.strategy
        self._waiting.append(
            {
                "source": self.source,
                "signal_key": sid
                or _without_run(event.event_id)
                or f"{event.ts}:{event.symbol}:{event.action}:{self._seq}",
                "signal_id": sid,
                "mode": self.mode,
                "strategy": strategy,
                "ts": event.ts,
                "symbol": event.symbol,
                "action": event.action,
                "tag": event.tag,
                "size": event.size,
                "confidence": event.confidence,
                "executed": False,
                "reason": None,
                "detail": None,
                "pnl": None,
                "pnl_pct": None,
                "exit_ts": None,
            }
        )
        self.signals += 1

    def _decide(
        self,
        signal_id: str | None,
        symbol: str,
        accepted: bool,
        reason: str | None,
        detail: str | None,
    ) -> None:
        for i, row in enumerate(self._waiting):
            if row["signal_id"] == signal_id and row["symbol"] == symbol:
                del self._waiting[i]
                row["executed"] = accepted
                row["reason"] = None if accepted else (reason or "rejected")
                row["detail"] = detail
                if accepted:
                    self.executed += 1
                else:
                    self.rejected += 1
                self._rows.append(row)
                self._maybe_flush(len(self._rows))
                return
        logger.debug("journal: a decision for %s %s without its signal", symbol, signal_id)

    def _maybe_flush(self, held: int) -> None:
        if held >= self.batch or (
            self.max_delay_s is not None and time.monotonic() - self._flushed_at >= self.max_delay_s
        ):
            self.flush()

    def flush(self) -> None:
        """Write held rows, then outcomes (an outcome updates a stored row), to the store."""
        self._flushed_at = time.monotonic()
        if self._rows:
            self.written += self.store.insert_journal(self._rows)
            self._rows = []
        if self._outcomes:
            self.store.journal_outcomes(self._outcomes)
            self._outcomes = []

    def counts(self) -> dict[str, int]:
        """Signals seen, executed, rejected, outcomes and rows written."""
        return {
            "journal_signals": self.signals,
            "journal_executed": self.executed,
            "journal_rejected": self.rejected,
            "journal_outcomes": self.outcomes,
            "journal_rows": self.written,
        }


def _without_run(event_id: str) -> str:
    """``<topic>:<ts>:<n>`` of an event id ``<run>:<topic>:<ts>:<n>``: the journal is kept per
    run, and the same signal keeps the same key in every run on the same bars (paper, live,
    a restart)."""
    return ":".join(event_id.rsplit(":", 3)[1:]) if event_id else ""
