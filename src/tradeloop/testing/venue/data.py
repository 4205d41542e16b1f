"""What the local venue server serves: recorded candles, funding, open interest and trades.

Series are registered with a loader and read on first use, so a server that knows every
recorded file starts instantly and a test pays only for the files it asks for. Times are
epoch milliseconds (the wire unit), values float64.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.feather as pf
import pyarrow.parquet as pq

__all__ = [
    "Candles",
    "FundingHistory",
    "MarketSpec",
    "OpenInterestHistory",
    "Trades",
    "VenueData",
    "derived_open_interest",
    "recorded_venues",
]

_NS_PER_MS = 1_000_000
_MINUTE_MS = 60_000


@dataclass(frozen=True, slots=True)
class Candles:
    """OHLCV bars stamped by open time (ms)."""

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray


@dataclass(frozen=True, slots=True)
class FundingHistory:
    """Funding events: time (ms, with the venue's jitter), rate, mark price (NaN if unknown)."""

    ts: np.ndarray
    rate: np.ndarray
    mark_price: np.ndarray


@dataclass(frozen=True, slots=True)
class OpenInterestHistory:
    """Open interest per period: time (ms), amount (base) and value (quote)."""

    ts: np.ndarray
    amount: np.ndarray
    value: np.ndarray


@dataclass(frozen=True, slots=True)
class Trades:
    """Public (aggregated) trades: id, time (ms), price, amount, taker side is buy."""

    trade_id: np.ndarray
    ts: np.ndarray
    price: np.ndarray
    amount: np.ndarray
    taker_buy: np.ndarray


@dataclass(frozen=True, slots=True)
class MarketSpec:
    """One listed market: exchange symbol id, base/quote, tick and lot size as wire strings."""

    symbol_id: str
    base: str
    quote: str
    tick_size: str = "0.01"
    step_size: str = "0.00001"


_Key = tuple[str, str, str, str]  # venue, market ("spot" | "linear"), symbol id, series name


@dataclass
class VenueData:
    """Registry of served series, keyed by venue, market type, symbol id and series name."""

    markets: dict[tuple[str, str], dict[str, MarketSpec]] = field(default_factory=dict)
    _loaders: dict[_Key, Callable[[], object]] = field(default_factory=dict)
    _loaded: dict[_Key, object] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def list_market(self, venue: str, market: str, spec: MarketSpec) -> None:
        """List ``spec`` on ``venue``'s ``market`` (``spot`` or ``linear``)."""
        self.markets.setdefault((venue, market), {})[spec.symbol_id] = spec

    def add(
        self, venue: str, market: str, symbol_id: str, name: str, loader: Callable[[], object]
    ) -> None:
        """Register a series (``klines:1m``, ``funding``, ``oi:5m``, ``trades``) by its loader."""
        self._loaders[(venue, market, symbol_id, name)] = loader

    def get(self, venue: str, market: str, symbol_id: str, name: str) -> object | None:
        """Return a series, loading it on first use (None when not registered)."""
        key = (venue, market, symbol_id, name)
        with self._lock:
            if key in self._loaded:
                return self._loaded[key]
            loader = self._loaders.get(key)
            if name.startswith("klines:") and name != "klines:1m":
                base = self._loaders.get((venue, market, symbol_id, "klines:1m"))
                if base is not None:
                    loader = _with_resampled(loader, base, name.split(":", 1)[1])
            if loader is None:
                return None
            value = loader()
            self._loaded[key] = value
            return value

    def candles(self, venue: str, market: str, symbol_id: str, interval: str) -> Candles | None:
        """Return candles for an interval (``1m``, ``1h``...), resampled from 1m if needed."""
        value = self.get(venue, market, symbol_id, f"klines:{interval}")
        return value if isinstance(value, Candles) else None


# ---------------------------------------------------------------------- loading files


def _read(path: Path) -> pa.Table:
    return pq.read_table(path) if path.suffix == ".parquet" else pf.read_table(path)


def _ms(column: pa.ChunkedArray) -> np.ndarray:
    if pa.types.is_timestamp(column.type):
        ns = column.cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64()).to_numpy()
        return np.asarray(ns, dtype=np.int64) // _NS_PER_MS
    return np.asarray(column.to_numpy(), dtype=np.int64)


def load_candles(path: Path) -> Candles:
    """Read a freqtrade-style candle file (``date, open, high, low, close, volume``)."""
    t = _read(path)
    col = "date" if "date" in t.column_names else "timestamp"
    return Candles(
        _ms(t.column(col)),
        *(
            np.asarray(t.column(c).to_numpy(), dtype=np.float64)
            for c in ("open", "high", "low", "close", "volume")
        ),
    )


