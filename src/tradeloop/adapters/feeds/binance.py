"""Binance kline streams: combined-stream URL and ``kline`` event parsing.

Spot and USD-M futures use the same message shapes on different hosts. Every symbol and
timeframe goes into one combined stream (``/stream?streams=btcusdt@kline_1m/...``), so no
subscribe request is sent; the server's WebSocket pings are answered by the client library.

>>> codec = BinanceKlineCodec(["BTC/USDT"], ["1m"])
>>> codec.url()
'wss://stream.binance.com:9443/stream?streams=btcusdt@kline_1m'
>>> codec.url("ws://127.0.0.1:9000")
'ws://127.0.0.1:9000/stream?streams=btcusdt@kline_1m'
"""

from __future__ import annotations

from typing import Any

from tradeloop.adapters.feeds.codec import (
    KlineCodec,
    MalformedMessageError,
    SubscriptionRejectedError,
    decode_object,
    replace_base,
)
from tradeloop.adapters.feeds.events import KlineUpdate
from tradeloop.core.errors import ConfigError

__all__ = ["BINANCE_HOSTS", "BINANCE_TIMEFRAMES", "MAX_STREAMS", "BinanceKlineCodec"]

BINANCE_HOSTS: dict[tuple[str, bool], str] = {
    ("spot", False): "wss://stream.binance.com:9443",
    ("spot", True): "wss://stream.testnet.binance.vision",
    ("perp", False): "wss://fstream.binance.com",
    ("perp", True): "wss://fstream.binancefuture.com",
}
"""(market, testnet) -> stream host."""

BINANCE_TIMEFRAMES = {
    tf: tf
    for tf in ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d")
}
BINANCE_TIMEFRAMES |= {"1w": "1w", "1M": "1M"}

MAX_STREAMS = 1024
"""Binance's limit of streams on one connection."""


class BinanceKlineCodec(KlineCodec):
    """Binance spot / USD-M kline streams on one combined-stream connection."""

    exchange = "binance"
    timeframes_map = BINANCE_TIMEFRAMES
    kline_keys = ("t", "o", "h", "l", "c", "v", "x")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.streams = [
            f"{sid.lower()}@kline_{code}" for sid in self.symbols for code in self.intervals
        ]
        if len(self.streams) > MAX_STREAMS:
            raise ConfigError(
                f"binance allows {MAX_STREAMS} streams per connection, got {len(self.streams)}"
            )

    def url(self, base_url: str | None = None) -> str:
        """Return ``{host}/stream?streams=a@kline_1m/b@kline_1m``."""
        host = BINANCE_HOSTS[(self.market, self.testnet)]
        return replace_base(f"{host}/stream?streams={'/'.join(self.streams)}", base_url)

    def parse(self, raw: str | bytes) -> list[KlineUpdate]:
        """Parse a combined-stream frame (or a raw ``kline`` event); see :class:`KlineCodec`."""
        msg = decode_object(raw)
        if "data" in msg and "stream" in msg:
            msg = msg["data"]
            if not isinstance(msg, dict):
                raise MalformedMessageError("'data' is not a JSON object")
        elif "result" in msg and "id" in msg:
            return []  # answer to a SUBSCRIBE / LIST_SUBSCRIPTIONS request
        elif "code" in msg and "msg" in msg:
            raise SubscriptionRejectedError(f"binance error {msg['code']}: {msg['msg']}")
        elif isinstance(msg.get("error"), dict):
            err = msg["error"]
            raise SubscriptionRejectedError(f"binance error {err.get('code')}: {err.get('msg')}")
        if msg.get("e") != "kline":
            raise MalformedMessageError(f"unexpected event type {msg.get('e')!r}")
        try:
            k = msg["k"]
            symbol = self.symbols[str(k["s"]).upper()]
            timeframe = self.intervals[k["i"]]
            return [self._update(symbol, timeframe, k)]
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedMessageError(f"bad kline event: {type(exc).__name__}: {exc}") from None
