"""``SharedWeights``: a publisher follows weights that another process adapts.

The feedback consumer is the only process that adapts weights and writes the analytics store.
It broadcasts every new version as an :class:`~tradeloop.signals.models.AdaptiveWeights`
message on the weights topic, which :class:`~tradeloop.bus.RedisBus` retains (the last message
is kept in Redis). A publisher in another process wraps a reader of that retained message in
:class:`SharedWeights` and passes it as ``SignalPublisher(weights=...)``: the weights are
re-read at most every ``refresh_s`` seconds, so a running publisher picks up new weights
without a restart and without touching the DuckDB file. Without Redis, :func:`store_weights`
reads the latest version from the analytics file instead (read-only, short-lived).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from pydantic import BaseModel

from tradeloop.signals.models import AdaptiveWeights
from tradeloop.store.analytics import AnalyticsStore

__all__ = ["RetainedReader", "SharedWeights", "WeightsReader", "bus_weights", "store_weights"]

log = logging.getLogger(__name__)

WeightsReader = Callable[[], AdaptiveWeights | None]
"""Returns the latest weight version, or None when there is none (yet)."""


class RetainedReader(Protocol):
    """A bus that keeps the last message of a topic (e.g. :class:`~tradeloop.bus.RedisBus`)."""

    def latest(self, topic: str) -> BaseModel | None:
        """Return the last message retained on ``topic``, or None."""
        ...


def bus_weights(bus: RetainedReader, topic: str) -> WeightsReader:
    """Return a reader of the weights retained on ``topic`` of ``bus``."""

    def read() -> AdaptiveWeights | None:
        message = bus.latest(topic)
        return message if isinstance(message, AdaptiveWeights) else None

    return read


def store_weights(store: AnalyticsStore) -> WeightsReader:
    """Return a reader of the latest weight version stored in ``store``."""

    def read() -> AdaptiveWeights | None:
        latest = store.weights()
        if latest is None:
            return None
        return AdaptiveWeights(
            version=int(latest["version"]),
            weights=dict(latest["weights"]),
            reason=str(latest["reason"]),
            ts=int(latest["ts"]),
        )

    return read


class SharedWeights:
    """Component weights that follow the adapting process, re-read every ``refresh_s``.

    Call the object to get the current weights (it is a ``SignalPublisher`` weights source).
    Components missing from a stored version keep their default. A failing read is logged once
    per outage and the last known weights stay in use.

    Parameters
    ----------
    read
        Returns the latest :class:`AdaptiveWeights` (see :func:`bus_weights`,
        :func:`store_weights`).
    defaults
        Weights until a version has been read.
    refresh_s
        Minimum seconds between two reads (0: read on every call).
    clock
        Monotonic clock in seconds.
    """

    def __init__(
        self,
        read: WeightsReader,
        defaults: Mapping[str, float],
        *,
        refresh_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if refresh_s < 0:
            raise ValueError(f"refresh_s must be >= 0, got {refresh_s}")
        self._read = read
        self.defaults = {k: float(v) for k, v in defaults.items()}
        self.refresh_s = refresh_s
        self._clock = clock
        self._next = -math.inf
        self._failing = False
        self.weights = dict(self.defaults)
        self.version = 0
        self.reads = 0
        self.changes = 0

    def refresh(self) -> bool:
        """Read the source now; return True when a new version was taken."""
        self.reads += 1
        try:
            latest = self._read()
        except Exception as exc:  # the source is another process's store or a server
            if not self._failing:
                log.warning(
                    "cannot read shared weights (%s); keeping version %d", exc, self.version
                )
            self._failing = True
            return False
        self._failing = False
        if latest is None or latest.version == self.version:
            return False
        self.weights = {**self.defaults, **latest.weights}
        self.version = latest.version
        self.changes += 1
        log.info("weights v%d taken: %s", latest.version, latest.reason)
        return True

    def __call__(self) -> dict[str, float]:
        """Return the current weights, re-reading the source when ``refresh_s`` has passed."""
        now = self._clock()
        if now >= self._next:
            self._next = now + self.refresh_s
            self.refresh()
        return self.weights
