"""load_cached: the backtest's view of the cache (resampling, gap filling, errors)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.feather as pf
import pytest

from tradeloop.core.bar import BarArrays
from tradeloop.core.errors import DataError
from tradeloop.core.time import parse_time
from tradeloop.data.cache import TS_TYPE, CacheKey, ParquetCache
from tradeloop.data.cached import load_cached
from tradeloop.data.history import refresh_orderflow
from tradeloop.data.resample import resample

M = 60_000_000_000


def _store_source(cache: ParquetCache, key: CacheKey, path: Path, n: int | None = None) -> pa.Table:
    src = pf.read_table(path)
    if n is not None:
        src = src.slice(0, n)
    table = pa.table(
        {
            "timestamp": src.column("date").cast(TS_TYPE),
            **{c: src.column(c) for c in ("open", "high", "low", "close", "volume")},
        }
    )
    ts = table.column("timestamp").cast(pa.int64()).to_numpy()
    cache.write(key, table, [(int(ts[0]), int(ts[-1]) + M)])
    return table


def test_missing_timeframe_is_resampled_from_cached_1m_like_resample(
    shared_data: Path, tmp_path: Path
) -> None:
    # Arrange
    cache = ParquetCache(tmp_path)
    key = CacheKey("binance", "spot", "BTC/USDT", "1m")
    table = _store_source(
        cache, key, shared_data / "crypto_1m/binance_spot_2025/BTC_USDT-1m.feather", 20_000
    )
    refresh_orderflow(cache, key)
    ts = table.column("timestamp").cast(pa.int64()).to_numpy()
    bars = BarArrays(
        "BTC/USDT",
        "1m",
        ts,
        *(table.column(c).to_numpy() for c in ("open", "high", "low", "close", "volume")),
    )
    # Act
    loaded = load_cached(
        "binance", "BTC/USDT", "4h", root=tmp_path, start="2025-05-21", end="2025-06-01"
    )
    # Assert
    expected = resample(bars, "4h")
    keep = (expected.ts >= parse_time("2025-05-21")) & (expected.ts < parse_time("2025-06-01"))
    assert np.array_equal(loaded.bars.ts, expected.ts[keep])
    assert np.array_equal(loaded.bars.close, expected.close[keep])
    assert loaded.timeframe == loaded.bars.timeframe == "4h"
    assert loaded.meta["resampled_from"] == "1m"
    assert loaded.meta["cvd_method"] == "bar_sign"
    assert loaded.extras["volume_delta"].shape == loaded.bars.ts.shape
    assert loaded.tick_size == pytest.approx(0.01)


def test_cached_timeframe_is_read_directly_and_gaps_are_kept_by_default(
    shared_data: Path, tmp_path: Path
) -> None:
    cache = ParquetCache(tmp_path)
    key = CacheKey("binance", "spot", "BTC/USDT", "1h")
    _store_source(cache, key, shared_data / "crypto_1h/binance_spot_2017_2024/BTC_USDT-1h.feather")
    loaded = load_cached("binance", "btc/usdt", "1h", root=tmp_path)
    assert len(loaded.bars) == 58_419
    assert loaded.synthetic is None
    assert "resampled_from" not in loaded.meta


def test_fill_forward_marks_synthetic_bars(shared_data: Path, tmp_path: Path) -> None:
    # Arrange: the real 1h series with its 128 missing hours
    cache = ParquetCache(tmp_path)
    key = CacheKey("binance", "spot", "BTC/USDT", "1h")
    _store_source(cache, key, shared_data / "crypto_1h/binance_spot_2017_2024/BTC_USDT-1h.feather")
    # Act
    loaded = load_cached("binance", "BTC/USDT", "1h", root=tmp_path, fill="forward")
    # Assert
    assert loaded.synthetic is not None
    assert int(loaded.synthetic.sum()) == 128
    assert len(loaded.bars) == 58_419 + 128
    assert (loaded.bars.volume[loaded.synthetic] == 0).all()
    gap = int(np.argmax(loaded.bars.ts == parse_time("2018-02-08T01:00Z")))
    assert loaded.synthetic[gap]
    assert loaded.bars.open[gap] == loaded.bars.close[gap - 1]


def test_perp_symbol_resolves_to_its_settle_currency_folder(
    shared_data: Path, tmp_path: Path
) -> None:
    cache = ParquetCache(tmp_path)
    key = CacheKey("binance", "perp", "BTC/USDT:USDT", "5m")
    _store_source(
        cache,
        key,
        shared_data / "crypto_futures/binance_usdm_2025/BTC_USDT_USDT-5m-futures.feather",
    )
    loaded = load_cached("binance", "BTC/USDT", "15m", market="perp", root=tmp_path)
    assert loaded.bars.symbol == "BTC/USDT:USDT"
    assert loaded.meta["resampled_from"] == "5m"


def test_nothing_cached_names_the_fetch_command(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="tradeloop data fetch --exchange binance"):
        load_cached("binance", "ETH/USDT", "1h", root=tmp_path)
