"""A real WebSocket server on loopback that replays recorded candles as exchange kline streams.

One port speaks both wire formats, chosen by path:

* Binance: ``/stream?streams=btcusdt@kline_1m/...`` (combined), ``/ws/<stream>`` (raw), and
  ``{"method": "SUBSCRIBE"}`` requests on either (also under USD-M's ``/market`` prefix);
  USD-M uses the same paths (which Binance market ``/stream`` serves is the
  ``binance_market`` argument).
* Bybit v5: ``/v5/public/spot`` and ``/v5/public/linear`` with ``{"op": "subscribe"}`` and
  ``{"op": "ping"}``.

The replay clock is one cursor in bar time (ms) that advances one 1m bar every
``bar_interval_s`` seconds of wall time; with ``client_ready`` it waits, after each bar that
closed something, until the client says it has acted on that close (a clock paced by the
client, not the wall: a slow or loaded client never sees the market move before it has
answered a bar, as on a real exchange whose bars are a minute apart). At each bar time ``T``
every subscriber of a stream gets, in order, the closed message (``x``/``confirm`` true, real
OHLCV) of the bar that ends at ``T`` and an in-progress message of the bar that opens at ``T``
(open = high = low = close = the bar's open, volume 0). A client that subscribes mid-replay
gets bars from the cursor on, like a real exchange (no history). Trade ids/counts and quote
volumes are not recorded and are sent as ``-1``/``0``.

Faults for tests (thread-safe, callable while running): :meth:`ReplayServer.drop`,
:meth:`~ReplayServer.stall`, :meth:`~ReplayServer.send_malformed`, :meth:`~ReplayServer.skip`,
:meth:`~ReplayServer.pause` / :meth:`~ReplayServer.resume` and :meth:`~ReplayServer.refuse`.

>>> from tradeloop.testing.venue import VenueData
>>> with ReplayServer(VenueData()) as server:
...     server.url.startswith("ws://127.0.0.1:")
True
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import numpy as np
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from tradeloop.testing._wire import BYBIT_INTERVALS, INTERVAL_MS, binance_num
from tradeloop.testing.venue.data import Candles, VenueData

__all__ = ["BASE_BAR_MS", "ReplayServer"]

logger = logging.getLogger(__name__)

BASE_BAR_MS = 60_000
"""The clock's step: one 1m bar."""

_READY_POLL_S = 0.002
"""How often the clock asks ``client_ready`` while it waits."""

_BYBIT_PATHS = {"/v5/public/spot": "spot", "/v5/public/linear": "linear"}
_GARBAGE = (
    '{"stream": "btcusdt@kline_1m", "data": {"e": "kline", "k": {"t": 17',  # cut off JSON
    '{"topic": "kline.1.BTCUSDT", "data": [{"start": "soon", "open": null}]}',  # wrong shape
    "\x00\x01 not json at all",
    '["a", "list", "instead", "of", "an", "object"]',
)


def _binance_path(path: str) -> str:
    """Binance USD-M routes market data under ``/market`` (``/market/ws``, ``/market/stream``)
    and the rest under ``/public``: the same streams as the plain paths here."""
    for prefix in ("/market/", "/public/"):
        if path.startswith(prefix):
            return path[len(prefix) - 1 :]
    return path


@dataclass
class _Series:
    """Recorded candles of one stream."""

    candles: Candles
    interval_ms: int

    def index(self, ts: int) -> int | None:
        i = int(np.searchsorted(self.candles.ts, ts))
        if i < self.candles.ts.shape[0] and int(self.candles.ts[i]) == ts:
            return i
        return None

    @property
    def first_ms(self) -> int:
        return int(self.candles.ts[0])

    @property
    def end_ms(self) -> int:
        return int(self.candles.ts[-1]) + self.interval_ms


@dataclass(eq=False)
class _Client:
    """One connected WebSocket client."""

    ws: ServerConnection
    style: str  # "combined" | "raw" | "bybit"
    venue: str
    market: str
    conn_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    subs: dict[str, tuple[str, str, _Series]] = field(default_factory=dict)
    """Stream name / topic -> (symbol id, interval code, series)."""
    malformed_left: int = 0


