"""The :class:`MessageBus` port and the in-process default."""

from __future__ import annotations

import logging
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from pydantic import BaseModel

from tradeloop.bus.codec import DeadLetter

__all__ = ["Handler", "InProcessBus", "MessageBus"]

log = logging.getLogger(__name__)

Handler = Callable[[BaseModel], None]


@runtime_checkable
class MessageBus(Protocol):
    """Publish typed messages to topics; deliver them to subscribed handlers.

    ``publish`` is synchronous and must be called from the thread that owns the bus (the
    kernel's thread, or the asyncio loop's thread for :class:`~tradeloop.bus.RedisBus`).
    """

    def publish(self, topic: str, message: BaseModel) -> None:
        """Deliver ``message`` to the subscribers of ``topic``."""
        ...

    def subscribe(self, topic: str, handler: Handler) -> None:
        """Call ``handler`` with each message published to ``topic``."""
        ...

    def subscribe_local(self, topic: str, handler: Handler) -> None:
        """Call ``handler`` with each message this process publishes to ``topic`` (never
        with another process's)."""
        ...

    def unsubscribe(self, topic: str, handler: Handler) -> None:
        """Stop calling ``handler`` for ``topic``."""
        ...


class InProcessBus:
    """Synchronous in-process bus (the default; no server).

    A handler that raises does not stop delivery to the others: the failure becomes a
    :class:`DeadLetter` in :attr:`dead_letters` (bounded, newest kept).

    Parameters
    ----------
    dead_letter_max
        How many dead letters to keep.
    """

    def __init__(self, dead_letter_max: int = 1000) -> None:
        self._handlers: dict[str, list[Handler]] = defaultdict(list)
        self.dead_letters: deque[DeadLetter] = deque(maxlen=dead_letter_max)
        self.published = 0

    def publish(self, topic: str, message: BaseModel) -> None:
        """Call every handler of ``topic`` in subscription order."""
        self.published += 1
        for handler in tuple(self._handlers.get(topic, ())):
            try:
                handler(message)
            except Exception as exc:  # a failing subscriber must not break the publisher
                log.exception("bus handler failed", extra={"topic": topic})
                self.dead_letters.append(
                    DeadLetter(topic=topic, raw=message.model_dump_json(), error=repr(exc))
                )

    def subscribe(self, topic: str, handler: Handler) -> None:
        """Add ``handler`` for ``topic``."""
        self._handlers[topic].append(handler)

    def subscribe_local(self, topic: str, handler: Handler) -> None:
        """Add ``handler`` for ``topic`` (every subscription of this bus is local)."""
        self.subscribe(topic, handler)

    def unsubscribe(self, topic: str, handler: Handler) -> None:
        """Remove ``handler`` from ``topic`` (no error when absent)."""
        handlers = self._handlers.get(topic, [])
        if handler in handlers:
            handlers.remove(handler)

    def has_subscribers(self, topic: str) -> bool:
        """True when ``topic`` has at least one local handler."""
        return bool(self._handlers.get(topic))
