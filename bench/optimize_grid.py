"""Bench: a 100-combination SMA(fast/slow) grid on the 130,708-bar BTC/USDT 1m series.

tradeloop's fast path (numba kernel, window sums once per length, one process), tradeloop's
event kernel (a loop of in-process backtests) and vectorbt's ``Portfolio.from_signals`` sweep
(the same crosses, fees, next-open fills), each the median of 3 runs after a warm-up, in one
process. Prints a markdown table with the ratio to vectorbt, the peak memory per pool worker
of a pooled run, and the machine load.

Run: python bench/optimize_grid.py [path/to/BTC_USDT-1m.feather]
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tradeloop.engine.config import RunConfig
from tradeloop.engine.runner import DataSpec, _instrument, load_data, run_on_bars
from tradeloop.optimize.backends import PoolBackend
from tradeloop.optimize.evaluate import EvalSpec, share_bars
from tradeloop.optimize.fast_sma import SmaCrossSweep
from tradeloop.strategy.examples.sma_cross import SmaCross

FAST = list(range(5, 55, 5))
SLOW = list(range(60, 260, 20))
FEE = 0.001


def _data_path() -> Path:
    if len(sys.argv) > 1:
        return Path(sys.argv[1])
    root = Path(os.environ.get("TRADELOOP_SHARED_DATA", "../shared/data"))
    return root / "crypto_1m/binance_spot_2025/BTC_USDT-1m.feather"


def median_of_3(fn) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(3):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    (loaded,) = load_data([DataSpec(_data_path())])
    bars = loaded.bars
    config = RunConfig(fee=FEE)
    inst = _instrument(loaded, config)
    grid = [(f, s) for f in FAST for s in SLOW]

    def fast_path() -> list[float]:
        sweep = SmaCrossSweep(bars, inst, config)
        return [sweep.run({"fast": f, "slow": s}).metrics.sharpe for f, s in grid]

    def event_kernel() -> list[float]:
        out = []
        for f, s in grid:
            r = run_on_bars(
                SmaCross(fast=f, slow=s),
                {bars.symbol: bars},
                config,
                instruments={bars.symbol: inst},
            )
            out.append(r.metrics.sharpe)
        return out

    import pandas as pd
    import vectorbt as vbt

    close = pd.Series(np.asarray(bars.close), index=pd.to_datetime(np.asarray(bars.ts), utc=True))
    open_ = pd.Series(np.asarray(bars.open), index=close.index)

    def vectorbt_sim() -> object:
        fast_ma = vbt.MA.run(close, [f for f, _ in grid], short_name="fast")
        slow_ma = vbt.MA.run(close, [s for _, s in grid], short_name="slow")
        entries = fast_ma.ma_crossed_above(slow_ma)
        exits = fast_ma.ma_crossed_below(slow_ma)
        return vbt.Portfolio.from_signals(
            close,
            entries.values,
            exits.values,
            price=open_.shift(-1).values[:, None],
            fees=FEE,
            freq="1min",
            init_cash=10_000.0,
        )

    def vectorbt_sweep() -> object:
        fast_ma = vbt.MA.run(close, [f for f, _ in grid], short_name="fast")
        slow_ma = vbt.MA.run(close, [s for _, s in grid], short_name="slow")
        entries = fast_ma.ma_crossed_above(slow_ma)
        exits = fast_ma.ma_crossed_below(slow_ma)
        pf = vbt.Portfolio.from_signals(
            close,
            entries.values,
            exits.values,
            price=open_.shift(-1).values[:, None],
            fees=FEE,
            freq="1min",
            init_cash=10_000.0,
        )
        return pf.sharpe_ratio()

    fast_path()
    vectorbt_sweep()  # warm-up: numba compilation is not measured
    t_fast = median_of_3(fast_path)
    t_vbt = median_of_3(vectorbt_sweep)
    t_vbt_sim = median_of_3(vectorbt_sim)
    t_event = median_of_3(event_kernel)
    # pooled run: peak resident memory per worker over memory-mapped bars
    spec = EvalSpec("sma_cross", None, config, inst)
    with tempfile.TemporaryDirectory() as tmp:
        pool = PoolBackend(spec, share_bars(bars, Path(tmp)), workers=2)
        t = time.perf_counter()
        list(pool.run([{"fast": f, "slow": s} for f, s in grid]))
        t_pool = time.perf_counter() - t
        peaks = pool.peak_memory_mb()
        pool.close()
    print(
        f"100-combination SMA grid, {len(bars):,} bars ({bars.symbol} {bars.timeframe}), fee {FEE}"
    )
    print()
    print("| engine | seconds (median of 3) | combos/s | vs vectorbt (with Sharpe) |")
    print("|---|---:|---:|---:|")
    for name, secs in (
        ("tradeloop fast path (numba, 1 process)", t_fast),
        ("tradeloop event kernel (loop of run_on_bars)", t_event),
        ("vectorbt from_signals sweep + sharpe_ratio()", t_vbt),
        ("vectorbt from_signals sweep, no statistics", t_vbt_sim),
    ):
        print(f"| {name} | {secs:.3f} | {len(grid) / secs:.1f} | {t_vbt / secs:.2f}x |")
    print(
        f"| tradeloop fast path, pool of 2 (incl. worker start, 1 run) | {t_pool:.3f} | "
        f"{len(grid) / t_pool:.1f} | {t_vbt / t_pool:.2f}x |"
    )
    print()
    print(f"peak RSS per pool worker (MB): {', '.join(f'{p:.0f}' for p in peaks)}")
    print(f"load: {os.popen('uptime').read().strip()}")


if __name__ == "__main__":
    main()
