"""Whole-process and per-bar speed in one run: tradeloop (CLI and in process, plain, with
stops, and strategies written bar by bar) against backtesting.py, backtrader and vectorbt.

Every row is the median of ``--repeat`` runs (peers: ``--peer-repeat``), all in the same run
of this script, so the ratios compare like with like; the load average is printed before and
after. Next to the wall clock, each row shows CPU seconds (this process's, or the CLI child's)
and the ratio by CPU time, which a busy shared machine disturbs far less.

The data and the rules are those of ``backtest_throughput.py`` (the real BTC/USDT
1-minute series repeated to ``--bars`` bars; SMA 10/30 long-only crossover, all-in, 0.1% fee,
fills at the next open; see ``bench/README.md``).

Rows:

- **tradeloop CLI**: ``tradeloop backtest`` as a subprocess on a Parquet file, as a user
  types it (no ``--out``: the run goes to the run store of the working folder): interpreter
  start, imports, load, data gate, run, trades.csv, equity.parquet, indicators.parquet,
  summary, metrics, risk files and report.html (wall clock). Once plain, once with a 1%
  stop, a 2% target and a 1% trailing stop on every trade. The first run on the file, whose
  data gate checks the data (later runs reuse its remembered clean verdict), is timed on its
  own and shown in the notes.
- **tradeloop in process**: ``run_on_bars`` with ``SmaCross`` (precomputed crosses, sparse
  loop), and the same with the stops (the exit scan jumps to the bars that touch a level).
- **obvious style, streaming**: a strategy written bar by bar, the way a backtesting.py user
  would: ``on_bar`` reads ``view.close()`` and updates two
  :class:`~tradeloop.indicators.streaming.StreamingSMA`; no precompute, no ``signal_bars``.
- **obvious style, view.sma(n)**: ``on_bar`` takes ``view.sma(10) - view.sma(30)`` (the
  means of the last 10 and 30 closes, computed at every bar).
- **obvious style, view.closes(n)**: ``on_bar`` averages ``view.closes(30)`` with numpy at
  every bar (on ``--obvious-bars`` bars).
- **backtesting.py, obvious style**: backtesting.py's equivalent of the last row:
  ``next()`` averages ``self.data.Close[-30:]`` with numpy at every bar (same bars); every
  obvious-style row notes its ratio to it.
- **peers**: backtesting.py (``Strategy.next`` per bar, averages from ``self.I``), backtrader,
  vectorbt (JIT warm-up not timed), as set up in ``bench/_peers.py``.

Trades (entry and exit times) are compared: the CLI with the in-process run, the peers and the
obvious-style strategies with the in-process ``SmaCross``, the CLI's stops run with the
in-process stops run. Timings are printed, never asserted; nothing is written into the
repository.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

sys.dont_write_bytecode = True

from _peers import (  # noqa: E402
    PEERS,
    Bars,
    Rules,
    Trade,
    is_available,
    match_trades,
    run_backtesting,
)
from backtest_throughput import (  # noqa: E402
    BALANCE,
    FEE,
    FILE_STEM,
    RULES_FAST,
    RULES_SLOW,
    SYMBOL,
    build_series,
    cli_args,
    cli_command,
    load_source,
    read_cli_trades,
    resolve_data,
    time_process,
    timeframe_of,
    warm_up,
    write_parquet,
)

STOPS = {"stop_loss": 0.01, "take_profit": 0.02, "trailing_stop": 0.01}


@dataclass(slots=True)
class Row:
    """One line of the table."""

    engine: str
    mode: str
    bars: int
    times: list[float]
    trades: str = ""
    notes: list[str] = field(default_factory=list)
    #: CPU seconds of each run (the process's, or the child's for the CLI)
    cpu: list[float] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return statistics.median(self.times)

    @property
    def rate(self) -> float:
        return self.bars / self.seconds if self.seconds > 0 else float("inf")

    @property
    def cpu_rate(self) -> float:
        return self.bars / statistics.median(self.cpu) if self.cpu else float("nan")


_CPU: list[float] = []  # CPU seconds of the runs timed by the helpers below, in order


def _cpu_of(fn: Callable[[], Any]) -> Callable[[], Any]:
    """``fn`` with its CPU time (this process and its children) appended to ``_CPU``."""

    def timed() -> Any:
        before = _cpu_now()
        out = fn()
        _CPU.append(_cpu_now() - before)
        return out

    return timed


def _cpu_now() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _cpu_children() -> float:
    """CPU seconds of the finished child processes so far."""
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return kids.ru_utime + kids.ru_stime


def _take_cpu() -> list[float]:
    out = list(_CPU)
    _CPU.clear()
    return out


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f} (5 min {five:.2f})"


def _median_of(repeat: int, fn: Callable[[], float]) -> list[float]:
    timed = _cpu_of(fn)
    return [timed() for _ in range(max(1, repeat))]


def _same(ours: list[Trade], theirs: list[Trade]) -> str:
    m = match_trades(ours, theirs)
    ok = m.matched == m.ours == m.theirs
    return f"{'yes' if ok else 'NO'} ({m.matched:,} of {max(m.ours, m.theirs):,})"


# --------------------------------------------------------------------------- strategies


def obvious_strategies(tie_eps: float) -> dict[str, type]:
    """The two bar-by-bar strategies (built here: they need the tradeloop import)."""
    from tradeloop.core.signal import Signal
    from tradeloop.indicators.streaming import StreamingSMA
    from tradeloop.strategy.base import NO_SIGNALS, Strategy

    def decide(self: Any, diff: float, portfolio: Any) -> Any:
        previous = self.side
        if diff >= tie_eps:
            side = 1
        elif diff <= -tie_eps:
            side = -1
        else:
            side = previous  # a tie (or warm-up NaN) keeps the side
        self.side = side
        if previous < 0 < side and self.symbol not in portfolio.positions:
            return [Signal.open_long(self.symbol, 1.0)]
        if side < 0 < previous and self.symbol in portfolio.positions:
            return [Signal.close(self.symbol)]
        return NO_SIGNALS

    class ObviousStreaming(Strategy):
        """SMA 10/30 crossover updated bar by bar with streaming averages."""

        name = "obvious_streaming"

        def on_init(self, view: Any) -> None:
            self.fast, self.slow = StreamingSMA(RULES_FAST), StreamingSMA(RULES_SLOW)
            self.side = 0
            self.symbol = view.symbols[0]

        def on_bar(self, view: Any, portfolio: Any) -> Any:
            price = view.close()
            return decide(self, self.fast.update(price) - self.slow.update(price), portfolio)

    class ObviousWindow(Strategy):
        """SMA 10/30 crossover: both averages from the last 30 closes at every bar."""

        name = "obvious_window"

        def on_init(self, view: Any) -> None:
            self.side = 0
            self.symbol = view.symbols[0]

        def on_bar(self, view: Any, portfolio: Any) -> Any:
            closes = view.closes(RULES_SLOW)
            if len(closes) < RULES_SLOW:
                return NO_SIGNALS
            diff = closes[-RULES_FAST:].mean() - closes.mean()
            return decide(self, float(diff), portfolio)

    class ObviousSma(Strategy):
        """SMA 10/30 crossover: both averages from the view at every bar (``view.sma``)."""

        name = "obvious_sma"

        def on_init(self, view: Any) -> None:
            self.side = 0
            self.symbol = view.symbols[0]

        def on_bar(self, view: Any, portfolio: Any) -> Any:
            return decide(self, view.sma(RULES_FAST) - view.sma(RULES_SLOW), portfolio)

    return {"streaming": ObviousStreaming, "window": ObviousWindow, "sma": ObviousSma}


def numpy_floor(bars: Bars) -> float:
    """Seconds of the obvious-style strategy's own numpy work, without any engine.

    The window rows average the last 30 closes and the last 10 of them with numpy at every
    bar; this does exactly that over the same bars and nothing else, so ``peer / floor`` is
    the highest ratio any engine could reach against the peer with that strategy code.
    """
    closes = np.ascontiguousarray(bars.close, dtype=np.float64)
    started = time.perf_counter()
    for end in range(RULES_SLOW, len(closes) + 1):
        window = closes[end - RULES_SLOW : end]
        window[-RULES_FAST:].mean() - window.mean()
    return time.perf_counter() - started


def in_process(
    bars: Bars, strategy_factory: Callable[[], Any], repeat: int
) -> tuple[list[float], list[Trade], float]:
    """Seconds of ``repeat`` runs of ``run_on_bars``, the trades and lowest equity of the last."""
    from tradeloop.core.bar import BarArrays
    from tradeloop.core.instrument import Instrument
    from tradeloop.engine.config import RunConfig
    from tradeloop.engine.runner import run_on_bars

    arrays = BarArrays(
        SYMBOL, timeframe_of(bars), bars.ts, bars.open, bars.high, bars.low, bars.close,
        bars.volume,
    )  # fmt: skip
    instruments = {SYMBOL: Instrument(SYMBOL, tick_size=bars.tick, maker_fee=FEE, taker_fee=FEE)}
    trades: list[Trade] = []
    lowest = BALANCE

    def once() -> float:
        nonlocal trades, lowest
        strategy = strategy_factory()
        started = time.perf_counter()
        result = run_on_bars(
            strategy, {SYMBOL: arrays}, RunConfig(balance=BALANCE, fee=FEE), instruments=instruments
        )
        elapsed = time.perf_counter() - started
        trades = [(t.entry_ts, t.exit_ts) for t in result.trades]
        lowest = float(np.min(result.equity)) if len(result.equity) else BALANCE
        return elapsed

    return _median_of(repeat, once), trades, lowest


# --------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    """Run every row and print the markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="median of K for tradeloop rows")
    parser.add_argument("--peer-repeat", type=int, default=3, help="median of K for peers")
    parser.add_argument("--peers", default="backtesting,backtrader,vectorbt")
    parser.add_argument("--peer-bars", type=int, default=100_000, help="bars for backtrader")
    parser.add_argument("--obvious-bars", type=int, default=200_000, help="view.closes(n) row")
    parser.add_argument("--data", type=Path, default=None)
    args = parser.parse_args(argv)

    load_start = _load()
    bars = build_series(load_source(resolve_data(args.data)), args.bars)
    rules = Rules(RULES_FAST, RULES_SLOW, FEE, BALANCE, bars.tick)
    rows: list[Row] = []
    from tradeloop.strategy.examples.sma_cross import SmaCross

    with tempfile.TemporaryDirectory(prefix="tl-speed-") as tmp:
        work = Path(tmp)
        data = work / f"{FILE_STEM}-{timeframe_of(bars)}.parquet"
        write_parquet(bars, data)
        warm_up(bars, work)

        # in process first: the reference trades for every comparison
        print("tradeloop in process ...", file=sys.stderr, flush=True)
        plain_t, plain_trades, lowest = in_process(
            bars, lambda: SmaCross(fast=RULES_FAST, slow=RULES_SLOW), args.repeat
        )
        plain_cpu = _take_cpu()
        stops_t, stops_trades, _ = in_process(
            bars, lambda: SmaCross(fast=RULES_FAST, slow=RULES_SLOW, **STOPS), args.repeat
        )
        stops_cpu = _take_cpu()

        print("tradeloop CLI ...", file=sys.stderr, flush=True)
        # As a user runs it: no --out, the run goes to the run store (work/output/runs/...)
        # and output/latest points at it. The first run on the file checks the data and
        # remembers the clean verdict (output/.data-gate); it is timed on its own.
        store = work / "output" / "latest"
        before = _cpu_children()
        first_run = time_process(cli_command() + cli_args(data, None), work)
        first_cpu = _cpu_children() - before
        cli_plain = _median_of(
            args.repeat, lambda: time_process(cli_command() + cli_args(data, None), work)
        )
        cli_plain_cpu = _take_cpu()
        cli_plain_trades = read_cli_trades(store / "trades.csv")
        stop_params = [a for k, v in STOPS.items() for a in ("--param", f"{k}={v}")]
        cli_stops = _median_of(
            args.repeat,
            lambda: time_process(cli_command() + cli_args(data, None) + stop_params, work),
        )
        cli_stops_cpu = _take_cpu()
        cli_stops_trades = read_cli_trades(store / "trades.csv")
        rows += [
            Row("tradeloop", "CLI, whole process", args.bars, cli_plain,
                _same(plain_trades, cli_plain_trades) + " vs in process",
                [f"first run on the file (data gate checks it): {first_run:.2f} s, CPU "
                 f"{first_cpu:.2f} s"], cpu=cli_plain_cpu),
            Row("tradeloop", "CLI, whole process, SL/TP/trailing", args.bars, cli_stops,
                _same(stops_trades, cli_stops_trades) + " vs in process", cpu=cli_stops_cpu),
            Row("tradeloop", "in process, SmaCross", args.bars, plain_t, "reference",
                cpu=plain_cpu),
            Row("tradeloop", "in process, SmaCross + SL/TP/trailing", args.bars, stops_t,
                f"{len(stops_trades):,} trades",
                [f"{statistics.median(stops_t) / statistics.median(plain_t):.2f}x the plain run "
                 f"(CPU {statistics.median(stops_cpu) / statistics.median(plain_cpu):.2f}x)"],
                cpu=stops_cpu),
        ]  # fmt: skip

        print("obvious-style strategies ...", file=sys.stderr, flush=True)
        obvious = obvious_strategies(rules.tie_eps)
        stream_t, stream_trades, _ = in_process(bars, obvious["streaming"], args.repeat)
        stream_row = Row(
            "tradeloop", "in process, obvious style: StreamingSMA per bar", args.bars,
            stream_t, _same(plain_trades, stream_trades) + " vs SmaCross", cpu=_take_cpu(),
        )  # fmt: skip
        sma_t, sma_trades, _ = in_process(bars, obvious["sma"], args.repeat)
        sma_row = Row(
            "tradeloop", "in process, obvious style: view.sma(10) - view.sma(30) per bar",
            args.bars, sma_t, _same(plain_trades, sma_trades) + " vs SmaCross", cpu=_take_cpu(),
        )  # fmt: skip
        small = bars.head(args.obvious_bars)
        _, small_plain, small_low = in_process(
            small, lambda: SmaCross(fast=RULES_FAST, slow=RULES_SLOW), 1
        )
        _take_cpu()
        window_t, window_trades, _ = in_process(small, obvious["window"], args.repeat)
        window_row = Row(
            "tradeloop", "in process, obvious style: view.closes(30) + numpy mean", len(small),
            window_t, _same(small_plain, window_trades) + " vs SmaCross", cpu=_take_cpu(),
        )  # fmt: skip
        obvious_rows = [stream_row, sma_row, window_row]
        rows += obvious_rows
        if "backtesting" in args.peers.split(",") and is_available(PEERS["backtesting"][0]):
            # backtesting.py's equivalent: the same strategy written the obvious way there
            # (self.data.Close[-30:] means in next()), on the same bars as the window row
            print("backtesting.py, obvious style ...", file=sys.stderr, flush=True)
            import backtesting.lib  # noqa: F401  # imported outside the timed runs

            small_rules = replace(rules, min_equity=small_low, max_price=float(np.max(small.high)))
            timed = _cpu_of(lambda: run_backtesting(small, small_rules, obvious=True))
            runs = [timed() for _ in range(max(1, args.peer_repeat))]
            bt_obvious = Row(
                runs[0].label, "in process, obvious style: Close[-30:] means in next()",
                len(small), [r.run_s for r in runs], _same(small_plain, runs[-1].trades),
                [*runs[-1].notes[:1]], cpu=_take_cpu(),
            )  # fmt: skip
            for row in obvious_rows:
                row.notes.append(
                    f"{row.rate / bt_obvious.rate:.2f}x backtesting.py's obvious style "
                    f"(CPU {row.cpu_rate / bt_obvious.cpu_rate:.2f}x)"
                )
            floor = statistics.median(_median_of(args.repeat, lambda: numpy_floor(small)))
            _take_cpu()
            bt_obvious.notes.append(
                f"the strategy's two numpy means alone, no engine: {floor:.2f} s, so this "
                f"strategy code can be at most {bt_obvious.seconds / floor:.1f}x this row "
                "in any engine"
            )
            rows.append(bt_obvious)

        names = [p for p in args.peers.split(",") if p]
        for name in sorted(names, key=lambda p: p != "backtesting"):  # the reference first
            module, runner = PEERS[name]
            if not is_available(module):
                print(f"{name}: not installed, skipped", file=sys.stderr)
                continue
            print(f"{name} ...", file=sys.stderr, flush=True)
            peer_bars = bars if name != "backtrader" else bars.head(args.peer_bars)
            ours, low = plain_trades, lowest
            if len(peer_bars) < len(bars):
                _, ours, low = in_process(
                    peer_bars, lambda: SmaCross(fast=RULES_FAST, slow=RULES_SLOW), 1
                )
                _take_cpu()
            peer_rules = replace(rules, min_equity=low, max_price=float(np.max(peer_bars.high)))
            timed = _cpu_of(lambda: runner(peer_bars, peer_rules))  # noqa: B023
            runs = [timed() for _ in range(max(1, args.peer_repeat))]
            rows.append(
                Row(runs[0].label, "in process", len(peer_bars), [r.run_s for r in runs],
                    _same(ours, runs[-1].trades),
                    [*runs[-1].notes[:1], "CPU includes its data frame (and vectorbt's JIT "
                     "warm-up on 2,000 bars)"], cpu=_take_cpu())
            )  # fmt: skip

    load_end = _load()
    reference = next(
        (r for r in rows if r.engine.startswith("backtesting") and r.mode == "in process"), None
    )
    print(
        f"\n{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"load average {load_start} at the start, {load_end} at the end; every row the "
        f"median of {args.repeat} (peers {args.peer_repeat})\n"
    )
    print("| engine | timed | bars | s (median) | bars/s | vs backtesting.py | CPU s (median) "
          "| vs backtesting.py, CPU | trades identical | notes |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---:|---:|---|---|")
    for row in rows:
        ratio = f"{row.rate / reference.rate:.2f}x" if reference is not None else "-"
        cpu_ratio = (
            f"{row.cpu_rate / reference.cpu_rate:.2f}x"
            if reference is not None and row.cpu and reference.cpu
            else "-"
        )
        cpu_s = f"{statistics.median(row.cpu):.2f}" if row.cpu else "-"
        runs = ", ".join(f"{t:.2f}" for t in row.times)
        notes = "; ".join([f"runs {runs} s", *row.notes])
        print(
            f"| {row.engine} | {row.mode} | {row.bars:,} | {row.seconds:.2f} | {row.rate:,.0f} "
            f"| {ratio} | {cpu_s} | {cpu_ratio} | {row.trades} | {notes} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
