"""Parquet cache: layout, atomic writes, merge with de-duplication, coverage, parts, locks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from tradeloop.core.errors import ConfigError, DataError
from tradeloop.data.cache import (
    TS_TYPE,
    CacheKey,
    ParquetCache,
    merge_tables,
    symbol_from_dir,
    symbol_to_dir,
    timestamps_ns,
)
from tradeloop.data.coverage import merge, subtract

M = 60_000_000_000


def _candles(minutes: list[int], close: float = 1.0) -> pa.Table:
    ts = np.asarray(minutes, dtype=np.int64) * M
    n = ts.shape[0]
    c = np.full(n, close)
    return pa.table(
        {
            "timestamp": pa.array(ts).cast(TS_TYPE),
            "open": c,
            "high": c + 1,
            "low": c - 0.5,
            "close": c,
            "volume": np.ones(n),
        }
    )


KEY = CacheKey("binance", "spot", "BTC/USDT", "1m")


def test_path_layout_is_exchange_market_symbol_dataset(tmp_path: Path) -> None:
    cache = ParquetCache(tmp_path)
    assert cache.path(KEY) == tmp_path / "binance/spot/BTC_USDT/1m.parquet"
    perp = CacheKey("binance", "perp", "BTC/USDT:USDT", "funding_rate")
    assert cache.path(perp) == tmp_path / "binance/perp/BTC_USDT_USDT/funding_rate.parquet"
    assert symbol_to_dir("btc/usdt") == "BTC_USDT"
    assert symbol_from_dir("BTC_USDT_USDT") == "BTC/USDT:USDT"


@pytest.mark.parametrize(
    ("exchange", "market", "symbol", "dataset"),
    [
        ("bin/ance", "spot", "BTC/USDT", "1m"),
        ("binance", "futures", "BTC/USDT", "1m"),
        ("binance", "spot", "../../etc", "1m"),
        ("binance", "spot", "BTC/USDT", "7x"),
    ],
)
def test_unsafe_or_unknown_key_parts_are_config_errors(
    exchange: str, market: str, symbol: str, dataset: str
) -> None:
    with pytest.raises(ConfigError):
        CacheKey(exchange, market, symbol, dataset)


def test_write_is_atomic_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    # Arrange
    cache = ParquetCache(tmp_path)
    # Act
    path = cache.write(KEY, _candles([0, 1, 2]), [(0, 3 * M)])
    # Assert
    assert [p.name for p in path.parent.iterdir()] == ["1m.parquet"]
    assert cache.coverage(KEY) == [(0, 3 * M)]
    assert cache.metadata(KEY)["symbol"] == "BTC/USDT"


def test_a_crash_during_write_keeps_the_previous_file(tmp_path: Path) -> None:
    # Arrange: a child process starts overwriting the file and dies mid-write
    cache = ParquetCache(tmp_path)
    path = cache.write(KEY, _candles([0, 1]), [(0, 2 * M)])
    before = path.read_bytes()
    script = (
        "import os, pyarrow as pa, pyarrow.parquet as pq\n"
        "import tradeloop.data.cache as c\n"
        "def boom(table, handle, **kw):\n"
        "    handle.write(b'PAR1 half a file'); handle.flush(); os._exit(9)\n"
        "pq.write_table = boom\n"
        f"c.ParquetCache({str(tmp_path)!r}).write(c.CacheKey('binance','spot','BTC/USDT','1m'),"
        " pa.table({'x': [1]}), [])\n"
    )
    # Act
    done = subprocess.run([sys.executable, "-c", script], check=False)
    # Assert
    assert done.returncode == 9
    assert path.read_bytes() == before
    assert timestamps_ns(ParquetCache(tmp_path).read(KEY)).tolist() == [0, M]


def test_merge_deduplicates_with_the_later_source_winning() -> None:
    old = _candles([0, 1, 2], close=1.0)
    new = _candles([2, 3], close=5.0)
    merged = merge_tables([old, new], "candles")
    assert (timestamps_ns(merged) // M).tolist() == [0, 1, 2, 3]
    assert merged.column("close").to_pylist() == [1.0, 1.0, 5.0, 5.0]


def test_trades_deduplicate_on_trade_id_not_time() -> None:
    def trades(ids: list[str], ts: list[int]) -> pa.Table:
        return pa.table(
            {
                "timestamp": pa.array(np.asarray(ts, dtype=np.int64)).cast(TS_TYPE),
                "trade_id": ids,
                "price": [1.0] * len(ids),
                "amount": [1.0] * len(ids),
                "side": ["buy"] * len(ids),
            }
        )

    merged = merge_tables(
        [trades(["10", "11"], [5, 5]), trades(["11", "9", "12"], [5, 4, 5])], "trades"
    )
    assert merged.column("trade_id").to_pylist() == ["9", "10", "11", "12"]


def test_parts_are_merged_into_the_main_file_with_their_coverage(tmp_path: Path) -> None:
    # Arrange
    cache = ParquetCache(tmp_path)
    cache.write(KEY, _candles([0, 1]), [(0, 2 * M)])
    cache.write_part(KEY, _candles([2, 3]), (2 * M, 4 * M))
    cache.write_part(KEY, _candles([5]), (4 * M, 6 * M))
    # Act
    covered_before = cache.coverage(KEY)
    merged = cache.consolidate(KEY)
    # Assert
    assert covered_before == [(0, 6 * M)]
    assert merged is not None
    assert merged.num_rows == 5
    assert cache.pending_parts(KEY) == 0
    assert not cache.parts_dir(KEY).exists()
    assert cache.coverage(KEY) == [(0, 6 * M)]


def test_corrupt_file_is_a_data_error_naming_force(tmp_path: Path) -> None:
    cache = ParquetCache(tmp_path)
    path = cache.path(KEY)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"garbage")
    with pytest.raises(DataError, match="--force") as info:
        cache.read(KEY)
    assert str(path) in str(info.value)
    cache.replace_corrupt(KEY)
    assert not path.exists()


def test_second_writer_is_refused_while_the_lock_is_held(tmp_path: Path) -> None:
    cache = ParquetCache(tmp_path)
    script = (
        "import sys, time\n"
        "from tradeloop.data.cache import CacheKey, ParquetCache\n"
        f"c = ParquetCache({str(tmp_path)!r})\n"
        "with c.lock(CacheKey('binance','spot','BTC/USDT','1m')):\n"
        "    print('locked', flush=True); sys.stdin.readline()\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "locked"
        with pytest.raises(ConfigError, match="another tradeloop process"), cache.lock(KEY):
            pass
    finally:
        assert child.stdin is not None
        child.stdin.write("\n")
        child.stdin.flush()
        child.wait(timeout=30)
    with cache.lock(KEY):  # free again once the holder is gone
        pass


def test_entries_list_range_rows_and_gaps(tmp_path: Path) -> None:
    cache = ParquetCache(tmp_path)
    cache.write(KEY, _candles([0, 1, 5, 6, 9]), [(0, 10 * M)])
    bad = CacheKey("bybit", "spot", "ETH/USDT", "1h")
    cache.path(bad).parent.mkdir(parents=True)
    cache.path(bad).write_bytes(b"nope")
    entries = {e.key.exchange: e for e in cache.entries()}
    good = entries["binance"]
    assert (good.rows, good.gaps, good.missing_bars) == (5, 2, 5)
    assert (good.first_ns, good.last_ns) == (0, 9 * M)
    assert entries["bybit"].error is not None
    assert "corrupt" in entries["bybit"].error
    assert not any(name.endswith(".tmp") for name in os.listdir(cache.path(KEY).parent))


def test_coverage_interval_arithmetic() -> None:
    assert merge([(5, 7), (0, 2), (2, 3)]) == [(0, 3), (5, 7)]
    assert subtract((0, 10), [(0, 3), (5, 7)]) == [(3, 5), (7, 10)]
    assert subtract((0, 10), []) == [(0, 10)]


def test_temporary_files_of_a_killed_writer_are_removed_under_the_lock(tmp_path: Path) -> None:
    cache = ParquetCache(tmp_path)
    cache.write_part(KEY, _candles([0]), (0, M))
    stale = [
        cache.path(KEY).with_name(".1m.parquet.4242.tmp"),
        cache.parts_dir(KEY) / ".00000000000000000000-00000000060000000000.parquet.4242.tmp",
    ]
    for path in stale:
        path.write_bytes(b"half")
    with cache.lock(KEY):
        removed = cache.remove_temporary(KEY)
    assert removed == 2
    assert cache.consolidate(KEY) is not None
    assert not cache.parts_dir(KEY).exists()
