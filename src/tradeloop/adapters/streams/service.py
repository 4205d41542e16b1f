"""A running market stream: sources on a background asyncio thread, failover, the pipeline.

:class:`MarketStream` starts the primary source (and the backup, hot, when given) on one
asyncio loop in a daemon thread; their events go through a thread-safe queue to the caller's
thread, which :meth:`MarketStream.poll` drains: the :class:`FailoverRouter` picks the active
source's events (when there is a backup), then the :class:`MarketPipeline` runs quality and
books and hands the accepted events to its sinks (recorder, kernel feeder).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from tradeloop.adapters.feeds.events import FeedStatus
from tradeloop.adapters.streams.ccxt_source import CcxtMarketSource
from tradeloop.adapters.streams.pipeline import MarketPipeline
from tradeloop.core.market_events import MarketEvent, StreamBar, TradeBatch
from tradeloop.data.stream.failover import FailoverRouter

__all__ = ["MarketStream"]

logger = logging.getLogger(__name__)


class MarketStream:
    """Sources -> (failover) -> pipeline, driven from the caller's thread.

    Parameters
    ----------
    primary
        The main source.
    pipeline
        Quality, books, bus and sinks.
    backup
        A hot-standby source of the same market (None: no failover).
    stall_s, recover_s
        Failover: stall detection and how long the primary must be healthy to switch back.
    backfill
        Fill a bar or trade gap from the venue's REST API in the pipeline (False: the gap is
        only counted, e.g. when the consumer backfills itself, as a paper session does).
    on_status
        Called (on the polling thread) with every source status, in arrival order.
    inline
        Run the pipeline on the sources' thread as each event arrives, for a consumer that
        only reads the sinks (no :meth:`poll`; one thread hop less, e.g. a session's bars).
    """

    def __init__(
        self,
        primary: CcxtMarketSource,
        pipeline: MarketPipeline,
        *,
        backup: CcxtMarketSource | None = None,
        stall_s: float = 1.0,
        recover_s: float = 5.0,
        backfill: bool = True,
        on_status: Callable[[FeedStatus], None] | None = None,
        inline: bool = False,
    ) -> None:
        self.primary = primary
        self.backup = backup
        self.pipeline = pipeline
        self.router = (
            FailoverRouter(primary.name, backup.name, stall_s=stall_s, recover_s=recover_s)
            if backup is not None
            else None
        )
        self.statuses: deque[FeedStatus] = deque(maxlen=10_000)
        """The latest source statuses (bounded: a 24/7 stream reports for weeks)."""
        self.on_status = on_status
        self.inline = inline
        if backfill and pipeline.backfill_bars is None:
            pipeline.backfill_bars = self._backfill
        if backfill and pipeline.backfill_trades is None:
            pipeline.backfill_trades = self._backfill_trades
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self.error: BaseException | None = None

    def _backfill(
        self, venue: str, symbol: str, timeframe: str, start: int, end: int
    ) -> list[StreamBar]:
        for source in self.sources:
            if source.name == venue:
                return source.fetch_bars(symbol, timeframe, start, end)
        return []

    def _backfill_trades(
        self, venue: str, symbol: str, first_id: int, last_id: int
    ) -> TradeBatch | None:
        for source in self.sources:
            if source.name == venue:
                return source.fetch_trades_by_id(symbol, first_id, last_id)
        return None

    @property
    def sources(self) -> list[CcxtMarketSource]:
        """The primary and, when set, the backup."""
        return [self.primary] + ([self.backup] if self.backup is not None else [])

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> MarketStream:
        """Start the sources' thread."""
        self._thread = threading.Thread(target=self._main, name="market-stream", daemon=True)
        self._thread.start()
        self._ready.wait(5)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the sources and join the thread; queued events stay for a last :meth:`poll`."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> MarketStream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._run())
        except BaseException as exc:
            self.error = exc
            logger.exception("market stream thread ended with an error")
        finally:
            loop.close()

    async def _run(self) -> None:
        self._stop = asyncio.Event()
        self._ready.set()
        tasks = [
            asyncio.create_task(source.run(self._emitter(source.name), self._stop))
            for source in self.sources
        ]
        await asyncio.gather(*tasks)

    def _emitter(self, name: str) -> Callable[[Any], None]:
        if self.inline:

            def process(event: Any) -> None:
                try:
                    self._process([(name, event)])
                except Exception:  # a pipeline or sink error must not end the stream
                    logger.exception("%s: event %r not processed", name, event)

            return process
        put = self._queue.put_nowait

        def emit(event: Any) -> None:
            put((name, event))

        return emit

    # -- consuming --------------------------------------------------------------------------
    def poll(self, timeout: float = 0.05, max_events: int = 10_000) -> list[MarketEvent]:
        """Drain queued events (waiting up to ``timeout`` for the first), route and process
        them; return the accepted events."""
        items: list[tuple[str, Any]] = []
        try:
            items.append(self._queue.get(timeout=timeout))
            while len(items) < max_events:
                items.append(self._queue.get_nowait())
        except queue.Empty:
            pass
        return self._process(items)

    def _process(self, items: list[tuple[str, Any]]) -> list[MarketEvent]:
        """Route ``(source, event)`` items (statuses, failover) and run the pipeline."""
        routed: list[MarketEvent] = []
        router = self.router
        for name, event in items:
            if isinstance(event, FeedStatus):
                self.statuses.append(event)
                if self.on_status is not None:
                    self.on_status(event)
                if router is not None:
                    before = len(router.switches)
                    routed += router.on_status(name, event.state)
                    self._count_switches(before)
                continue
            if router is None:
                routed.append(event)
            else:
                before = len(router.switches)
                routed += router.offer(name, event)
                self._count_switches(before)
        if router is not None:
            before = len(router.switches)
            routed += router.check()
            self._count_switches(before)
        for source in self.sources:
            q = self.pipeline.metrics.source(source.name)
            self.pipeline.metrics.count(
                source.name, "malformed", source.tap.malformed_count - q.malformed
            )
        return self.pipeline.process(routed) if routed else []

    def _count_switches(self, before: int) -> None:
        assert self.router is not None
        for switch in self.router.switches[before:]:
            self.pipeline.metrics.count(switch.from_source, "failovers")

    def run_for(
        self, seconds: float, until: Callable[[list[MarketEvent]], bool] | None = None
    ) -> list[MarketEvent]:
        """Poll for ``seconds`` (or until ``until(accepted so far)`` is true); return all
        accepted events."""
        out: list[MarketEvent] = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            out += self.poll()
            if until is not None and until(out):
                break
        return out
