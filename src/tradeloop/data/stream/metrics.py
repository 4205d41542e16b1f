"""Per-source stream quality metrics: messages, msgs/s, lag, gaps, outliers, duplicates,
out-of-order messages, malformed frames, resyncs and failovers.

:class:`StreamMetrics` keeps plain counters (read by the pipeline, published on the bus as
:class:`SourceQuality` snapshots) and mirrors them into prometheus-client objects registered
on a :class:`prometheus_client.CollectorRegistry` of the caller's choice (the API's
``/metrics`` registry, or a private one by default, so tests and several pipelines in one
process never collide).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["SourceQuality", "StreamMetrics"]

_COUNTERS = (
    "messages",
    "gaps",
    "outliers",
    "duplicates",
    "out_of_order",
    "malformed",
    "resyncs",
    "failovers",
)


@dataclass(slots=True)
class SourceQuality:
    """Counters and rates of one source (``venue`` plus an optional role, e.g. ``backup``)."""

    source: str
    messages: int = 0
    gaps: int = 0
    outliers: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    malformed: int = 0
    resyncs: int = 0
    failovers: int = 0
    lag_ms_last: float = 0.0
    lag_ms_max: float = 0.0
    msgs_per_s: float = 0.0
    _window_start: float = field(default=0.0, repr=False)
    _window_msgs: int = field(default=0, repr=False)


class StreamMetrics:
    """Quality metrics of every source of a pipeline.

    Parameters
    ----------
    registry
        Where the prometheus objects are registered (a private registry when None).
    rate_window_s
        Seconds over which msgs/s is measured.
    """

    def __init__(
        self, registry: CollectorRegistry | None = None, rate_window_s: float = 5.0
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.rate_window_s = rate_window_s
        self.sources: dict[str, SourceQuality] = {}
        self._counters = {
            name: Counter(
                f"tradeloop_stream_{name}",
                f"Market-data stream {name.replace('_', ' ')} per source",
                ["source"],
                registry=self.registry,
            )
            for name in _COUNTERS
        }
        self._lag = Gauge(
            "tradeloop_stream_lag_ms",
            "Last receive lag (our receive time minus venue time) per source, ms",
            ["source"],
            registry=self.registry,
        )
        self._rate = Gauge(
            "tradeloop_stream_messages_per_second",
            "Messages per second per source over the rate window",
            ["source"],
            registry=self.registry,
        )

    def source(self, name: str) -> SourceQuality:
        """The metrics of ``name`` (created on first use)."""
        q = self.sources.get(name)
        if q is None:
            q = self.sources[name] = SourceQuality(name, _window_start=time.monotonic())
        return q

    def count(self, name: str, counter: str, n: int = 1) -> None:
        """Add ``n`` to ``counter`` (one of messages, gaps, outliers, duplicates, out_of_order,
        malformed, resyncs, failovers) of source ``name``."""
        if n <= 0:
            return
        q = self.source(name)
        setattr(q, counter, getattr(q, counter) + n)
        self._counters[counter].labels(name).inc(n)
        if counter == "messages":
            q._window_msgs += n
            now = time.monotonic()
            span = now - q._window_start
            if span >= self.rate_window_s:
                q.msgs_per_s = q._window_msgs / span
                q._window_start, q._window_msgs = now, 0
                self._rate.labels(name).set(q.msgs_per_s)

    def lag(self, name: str, lag_ns: int) -> None:
        """Record the receive lag of the latest message of ``name``."""
        q = self.source(name)
        ms = lag_ns / 1e6
        q.lag_ms_last = ms
        q.lag_ms_max = max(q.lag_ms_max, ms)
        self._lag.labels(name).set(ms)
