"""Bybit v5 public kline streams: subscribe requests, ``{"op":"ping"}`` heartbeat, parsing.

>>> codec = BybitKlineCodec(["BTC/USDT:USDT"], ["1h"], market="perp")
>>> codec.url()
'wss://stream.bybit.com/v5/public/linear'
>>> codec.subscribe_messages()
['{"op": "subscribe", "args": ["kline.60.BTCUSDT"]}']
"""

from __future__ import annotations

import json
from typing import Any

from tradeloop.adapters.feeds.codec import (
    KlineCodec,
    MalformedMessageError,
    SubscriptionRejectedError,
    decode_object,
    replace_base,
)
from tradeloop.adapters.feeds.events import KlineUpdate

__all__ = ["BYBIT_HOSTS", "BYBIT_TIMEFRAMES", "MAX_ARGS_PER_REQUEST", "BybitKlineCodec"]

BYBIT_HOSTS = {False: "wss://stream.bybit.com", True: "wss://stream-testnet.bybit.com"}
"""testnet -> stream host."""

BYBIT_PATHS = {"spot": "/v5/public/spot", "perp": "/v5/public/linear"}

BYBIT_TIMEFRAMES = {
    "1m": "1",
    "3m": "3",
    "5m": "5",
    "15m": "15",
    "30m": "30",
    "1h": "60",
    "2h": "120",
    "4h": "240",
    "6h": "360",
    "12h": "720",
    "1d": "D",
    "1w": "W",
    "1M": "M",
}

MAX_ARGS_PER_REQUEST = 10
"""Bybit spot accepts at most 10 topics per subscribe request."""


class BybitKlineCodec(KlineCodec):
    """Bybit v5 spot / linear (USDT perpetual) kline topics on one connection."""

    exchange = "bybit"
    timeframes_map = BYBIT_TIMEFRAMES
    kline_keys = ("start", "open", "high", "low", "close", "volume", "confirm")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.topics = [f"kline.{code}.{sid}" for sid in self.symbols for code in self.intervals]

    def url(self, base_url: str | None = None) -> str:
        """Return ``{host}/v5/public/spot`` or ``{host}/v5/public/linear``."""
        return replace_base(BYBIT_HOSTS[self.testnet] + BYBIT_PATHS[self.market], base_url)

    def subscribe_messages(self) -> list[str]:
        """Return ``{"op": "subscribe", "args": [...]}`` requests of up to 10 topics each."""
        return [
            json.dumps({"op": "subscribe", "args": self.topics[i : i + MAX_ARGS_PER_REQUEST]})
            for i in range(0, len(self.topics), MAX_ARGS_PER_REQUEST)
        ]

    def ping_message(self) -> str:
        """Return Bybit's application heartbeat ``{"op": "ping"}``."""
        return json.dumps({"op": "ping"})

    def parse(self, raw: str | bytes) -> list[KlineUpdate]:
        """Parse a ``kline.*`` topic frame; acks and pongs give []; see :class:`KlineCodec`."""
        msg = decode_object(raw)
        if "topic" not in msg:
            if "op" not in msg:
                raise MalformedMessageError("frame has neither 'topic' nor 'op'")
            if msg.get("success") is False:
                raise SubscriptionRejectedError(
                    f"bybit {msg.get('op')} failed: {msg.get('ret_msg')}"
                )
            return []  # subscribe ack, pong ({"op":"ping","ret_msg":"pong"} or {"op":"pong"})
        try:
            kind, code, sid = str(msg["topic"]).split(".", 2)
            if kind != "kline":
                raise ValueError(f"unexpected topic {msg['topic']!r}")
            symbol = self.symbols[sid]
            timeframe = self.intervals[code]
            rows = msg["data"]
            if not isinstance(rows, list):
                raise TypeError("'data' is not a list")
            return [self._update(symbol, timeframe, row) for row in rows]
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedMessageError(f"bad kline frame: {type(exc).__name__}: {exc}") from None
