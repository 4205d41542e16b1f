"""Failover between a primary and a backup source of the same market (hot standby).

Both sources stream all the time. :class:`FailoverRouter` forwards the active source's
events and keeps the standby's recent events in a buffer; every trade and closed bar has a
key (trade id; bar open time), and a key is forwarded once, whichever source brought it. When
the active source stalls (no message for ``stall_s``) or reports a disconnect, the router
switches at once: it forwards the standby's buffered events the active one never delivered
(nothing lost), then the standby's live stream (nothing twice). The book continues from the
standby's own book (a snapshot of it is forwarded at the switch). Once the primary has been
healthy for ``recover_s`` the router switches back; every switch is logged and kept in
:attr:`FailoverRouter.switches`.

>>> r = FailoverRouter("a", "b", clock=lambda: 0.0)
>>> r.active
'a'
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from tradeloop.core.errors import ConfigError
from tradeloop.core.market_events import (
    BookDelta,
    BookSnapshot,
    MarketEvent,
    MarketTrade,
    StreamBar,
)
from tradeloop.data.stream.book import L2Book

__all__ = ["FailoverRouter", "Switch", "event_key"]

logger = logging.getLogger(__name__)


def event_key(event: MarketEvent) -> Hashable | None:
    """The identity of a trade or closed bar across sources (None: not de-duplicated)."""
    if isinstance(event, MarketTrade):
        return ("t", event.symbol, event.trade_id)
    if isinstance(event, StreamBar):
        return ("b", event.bar.symbol, event.bar.timeframe, event.bar.ts) if event.closed else None
    return None


@dataclass(frozen=True, slots=True)
class Switch:
    """One change of the active source.

    ``detected_at`` is when the router saw the cause (monotonic s), ``switched_at`` when the
    new source's first event (or buffered catch-up) was forwarded.
    """

    from_source: str
    to_source: str
    reason: str
    detected_at: float
    switched_at: float
    replayed: int

    @property
    def switch_ms(self) -> float:
        """Detection to takeover, in ms."""
        return (self.switched_at - self.detected_at) * 1e3


class FailoverRouter:
    """Routes the events of a primary and a backup source (see the module doc).

    Parameters
    ----------
    primary, backup
        Source names (as the events' ``venue`` / the sources' names).
    stall_s
        The active source is stalled after this long without a message.
    recover_s
        The primary must be healthy this long before the router switches back.
    buffer
        Standby events kept for a switch (oldest dropped first).
    clock
        Monotonic seconds.
    """

    def __init__(
        self,
        primary: str,
        backup: str,
        *,
        stall_s: float = 1.0,
        recover_s: float = 5.0,
        buffer: int = 50_000,
        seen: int = 200_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if primary == backup:
            raise ConfigError("failover needs two different sources")
        if stall_s <= 0 or recover_s < 0:
            raise ConfigError("stall_s must be > 0 and recover_s >= 0")
        self.primary = primary
        self.backup = backup
        self.active = primary
        self.stall_s = stall_s
        self.recover_s = recover_s
        self.clock = clock
        self._buffer: deque[tuple[str, MarketEvent]] = deque(maxlen=buffer)
        self._seen: set[Hashable] = set()
        self._seen_order: deque[Hashable] = deque()
        self._seen_max = seen
        self._last: dict[str, float] = {}
        self._healthy_since: dict[str, float | None] = {primary: None, backup: None}
        self._down: set[str] = set()
        self._books: dict[tuple[str, str], L2Book] = {}
        self.switches: list[Switch] = []
        self.forwarded = 0
        self.duplicates = 0

    def standby(self) -> str:
        """The source that is not active."""
        return self.backup if self.active == self.primary else self.primary

    # -- input ------------------------------------------------------------------------------
    def on_status(self, source: str, state: str) -> list[MarketEvent]:
        """A source's connection state changed; a ``disconnected``/``failed``/``stale``
        active source fails over at once. Returns events to forward."""
        now = self.clock()
        if state in ("disconnected", "failed", "stale"):
            self._down.add(source)
            self._healthy_since[source] = None
            if source == self.active:
                return self._switch(f"{source} {state}", now)
        elif state == "connected":
            self._down.discard(source)
            self._healthy_since[source] = now
        return []

    def offer(self, source: str, event: MarketEvent) -> list[MarketEvent]:
        """An event from ``source``; returns the events to forward (maybe none)."""
        now = self.clock()
        self._last[source] = now
        # a source that reported trouble stays down until it reports ``connected``: events
        # it still hands over (cached before it died) are data, not a sign of health
        if source not in self._down and self._healthy_since.get(source) is None:
            self._healthy_since[source] = now
        if isinstance(event, BookSnapshot | BookDelta):
            self._shadow(source, event)
        out: list[MarketEvent] = []
        if source != self.active:
            key = event_key(event)
            if key is None or key not in self._seen:
                self._buffer.append((source, event))
            out += self.check(now)
            return out
        out += self._forward(event)
        return out

    def check(self, now: float | None = None) -> list[MarketEvent]:
        """Stall detection and switching back; call it regularly (e.g. every 10 ms)."""
        now = self.clock() if now is None else now
        last = self._last.get(self.active)
        if last is not None and now - last > self.stall_s:
            return self._switch(f"{self.active} stalled {now - last:.3f}s", now)
        if self.active != self.primary and self.primary not in self._down:
            since = self._healthy_since.get(self.primary)
            plast = self._last.get(self.primary)
            if (
                since is not None
                and plast is not None
                and now - plast <= self.stall_s
                and now - since >= self.recover_s
            ):
                return self._switch("primary recovered", now, back=True)
        return []

    # -- internals --------------------------------------------------------------------------
    def _shadow(self, source: str, event: BookSnapshot | BookDelta) -> None:
        book = self._books.get((source, event.symbol))
        if book is None:
            book = self._books[(source, event.symbol)] = L2Book(source, event.symbol)
        if isinstance(event, BookSnapshot):
            book.apply_snapshot(event)
        else:
            book.apply_delta(event)

    def _forward(self, event: MarketEvent) -> list[MarketEvent]:
        key = event_key(event)
        if key is not None:
            if key in self._seen:
                self.duplicates += 1
                return []
            self._seen.add(key)
            self._seen_order.append(key)
            if len(self._seen_order) > self._seen_max:
                self._seen.discard(self._seen_order.popleft())
        self.forwarded += 1
        return [event]

    def _switch(self, reason: str, detected: float, back: bool = False) -> list[MarketEvent]:
        target = self.standby()
        last = self._last.get(target)
        if not back and (target in self._down or last is None or detected - last > self.stall_s):
            return []  # the standby is down or silent too: nowhere to go, stay and wait
        old, self.active = self.active, target
        out: list[MarketEvent] = []
        for (source, _symbol), book in self._books.items():
            if source == target and book.synced:
                out.append(book.snapshot())
        replayed = 0
        pending, self._buffer = list(self._buffer), deque(maxlen=self._buffer.maxlen)
        for source, event in pending:
            if source != target:
                continue
            if isinstance(event, BookSnapshot | BookDelta):
                continue  # the snapshot above holds them
            got = self._forward(event)
            replayed += len(got)
            out += got
        switch = Switch(old, target, reason, detected, self.clock(), replayed)
        self.switches.append(switch)
        log = logger.info if back else logger.warning
        log(
            "market data failover %s -> %s (%s): %d buffered event(s) replayed, %.3f ms",
            old, target, reason, replayed, switch.switch_ms,
        )  # fmt: skip
        return out
