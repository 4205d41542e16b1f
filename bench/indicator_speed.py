"""Time every indicator on 1M points (after JIT) and print a table.

Run: ``.venv/bin/python bench/indicator_speed.py [--size N] [--repeat K]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

import tradeloop.indicators as ind


def _series(size: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(0)
    close = 3e4 + np.cumsum(rng.normal(0.0, 50.0, size))
    high = close + rng.uniform(0.0, 30.0, size)
    low = close - rng.uniform(0.0, 30.0, size)
    volume = rng.uniform(0.0, 10.0, size)
    ts = np.arange(size, dtype=np.int64) * 60 * 10**9
    return high, low, close, volume, ts


CALLS: dict[str, Callable[..., object]] = {
    "sma(200)": lambda h, lo, c, v, t: ind.sma(c, 200),
    "ema(200)": lambda h, lo, c, v, t: ind.ema(c, 200),
    "wma(200)": lambda h, lo, c, v, t: ind.wma(c, 200),
    "rsi(14)": lambda h, lo, c, v, t: ind.rsi(c, 14),
    "macd(12,26,9)": lambda h, lo, c, v, t: ind.macd(c),
    "stochastic(14,3,3)": lambda h, lo, c, v, t: ind.stochastic(h, lo, c, 14, 3, 3),
    "atr(14)": lambda h, lo, c, v, t: ind.atr(h, lo, c, 14),
    "bollinger(20)": lambda h, lo, c, v, t: ind.bollinger(c, 20),
    "rolling_zscore(100)": lambda h, lo, c, v, t: ind.rolling_zscore(c, 100),
    "vwap(24)": lambda h, lo, c, v, t: ind.vwap(h, lo, c, v, window=24),
    "session_vwap(1d)": lambda h, lo, c, v, t: ind.session_vwap(h, lo, c, v, t, "1d"),
}


def main() -> None:
    """Print milliseconds per call (best of ``--repeat``) for each indicator."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    data = _series(args.size)
    print(f"| indicator | ms on {args.size:,} points (best of {args.repeat}) | M points/s |")
    print("|---|---:|---:|")
    for name, call in CALLS.items():
        call(*data)  # compile or load the cache
        best = float("inf")
        for _ in range(args.repeat):
            start = time.perf_counter()
            call(*data)
            best = min(best, time.perf_counter() - start)
        print(f"| {name} | {best * 1e3:.1f} | {args.size / best / 1e6:.1f} |")


if __name__ == "__main__":
    main()
