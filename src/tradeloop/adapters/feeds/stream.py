"""The connection loop of a live kline feed: connect, subscribe, parse, watch, reconnect.

:class:`KlineStream` keeps ONE WebSocket connection per exchange for all its symbols and
timeframes. It hands every parsed :class:`KlineUpdate` and every :class:`FeedStatus` change to
an ``emit`` callback, and never raises for network trouble or bad frames:

* a frame that does not parse -> ``malformed`` status (first 200 characters), the feed goes on;
* no frame at all for ``stale_after_s`` -> ``stale`` status, close and reconnect;
* a dropped connection -> ``disconnected``, then reconnect after a jittered exponential backoff
  ``min(backoff_max_s, backoff_base_s * 2**(k-1))`` (equal jitter: half of it fixed, half
  random), where ``k`` counts consecutive failed attempts and resets on success;
* every ``alert_after_failures`` consecutive failures -> ``failed`` (the engine alerts on it),
  and the feed keeps trying until ``stop`` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidURI

from tradeloop.adapters.feeds.binance import BinanceKlineCodec
from tradeloop.adapters.feeds.bybit import BybitKlineCodec
from tradeloop.adapters.feeds.codec import (
    KlineCodec,
    MalformedMessageError,
    SubscriptionRejectedError,
)
from tradeloop.adapters.feeds.events import FeedEvent, FeedState, FeedStatus
from tradeloop.config.settings import ExchangeSettings
from tradeloop.core.errors import ConfigError, did_you_mean

__all__ = ["CODECS", "KlineStream", "backoff_delay"]

logger = logging.getLogger(__name__)

CODECS: dict[str, type[KlineCodec]] = {"binance": BinanceKlineCodec, "bybit": BybitKlineCodec}
"""ccxt exchange id -> its kline stream format."""

_DETAIL_CHARS = 200
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def backoff_delay(
    attempt: int, base_s: float, max_s: float, rng: random.Random | None = None
) -> float:
    """Return the wait before reconnect attempt ``attempt`` (from 1), with equal jitter.

    The cap is ``min(max_s, base_s * 2**(attempt-1))``; the wait is half the cap plus a
    uniform random part of up to the other half, so it always lies in ``[cap/2, cap]``.

    >>> backoff_delay(3, 0.5, 30.0, random.Random(1)) <= 2.0
    True
    """
    cap = min(max_s, base_s * 2 ** (max(attempt, 1) - 1))
    jitter = (rng or random).uniform(0.0, cap / 2)
    return cap / 2 + jitter


class KlineStream:
    """A live kline feed of one exchange: all symbols x timeframes on one WebSocket.

    Parameters
    ----------
    exchange
        ccxt id: ``binance`` or ``bybit``.
    symbols
        Unified symbols (``BTC/USDT``; perps ``BTC/USDT:USDT``).
    timeframes
        Timeframe codes (``1m``, ``5m``, ``1h``...).
    market
        ``spot`` or ``perp`` (USDT-margined perpetuals).
    url
        Base URL (``ws://host:port``) replacing scheme and host of the exchange's stream URL
        (the path is kept), e.g. a local replay server; see ``ExchangeSettings.ws_url``.
    testnet
        Use the exchange's testnet stream host (``url`` wins when both are given).
    stale_after_s
        Seconds without any frame after which the connection is declared ``stale`` and
        replaced.
    backoff_base_s, backoff_max_s
        Reconnect backoff: see :func:`backoff_delay`.
    alert_after_failures
        Emit ``failed`` each time the consecutive failures reach a multiple of this.
    ping_interval_s
        Seconds between heartbeats: the exchange's application ping (Bybit ``{"op":"ping"}``)
        and WebSocket protocol pings.
    seed
        Seed of the backoff jitter (None: random).

    Raises
    ------
    ConfigError
        For an unknown exchange, market or timeframe, a malformed symbol or URL, or
        non-positive timing parameters.
    """

    def __init__(
        self,
        exchange: str,
        symbols: Sequence[str],
        timeframes: Sequence[str],
        *,
        market: str = "spot",
        url: str | None = None,
        testnet: bool = False,
        stale_after_s: float = 60.0,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        alert_after_failures: int = 5,
        ping_interval_s: float = 20.0,
        seed: int | None = None,
    ) -> None:
        codec_type = CODECS.get(exchange.lower())
        if codec_type is None:
            raise ConfigError(
                f"no kline stream for exchange {exchange!r}; supported: "
                f"{', '.join(CODECS)}.{did_you_mean(exchange.lower(), CODECS)}"
            )
        for name, value in (
            ("stale_after_s", stale_after_s),
            ("ping_interval_s", ping_interval_s),
            ("backoff_max_s", backoff_max_s),
        ):
            if not value > 0:
                raise ConfigError(f"{name} must be > 0, got {value!r}")
        if backoff_base_s < 0:
            raise ConfigError(f"backoff_base_s must be >= 0, got {backoff_base_s!r}")
        if alert_after_failures < 1:
            raise ConfigError(f"alert_after_failures must be >= 1, got {alert_after_failures!r}")
        self.codec = codec_type(symbols, timeframes, market=market, testnet=testnet)
        self.exchange = self.codec.exchange
        self.market = market
        self.url = self.codec.url(url)
        self.stale_after_s = stale_after_s
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.alert_after_failures = alert_after_failures
        self.ping_interval_s = ping_interval_s
        self._rng = random.Random(seed)
        self.attempt = 0
        """Consecutive failed connection attempts (0 while connected)."""
        self.reconnects = 0
        """Successful reconnections since the feed started."""
        self._connected_once = False

    @classmethod
    def from_settings(
        cls,
        exchange: str,
        symbols: Sequence[str],
        timeframes: Sequence[str],
        settings: ExchangeSettings,
        *,
        market: str = "spot",
        **kwargs: Any,
    ) -> KlineStream:
        """Build a stream whose host comes from ``settings.ws_url`` / ``settings.testnet``.

        Further keyword arguments (``stale_after_s``...) go to the constructor.
        """
        return cls(
            exchange,
            symbols,
            timeframes,
            market=market,
            url=settings.ws_url,
            testnet=settings.testnet,
            **kwargs,
        )

    def backoff(self, attempt: int) -> float:
        """Return the jittered wait before reconnect attempt ``attempt`` (see module doc)."""
        return backoff_delay(attempt, self.backoff_base_s, self.backoff_max_s, self._rng)

    async def run(self, emit: Callable[[FeedEvent], None], stop: asyncio.Event) -> None:
        """Stream until ``stop`` is set, calling ``emit`` for every update and status change.

        Returns soon after ``stop`` is set (also while connecting or backing off); emits a
        final ``disconnected`` status.
        """
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                self._status(emit, "connecting", self.url)
                try:
                    ws = await self._connect(stopping)
                except _StoppedError:
                    break
                except InvalidURI as exc:
                    raise ConfigError(f"{self.exchange} feed: bad stream URL: {exc}") from None
                except Exception as exc:  # OSError, InvalidHandshake, TimeoutError and the like
                    self.attempt += 1
                    detail = _describe(exc)
                    logger.warning(
                        "%s feed: connection attempt %d failed: %s",
                        self.exchange,
                        self.attempt,
                        detail,
                    )
                    self._status(emit, "disconnected", detail)
                    if self.attempt % self.alert_after_failures == 0:
                        self._status(
                            emit, "failed", f"{self.attempt} consecutive failures: {detail}"
                        )
                    await self._sleep(self.backoff(self.attempt), stopping)
                    continue
                if self._connected_once:
                    self.reconnects += 1
                self._connected_once = True
                self.attempt = 0
                reason = await self._session(ws, emit, stopping)
                if reason == "stop":
                    break
                # dropped or stale: wait the first backoff step, then connect again
                await self._sleep(self.backoff(1), stopping)
        finally:
            stopping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stopping
        self._status(emit, "disconnected", "stopped")

    # ------------------------------------------------------------------ internals

    async def _connect(self, stopping: asyncio.Future[Any]) -> ClientConnection:
        options: dict[str, Any] = {
            "open_timeout": max(self.stale_after_s, 1.0),
            "ping_interval": self.ping_interval_s,
            "ping_timeout": self.ping_interval_s,
            "close_timeout": 1.0,
            "max_queue": 1024,
        }
        if urlsplit(self.url).hostname in _LOOPBACK:
            options["proxy"] = None
        connecting = asyncio.ensure_future(connect(self.url, **options))
        await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not connecting.done():
            connecting.cancel()
            with contextlib.suppress(BaseException):
                await connecting
            raise _StoppedError
        return connecting.result()

    async def _session(
        self, ws: ClientConnection, emit: Callable[[FeedEvent], None], stopping: asyncio.Future[Any]
    ) -> str:
        """Read frames until the connection ends; return ``stop``, ``stale`` or ``dropped``."""
        pinger: asyncio.Task[None] | None = None
        try:
            for message in self.codec.subscribe_messages():
                await ws.send(message)
            self._status(emit, "connected", self.url)
            logger.info("%s feed connected to %s", self.exchange, self.url)
            ping = self.codec.ping_message()
            if ping is not None:
                pinger = asyncio.create_task(self._ping(ws, ping))
            while True:
                receiving = asyncio.ensure_future(ws.recv())
                done, _ = await asyncio.wait(
                    {receiving, stopping},
                    timeout=self.stale_after_s,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if receiving not in done:
                    receiving.cancel()
                    with contextlib.suppress(BaseException):
                        await receiving
                    if stopping in done:
                        return "stop"
                    logger.warning(
                        "%s feed: no message for %.1fs, reconnecting",
                        self.exchange,
                        self.stale_after_s,
                    )
                    self._status(emit, "stale", f"no message for {self.stale_after_s:g}s")
                    return "stale"
                self._handle(receiving.result(), emit)
        except ConnectionClosed as exc:
            detail = _describe(exc)
            logger.warning("%s feed disconnected: %s", self.exchange, detail)
            self._status(emit, "disconnected", detail)
            return "dropped"
        finally:
            if pinger is not None:
                pinger.cancel()
                with contextlib.suppress(BaseException):
                    await pinger
            await _close(ws)

    def _handle(self, raw: str | bytes, emit: Callable[[FeedEvent], None]) -> None:
        try:
            updates = self.codec.parse(raw)
        except MalformedMessageError as exc:
            text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
            logger.warning("%s feed: malformed frame (%s): %.200s", self.exchange, exc, text)
            self._status(emit, "malformed", text[:_DETAIL_CHARS])
            return
        except SubscriptionRejectedError as exc:
            logger.error("%s feed: %s", self.exchange, exc)
            self._status(emit, "failed", str(exc)[:_DETAIL_CHARS])
            return
        for update in updates:
            emit(update)

    async def _ping(self, ws: ClientConnection, message: str) -> None:
        while True:
            await asyncio.sleep(self.ping_interval_s)
            try:
                await ws.send(message)
            except ConnectionClosed:
                return

    async def _sleep(self, seconds: float, stopping: asyncio.Future[Any]) -> None:
        if seconds > 0 and not stopping.done():
            await asyncio.wait({stopping}, timeout=seconds)

    def _status(self, emit: Callable[[FeedEvent], None], state: FeedState, detail: str) -> None:
        emit(FeedStatus(self.exchange, state, detail, self.attempt, self.reconnects))


class _StoppedError(Exception):
    """``stop`` was set while connecting."""


async def _close(ws: ClientConnection) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(ws.close(), timeout=1.0)


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:_DETAIL_CHARS]
