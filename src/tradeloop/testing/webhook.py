"""A real HTTP server on loopback that captures webhook posts (Discord-style) for tests.

Every POST is recorded (path, headers, parsed JSON body, arrival time) and answered from a
script of (status, headers, body) answers, then with Discord's success answer, 204 No Content.
Answers can be delayed with :meth:`WebhookServer.hang`.

>>> with WebhookServer() as server:
...     server.url.startswith("http://127.0.0.1:")
True
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from tradeloop.testing._serve import BackgroundHTTPServer

__all__ = ["ScriptedAnswer", "WebhookPost", "WebhookServer"]

ScriptedAnswer = tuple[int, Mapping[str, str], Any]
"""(status, extra headers, body): a dict/list body is sent as JSON, str/bytes as is, None as
no body."""


@dataclass(frozen=True, slots=True)
class WebhookPost:
    """One POST the server received.

    Attributes
    ----------
    path
        Request path (with query string).
    headers
        Request headers (names as sent).
    body
        The body parsed as JSON, or None if it was empty or not JSON.
    raw
        The body bytes.
    time
        Arrival time, :func:`time.monotonic` seconds (compare with other posts).
    status
        Status code the server answered (or will answer, for a delayed answer).
    """

    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes
    time: float
    status: int


class WebhookServer(BackgroundHTTPServer):
    """Capture webhook POSTs on ``host`` (loopback) and a free port.

    Parameters
    ----------
    path
        Path part of :attr:`url` (any path is accepted and recorded).
    host, port
        Where to listen (port 0: a free one).
    """

    _thread_name = "webhook-capture"
    _poll_interval = 0.05

    def __init__(
        self,
        *,
        path: str = "/api/webhooks/123/abc",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.path = path
        self._posts: list[WebhookPost] = []
        self._script: deque[ScriptedAnswer] = deque()
        self._hang_s = 0.0
        self._lock = threading.Condition()
        self._stopping = threading.Event()
        self._bind(host, port, _make_handler(self))

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """The webhook URL, e.g. ``http://127.0.0.1:54321/api/webhooks/123/abc``."""
        return f"{self._base_url}{self.path}"

    def stop(self) -> None:
        """Stop serving (cutting delayed answers short) and close the socket."""
        self._stopping.set()
        super().stop()

    # ------------------------------------------------------------------ control

    def script(self, answers: Iterable[ScriptedAnswer]) -> None:
        """Answer the next POSTs with ``answers`` in order (appended to any left), then 204."""
        with self._lock:
            self._script.extend(answers)

    def hang(self, seconds: float) -> None:
        """Delay every answer from now on by ``seconds`` (0 to stop delaying)."""
        with self._lock:
            self._hang_s = max(0.0, seconds)

    @property
    def posts(self) -> list[WebhookPost]:
        """The POSTs received so far, in arrival order (a copy)."""
        with self._lock:
            return list(self._posts)

    def wait_for_posts(self, n: int, timeout: float = 5.0) -> list[WebhookPost]:
        """Wait until at least ``n`` POSTs arrived; return them.

        Raises
        ------
        TimeoutError
            If fewer than ``n`` arrived within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._posts) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"{len(self._posts)} webhook posts after {timeout:g} s, expected {n}"
                    )
                self._lock.wait(left)
            return list(self._posts)

    # ------------------------------------------------------------------ handler side

    def _receive(
        self, path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[ScriptedAnswer, float]:
        now = time.monotonic()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        with self._lock:
            answer: ScriptedAnswer = self._script.popleft() if self._script else (204, {}, None)
            self._posts.append(WebhookPost(path, headers, body, raw, now, answer[0]))
            self._lock.notify_all()
            return answer, self._hang_s


def _make_handler(server: WebhookServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            (status, extra, body), delay = server._receive(
                self.path, dict(self.headers.items()), raw
            )
            if delay and server._stopping.wait(delay):
                self.close_connection = True
                return
            if body is None:
                payload = b""
            elif isinstance(body, bytes):
                payload = body
            elif isinstance(body, str):
                payload = body.encode()
            else:
                payload = json.dumps(body, separators=(",", ":")).encode()
            with contextlib.suppress(OSError):  # the client may have timed out and gone
                self.send_response(status)
                if payload:
                    self.send_header("Content-Type", "application/json")
                if status != 204:
                    self.send_header("Content-Length", str(len(payload)))
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                if payload and status != 204:
                    self.wfile.write(payload)

        def do_GET(self) -> None:
            with contextlib.suppress(OSError):
                self.send_response(405)
                self.send_header("Content-Length", "0")
                self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler
