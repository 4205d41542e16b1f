"""``SignalService``: the signal loop composed from settings (used by the API and the CLI).

One process adapts, the others follow. A service has a ``role``:

* ``"all"`` (default): everything in one process: publishers, feedback consumer, adaptive
  engine, and the analytics store held open read-write. The embedded default.
* ``"consumer"``: the *only writer*. Consumes feedback, adapts the weights on an
  :class:`~tradeloop.signals.adaptive.AdaptSchedule`, stores both in the analytics file
  (opened per write, so readers can get in between) and broadcasts every weight version as an
  :class:`~tradeloop.signals.models.AdaptiveWeights` message on ``settings.weights_channel``.
* ``"publisher"``: publishes signals; opens no store. Its weights come from the ``weights``
  callable, typically a :class:`~tradeloop.signals.weights.SharedWeights` reading the
  consumer's broadcast.
* ``"reader"``: status and metrics only, from the analytics file opened read-only per request
  (``serve``, ``signals status``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from tradeloop.bus.base import InProcessBus, MessageBus
from tradeloop.config.settings import Settings
from tradeloop.signals.adaptive import (
    AdaptClock,
    AdaptiveConfig,
    AdaptiveEngine,
    AdaptSchedule,
    WeightChange,
    rolling_windows,
)
from tradeloop.signals.feedback import FeedbackConsumer
from tradeloop.signals.heatmap import HeatmapConfig, LiquidationHeatmap
from tradeloop.signals.models import AdaptiveWeights, symbol_key
from tradeloop.signals.publisher import SignalPublisher
from tradeloop.store.analytics import AnalyticsStore

if TYPE_CHECKING:
    import asyncio

    from tradeloop.bus.redis_bus import RedisBus

__all__ = ["Role", "SignalService"]

log = logging.getLogger(__name__)

Role = Literal["all", "publisher", "consumer", "reader"]
_ROLES = ("all", "publisher", "consumer", "reader")


class SignalService:
    """Heatmap publishers, feedback consumer and adaptive engine behind one facade.

    With ``settings.signals_enabled`` false nothing is opened or published: every component is
    None, :meth:`publisher` returns None and :meth:`status` reports ``enabled: false``.

    Parameters
    ----------
    settings
        Process settings (``signals_enabled``, ``signal_top_n``, ``analytics_path``, ...).
    bus
        Message bus (default: a new :class:`InProcessBus`).
    store
        Analytics store (default: opened at ``settings.analytics_path`` as the role needs).
    heatmap_config
        Liquidation-zone model settings.
    role
        What this process does (see the module docstring).
    weights
        Weight source of a ``"publisher"`` (default: the defaults, 1.0 per component).
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        bus: MessageBus | None = None,
        store: AnalyticsStore | None = None,
        heatmap_config: HeatmapConfig | None = None,
        role: Role = "all",
        weights: Callable[[], Mapping[str, float]] | None = None,
    ) -> None:
        if role not in _ROLES:
            raise ValueError(f"unknown role {role!r}; expected one of {', '.join(_ROLES)}")
        self.settings = settings or Settings()
        self.role = role
        self.enabled = self.settings.signals_enabled
        self.heatmap_config = heatmap_config or HeatmapConfig()
        self.defaults = {c: 1.0 for c in self.heatmap_config.components}
        self.publishers: dict[str, SignalPublisher] = {}
        self.started_ns = time.time_ns()
        self.bus: MessageBus | None = None
        self.store: AnalyticsStore | None = None
        self.consumer: FeedbackConsumer | None = None
        self.adaptive: AdaptiveEngine | None = None
        self._weights: Callable[[], Mapping[str, float]] = weights or (lambda: self.defaults)
        self.adaptations = 0
        #: outcomes in the store when this process started (the clock counts the whole run)
        self._stored_before = 0
        self._clock = AdaptClock(AdaptSchedule())
        if not self.enabled:
            log.info("signal loop disabled (signals_enabled=false)")
            return
        self.bus = bus or InProcessBus()
        path = self.settings.analytics_path
        if role in ("all", "consumer"):
            self.store = store or AnalyticsStore(path, hold=role == "all")
            self.consumer = FeedbackConsumer(self.store)
            self.adaptive = AdaptiveEngine(
                self.store,
                self.defaults,
                AdaptiveConfig(alpha=self.settings.adaptive_alpha),
                now_ns=self.started_ns,
            )
            self._weights = self.adaptive.current
            self._stored_before = self.store.feedback_count()
            self._clock = AdaptClock(AdaptSchedule(), self._stored_before)
        elif role == "reader":
            self.store = store or AnalyticsStore(path, read_only=True, hold=False)
        log.info(
            "signal loop enabled",
            extra={
                "role": role,
                "top_n": self.settings.signal_top_n,
                "store": self.store.path if self.store else None,
            },
        )

    def publisher(self, symbol: str) -> SignalPublisher | None:
        """Return (creating on first use) the publisher of ``symbol``; None when disabled."""
        if not self.enabled or self.bus is None:
            return None
        key = symbol_key(symbol)
        if key not in self.publishers:
            self.publishers[key] = SignalPublisher(
                self.bus,
                LiquidationHeatmap(symbol, self.heatmap_config),
                top_n=self.settings.signal_top_n,
                prefix=self.settings.signal_channel_prefix,
                weights=self._weights,
            )
        return self.publishers[key]

    # ------------------------------------------------------------------ weights
    def weights(self) -> tuple[int, dict[str, float]]:
        """Return the current weight version and values as this process sees them."""
        if self.adaptive is not None:
            return self.adaptive.version, self.adaptive.current()
        if self.role == "reader" and self.store is not None:
            latest = self.store.weights()
            if latest is None:
                return 0, dict(self.defaults)
            return int(latest["version"]), {**self.defaults, **latest["weights"]}
        return int(getattr(self._weights, "version", 0)), dict(self._weights())

    def broadcast_weights(self, change: WeightChange | None = None) -> None:
        """Publish the current weights on ``settings.weights_channel`` (see the module doc)."""
        if self.bus is None or self.adaptive is None:
            return
        version, values = self.weights()
        reason = change.reason if change is not None else "current"
        self.bus.publish(
            self.settings.weights_channel,
            AdaptiveWeights(version=version, weights=values, reason=reason, ts=time.time_ns()),
        )

    def adapt(self, now_ns: int | None = None) -> WeightChange | None:
        """Update the weights now; broadcast and return the change, if any."""
        if self.adaptive is None or self.consumer is None:
            return None
        self.adaptations += 1
        self._clock.mark(self._stored())
        change = self.adaptive.update(now_ns if now_ns is not None else time.time_ns())
        if change is not None:
            self.broadcast_weights(change)
        return change

    def _stored(self) -> int:
        """Outcomes in the store over the whole run (before this process and since)."""
        return self._stored_before + (self.consumer.stored if self.consumer else 0)

    def adapt_if_due(self, schedule: AdaptSchedule | None = None) -> WeightChange | None:
        """Run :meth:`adapt` when :class:`~tradeloop.signals.adaptive.AdaptClock` says an
        update is due under ``schedule`` (default: the last one given)."""
        if self.consumer is None:
            return None
        if schedule is not None:
            self._clock = self._clock.with_schedule(schedule)
        if not self._clock.due(self._stored()):
            return None
        return self.adapt()

    async def run_consumer(
        self,
        bus: RedisBus,
        symbols: Iterable[str],
        *,
        schedule: AdaptSchedule | None = None,
        group: str = "tradeloop-feedback",
        consumer: str = "consumer-1",
        stop: asyncio.Event | None = None,
        tick_s: float = 0.2,
    ) -> None:
        """Consume feedback and adapt continuously until ``stop`` is set.

        The current weights are broadcast first; then the weights are updated whenever
        ``schedule`` says so (at every multiple of N stored outcomes or every T seconds), and
        once more at the end when outcomes arrived since the last update.
        """
        if self.consumer is None:
            return
        if schedule is not None:
            self._clock = self._clock.with_schedule(schedule)
        self.broadcast_weights()
        try:
            await self.consumer.run(
                bus,
                symbols,
                group=group,
                consumer=consumer,
                prefix=self.settings.feedback_channel_prefix,
                stop=stop,
                tick_s=tick_s,
                on_tick=self.adapt_if_due,
            )
        finally:
            if self._clock.pending(self._stored()) > 0:
                self.adapt()

    # ------------------------------------------------------------------ reporting
    def status(self) -> dict[str, Any]:
        """Return a JSON-ready status summary."""
        if not self.enabled:
            return {"enabled": False}
        bus: dict[str, Any] = {"kind": type(self.bus).__name__}
        connected = getattr(self.bus, "connected", None)
        if connected is not None:
            bus["connected"] = bool(connected)
            bus["buffered"] = int(getattr(self.bus, "buffered", 0))
            bus["stats"] = dict(getattr(self.bus, "stats", {}))
        version, values = self.weights()
        return {
            "enabled": True,
            "role": self.role,
            "top_n": self.settings.signal_top_n,
            "bus": bus,
            "publishers": {
                key: {
                    "topic": p.topic,
                    "updates": p.updates,
                    "published": p.published,
                    "last_ts": p.heatmap.last_ts or None,
                    "levels": len(p.heatmap),
                    "flow_source": p.heatmap.flow_source,
                }
                for key, p in self.publishers.items()
            },
            "feedback": {
                "received": self.consumer.received if self.consumer else 0,
                "stored_total": self.store.feedback_count() if self.store else None,
                "duplicates": self.consumer.duplicates if self.consumer else 0,
            },
            "weights": {"version": version, "values": values},
        }

    def metrics(self, now_ns: int | None = None) -> dict[str, Any]:
        """Return rolling metrics per window, source and component, and the weight history."""
        if not self.enabled:
            return {"enabled": False}
        now = now_ns if now_ns is not None else time.time_ns()
        version, values = self.weights()
        store = self.store  # a publisher has none: no feedback to report
        return {
            "enabled": True,
            "now_ns": now,
            "windows": rolling_windows(store, now) if store else {},
            "weights": {"version": version, "values": values},
            "weight_history": store.weight_history() if store else [],
        }

    def close(self) -> None:
        """Flush pending feedback and close the store."""
        if self.consumer is not None:
            self.consumer.flush()
        if self.store is not None:
            self.store.close()
