"""Run a :class:`KlineStream` on its own thread and event loop, feeding a ``queue.Queue``.

The engine's kernel is synchronous: it drains the queue between steps. ``stop`` is bounded:
it asks the stream to finish, cancels it if it does not in time and joins the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from typing import Any

from tradeloop.adapters.feeds.events import FeedEvent, FeedStatus
from tradeloop.adapters.feeds.stream import KlineStream

__all__ = ["FeedThread"]

logger = logging.getLogger(__name__)


class FeedThread:
    """Background thread running ``stream.run`` and putting every event on ``events``.

    >>> import queue
    >>> stream = KlineStream("binance", ["BTC/USDT"], ["1m"], url="ws://127.0.0.1:9")
    >>> feed = FeedThread(stream, queue.Queue())
    >>> feed.running
    False
    """

    def __init__(self, stream: KlineStream, events: queue.Queue[Any], *, name: str = "") -> None:
        self.stream = stream
        self.events = events
        self.name = name or f"feed-{stream.exchange}"
        self.error: BaseException | None = None
        """The exception that ended the stream, if one did (it is also logged)."""
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready = threading.Event()

    @property
    def running(self) -> bool:
        """True while the thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> FeedThread:
        """Start the thread (once) and return self."""
        if self._thread is not None:
            raise RuntimeError(f"{self.name} was already started")
        self._thread = threading.Thread(target=self._main, name=self.name, daemon=True)
        self._thread.start()
        self._ready.wait(timeout=5.0)
        return self

    def stop(self, timeout: float = 3.0) -> bool:
        """Stop the stream and join the thread within about ``timeout`` seconds.

        Returns True when the thread has ended.
        """
        thread, loop = self._thread, self._loop
        if thread is None:
            return True
        if loop is not None and thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(self._request_stop)
            thread.join(timeout * 0.6)
            if thread.is_alive():
                logger.warning("%s did not stop in time, cancelling it", self.name)
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(self._cancel)
        thread.join(max(timeout * 0.4, 0.1))
        return not thread.is_alive()

    def __enter__(self) -> FeedThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ internals

    def _request_stop(self) -> None:
        if self._stop is not None:
            self._stop.set()

    def _cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def _emit(self, event: FeedEvent) -> None:
        self.events.put_nowait(event)

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._run())
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _run(self) -> None:
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self.stream.run(self._emit, self._stop))
        self._ready.set()
        try:
            await self._task
        except asyncio.CancelledError:
            self._emit(FeedStatus(self.stream.exchange, "disconnected", "cancelled"))
        except Exception as exc:
            self.error = exc
            logger.exception("%s ended with an error", self.name)
            self._emit(FeedStatus(self.stream.exchange, "failed", f"feed crashed: {exc}"[:200]))
