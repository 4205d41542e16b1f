"""The user-data stream of a ccxt exchange: ccxt pro's ``watch_orders`` and
``watch_my_trades`` on a thread of their own (the kernel stays synchronous).

Every order snapshot and trade is handed to ``on_update("order" | "trade", item)``. When the
connection fails the stream marks itself disconnected (the client polls REST meanwhile),
waits with exponential backoff and reconnects; ``on_reconnect`` then asks the client for one
REST resync of what the stream missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tradeloop.adapters.ccxt.client import point_urls_at
from tradeloop.adapters.ccxt.credentials import Credentials

if TYPE_CHECKING:
    from tradeloop.adapters.ccxt.broker import CcxtVenueClient

__all__ = ["UserStream", "point_ws_urls_at"]

logger = logging.getLogger(__name__)


def point_ws_urls_at(exchange: Any, ws_base: str) -> None:
    """Point every WebSocket URL of a ccxt pro exchange at ``ws_base`` (paths kept).

    >>> class Ex:
    ...     urls = {"api": {"ws": {"spot": "wss://stream.binance.com:9443/ws",
    ...                            "ws-api": {"spot": "wss://ws-api.binance.com:443/ws-api/v3"}}}}
    >>> ex = Ex(); point_ws_urls_at(ex, "ws://127.0.0.1:9")
    >>> ex.urls["api"]["ws"]
    {'spot': 'ws://127.0.0.1:9/ws', 'ws-api': {'spot': 'ws://127.0.0.1:9/ws-api/v3'}}
    """
    base = ws_base.rstrip("/")

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: rewrite(v) for k, v in node.items()}
        if isinstance(node, str) and node.startswith(("ws://", "wss://")):
            return base + urlsplit(node).path.rstrip("/")
        return node

    exchange.urls = dict(exchange.urls)
    api = dict(exchange.urls.get("api", {}))
    api["ws"] = rewrite(api.get("ws", {}))
    exchange.urls["api"] = api


class UserStream:
    """Order and trade updates of one account, on a background thread."""

    def __init__(
        self,
        client: CcxtVenueClient,
        credentials: Credentials,
        *,
        on_update: Callable[[str, dict[str, Any]], None],
        on_reconnect: Callable[[], None],
        max_backoff_s: float = 30.0,
    ) -> None:
        self.client = client
        self._credentials = credentials
        self.on_update = on_update
        self.on_reconnect = on_reconnect
        self.max_backoff_s = max_backoff_s
        self.connected = False
        self.reconnects = 0
        self.failures = 0
        self.last_error = ""
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()

    def start(self) -> None:
        """Start the thread."""
        self._thread = threading.Thread(
            target=self._main, name=f"user-stream-{self.client.name}", daemon=True
        )
        self._thread.start()
        self._ready.wait(5)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop and join."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(timeout)

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._run())
        finally:
            loop.close()

    def _pro_exchange(self) -> Any:
        import ccxt.pro as pro

        rest = self.client.ex
        cls = getattr(pro, self.client.exchange_id)
        ex = cls(
            {
                "apiKey": self._credentials.api_key.get_secret_value(),
                "secret": self._credentials.api_secret.get_secret_value(),
                "enableRateLimit": True,
                "timeout": rest.timeout,
                "options": {
                    **{
                        k: v
                        for k, v in rest.options.items()
                        if k in ("defaultType", "fetchMarkets")
                    },
                    "fetchCurrencies": False,
                    "fetchMargins": False,
                },
            }
        )
        if self.client.settings.testnet:
            ex.set_sandbox_mode(True)
        url = self.client.settings.url
        if url:
            point_urls_at(ex, url)
            parts = urlsplit(url)
            point_ws_urls_at(ex, f"{'wss' if parts.scheme == 'https' else 'ws'}://{parts.netloc}")
        ex.markets = rest.markets
        ex.markets_by_id = rest.markets_by_id
        ex.symbols = rest.symbols
        ex.ids = rest.ids
        return ex

    async def _run(self) -> None:
        self._stop = asyncio.Event()
        self._ready.set()
        backoff = 0.5
        first = True
        while not self._stop.is_set():
            ex = self._pro_exchange()
            try:
                orders = asyncio.ensure_future(self._watch(ex, "order"))
                trades = asyncio.ensure_future(self._watch(ex, "trade"))
                stop = asyncio.ensure_future(self._stop.wait())
                if not first:
                    self.reconnects += 1
                up = asyncio.ensure_future(self._up_after(0.3, not first))
                done, _pending = await asyncio.wait(
                    {orders, trades, stop}, return_when=asyncio.FIRST_COMPLETED
                )
                tasks: tuple[asyncio.Future[Any], ...] = (orders, trades, stop, up)
                for task in tasks:
                    task.cancel()
                for task in done:
                    error = None if task is stop else task.exception()
                    if error is not None:
                        raise error
            except Exception as exc:
                self.connected = False
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {str(exc)[:200]}"
                logger.warning("%s user stream down: %s", self.client.name, self.last_error)
            finally:
                self.connected = False
                with contextlib.suppress(Exception):
                    await ex.close()
            first = False
            if self._stop.is_set():
                break
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=backoff)
            backoff = min(self.max_backoff_s, backoff * 2)
            if self.connected:
                backoff = 0.5

    async def _watch(self, ex: Any, kind: str) -> None:
        watch = ex.watch_orders if kind == "order" else ex.watch_my_trades
        while True:
            for item in await watch():
                self.on_update(kind, item)

    async def _up_after(self, seconds: float, reconnected: bool) -> None:
        """Both watchers subscribed without an error for ``seconds``: the stream is up."""
        await asyncio.sleep(seconds)
        self.connected = True
        if reconnected:
            self.on_reconnect()  # one REST resync of what the stream missed
