"""A local market-stream server: a venue's public WebSocket (trades, incremental depth with
sequence numbers, klines) and the REST endpoints its clients call alongside (depth snapshot,
klines, recent trades), replaying a :class:`~tradeloop.testing.streams.script.MarketScript`
in that venue's real wire format, so the UNMODIFIED ccxt client connects to it.

Timing is a shared clock: message ``i`` of a channel is due at ``epoch + i * interval_s``, so
two servers built with the same ``epoch`` serve the same "live" market (a primary and its
backup). A subscriber joins the stream at the current index; ``epoch=None`` starts the clock
at the first subscription (the subscriber sees everything from the first message).

Fault injection (thread-safe): :meth:`drop_depth` (a sequence gap), :meth:`send_malformed`,
:meth:`kill` (every connection closed, new ones refused: a dead venue).

Run one from a shell: ``python -m tradeloop.testing.streams --venue binance``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

from tradeloop.testing.streams.dialects import DIALECTS, UNSUBSCRIBE, Dialect
from tradeloop.testing.streams.script import MarketScript

__all__ = ["StreamServer"]

logger = logging.getLogger(__name__)

CHANNELS = ("trades", "depth", "kline", "funding")


class StreamServer:
    """One venue's market streams on ``host:port`` (0: a free port), in a background thread.

    Parameters
    ----------
    venue
        ``binance``, ``bybit``, ``okx`` or ``kraken``.
    script
        The recorded market to replay.
    interval_s
        Seconds between consecutive messages of one channel.
    epoch
        ``time.time()`` of message 0 (None: the first subscription).
    join
        ``start``: every subscription replays its channel from message 0, paced from its own
        start; ``live``: a subscription joins the shared clock at the current message.
    kline_tail
        After the last kline, send the opening update of the next bar (see
        :attr:`Dialect.kline_tail`); False: the stream ends with the last kline.
    """

    def __init__(
        self,
        venue: str,
        script: MarketScript,
        *,
        interval_s: float = 0.002,
        epoch: float | None = None,
        join: str = "start",
        host: str = "127.0.0.1",
        port: int = 0,
        kline_tail: bool = True,
    ) -> None:
        self.dialect: Dialect = DIALECTS[venue](script, kline_tail)
        self.venue = venue
        self.script = script
        self.interval_s = interval_s
        self.epoch = epoch
        self.join = join
        self.depth_cursor = -1
        """Index of the last depth update due (sent or dropped) on any connection."""
        self.host = host
        self.port = port
        self.sent: dict[str, int] = dict.fromkeys(CHANNELS, 0)
        """Messages sent per channel (all connections)."""
        self.subscriptions: list[str] = []
        self.rest_calls: list[str] = []
        self._drop: set[int] = set()
        self._drop_klines: set[int] = set()
        self._drop_trades: set[int] = set()
        self._malformed: list[str] = []
        self._killed = False
        self._sockets: set[web.WebSocketResponse] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # -- lifecycle --------------------------------------------------------------------------
    @property
    def ws_url(self) -> str:
        """``ws://host:port`` (the dialect adds the venue's path)."""
        return f"ws://{self.host}:{self.port}"

    @property
    def http_url(self) -> str:
        """``http://host:port``."""
        return f"http://{self.host}:{self.port}"

    def urls(self) -> dict[str, Any]:
        """The ccxt ``urls['api']`` overrides that point a client at this server."""
        return self.dialect.ccxt_urls(self.ws_url, self.http_url)

    def start(self) -> StreamServer:
        """Serve in a background thread; returns once listening."""
        self._thread = threading.Thread(
            target=self._main, name=f"streams-{self.venue}", daemon=True
        )
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        """Close every connection and stop serving."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            fut = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
            with contextlib.suppress(Exception):
                fut.result(5)
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> StreamServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- faults -----------------------------------------------------------------------------
    def drop_depth(self, *seqs: int) -> None:
        """Never send the depth updates with these sequence numbers (a gap for the client)."""
        self._drop.update(seqs)

    def drop_trades(self, *indices: int) -> None:
        """Never send the trade messages with these indices (trades the client must backfill)."""
        self._drop_trades.update(indices)

    def drop_klines(self, *indices: int) -> None:
        """Never send the kline messages with these indices (bars the client must backfill)."""
        self._drop_klines.update(indices)

    def send_malformed(self, n: int = 1, raw: str = '{"broken": ') -> None:
        """Send ``n`` bad frames ``raw`` (default: truncated JSON; any text, e.g. one that is
        not JSON at all) on the next trade ticks, before their trades."""
        self._malformed += [raw] * n

    def kill(self) -> None:
        """Close every connection and refuse new ones (the venue is down)."""
        self._killed = True
        loop = self._loop
        if loop is not None:
            asyncio.run_coroutine_threadsafe(self._close_all(), loop).result(5)

    def index_now(self) -> int:
        """Index of the next message due on the shared clock (0 before it starts)."""
        if self.epoch is None:
            return 0
        return max(0, math.floor((time.time() - self.epoch) / self.interval_s) + 1)

    # -- internals --------------------------------------------------------------------------
    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._start())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _start(self) -> None:
        app = web.Application()
        for path in self.dialect.ws_paths:
            app.router.add_get(path, self._ws)
        for path, handler in self.dialect.rest_routes().items():
            app.router.add_get(path, self._rest(handler))
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

    async def _shutdown(self) -> None:
        await self._close_all()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _close_all(self) -> None:
        for ws in list(self._sockets):
            with contextlib.suppress(Exception):
                await ws.close()
        self._sockets.clear()

    def _rest(self, handler: Callable[[dict[str, str], int], Any]) -> Any:
        async def handle(request: web.Request) -> web.Response:
            if self._killed:
                return web.Response(status=503, text="down")
            self.rest_calls.append(request.path_qs)
            cursor = self.depth_cursor
            if self.join == "live":
                cursor = max(cursor, self.index_now() - 1)
            body = handler(dict(request.query), cursor + 1)
            return web.json_response(body)

        return handle

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        if self._killed:
            return web.Response(status=503, text="down")
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        self._sockets.add(ws)
        tasks: dict[str, asyncio.Task[None]] = {}
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                if msg.data == "ping":  # OKX's text heartbeat
                    await ws.send_str("pong")
                    continue
                try:
                    req = json.loads(msg.data)
                except ValueError:
                    continue
                reply, channels = self.dialect.on_request(req)
                for answer in reply if isinstance(reply, list) else [reply]:
                    if answer is not None:
                        await ws.send_str(json.dumps(answer))
                for channel, topic in channels:
                    if channel == UNSUBSCRIBE:
                        task = tasks.pop(topic, None)
                        if task is not None:
                            task.cancel()
                        continue
                    self.subscriptions.append(topic)
                    if self.epoch is None:
                        self.epoch = time.time()
                    old = tasks.get(topic)
                    if old is not None:  # a resubscription replaces the running stream
                        old.cancel()
                    tasks[topic] = asyncio.create_task(self._stream(ws, channel, topic))
        finally:
            for task in tasks.values():
                task.cancel()
            self._sockets.discard(ws)
        return ws

    async def _stream(self, ws: web.WebSocketResponse, channel: str, topic: str) -> None:
        assert self.epoch is not None
        items = self.dialect.items(channel)
        if self.join == "live":
            epoch, start = self.epoch, self.index_now()
        else:
            epoch, start = time.time(), 0
        for frame in self.dialect.on_join(channel, topic, start):
            await ws.send_str(json.dumps(frame))
        for i in range(start, len(items)):
            due = epoch + i * self.interval_s
            delay = due - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if ws.closed or self._killed:
                return
            if channel == "trades" and self._malformed:
                await ws.send_str(self._malformed.pop(0))
            if channel == "kline" and i in self._drop_klines:
                continue
            if channel == "trades" and i in self._drop_trades:
                continue
            if channel == "depth":
                self.depth_cursor = max(self.depth_cursor, i)
                if self.dialect.depth_seq(i) in self._drop:
                    continue
            await ws.send_str(json.dumps(self.dialect.render(channel, topic, i)))
            self.sent[channel] += 1
