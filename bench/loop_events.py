"""The one kernel step: what a bus costs a backtest, and the loop's event rate.

Run: ``.venv/bin/python bench/loop_events.py [--bars N] [--repeat K] [--live-bars N]
[--redis URL]``.

Data: the real Binance BTC/USDT 1-minute series from the shared data folder, repeated end to
end to ``--bars`` bars (as in ``backtest_throughput.py``). Strategy: ``SmaCross(10, 30)``,
fee 0.1%, the oracle rules.

1. **Backtest, in process** (every row the median of ``--repeat`` runs, rows interleaved so a
   change in the machine's load hits all of them alike): the specialised loop without a bus
   (the default), the general step without a bus (``loop="general"``), the general step
   publishing every stage on an :class:`~tradeloop.bus.base.InProcessBus` with a counting
   subscriber per topic, and backtesting.py on the same bars with the same rules. The ratio
   column is bars/s over backtesting.py's.
2. **Loop events/s**: a :class:`~tradeloop.engine.live.LiveKernel` fed ``--live-bars`` bars the
   way a kline stream does (open update, then the closed bar), publishing on an in-process bus
   and, with ``--redis``, on a :class:`~tradeloop.bus.redis_bus.RedisBus` while a plain
   redis-py subscriber (not our code) counts what arrives: events/s and delivered/published.

Timings are printed, never asserted. Nothing is written into the repository.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
from collections import Counter
from typing import Any

import numpy as np

sys.dont_write_bytecode = True

from _peers import Rules, is_available, run_backtesting  # noqa: E402
from backtest_throughput import build_series, load_source, resolve_data  # noqa: E402
from tradeloop.bus.base import InProcessBus  # noqa: E402
from tradeloop.bus.events import TOPICS, event_codec  # noqa: E402
from tradeloop.core.bar import BarArrays  # noqa: E402
from tradeloop.core.instrument import Instrument  # noqa: E402
from tradeloop.engine.config import RunConfig  # noqa: E402
from tradeloop.engine.kernel import BacktestEngine  # noqa: E402
from tradeloop.engine.live import LiveKernel  # noqa: E402
from tradeloop.engine.market import MarketData  # noqa: E402
from tradeloop.strategy.examples.sma_cross import SmaCross  # noqa: E402

SYMBOL = "BTC/USDT"
FEE = 0.001


def _arrays(bars: Any) -> BarArrays:
    return BarArrays(SYMBOL, "1m", bars.ts, bars.open, bars.high, bars.low, bars.close, bars.volume)


def _instrument(tick: float) -> Instrument:
    return Instrument(SYMBOL, tick_size=tick, maker_fee=FEE, taker_fee=FEE)


def _backtest(bars: Any, mode: str) -> tuple[float, int, int]:
    """Seconds, trades and events of one in-process backtest."""
    arrays = _arrays(bars)
    market = MarketData({SYMBOL: arrays}, {SYMBOL: _instrument(bars.tick)}, "1m")
    bus = None
    seen: Counter[str] = Counter()
    if mode == "bus":
        bus = InProcessBus()
        for topic in TOPICS:
            bus.subscribe(topic, lambda _m, t=topic: seen.__setitem__(t, seen[t] + 1))
    engine = BacktestEngine(
        SmaCross(fast=10, slow=30),
        market,
        RunConfig(balance=10_000.0, fee=FEE),
        loop="general" if mode == "general" else "auto",
        bus=bus,
    )
    started = time.perf_counter()
    result = engine.run()
    return time.perf_counter() - started, len(result.trades), sum(seen.values())


def _rows(bars: Any) -> list[tuple[int, float, float, float, float, float]]:
    return list(
        zip(
            bars.ts.tolist(),
            bars.open.tolist(),
            bars.high.tolist(),
            bars.low.tolist(),
            bars.close.tolist(),
            bars.volume.tolist(),
            strict=True,
        )
    )


def _live(bars: Any, warmup: int, bus: Any) -> tuple[float, int]:
    """Seconds to stream the bars after ``warmup`` through a kernel publishing on ``bus``."""
    kernel = LiveKernel(
        SmaCross(fast=10, slow=30),
        {SYMBOL: _instrument(bars.tick)},
        "1m",
        RunConfig(balance=10_000.0, fee=FEE),
        bus=bus,
        max_bars=warmup,
    )
    rows = _rows(bars)
    kernel.warm_up({SYMBOL: rows[:warmup]})
    started = time.perf_counter()
    for ts, o, h, low, c, v in rows[warmup:]:
        kernel.on_price(SYMBOL, ts, o, o, o, o)
        kernel.on_bar(SYMBOL, ts, o, h, low, c, v)
    elapsed = time.perf_counter() - started
    events = sum(kernel.step.events.counts.values()) if kernel.step.events else 0
    return elapsed, events


def _redis_live(bars: Any, warmup: int, url: str) -> tuple[float, int, int]:
    """Seconds, events published and events a raw redis-py subscriber received."""
    from tradeloop.bus.redis_bus import RedisBus, RedisBusConfig
    from tradeloop.testing.raw_redis import RawSubscriber

    raw = RawSubscriber(url, list(TOPICS))
    bus = RedisBus(RedisBusConfig(url=url), event_codec())
    loop = asyncio.new_event_loop()
    loop.run_until_complete(bus.start())
    elapsed, events = _live(bars, warmup, bus)
    bus.drain(60.0)
    received = raw.wait_for(events, limit_s=30.0)
    raw.close()
    loop.run_until_complete(bus.stop())
    loop.close()
    return elapsed, events, received


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bars", type=int, default=500_000, help="backtest bars")
    parser.add_argument("--repeat", type=int, default=3, help="runs per row (median)")
    parser.add_argument("--live-bars", type=int, default=20_000, help="bars through the kernel")
    parser.add_argument("--redis", default=None, help="also publish on this Redis URL")
    parser.add_argument("--no-peer", action="store_true", help="skip backtesting.py")
    args = parser.parse_args()

    src = load_source(resolve_data(None))
    bars = build_series(src, args.bars)
    print(
        f"loop events bench: {os.cpu_count()} CPUs, {platform.machine()}, Python "
        f"{platform.python_version()}, numpy {np.__version__}; load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    modes = ["auto", "general", "bus"]
    times: dict[str, list[float]] = {m: [] for m in modes}
    info: dict[str, tuple[int, int]] = {}
    peer_times: list[float] = []
    peer = not args.no_peer and is_available("backtesting")
    for _ in range(args.repeat):
        for mode in modes:
            seconds, trades, events = _backtest(bars, mode)
            times[mode].append(seconds)
            info[mode] = (trades, events)
        if peer:
            peer_times.append(run_backtesting(bars, Rules(fee=FEE)).run_s)
    peer_rate = len(bars) / statistics.median(peer_times) if peer_times else None
    labels = {
        "auto": "tradeloop, specialised loop, no bus (default)",
        "general": "tradeloop, general step, no bus",
        "bus": "tradeloop, general step, in-process bus",
    }
    print(
        f"\n| backtest ({len(bars):,} bars) | s (median) | bars/s | events/s | trades "
        "| vs backtesting.py |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for mode in modes:
        s = statistics.median(times[mode])
        trades, events = info[mode]
        rate = len(bars) / s
        ratio = f"{rate / peer_rate:.2f}×" if peer_rate else "-"
        ev = f"{events / s:,.0f}" if events else "-"
        print(f"| {labels[mode]} | {s:.3f} | {rate:,.0f} | {ev} | {trades:,} | {ratio} |")
    if peer_rate:
        s = statistics.median(peer_times)
        print(f"| backtesting.py | {s:.3f} | {peer_rate:,.0f} | - | - | 1.00× |")

    live = build_series(src, args.live_bars + 1_000)
    print(
        f"\n| loop ({args.live_bars:,} bars streamed) | s (median) | events | events/s "
        "| delivered |"
    )
    print("|---|---:|---:|---:|---:|")
    runs = [_live(live, 1_000, InProcessBus()) for _ in range(args.repeat)]
    s = statistics.median(r[0] for r in runs)
    print(f"| LiveKernel, in-process bus | {s:.3f} | {runs[0][1]:,} | {runs[0][1] / s:,.0f} | - |")
    if args.redis:
        redis_runs = [_redis_live(live, 1_000, args.redis) for _ in range(args.repeat)]
        s = statistics.median(r[0] for r in redis_runs)
        published, received = redis_runs[-1][1], redis_runs[-1][2]
        print(
            f"| LiveKernel, RedisBus + raw subscriber | {s:.3f} | {published:,} | "
            f"{published / s:,.0f} | {received:,} of {published:,} |"
        )
    print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
