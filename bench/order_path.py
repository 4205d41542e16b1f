"""Order-path overhead inside tradeloop, live vs paper, excluding the venue.

Run: ``.venv/bin/python bench/order_path.py [--bars N] [--runs 3]``.

Both kernels run the same strategy on the same real bars (the Binance BTC/USDT 1-minute series
of the shared data folder; ``TRADELOOP_SHARED_DATA`` or ``--data`` to change it): it opens a
long when flat and closes it on the next bar, so every bar has a signal and every open a fill.

- **live**: :class:`~tradeloop.engine.live.LiveKernel` in ``live`` mode, whose
  :class:`~tradeloop.execution.venue_broker.VenueBroker` talks to an in-memory venue
  (:class:`~tradeloop.testing.venue.instant.InstantVenue`: it records the time an order reaches
  it and answers at once), so only tradeloop's own work is timed.
  *signal -> order sent*: from the strategy returning its signal to the venue client's
  ``place_order`` being entered (the step, the risk gate, the pre-trade check and rounding, the
  client id, the state machine). *fill -> position updated*: from the kernel handing the next
  bar's open to the broker to the portfolio holding the position (draining the venue's updates,
  dedup, the state machine, booking the fill).
- **paper (peer)**: the same kernel in ``paper`` mode with the simulated broker, timed at the
  same two points (signal -> order queued; open -> position booked).

Each phase is timed per event with ``perf_counter_ns``; the table gives p50 and p99 over all
events, the median of ``--runs`` runs, the ratio live/paper and the machine load (``uptime``).
Target: p99 < 1 ms for both live phases. It writes nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

from tradeloop.core.instrument import Instrument
from tradeloop.core.signal import Signal
from tradeloop.data.loader import load_ohlcv
from tradeloop.engine.config import RunConfig
from tradeloop.engine.factories import VenueSpec
from tradeloop.engine.live import LiveKernel
from tradeloop.execution.venue import MarketKind, MarketRules
from tradeloop.strategy.base import Strategy
from tradeloop.testing.venue.instant import InstantVenue

SYM = "BTC/USDT"


class FlipFlop(Strategy):
    """Opens a long when flat, closes it on the next bar (a signal every bar)."""

    name = "flip_flop"

    def __init__(self, clock: list[int]) -> None:
        super().__init__()
        self._clock = clock

    def on_bar(self, view: Any, portfolio: Any) -> list[Signal]:
        out = [Signal.close(SYM) if SYM in portfolio.positions else Signal.open_long(SYM, 0.5)]
        self._clock.append(time.perf_counter_ns())
        return out


def _bars(path: Path, n: int) -> list[tuple[int, float, float, float, float, float]]:
    b = load_ohlcv(path).bars
    return [
        (
            int(b.ts[i]),
            float(b.open[i]),
            float(b.high[i]),
            float(b.low[i]),
            float(b.close[i]),
            float(b.volume[i]),
        )
        for i in range(min(n, len(b.ts)))
    ]


def _run(
    mode: str, bars: list[tuple[int, float, float, float, float, float]]
) -> tuple[list[int], list[int]]:
    signal_at: list[int] = []
    inst = {
        SYM: Instrument(SYM, tick_size=0.01, lot_size=0.00001, min_notional=5.0, taker_fee=0.001)
    }
    venue = InstantVenue(
        {
            SYM: MarketRules(
                SYM, MarketKind.SPOT, "BTC", "USDT", 0.00001, 0.01, 0.00001, 1e6, 0.01, 1e7, 5.0
            )
        },
        cash=10_000.0,
    )
    spec = VenueSpec("ccxt", "binance", "bench", client=venue) if mode == "live" else None
    kernel = LiveKernel(
        FlipFlop(signal_at), inst, "1m", RunConfig(balance=10_000.0), mode=mode, venue=spec
    )
    broker = kernel.broker
    sent: list[int] = []
    opened: list[int] = []
    if mode == "paper":
        original = broker.submit_order

        def submit(order: Any, ts: int, price: float) -> None:
            original(order, ts, price)
            sent.append(time.perf_counter_ns())

        broker.submit_order = submit  # type: ignore[method-assign]
    fill_ns: list[int] = []
    original_open = broker.on_open

    def on_open(symbol: str, ts: int, price: float) -> None:
        t0 = time.perf_counter_ns()
        venue.price = price
        original_open(symbol, ts, price)
        fill_ns.append(time.perf_counter_ns() - t0)

    broker.on_open = on_open  # type: ignore[method-assign]
    for ts, o, h, low, c, v in bars:
        kernel.on_price(SYM, ts, o, o, o, o)
        kernel.on_bar(SYM, ts, o, h, low, c, v)
        opened.append(len(kernel.portfolio.positions))
    placed = venue.placed_at_ns if mode == "live" else sent
    k = min(len(placed), len(signal_at))
    # the strategy's warm-up bar aside, the i-th order follows the i-th signal
    send_ns = [p - s for s, p in zip(signal_at[:k], placed[:k], strict=True)]
    return send_ns, fill_ns


def _pct(values: list[int], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) / 1_000.0  # us


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = Path(
        os.environ.get(
            "TRADELOOP_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"
        )
    )
    parser.add_argument(
        "--data", type=Path, default=root / "crypto_1m/binance_spot_2025/BTC_USDT-1m.feather"
    )
    parser.add_argument("--bars", type=int, default=5_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    bars = _bars(args.data, args.bars)
    results: dict[str, dict[str, list[float]]] = {}
    for mode in ("live", "paper"):
        per = results.setdefault(mode, {"send50": [], "send99": [], "fill50": [], "fill99": []})
        for _ in range(args.runs):
            send, fill = _run(mode, bars)
            per["send50"].append(_pct(send, 50))
            per["send99"].append(_pct(send, 99))
            per["fill50"].append(_pct(fill, 50))
            per["fill99"].append(_pct(fill, 99))
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    med = {m: {k: statistics.median(v) for k, v in d.items()} for m, d in results.items()}
    print(f"order path, {len(bars):,} bars, median of {args.runs} runs; load: {load}\n")
    print(
        "| phase | live p50 (us) | live p99 (us) | paper p50 (us) | paper p99 (us) "
        "| live/paper p99 | p99 < 1 ms |"
    )
    print("|---|---:|---:|---:|---:|---:|:---:|")
    for name, key in (("signal -> order sent", "send"), ("fill -> position updated", "fill")):
        lv, pp = med["live"], med["paper"]
        ratio = lv[f"{key}99"] / pp[f"{key}99"] if pp[f"{key}99"] else float("nan")
        ok = "yes" if lv[f"{key}99"] < 1_000 else "no"
        print(
            f"| {name} | {lv[key + '50']:.1f} | {lv[key + '99']:.1f} | {pp[key + '50']:.1f} | "
            f"{pp[key + '99']:.1f} | {ratio:.2f}x | {ok} |"
        )


if __name__ == "__main__":
    main()
