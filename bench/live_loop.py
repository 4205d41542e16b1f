"""Paper-trading kernel: bar-to-order latency and the event rate it sustains from a replay.

Run: ``.venv/bin/python bench/live_loop.py [--quick] [--windows 1000,10000,50000]
[--live-bars N] [--ws-bars N] [--ws-warmup N] [--bar-interval S]``.

Strategy: ``SmaCross(fast=10, slow=30)`` on the real Binance BTC/USDT 1-minute series from the
shared data folder (``crypto_1m/binance_spot_2025/BTC_USDT-1m.feather``; the folder is
``../shared/data`` next to the repository, or ``TRADELOOP_SHARED_DATA``).

1. **Bar-to-order latency.** A :class:`~tradeloop.engine.live.LiveKernel` in process, no
   state store. For each history window W (``max_bars`` = warm-up = W bars) the kernel is
   warmed up with W bars, then fed ``--live-bars`` live bars the way the paper session feeds
   it: ``on_price`` with the bar's open (fills waiting orders), then ``on_bar`` with the
   closed bar (runs the step: strategy + risk + order submission). The wall time of each
   ``on_bar`` call (``perf_counter_ns``) is the time from taking a closed kline off the queue
   to the order being submitted to the broker. Two strategy hooks: ``incremental`` is
   ``SmaCross`` as shipped (its ``on_new_bars`` appends the new bar's cross from a streaming
   twin of the vectorized computation, O(1) per bar); ``re-init`` is the same strategy with
   the default ``Strategy.on_new_bars`` (``on_init`` re-run over the held window each step),
   which grows with W. Each cell is the median of ``--repeat`` runs (default 3); percentiles
   are over all steps and over the steps that submitted a new order. The last column is the
   p99 over the smallest window's p99 for the same hook.
2. **Events/s from the replay server.** End to end over a real WebSocket: a
   :class:`~tradeloop.testing.venue.LocalVenueServer` serves the REST candles (warm-up), a
   :class:`~tradeloop.testing.replay.ReplayServer` streams the klines (one closed and one
   in-progress message per bar, one bar every ``--bar-interval`` s), and a
   :class:`~tradeloop.engine.paper.PaperSession` runs in process with a SQLite state store
   (written at every step) and ``status.json``. Timed from the first live event (after the
   REST warm-up) to the processing of the bar at ``until_ns``. The same bars through an
   in-memory kernel loop (no WebSocket, no store) are given for comparison.

Timings are printed, never asserted. Nothing is written into the repository.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tradeloop.config.settings import ExchangeSettings, Settings
from tradeloop.core.instrument import Instrument
from tradeloop.data.loader import load_ohlcv
from tradeloop.engine.config import RunConfig
from tradeloop.engine.live import LiveKernel
from tradeloop.engine.paper import PaperConfig, PaperSession
from tradeloop.strategy.base import Strategy
from tradeloop.strategy.examples.sma_cross import SmaCross
from tradeloop.testing.replay import ReplayServer
from tradeloop.testing.venue import LocalVenueServer
from tradeloop.testing.venue.data import recorded_venues

SOURCE = "crypto_1m/binance_spot_2025/BTC_USDT-1m.feather"
SYMBOL = "BTC/USDT"
MINUTE_NS = 60_000_000_000
INSTRUMENT = Instrument(SYMBOL, venue="binance", tick_size=0.01, lot_size=1e-5, taker_fee=0.001)


def _data_dir() -> Path:
    root = os.environ.get("TRADELOOP_SHARED_DATA")
    return Path(root) if root else Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _rows(bars: Any, a: int, b: int) -> list[tuple[int, float, float, float, float, float]]:
    cut = bars.slice(a, b)
    return list(
        zip(
            cut.ts.tolist(),
            cut.open.tolist(),
            cut.high.tolist(),
            cut.low.tolist(),
            cut.close.tolist(),
            cut.volume.tolist(),
            strict=True,
        )
    )


def _pct(samples: list[float], q: float) -> float:
    if not samples:
        return float("nan")
    return float(np.percentile(np.asarray(samples), q, method="lower"))


class _ReInitSmaCross(SmaCross):
    """SmaCross with the default hook: ``on_init`` re-run over the held window every step."""

    on_new_bars = Strategy.on_new_bars


def _strategy(hook: str = "incremental") -> SmaCross:
    cls = SmaCross if hook == "incremental" else _ReInitSmaCross
    return cls(fast=10, slow=30)


# -- 1. bar-to-order latency ---------------------------------------------------------------------
@dataclass
class LatencyRow:
    window: int
    steps: int
    orders: int
    all_us: list[float]
    order_us: list[float]


def _latency(bars: Any, window: int, live: int, hook: str) -> LatencyRow:
    kernel = LiveKernel(
        _strategy(hook),
        {SYMBOL: INSTRUMENT},
        "1m",
        RunConfig(balance=10_000),
        max_bars=window,
    )
    kernel.warm_up({SYMBOL: _rows(bars, 0, window)})
    live_rows = _rows(bars, window, window + live)
    clock = time.perf_counter_ns
    all_us: list[float] = []
    order_us: list[float] = []
    for ts, o, h, low, c, v in live_rows:
        kernel.on_price(SYMBOL, ts, o, o, o, o)
        start = clock()
        out = kernel.on_bar(SYMBOL, ts, o, h, low, c, v)
        took = (clock() - start) / 1_000.0
        if not out.steps:
            continue
        all_us.append(took)
        if any(s.status == "submitted" for s in out.orders):
            order_us.append(took)
    return LatencyRow(window, kernel.steps, len(order_us), all_us, order_us)


# -- 2. events/s ---------------------------------------------------------------------------------
class _TimedSession(PaperSession):
    """Notes the wall time once the first live event (and the REST warm-up) is processed."""

    first_done: float | None = None

    def _on_kline(self, kernel: LiveKernel, ev: Any) -> None:
        super()._on_kline(kernel, ev)
        if self.first_done is None:
            self.first_done = time.perf_counter()


@dataclass
class RateRow:
    name: str
    events: int
    steps: int
    seconds: float
    note: str


def _paper_over_ws(
    data_dir: Path, bars: Any, warmup: int, live: int, interval: float, tmp: Path
) -> RateRow:
    venues = recorded_venues(data_dir)
    start_ns = int(bars.ts[warmup])
    end_ns = int(bars.ts[warmup + live - 1])
    with (
        LocalVenueServer(venues) as rest,
        ReplayServer(
            venues,
            start_ms=start_ns // 1_000_000,
            end_ms=end_ns // 1_000_000 + 60_000,
            bar_interval_s=interval,
            advance_when_idle=False,
        ) as ws,
    ):
        cfg = PaperConfig(
            exchange="binance",
            symbols=(SYMBOL,),
            timeframe="1m",
            run_id="bench-live-loop",
            state_url=str(tmp / "state.sqlite"),
            status_path=tmp / "status.json",
            warmup_bars=warmup,
            max_bars=warmup,
            until_ns=end_ns,
            heartbeat_s=3600.0,
            settings=Settings(exchanges={"binance": ExchangeSettings(url=rest.url, ws_url=ws.url)}),
        )
        session = _TimedSession(_strategy(), cfg)
        session.run()
        done = time.perf_counter()
    kernel = session.kernel
    if kernel is None or session.first_done is None:
        raise SystemExit("the paper session processed no live event")
    # the first event's warm-up is outside the timing, and so is that event
    return RateRow(
        "PaperSession over WebSocket + SQLite store",
        session.messages - 1,
        kernel.steps,
        done - session.first_done,
        f"replay pace {interval * 1e3:g} ms/bar = {2 / interval:,.0f} events/s offered",
    )


def _kernel_in_memory(bars: Any, warmup: int, live: int) -> RateRow:
    kernel = LiveKernel(
        _strategy(), {SYMBOL: INSTRUMENT}, "1m", RunConfig(balance=10_000), max_bars=warmup
    )
    kernel.warm_up({SYMBOL: _rows(bars, 0, warmup)})
    live_rows = _rows(bars, warmup, warmup + live)
    start = time.perf_counter()
    for ts, o, h, low, c, v in live_rows:
        kernel.on_price(SYMBOL, ts, o, o, o, o)
        kernel.on_bar(SYMBOL, ts, o, h, low, c, v)
    seconds = time.perf_counter() - start
    return RateRow(
        "LiveKernel in memory (no WS, no store)",
        2 * len(live_rows),
        kernel.steps,
        seconds,
        "2 events per bar",
    )


# -- output --------------------------------------------------------------------------------------
def _print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(f"\n{title}")
        print(" | ".join(header))
        for row in rows:
            print(" | ".join(row))
        return
    table = Table(title=title)
    for name in header:
        text = name in ("path", "note")
        table.add_column(name, justify="left" if text else "right", no_wrap=not text)
    for row in rows:
        table.add_row(*row)
    Console(width=None if sys.stdout.isatty() else 140).print(table)


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    align = ["---" if h in ("path", "note") else "---:" for h in header]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    """Measure and print the tables (rich, then markdown)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller run (under 30 s)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per cell (median)")
    parser.add_argument("--windows", default=None, help="history windows, comma-separated")
    parser.add_argument("--live-bars", type=int, default=None, help="live bars per window")
    parser.add_argument("--ws-bars", type=int, default=None, help="live bars over the WebSocket")
    parser.add_argument("--ws-warmup", type=int, default=1_000, help="warm-up / window, WS run")
    parser.add_argument("--bar-interval", type=float, default=0.0005, help="replay s per bar")
    parser.add_argument("--data", default=None, help="OHLCV file (default: the shared BTC 1m)")
    args = parser.parse_args()
    windows_text = args.windows or ("1000,10000" if args.quick else "1000,10000,50000")
    windows = [int(w) for w in windows_text.split(",")]
    live = args.live_bars or (500 if args.quick else 2_000)
    ws_bars = args.ws_bars or (1_000 if args.quick else 4_000)
    logging.basicConfig(level=logging.WARNING)

    data_dir = _data_dir()
    bars = load_ohlcv(Path(args.data) if args.data else data_dir / SOURCE).bars
    need = max(max(windows) + live, args.ws_warmup + ws_bars)
    if len(bars.ts) < need:
        raise SystemExit(f"need {need} bars, the source has {len(bars.ts)}")

    print(
        f"live loop bench: {os.cpu_count()} CPUs, {platform.machine()}, "
        f"Python {platform.python_version()}, numpy {np.__version__}"
    )
    lat_header = [
        "hook",
        "window (bars)",
        "steps",
        "p50 µs",
        "p99 µs",
        "orders",
        "order p50 µs",
        "order p99 µs",
        "p99 / smallest",
    ]
    lat_rows = []
    for hook in ("incremental", "re-init"):
        base_p99 = None
        for window in windows:
            runs = [_latency(bars, window, live, hook) for _ in range(args.repeat)]
            r = runs[0]

            def med(samples: str, q: float, runs: list[LatencyRow] = runs) -> float:
                return float(np.median([_pct(getattr(x, samples), q) for x in runs]))

            p99 = med("all_us", 99)
            base_p99 = p99 if base_p99 is None else base_p99
            lat_rows.append(
                [
                    hook,
                    f"{window:,}",
                    f"{r.steps:,}",
                    f"{med('all_us', 50):,.0f}",
                    f"{p99:,.0f}",
                    f"{r.orders:,}",
                    f"{med('order_us', 50):,.0f}",
                    f"{med('order_us', 99):,.0f}",
                    f"{p99 / base_p99:.2f}×",
                ]
            )
    _print_table(
        f"Bar-to-order latency: on_bar wall time, {live:,} live bars per window, "
        f"median of {args.repeat}; load average {os.getloadavg()[0]:.2f}",
        lat_header,
        lat_rows,
    )

    with tempfile.TemporaryDirectory(prefix="tradeloop-live-loop-") as tmp:
        rates = [
            _paper_over_ws(data_dir, bars, args.ws_warmup, ws_bars, args.bar_interval, Path(tmp)),
            _kernel_in_memory(bars, args.ws_warmup, ws_bars),
        ]
    rate_header = ["path", "events", "closed bars", "seconds", "events/s", "bars/s", "note"]
    rate_rows = [
        [
            r.name,
            f"{r.events:,}",
            f"{r.steps:,}",
            f"{r.seconds:.2f}",
            f"{r.events / r.seconds:,.0f}",
            f"{r.steps / r.seconds:,.0f}",
            r.note,
        ]
        for r in rates
    ]
    _print_table(
        f"Events/s: {ws_bars:,} live bars, {args.ws_warmup:,}-bar window", rate_header, rate_rows
    )
    print("\n" + _markdown(lat_header, lat_rows) + "\n\n" + _markdown(rate_header, rate_rows))


if __name__ == "__main__":
    main()
