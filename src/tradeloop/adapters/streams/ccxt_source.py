"""Live market data through ccxt's WebSocket layer (``ccxt.pro``), normalised to core events.

:class:`CcxtMarketSource` runs one watch loop per (channel, symbol) on ONE ccxt client:

* ``trades`` - ``watch_trades`` -> :class:`MarketTrade` (aggressor side from the venue);
* ``book`` - ``watch_order_book`` -> a :class:`BookSnapshot` first (and after every resync),
  then :class:`BookDelta` with ``prev_seq`` = the previous update's sequence (the venue's
  nonce where it has one): ccxt applies the venue's own sequence rules (Binance ``U``/``u``,
  OKX ``seqId``...) and re-fetches the snapshot on a gap; each such resync is counted;
* ``ohlcv`` - ``watch_ohlcv`` -> :class:`StreamBar`. ccxt's unified candles carry no "final"
  flag, so closure is inferred: a bar is closed once a newer bar has arrived (its open time
  is later), or by a timer once the venue's clock has passed the bar's end plus
  ``close_grace_s`` with no newer bar (the last bar of a quiet or ended stream is not held
  forever). The venue clock is estimated from the stream itself, as the latest bar open
  time seen minus the local time it arrived at (a bar's first message cannot come before it
  opens), so a replay of old data is not closed by the wall clock. Every bar is emitted
  closed exactly once; a later update of an already closed bar is dropped. A new bar's
  first update is emitted at once (its open); later updates of the bar in progress once the
  channel has been quiet for ``idle_drain_s``, so the final values of a bar that a burst
  closes at once never arrive as an in-progress update. A bar still open when the
  connection went that gets no update after the reconnect (kline updates are cumulative)
  is never emitted closed: the consumer's backfill fetches it;
* ``funding`` - ``watch_funding_rate`` where the venue streams it, else a REST poll;
* ``open_interest`` - REST ``fetch_open_interest`` poll (no venue streams it through ccxt).

Every frame passes a tap on the ccxt client: frames are numbered per connection, and a frame
that is not JSON or that the venue handler cannot read is counted, logged with the venue, the
connection URL, its position and the first 200 characters, and skipped: the stream goes on.

Every malformed frame is also emitted as a ``malformed`` :class:`FeedStatus` (first 200
characters). Watchdog: a loop that gets nothing for ``stale_after_s`` emits a ``stale`` status
and resubscribes; a dropped or refused connection emits ``disconnected`` (with the count of
consecutive failed attempts) and reconnects after a jittered exponential backoff
(:func:`backoff_delay`); every ``alert_after_failures`` consecutive failures emit ``failed``
(the engine alerts on it). ``connected`` statuses carry the number of reconnections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ccxt
import ccxt.pro

from tradeloop.adapters.feeds.events import FeedState, FeedStatus
from tradeloop.adapters.streams.normalise import normalise_trades
from tradeloop.core.bar import Bar
from tradeloop.core.errors import ConfigError, did_you_mean
from tradeloop.core.market_events import (
    BookDelta,
    BookLevels,
    BookSnapshot,
    FundingRate,
    MarketEvent,
    OpenInterest,
    StreamBar,
    TradeBatch,
)
from tradeloop.core.timeframes import timeframe_ns

__all__ = [
    "CHANNELS",
    "VENUES",
    "CcxtMarketSource",
    "FrameTap",
    "MalformedFrame",
    "backoff_delay",
]

logger = logging.getLogger(__name__)

VENUES = ("binance", "bybit", "okx", "kraken")
"""Venues this source is built and tested for (any ccxt.pro id is accepted)."""
CHANNELS = ("trades", "book", "ohlcv", "funding", "open_interest")
_NS = 1_000_000
_QUICK_S = 0.005
"""How often a waiting bar channel looks at ccxt's cache for a frame it has not handed over."""

SourceEvent = MarketEvent | FeedStatus


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
    return float(cap / 2 + jitter)


class MalformedFrame:
    """One frame the stream could not use: where it came from and what it was."""

    __slots__ = ("error", "position", "raw", "url", "venue")

    def __init__(self, venue: str, url: str, position: int, raw: str, error: str) -> None:
        self.venue = venue
        self.url = url
        self.position = position
        self.raw = raw
        self.error = error

    def __repr__(self) -> str:
        return (
            f"MalformedFrame({self.venue} {self.url} #{self.position}: {self.error}; {self.raw!r})"
        )


