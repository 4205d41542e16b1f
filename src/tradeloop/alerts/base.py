"""The alert value, the :class:`Alerter` port, delivery counters and the fan-out alerter.

An alerter tells a human what the engine did (started, opened, closed, failed, stopped). It is
a side channel: :meth:`Alerter.send` never blocks the trading loop and never raises, whatever
the transport does.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, Protocol, get_args, runtime_checkable

from tradeloop.core.errors import ConfigError, did_you_mean

__all__ = [
    "ALERT_KINDS",
    "Alert",
    "AlertKind",
    "Alerter",
    "AlerterStats",
    "FieldValue",
    "MultiAlerter",
    "StatsCounter",
]

AlertKind = Literal["start", "open", "close", "error", "shutdown", "warning", "info"]
ALERT_KINDS: tuple[str, ...] = get_args(AlertKind)
FieldValue = str | float | int

_log = logging.getLogger("tradeloop.alerts")


@dataclass(frozen=True, slots=True)
class Alert:
    """One message for a human.

    Attributes
    ----------
    kind
        One of ``start``, ``open``, ``close``, ``error``, ``shutdown``, ``warning``, ``info``.
    title
        Short headline.
    message
        Longer free text (may be empty).
    fields
        Ordered name -> value pairs (shown as a table by rich transports). Copied and frozen.
    ts
        UTC nanoseconds since the epoch; defaults to now.

    Raises
    ------
    ConfigError
        If ``kind`` is not a known kind.
    """

    kind: AlertKind
    title: str
    message: str = ""
    fields: Mapping[str, FieldValue] = field(default_factory=dict, hash=False)
    ts: int = field(default_factory=time.time_ns)

    def __post_init__(self) -> None:
        if self.kind not in ALERT_KINDS:
            raise ConfigError(
                f"unknown alert kind {self.kind!r}; expected one of {', '.join(ALERT_KINDS)}."
                + did_you_mean(str(self.kind), ALERT_KINDS)
            )
        object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))


@dataclass(frozen=True, slots=True)
class AlerterStats:
    """Delivery counters of an alerter (a snapshot).

    Attributes
    ----------
    sent
        Alerts delivered.
    failed
        Alerts given up on after the transport refused them or kept failing.
    dropped
        Alerts never attempted (queue full, or still queued when the alerter closed).
    """

    sent: int = 0
    failed: int = 0
    dropped: int = 0

    def __add__(self, other: AlerterStats) -> AlerterStats:
        return AlerterStats(
            self.sent + other.sent, self.failed + other.failed, self.dropped + other.dropped
        )


class StatsCounter:
    """Thread-safe mutable counters behind :class:`AlerterStats` (for alerter implementations)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sent = 0
        self._failed = 0
        self._dropped = 0

    def add(self, *, sent: int = 0, failed: int = 0, dropped: int = 0) -> int:
        """Add to the counters; return the new ``dropped`` total."""
        with self._lock:
            self._sent += sent
            self._failed += failed
            self._dropped += dropped
            return self._dropped

    def snapshot(self) -> AlerterStats:
        """Return the current counts."""
        with self._lock:
            return AlerterStats(self._sent, self._failed, self._dropped)


@runtime_checkable
class Alerter(Protocol):
    """Port: somewhere alerts go.

    Implementations must make :meth:`send` return within microseconds and never raise, and
    :meth:`close` return within ``timeout_s``.
    """

    def send(self, alert: Alert) -> None:
        """Hand ``alert`` over for delivery (non-blocking, never raises)."""
        ...

    def close(self, timeout_s: float = 5.0) -> None:
        """Deliver what can be delivered within ``timeout_s``, then release resources."""
        ...

    @property
    def stats(self) -> AlerterStats:
        """Delivery counters so far."""
        ...


class MultiAlerter:
    """Fan every alert out to several alerters.

    A failing member never stops the others; :attr:`stats` is the sum of the members'.

    Parameters
    ----------
    alerters
        The members, in delivery order.
    """

    def __init__(self, alerters: Iterable[Alerter]) -> None:
        self.alerters: tuple[Alerter, ...] = tuple(alerters)

    def send(self, alert: Alert) -> None:
        """Send ``alert`` to every member."""
        for alerter in self.alerters:
            try:
                alerter.send(alert)
            except Exception:  # a member broke its contract; the others still get it
                _log.exception("alerter %r raised on send", alerter)

    def close(self, timeout_s: float = 5.0) -> None:
        """Close the members one after the other, sharing the ``timeout_s`` budget."""
        deadline = time.monotonic() + timeout_s
        for alerter in self.alerters:
            try:
                alerter.close(max(0.0, deadline - time.monotonic()))
            except Exception:
                _log.exception("alerter %r raised on close", alerter)

    @property
    def stats(self) -> AlerterStats:
        """Sum of the members' counters."""
        total = AlerterStats()
        for alerter in self.alerters:
            total = total + alerter.stats
        return total
