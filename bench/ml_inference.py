"""ML in the step: per-signal enrichment latency with bounded and unbounded inference threads.

Run: ``.venv/bin/python bench/ml_inference.py [--signals K] [--rounds R] [--data FILE]``.

The data is real: the Binance BTC/USDT 1-minute series from the shared data folder
(``crypto_1m/binance_spot_2025/BTC_USDT-1m.feather``; ``TRADELOOP_SHARED_DATA`` or ``--data``
to change it). A LightGBM meta-model (200 trees, the project's defaults) is trained on the
``sma_cross`` (10/30, long and short) entries of the first half; the second half is the run.

- **backtest step**: ``ModelEnrichment.enrich`` of one entry signal at ``--signals`` bars of
  the second half (features precomputed by ``prepare``, as in a backtest), once with
  ``threads=1`` (the default, ``--ml-threads``) and once with ``threads=None`` (LightGBM's own
  default: a pool of every core). The two alternate in ``--rounds`` blocks so machine load
  hits both alike; each call is timed on its own. This runs twice: on the machine as it is,
  and with ``--busy`` processes spinning on a core each (another engine, a training job), which
  is when a pool sized to every core has to wait for its threads.
- **paper step**: ``extend`` by one new bar (features of the new bar over the last 2,048 bars)
  then ``enrich``, threads=1.
- **backtest run**: the whole second half through the engine, plain and with the model
  (permissive profile, every entry kept: the cost of scoring every entry signal); best of 3.

It prints markdown tables and writes nothing.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tradeloop.core.instrument import Instrument
from tradeloop.core.signal import Signal
from tradeloop.data.loader import load_ohlcv
from tradeloop.engine.config import RunConfig
from tradeloop.engine.enrichment import ModelEnrichment
from tradeloop.engine.market import MarketData
from tradeloop.engine.ml_strategy import primary_events
from tradeloop.engine.runner import run_on_bars
from tradeloop.ml.training import TrainConfig, train_meta_model
from tradeloop.strategy.examples.sma_cross import SmaCross

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("TRADELOOP_SHARED_DATA", REPO.parent / "shared" / "data"))
SOURCE = "crypto_1m/binance_spot_2025/BTC_USDT-1m.feather"


def pct(values: np.ndarray, q: float) -> float:
    """Percentile in microseconds of ns values."""
    return float(np.percentile(values, q)) / 1000


def row(label: str, ns: np.ndarray) -> str:
    """One markdown row: p50, p99, p99.9, max in µs."""
    return (
        f"| {label} | {len(ns):,} | {pct(ns, 50):.0f} | {pct(ns, 99):.0f} | {pct(ns, 99.9):.0f} "
        f"| {ns.max() / 1000:.0f} |"
    )


def _spin(stop: multiprocessing.synchronize.Event) -> None:  # type: ignore[name-defined]
    """Keep one core busy until ``stop`` is set."""
    x = 0
    while not stop.is_set():
        for _ in range(10_000):
            x += 1


def measure(
    enrichments: dict[str, ModelEnrichment],
    view: object,
    steps: np.ndarray,
    signals: Sequence[Signal],
    rounds: int,
) -> dict[str, np.ndarray]:
    """Per-call ns of ``enrich`` for each enrichment, alternating in ``rounds`` blocks."""
    timings: dict[str, list[int]] = {name: [] for name in enrichments}
    per_round = max(1, len(steps) // rounds)
    clock = time.perf_counter_ns
    for r in range(rounds):
        block = steps[r * per_round : (r + 1) * per_round]
        for name, enrichment in enrichments.items():
            out = timings[name]
            for k, step in enumerate(block):
                view.step = view.i = int(step)  # type: ignore[attr-defined]
                one = [signals[k & 1]]
                t = clock()
                enrichment.enrich(one, view)  # type: ignore[arg-type]
                out.append(clock() - t)
    return {name: np.array(v) for name, v in timings.items()}


def main() -> None:
    """Run the benchmark and print the tables."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--signals", type=int, default=20_000, help="signals per thread setting")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--busy", type=int, default=1, help="spinning processes in the busy run")
    ap.add_argument("--data", default=str(DATA / SOURCE))
    args = ap.parse_args()
    bars = load_ohlcv(args.data).bars
    half = len(bars) // 2
    head = bars.slice(0, half)
    plain_head = run_on_bars(SmaCross(short=True), {bars.symbol: head}, RunConfig(fee=0.001))
    events, sides = primary_events(plain_head, head)
    trained = train_meta_model(head, events, sides, TrainConfig())
    model = trained.model

    market = MarketData({bars.symbol: bars}, {bars.symbol: Instrument(bars.symbol)}, "1m")
    view = market.view()
    bounded = ModelEnrichment(model, min_confidence=0.0, threads=1)
    pooled = ModelEnrichment(model, min_confidence=0.0, threads=None)
    bounded.prepare(view)
    pooled.prepare(view)
    rng = np.random.default_rng(7)
    steps = rng.integers(half, len(bars), args.signals)
    signals = [Signal.open_long(bars.symbol), Signal.open_short(bars.symbol)]
    both = {"bounded": bounded, "pooled": pooled}
    idle = measure(both, view, steps, signals, args.rounds)
    stop = multiprocessing.Event()
    spinners = [multiprocessing.Process(target=_spin, args=(stop,)) for _ in range(args.busy)]
    for proc in spinners:
        proc.start()
    try:
        busy = measure(both, view, steps, signals, args.rounds)
    finally:
        stop.set()
        for proc in spinners:
            proc.join()
    clock = time.perf_counter_ns

    # paper: one new bar, then one signal on it (window of 2,048 bars held)
    held = 2_048
    paper = ModelEnrichment(model, min_confidence=0.0, threads=1)
    start = half
    window = bars.slice(start - held, start)
    pv = MarketData({bars.symbol: window}, {bars.symbol: Instrument(bars.symbol)}, "1m").view()
    paper.prepare(pv)
    extend_ns, paper_ns = [], []
    for k in range(min(args.signals // 4, len(bars) - start)):
        window = bars.slice(start + k + 1 - held, start + k + 1)
        pv = MarketData({bars.symbol: window}, {bars.symbol: Instrument(bars.symbol)}, "1m").view()
        pv.step = pv.i = held - 1
        t = clock()
        paper.extend(pv)
        t1 = clock()
        paper.enrich([signals[k & 1]], pv)
        t2 = clock()
        extend_ns.append(t1 - t)
        paper_ns.append(t2 - t)

    tail = {bars.symbol: bars}
    cfg = RunConfig(fee=0.001, start=int(bars.ts[half]))
    t_plain = t_model = float("inf")
    for _ in range(3):  # best of 3 each, alternating
        t = time.perf_counter()
        plain = run_on_bars(SmaCross(short=True), tail, cfg)
        t_plain = min(t_plain, time.perf_counter() - t)
        run_model = ModelEnrichment(model, min_confidence=0.0, threads=1)
        t = time.perf_counter()
        run_on_bars(SmaCross(short=True), tail, cfg, enrichment=run_model)
        t_model = min(t_model, time.perf_counter() - t)
    n_bars = plain.bars_processed
    load = os.getloadavg()

    print(
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}\n"
    )
    print(
        f"model: {len(events):,} entries of the first {half:,} real 1m bars, out-of-fold AUC "
        f"{trained.overall['auc']:.3f}\n"
    )
    print("| per signal | calls | p50 µs | p99 µs | p99.9 µs | max µs |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, got in (("idle", idle), (f"{args.busy} busy process(es)", busy)):
        print(row(f"backtest step, enrich, threads=1 (default); {label}", got["bounded"]))
        print(row(f"backtest step, enrich, every core; {label}", got["pooled"]))
    print(row("paper step, extend one bar", np.array(extend_ns)))
    print(row("paper step, extend + enrich, threads=1", np.array(paper_ns)))
    for label, got in (("idle", idle), ("busy", busy)):
        b, p = got["bounded"], got["pooled"]
        print(
            f"\n{label}: every core / threads=1 at p99 {pct(p, 99) / pct(b, 99):.1f}x, "
            f"at p99.9 {pct(p, 99.9) / pct(b, 99.9):.1f}x"
        )
    print()
    counts = run_model.counts
    print(f"| backtest of {n_bars:,} real 1m bars | seconds | bars/s | entries scored |")
    print("|---|---:|---:|---:|")
    print(f"| sma_cross, no model | {t_plain:.2f} | {n_bars / t_plain:,.0f} | |")
    print(
        f"| sma_cross, with the model | {t_model:.2f} | {n_bars / t_model:,.0f} "
        f"| {counts.enriched:,} |"
    )


if __name__ == "__main__":
    main()
