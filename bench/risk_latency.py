"""Latency of one full pre-trade risk check: 100 open positions, 500 bars of history.

Run: ``.venv/bin/python bench/risk_latency.py [--checks N] [--positions P] [--history H]``.

The history is real: the Binance BTC/USDT 1-minute series from the shared data folder
(``crypto_1m/binance_spot_2025/BTC_USDT-1m.feather``; ``TRADELOOP_SHARED_DATA`` or
``--data`` to change it) cut into ``positions + 1`` consecutive segments of ``history + 1``
closes, each segment playing one symbol. The segments come from different weeks, so their
returns are nearly uncorrelated and every check runs to the end: limits, correlation of the
new symbol with all open positions, then the post-trade historical VaR over the whole book.

Each check is timed alone with ``perf_counter_ns``; between checks the in-flight order is
forgotten (outside the timing) so the next check of the same symbol is not refused as a
duplicate. The table gives the median, p99 and max over ``--checks`` checks for:

- **full check**: the default profile (10% position cap, 2% risk at the stop, 3x gross
  leverage, correlation 0.7 over 100 bars, 99% 1-day VaR cap over 500 bars, default stops)
  with the open-position cap raised to allow 100 positions;
- **limits only**: the same without correlation and VaR;
- **permissive**: the pass-through profile of plain backtests;
- **bar update**: ``RollingMarket.push`` of 101 closes plus ``RiskEngine.on_bar`` (kill
  switches, black-swan detector), the per-bar work of a live engine.

It prints a markdown table and writes nothing unless ``--json PATH`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from tradeloop.core.instrument import Instrument
from tradeloop.core.orders import Order
from tradeloop.core.portfolio import Portfolio
from tradeloop.core.position import Position
from tradeloop.core.signal import Signal
from tradeloop.data.loader import load_ohlcv
from tradeloop.risk.config import RiskConfig
from tradeloop.risk.engine import RiskEngine
from tradeloop.risk.market import RollingMarket

SOURCE = "crypto_1m/binance_spot_2025/BTC_USDT-1m.feather"
MINUTE = 60_000_000_000


def _data_file(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    root = os.environ.get("TRADELOOP_SHARED_DATA")
    base = Path(root) if root else Path(__file__).resolve().parents[1].parent / "shared" / "data"
    return base / SOURCE


def _setup(
    close: np.ndarray, positions: int, history: int
) -> tuple[RollingMarket, Portfolio, list[str], dict[str, Instrument]]:
    symbols = [f"S{k:03d}" for k in range(positions + 1)]
    seg = history + 1
    if close.size < seg * len(symbols):
        raise SystemExit(f"need {seg * len(symbols)} closes, the source has {close.size}")
    market = RollingMarket(symbols, history + 1, MINUTE)
    for row in range(seg):
        market.push(row * MINUTE, {s: float(close[k * seg + row]) for k, s in enumerate(symbols)})
    portfolio = Portfolio(1_000_000.0)
    for k, s in enumerate(symbols[:positions]):
        price = market.price(s)
        qty = 0.005 * 1_000_000.0 / price  # 0.5% of equity each
        portfolio.positions[s] = Position(f"{s}-1", s, 1 if k % 3 else -1, qty, price, 0, 0.0)
        portfolio.marks[s] = price
        portfolio.balance -= (1 if k % 3 else -1) * qty * price
    instruments = {s: Instrument(s, lot_size=1e-6) for s in symbols}
    return market, portfolio, symbols, instruments


def _time(fn: Callable[[], object], after: Callable[[], None], n: int) -> list[float]:
    for _ in range(min(200, n)):  # warm-up
        fn()
        after()
    out = []
    clock = time.perf_counter_ns
    for _ in range(n):
        start = clock()
        fn()
        out.append((clock() - start) / 1_000.0)
        after()
    return out


def _row(name: str, samples: list[float]) -> dict[str, float | str]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return {
        "check": name,
        "median_us": statistics.median(ordered),
        "p99_us": p99,
        "max_us": ordered[-1],
        "n": len(ordered),
    }


def main() -> None:
    """Time the checks and print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checks", type=int, default=10_000)
    parser.add_argument("--positions", type=int, default=100)
    parser.add_argument("--history", type=int, default=500)
    parser.add_argument("--data", default=None, help="OHLCV file to take the closes from")
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()

    close = np.asarray(load_ohlcv(_data_file(args.data)).bars.close, dtype=np.float64)
    market, portfolio, symbols, instruments = _setup(close, args.positions, args.history)
    new = symbols[-1]
    signal = Signal.open_long(new, 0.05)
    base = RiskConfig.default()
    full_cfg = replace(base, limits=replace(base.limits, max_open_positions=args.positions + 10))
    limits_cfg = replace(
        full_cfg, limits=replace(full_cfg.limits, max_correlation=None, max_var_pct=None)
    )
    rows = []
    for name, cfg in (
        ("full check (limits + correlation + VaR)", full_cfg),
        ("limits only", limits_cfg),
        ("permissive pass-through", RiskConfig.permissive()),
    ):
        engine = RiskEngine(cfg, instruments)
        decision = engine.check(signal, portfolio, market)
        if not isinstance(decision, Order):
            raise SystemExit(f"{name}: the check refused the order: {decision}")
        samples = _time(
            lambda e=engine: e.check(signal, portfolio, market),  # type: ignore[misc]
            lambda e=engine: e.on_fill(new),  # type: ignore[misc]
            args.checks,
        )
        rows.append(_row(name, samples))

    engine = RiskEngine(full_cfg, instruments)
    step = [args.history + 1]
    closes = {s: market.price(s) for s in symbols}

    def bar() -> None:
        ts = step[0] * MINUTE
        market.push(ts, closes)
        engine.on_bar(ts, closes, portfolio)
        step[0] += 1

    rows.append(_row(f"bar update ({len(symbols)} closes)", _time(bar, lambda: None, args.checks)))

    print(
        f"\nRisk check latency: {args.positions} open positions, {args.history}-bar history, "
        f"{args.checks:,} checks each ({os.cpu_count()} CPUs, {platform.machine()}, "
        f"Python {platform.python_version()}, numpy {np.__version__})\n"
    )
    print("| check | median µs | p99 µs | max µs | target p99 |")
    print("|---|---:|---:|---:|---:|")
    for row in rows:
        target = "< 1,000 µs" if str(row["check"]).startswith("full") else ""
        print(
            f"| {row['check']} | {row['median_us']:.1f} | {row['p99_us']:.1f} | "
            f"{row['max_us']:.0f} | {target} |"
        )
    full = rows[0]
    print(
        f"\np99 of the full check: {full['p99_us']:.0f} µs = "
        f"{1_000.0 / float(full['p99_us']):.1f}x under the 1 ms target, "
        f"{10_000.0 / float(full['p99_us']):.0f}x under the seed's 10 ms."
    )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