def load_funding(path: Path, mark_path: Path | None = None) -> FundingHistory:
    """Read a freqtrade funding file (rate in ``open``), with mark prices from the mark file."""
    t = _read(path)
    ts = _ms(t.column("date"))
    rate = np.asarray(t.column("open").to_numpy(), dtype=np.float64)
    mark = np.full(ts.shape[0], np.nan)
    if mark_path is not None and mark_path.is_file():
        m = _read(mark_path)
        m_ts = _ms(m.column("date"))
        m_open = np.asarray(m.column("open").to_numpy(), dtype=np.float64)
        slot = 8 * 3_600_000
        idx = np.searchsorted(m_ts, (ts // slot) * slot)
        ok = (idx < m_ts.shape[0]) & (
            m_ts[np.clip(idx, 0, m_ts.shape[0] - 1)] == (ts // slot) * slot
        )
        mark[ok] = m_open[idx[ok]]
    return FundingHistory(ts, rate, mark)


def load_trades(path: Path) -> Trades:
    """Read recorded trades: freqtrade (``id, side``) or Binance raw (``trade_id, buyer_maker``)."""
    t = _read(path)
    names = t.column_names
    ts = _ms(t.column("timestamp"))
    if "side" in names:
        ids = np.asarray([int(x) for x in t.column("id").to_pylist()], dtype=np.int64)
        buy = np.asarray(t.column("side").to_pylist(), dtype=object) == "buy"
        amount = np.asarray(t.column("amount").to_numpy(), dtype=np.float64)
    else:
        ids = np.asarray(t.column("trade_id").to_numpy(), dtype=np.int64)
        buy = np.asarray(t.column("buyer_maker").to_pylist(), dtype=object) == "False"
        amount = np.asarray(t.column("quantity").to_numpy(), dtype=np.float64)
    price = np.asarray(t.column("price").to_numpy(), dtype=np.float64)
    return Trades(ids, ts, price, amount, np.asarray(buy, dtype=bool))


def derived_open_interest(candles: Candles, period_ms: int = 5 * _MINUTE_MS) -> OpenInterestHistory:
    """Return an open-interest series DERIVED from candles (not market data).

    The shared data has no real open-interest recording, so the server serves this
    deterministic stand-in: ``amount`` is 1,000 plus the running sum of volume signed by the
    bar's direction (kept positive), stamped on the ``period_ms`` grid; ``value`` is
    ``amount * close``. It exercises the wire format, pagination and alignment, not market
    behaviour.
    """
    ts = candles.ts
    keep = ts % period_ms == 0
    signed = candles.volume * np.sign(candles.close - candles.open)
    amount = 1_000.0 + np.abs(np.cumsum(signed))
    amount = np.round(amount, 3)
    value = np.round(amount * candles.close, 8)
    return OpenInterestHistory(ts[keep], amount[keep], value[keep])


def _with_resampled(
    native: Callable[[], object] | None, base: Callable[[], object], interval: str
) -> Callable[[], object]:
    # Serve an interval as the exchange would: its own recorded bars where they exist, and
    # bars built from the recorded 1m bars for the other times.
    def load() -> object:
        built = _resample(base(), interval)
        if native is None:
            return built
        own = native()
        assert isinstance(own, Candles)
        extra = ~np.isin(built.ts, own.ts)
        order = np.argsort(np.concatenate([own.ts, built.ts[extra]]), kind="stable")
        return Candles(
            *(
                np.concatenate([getattr(own, f), getattr(built, f)[extra]])[order]
                for f in ("ts", "open", "high", "low", "close", "volume")
            )
        )

    return load


def _resample(candles: object, interval: str) -> Candles:
    from tradeloop.core.bar import BarArrays
    from tradeloop.data.resample import resample

    assert isinstance(candles, Candles)
    bars = BarArrays(
        "X",
        "1m",
        candles.ts * _NS_PER_MS,
        candles.open,
        candles.high,
        candles.low,
        candles.close,
        candles.volume,
    )
    out = resample(bars, interval)
    return Candles(out.ts // _NS_PER_MS, out.open, out.high, out.low, out.close, out.volume)


# ---------------------------------------------------------------------- the recorded set

_PERPS = ("BTC", "ETH", "SOL", "BNB", "XRP", "ADA", "DOGE", "DOT", "LTC")


def recorded_venues(folder: Path, *, open_interest: bool = True) -> VenueData:
    """Return the venues as recorded in the shared data folder.

    * Binance spot ``BTCUSDT``: 1m and 5m (2025-05-20 -> 2025-08-18) and 1h (2017-08-17 ->
      2024-04-21, with the real outages); aggTrades of 2021-01-08 (2,001 trades).
    * Binance spot ``XRPETH``: 1m, 5m and 12,477 aggTrades (2019-10-11 -> 10-13).
    * Binance USD-M: ``BTCUSDT`` 1m (2025-05-25 -> 06-24); 5m and 8h funding (mark prices from
      the mark files) for BTC, ETH, SOL, BNB, XRP, ADA, DOGE, DOT and LTC; the BTC funding of
      2025-08-16 -> 09-09 too; with ``open_interest`` a 5m series from
      :func:`derived_open_interest` (no real open interest is recorded).
    * Bybit spot ``BTCUSDT`` and linear ``BTCUSDT``: the same recorded 1m bars as Binance's,
      served in Bybit's v5 shapes (no Bybit recording exists in the shared data).
    """
    d = VenueData()
    spot_1m = folder / "crypto_1m/binance_spot_2025/BTC_USDT-1m.feather"
    spot_5m = folder / "crypto_1m/binance_spot_2025/BTC_USDT-5m.feather"
    spot_1h = folder / "crypto_1h/binance_spot_2017_2024/BTC_USDT-1h.feather"
    perp_1m = folder / "crypto_1m/binance_usdm_2025/BTC_USDT_USDT-1m-futures.feather"
    xrp = folder / "trades/binance_xrpeth_2019"

    d.list_market("binance", "spot", MarketSpec("BTCUSDT", "BTC", "USDT"))
    d.add("binance", "spot", "BTCUSDT", "klines:1m", lambda: load_candles(spot_1m))
    d.add("binance", "spot", "BTCUSDT", "klines:5m", lambda: load_candles(spot_5m))
    d.add("binance", "spot", "BTCUSDT", "klines:1h", lambda: load_candles(spot_1h))
    d.add(
        "binance",
        "spot",
        "BTCUSDT",
        "trades",
        lambda: load_trades(folder / "trades/binance_btcusdt_2021/btcusdt-trades.parquet"),
    )
    d.list_market("binance", "spot", MarketSpec("XRPETH", "XRP", "ETH", "0.00000001", "1.00000000"))
    d.add(
        "binance", "spot", "XRPETH", "klines:1m", lambda: load_candles(xrp / "XRP_ETH-1m.feather")
    )
    d.add(
        "binance", "spot", "XRPETH", "klines:5m", lambda: load_candles(xrp / "XRP_ETH-5m.feather")
    )
    d.add(
        "binance", "spot", "XRPETH", "trades", lambda: load_trades(xrp / "XRP_ETH-trades.feather")
    )

    futures = folder / "crypto_futures/binance_usdm_2025"
    for base in _PERPS:
        sid = f"{base}USDT"
        stem = futures / f"{base}_USDT_USDT"
        d.list_market("binance", "linear", MarketSpec(sid, base, "USDT", "0.0001", "0.001"))
        five = Path(f"{stem}-5m-futures.feather")
        d.add("binance", "linear", sid, "klines:5m", lambda p=five: load_candles(p))
        funding = Path(f"{stem}-8h-funding_rate.feather")
        mark = Path(f"{stem}-8h-mark.feather")
        if base == "BTC":
            later = folder / "crypto_futures/binance_usdm_btc_2025"
            d.add(
                "binance",
                "linear",
                sid,
                "funding",
                lambda f=funding, m=mark, lt=later: _concat_funding(
                    load_funding(f, m),
                    load_funding(
                        lt / "BTC_USDT_USDT-8h-funding_rate.feather",
                        lt / "BTC_USDT_USDT-8h-mark.feather",
                    ),
                ),
            )
        else:
            d.add("binance", "linear", sid, "funding", lambda f=funding, m=mark: load_funding(f, m))
        if open_interest:
            d.add(
                "binance",
                "linear",
                sid,
                "oi:5m",
                lambda p=five: derived_open_interest(load_candles(p)),
            )
    d.add("binance", "linear", "BTCUSDT", "klines:1m", lambda: load_candles(perp_1m))

    d.list_market("bybit", "spot", MarketSpec("BTCUSDT", "BTC", "USDT", "0.01", "0.000001"))
    d.add("bybit", "spot", "BTCUSDT", "klines:1m", lambda: load_candles(spot_1m))
    d.list_market("bybit", "linear", MarketSpec("BTCUSDT", "BTC", "USDT", "0.10", "0.001"))
    d.add("bybit", "linear", "BTCUSDT", "klines:1m", lambda: load_candles(perp_1m))
    return d


def _concat_funding(a: FundingHistory, b: FundingHistory) -> FundingHistory:
    order = np.argsort(np.concatenate([a.ts, b.ts]), kind="stable")
    return FundingHistory(
        np.concatenate([a.ts, b.ts])[order],
        np.concatenate([a.rate, b.rate])[order],
        np.concatenate([a.mark_price, b.mark_price])[order],
    )
