""":class:`~tradeloop.data.history.HistorySource` over ccxt: candles, funding, OI, trades."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from tradeloop.adapters.ccxt.client import create_exchange
from tradeloop.adapters.ccxt.retry import RetryStats, call_with_retry
from tradeloop.config.settings import ExchangeSettings, RetrySettings
from tradeloop.core.errors import ConfigError, did_you_mean
from tradeloop.data.cache import TS_TYPE
from tradeloop.data.history import PageRequest

__all__ = ["CcxtHistorySource"]

_NS_PER_MS = 1_000_000
_HOUR_NS = 3_600 * 1_000_000_000
# Page sizes when ccxt's feature table has none (Binance's documented maximums).
_DEFAULT_LIMITS = {"candles": 500, "funding_rate": 1000, "open_interest": 500, "trades": 1000}


class CcxtHistorySource:
    """Fetch history pages from one exchange and market through ccxt.

    Parameters
    ----------
    exchange
        ccxt exchange id (``binance``, ``bybit``, ...).
    market
        ``spot`` or ``perp`` (USD-M linear perpetuals).
    settings
        Endpoint, testnet and rate-limit settings of the exchange.
    retry
        Retry policy for transient failures.
    client
        An already built ccxt exchange (tests); built from ``settings`` when None.
    sleep
        Sleep function used between retries.
    """

    def __init__(
        self,
        exchange: str,
        market: str,
        settings: ExchangeSettings | None = None,
        retry: RetrySettings | None = None,
        *,
        client: Any = None,
        sleep: Any = None,
    ) -> None:
        self.exchange = exchange.lower()
        self.market = market
        self.client = client or create_exchange(
            self.exchange, market, settings or ExchangeSettings()
        )
        self.retry = retry or RetrySettings()
        self.stats = RetryStats()
        self._sleep = sleep
        self._markets_loaded = False

    # ------------------------------------------------------------------ port

    def resolve_symbol(self, symbol: str) -> str:
        """Return the unified ccxt symbol (``BTC/USDT`` on ``perp`` -> ``BTC/USDT:USDT``).

        Raises
        ------
        ConfigError
            If the market list of the exchange has no such symbol.
        """
        self._load_markets()
        text = symbol.strip().upper()
        candidates = [text]
        if self.market == "perp" and ":" not in text and "/" in text:
            candidates.insert(0, f"{text}:{text.split('/')[1]}")
        for candidate in candidates:
            if candidate in self.client.markets:
                return candidate
        known = list(self.client.markets)
        raise ConfigError(
            f"{self.exchange} {self.market} has no symbol {symbol!r}.{did_you_mean(text, known)}"
        )

    def page_limit(self, kind: str) -> int:
        """Return the page size for ``kind`` (ccxt's feature table for candles)."""
        if kind == "candles":
            section = "spot" if self.market == "spot" else "swap"
            features = (self.client.features or {}).get(section) or {}
            if section == "swap":
                features = features.get("linear") or {}
            limit = ((features.get("fetchOHLCV") or {}).get("limit")) or _DEFAULT_LIMITS[kind]
            return int(min(limit, 1000))
        return _DEFAULT_LIMITS[kind]

    def max_window_ns(self, kind: str) -> int | None:
        """Trades are asked for one hour at a time (Binance refuses wider windows)."""
        return _HOUR_NS if kind == "trades" else None

    def fetch_page(self, request: PageRequest) -> pa.Table:
        """Fetch one page; see :class:`~tradeloop.data.history.HistorySource`.

        Raises
        ------
        TemporaryError
            When the exchange keeps failing after the retries.
        VenueError
            When the exchange refuses the request.
        """
        self._load_markets()
        params = {"until": request.until_ms}
        client = self.client
        what = (
            f"{self.exchange} {request.kind} {request.symbol} {request.dataset} "
            f"since {request.since_ms}"
        )
        if request.kind == "candles":
            rows = self._call(
                lambda: client.fetch_ohlcv(
                    request.symbol, request.dataset, request.since_ms, request.limit, params
                ),
                what,
            )
            return _candles_table(rows)
        if request.kind == "funding_rate":
            items = self._call(
                lambda: client.fetch_funding_rate_history(
                    request.symbol, request.since_ms, request.limit, params
                ),
                what,
            )
            return pa.table(
                {
                    "timestamp": _ts([i["timestamp"] for i in items]),
                    "funding_rate": _floats(items, "fundingRate"),
                }
            )
        if request.kind == "open_interest":
            period = request.dataset.removeprefix("open_interest_")
            items = self._call(
                lambda: client.fetch_open_interest_history(
                    request.symbol, period, request.since_ms, request.limit, params
                ),
                what,
            )
            return pa.table(
                {
                    "timestamp": _ts([i["timestamp"] for i in items]),
                    "open_interest": _floats(items, "openInterestAmount"),
                    "open_interest_value": _floats(items, "openInterestValue"),
                }
            )
        if request.kind == "trades":
            items = self._call(
                lambda: client.fetch_trades(
                    request.symbol, request.since_ms, request.limit, params
                ),
                what,
            )
            return pa.table(
                {
                    "timestamp": _ts([i["timestamp"] for i in items]),
                    "trade_id": pa.array([str(i.get("id")) for i in items], pa.string()),
                    "price": _floats(items, "price"),
                    "amount": _floats(items, "amount"),
                    "side": pa.array([i.get("side") for i in items], pa.string()),
                }
            )
        raise ConfigError(f"unknown history kind {request.kind!r}")

    # ------------------------------------------------------------------ internals

    def _call(self, fn: Any, what: str) -> Any:
        kwargs = {} if self._sleep is None else {"sleep": self._sleep}
        return call_with_retry(
            fn, exchange=self.client, policy=self.retry, stats=self.stats, what=what, **kwargs
        )

    def _load_markets(self) -> None:
        if not self._markets_loaded:
            self._call(self.client.load_markets, f"{self.exchange} load markets")
            self._markets_loaded = True


def _f(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _floats(items: list[dict[str, Any]], key: str) -> pa.Array:
    """Return ``items[*][key]`` as float64, NaN where missing."""
    return pa.array([_f(i.get(key)) for i in items], pa.float64())


def _ts(ms: list[Any]) -> pa.Array:
    arr = np.asarray(ms, dtype=np.int64) * _NS_PER_MS
    return pa.array(arr, pa.int64()).cast(TS_TYPE)


def _candles_table(rows: list[list[Any]]) -> pa.Table:
    if rows:
        data = np.asarray([[_f(v) for v in r[1:6]] for r in rows], dtype=np.float64)
        ms = [r[0] for r in rows]
    else:
        data = np.empty((0, 5), dtype=np.float64)
        ms = []
    return pa.table(
        {
            "timestamp": _ts(ms),
            "open": data[:, 0],
            "high": data[:, 1],
            "low": data[:, 2],
            "close": data[:, 3],
            "volume": data[:, 4],
        }
    )