class ReplayServer:
    """WebSocket kline streams of Binance and Bybit on 127.0.0.1, replaying ``data``.

    Parameters
    ----------
    data
        The recorded series (``VenueData.candles(venue, market, symbol_id, interval)``;
        market ``spot`` or ``linear``).
    host, port
        Where to listen (port 0: a free port; see :attr:`url`).
    start_ms
        Bar time (ms) the replay starts at; None: the first bar of the first subscribed stream.
    end_ms
        Last bar time to replay (None: the end of the subscribed data). Then the server keeps
        connections open and sends nothing (:attr:`finished`).
    bar_interval_s
        Wall-clock seconds per 1m bar.
    advance_when_idle
        Keep the clock running while no client is subscribed. When False the clock starts at
        the first subscription and stops while no client is subscribed. With ``start_ms=None``
        the clock always waits for the first subscription.
    binance_market
        Which Binance market (``spot`` or ``linear``) the ``/stream`` and ``/ws`` paths serve:
        Binance tells spot from USD-M by host, which one local port cannot.
    client_ready
        ``client_ready(bar_ms) -> bool``: after delivering bar time ``bar_ms`` with at least one
        closed bar in it, the clock moves on only once this returns True (polled off the lock)
        or no client is subscribed any more; ``bar_interval_s`` is then the least time between
        bars. None: the wall clock alone. The frames on the wire are the same either way.
    client_timeout_s
        The longest wait for ``client_ready``; then the clock moves on anyway and counts it in
        :attr:`client_timeouts` (a test asserts that stays 0).
    """

    def __init__(
        self,
        data: VenueData,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        start_ms: int | None = None,
        end_ms: int | None = None,
        bar_interval_s: float = 0.01,
        advance_when_idle: bool = True,
        binance_market: str = "spot",
        client_ready: Callable[[int], bool] | None = None,
        client_timeout_s: float = 60.0,
    ) -> None:
        if bar_interval_s <= 0:
            raise ValueError(f"bar_interval_s must be > 0, got {bar_interval_s!r}")
        if binance_market not in ("spot", "linear"):
            raise ValueError(f"binance_market must be spot or linear, got {binance_market!r}")
        self.data = data
        self.host = host
        self.port = port
        self.start_ms = start_ms
        self.end_ms = end_ms
        self.bar_interval_s = bar_interval_s
        self.advance_when_idle = advance_when_idle
        self.binance_market = binance_market
        self.client_ready = client_ready
        self.client_timeout_s = client_timeout_s
        self.client_timeouts = 0
        """Bars after which the clock stopped waiting for ``client_ready`` (timed out)."""
        self.connections_accepted = 0
        """WebSocket handshakes completed."""
        self.connections_refused = 0
        """Handshakes answered with HTTP 503 (see :meth:`refuse`)."""
        self.messages_sent = 0
        """Frames sent to clients (data, acks, pongs, errors, garbage)."""
        self._cond = threading.Condition()
        self._clients: set[_Client] = set()
        self._series: dict[tuple[str, str, str, str], _Series | None] = {}
        self._next_ms: int | None = start_ms
        self._origin_ms: int | None = start_ms
        self._cursor_ms: int | None = None
        self._paused = False
        self._skip_bars = 0
        self._stall_until = 0.0
        self._refuse_left = 0
        self._malformed_pending = 0
        self._garbage = itertools.cycle(_GARBAGE)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: Server | None = None
        self._closing: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """``ws://127.0.0.1:PORT`` (the real port once started)."""
        return f"ws://{self.host}:{self.port}"

    def start(self) -> ReplayServer:
        """Start serving on a background thread; return self once the port is bound."""
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._main, name="replay-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=10.0):
            raise RuntimeError("replay server did not start within 10s")
        if self._error is not None:
            raise RuntimeError(f"replay server failed to start: {self._error}")
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Close every connection and the listening socket, and join the thread."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        if thread.is_alive():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._signal_close)
            thread.join(timeout)
        self._thread = None

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ clock and state

    @property
    def cursor_ms(self) -> int | None:
        """The bar time being delivered or last delivered: set as its frames go out (None
        before the first tick)."""
        with self._cond:
            return self._cursor_ms

    @property
    def finished(self) -> bool:
        """True once the cursor has passed the end of the replay (``end_ms`` or the data)."""
        with self._cond:
            return self._finished_locked()

    @property
    def client_count(self) -> int:
        """Clients connected now."""
        with self._cond:
            return len(self._clients)

    def subscriptions(self) -> list[frozenset[str]]:
        """The stream names / topics of every connected client."""
        with self._cond:
            return [frozenset(c.subs) for c in self._clients]

    def wait_for(self, cursor_ms: int, timeout: float) -> bool:
        """Wait until the cursor reaches ``cursor_ms``; False on timeout."""
        return self.wait_until(
            lambda: self._cursor_ms is not None and self._cursor_ms >= cursor_ms, timeout
        )

    def wait_for_clients(self, n: int, timeout: float) -> bool:
        """Wait until ``n`` clients have subscribed to something; False on timeout."""
        return self.wait_until(lambda: sum(1 for c in self._clients if c.subs) >= n, timeout)

    def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``predicate()`` (called under the server's lock) is true."""
        with self._cond:
            return self._cond.wait_for(predicate, timeout=timeout)

    # ------------------------------------------------------------------ faults

    def drop(self) -> int:
        """Abort every client connection (TCP closed, no close frame); return how many."""
        loop = self._require_loop()
        return asyncio.run_coroutine_threadsafe(self._drop(), loop).result(timeout=5.0)

    def stall(self, seconds: float) -> None:
        """Send nothing (no data, acks or pongs) for ``seconds``; the clock keeps going."""
        with self._cond:
            self._stall_until = time.monotonic() + seconds

    def send_malformed(self, n: int = 1) -> None:
        """Put ``n`` garbage frames (bad JSON or wrong shape) before the next real frames of
        every connected client (of the next client to connect when none is)."""
        with self._cond:
            if self._clients:
                for client in self._clients:
                    client.malformed_left += n
            else:
                self._malformed_pending += n

    def skip(self, n_bars: int) -> None:
        """Advance the cursor ``n_bars`` 1m bars without sending them."""
        with self._cond:
            self._skip_bars += n_bars

    def pause(self) -> None:
        """Stop the clock (connections stay open)."""
        with self._cond:
            self._paused = True

    def resume(self) -> None:
        """Restart the clock after :meth:`pause`."""
        with self._cond:
            self._paused = False
            self._cond.notify_all()

    def refuse(self, n: int) -> None:
        """Answer the next ``n`` handshakes with HTTP 503."""
        with self._cond:
            self._refuse_left += n

    # ------------------------------------------------------------------ internals: loop

    def _require_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None or self._thread is None:
            raise RuntimeError("replay server is not running")
        return self._loop

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # report start failures to start()
            self._error = exc
            self._ready.set()
            logger.exception("replay server crashed")
        finally:
            loop.close()

    async def _serve(self) -> None:
        self._closing = asyncio.Event()
        async with serve(
            self._handler,
            self.host,
            self.port,
            process_request=self._process_request,
            close_timeout=1.0,
            max_queue=1024,
        ) as server:
            self._server = server
            self.port = int(server.sockets[0].getsockname()[1])
            self._ready.set()
            clock = asyncio.create_task(self._clock())
            try:
                await self._closing.wait()
            finally:
                clock.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await clock
                server.close()
                await server.wait_closed()

    def _signal_close(self) -> None:
        if self._closing is not None:
            self._closing.set()

    async def _clock(self) -> None:
        next_at = time.monotonic()
        while True:
            next_at += self.bar_interval_s
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            now = time.monotonic()
            if now - next_at > 10 * self.bar_interval_s:
                next_at = now  # we fell behind (debugger, loaded box): do not burst
            with self._cond:
                bar = self._advance_locked()
            if bar is not None:
                # the bar has opened (and the one before it closed) from the moment its frames
                # go out: a venue on this clock must already be in it when a client reacts to
                # the close it is about to receive
                with self._cond:
                    self._cursor_ms = bar
                    self._cond.notify_all()
                closed = await self._deliver(bar)
                if closed and self.client_ready is not None:
                    await self._await_client(bar, self.client_ready)
                    next_at = time.monotonic()  # the next bar is paced from the answer

    def _advance_locked(self) -> int | None:
        """Return the next bar time to deliver, or None when the clock does not move."""
        if self._paused or self._next_ms is None or self._finished_locked():
            return None
        if not self.advance_when_idle and not any(c.subs for c in self._clients):
            return None
        if self._skip_bars:
            self._next_ms += self._skip_bars * BASE_BAR_MS
            self._skip_bars = 0
            if self._finished_locked():
                return None
        bar = self._next_ms
        self._next_ms = bar + BASE_BAR_MS
        return bar

    async def _await_client(self, bar_ms: int, ready: Callable[[int], bool]) -> None:
        """Wait until ``ready(bar_ms)`` or no client is subscribed (or the time-out)."""
        deadline = time.monotonic() + self.client_timeout_s
        while True:
            with self._cond:
                subscribed = any(c.subs for c in self._clients)
            if not subscribed or ready(bar_ms):
                return
            if time.monotonic() >= deadline:
                with self._cond:
                    self.client_timeouts += 1
                    self._cond.notify_all()
                logger.warning("client did not answer bar %d in %ss", bar_ms, self.client_timeout_s)
                return
            await asyncio.sleep(_READY_POLL_S)

    def _finished_locked(self) -> bool:
        if self._next_ms is None:
            return False
        if self.end_ms is not None:
            return self._next_ms > self.end_ms
        ends = [s.end_ms for s in self._series.values() if s is not None]
        return bool(ends) and self._next_ms > max(ends)

    async def _deliver(self, bar_ms: int) -> bool:
        """Send bar time ``bar_ms``'s frames; True when a closed bar was among them."""
        with self._cond:
            clients = list(self._clients)
            origin = self._origin_ms if self._origin_ms is not None else bar_ms
        sends = []
        closed = False
        for client in clients:
            frames = []
            for name, (sid, code, series) in list(client.subs.items()):
                closing = series.index(bar_ms - series.interval_ms)
                if closing is not None and bar_ms - series.interval_ms >= origin:
                    frames.append(_frame(client, name, sid, code, series, closing, True, bar_ms))
                    closed = True
                opening = series.index(bar_ms)
                if opening is not None:
                    frames.append(_frame(client, name, sid, code, series, opening, False, bar_ms))
            if frames:
                sends.append(self._send_all(client, frames))
        if sends:
            await asyncio.gather(*sends)
        return closed

    # ------------------------------------------------------------------ internals: clients

    async def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        path = urlsplit(request.path).path
        with self._cond:
            if self._refuse_left > 0:
                self._refuse_left -= 1
                self.connections_refused += 1
                return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "Service Unavailable\n")
        path = _binance_path(path)
        if path in _BYBIT_PATHS or path == "/stream" or path == "/ws" or path.startswith("/ws/"):
            return None
        return connection.respond(HTTPStatus.NOT_FOUND, f"no stream endpoint {path}\n")

    async def _handler(self, ws: ServerConnection) -> None:
        parts = urlsplit(ws.request.path if ws.request is not None else "/")
        parts = parts._replace(path=_binance_path(parts.path))
        if parts.path in _BYBIT_PATHS:
            client = _Client(ws, "bybit", "bybit", _BYBIT_PATHS[parts.path])
            initial: list[str] = []
        elif parts.path == "/stream":
            client = _Client(ws, "combined", "binance", self.binance_market)
            streams = dict(parse_qsl(parts.query)).get("streams", "")
            initial = [s for s in streams.split("/") if s]
        else:
            client = _Client(ws, "raw", "binance", self.binance_market)
            # a raw stream name holds "@" (btcusdt@kline_1m); ccxt connects to /ws/<n>,
            # its own connection index, and subscribes by message
            initial = [s for s in parts.path[len("/ws") :].split("/") if "@" in s]
        with self._cond:
            self._clients.add(client)
            self.connections_accepted += 1
            client.malformed_left, self._malformed_pending = self._malformed_pending, 0
            self._cond.notify_all()
        try:
            if initial:
                bad = await self._subscribe_binance(client, initial)
                if bad:
                    await self._send(client, _binance_error(2, f"unknown stream {bad}", None))
            async for message in ws:
                await self._on_message(client, message)
        except ConnectionClosed:
            pass
        finally:
            with self._cond:
                self._clients.discard(client)
                self._cond.notify_all()

    async def _on_message(self, client: _Client, message: str | bytes) -> None:
        try:
            request = json.loads(message)
            if not isinstance(request, dict):
                raise ValueError("not an object")
        except ValueError:
            if client.venue == "binance":
                await self._send(client, _binance_error(3, "Invalid JSON", None))
            else:
                await self._send(client, _bybit_answer(client, "", False, "error:invalid json"))
            return
        if client.venue == "binance":
            await self._on_binance(client, request)
        else:
            await self._on_bybit(client, request)

    async def _on_binance(self, client: _Client, request: dict[str, Any]) -> None:
        method, params, req_id = request.get("method"), request.get("params", []), request.get("id")
        if method == "SUBSCRIBE" and isinstance(params, list):
            bad = await self._subscribe_binance(client, [str(p) for p in params])
            if bad:
                await self._send(client, _binance_error(2, f"unknown stream {bad}", req_id))
            else:
                await self._send(client, json.dumps({"result": None, "id": req_id}))
        elif method == "UNSUBSCRIBE" and isinstance(params, list):
            with self._cond:
                for name in params:
                    client.subs.pop(str(name), None)
            await self._send(client, json.dumps({"result": None, "id": req_id}))
        elif method == "LIST_SUBSCRIPTIONS":
            await self._send(client, json.dumps({"result": sorted(client.subs), "id": req_id}))
        else:
            await self._send(client, _binance_error(2, f"unknown method {method!r}", req_id))

    async def _on_bybit(self, client: _Client, request: dict[str, Any]) -> None:
        op, args, req_id = request.get("op"), request.get("args", []), request.get("req_id", "")
        if op == "ping":
            if not self._stalled():
                await self._send(client, _bybit_answer(client, req_id, True, "pong", "ping"))
        elif op == "subscribe" and isinstance(args, list):
            bad = [t for t in map(str, args) if not await self._subscribe_bybit(client, t)]
            if bad:
                text = f"error:handler not found,topic:{','.join(bad)}"
                await self._send(client, _bybit_answer(client, req_id, False, text))
            else:
                await self._send(client, _bybit_answer(client, req_id, True, ""))
        elif op == "unsubscribe" and isinstance(args, list):
            with self._cond:
                for topic in args:
                    client.subs.pop(str(topic), None)
            await self._send(client, _bybit_answer(client, req_id, True, "", "unsubscribe"))
        else:
            await self._send(client, _bybit_answer(client, req_id, False, f"error:op {op!r}"))

    async def _subscribe_binance(self, client: _Client, names: list[str]) -> str:
        """Subscribe ``names``; return the unknown ones ("" when all are known)."""
        bad = []
        for name in names:
            symbol, _, kind = name.partition("@")
            code = kind[len("kline_") :] if kind.startswith("kline_") else ""
            series = await self._resolve("binance", client.market, symbol.upper(), code)
            if series is None:
                bad.append(name)
                continue
            with self._cond:
                client.subs[name] = (symbol.upper(), code, series)
                self._cond.notify_all()
        return ",".join(bad)

    async def _subscribe_bybit(self, client: _Client, topic: str) -> bool:
        parts = topic.split(".")
        if len(parts) != 3 or parts[0] != "kline" or parts[1] not in BYBIT_INTERVALS:
            return False
        series = await self._resolve("bybit", client.market, parts[2], BYBIT_INTERVALS[parts[1]])
        if series is None:
            return False
        with self._cond:
            client.subs[topic] = (parts[2], parts[1], series)
            self._cond.notify_all()
        return True

    async def _resolve(
        self, venue: str, market: str, symbol_id: str, interval: str
    ) -> _Series | None:
        if interval not in INTERVAL_MS:
            return None
        key = (venue, market, symbol_id, interval)
        with self._cond:
            if key in self._series:
                return self._series[key]
        try:
            # files load off the loop, so a first subscription does not stall other clients
            candles = await asyncio.to_thread(self.data.candles, venue, market, symbol_id, interval)
        except Exception:  # a resampling or file problem: the stream is unknown
            logger.exception("cannot load %s", key)
            candles = None
        series = (
            _Series(candles, INTERVAL_MS[interval])
            if candles is not None and candles.ts.shape[0] > 0
            else None
        )
        with self._cond:
            self._series[key] = series
            if series is not None and self._next_ms is None:
                self._next_ms = self._origin_ms = series.first_ms
        return series

    def _stalled(self) -> bool:
        with self._cond:
            return time.monotonic() < self._stall_until

    async def _send_all(self, client: _Client, frames: list[str]) -> None:
        for text in frames:
            if not await self._send(client, text):
                return

    async def _send(self, client: _Client, text: str) -> bool:
        """Send one frame (after a garbage frame when one is due); False if the client left."""
        if self._stalled():
            return True
        try:
            with self._cond:
                garbage = next(self._garbage) if client.malformed_left > 0 else None
                if garbage is not None:
                    client.malformed_left -= 1
            if garbage is not None:
                await client.ws.send(garbage)
                self._count()
            await client.ws.send(text)
            self._count()
        except ConnectionClosed:
            return False
        return True

    def _count(self) -> None:
        with self._cond:
            self.messages_sent += 1

    async def _drop(self) -> int:
        with self._cond:
            clients = list(self._clients)
        for client in clients:
            transport = getattr(client.ws, "transport", None)
            if transport is not None:
                transport.abort()
        return len(clients)


