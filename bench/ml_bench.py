"""Meta-labeling speed: labels, features, training on 260K bars, inference latency.

Run: ``.venv/bin/python bench/ml_bench.py [--bars N] [--signals K]``.

- **labels / features**: triple-barrier labels of every bar and the full feature matrix of
  ``--bars`` bars (best of 3, after numba compilation).
- **training**: the primary strategy is ``sma_cross`` (10/30) run through the backtest engine;
  its entries are labelled and a LightGBM meta-model (200 trees) is trained with 5 purged
  walk-forward folds plus isotonic calibration and a final fit on every event. The bars are
  a synthetic random walk (seed 7, 1-minute, 0.1% volatility per bar): no real file in the
  shared data folder holds 260K bars of one series.
- **inference**: ``InferenceLoop.process`` over ``--signals`` signals, each on a new bar (so
  the 512-bar feature window is recomputed for every signal: the worst case), then the same
  count on one bar (features cached). Each call's own latency breakdown is used.

It prints markdown tables and writes nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from tradeloop.core.bar import BarArrays
from tradeloop.engine.config import RunConfig
from tradeloop.engine.ml_strategy import primary_events
from tradeloop.engine.runner import run_on_bars
from tradeloop.ml.features import DEFAULT_FEATURE_SET
from tradeloop.ml.inference import InferenceLoop, SignalEvent
from tradeloop.ml.labels import triple_barrier
from tradeloop.ml.training import TrainConfig, train_meta_model
from tradeloop.strategy.examples.sma_cross import SmaCross

MINUTE = 60_000_000_000


def synthetic_bars(n: int, seed: int = 7) -> BarArrays:
    """Random-walk 1-minute bars."""
    rng = np.random.default_rng(seed)
    close = 30_000 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    open_ = np.concatenate([[30_000.0], close[:-1]])
    wick = np.abs(rng.normal(0, 0.0005, n))
    high = np.maximum(open_, close) * (1 + wick)
    low = np.minimum(open_, close) * (1 - wick)
    ts = 1_700_000_000_000_000_000 + MINUTE * np.arange(n, dtype=np.int64)
    return BarArrays("SYN/USDT", "1m", ts, open_, high, low, close, rng.lognormal(2, 0.6, n))


def best_of(fn, repeat: int = 3) -> float:
    """Best wall time of ``fn`` in seconds."""
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return min(out)


def pct(values: np.ndarray, q: float) -> float:
    """Percentile in microseconds of ns values."""
    return float(np.percentile(values, q)) / 1000


def main() -> None:
    """Run the benchmark and print the tables."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bars", type=int, default=260_000)
    ap.add_argument("--signals", type=int, default=10_000)
    args = ap.parse_args()
    bars = synthetic_bars(args.bars)
    triple_barrier(bars.high[:1000], bars.low[:1000], bars.close[:1000])  # compile
    t_labels = best_of(lambda: triple_barrier(bars.high, bars.low, bars.close, horizon=60))
    t_feats = best_of(lambda: DEFAULT_FEATURE_SET.compute_bars(bars))

    t = time.perf_counter()
    run = run_on_bars(SmaCross(), {bars.symbol: bars}, RunConfig(fee=0.001))
    t_primary = time.perf_counter() - t
    events, sides = primary_events(run, bars)
    result = train_meta_model(bars, events, sides, TrainConfig(horizon=60))

    print(f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}\n")
    print(f"| step ({args.bars:,} bars) | seconds |")
    print("|---|---:|")
    print(f"| triple-barrier labels, every bar | {t_labels:.3f} |")
    print(f"| feature matrix ({len(DEFAULT_FEATURE_SET.bar_features)} features) | {t_feats:.3f} |")
    print(f"| primary strategy backtest (sma_cross) | {t_primary:.3f} |")
    print(
        f"| meta-model training: {result.n_events:,} events, 5 folds + calibration + final fit"
        f" | {result.seconds:.2f} |"
    )
    print(f"\nout-of-fold AUC {result.overall['auc']:.3f} (random walk: ~0.5 expected)\n")

    loop = InferenceLoop(model=result.model)
    warm = 600
    for i in range(warm):
        loop.on_bar(bars.bar(i))
    rows = []
    t = time.perf_counter()
    for k in range(args.signals):
        loop.on_bar(bars.bar(warm + k))
        out = loop.process(SignalEvent(f"s{k}", bars.symbol, int(bars.ts[warm + k]), 1))
        rows.append((out.features_ns, out.predict_ns, out.total_ns))
    wall_new = time.perf_counter() - t
    new = np.array(rows)
    rows = []
    t = time.perf_counter()
    for k in range(args.signals):
        out = loop.process(SignalEvent(f"c{k}", bars.symbol, 0, -1))
        rows.append((out.features_ns, out.predict_ns, out.total_ns))
    wall_cached = time.perf_counter() - t
    cached = np.array(rows)
    print(f"| inference ({args.signals:,} signals) | p50 µs | p99 µs | max µs | signals/s |")
    print("|---|---:|---:|---:|---:|")
    for label, arr, wall in (
        ("new bar per signal: features", new[:, 0], None),
        ("new bar per signal: prediction", new[:, 1], None),
        ("new bar per signal: total", new[:, 2], wall_new),
        ("same bar (features cached): total", cached[:, 2], wall_cached),
    ):
        rate = f"{args.signals / wall:,.0f}" if wall else ""
        print(
            f"| {label} | {pct(arr, 50):.0f} | {pct(arr, 99):.0f} | {arr.max() / 1000:.0f} "
            f"| {rate} |"
        )


if __name__ == "__main__":
    main()
