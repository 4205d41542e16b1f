"""Data-layer throughput: fetch+cache through ccxt, Parquet vs CSV reads, resampling.

Three measurements, each the best of ``--repeat`` runs, printed as a markdown table:

1. **fetch + cache**: the real Binance BTC/USDT 1m series (130,708 bars) fetched through
   unmodified ccxt from the local venue server (``python -m tradeloop.testing.venue`` in its
   own process: loopback HTTP, Binance's JSON shapes and 1000-bar pages) into a fresh
   Parquet cache, order-flow columns included. Once with the rate limiter set to 1 ms (what
   the code and the loopback wire cost), once with ccxt's own Binance limiter (the pacing a
   real fetch gets).
2. **read 1M rows**: 1,000,000 1m bars (the real series repeated end to end, each copy
   shifted in time) from the cache's Parquet file, against ``pandas.read_csv`` of the same
   rows as CSV with ISO-8601 timestamps, in the same run.
3. **resample 1M 1m bars to 1h**: ``tradeloop.data.resample`` against pandas
   ``resample("1h").agg(...)`` on the same bars.

Nothing is written into the repository (temporary folders only).

Usage::

    .venv/bin/python bench/data_throughput.py [--repeat K] [--rows N] [--skip-default-limiter]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.feather as pf

from tradeloop.adapters.ccxt import CcxtHistorySource
from tradeloop.config.settings import ExchangeSettings, RetrySettings
from tradeloop.core.bar import BarArrays
from tradeloop.core.time import parse_time
from tradeloop.data.cache import TS_TYPE, CacheKey, ParquetCache
from tradeloop.data.cached import load_cached
from tradeloop.data.history import HistoricalDataProvider
from tradeloop.data.resample import resample

DEFAULT_SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SOURCE = Path("crypto_1m") / "binance_spot_2025" / "BTC_USDT-1m.feather"
M = 60_000_000_000


def _shared() -> Path:
    override = os.environ.get("TRADELOOP_SHARED_DATA")
    return Path(override) if override else DEFAULT_SHARED


def best_of(repeat: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    """Return (best seconds, last result) of ``repeat`` calls."""
    best, result = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return best, result


def bench_fetch(shared: Path, repeat: int, rate_limit_ms: float | None) -> dict[str, Any]:
    """Fetch the whole 1m series through ccxt into a new cache; return timing and counts.

    The server runs in its own process (as an exchange would), so it does not share the
    client's interpreter lock.
    """
    env = {**os.environ, "TRADELOOP_SHARED_DATA": str(shared)}
    server = subprocess.Popen(
        [sys.executable, "-m", "tradeloop.testing.venue", "--data", str(shared)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()

        def run() -> tuple[int, int]:
            root = Path(tempfile.mkdtemp(prefix="tl-bench-cache-"))
            try:
                source = CcxtHistorySource(
                    "binance",
                    "spot",
                    ExchangeSettings(url=url, rate_limit_ms=rate_limit_ms),
                    RetrySettings(),
                )
                provider = HistoricalDataProvider(source, ParquetCache(root))
                report = provider.fetch(
                    "BTC/USDT", "1m", parse_time("2025-05-20"), parse_time("2025-08-18T18:28Z")
                )
                provider.refresh_orderflow("BTC/USDT", "1m")
                return report.rows_total, report.pages
            finally:
                shutil.rmtree(root, ignore_errors=True)

        seconds, (rows, pages) = best_of(repeat, run)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {"seconds": seconds, "rows": rows, "pages": pages}


def million_bars(shared: Path, n: int) -> pa.Table:
    """Return ``n`` 1m bars: the real series repeated end to end, shifted in time."""
    src = pf.read_table(shared / SOURCE)
    ts = np.asarray(src.column("date").cast(pa.int64()).to_numpy(), dtype=np.int64)
    span = int(ts[-1] - ts[0]) + M
    copies = -(-n // ts.shape[0])
    out_ts = np.concatenate([ts + k * span for k in range(copies)])[:n]
    cols = {
        c: np.tile(np.asarray(src.column(c).to_numpy()), copies)[:n]
        for c in ("open", "high", "low", "close", "volume")
    }
    return pa.table({"timestamp": pa.array(out_ts).cast(TS_TYPE), **cols})


def bench_reads(table: pa.Table, repeat: int) -> dict[str, float]:
    """Time Parquet reads of the cache file against pandas CSV reads of the same rows."""
    import pyarrow.parquet as pq

    folder = Path(tempfile.mkdtemp(prefix="tl-bench-read-"))
    try:
        cache = ParquetCache(folder / "cache")
        key = CacheKey("binance", "spot", "BTC/USDT", "1m")
        ts = table.column("timestamp").cast(pa.int64()).to_numpy()
        cache.write(key, table, [(int(ts[0]), int(ts[-1]) + M)])
        csv = folder / "bars.csv"
        frame = table.to_pandas()
        frame["timestamp"] = frame["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        frame.to_csv(csv, index=False)
        out = {
            "parquet_mb": cache.path(key).stat().st_size / 1e6,
            "csv_mb": csv.stat().st_size / 1e6,
        }
        out["parquet_arrow"], _ = best_of(repeat, lambda: pq.read_table(cache.path(key)))
        out["load_cached"], _ = best_of(
            repeat, lambda: load_cached("binance", "BTC/USDT", "1m", root=folder / "cache")
        )
        out["csv_pandas"], _ = best_of(repeat, lambda: pd.read_csv(csv))
        out["csv_pandas_dates"], _ = best_of(
            repeat,
            lambda: pd.read_csv(csv).assign(
                timestamp=lambda f: pd.to_datetime(f["timestamp"], utc=True, format="ISO8601")
            ),
        )
        return out
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def bench_resample(table: pa.Table, repeat: int) -> dict[str, float]:
    """Time 1m -> 1h with tradeloop and with pandas on the same bars."""
    ts = np.asarray(table.column("timestamp").cast(pa.int64()).to_numpy(), dtype=np.int64)
    cols = [
        np.asarray(table.column(c).to_numpy()) for c in ("open", "high", "low", "close", "volume")
    ]
    bars = BarArrays("BTC/USDT", "1m", ts, *cols)
    frame = pd.DataFrame(
        dict(zip(("open", "high", "low", "close", "volume"), cols, strict=True)),
        index=pd.DatetimeIndex(ts.astype("datetime64[ns]"), tz="UTC"),
    )
    agg = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    ours, out = best_of(repeat, lambda: resample(bars, "1h"))
    theirs, ref = best_of(repeat, lambda: frame.resample("1h").agg(agg).dropna())
    same = bool(np.array_equal(out.close, ref["close"].to_numpy()[: len(out)]))
    return {"tradeloop": ours, "pandas": theirs, "bars_out": len(out), "close_identical": same}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (best kept)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows for the read/resample")
    parser.add_argument(
        "--skip-default-limiter",
        action="store_true",
        help="skip the fetch paced by ccxt's own Binance rate limiter (slow)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the tables."""
    args = parse_args(argv)
    shared = _shared()
    if not (shared / SOURCE).is_file():
        print(f"missing {shared / SOURCE}; set TRADELOOP_SHARED_DATA", file=sys.stderr)
        return 2
    fast = bench_fetch(shared, args.repeat, rate_limit_ms=1)
    paced = None if args.skip_default_limiter else bench_fetch(shared, 1, rate_limit_ms=None)
    table = million_bars(shared, args.rows)
    reads = bench_reads(table, args.repeat)
    res = bench_resample(table, args.repeat)
    n = table.num_rows

    print(
        f"\n## Data throughput ({platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs, best of {args.repeat})\n"
    )
    print("| measurement | time | rate |")
    print("|---|---:|---:|")
    print(
        f"| fetch + cache, 130,708 1m bars, {fast['pages']} pages, limiter 1 ms "
        f"| {fast['seconds']:.2f} s | {fast['rows'] / fast['seconds']:,.0f} rows/s |"
    )
    if paced is not None:
        print(
            f"| fetch + cache, same, ccxt's Binance limiter | {paced['seconds']:.2f} s "
            f"| {paced['rows'] / paced['seconds']:,.0f} rows/s |"
        )
    print(
        f"| read {n:,} rows: Parquet cache file (pyarrow) | {reads['parquet_arrow'] * 1e3:.0f} ms "
        f"| {n / reads['parquet_arrow']:,.0f} rows/s |"
    )
    print(
        f"| read {n:,} rows: `load_cached` (Parquet + validation) "
        f"| {reads['load_cached'] * 1e3:.0f} ms | {n / reads['load_cached']:,.0f} rows/s |"
    )
    print(
        f"| read {n:,} rows: `pandas.read_csv` | {reads['csv_pandas'] * 1e3:.0f} ms "
        f"| {n / reads['csv_pandas']:,.0f} rows/s |"
    )
    print(
        f"| read {n:,} rows: `pandas.read_csv` + ISO timestamps "
        f"| {reads['csv_pandas_dates'] * 1e3:.0f} ms "
        f"| {n / reads['csv_pandas_dates']:,.0f} rows/s |"
    )
    print(
        f"| resample {n:,} 1m → {res['bars_out']:,} 1h: tradeloop "
        f"| {res['tradeloop'] * 1e3:.1f} ms "
        f"| {n / res['tradeloop']:,.0f} bars/s |"
    )
    print(
        f"| resample, same: pandas `resample().agg()` | {res['pandas'] * 1e3:.1f} ms "
        f"| {n / res['pandas']:,.0f} bars/s |"
    )
    print(
        f"\nParquet file {reads['parquet_mb']:.1f} MB (zstd) vs CSV {reads['csv_mb']:.1f} MB; "
        f"Parquet read {reads['csv_pandas_dates'] / reads['parquet_arrow']:.1f}x faster than "
        f"CSV with timestamps; resample {res['pandas'] / res['tradeloop']:.1f}x pandas; "
        f"closes identical to pandas: {'yes' if res['close_identical'] else 'no'}."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