# ---------------------------------------------------------------------- wire formats


def _frame(
    client: _Client,
    name: str,
    sid: str,
    code: str,
    series: _Series,
    i: int,
    closed: bool,
    event_ms: int,
) -> str:
    c = series.candles
    t = int(c.ts[i])
    if closed:
        o, h, lo, cl, v = (float(a[i]) for a in (c.open, c.high, c.low, c.close, c.volume))
    else:
        o = h = lo = cl = float(c.open[i])
        v = 0.0
    if client.style == "bybit":
        return json.dumps(
            {
                "topic": name,
                "type": "snapshot",
                "ts": event_ms,
                "data": [
                    {
                        "start": t,
                        "end": t + series.interval_ms - 1,
                        "interval": code,
                        "open": binance_num(o),
                        "close": binance_num(cl),
                        "high": binance_num(h),
                        "low": binance_num(lo),
                        "volume": binance_num(v),
                        "turnover": "0",
                        "confirm": closed,
                        "timestamp": event_ms,
                    }
                ],
            }
        )
    event = {
        "e": "kline",
        "E": event_ms,
        "s": sid,
        "k": {
            "t": t,
            "T": t + series.interval_ms - 1,
            "s": sid,
            "i": code,
            "f": -1,
            "L": -1,
            "o": binance_num(o),
            "c": binance_num(cl),
            "h": binance_num(h),
            "l": binance_num(lo),
            "v": binance_num(v),
            "n": 0,
            "x": closed,
            "q": "0",
            "V": "0",
            "Q": "0",
            "B": "0",
        },
    }
    if client.style == "combined":
        return json.dumps({"stream": name, "data": event})
    return json.dumps(event)


def _binance_error(code: int, msg: str, req_id: Any) -> str:
    return json.dumps({"code": code, "msg": f"Invalid request: {msg}", "id": req_id})


def _bybit_answer(
    client: _Client, req_id: Any, success: bool, ret_msg: str, op: str = "subscribe"
) -> str:
    return json.dumps(
        {
            "success": success,
            "ret_msg": ret_msg,
            "conn_id": client.conn_id,
            "req_id": req_id,
            "op": op,
        }
    )
