"""``SignalPublisher``: heatmap update -> top-N :class:`LiquidationSignal` on the bus."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import numpy as np

from tradeloop.bus.base import MessageBus
from tradeloop.core.bar import BarArrays
from tradeloop.signals.heatmap import LiquidationHeatmap, bar_update_args
from tradeloop.signals.models import LiquidationSignal, symbol_key

__all__ = ["SignalPublisher", "signal_topic"]

log = logging.getLogger(__name__)


def signal_topic(symbol: str, prefix: str = "liquidation:signals") -> str:
    """Return the channel of ``symbol``'s signals.

    >>> signal_topic("BTC/USDT")
    'liquidation:signals:BTCUSDT'
    """
    return f"{prefix}:{symbol_key(symbol)}"


class SignalPublisher:
    """Publish the top-N zones of a heatmap after every update.

    Parameters
    ----------
    bus
        Where to publish.
    heatmap
        The symbol's liquidation-zone model.
    top_n
        Zones per update.
    prefix
        Channel prefix; the topic is ``{prefix}:{SYMBOL}``.
    weights
        Returns the current component weights (e.g. ``AdaptiveEngine.current``).
    """

    def __init__(
        self,
        bus: MessageBus,
        heatmap: LiquidationHeatmap,
        *,
        top_n: int = 5,
        prefix: str = "liquidation:signals",
        weights: Callable[[], Mapping[str, float]] | None = None,
    ) -> None:
        self.bus = bus
        self.heatmap = heatmap
        self.top_n = top_n
        self.topic = signal_topic(heatmap.symbol, prefix)
        self._weights = weights
        self.published = 0
        self.updates = 0
        self.last: list[LiquidationSignal] = []

    def on_bar(
        self,
        ts: int,
        open_: float,
        high: float,
        low: float,
        close: float,
        volume: float,
        open_interest: float | None = None,
        volume_delta: float | None = None,
    ) -> list[LiquidationSignal]:
        """Update the heatmap with one bar and publish its top-N zones."""
        self.heatmap.update(ts, open_, high, low, close, volume, open_interest, volume_delta)
        weights = dict(self._weights()) if self._weights is not None else None
        signals = self.heatmap.top_signals(self.top_n, weights)
        for signal in signals:
            self.bus.publish(self.topic, signal)
        self.published += len(signals)
        self.updates += 1
        self.last = signals
        return signals

    def replay(
        self, bars: BarArrays, volume_delta: np.ndarray | None = None, *, publish_every: int = 1
    ) -> int:
        """Feed every bar of ``bars`` and return the number of signals published.

        Open interest is used when ``bars.open_interest`` is present, volume otherwise; the
        split uses ``volume_delta`` when given. Only every ``publish_every``-th bar publishes.
        """
        before = self.published
        for i in range(len(bars)):
            args = bar_update_args(bars, i, volume_delta)
            if publish_every > 1 and (i + 1) % publish_every:
                self.heatmap.update(*args)
                continue
            self.on_bar(*args)
        log.info(
            "replayed %d bars",
            len(bars),
            extra={
                "symbol": bars.symbol,
                "flow_source": self.heatmap.flow_source,
                "split": self.heatmap.split,
            },
        )
        return self.published - before
