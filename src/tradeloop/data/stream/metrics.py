"""Per-source stream quality metrics: messages, msgs/s, lag, gaps, outliers, duplicates,
out-of-order messages, malformed frames, resyncs and failovers.

:class:`StreamMetrics` keeps plain counters (read by the pipeline, published on the bus as
:class:`SourceQuality` snapshots) and is a prometheus-client collector: registered on a
:class:`prometheus_client.CollectorRegistry` (the API's ``/metrics`` registry, the
``--metrics-port`` endpoint of ``tradeloop data record``), every scrape reads the counters as
they are then. Families, each with a ``source`` label (``_total`` for counters):

- ``tradeloop_stream_messages``, ``_gaps``, ``_outliers``, ``_duplicates``, ``_out_of_order``,
  ``_malformed``, ``_resyncs``, ``_failovers`` (counters);
- ``tradeloop_stream_lag_ms`` (receive lag of the latest message), ``_lag_ms_max`` and
  ``_messages_per_second`` (over the rate window) (gauges).

Nothing is registered unless asked, so tests and several pipelines in one process never
collide.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

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


class StreamMetrics(Collector):
    """Quality metrics of every source of a pipeline (see the module doc).

    Parameters
    ----------
    registry
        A registry to register on now (None: none; :meth:`register` can do it later, on as
        many registries as needed).
    rate_window_s
        Seconds over which msgs/s is measured.
    """

    def __init__(
        self, registry: CollectorRegistry | None = None, rate_window_s: float = 5.0
    ) -> None:
        self.rate_window_s = rate_window_s
        self.sources: dict[str, SourceQuality] = {}
        if registry is not None:
            self.register(registry)

    def register(self, registry: CollectorRegistry) -> StreamMetrics:
        """Expose these metrics on ``registry`` (read at every scrape); return self."""
        registry.register(self)
        return self

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
        if counter == "messages":
            q._window_msgs += n
            now = time.monotonic()
            span = now - q._window_start
            if span >= self.rate_window_s:
                q.msgs_per_s = q._window_msgs / span
                q._window_start, q._window_msgs = now, 0

    def lag(self, name: str, lag_ns: int) -> None:
        """Record the receive lag of the latest message of ``name``."""
        q = self.source(name)
        ms = lag_ns / 1e6
        q.lag_ms_last = ms
        q.lag_ms_max = max(q.lag_ms_max, ms)

    def collect(self) -> Iterator[Metric]:
        """The families of every source, read now (called by the registry at a scrape)."""
        sources = list(self.sources.values())
        for name in _COUNTERS:
            family = CounterMetricFamily(
                f"tradeloop_stream_{name}",
                f"Market-data stream {name.replace('_', ' ')} per source",
                labels=["source"],
            )
            for q in sources:
                family.add_metric([q.source], float(getattr(q, name)))
            yield family
        for name, attr, doc in (
            ("lag_ms", "lag_ms_last",
             "Last receive lag (our receive time minus venue time) per source, ms"),
            ("lag_ms_max", "lag_ms_max", "Largest receive lag seen per source, ms"),
            ("messages_per_second", "msgs_per_s",
             "Messages per second per source over the rate window"),
        ):  # fmt: skip
            gauge = GaugeMetricFamily(f"tradeloop_stream_{name}", doc, labels=["source"])
            for q in sources:
                gauge.add_metric([q.source], float(getattr(q, attr)))
            yield gauge
