"""What every exchange kline format provides to the connection loop.

A codec knows one exchange's stream wire format: the URL to connect to, the subscribe
messages, the client heartbeat and how to turn a received frame into :class:`KlineUpdate`
objects. It does no I/O, so it is tested with literal messages.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import urlsplit

from tradeloop.adapters.feeds.events import KlineUpdate
from tradeloop.core.errors import ConfigError, did_you_mean

__all__ = [
    "MARKETS",
    "KlineCodec",
    "MalformedMessageError",
    "SubscriptionRejectedError",
    "decode_object",
    "replace_base",
    "symbol_id",
]

MARKETS = ("spot", "perp")
NS_PER_MS = 1_000_000
_UNIFIED = re.compile(r"^([A-Z0-9]+)/([A-Z0-9]+)(?::([A-Z0-9]+))?$")


class MalformedMessageError(ValueError):
    """A received frame that is not valid JSON or not in the exchange's shape."""


class SubscriptionRejectedError(Exception):
    """The exchange answered a subscription (or a request) with an error."""


def symbol_id(symbol: str) -> str:
    """Return the exchange id of a unified symbol (``BTC/USDT`` and ``BTC/USDT:USDT`` -> BTCUSDT).

    Raises
    ------
    ConfigError
        If ``symbol`` is not ``BASE/QUOTE`` or ``BASE/QUOTE:SETTLE``.
    """
    match = _UNIFIED.match(symbol.upper())
    if match is None:
        raise ConfigError(f"symbol {symbol!r} must look like BTC/USDT or BTC/USDT:USDT")
    return match.group(1) + match.group(2)


def decode_object(raw: str | bytes) -> dict[str, Any]:
    """Return a received frame decoded as a JSON object.

    >>> decode_object('{"op": "pong"}')
    {'op': 'pong'}

    Raises
    ------
    MalformedMessageError
        If ``raw`` is not valid JSON or not a JSON object.
    """
    try:
        msg = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedMessageError(f"invalid JSON: {exc}") from None
    if not isinstance(msg, dict):
        raise MalformedMessageError("frame is not a JSON object")
    return msg


def replace_base(url: str, base_url: str | None) -> str:
    """Replace scheme, host and port of ``url`` by ``base_url``, keeping path and query.

    >>> replace_base("wss://stream.bybit.com/v5/public/spot", "ws://127.0.0.1:9000/")
    'ws://127.0.0.1:9000/v5/public/spot'

    Raises
    ------
    ConfigError
        If ``base_url`` is not ``ws://host[:port]`` or ``wss://host[:port]``.
    """
    if base_url is None or base_url == "":
        return url
    if not re.match(r"^wss?://[^/\s]+", base_url):
        raise ConfigError(f"ws_url must look like ws://host[:port], got {base_url!r}")
    parts = urlsplit(url)
    tail = parts.path + (f"?{parts.query}" if parts.query else "")
    return base_url.rstrip("/") + tail


class KlineCodec(ABC):
    """One exchange's kline stream format for a fixed set of symbols and timeframes.

    Parameters
    ----------
    symbols
        Unified symbols (``BTC/USDT``; perps ``BTC/USDT:USDT``).
    timeframes
        Timeframe codes (``1m``, ``1h``...), each subscribed for every symbol.
    market
        ``spot`` or ``perp`` (USDT-margined perpetuals).
    testnet
        Use the exchange's testnet stream host.

    Raises
    ------
    ConfigError
        For an unknown market or timeframe, a malformed symbol or an empty subscription.
    """

    exchange: ClassVar[str] = ""
    timeframes_map: ClassVar[dict[str, str]] = {}
    """Unified timeframe -> the exchange's interval code."""
    kline_keys: ClassVar[tuple[str, ...]] = ()
    """Keys of a wire kline: open time (ms), open, high, low, close, volume, closed flag."""

    def __init__(
        self,
        symbols: Sequence[str],
        timeframes: Sequence[str],
        *,
        market: str = "spot",
        testnet: bool = False,
    ) -> None:
        if market not in MARKETS:
            hint = did_you_mean(market, MARKETS)
            raise ConfigError(f"market {market!r} is not one of {', '.join(MARKETS)}.{hint}")
        if isinstance(symbols, str) or isinstance(timeframes, str):
            raise ConfigError("symbols and timeframes must be sequences of strings, not a string")
        if not symbols or not timeframes:
            raise ConfigError(f"{self.exchange} feed needs at least one symbol and one timeframe")
        self.market = market
        self.testnet = testnet
        self.symbols: dict[str, str] = {}
        """Exchange symbol id -> unified symbol."""
        for symbol in symbols:
            sid = symbol_id(symbol)
            if sid in self.symbols and self.symbols[sid] != symbol:
                raise ConfigError(
                    f"{symbol!r} and {self.symbols[sid]!r} are the same {self.exchange} "
                    f"market {sid}; subscribe one of them"
                )
            self.symbols[sid] = symbol
        self.intervals: dict[str, str] = {}
        """Exchange interval code -> unified timeframe."""
        for timeframe in timeframes:
            code = self.timeframes_map.get(timeframe)
            if code is None:
                hint = did_you_mean(timeframe, self.timeframes_map)
                raise ConfigError(
                    f"{self.exchange} streams have no timeframe {timeframe!r}; use one of "
                    f"{', '.join(self.timeframes_map)}.{hint}"
                )
            self.intervals[code] = timeframe

    @abstractmethod
    def url(self, base_url: str | None = None) -> str:
        """Return the stream URL; ``base_url`` replaces scheme and host (path is kept)."""

    def subscribe_messages(self) -> list[str]:
        """Return the text frames to send right after connecting (none by default)."""
        return []

    def ping_message(self) -> str | None:
        """Return the client heartbeat frame, or None when the exchange needs none."""
        return None

    def _update(self, symbol: str, timeframe: str, row: Mapping[str, Any]) -> KlineUpdate:
        """Return the :class:`KlineUpdate` of one wire kline ``row`` named by :attr:`kline_keys`.

        Raises
        ------
        KeyError, TypeError, ValueError
            If a key is missing, a number does not parse or the closed flag is not a boolean.
        """
        ts, open_, high, low, close, volume, closed = self.kline_keys
        return KlineUpdate(
            exchange=self.exchange,
            symbol=symbol,
            timeframe=timeframe,
            ts=int(row[ts]) * NS_PER_MS,
            open=float(row[open_]),
            high=float(row[high]),
            low=float(row[low]),
            close=float(row[close]),
            volume=float(row[volume]),
            closed=_as_bool(row[closed]),
        )

    @abstractmethod
    def parse(self, raw: str | bytes) -> list[KlineUpdate]:
        """Return the kline updates in one frame ([] for acks, pongs and other control frames).

        Raises
        ------
        MalformedMessageError
            If the frame is not valid JSON or not in the exchange's shape.
        SubscriptionRejectedError
            If the frame is the exchange's error answer to a request.
        """


def _as_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError(f"expected a boolean, got {value!r}")
