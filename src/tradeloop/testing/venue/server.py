"""A real HTTP server on loopback that speaks exchange REST APIs from recorded data.

It answers the Binance spot (``/api/v3``) and USD-M (``/fapi/v1``, ``/futures/data``)
endpoints and the Bybit v5 market endpoints that ccxt calls to load markets and fetch
history, in the exchanges' JSON shapes, page limits and rate-limit headers. Faults can be
injected on chosen requests: HTTP errors (429 and 418 with ``Retry-After``, 5xx) and dropped
connections (the socket is closed without an answer).

>>> from tradeloop.testing.venue import LocalVenueServer, VenueData
>>> with LocalVenueServer(VenueData()) as server:
...     server.url.startswith("http://127.0.0.1:")
True
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tradeloop.testing._serve import BackgroundHTTPServer
from tradeloop.testing.venue.data import VenueData

__all__ = ["Fault", "LocalVenueServer", "RequestRecord", "Response"]


@dataclass
class Fault:
    """Fail matching requests number ``at`` .. ``at + times - 1``, counted from when the fault
    is added (1-based; ``times=-1``: every one from ``at`` on).

    Attributes
    ----------
    status
        HTTP status to answer (429, 418, 500, 502, 503...), or None to drop the connection.
    path
        Substring of the request path a request must contain to match ("" matches all).
    at
        First matching request that fails.
    times
        How many consecutive matching requests fail; -1 for every one from ``at`` on.
    retry_after
        Value of the ``Retry-After`` header (seconds), if any.
    """

    status: int | None
    path: str = ""
    at: int = 1
    times: int = 1
    retry_after: float | None = None
    seen: int = field(default=0, init=False)
    fired: int = field(default=0, init=False)


@dataclass(frozen=True, slots=True)
class Response:
    """An answer: status, JSON-serializable body, extra headers."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request the server saw and what it answered (``status`` None: dropped)."""

    path: str
    query: dict[str, str]
    status: int | None


Route = Callable[["LocalVenueServer", str, dict[str, str]], Response | None]


class LocalVenueServer(BackgroundHTTPServer):
    """Serve :class:`VenueData` over HTTP on ``host`` (loopback) and a free port.

    Parameters
    ----------
    data
        The recorded series to serve.
    faults
        Faults to inject (more can be added with :meth:`add_fault`).
    weight_limits
        Request weight allowed per minute for each API (``spot``, ``fapi``), as Binance
        enforces: past it the server answers 429 with ``Retry-After``.
    delay_s
        Sleep before answering each request (to make a fetch slow enough to interrupt).
    """

    _thread_name = "local-venue"

    def __init__(
        self,
        data: VenueData,
        *,
        faults: list[Fault] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        weight_limits: dict[str, int] | None = None,
        delay_s: float = 0.0,
    ) -> None:
        from tradeloop.testing.venue import binance, bybit

        self.data = data
        self.faults: list[Fault] = list(faults or [])
        self.weight_limits = {"spot": 6000, "fapi": 2400, **(weight_limits or {})}
        self.delay_s = delay_s
        self.requests: list[RequestRecord] = []
        self._weights: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()
        self._routes: list[Route] = [binance.route, bybit.route]
        self._bind(host, port, _make_handler(self))

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321``."""
        return self._base_url

    # ------------------------------------------------------------------ faults and stats

    def add_fault(self, fault: Fault) -> Fault:
        """Inject ``fault`` from now on; returns it (its ``fired`` counts the failures)."""
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        """Remove every fault (the server answers normally again)."""
        with self._lock:
            self.faults.clear()

    def count(self, path_part: str = "", status: int | str | None = "any") -> int:
        """Return how many requests had ``path_part`` in their path (and ``status``)."""
        with self._lock:
            return sum(
                1
                for r in self.requests
                if path_part in r.path and (status == "any" or r.status == status)
            )

    def use_weight(self, api: str, weight: int) -> tuple[int, float | None]:
        """Add ``weight`` to the current minute of ``api``; return (used, retry_after or None)."""
        now = time.time()
        minute = int(now // 60)
        with self._lock:
            start, used = self._weights.get(api, (minute, 0))
            if start != minute:
                used = 0
            used += weight
            self._weights[api] = (minute, used)
        limit = self.weight_limits.get(api)
        if limit is not None and used > limit:
            return used, float(int((minute + 1) * 60 - now) + 1)
        return used, None

    # ------------------------------------------------------------------ dispatch

    def _fault_for(self, path: str) -> Fault | None:
        with self._lock:
            chosen = None
            for fault in self.faults:
                if fault.path not in path:
                    continue
                fault.seen += 1
                last = None if fault.times < 0 else fault.at + fault.times - 1
                if fault.seen >= fault.at and (last is None or fault.seen <= last):
                    chosen = chosen or fault
                    if chosen is fault:
                        fault.fired += 1
            return chosen

    def _answer(self, path: str, query: dict[str, str]) -> Response:
        for route in self._routes:
            response = route(self, path, query)
            if response is not None:
                return response
        return Response(404, {"code": -1, "msg": f"no such endpoint {path}"})

    def _record(self, path: str, query: dict[str, str], status: int | None) -> None:
        with self._lock:
            self.requests.append(RequestRecord(path, query, status))


def _fault_response(fault: Fault, path: str) -> Response:
    headers = {}
    if fault.retry_after is not None:
        headers["Retry-After"] = f"{fault.retry_after:g}"
    if path.startswith("/v5/"):
        body: Any = {"retCode": 10006, "retMsg": "Too many visits!", "result": {}, "time": 0}
        if fault.status not in (429, 418):
            body = {"retCode": 10016, "retMsg": "Internal server error.", "result": {}}
    elif fault.status == 429:
        body = {"code": -1003, "msg": "Too many requests; current limit of IP is exceeded."}
    elif fault.status == 418:
        body = {"code": -1003, "msg": "Way too much request weight used; IP banned."}
    else:
        body = {"code": -1001, "msg": "Internal error; unable to process your request."}
    return Response(int(fault.status or 500), body, headers)


def _make_handler(server: LocalVenueServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = dict(parse_qsl(parts.query))
            path = parts.path
            if server.delay_s:
                time.sleep(server.delay_s)
            fault = server._fault_for(path)
            if fault is not None and fault.status is None:
                server._record(path, query, None)
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            try:
                response = (
                    _fault_response(fault, path)
                    if fault is not None
                    else server._answer(path, query)
                )
            except Exception as exc:  # a bug in a route must not hang the client
                response = Response(500, {"code": -1001, "msg": f"server error: {exc}"})
            server._record(path, query, response.status)
            payload = json.dumps(response.body, separators=(",", ":")).encode()
            self.send_response(response.status)
            self.send_header("Content-Type", "application/json;charset=UTF-8")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler
