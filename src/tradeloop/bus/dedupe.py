"""``SeenIds``: the ids a consumer has already handled (messages arrive at least once).

A step's events are published again after a crash between the state commit and the publish
(see :mod:`tradeloop.engine.events`); a consumer asks :meth:`SeenIds.first` before handling a
message and skips it when the id came before. The most recent ``capacity`` ids are kept (a
re-publish is the last step's messages, so a bounded memory suffices); an empty id (a message
not from a step) is always handled.
"""

from __future__ import annotations

from collections import deque

__all__ = ["SeenIds"]


class SeenIds:
    """The last ``capacity`` message ids seen.

    >>> seen = SeenIds()
    >>> seen.first("run:t:1:0"), seen.first("run:t:1:0"), seen.first(""), seen.first("")
    (True, False, True, True)
    """

    def __init__(self, capacity: int = 100_000) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._ids: set[str] = set()
        self._order: deque[str] = deque()
        #: messages skipped as already seen
        self.skipped = 0

    def first(self, event_id: str) -> bool:
        """True the first time ``event_id`` is seen (then remembered); False after."""
        if not event_id:
            return True
        if event_id in self._ids:
            self.skipped += 1
            return False
        self._ids.add(event_id)
        self._order.append(event_id)
        if len(self._order) > self.capacity:
            self._ids.discard(self._order.popleft())
        return True
