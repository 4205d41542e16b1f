"""A local server that speaks Alpaca's wire formats, replaying recorded equity minute bars.

One loopback port serves everything unmodified alpaca-py talks to (point it there with
``url_override``):

- trading REST v2 (``TradingClient``): ``/v2/account``, ``/v2/orders`` (POST, GET with
  ``status=open|closed|all``, DELETE), ``/v2/orders/{id}`` (GET, DELETE),
  ``/v2/orders:by_client_order_id``, ``/v2/positions`` (GET, DELETE),
  ``/v2/positions/{symbol}`` (GET, DELETE), ``/v2/clock``, ``/v2/assets/{symbol}``;
- market data REST v2 (``StockHistoricalDataClient``): ``/v2/stocks/trades/latest`` (the last
  published bar's close), ``/v2/stocks/bars`` (1Min, paged
  with ``next_page_token``), only bars already published (no future);
- the trading stream ``/stream`` (``TradingStream``): JSON ``authenticate`` -> ``authorization``,
  ``listen`` -> ``listening``, then ``trade_updates`` messages (binary frames, as Alpaca);
- the market data stream ``/v2/{iex|sip|test}`` (``StockDataStream``): msgpack
  ``connected``, ``auth`` -> ``authenticated``, ``subscribe`` -> ``subscription``, then minute
  bars ``{"T": "b", ...}`` with msgpack timestamps.

Every REST request must carry ``APCA-API-KEY-ID`` / ``APCA-API-SECRET-KEY`` equal to the
server's keys (401 otherwise); the streams check the same keys.

The replay clock: bars of the recording are published one at a time by :meth:`advance`
(tests step it; ``python -m tradeloop.testing.venue.alpaca --interval S`` runs it on a timer).
Publishing a bar first fills working orders against it (see
:mod:`tradeloop.testing.venue.alpaca_book`), then sends the ``b`` message; the venue's time
(``/v2/clock``) is then the bar's close. ``is_open``/``next_open``/``next_close`` come from the
XNYS calendar (``exchange_calendars``). Crossing a session close expires ``day`` orders.

Faults (thread-safe, while running): :meth:`AlpacaServer.add_fault` (HTTP 5xx, 429 with
``Retry-After``, a dropped connection, or the order *accepted* and the response lost / held
past the client's timeout), ``fill_parts`` (partial fills), :meth:`~AlpacaServer.reject_next`,
:meth:`~AlpacaServer.drop_streams` (trade/data stream disconnects; events while no client
listens are lost, as at Alpaca) and :meth:`~AlpacaServer.adjust_position` (a trade made
outside the bot).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self, TypeVar

import msgpack
import numpy as np
from aiohttp import WSMsgType, web

from tradeloop.testing.venue.alpaca_book import AlpacaBook, BookError, asset_id, iso

if TYPE_CHECKING:
    from tradeloop.adapters.alpaca import AlpacaClient

__all__ = [
    "AlpacaFault",
    "AlpacaServer",
    "MinuteBars",
    "load_equity_minutes",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")
MINUTE_NS = 60_000_000_000
DEFAULT_KEY = "PKLOCALTESTKEY000001"
DEFAULT_SECRET = "local-test-secret-do-not-use-0000000000"
EQUITY_FILE = "equities_1m/pyalgotrade/nt-spy-minute-2011.normalized.csv"


@dataclass(frozen=True)
class MinuteBars:
    """Recorded minute bars of one symbol, stamped at the bar's **open** (Alpaca's label)."""

    symbol: str
    ts: np.ndarray  # int64 ns, open time
    ohlcv: np.ndarray  # float64 (n, 5)

    def __len__(self) -> int:
        return int(self.ts.shape[0])


def load_equity_minutes(shared_data: Path, symbol: str = "SPY") -> MinuteBars:
    """The recorded SPY minute bars (the file stamps bars at their close; Alpaca at the open).

    Raises
    ------
    FileNotFoundError
        When the recording is missing.
    """
    import pandas as pd

    frame = pd.read_csv(shared_data / EQUITY_FILE)
    close_ts = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601").dt.as_unit("ns")
    ts = close_ts.astype("int64").to_numpy() - MINUTE_NS
    cols = frame[["open", "high", "low", "close", "volume"]].to_numpy(dtype=np.float64)
    return MinuteBars(symbol, ts.astype(np.int64), cols)


@dataclass
class AlpacaFault:
    """Fail matching requests number ``at`` .. ``at + times - 1`` (1-based, counted from when
    the fault is added; ``times=-1``: all from ``at`` on).

    ``kind``: ``status`` answers ``status`` (with ``Retry-After`` when set); ``drop`` closes
    the connection without doing anything; ``lost`` does the request (e.g. accepts the order)
    and then closes the connection without an answer; ``hang`` does the request and answers
    only after ``hang_s`` seconds (a client timeout). ``method`` and ``path`` (substring)
    select the requests.
    """

    kind: Literal["status", "drop", "lost", "hang"]
    path: str = ""
    method: str = ""
    status: int = 500
    at: int = 1
    times: int = 1
    retry_after: float | None = None
    hang_s: float = 5.0
    seen: int = field(default=0, init=False)
    fired: int = field(default=0, init=False)


class AlpacaServer:
    """The local Alpaca venue (see the module docstring).

    Parameters
    ----------
    bars
        Recorded minute bars, one :class:`MinuteBars` per symbol (published in time order).
    cash
        Starting cash of the paper account.
    key_id, secret_key
        The API keys the server accepts.
    fill_parts
        Split every fill into this many executions (partial fills).
    start
        Index of the first bar to publish (earlier ones are history for the REST bars).
    calendar
        ``exchange_calendars`` name for the clock.
    max_page
        Most bars in one ``/v2/stocks/bars`` page (Alpaca's is 10,000).
    """

    def __init__(
        self,
        bars: Sequence[MinuteBars],
        *,
        cash: float = 100_000.0,
        key_id: str = DEFAULT_KEY,
        secret_key: str = DEFAULT_SECRET,
        fill_parts: int = 1,
        start: int = 0,
        calendar: str = "XNYS",
        host: str = "127.0.0.1",
        port: int = 0,
        max_page: int = 10_000,
    ) -> None:
        self.key_id = key_id
        self.secret_key = secret_key
        self.max_page = max_page
        self.series = {b.symbol: b for b in bars}
        # one merged timeline of (ts, symbol, row)
        timeline = [(int(t), b.symbol, i) for b in bars for i, t in enumerate(b.ts)]
        timeline.sort()
        self.timeline = timeline
        self.cursor = start
        """Index in :attr:`timeline` of the next bar to publish."""
        self.book = AlpacaBook(cash, set(self.series), fill_parts=fill_parts, emit=self._emit)
        self.book.now_ns = int(timeline[start][0]) if timeline else 0
        self.calendar_name = calendar
        self._calendar: _Sessions | None = None
        self.host, self.port = host, port
        self.faults: list[AlpacaFault] = []
        self.requests: list[tuple[str, str, int | None]] = []
        """Every REST request: (method, path, status; None when no answer was sent)."""
        self.events_sent = 0
        """trade_updates messages delivered to listening clients."""
        self.events_lost = 0
        """trade_updates events no client was listening for."""
        self.bars_sent = 0
        """Bar messages sent on the data stream (per subscriber)."""
        self.published: list[tuple[str, int]] = []
        """(symbol, ts) of every bar published, in order."""
        self.auth_failures = 0
        self._trade_ws: dict[web.WebSocketResponse, asyncio.Queue[bytes]] = {}
        self._data_ws: dict[web.WebSocketResponse, set[str]] = {}
        self._refuse_streams = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._timer: asyncio.Task[None] | None = None
        self._held: tuple[int, str, int] | None = None
        self._lock = threading.Lock()

    # -- lifecycle ------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """REST base (``http://127.0.0.1:PORT``) for ``TradingClient`` and the data client."""
        return f"http://{self.host}:{self.port}"

    @property
    def trade_stream_url(self) -> str:
        """``TradingStream(url_override=...)``."""
        return f"ws://{self.host}:{self.port}/stream"

    def data_stream_url(self, feed: str = "iex") -> str:
        """``StockDataStream(url_override=...)``."""
        return f"ws://{self.host}:{self.port}/v2/{feed}"

    def start(self) -> Self:
        """Serve on a background thread (its own event loop)."""
        self._thread = threading.Thread(target=self._main, name="local-alpaca", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("local Alpaca server did not start")
        return self

    def stop(self) -> None:
        """Close every connection and stop serving."""
        loop = self._loop
        if loop is None or self._thread is None:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        loop.run_until_complete(self._startup())
        self._ready.set()
        loop.run_forever()
        loop.close()

    async def _startup(self) -> None:
        app = web.Application(middlewares=[self._middleware])
        r = app.router
        r.add_get("/v2/account", self._account)
        r.add_get("/v2/clock", self._clock)
        r.add_get("/v2/assets/{symbol}", self._asset)
        r.add_post("/v2/orders", self._submit)
        r.add_get("/v2/orders", self._list_orders)
        r.add_delete("/v2/orders", self._cancel_all)
        r.add_get("/v2/orders:by_client_order_id", self._by_client_id)
        r.add_get("/v2/orders/{order_id}", self._get_order)
        r.add_delete("/v2/orders/{order_id}", self._cancel)
        r.add_get("/v2/positions", self._positions)
        r.add_delete("/v2/positions", self._close_all)
        r.add_get("/v2/positions/{symbol}", self._position)
        r.add_delete("/v2/positions/{symbol}", self._close_position)
        r.add_get("/v2/stocks/bars", self._bars)
        r.add_get("/v2/stocks/trades/latest", self._latest_trades)
        r.add_get("/stream", self._trade_stream)
        r.add_get("/v2/{feed}", self._data_stream)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = int(sockets[0].getsockname()[1])

    async def _shutdown(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for ws in [*self._trade_ws, *self._data_ws]:
            with contextlib.suppress(Exception):
                await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def _call(self, fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
        assert self._loop is not None, "start the server first"
        return asyncio.run_coroutine_threadsafe(fn(), self._loop).result(30)

    # -- replay and faults (test thread) ----------------------------------------------------
    @property
    def now_ns(self) -> int:
        """The venue's time: the close of the last published bar."""
        return self.book.now_ns

    @property
    def remaining(self) -> int:
        """Bars not yet published."""
        return len(self.timeline) - self.cursor

    def advance(self, n: int = 1) -> int:
        """Publish the next ``n`` bars (fills first, then the ``b`` messages); return how many
        were published (fewer at the end of the recording)."""

        async def run() -> int:
            return await self._advance(n)

        return self._call(run)

    def run_timer(self, interval_s: float) -> None:
        """Publish one bar every ``interval_s`` seconds until the recording ends."""

        async def tick() -> None:
            while self.cursor < len(self.timeline):
                await asyncio.sleep(interval_s)
                await self._advance(1)

        async def start() -> None:
            self._timer = asyncio.ensure_future(tick())

        self._call(start)

    def stop_timer(self) -> None:
        """Stop :meth:`run_timer` (the replay waits until started again)."""

        async def run() -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        self._call(run)

    def add_fault(self, fault: AlpacaFault) -> AlpacaFault:
        """Inject ``fault`` from now on; returns it (``fired`` counts the failures)."""
        with self._lock:
            self.faults.append(fault)
        return fault

    def reject_next(self, reason: str = "order rejected by the venue") -> None:
        """The next order is accepted, then rejected (a ``rejected`` stream event)."""

        async def run() -> None:
            self.book.reject_next.append(reason)

        self._call(run)

    def drop_streams(self, *, trade: bool = True, data: bool = False, refuse: int = 0) -> None:
        """Close the trade (and/or data) stream connections; refuse the next ``refuse``
        connection attempts (HTTP 503 on the upgrade)."""

        async def run() -> None:
            self._refuse_streams = refuse
            targets: list[web.WebSocketResponse] = []
            if trade:
                targets += list(self._trade_ws)
                self._trade_ws.clear()
            if data:
                targets += list(self._data_ws)
                self._data_ws.clear()
            for ws in targets:
                with contextlib.suppress(Exception):
                    await ws.close(code=1011, message=b"server going away")

        self._call(run)

    def adjust_position(self, symbol: str, qty: float, price: float | None = None) -> None:
        """A trade outside the bot: ``qty`` (signed) of ``symbol`` at ``price`` (the mark)."""

        async def run() -> None:
            px = price if price is not None else self.book.marks[symbol]
            self.book.adjust_position(symbol, qty, px)

        self._call(run)

    def order_count(self, client_order_id: str | None = None) -> int:
        """Orders the venue holds (with ``client_order_id``), bracket legs excluded."""
        orders = [o for o in self.book.orders.values() if o.parent is None]
        if client_order_id is None:
            return len(orders)
        return sum(1 for o in orders if o.client_order_id == client_order_id)

    def count(self, method: str, path_part: str, status: int | str | None = "any") -> int:
        """REST requests seen with ``method`` and ``path_part`` (and ``status``)."""
        with self._lock:
            return sum(
                1
                for m, p, s in self.requests
                if m == method and path_part in p and (status == "any" or s == status)
            )

    @property
    def trade_listeners(self) -> int:
        """Trade stream connections listening now."""
        return len(self._trade_ws)

    def streaming_client(self, timeout_s: float = 2.0, *, listeners: int = 1) -> AlpacaClient:
        """An unmodified alpaca-py client (tradeloop's ``AlpacaClient``) pointed at this
        server, its trade-updates stream connected: returned once ``listeners`` trade stream
        connections listen (this one included), within 10 s."""
        from tradeloop.adapters.alpaca import AlpacaClient, AlpacaConfig

        client = AlpacaClient(
            AlpacaConfig(
                api_key=self.key_id,
                api_secret=self.secret_key,
                url=self.url,
                ws_url=f"ws://{self.host}:{self.port}",
                timeout_s=timeout_s,
                poll_interval_s=0.0,
                requests_per_minute=100_000,
            )
        )
        client.start_stream()
        deadline = time.monotonic() + 10.0
        while not (client.stream_connected and self.trade_listeners == listeners):
            if time.monotonic() > deadline:
                client.close()
                raise TimeoutError(f"the trade stream did not connect ({self.trade_listeners})")
            time.sleep(0.01)
        return client

    @property
    def data_subscribers(self) -> int:
        """Data stream connections subscribed now."""
        return len(self._data_ws)

    # -- replay internals ----------------------------------------------------------------------
    def calendar(self) -> _Sessions:
        """The exchange calendar of the clock (loaded once)."""
        if self._calendar is None:
            self._calendar = _Sessions(self.calendar_name)
        return self._calendar

    def fill_next(self) -> bool:
        """First half of :meth:`advance` for lockstep tests: the next bar fills the working
        orders (their ``trade_updates`` go out) but its data message is held back until
        :meth:`publish_held`. Returns False at the end of the recording."""

        async def run() -> bool:
            return await self._match_next()

        return self._call(run)

    def publish_held(self) -> int:
        """Second half: send the data message of the bar :meth:`fill_next` matched."""

        async def run() -> int:
            return await self._publish_held()

        return self._call(run)

    async def _match_next(self) -> bool:
        if self._held is not None:
            return True
        if self.cursor >= len(self.timeline):
            return False
        cal = self.calendar()
        ts, symbol, i = self.timeline[self.cursor]
        self.cursor += 1
        last = self.published[-1][1] if self.published else None
        if last is not None and cal.is_open(last) and cal.next_close(last) <= ts:
            self.book.expire_day_orders(cal.next_close(last))  # the session closed
        o, h, low, c, _v = (float(x) for x in self.series[symbol].ohlcv[i])
        in_session = cal.is_open(ts)
        self.book.on_bar(symbol, ts, o, h, low, c, ts + MINUTE_NS, in_session=in_session)
        self.published.append((symbol, ts))
        await self._flush_trade_updates()  # fills of this bar go out before the bar
        self._held = (ts, symbol, i)
        return True

    async def _publish_held(self) -> int:
        if self._held is None:
            return 0
        ts, symbol, i = self._held
        self._held = None
        o, h, low, c, v = (float(x) for x in self.series[symbol].ohlcv[i])
        frame = msgpack.packb(
            [
                {
                    "T": "b",
                    "S": symbol,
                    "o": o,
                    "h": h,
                    "l": low,
                    "c": c,
                    "v": int(v),
                    "t": msgpack.Timestamp.from_unix_nano(ts),
                    "n": None,  # trade count and VWAP are not recorded
                    "vw": None,
                }
            ]
        )
        for ws, subs in list(self._data_ws.items()):
            if symbol in subs or "*" in subs:
                try:
                    await ws.send_bytes(frame)
                    self.bars_sent += 1
                except Exception:  # a connection going away
                    self._data_ws.pop(ws, None)
        await asyncio.sleep(0)
        return 1

    async def _advance(self, n: int) -> int:
        done = 0
        while done < n and await self._match_next():
            done += await self._publish_held()
        return done

    async def _flush_trade_updates(self, timeout_s: float = 1.0) -> None:
        """Wait (bounded) until every listening trade stream has sent what is queued."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while any(not q.empty() for q in self._trade_ws.values()):
            if asyncio.get_running_loop().time() > deadline:
                return
            await asyncio.sleep(0.001)

    def _emit(self, event: dict[str, Any]) -> None:
        """Book event -> every listening trade stream (runs on the server loop)."""
        if not self._trade_ws:
            self.events_lost += 1
            return
        payload = json.dumps({"stream": "trade_updates", "data": event}).encode()
        for ws, outbox in list(self._trade_ws.items()):
            if ws.closed:
                self._trade_ws.pop(ws, None)
                continue
            outbox.put_nowait(payload)  # one writer per connection keeps the order
            self.events_sent += 1

    # -- REST -----------------------------------------------------------------------------------
    def _fault_for(self, method: str, path: str) -> AlpacaFault | None:
        with self._lock:
            chosen = None
            for fault in self.faults:
                if fault.path not in path or (fault.method and fault.method != method):
                    continue
                fault.seen += 1
                last = None if fault.times < 0 else fault.at + fault.times - 1
                due = fault.seen >= fault.at and (last is None or fault.seen <= last)
                if due and chosen is None:
                    chosen = fault
                    fault.fired += 1
            return chosen

    def _record(self, method: str, path: str, status: int | None) -> None:
        with self._lock:
            self.requests.append((method, path, status))

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        path, method = request.path, request.method
        if path == "/stream" or (
            path.startswith("/v2/")
            and path.count("/") == 2
            and path[4:] in ("iex", "sip", "test", "delayed_sip")
        ):
            if self._refuse_streams > 0:
                self._refuse_streams -= 1
                return web.json_response({"message": "service unavailable"}, status=503)
            return await handler(request)  # type: ignore[no-any-return]
        if (
            request.headers.get("APCA-API-KEY-ID") != self.key_id
            or request.headers.get("APCA-API-SECRET-KEY") != self.secret_key
        ):
            self.auth_failures += 1
            self._record(method, path, 401)
            return web.json_response(
                {"code": 40110000, "message": "request is not authorized"}, status=401
            )
        fault = self._fault_for(method, path)
        if fault is not None and fault.kind == "drop":
            self._record(method, path, None)
            _abort(request)
            raise web.HTTPException()  # never sent: the connection is gone
        if fault is not None and fault.kind == "status":
            headers = {}
            if fault.retry_after is not None:
                headers["Retry-After"] = f"{fault.retry_after:g}"
            self._record(method, path, fault.status)
            body = (
                {"code": 42910000, "message": "rate limit exceeded"}
                if fault.status == 429
                else {"code": 50010000, "message": "internal server error occurred"}
            )
            return web.json_response(body, status=fault.status, headers=headers)
        try:
            response: web.StreamResponse = await handler(request)
        except BookError as exc:
            response = web.json_response(
                {"code": exc.code, "message": exc.message}, status=exc.status
            )
        if fault is not None and fault.kind == "lost":
            self._record(method, path, None)
            _abort(request)
            raise web.HTTPException()
        if fault is not None and fault.kind == "hang":
            await asyncio.sleep(fault.hang_s)
        self._record(method, path, response.status)
        return response

    async def _account(self, request: web.Request) -> web.Response:
        return web.json_response(self.book.account())

    async def _clock(self, request: web.Request) -> web.Response:
        now = self.book.now_ns
        cal = self.calendar()
        is_open = cal.is_open(now)
        return web.json_response(
            {
                "timestamp": iso(now),
                "is_open": is_open,
                "next_open": iso(cal.next_open(now + (1 if is_open else 0))),
                "next_close": iso(cal.next_close(now)),
            }
        )

    async def _asset(self, request: web.Request) -> web.Response:
        symbol = request.match_info["symbol"].upper()
        if symbol not in self.series:
            raise BookError(404, 40410000, "asset not found")
        return web.json_response(
            {
                "id": asset_id(symbol),
                "class": "us_equity",
                "exchange": "ARCA",
                "symbol": symbol,
                "name": f"{symbol} (recorded)",
                "status": "active",
                "tradable": True,
                "marginable": True,
                "shortable": True,
                "easy_to_borrow": True,
                "fractionable": True,
                "min_order_size": "0.000000001",
                "min_trade_increment": "0.000000001",
                "price_increment": "0.01",
                "maintenance_margin_requirement": 30,
                "attributes": ["fractional_eh_enabled"],
            }
        )

    async def _submit(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            raise BookError(400, 40010000, "request body format is invalid") from None
        if not isinstance(body, dict):
            raise BookError(400, 40010000, "request body format is invalid")
        order = self.book.submit(body)
        return web.json_response(order.wire())

    async def _list_orders(self, request: web.Request) -> web.Response:
        status = request.query.get("status", "open")
        symbols = {s for s in request.query.get("symbols", "").split(",") if s}
        nested = request.query.get("nested") in ("true", "True", "1")

        def live(o: Any) -> bool:  # nested: a bracket counts as open while a leg works
            return bool(o.is_open or (nested and any(leg.is_open for leg in o.legs)))

        orders = [o for o in self.book.orders.values() if o.parent is None or not nested]
        if status == "open":
            orders = [o for o in orders if live(o)]
        elif status == "closed":
            orders = [o for o in orders if not live(o)]
        if symbols:
            orders = [o for o in orders if o.symbol in symbols]
        direction = request.query.get("direction", "desc")
        orders.sort(key=lambda o: o.created_at, reverse=direction == "desc")
        limit = int(request.query.get("limit", "50"))
        return web.json_response([o.wire() for o in orders[:limit]])

    async def _cancel_all(self, request: web.Request) -> web.Response:
        cancelled = self.book.cancel_all()
        return web.json_response(
            [{"id": o.id, "status": 200, "body": o.wire()} for o in cancelled], status=207
        )

    async def _by_client_id(self, request: web.Request) -> web.Response:
        order = self.book.by_client_id.get(request.query.get("client_order_id", ""))
        if order is None:
            raise BookError(404, 40410000, "order not found")
        return web.json_response(order.wire())

    async def _get_order(self, request: web.Request) -> web.Response:
        order = self.book.orders.get(request.match_info["order_id"])
        if order is None:
            raise BookError(404, 40410000, "order not found")
        return web.json_response(order.wire())

    async def _cancel(self, request: web.Request) -> web.Response:
        self.book.cancel(request.match_info["order_id"])
        return web.Response(status=204)

    async def _positions(self, request: web.Request) -> web.Response:
        return web.json_response([self.book.position_wire(s) for s in self.book.positions])

    async def _position(self, request: web.Request) -> web.Response:
        symbol = request.match_info["symbol"].upper()
        if symbol not in self.book.positions:
            raise BookError(404, 40410000, "position does not exist")
        return web.json_response(self.book.position_wire(symbol))

    async def _close_position(self, request: web.Request) -> web.Response:
        symbol = request.match_info["symbol"].upper()
        qty = request.query.get("qty")
        order = self.book.close_position(symbol, float(qty) if qty else None)
        return web.json_response(order.wire())

    async def _close_all(self, request: web.Request) -> web.Response:
        if request.query.get("cancel_orders") in ("true", "True", "1"):
            self.book.cancel_all()
        out = []
        for symbol in list(self.book.positions):
            order = self.book.close_position(symbol)
            out.append({"symbol": symbol, "status": 200, "body": order.wire()})
        return web.json_response(out, status=207)

    async def _latest_trades(self, request: web.Request) -> web.Response:
        """The latest trade of each symbol: the last published bar's close (the account's
        mark), stamped at its close."""
        out: dict[str, Any] = {}
        for symbol in (s for s in request.query.get("symbols", "").split(",") if s):
            mark = self.book.marks.get(symbol)
            if mark is not None:
                out[symbol] = {
                    "t": iso(self.book.now_ns),
                    "x": "V",
                    "p": mark,
                    "s": 100,
                    "c": ["@"],
                    "i": 1,
                    "z": "C",
                }
        return web.json_response({"trades": out})

    async def _bars(self, request: web.Request) -> web.Response:
        q = request.query
        if q.get("timeframe") not in ("1Min", "1T"):
            raise BookError(422, 42210000, f"unsupported timeframe {q.get('timeframe')!r}")
        import pandas as pd

        symbols = [s for s in q.get("symbols", "").split(",") if s]
        start = pd.Timestamp(q["start"]).value if q.get("start") else 0
        end = pd.Timestamp(q["end"]).value if q.get("end") else 2**62
        limit = min(int(q.get("limit") or 1000), self.max_page)
        token = q.get("page_token") or ""
        # only what the venue has published (never a bar still to come)
        horizon = self.book.now_ns
        out: dict[str, list[dict[str, Any]]] = {}
        items: list[tuple[str, int]] = []
        for symbol in sorted(symbols):
            series = self.series.get(symbol)
            if series is None:
                continue
            lo = int(np.searchsorted(series.ts, start, side="left"))
            hi = int(np.searchsorted(series.ts, min(end, horizon - MINUTE_NS), side="right"))
            items += [(symbol, i) for i in range(lo, hi)]
        offset = int(token) if token else 0
        page = items[offset : offset + limit]
        for symbol, i in page:
            o, h, low, c, v = (float(x) for x in self.series[symbol].ohlcv[i])
            out.setdefault(symbol, []).append(
                {
                    "t": iso(int(self.series[symbol].ts[i])),
                    "o": o,
                    "h": h,
                    "l": low,
                    "c": c,
                    "v": int(v),
                    "n": None,  # not recorded
                    "vw": None,
                }
            )
        nxt = str(offset + limit) if offset + limit < len(items) else None
        return web.json_response({"bars": out, "next_page_token": nxt})

    # -- streams ----------------------------------------------------------------------------------
    async def _trade_stream(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        outbox: asyncio.Queue[bytes] = asyncio.Queue()

        async def writer() -> None:
            while True:
                payload = await outbox.get()
                await ws.send_bytes(payload)

        sending = asyncio.ensure_future(writer())
        try:
            await self._trade_session(ws, outbox)
        finally:
            sending.cancel()
            with contextlib.suppress(BaseException):
                await sending
            self._trade_ws.pop(ws, None)
        return ws

    async def _trade_session(self, ws: web.WebSocketResponse, outbox: asyncio.Queue[bytes]) -> None:
        authed = False
        async for msg in ws:
            if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                break
            try:
                req = json.loads(msg.data)
            except ValueError:
                await ws.send_bytes(b'{"stream":"error","data":{"error":"invalid syntax"}}')
                continue
            action = req.get("action")
            data = req.get("data") or {}
            if action == "authenticate":
                authed = (
                    data.get("key_id") == self.key_id and data.get("secret_key") == self.secret_key
                )
                status = "authorized" if authed else "unauthorized"
                if not authed:
                    self.auth_failures += 1
                await ws.send_bytes(
                    json.dumps(
                        {
                            "stream": "authorization",
                            "data": {"action": "authenticate", "status": status},
                        }
                    ).encode()
                )
                if not authed:
                    await ws.close()
                    break
            elif action == "listen" and authed:
                streams = list(data.get("streams") or [])
                await ws.send_bytes(
                    json.dumps({"stream": "listening", "data": {"streams": streams}}).encode()
                )
                if "trade_updates" in streams:
                    self._trade_ws[ws] = outbox
                else:
                    self._trade_ws.pop(ws, None)

    async def _data_stream(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["feed"] not in ("iex", "sip", "test", "delayed_sip"):
            raise web.HTTPNotFound()
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        packed = "msgpack" in request.headers.get("Content-Type", "")

        def encode(obj: Any) -> bytes | str:
            return msgpack.packb(obj) if packed else json.dumps(obj)

        async def send(obj: Any) -> None:
            frame = encode(obj)
            if isinstance(frame, bytes):
                await ws.send_bytes(frame)
            else:
                await ws.send_str(frame)

        await send([{"T": "success", "msg": "connected"}])
        authed = False
        async for msg in ws:
            if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                break
            try:
                req = (
                    msgpack.unpackb(msg.data)
                    if msg.type == WSMsgType.BINARY
                    else json.loads(msg.data)
                )
            except Exception:
                await send([{"T": "error", "code": 400, "msg": "invalid syntax"}])
                continue
            action = req.get("action")
            if action == "auth":
                authed = req.get("key") == self.key_id and req.get("secret") == self.secret_key
                if authed:
                    await send([{"T": "success", "msg": "authenticated"}])
                else:
                    self.auth_failures += 1
                    await send([{"T": "error", "code": 402, "msg": "auth failed"}])
                    await ws.close()
                    break
            elif not authed:
                await send([{"T": "error", "code": 401, "msg": "not authenticated"}])
            elif action in ("subscribe", "unsubscribe"):
                subs = self._data_ws.setdefault(ws, set())
                bars = set(req.get("bars") or [])
                if action == "subscribe":
                    subs |= bars
                else:
                    subs -= bars
                await send(
                    [
                        {
                            "T": "subscription",
                            "trades": [],
                            "quotes": [],
                            "bars": sorted(subs),
                            "updatedBars": [],
                            "dailyBars": [],
                            "statuses": [],
                            "lulds": [],
                            "corrections": [],
                            "cancelErrors": [],
                        }
                    ]
                )
        self._data_ws.pop(ws, None)
        return ws


class _Sessions:
    """Session opens and closes of an ``exchange_calendars`` calendar (UTC ns)."""

    def __init__(self, name: str) -> None:
        import warnings

        import exchange_calendars as xcals
        import pandas as pd

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            cal = xcals.get_calendar(name, start="2005-01-01")

        def ns(col: Any) -> np.ndarray:
            idx = pd.DatetimeIndex(col)
            if idx.tz is not None:
                idx = idx.tz_convert("UTC").tz_localize(None)
            return np.asarray(idx.as_unit("ns").asi8, dtype=np.int64)

        self.opens = ns(cal.opens)
        self.closes = ns(cal.closes)

    def is_open(self, ts: int) -> bool:
        i = int(np.searchsorted(self.opens, ts, side="right")) - 1
        return i >= 0 and ts < int(self.closes[i])

    def next_open(self, ts: int) -> int:
        i = int(np.searchsorted(self.opens, ts, side="left"))
        return int(self.opens[min(i, len(self.opens) - 1)])

    def next_close(self, ts: int) -> int:
        i = int(np.searchsorted(self.closes, ts, side="right"))
        return int(self.closes[min(i, len(self.closes) - 1)])


def _abort(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.abort()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tradeloop.testing.venue.alpaca``: serve the recording until Ctrl-C."""
    import argparse

    from tradeloop.testing._serve import add_data_folder_argument, missing_data_folder

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_folder_argument(parser, "--data")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds per bar")
    parser.add_argument("--start", type=int, default=0, help="first bar to publish")
    args = parser.parse_args(argv)
    if missing_data_folder(args.data):
        return 2
    server = AlpacaServer([load_equity_minutes(args.data)], port=args.port, start=args.start)
    server.start()
    print(server.url, flush=True)
    server.run_timer(args.interval)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
