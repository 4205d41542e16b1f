"""In-process backtest throughput of this checkout against an earlier commit, side by side.

Each round runs every case once in a fresh interpreter per code base, alternating the code
bases (``--base-src`` first, then this checkout's ``src``), so a change in the machine's load
hits both alike; each child reports the best of ``--inner`` runs per case. The table shows
the median over ``--rounds`` rounds and the ratio current / base (above 1.00: faster now), by
wall time and by the process's CPU time (``time.process_time``), which a busy shared machine
disturbs far less than the wall clock.

Prepare the earlier code base as a detached worktree, e.g.::

    git worktree add --detach ../tl-base <commit>
    .venv/bin/python bench/versus_commit.py --base-src ../tl-base/src

Cases (the real BTC/USDT 1-minute series from the shared data folder, 130,708 bars unless
``--bars`` repeats it): ``sma_cross`` 10/30 (sparse loop, one signal per ~25 bars),
``sma_cross`` with a 1% stop and a 2% target, ``rsi_reversion`` under the default risk
profile (per-bar risk loop), and ``rsi_reversion`` with a 1% trailing stop. Trades of both
code bases are compared (count and first/last entry time). Nothing is written into the
repository; timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

sys.dont_write_bytecode = True

HERE = Path(__file__).resolve().parent
CURRENT_SRC = HERE.parent / "src"

CASES: dict[str, tuple[str, dict[str, object], str | None]] = {
    "sma_cross 10/30": ("sma_cross", {"fast": 10, "slow": 30}, None),
    "sma_cross SL 1% / TP 2%": (
        "sma_cross",
        {"fast": 10, "slow": 30, "stop_loss": 0.01, "take_profit": 0.02},
        None,
    ),
    "sma_cross SL 1% / TP 2% / trailing 1%": (
        "sma_cross",
        {"fast": 10, "slow": 30, "stop_loss": 0.01, "take_profit": 0.02, "trailing_stop": 0.01},
        None,
    ),
    "rsi_reversion, default risk": ("rsi_reversion", {}, "default"),
    "rsi_reversion, trailing 1%": ("rsi_reversion", {"trailing_stop": 0.01}, None),
}

_CHILD = r"""
import json, sys, time
sys.dont_write_bytecode = True
sys.path.insert(0, sys.argv[1])
from backtest_throughput import build_series, load_source, resolve_data
from tradeloop.core.bar import BarArrays
from tradeloop.core.instrument import Instrument
from tradeloop.engine import config as _config
from tradeloop.engine.runner import run_on_bars
from tradeloop.strategy.registry import load_strategy_class

Config = getattr(_config, "RunConfig", None) or _config.BacktestConfig
cases = json.loads(sys.argv[2])
n_bars, inner = int(sys.argv[3]), int(sys.argv[4])
src = load_source(resolve_data(None))
bars = build_series(src, n_bars) if n_bars else src
arrays = BarArrays("BTC/USDT", "1m", bars.ts, bars.open, bars.high, bars.low, bars.close,
                   bars.volume)
inst = {"BTC/USDT": Instrument("BTC/USDT", tick_size=bars.tick, maker_fee=0.001,
                                taker_fee=0.001)}
out = {}
for label, (name, params, risk) in cases.items():
    cls = load_strategy_class(name, None)
    kwargs = {"balance": 10_000.0, "fee": 0.001}
    if risk is not None:
        kwargs["risk"] = risk
    best = best_cpu = float("inf")
    try:
        cls(**params)
    except Exception as exc:  # a parameter the older code base does not have
        out[label] = {"error": str(exc)}
        continue
    for _ in range(inner):
        strategy = cls(**params)
        start, cpu = time.perf_counter(), time.process_time()
        result = run_on_bars(strategy, {"BTC/USDT": arrays}, Config(**kwargs), instruments=inst)
        best = min(best, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    trades = result.trades
    out[label] = {
        "seconds": best,
        "cpu": best_cpu,
        "bars": len(arrays),
        "trades": len(trades),
        "first": trades[0].entry_ts if trades else None,
        "last": trades[-1].entry_ts if trades else None,
        "pnl": round(sum(t.pnl for t in trades), 6),
    }
print(json.dumps(out))
"""


def _run(src: Path, cases: dict[str, object], n_bars: int, inner: int) -> dict[str, dict]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = f"{src}{os.pathsep}{HERE}"
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(HERE), json.dumps(cases), str(n_bars), str(inner)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"child on {src} failed:\n{proc.stderr}")
    result: dict[str, dict] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    """Run the comparison and print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-src", type=Path, required=True, help="src folder of the base")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--inner", type=int, default=3, help="best of K inside each child")
    parser.add_argument("--bars", type=int, default=0, help="0: the 130,708-bar source as is")
    parser.add_argument("--cases", default="", help="';'-separated labels (default: all)")
    args = parser.parse_args()
    chosen = {k: v for k, v in CASES.items() if not args.cases or k in args.cases.split(";")}
    load_before = os.getloadavg()
    runs: dict[str, list[dict[str, dict]]] = {"base": [], "current": []}
    for k in range(args.rounds):
        print(f"round {k + 1}/{args.rounds}", file=sys.stderr, flush=True)
        runs["base"].append(_run(args.base_src.resolve(), chosen, args.bars, args.inner))
        runs["current"].append(_run(CURRENT_SRC, chosen, args.bars, args.inner))
    load_after = os.getloadavg()
    print(
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average {load_before[0]:.2f} -> {load_after[0]:.2f}; median of {args.rounds} "
        f"alternating rounds, best of {args.inner} inside each\n"
    )
    print(
        "| case | bars | base bars/s | current bars/s | current / base | current / base, "
        "CPU time | CPU, best run each | trades | same |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for label in chosen:
        b, c = runs["base"][0][label], runs["current"][0][label]
        if "error" in b or "error" in c:
            n = c.get("bars", b.get("bars", 0))
            cur = (
                statistics.median(r[label]["seconds"] for r in runs["current"])
                if "error" not in c
                else None
            )
            print(
                f"| {label} | {n:,} | - | {n / cur:,.0f} | - | - | - | {c.get('trades', 0):,} | "
                f"base: {b.get('error', c.get('error'))} |"
                if cur
                else f"| {label} | - | - | - | - | - | - | - | {c['error']} |"
            )
            continue
        med = {side: statistics.median(r[label]["seconds"] for r in runs[side]) for side in runs}
        cpu = {side: statistics.median(r[label]["cpu"] for r in runs[side]) for side in runs}
        best = {side: min(r[label]["cpu"] for r in runs[side]) for side in runs}
        same = all(b[f] == c[f] for f in ("trades", "first", "last")) and abs(
            b["pnl"] - c["pnl"]
        ) <= 1e-6 * max(1.0, abs(b["pnl"]))
        n = b["bars"]
        print(
            f"| {label} | {n:,} | {n / med['base']:,.0f} | {n / med['current']:,.0f} | "
            f"{med['base'] / med['current']:.2f} | {cpu['base'] / cpu['current']:.2f} | "
            f"{best['base'] / best['current']:.2f} | "
            f"{c['trades']:,} | {'yes' if same else 'NO'} |"
        )


if __name__ == "__main__":
    main()
