"""Alpaca minute bars as a live data feed for ``tradeloop paper`` and ``tradeloop live``.

:class:`AlpacaMarketData` gives a session what it needs from a venue's market data, the same
three things the ccxt path gives it: the instruments' trading rules (from the asset:
fractional shares to 1e-9, $0.01 ticks, $1 minimum notional, no commission), closed bars
over REST for warm-up and backfill (``StockHistoricalDataClient.get_stock_bars``), and a live
feed (:class:`AlpacaBarFeed`): ``StockDataStream`` minute bars on a thread of its own, put on
the session's queue as :class:`~tradeloop.adapters.feeds.events.KlineUpdate` (closed bars,
stamped at their open as Alpaca stamps them) and
:class:`~tradeloop.adapters.feeds.events.FeedStatus` events.

Alpaca's streams publish minute bars only; the session's timeframe must be ``1m``.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from tradeloop.adapters.alpaca.config import AlpacaConfig, require_alpaca
from tradeloop.adapters.feeds.events import FeedState, FeedStatus, KlineUpdate
from tradeloop.core.errors import ConfigError, TemporaryError
from tradeloop.core.instrument import AssetClass, Instrument

__all__ = ["AlpacaBarFeed", "AlpacaMarketData"]

logger = logging.getLogger(__name__)

EXCHANGE = "alpaca"
_PAGE = 10_000

Bar6 = tuple[int, float, float, float, float, float]


def _check_timeframe(timeframe: str) -> None:
    if timeframe != "1m":
        raise ConfigError(
            f"alpaca streams minute bars only: use --timeframe 1m (got {timeframe!r}); "
            "the strategy can still read higher timeframes from them"
        )


class AlpacaMarketData:
    """Instruments, REST bars and the live bar feed of Alpaca (see the module docstring).

    Raises
    ------
    ConfigError
        When alpaca-py is missing (naming the extra).
    """

    exchange = EXCHANGE

    def __init__(self, config: AlpacaConfig) -> None:
        require_alpaca()
        from alpaca.data.historical.stock import StockHistoricalDataClient

        from tradeloop.adapters.alpaca.client import AlpacaClient, _harden

        self.config = config
        self.history = StockHistoricalDataClient(
            config.api_key, config.api_secret, url_override=config.url
        )
        _harden(self.history, config.timeout_s, config.budget())  # shared with orders
        self._client: AlpacaClient | None = None
        self.requests = 0

    @property
    def client(self) -> Any:
        """The trading client (asset rules, clock), built on first use."""
        if self._client is None:
            from tradeloop.adapters.alpaca.client import AlpacaClient

            self._client = AlpacaClient(self.config)
        return self._client

    def instruments(self, symbols: Sequence[str]) -> dict[str, Instrument]:
        """Trading rules of ``symbols`` from Alpaca's assets (unknown: ConfigError naming it)."""
        out: dict[str, Instrument] = {}
        for symbol in symbols:
            rules = self.client.market_rules(symbol)
            if not rules.active:
                raise ConfigError(f"alpaca: {symbol} is not tradable")
            out[symbol] = Instrument(
                symbol=symbol,
                venue=EXCHANGE,
                asset_class=AssetClass.EQUITY,
                tick_size=rules.price_step,
                lot_size=rules.amount_step,
                min_notional=rules.min_notional,
                maker_fee=0.0,
                taker_fee=0.0,
                quote_currency="USD",
            )
        return out

    def closed_bars(self, symbol: str, timeframe: str, start_ns: int, end_ns: int) -> list[Bar6]:
        """Minute bars of ``symbol`` opened in ``[start_ns, end_ns)``, oldest first (bar open
        times in ns, as the kernel keys them).

        Raises
        ------
        TemporaryError
            When Alpaca's data API fails (the session retries at the next bar).
        """
        _check_timeframe(timeframe)
        if end_ns <= start_ns:
            return []
        import requests
        from alpaca.common.exceptions import APIError
        from alpaca.data.enums import DataFeed
        from alpaca.data.requests import StockBarsRequest
        from alpaca.data.timeframe import TimeFrame

        request = StockBarsRequest(
            symbol_or_symbols=symbol,
            timeframe=TimeFrame.Minute,
            start=datetime.fromtimestamp(start_ns / 1e9, tz=UTC),
            end=datetime.fromtimestamp((end_ns - 1) / 1e9, tz=UTC),
            feed=DataFeed(self.config.feed),
            limit=None,
        )
        try:
            self.requests += 1
            barset = self.history.get_stock_bars(request)
        except APIError as exc:
            raise TemporaryError(f"alpaca bars {symbol}: {exc.status_code}") from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise TemporaryError(f"alpaca bars {symbol}: {type(exc).__name__}") from None
        out: list[Bar6] = []
        data: Any = getattr(barset, "data", barset)
        for bar in data.get(symbol, []):
            ts = round(bar.timestamp.timestamp() * 1e6) * 1000
            if start_ns <= ts < end_ns and (not out or ts > out[-1][0]):
                out.append((ts, bar.open, bar.high, bar.low, bar.close, float(bar.volume)))
        return out

    def feed(
        self,
        symbols: Sequence[str],
        timeframe: str,
        events: queue.Queue[Any],
        **_options: Any,
    ) -> AlpacaBarFeed:
        """The live minute-bar feed of ``symbols`` onto ``events`` (not started)."""
        _check_timeframe(timeframe)
        return AlpacaBarFeed(self.config, symbols, events)

    def schedule(self) -> Any:
        """The market hours from Alpaca's clock (a scheduler ``MarketSchedule``)."""
        from tradeloop.adapters.alpaca.clock import AlpacaClockSchedule

        return AlpacaClockSchedule(self.client)