class FrameTap:
    """Counts frames per connection and collects the malformed ones (bounded)."""

    def __init__(
        self,
        venue: str,
        keep: int = 1000,
        on_bad: Callable[[MalformedFrame], None] | None = None,
    ) -> None:
        self.venue = venue
        self.frames: dict[str, int] = {}
        self.malformed: list[MalformedFrame] = []
        self.malformed_count = 0
        self.on_bad = on_bad
        """Called with every malformed frame (the source emits a ``malformed`` status)."""
        self.on_reconnect: Callable[[str], None] | None = None
        """Called with the URL when ccxt opens a new connection to a URL it was connected to
        before, before any frame of the new connection is handled."""
        self.connections: dict[str, int] = {}
        """Connections opened per URL."""
        self._keep = keep

    def connecting(self, url: str) -> None:
        """ccxt made a new client (one per connection) for ``url``: from the second one on it
        is a reconnection, whether or not a pending watch saw the old one fail."""
        n = self.connections.get(url, 0) + 1
        self.connections[url] = n
        if n > 1 and self.on_reconnect is not None:
            self.on_reconnect(url)

    def frame(self, url: str) -> int:
        """Count one frame on ``url``; return its position (from 1)."""
        n = self.frames.get(url, 0) + 1
        self.frames[url] = n
        return n

    def bad(self, url: str, position: int, raw: object, error: BaseException | str) -> None:
        """Record a malformed frame (logged with venue, connection and position)."""
        text = raw if isinstance(raw, str) else repr(raw)
        item = MalformedFrame(self.venue, url, position, text[:200], str(error)[:200])
        self.malformed_count += 1
        if len(self.malformed) < self._keep:
            self.malformed.append(item)
        logger.warning(
            "%s malformed frame #%d on %s: %s; raw: %s",
            self.venue, position, url, item.error, item.raw,
        )  # fmt: skip
        if self.on_bad is not None:
            self.on_bad(item)


#: plain-text frames venues send on purpose (OKX answers a text ``ping`` with ``pong``)
_TEXT_KEEPALIVES = frozenset({"ping", "pong"})


def _tapped_class(venue: str) -> type[Any]:
    base = getattr(ccxt.pro, venue, None)
    if base is None:
        raise ConfigError(
            f"ccxt has no streaming client {venue!r}.{did_you_mean(venue, list(VENUES))}"
        )

    class Tapped(base):  # type: ignore[misc, valid-type]
        """The venue's ccxt.pro client with a frame tap (ccxt itself unchanged)."""

        tap: FrameTap

        def client(self, url: str) -> Any:
            client = super().client(url)
            if not getattr(client, "_tradeloop_tap", False):
                self.tap.connecting(url)
                original = client.handle_text_or_binary_message
                tap = self.tap

                def safe(data: Any) -> None:
                    try:
                        original(data)
                    except ValueError as exc:  # not JSON (orjson/json decode errors)
                        tap.bad(url, tap.frame(url), data, f"invalid JSON: {exc}")

                client.handle_text_or_binary_message = safe
                client._tradeloop_tap = True
            return client

        def handle_message(self, client: Any, message: Any) -> Any:
            url = getattr(client, "url", "?")
            position = self.tap.frame(url)
            if isinstance(message, str) and message.strip().lower() not in _TEXT_KEEPALIVES:
                # ccxt hands text that does not look like JSON to the venue handler as is,
                # and most handlers drop it without a word
                self.tap.bad(url, position, message, "not JSON")
                return None
            try:
                return super().handle_message(client, message)
            except Exception as exc:  # a frame the handler cannot read must not end the stream
                self.tap.bad(url, position, message, f"{type(exc).__name__}: {exc}")
                return None

    Tapped.__name__ = f"Tapped{venue.capitalize()}"
    return Tapped


def _is_candle(c: Any) -> bool:
    """True for ``[ts, open, high, low, close, volume]`` of numbers (volume may be None)."""
    return (
        isinstance(c, list | tuple)
        and len(c) >= 6
        and all(isinstance(x, int | float) and not isinstance(x, bool) for x in c[:5])
        and (c[5] is None or isinstance(c[5], int | float))
    )


def _levels(side: Any, limit: int | None) -> dict[float, float]:
    rows = side if limit is None else side[:limit]
    return {float(r[0]): float(r[1]) for r in rows}


