"""The live bar feed of a paper or live session: ccxt.pro candles through the stream pipeline.

:class:`KlineFeed` runs a :class:`~tradeloop.adapters.streams.ccxt_source.CcxtMarketSource`
(``ohlcv`` channel of every symbol, ONE ccxt client) under a
:class:`~tradeloop.adapters.streams.service.MarketStream` whose pipeline (run inline, on the
source's thread, as each bar arrives) drops duplicate and late bars and counts the quality
metrics per source; every bar that passes is put on the
session's queue as a :class:`~tradeloop.adapters.feeds.events.KlineUpdate` (``closed`` as
inferred by the source: a newer bar arrived, or the venue clock passed the bar's end plus a
grace period), and every connection change as a :class:`FeedStatus` (``connecting``,
``connected``, ``disconnected``, ``stale``, ``failed``, ``malformed``).

The session keeps its own watchdog (stale feed alert) and REST backfill of missed bars (the
pipeline only counts a gap here, it does not fill it).
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tradeloop.adapters.feeds.events import FeedStatus, KlineUpdate
from tradeloop.adapters.streams.ccxt_source import CcxtMarketSource
from tradeloop.adapters.streams.pipeline import MarketPipeline
from tradeloop.adapters.streams.service import MarketStream
from tradeloop.adapters.streams.urls import venue_urls
from tradeloop.config.settings import ExchangeSettings
from tradeloop.core.errors import ConfigError
from tradeloop.core.market_events import MarketEvent, StreamBar
from tradeloop.data.stream.metrics import StreamMetrics

__all__ = ["KlineFeed"]

logger = logging.getLogger(__name__)

_MARKET_TYPES = {"spot": ("spot", "spot"), "perp": ("linear", "swap")}
"""tradeloop market -> (ccxt markets type loaded, ccxt default type)."""


class KlineFeed:
    """Closed and in-progress bars of ``symbols`` on ``events``, from the venue's WebSocket.

    Parameters
    ----------
    exchange
        ccxt id (``binance``, ``bybit``, ``okx``, ``kraken``...).
    symbols
        Unified symbols (perpetuals ``BTC/USDT:USDT``).
    timeframe
        Bar timeframe (``1m``...).
    events
        The session's queue (``KlineUpdate`` / ``FeedStatus``).
    market
        ``spot`` or ``perp`` (USDT-margined perpetuals).
    settings
        The venue's settings: ``ws_url`` replaces the stream host (paths kept), ``url`` the
        REST host (markets), ``testnet`` the venue's testnet when no URL is given.
    metrics
        Quality metrics of the feed (a private set when None), e.g. the set the API exposes.
    stale_after_s, alert_after_failures, close_grace_s, backoff_base_s, backoff_max_s
        See :class:`~tradeloop.adapters.streams.ccxt_source.CcxtMarketSource`.
    config
        Extra ccxt constructor config (``markets``...).
    clock_ns
        The local clock (UTC ns): receive times and the closure timer's elapsed time.

    Raises
    ------
    ConfigError
        For an unknown market or venue, a ``ws_url`` for a venue without a known URL layout,
        or bad timing parameters.
    """

    def __init__(
        self,
        exchange: str,
        symbols: Sequence[str],
        timeframe: str,
        events: queue.Queue[Any],
        *,
        market: str = "spot",
        settings: ExchangeSettings | None = None,
        metrics: StreamMetrics | None = None,
        stale_after_s: float = 60.0,
        alert_after_failures: int = 5,
        close_grace_s: float = 2.0,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        config: Mapping[str, Any] | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        if market not in _MARKET_TYPES:
            raise ConfigError(f"market must be spot or perp, got {market!r}")
        settings = settings or ExchangeSettings()
        venue = exchange.lower()
        loaded, default = _MARKET_TYPES[market]
        ccxt_config: dict[str, Any] = {
            "timeout": settings.timeout_ms,
            "options": {"fetchMarkets": {"types": [loaded]}, "defaultType": default},
            **dict(config or {}),
        }
        self.events = events
        self.name = f"feed-{venue}"
        self.source = CcxtMarketSource(
            venue, list(symbols), ("ohlcv",), timeframe=timeframe, config=ccxt_config,
            urls=venue_urls(venue, settings.ws_url, None) if settings.ws_url else None,
            rest_url=settings.url, sandbox=settings.testnet and not settings.ws_url,
            stale_after_s=stale_after_s, alert_after_failures=alert_after_failures,
            close_grace_s=close_grace_s, backoff_base_s=backoff_base_s,
            backoff_max_s=backoff_max_s, clock_ns=clock_ns,
        )  # fmt: skip
        self.pipeline = MarketPipeline(self.name, metrics=metrics, sinks=[self])
        self.stream = MarketStream(
            self.source, self.pipeline, backfill=False, on_status=self.events.put_nowait,
            inline=True,
        )  # fmt: skip
        self._started = False

    @property
    def exchange(self) -> str:
        """The venue's ccxt id."""
        return self.source.venue

    @property
    def metrics(self) -> StreamMetrics:
        """The feed's quality metrics."""
        return self.pipeline.metrics

    @property
    def error(self) -> BaseException | None:
        """The exception that ended the feed, if one did (it is also logged)."""
        return self.stream.error

    @property
    def running(self) -> bool:
        """True while the feed's thread is alive."""
        thread = self.stream._thread
        return thread is not None and thread.is_alive()

    def start(self) -> KlineFeed:
        """Start the source's thread (once); bars go through the pipeline on it, as they
        arrive, into the queue."""
        if self._started:
            raise RuntimeError(f"{self.name} was already started")
        self._started = True
        self.stream.start()
        return self

    def stop(self, timeout: float = 3.0) -> bool:
        """Stop within about ``timeout`` seconds (the last statuses still reach the queue);
        True when the feed's thread has ended."""
        self.stream.stop(timeout)
        if self.stream.error is not None:
            self.events.put_nowait(
                FeedStatus(self.exchange, "failed", f"feed crashed: {self.stream.error}"[:200])
            )
        return not self.running

    def __enter__(self) -> KlineFeed:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- pipeline sink ----------------------------------------------------------------------
    def write(self, events: Sequence[MarketEvent]) -> None:
        """Put every bar the pipeline passed on the session's queue."""
        put = self.events.put_nowait
        for ev in events:
            if isinstance(ev, StreamBar):
                b = ev.bar
                put(
                    KlineUpdate(
                        self.exchange, b.symbol, b.timeframe, b.ts, b.open, b.high, b.low,
                        b.close, b.volume, ev.closed,
                    )
                )  # fmt: skip
