"""``SignalService``: the signal loop composed from settings (used by the API and the CLI)."""

from __future__ import annotations

import logging
import time
from typing import Any

from tradeloop.bus.base import InProcessBus, MessageBus
from tradeloop.config.settings import Settings
from tradeloop.signals.adaptive import AdaptiveConfig, AdaptiveEngine
from tradeloop.signals.feedback import FeedbackConsumer
from tradeloop.signals.heatmap import HeatmapConfig, LiquidationHeatmap
from tradeloop.signals.models import symbol_key
from tradeloop.signals.publisher import SignalPublisher
from tradeloop.store.analytics import AnalyticsStore

__all__ = ["SignalService"]

log = logging.getLogger(__name__)


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
        Analytics store (default: opened at ``settings.analytics_path``).
    heatmap_config
        Liquidation-zone model settings.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        bus: MessageBus | None = None,
        store: AnalyticsStore | None = None,
        heatmap_config: HeatmapConfig | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self.enabled = self.settings.signals_enabled
        self.heatmap_config = heatmap_config or HeatmapConfig()
        self.publishers: dict[str, SignalPublisher] = {}
        self.started_ns = time.time_ns()
        self.bus: MessageBus | None = None
        self.store: AnalyticsStore | None = None
        self.consumer: FeedbackConsumer | None = None
        self.adaptive: AdaptiveEngine | None = None
        if not self.enabled:
            log.info("signal loop disabled (signals_enabled=false)")
            return
        self.bus = bus or InProcessBus()
        self.store = store or AnalyticsStore(self.settings.analytics_path)
        self.consumer = FeedbackConsumer(self.store)
        self.adaptive = AdaptiveEngine(
            self.store,
            {c: 1.0 for c in self.heatmap_config.components},
            AdaptiveConfig(alpha=self.settings.adaptive_alpha),
            now_ns=self.started_ns,
        )
        log.info(
            "signal loop enabled",
            extra={"top_n": self.settings.signal_top_n, "store": self.store.path},
        )

    def publisher(self, symbol: str) -> SignalPublisher | None:
        """Return (creating on first use) the publisher of ``symbol``; None when disabled."""
        if not self.enabled or self.bus is None or self.adaptive is None:
            return None
        key = symbol_key(symbol)
        if key not in self.publishers:
            self.publishers[key] = SignalPublisher(
                self.bus,
                LiquidationHeatmap(symbol, self.heatmap_config),
                top_n=self.settings.signal_top_n,
                prefix=self.settings.signal_channel_prefix,
                weights=self.adaptive.current,
            )
        return self.publishers[key]

    def status(self) -> dict[str, Any]:
        """Return a JSON-ready status summary."""
        if not self.enabled or self.adaptive is None or self.consumer is None:
            return {"enabled": False}
        bus: dict[str, Any] = {"kind": type(self.bus).__name__}
        connected = getattr(self.bus, "connected", None)
        if connected is not None:
            bus["connected"] = bool(connected)
            bus["buffered"] = int(getattr(self.bus, "buffered", 0))
            bus["stats"] = dict(getattr(self.bus, "stats", {}))
        return {
            "enabled": True,
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
                "received": self.consumer.received,
                "stored_total": self.store.feedback_count() if self.store else 0,
                "duplicates": self.consumer.duplicates,
            },
            "weights": {"version": self.adaptive.version, "values": self.adaptive.current()},
        }

    def metrics(self, now_ns: int | None = None) -> dict[str, Any]:
        """Return rolling metrics per window, source and component, and the weight history."""
        if not self.enabled or self.adaptive is None or self.store is None:
            return {"enabled": False}
        now = now_ns if now_ns is not None else time.time_ns()
        return {
            "enabled": True,
            "now_ns": now,
            "windows": self.adaptive.metrics(now),
            "weights": {"version": self.adaptive.version, "values": self.adaptive.current()},
            "weight_history": self.store.weight_history(),
        }

    def close(self) -> None:
        """Flush pending feedback and close the store."""
        if self.consumer is not None:
            self.consumer.flush()
        if self.store is not None:
            self.store.close()