def _diff(old: dict[float, float], new: dict[float, float], reverse: bool) -> BookLevels:
    changed = [(p, s) for p, s in new.items() if old.get(p) != s]
    changed += [(p, 0.0) for p in old if p not in new]
    changed.sort(reverse=reverse)
    return tuple(changed)


class CcxtMarketSource:
    """Normalised live streams of one venue through ccxt.pro.

    Parameters
    ----------
    venue
        ccxt id (``binance``, ``bybit``, ``okx``, ``kraken``...).
    symbols
        Unified symbols.
    channels
        Any of :data:`CHANNELS`.
    timeframe
        Bar timeframe of the ``ohlcv`` channel.
    name
        Source name in metrics and logs (default: the venue).
    config
        Extra ccxt constructor config (``options``, ``markets``...).
    urls
        Deep-merged into the client's ``urls['api']`` (e.g. a local server's URLs).
    book_depth
        Levels kept from each side of the book (None: all ccxt keeps).
    book_limit
        Depth subscribed at the venue (``watch_order_book``'s limit; each venue allows a few
        values, e.g. Kraken 10/25/100/500/1000, Bybit spot 1/50/200; None: ccxt's default).
    stale_after_s
        Watchdog: a channel silent this long is resubscribed (``stale`` status).
    poll_s
        Interval of REST polls (funding without a stream, open interest).
    idle_drain_s
        A channel without a resolved watch this long hands over what ccxt already cached
        (ccxt resolves a watch only on the next message; the last update of a quiet market
        would otherwise wait for it), and checks the bar-closure timer.
    close_grace_s
        A bar without a newer one is closed this long after its end (venue clock), so late
        updates of its last trades are still in it.
    backoff_base_s, backoff_max_s
        Reconnect backoff: see :func:`backoff_delay`.
    alert_after_failures
        Emit ``failed`` each time the consecutive failed attempts reach a multiple of this.
    sandbox
        Use the venue's testnet (ccxt's sandbox mode) where no URL override is given.
    rest_url
        Replace scheme and host of every REST endpoint (paths kept), e.g. a local server.
    clock_ns
        Receive-time clock (wall clock, ns).
    seed
        Seed of the backoff jitter (None: random).
    """

    def __init__(
        self,
        venue: str,
        symbols: Sequence[str],
        channels: Sequence[str] = ("trades", "book", "ohlcv"),
        *,
        timeframe: str = "1m",
        name: str | None = None,
        config: Mapping[str, Any] | None = None,
        urls: Mapping[str, Any] | None = None,
        book_depth: int | None = None,
        book_limit: int | None = None,
        stale_after_s: float = 30.0,
        poll_s: float = 15.0,
        idle_drain_s: float = 0.25,
        close_grace_s: float = 2.0,
        backoff_base_s: float = 0.2,
        backoff_max_s: float = 10.0,
        alert_after_failures: int = 5,
        sandbox: bool = False,
        rest_url: str | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
        seed: int | None = None,
    ) -> None:
        bad = [c for c in channels if c not in CHANNELS]
        if bad:
            raise ConfigError(
                f"unknown stream channel {bad[0]!r}.{did_you_mean(bad[0], CHANNELS)} "
                f"Known: {', '.join(CHANNELS)}"
            )
        if not symbols:
            raise ConfigError("a market source needs at least one symbol")
        for label, value in (("stale_after_s", stale_after_s), ("poll_s", poll_s)):
            if not value > 0:
                raise ConfigError(f"{label} must be > 0, got {value!r}")
        if close_grace_s < 0 or backoff_base_s < 0 or not backoff_max_s > 0:
            raise ConfigError("close_grace_s and backoff_base_s must be >= 0 and backoff_max_s > 0")
        if alert_after_failures < 1:
            raise ConfigError(f"alert_after_failures must be >= 1, got {alert_after_failures!r}")
        self.venue = venue.lower()
        self.name = name or self.venue
        self.symbols = tuple(symbols)
        self.channels = tuple(channels)
        self.timeframe = timeframe
        self.tf_ns = timeframe_ns(timeframe)
        self.book_depth = book_depth
        self.book_limit = book_limit
        self.stale_after_s = stale_after_s
        self.poll_s = poll_s
        self.idle_drain_s = idle_drain_s
        self.close_grace_ns = int(close_grace_s * 1e9)
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.alert_after_failures = alert_after_failures
        self.sandbox = sandbox
        self.rest_url = rest_url
        self.clock_ns = clock_ns
        self._rng = random.Random(seed)
        self.tap = FrameTap(self.name)
        self._cls = _tapped_class(self.venue)
        self._config = {"enableRateLimit": True, **dict(config or {})}
        self._urls = dict(urls or {})
        self.exchange: Any = None
        self._aio_loop: asyncio.AbstractEventLoop | None = None
        self._last_any = time.monotonic()
        self.resyncs = 0
        """Book resyncs (a sequence gap ccxt detected and repaired with a new snapshot; seen
        as a new book object)."""
        self.stale = 0
        self.disconnects = 0
        self.attempt = 0
        """Consecutive failed attempts of the source (0 once a channel delivers again)."""
        self.reconnects = 0
        """Times the source delivered again after a disconnect or a stale spell."""
        self._down = False
        self._emit: Callable[[SourceEvent], None] | None = None
        self._states: list[tuple[str, str, dict[str, Any]]] = []
        """(channel, symbol, state) of every watch loop."""

    # -- lifecycle --------------------------------------------------------------------------
    def _build(self) -> Any:
        ex = self._cls(dict(self._config))
        ex.tap = self.tap
        if self.sandbox:
            try:
                ex.set_sandbox_mode(True)
            except ccxt.NotSupported as exc:
                raise ConfigError(f"{self.venue} has no testnet in ccxt: {exc}") from None
        if self.rest_url:
            from tradeloop.adapters.ccxt.client import point_urls_at

            point_urls_at(ex, self.rest_url)
        if self._urls:
            ex.urls["api"] = ex.deep_extend(ex.urls.get("api", {}), self._urls)
        return ex

    def backoff(self, attempt: int) -> float:
        """The jittered wait before reconnect attempt ``attempt`` (see :func:`backoff_delay`)."""
        return backoff_delay(attempt, self.backoff_base_s, self.backoff_max_s, self._rng)

    def _status(self, state: FeedState, detail: str = "") -> None:
        if self._emit is not None:
            self._emit(FeedStatus(self.name, state, detail[:200], self.attempt, self.reconnects))

    def _failed_attempt(self, state: FeedState, detail: str) -> None:
        """One more consecutive failure: a status, and ``failed`` every N of them."""
        self.attempt += 1
        self._down = True
        self._status(state, detail)
        if state != "failed" and self.attempt % self.alert_after_failures == 0:
            self._status("failed", f"{self.attempt} consecutive failures: {detail}")

    def _reconnecting(self, url: str) -> None:
        """ccxt is opening a new connection to ``url``: the old one is gone. A drop that
        lands while no watch is pending raises nothing to our loops (ccxt just makes a new
        client on the next watch), so this, not an exception, is where every drop is seen:
        the bars then still open are suspect (see :meth:`_connection_lost`) and the next
        delivery is a reconnection."""
        for channel, symbol, state in self._states:
            self._connection_lost(channel, symbol, state)
            state["lost"] = True
        if not self._down:  # no pending watch reported this drop
            self.disconnects += 1
            self._failed_attempt("disconnected", f"connection to {url} lost")
            logger.warning("%s: connection to %s lost, reconnecting", self.name, url)

    def _delivered(self, channel: str, symbol: str) -> None:
        """A channel delivered: the source is up (a reconnection when it was down)."""
        if self._down:
            self._down = False
            self.reconnects += 1
        self.attempt = 0
        self._status("connected", f"{channel} {symbol}")

    async def run(self, emit: Callable[[SourceEvent], None], stop: asyncio.Event) -> None:
        """Stream until ``stop`` is set, calling ``emit`` with every event and status."""
        self._emit = emit
        self.tap.on_bad = lambda frame: self._status("malformed", frame.raw)
        self.tap.on_reconnect = self._reconnecting
        self.exchange = self._build()
        self._aio_loop = asyncio.get_running_loop()
        emit(FeedStatus(self.name, "connecting", ""))
        tasks = [
            asyncio.create_task(self._loop(channel, symbol, emit), name=f"{self.name}-{channel}")
            for channel in self.channels
            for symbol in self.symbols
        ]
        try:
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(BaseException):
                    await task
            with contextlib.suppress(Exception):
                await self.exchange.close()
            emit(FeedStatus(self.name, "disconnected", "stopped"))

    async def _loop(self, channel: str, symbol: str, emit: Callable[[SourceEvent], None]) -> None:
        step = getattr(self, f"_{channel}")
        drain = getattr(self, f"_drain_{channel}", None)
        state: dict[str, Any] = {}
        self._states.append((channel, symbol, state))
        connected = False
        polled = channel in ("open_interest", "funding")
        timeout = self.stale_after_s + (self.poll_s if polled else 0.0)
        idle = min(self.idle_drain_s, timeout)
        quick = getattr(self, f"_quick_{channel}", None)
        tick = min(idle, _QUICK_S) if quick is not None else idle
        while True:
            pending = asyncio.ensure_future(step(symbol, state, emit))
            try:
                silent = since_drain = 0.0
                while True:
                    done, _ = await asyncio.wait({pending}, timeout=tick)
                    if done:
                        break
                    silent += tick
                    since_drain += tick
                    # ccxt resolves a watch only on the next message: a frame that came
                    # while we were busy waits in its cache. Bars: close and open from it
                    # at once; in-progress updates (and other channels) when quiet
                    if quick is not None:
                        quick(symbol, state, emit)
                    if drain is not None and since_drain >= idle:
                        since_drain = 0.0
                        drain(symbol, state, emit)
                    if silent >= timeout:
                        pending.cancel()
                        with contextlib.suppress(BaseException):
                            await pending
                        raise TimeoutError
                pending.result()
                self._last_any = time.monotonic()
                if state.pop("lost", False):
                    connected = False  # a new connection delivered (see _reconnecting)
                if not connected:
                    connected = True
                    self._delivered(channel, symbol)
            except asyncio.CancelledError:
                pending.cancel()
                raise
            except TimeoutError:
                if time.monotonic() - self._last_any < timeout:
                    # this channel is quiet but the connection delivers others: keep it
                    logger.debug("%s %s %s: quiet", self.name, channel, symbol)
                    continue
                self.stale += 1
                self._down = True
                self._status("stale", f"{channel} {symbol}: no message for {timeout:g}s")
                logger.warning("%s %s %s: stale, resubscribing", self.name, channel, symbol)
                await self._reset_connections()
                state["resync"] = True
                self._connection_lost(channel, symbol, state)
                connected = False
            except (ccxt.ChecksumError, ccxt.InvalidNonce) as exc:
                state["resync"] = True  # counted when the new book arrives
                logger.warning("%s %s book resync: %s", self.name, symbol, exc)
            except ccxt.NetworkError as exc:
                self.disconnects += 1
                connected = False
                state["resync"] = True
                self._connection_lost(channel, symbol, state)
                self._failed_attempt("disconnected", f"{type(exc).__name__}: {exc}")
                logger.warning("%s %s %s: %s", self.name, channel, symbol, exc)
                await asyncio.sleep(self.backoff(self.attempt))
                # our backoff (jittered, configured) replaces ccxt's own dial backoff
                with contextlib.suppress(AttributeError):
                    self.exchange.ws_dial_backoff.clear()
            except ccxt.BaseError as exc:
                connected = False
                self._failed_attempt("failed", f"{type(exc).__name__}: {exc}")
                logger.error("%s %s %s: %s", self.name, channel, symbol, exc)
                await asyncio.sleep(self.backoff(self.attempt))
            except Exception as exc:  # what ccxt made of a bad frame: the channel goes on
                logger.exception("%s %s %s: cannot use an update", self.name, channel, symbol)
                self._status("malformed", f"{channel} {symbol}: {type(exc).__name__}: {exc}")
                await asyncio.sleep(self.backoff(1))

    def fetch_bars(
        self, symbol: str, timeframe: str, start: int, end: int, timeout: float = 15.0
    ) -> list[StreamBar]:
        """Closed bars ``[start, end)`` (UTC ns) over the venue's REST API, from another
        thread (the REST backfill of a bar gap)."""
        loop = self._aio_loop
        if loop is None or self.exchange is None:
            return []
        tf_ns = timeframe_ns(timeframe)
        limit = max(1, (end - start) // tf_ns)
        coro = self.exchange.fetch_ohlcv(symbol, timeframe, since=start // _NS, limit=limit)
        rows = asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)
        now = self.clock_ns()
        out = []
        for c in rows:
            ts = int(c[0]) * _NS
            if start <= ts < end:
                bar = Bar(symbol, timeframe, ts, *(float(x) for x in c[1:6]))
                out.append(StreamBar(self.name, now, bar, True))
        return out

    def fetch_trades_by_id(
        self, symbol: str, first_id: int, last_id: int, timeout: float = 15.0
    ) -> TradeBatch | None:
        """Trades ``first_id..last_id`` over the venue's REST API, from another thread (the
        backfill of lost trades). Binance only (``historicalTrades`` by ``fromId``, which
        needs an API key: a read-only one); None for venues without trade lookup by id."""
        loop = self._aio_loop
        if loop is None or self.exchange is None or self.venue != "binance":
            return None
        params = {"fetchTradesMethod": "publicGetHistoricalTrades", "fromId": first_id}
        coro = self.exchange.fetch_trades(symbol, None, last_id - first_id + 1, params)
        rows = asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)
        return normalise_trades(self.name, symbol, rows, self.clock_ns()) if rows else None

    async def _reset_connections(self) -> None:
        for client in list((self.exchange.clients or {}).values()):
            with contextlib.suppress(Exception):
                await client.close()

    # -- channels ---------------------------------------------------------------------------
    async def _trades(
        self, symbol: str, state: dict[str, Any], emit: Callable[[SourceEvent], None]
    ) -> None:
        trades = await self.exchange.watch_trades(symbol)
        self._emit_trades(symbol, trades, state, emit)

    def _emit_trades(
        self, symbol: str, trades: Any, state: dict[str, Any], emit: Callable[[SourceEvent], None]
    ) -> None:
        if not len(trades):
            return
        for trade in normalise_trades(self.name, symbol, trades, self.clock_ns()).to_trades():
            emit(trade)
        state["last"] = trades[-1].get("id")

    def _drain_trades(
        self, symbol: str, state: dict[str, Any], emit: Callable[[SourceEvent], None]
    ) -> None:
        cache = (getattr(self.exchange, "trades", None) or {}).get(self._cached_as(symbol))
        if not cache or "last" not in state:
            return
        items = list(cache)
        if items[-1].get("id") == state["last"]:
            return
        start = 0
        for i in range(len(items) - 1, -1, -1):
            if items[i].get("id") == state["last"]:
                start = i + 1
                break
        self._emit_trades(symbol, items[start:], state, emit)

    async def _book(
        self, symbol: str, state: dict[str, Any], emit: Callable[[SourceEvent], None]
    ) -> None:
        ob = await self.exchange.watch_order_book(symbol, self.book_limit)
        self._emit_book(symbol, ob, state, emit)

    def _drain_book(
        self, symbol: str, state: dict[str, Any], emit: Callable[[SourceEvent], None]
    ) -> None:
        ob = (getattr(self.exchange, "orderbooks", None) or {}).get(self._cached_as(symbol))
        if ob is None or "seq" not in state:
            return
        if ob.get("nonce") is not None:
            if int(ob["nonce"]) > state["seq"]:
                self._emit_book(symbol, ob, state, emit)
            return
        # a venue without a nonce (Bybit through ccxt): compare the levels
        bids = _levels(ob["bids"], self.book_depth)
        asks = _levels(ob["asks"], self.book_depth)
        if bids != state["bids"] or asks != state["asks"]:
            self._emit_book(symbol, ob, state, emit)

    def _emit_book(
        self, symbol: str, ob: Any, state: dict[str, Any], emit: Callable[[SourceEvent], None]
    ) -> None:
        now = self.clock_ns()
        if state.get("book") is not ob:
            # ccxt builds a new book object after it resynced one (a sequence gap: Binance
            # re-fetches the REST snapshot, OKX subscribes again): start over from a snapshot
            if "book" in state:
                self.resyncs += 1
                state["resync"] = True
            state["book"] = ob
        bids = _levels(ob["bids"], self.book_depth)
        asks = _levels(ob["asks"], self.book_depth)
        nonce = ob.get("nonce")
        last = state.get("seq")
        snapshot = last is None or state.pop("resync", False)
        seq = int(nonce) if nonce is not None else (last or 0) + 1
        if not snapshot and last is not None and seq <= last:
            seq = last + 1  # a delta must move the sequence on (venues without a nonce)
        ts = ob.get("timestamp")
        ts_ns = int(ts) * _NS if ts is not None else now
        if snapshot:
            emit(
                BookSnapshot(
                    self.name, symbol, ts_ns, now, seq,
                    tuple(sorted(bids.items(), reverse=True)), tuple(sorted(asks.items())),
                )
            )  # fmt: skip
        else:
            assert last is not None  # a delta follows an emitted book
            emit(
                BookDelta(
                    self.name, symbol, ts_ns, now, seq, int(last),
                    _diff(state["bids"], bids, True), _diff(state["asks"], asks, False),
                )
            )  # fmt: skip
        state["seq"], state["bids"], state["asks"] = seq, bids, asks

    async def _ohlcv(
        self, symbol: str, state: dict[str, Any], emit: Callable[[SourceEvent], None]
    ) -> None:
        candles = await self.exchange.watch_ohlcv(symbol, self.timeframe)
        # the whole cache, not just this update: a bar whose successor came in a later
        # update is closed from there
        self._emit_ohlcv(symbol, self._ohlcv_cache(symbol) or candles, state, emit, partial=False)

    def _quick_ohlcv(
        self, symbol: str, state: dict[str, Any], emit: Callable[[SourceEvent], None]
    ) -> None:
        """Every few ms while a watch waits: ccxt resolved the last watch on the first of
        several frames received together (a bar's final update and the next bar's open) and
        resolves the next only on a later frame, so look at its cache: the bar closes now,
        not one update later."""
        candles = (
            (getattr(self.exchange, "ohlcvs", None) or {}).get(self._cached_as(symbol)) or {}
        ).get(self.timeframe)
        if not candles or "closed" not in state:
            return
        tail = (len(candles), tuple(candles[-1][:6]))
        if state.get("tail") != tail:
            state["tail"] = tail
            self._emit_ohlcv(symbol, list(candles), state, emit, partial=False)

    def _cached_as(self, symbol: str) -> str:
        """The symbol ccxt files ``symbol``'s data under: its market's unified symbol
        (``BTC/USDT`` asked for on a swap client is ``BTC/USDT:USDT``)."""
        try:
            return str(self.exchange.market(symbol)["symbol"])
        except Exception:  # markets not loaded yet, or unknown: as asked
            return symbol

    def _connection_lost(self, channel: str, symbol: str, state: dict[str, Any]) -> None:
        """Bars still open when the connection went: what ccxt holds of them is their state
        at the last message. Kline updates are cumulative, so an update after the reconnect
        makes a bar whole again; one without any (its end passed while we were away) is
        never emitted as closed, the consumer's gap backfill (REST) fetches it."""
        if channel != "ohlcv":
            return
        last_closed = state.get("closed", -1)
        suspect = state.setdefault("suspect", {})
        for c in self._ohlcv_cache(symbol):
            if int(c[0]) * _NS > last_closed:
                suspect[int(c[0]) * _NS] = tuple(c[:6])

    def _ohlcv_cache(self, symbol: str) -> list[Any]:
        ohlcvs = getattr(self.exchange, "ohlcvs", None) or {}
        candles = (ohlcvs.get(self._cached_as(symbol)) or {}).get(self.timeframe)
        return list(candles) if candles else []

    def _drain_ohlcv(
        self, symbol: str, state: dict[str, Any], emit: Callable[[SourceEvent], None]
    ) -> None:
        candles = self._ohlcv_cache(symbol)
        if candles and "closed" in state:
            self._emit_ohlcv(symbol, candles, state, emit, partial=True)

    def _emit_ohlcv(
        self,
        symbol: str,
        candles: Any,
        state: dict[str, Any],
        emit: Callable[[SourceEvent], None],
        *,
        partial: bool,
    ) -> None:
        """Emit the bars of ``candles`` that closed (once each), a new bar's first update at
        once (the open, which orders waiting for it need), and later updates of the bar in
        progress only when ``partial`` (the stream has been quiet for ``idle_drain_s``:
        nothing newer is on its way) and changed. Those are thus held back while newer ones
        follow at once (a burst after a bar's end carries its final values and the next bar),
        so a bar's final values never reach the engine as an in-progress update."""
        now = self.clock_ns()
        last_closed = state.get("closed", -1)
        if not all(_is_candle(c) for c in candles):
            bad = [c for c in candles if not _is_candle(c)]
            for c in bad:  # ccxt stored a kline it could not read (a wrong-shaped frame)
                shown = repr(c[:6])
                if shown not in state.setdefault("bad", set()):
                    state["bad"].add(shown)
                    self.tap.bad(f"{self.name} ohlcv {symbol}", 0, shown, "kline without numbers")
            candles = [c for c in candles if _is_candle(c)]
        fresh = len(candles)
        while fresh > 0 and int(candles[fresh - 1][0]) * _NS > last_closed:
            fresh -= 1
        candles = candles[fresh:]  # the cache is in time order: only bars not closed yet
        newest = max(int(c[0]) for c in candles) * _NS if candles else 0
        if newest > state.get("newest", -1):
            # a bar's first message comes no earlier than its open: the venue clock is at
            # least newest + (local time since now); keep the tightest such bound
            state["newest"] = newest
            state["offset"] = max(state.get("offset", newest - now), newest - now)
        venue_now = now + state.get("offset", 0)
        suspect: dict[int, tuple[Any, ...]] = state.get("suspect", {})
        for c in candles:
            ts = int(c[0]) * _NS
            if ts <= last_closed:
                continue  # closed already (an update after closure is dropped)
            closed = ts < newest or venue_now >= ts + self.tf_ns + self.close_grace_ns
            if ts in suspect:
                if suspect[ts] == tuple(c[:6]):  # nothing new since the connection went
                    if closed:
                        del suspect[ts]
                        last_closed = max(last_closed, ts)
                        logger.warning(
                            "%s %s %s: bar %d ended while disconnected; left to the backfill",
                            self.name, symbol, self.timeframe, ts,
                        )  # fmt: skip
                    continue
                del suspect[ts]  # updated after the reconnect: whole again
            if not closed:
                if not partial and ts <= state.get("opened", -1):
                    continue  # an update of the bar in progress: wait for a quiet stream
                state["opened"] = max(state.get("opened", -1), ts)
                key = tuple(c[:6])
                if state.get("partial") == key:
                    continue  # unchanged in-progress bar (a drain saw it already)
                state["partial"] = key
            volume = float(c[5]) if c[5] is not None else 0.0
            o, h, low, cl = (float(x) for x in c[1:5])
            bar = Bar(symbol, self.timeframe, ts, o, h, low, cl, volume)
            emit(StreamBar(self.name, now, bar, closed))
            if closed:
                last_closed = max(last_closed, ts)
        state["closed"] = last_closed

    async def _funding(
        self, symbol: str, state: dict[str, Any], emit: Callable[[SourceEvent], None]
    ) -> None:
        if self.exchange.has.get("watchFundingRate"):
            fr = await self.exchange.watch_funding_rate(symbol)
            if symbol in fr and isinstance(fr[symbol], dict):
                fr = fr[symbol]
        else:
            if "polled" in state:
                await asyncio.sleep(self.poll_s)
            state["polled"] = True
            fr = await self.exchange.fetch_funding_rate(symbol)
        self._emit_funding(symbol, fr, state, emit)

    def _drain_funding(
        self, symbol: str, state: dict[str, Any], emit: Callable[[SourceEvent], None]
    ) -> None:
        fr = (getattr(self.exchange, "fundingRates", None) or {}).get(self._cached_as(symbol))
        if isinstance(fr, dict) and "funding" in state:
            self._emit_funding(symbol, fr, state, emit)

    def _emit_funding(
        self, symbol: str, fr: Any, state: dict[str, Any], emit: Callable[[SourceEvent], None]
    ) -> None:
        now = self.clock_ns()
        ts = fr.get("timestamp") or fr.get("fundingTimestamp")
        nxt = fr.get("nextFundingTimestamp")
        key = (ts, fr.get("fundingRate"))
        if state.get("funding") == key:
            return  # the same rate (a drain saw it already, or an unchanged poll)
        state["funding"] = key
        emit(
            FundingRate(
                self.name, symbol, int(ts) * _NS if ts else now, now,
                float(fr["fundingRate"]), int(nxt) * _NS if nxt else 0,
            )
        )  # fmt: skip

    async def _open_interest(
        self, symbol: str, state: dict[str, Any], emit: Callable[[SourceEvent], None]
    ) -> None:
        if "polled" in state:
            await asyncio.sleep(self.poll_s)
        state["polled"] = True
        oi = await self.exchange.fetch_open_interest(symbol)
        now = self.clock_ns()
        ts = oi.get("timestamp")
        value = oi.get("openInterestAmount")
        if value is None:
            value = oi.get("openInterestValue")
        emit(OpenInterest(self.name, symbol, int(ts) * _NS if ts else now, now, float(value)))
