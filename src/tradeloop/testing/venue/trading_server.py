"""A local Binance trading venue: signed REST order endpoints and the user-data WebSockets.

One loopback port (aiohttp) answers, in Binance's wire format, to the UNMODIFIED ccxt client:

* spot ``/api/v3``: ``order`` (POST/GET/DELETE), ``openOrders``, ``allOrders``, ``myTrades``,
  ``account``, ``userDataStream``; order lists: ``orderList/oco`` (POST), ``orderList``
  (DELETE), legs one-cancels-other with the quantity locked once, ``listStatus`` events;
* USD-M ``/fapi/v1``: ``order``, ``openOrders``, ``allOrders``, ``userTrades``, ``leverage``,
  ``marginType``, ``listenKey``, ``positionSide/dual``; the Algo Service's conditional orders
  (``algoOrder`` POST/GET/DELETE, ``openAlgoOrders``, ``allAlgoOrders``: STOP_MARKET and
  TAKE_PROFIT_MARKET, ``ALGO_UPDATE`` events; a triggered one places a MARKET order with the
  same client id in the matching engine); ``/fapi/v2|v3``: ``account``,
  ``balance``, ``positionRisk``;
* every other GET (``exchangeInfo``, ``klines``...) from the recorded market data
  (:func:`tradeloop.testing.venue.binance.route` over a :class:`LocalVenueServer`);
* user-data streams: spot through the WebSocket API (``/ws-api/v3``,
  ``userDataStream.subscribe.signature``, events ``{"subscriptionId", "event":
  executionReport}``), USD-M through a listen key (``/private/ws?listenKey=`` and
  ``/ws/<listenKey>``, ``ORDER_TRADE_UPDATE`` events).

Private requests must carry ``X-MBX-APIKEY`` and a valid HMAC-SHA256 ``signature`` of the
query (GET/DELETE) or body (POST/PUT); otherwise ``-2014``/``-1022`` like Binance.

Faults (:class:`TradingFault`): an HTTP status (5xx, 429/418 with ``Retry-After``), a dropped
connection before the request is processed, ``lost`` (processed - the order is placed - then the
connection is dropped: the answer is lost), a ``reject`` with Binance's ``-2010``; plus
:meth:`LocalBinanceExchange.drop_streams` (every user-data connection closed) and
:attr:`BinanceBook.partial_fills`.

The fill rule and the accounts are :class:`~tradeloop.testing.venue.trading.BinanceBook`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

import numpy as np
from aiohttp import WSMsgType, web

from tradeloop.testing.venue import binance as market_routes
from tradeloop.testing.venue.data import VenueData
from tradeloop.testing.venue.server import LocalVenueServer
from tradeloop.testing.venue.trading import BinanceBook, RefusedError

__all__ = ["LocalBinanceExchange", "ReplayPrices", "TradingFault"]

logger = logging.getLogger(__name__)

API_KEY = "local-test-key"
API_SECRET = "local-test-secret"  # a test venue's secret (no real account behind it)


@dataclass
class TradingFault:
    """Fail matching requests ``at`` .. ``at + times - 1`` (1-based, counted from when added).

    ``kind``: ``status`` (answer ``status``, with ``Retry-After`` when given), ``drop`` (close
    the connection before processing), ``lost`` (process, then close: the answer is lost),
    ``slow`` (process, then answer after ``delay_s``: the venue has the order, the client still
    waits for its acknowledgement) or ``reject`` (Binance ``-2010`` with ``message``). ``path``
    is a substring of the request path; ``method`` restricts it to one HTTP method.
    """

    kind: str
    path: str = ""
    method: str | None = None
    status: int = 503
    at: int = 1
    times: int = 1
    retry_after: float | None = None
    message: str = "Order rejected by the venue."
    delay_s: float = 0.0
    seen: int = field(default=0, init=False)
    fired: int = field(default=0, init=False)


class ReplayPrices:
    """Current prices from recorded 1m candles at a clock (a replay server's bar time).

    ``clock() -> bar_ms | None``; a symbol's price is the open of that bar.
    """

    def __init__(self, data: VenueData, clock: Callable[[], int | None]) -> None:
        self.data = data
        self.clock = clock

    def price(self, symbol_id: str, market: str) -> tuple[int, float] | None:
        """``(bar_ms, open)`` of the bar the clock is in."""
        now = self.clock()
        candles = self.data.candles("binance", market, symbol_id, "1m")
        if now is None or candles is None:
            return None
        i = int(np.searchsorted(candles.ts, now, side="right")) - 1
        if i < 0:
            return None
        return int(candles.ts[i]), float(candles.open[i])

    def bars(
        self, symbol_id: str, market: str, from_ms: int, to_ms: int
    ) -> list[tuple[int, float, float, float, float]]:
        """Bars opened in ``(from_ms, to_ms]``."""
        c = self.data.candles("binance", market, symbol_id, "1m")
        if c is None:
            return []
        lo = int(np.searchsorted(c.ts, from_ms, side="right"))
        hi = int(np.searchsorted(c.ts, to_ms, side="right"))
        return [
            (int(c.ts[i]), float(c.open[i]), float(c.high[i]), float(c.low[i]), float(c.close[i]))
            for i in range(lo, hi)
        ]


class LocalBinanceExchange:
    """The local trading venue (see the module docstring). Use as a context manager.

    Parameters
    ----------
    data
        Recorded market data (markets, candles).
    clock
        Bar time (ms) of the market now, e.g. a replay server's; prices are that bar's open.
    api_key, api_secret
        The only credentials accepted.
    balances, futures_wallet
        Starting spot balances and USD-M wallet.
    """

    def __init__(
        self,
        data: VenueData,
        clock: Callable[[], int | None],
        *,
        api_key: str = API_KEY,
        api_secret: str = API_SECRET,
        balances: dict[str, float] | None = None,
        futures_wallet: float = 10_000.0,
        host: str = "127.0.0.1",
    ) -> None:
        self.data = data
        self.api_key = api_key
        self._secret = api_secret.encode()
        self.prices = ReplayPrices(data, clock)
        symbols = {
            (market, sid): (spec.base, spec.quote)
            for (venue, market), specs in data.markets.items()
            if venue == "binance"
            for sid, spec in specs.items()
        }
        self.book = BinanceBook(
            self.prices.price,
            self.prices.bars,
            symbols,
            balances=dict(balances or {"USDT": 10_000.0}),
            futures_wallet=futures_wallet,
        )
        self.market = LocalVenueServer(data)  # market-data routes (and their weights)
        self.faults: list[TradingFault] = []
        self.requests: list[tuple[str, str, int | None]] = []
        self.listen_keys: set[str] = set()
        self.stream_connections = 0
        self._ws: set[tuple[web.WebSocketResponse, str, int | None]] = set()
        self._host = host
        self._port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._lock = threading.Lock()
        self._tasks: set[asyncio.Future[None]] = set()
        self.book.subscribe(self._on_event)

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self._host}:{self._port}"

    @property
    def ws_url(self) -> str:
        """``ws://127.0.0.1:PORT``."""
        return f"ws://{self._host}:{self._port}"

    def start(self) -> LocalBinanceExchange:
        """Serve on a background thread."""
        self._thread = threading.Thread(target=self._main, name="local-binance", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("local Binance venue did not start")
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(5)
        with contextlib.suppress(Exception):
            self.market.stop()

    def __enter__(self) -> LocalBinanceExchange:
        self.market.start()
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        loop.run_until_complete(self._serve())
        loop.close()

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_get("/ws-api/v3", self._ws_api)
        app.router.add_get("/private/ws", self._ws_listen_key)
        app.router.add_get("/ws/{key}", self._ws_listen_key)
        app.router.add_route("*", "/{tail:.*}", self._http)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, 0)
        await site.start()
        server = site._server
        assert server is not None
        self._port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self._stopping = asyncio.Event()
        clock = asyncio.ensure_future(self._clock())
        self._ready.set()
        await self._stopping.wait()
        clock.cancel()
        for ws, _kind, _sub in list(self._ws):
            with contextlib.suppress(Exception):
                await ws.close()
        await self._runner.cleanup()

    async def _clock(self) -> None:
        while True:
            await asyncio.sleep(0.01)
            try:
                self.book.advance()
            except Exception:
                logger.exception("local venue clock failed")

    # -- faults ----------------------------------------------------------------------------
    def add_fault(self, fault: TradingFault) -> TradingFault:
        """Inject ``fault`` from now on."""
        with self._lock:
            self.faults.append(fault)
        return fault

    def drop_streams(self) -> int:
        """Close every user-data WebSocket (a stream disconnect); return how many."""
        loop = self._loop
        assert loop is not None
        conns = list(self._ws)

        async def close_all() -> None:
            for ws, _k, _s in conns:
                with contextlib.suppress(Exception):
                    await ws.close(code=1006)

        asyncio.run_coroutine_threadsafe(close_all(), loop).result(5)
        return len(conns)

    def count(self, path_part: str, method: str | None = None) -> int:
        """Requests whose path contains ``path_part`` (and ``method``)."""
        with self._lock:
            return sum(1 for m, p, _s in self.requests if path_part in p and (method in (None, m)))

    def _fault_for(self, method: str, path: str) -> TradingFault | None:
        with self._lock:
            for fault in self.faults:
                if fault.path not in path or (fault.method not in (None, method)):
                    continue
                fault.seen += 1
                last = fault.at + fault.times - 1 if fault.times >= 0 else None
                if fault.seen >= fault.at and (last is None or fault.seen <= last):
                    fault.fired += 1
                    return fault
            return None

    # -- HTTP ------------------------------------------------------------------------------
    async def _http(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        method = request.method
        body = await request.text() if method in ("POST", "PUT") else ""
        raw = body if method in ("POST", "PUT") else request.query_string
        q = dict(parse_qsl(raw, keep_blank_values=True))
        fault = self._fault_for(method, path) if _is_trading(path) else None
        if fault is not None and fault.kind == "drop":
            self._record(method, path, None)
            _abort(request)
            return web.Response(status=500)
        if fault is not None and fault.kind == "status":
            self._record(method, path, fault.status)
            headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after else {}
            code = -1003 if fault.status in (418, 429) else -1001
            msg = (
                "Too many requests; current limit of IP is exceeded."
                if code == -1003
                else "Internal error; unable to process your request. Please try again."
            )
            return _json({"code": code, "msg": msg}, fault.status, headers)
        if fault is not None and fault.kind == "reject":
            self.book.reject_next.append(fault.message)
        try:
            status, payload, headers = self._dispatch(method, path, q, raw, request)
        except RefusedError as exc:
            status, payload, headers = exc.status, {"code": exc.code, "msg": exc.msg}, {}
        if fault is not None and fault.kind == "slow":
            await asyncio.sleep(fault.delay_s)
        if fault is not None and fault.kind == "lost":
            self._record(method, path, None)
            _abort(request)
            return web.Response(status=500)
        self._record(method, path, status)
        return _json(payload, status, headers)

    def _record(self, method: str, path: str, status: int | None) -> None:
        with self._lock:
            self.requests.append((method, path, status))

    def _dispatch(
        self, method: str, path: str, q: dict[str, str], raw: str, request: web.Request
    ) -> tuple[int, Any, dict[str, str]]:
        # a venue matches continuously: the bars that opened since the clock's last tick are
        # applied before any request reads or changes the book (a cancel never beats a fill
        # that already happened)
        self.book.advance()
        if path.startswith("/api/v3/"):
            market, name = "spot", path[len("/api/v3/") :]
        elif path.startswith(("/fapi/v1/", "/fapi/v2/", "/fapi/v3/")):
            market, name = "linear", path[len("/fapi/v1/") :]
        else:
            market, name = "", path
        key = (market, name, method)
        if key in _PUBLIC_KEYED:  # listen keys: API key only, no signature
            self._check_key(request)
            return 200, self._listen_key(method, q), {}
        if key not in _PRIVATE:
            if method != "GET":
                return 404, {"code": -1, "msg": f"unknown endpoint {method} {path}"}, {}
            response = market_routes.route(self.market, path, q)
            if response is None:
                response = self.market._answer(path, q)
            return response.status, response.body, dict(response.headers)
        self._check_key(request)
        self._check_signature(raw)
        if "timestamp" not in q:
            raise RefusedError(-1102, "Mandatory parameter 'timestamp' was not sent.")
        book = self.book
        if name == "order":
            if method == "POST":
                order = book.place(market, q)
                return 200, book.order_json(order, fills=market == "spot"), {}
            if method == "GET":
                return 200, book.order_json(book.find(market, q)), {}
            return 200, book.order_json(book.cancel(market, q)), {}
        if name == "orderList/oco":
            return 200, book.list_json(book.place_oco(q)), {}
        if name == "orderList" and method == "DELETE":
            return 200, book.list_json(book.cancel_list(q)), {}
        if name == "algoOrder":
            if method == "POST":
                return 200, book.algo_json(book.place_algo(q)), {}
            if method == "GET":
                return 200, book.algo_json(book.find_algo(q)), {}
            algo = book.cancel_algo(q)
            return (
                200,
                {
                    "algoId": algo.algo_id,
                    "clientAlgoId": algo.client_id,
                    "code": "200",
                    "msg": "success",
                },
                {},
            )
        if name == "openAlgoOrders":
            return 200, [book.algo_json(a) for a in book.open_algos(q.get("symbol"))], {}
        if name == "allAlgoOrders":
            sym = q.get("symbol")
            return 200, [book.algo_json(a) for a in book.algos if a.symbol == sym], {}
        if name == "openOrders":
            return 200, [book.order_json(o) for o in book.open_orders(market, q.get("symbol"))], {}
        if name == "allOrders":
            return 200, [book.order_json(o) for o in book.all_orders(market, q["symbol"])], {}
        if name in ("myTrades", "userTrades"):
            return 200, [book.trade_json(t) for t in book.my_trades(market, q["symbol"], q)], {}
        if name == "account":
            return 200, book.spot_account() if market == "spot" else book.futures_account(), {}
        if name == "balance":
            return 200, book.futures_account()["assets"], {}
        if name == "positionRisk":
            return 200, book.positions_json(q.get("symbol")), {}
        if name == "leverage":
            book.set_leverage(q["symbol"], int(q["leverage"]))
            return (
                200,
                {
                    "leverage": int(q["leverage"]),
                    "maxNotionalValue": "1000000",
                    "symbol": q["symbol"],
                },
                {},
            )
        if name == "marginType":
            book.set_margin_type(q["symbol"], q["marginType"])
            return 200, {"code": 200, "msg": "success"}, {}
        if name == "leverageBracket":
            sids = [q["symbol"]] if "symbol" in q else [s for m, s in book.symbols if m == market]
            return 200, [_brackets(s) for s in sids], {}
        if name == "positionSide/dual":
            return 200, {"dualSidePosition": False}, {}
        return 404, {"code": -1, "msg": f"unknown endpoint {path}"}, {}

    def _check_key(self, request: web.Request) -> None:
        if request.headers.get("X-MBX-APIKEY") != self.api_key:
            raise RefusedError(-2014, "API-key format invalid.", 401)

    def _check_signature(self, raw: str) -> None:
        query, sep, signature = raw.rpartition("&signature=")
        if not sep:
            raise RefusedError(-1102, "Mandatory parameter 'signature' was not sent.")
        expected = hmac.new(self._secret, query.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise RefusedError(-1022, "Signature for this request is not valid.", 401)

    def _listen_key(self, method: str, q: dict[str, str]) -> dict[str, Any]:
        if method == "POST":
            key = secrets.token_hex(16)
            self.listen_keys.add(key)
            return {"listenKey": key}
        return {}

    # -- WebSockets ------------------------------------------------------------------------
    async def _ws_api(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        entry: tuple[web.WebSocketResponse, str, int | None] | None = None
        self.stream_connections += 1
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                req = json.loads(msg.data)
                rid = req.get("id")
                if req.get("method") != "userDataStream.subscribe.signature":
                    await ws.send_str(
                        json.dumps(
                            {
                                "id": rid,
                                "status": 400,
                                "error": {"code": -1100, "msg": "unknown method"},
                            }
                        )
                    )
                    continue
                params = dict(req.get("params") or {})
                signature = params.pop("signature", "")
                query = urlencode(sorted(params.items()))
                expected = hmac.new(self._secret, query.encode(), hashlib.sha256).hexdigest()
                if params.get("apiKey") != self.api_key or not hmac.compare_digest(
                    expected, signature
                ):
                    await ws.send_str(
                        json.dumps(
                            {
                                "id": rid,
                                "status": 401,
                                "error": {
                                    "code": -1022,
                                    "msg": "Signature for this request is not valid.",
                                },
                            }
                        )
                    )
                    continue
                await ws.send_str(
                    json.dumps({"id": rid, "status": 200, "result": {"subscriptionId": 0}})
                )
                entry = (ws, "spot", 0)
                self._ws.add(entry)
        finally:
            if entry is not None:
                self._ws.discard(entry)
        return ws

    async def _ws_listen_key(self, request: web.Request) -> web.WebSocketResponse:
        key = request.query.get("listenKey") or request.match_info.get("key", "")
        if key not in self.listen_keys:
            raise web.HTTPBadRequest(text='{"code":-1125,"msg":"This listenKey does not exist."}')
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        entry = (ws, "linear", None)
        self._ws.add(entry)
        self.stream_connections += 1
        try:
            async for _msg in ws:
                pass
        finally:
            self._ws.discard(entry)
        return ws

    def _on_event(self, market: str, event: dict[str, Any]) -> None:
        loop = self._loop
        if loop is None:
            return
        for ws, kind, sub in list(self._ws):
            if kind != market:
                continue
            frame = {"subscriptionId": sub, "event": event} if sub is not None else event
            text = json.dumps(frame)
            if _in_loop(loop):
                task = asyncio.ensure_future(_send(ws, text))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            else:
                asyncio.run_coroutine_threadsafe(_send(ws, text), loop)


_PRIVATE = {
    ("spot", "order", "POST"),
    ("spot", "order", "GET"),
    ("spot", "order", "DELETE"),
    ("spot", "openOrders", "GET"),
    ("spot", "allOrders", "GET"),
    ("spot", "myTrades", "GET"),
    ("spot", "account", "GET"),
    ("spot", "orderList/oco", "POST"),
    ("spot", "orderList", "DELETE"),
    ("linear", "order", "POST"),
    ("linear", "order", "GET"),
    ("linear", "order", "DELETE"),
    ("linear", "openOrders", "GET"),
    ("linear", "algoOrder", "POST"),
    ("linear", "algoOrder", "GET"),
    ("linear", "algoOrder", "DELETE"),
    ("linear", "openAlgoOrders", "GET"),
    ("linear", "allAlgoOrders", "GET"),
    ("linear", "allOrders", "GET"),
    ("linear", "userTrades", "GET"),
    ("linear", "account", "GET"),
    ("linear", "balance", "GET"),
    ("linear", "positionRisk", "GET"),
    ("linear", "leverage", "POST"),
    ("linear", "marginType", "POST"),
    ("linear", "positionSide/dual", "GET"),
    ("linear", "leverageBracket", "GET"),
}
_PUBLIC_KEYED = {("spot", "userDataStream", m) for m in ("POST", "PUT", "DELETE")} | {
    ("linear", "listenKey", m) for m in ("POST", "PUT", "DELETE")
}


def _brackets(symbol: str) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "notionalCoef": 1.0,
        "brackets": [
            {
                "bracket": 1,
                "initialLeverage": 125,
                "notionalCap": 50_000,
                "notionalFloor": 0,
                "maintMarginRatio": 0.004,
                "cum": 0.0,
            },
            {
                "bracket": 2,
                "initialLeverage": 100,
                "notionalCap": 10_000_000,
                "notionalFloor": 50_000,
                "maintMarginRatio": 0.005,
                "cum": 50.0,
            },
        ],
    }


def _is_trading(path: str) -> bool:
    return path.startswith(("/api/v3/", "/fapi/")) and not path.endswith(
        ("exchangeInfo", "klines", "time", "ping", "depth", "aggTrades", "fundingRate")
    )


def _json(payload: Any, status: int, headers: dict[str, str]) -> web.Response:
    return web.Response(
        text=json.dumps(payload, separators=(",", ":")),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def _abort(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.abort()


def _in_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


async def _send(ws: web.WebSocketResponse, text: str) -> None:
    with contextlib.suppress(Exception):
        if not ws.closed:
            await ws.send_str(text)
