"""Read bars from the Parquet cache by exchange, symbol and timeframe (what backtests use).

A timeframe that is not cached is built by resampling the coarsest cached finer timeframe
that divides it (typically ``1m``), with the same exchange-boundary rules as
:func:`tradeloop.data.resample`. Order-flow columns stored with the candles come along:
``open_interest`` and ``cvd`` in :class:`~tradeloop.core.bar.BarArrays`, ``funding_rate``
and ``volume_delta`` in ``LoadedBars.extras``, the CVD method in ``LoadedBars.meta``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from tradeloop.core.bar import BarArrays
from tradeloop.core.errors import ConfigError, DataError
from tradeloop.core.precision import price_decimals
from tradeloop.core.time import parse_time
from tradeloop.core.timeframes import bucket_start, timeframe_minutes, timeframe_ns
from tradeloop.data.cache import CacheKey, ParquetCache, timestamps_ns
from tradeloop.data.gaps import fill_forward
from tradeloop.data.loader import LoadedBars
from tradeloop.data.orderflow import asof_align
from tradeloop.data.resample import resample
from tradeloop.data.validation import validate_ohlcv

__all__ = ["load_cached"]

_OHLCV = ("open", "high", "low", "close", "volume")


def load_cached(
    exchange: str,
    symbol: str,
    timeframe: str,
    *,
    market: str = "spot",
    start: str | int | None = None,
    end: str | int | None = None,
    root: str | Path | None = None,
    fill: str | None = None,
) -> LoadedBars:
    """Return cached bars of ``symbol`` on ``exchange`` at ``timeframe``.

    Parameters
    ----------
    exchange
        Exchange id as used by ``tradeloop data fetch`` (``binance``).
    symbol
        Unified symbol (``BTC/USDT``; on ``perp`` also ``BTC/USDT:USDT``).
    timeframe
        Wanted timeframe; built by resampling a finer cached one when not cached itself.
    market
        ``spot`` or ``perp``.
    start, end
        Optional range (UTC date/ISO text or ns); ``start`` inclusive, ``end`` exclusive.
    root
        Cache root; the configured one (``Settings.cache_root``) when None.
    fill
        None to keep gaps (default), or ``"forward"`` to insert flat, zero-volume bars at the
        previous close, marked in ``LoadedBars.synthetic``.

    Returns
    -------
    LoadedBars
        Bars with ``source`` the cache file read, ``meta`` the provenance (exchange, market,
        symbol, dataset read, ``cvd_method``, ``resampled_from`` when resampled).

    Raises
    ------
    DataError
        If nothing usable is cached (the message names the fetch command) or a cached file
        is corrupt or breaks the OHLCV rules.
    ConfigError
        If an argument is invalid.
    """
    if fill not in (None, "forward"):
        raise ConfigError(f"fill must be None or 'forward', got {fill!r}")
    timeframe_ns(timeframe)  # validates the name
    if root is None:
        from tradeloop.config.settings import load_settings

        root = load_settings().resolved_cache_root()
    cache = ParquetCache(root)
    key = _find_key(cache, exchange.lower(), market, symbol, timeframe)
    source_key = key if cache.exists(key) else _finer_key(cache, key)
    if source_key is None:
        raise DataError(
            f"no cached {timeframe} (or finer) candles for {symbol} on {exchange} {market}; run "
            f"`tradeloop data fetch --exchange {exchange} --market {market} --symbol {symbol} "
            f"--timeframe 1m --start ... --end ...`",
            file=str(cache.path(key)),
        )
    table = cache.read(source_key)
    assert table is not None
    path = str(cache.path(source_key))
    lo = None if start is None else parse_time(start, field="start")
    hi = None if end is None else parse_time(end, field="end")
    ts = timestamps_ns(table)
    mask = np.ones(ts.shape[0], dtype=bool)
    if lo is not None:
        mask &= ts >= lo
    if hi is not None:
        mask &= ts < hi
    if not mask.all():
        table = table.filter(pa.array(mask))
        ts = ts[mask]
    if ts.shape[0] == 0:
        raise DataError("no cached bars in the requested range", file=path)
    cols = {name: _floats(table, name) for name in _OHLCV}
    validate_ohlcv(ts, *(cols[n] for n in _OHLCV), file=path)
    for name in ("open_interest", "cvd", "volume_delta"):
        if name in table.column_names:
            cols[name] = _floats(table, name)
    synthetic = (
        np.asarray(table.column("synthetic").fill_null(False).to_numpy(), dtype=bool)
        if "synthetic" in table.column_names
        else None
    )
    source_step = timeframe_ns(source_key.dataset)
    if fill == "forward":
        if synthetic is not None:
            cols["synthetic"] = synthetic
        ts, cols, synthetic = fill_forward(ts, cols, source_step)
    bars = BarArrays(
        key.symbol,
        source_key.dataset,
        ts,
        cols["open"],
        cols["high"],
        cols["low"],
        cols["close"],
        cols["volume"],
        cols.get("open_interest"),
        cols.get("cvd"),
    )
    meta = {k: v for k, v in cache.metadata(source_key).items() if k != "coverage"}
    extras: dict[str, np.ndarray] = {}
    if source_key.dataset != timeframe:
        source_bars = bars
        bars = resample(bars, timeframe)
        meta["resampled_from"] = source_key.dataset
        if synthetic is not None:
            synthetic = _any_per_bucket(source_bars.ts, synthetic, bars.ts, timeframe)
        if "volume_delta" in cols:
            extras["volume_delta"] = _sum_per_bucket(
                source_bars.ts, cols["volume_delta"], bars.ts, timeframe
            )
    elif "volume_delta" in cols:
        extras["volume_delta"] = cols["volume_delta"]
    funding = cache.read(key.with_dataset("funding_rate"))
    if funding is not None and funding.num_rows:
        extras["funding_rate"] = asof_align(
            bars.ts, timestamps_ns(funding), funding.column("funding_rate").to_numpy()
        )
    decimals = price_decimals(bars.open, bars.high, bars.low, bars.close)
    if synthetic is not None and not synthetic.any() and fill is None:
        synthetic = None
    return LoadedBars(
        bars=bars,
        source=path,
        timeframe=timeframe,
        price_decimals=decimals,
        tick_size=0.0 if decimals is None else 10.0**-decimals,
        synthetic=synthetic,
        extras=extras,
        meta=meta,
    )


def _floats(table: pa.Table, name: str) -> np.ndarray:
    col = table.column(name)
    if col.null_count:
        col = col.fill_null(float("nan"))
    return np.asarray(col.to_numpy(), dtype=np.float64)


def _find_key(cache: ParquetCache, exchange: str, market: str, symbol: str, tf: str) -> CacheKey:
    key = CacheKey(exchange, market, symbol.upper(), tf)
    if market == "perp" and ":" not in symbol and "/" in symbol:
        settled = CacheKey(exchange, market, f"{symbol.upper()}:{symbol.split('/')[1].upper()}", tf)
        if cache.path(settled).parent.is_dir() or not cache.path(key).parent.is_dir():
            return settled
    return key


def _finer_key(cache: ParquetCache, key: CacheKey) -> CacheKey | None:
    folder = cache.path(key).parent
    if not folder.is_dir():
        return None
    want = timeframe_minutes(key.dataset)
    best: tuple[int, CacheKey] | None = None
    for path in folder.glob("*.parquet"):
        try:
            minutes = timeframe_minutes(path.stem)
        except ConfigError:
            continue
        if minutes < want and want % minutes == 0 and (best is None or minutes > best[0]):
            best = (minutes, key.with_dataset(path.stem))
    return None if best is None else best[1]


def _any_per_bucket(
    src_ts: np.ndarray, flags: np.ndarray, out_ts: np.ndarray, timeframe: str
) -> np.ndarray:
    return _sum_per_bucket(src_ts, flags.astype(np.float64), out_ts, timeframe) > 0


def _sum_per_bucket(
    src_ts: np.ndarray, values: np.ndarray, out_ts: np.ndarray, timeframe: str
) -> np.ndarray:
    keys = np.asarray(bucket_start(src_ts, timeframe), dtype=np.int64)
    idx = np.searchsorted(out_ts, keys)
    inside = (idx < out_ts.shape[0]) & (
        out_ts[np.clip(idx, 0, max(out_ts.shape[0] - 1, 0))] == keys
    )
    out = np.zeros(out_ts.shape[0], dtype=np.float64)
    np.add.at(out, idx[inside], np.nan_to_num(values[inside]))
    return out