class AlpacaBarFeed:
    """``StockDataStream`` minute bars on a background thread, onto a queue.

    Same surface as :class:`~tradeloop.adapters.streams.kline_feed.KlineFeed` (``start``,
    ``stop``, ``running``). Connection changes are reported as ``FeedStatus`` events by a
    watcher on the library's connection state; the library reconnects by itself.
    """

    def __init__(
        self, config: AlpacaConfig, symbols: Sequence[str], events: queue.Queue[Any]
    ) -> None:
        require_alpaca()
        from alpaca.data.live.stock import StockDataStream

        kwargs: dict[str, Any] = {}
        if config.data_stream_url:
            kwargs["url_override"] = config.data_stream_url
        else:
            from alpaca.data.enums import DataFeed

            kwargs["feed"] = DataFeed(config.feed)
        self.stream = StockDataStream(config.api_key, config.api_secret, **kwargs)
        self.stream._reconnect_min_backoff = 0.2  # the library's first wait (it caps at 30 s)
        self.symbols = list(symbols)
        self.events = events
        self.name = "feed-alpaca"
        self.bars = 0
        """Bars received."""
        self._thread: threading.Thread | None = None
        self._watcher: threading.Thread | None = None
        self._stopped = threading.Event()

    @property
    def running(self) -> bool:
        """True while the stream thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> AlpacaBarFeed:
        """Subscribe to the bars and start the stream thread (once)."""
        if self._thread is not None:
            raise RuntimeError("the alpaca feed was already started")
        self.stream.subscribe_bars(self._on_bar, *self.symbols)
        self.events.put_nowait(FeedStatus(EXCHANGE, "connecting", "alpaca data stream"))
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        self._watcher = threading.Thread(target=self._watch, name=f"{self.name}-watch", daemon=True)
        self._watcher.start()
        return self

    def stop(self, timeout: float = 3.0) -> bool:
        """Stop the stream and join its thread; True when it ended."""
        self._stopped.set()
        thread = self._thread
        if thread is None:
            return True
        if thread.is_alive():
            try:
                loop = getattr(self.stream, "_loop", None)
                if loop is not None and loop.is_running():
                    import asyncio

                    asyncio.run_coroutine_threadsafe(self.stream.stop_ws(), loop).result(timeout)
                    # close the socket too: the library only looks at its stop flag between
                    # 5-second receive timeouts
                    asyncio.run_coroutine_threadsafe(self.stream.close(), loop).result(timeout)
            except Exception as exc:  # its loop already ended
                logger.debug("alpaca feed stop: %s", exc)
            thread.join(timeout)
        return not thread.is_alive()

    def _run(self) -> None:
        try:
            self.stream.run()
        except Exception as exc:
            logger.exception("alpaca data stream ended with an error")
            self.events.put_nowait(FeedStatus(EXCHANGE, "failed", f"stream crashed: {exc}"[:200]))

    def _watch(self) -> None:
        """Report the library's connection state changes as ``FeedStatus`` events."""
        connected, ever, reconnects = False, False, 0
        while not self._stopped.wait(0.05):
            now = bool(getattr(self.stream, "_running", False))
            if now == connected:
                continue
            if now and ever:
                reconnects += 1
            ever = ever or now
            state: FeedState = "connected" if now else "disconnected"
            self.events.put_nowait(FeedStatus(EXCHANGE, state, "alpaca data stream", 0, reconnects))
            connected = now
        self.events.put_nowait(FeedStatus(EXCHANGE, "disconnected", "stopped", 0, reconnects))

    async def _on_bar(self, bar: Any) -> None:
        ts = round(bar.timestamp.timestamp() * 1e6) * 1000
        self.bars += 1
        self.events.put_nowait(
            KlineUpdate(
                exchange=EXCHANGE,
                symbol=bar.symbol,
                timeframe="1m",
                ts=ts,
                open=float(bar.open),
                high=float(bar.high),
                low=float(bar.low),
                close=float(bar.close),
                volume=float(bar.volume),
                closed=True,
            )
        )
