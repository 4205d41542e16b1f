"""Stops against the plain fast path: the SMA strategy with and without SL/TP/trailing exits.

Issue 15's target: ``SmaCross`` with a 1% stop, a 2% target and a 1% trailing stop on every
trade within 1.2x of the plain ``SmaCross`` (precomputed crosses, sparse loop), in process on
the same 1M bars. The data and the rules are those of ``backtest_throughput.py`` (the real
BTC/USDT 1-minute series repeated to ``--bars`` bars; SMA 10/30 long-only, all-in, 0.1% fee,
fills at the next open).

The two runs alternate (plain, stops, plain, stops, ...) in one process after one warm-up run
of each, so a busy machine disturbs both alike; the table gives the median of ``--repeat``
runs, wall clock and CPU seconds (this process's, which a shared machine disturbs far less),
the stops / plain ratio of the medians, every run's time and the trade count (the same in
every run of a case, else the script fails). The load average is printed before and after.
Timings are printed, never asserted; nothing is written anywhere.

With ``--attribute`` more cases run in the same rounds. Two do one part of every entry of
the stops run twice (the first result thrown away): building the entry's ``Signal``
(``SmaCross._signal``), and the exit scan at the entry's fill (the broker's
``range_exit_bar``); the time each adds is a lower bound of that part's cost (the repeated
call finds its code and the bars it reads warm). Four take a part away instead, which
counts the part's whole cost inside the run:

- a 1% trailing stop alone, with each entry's ``Signal`` built at the bar (as the stops run
  builds it) and built once per direction before the run (a trailing stop's signal does not
  depend on the bar's price): the trades are the same (the script fails if not), so the
  difference is the per-entry ``Signal``;
- the stops run with the exit scan replaced by a stub that finds no exit (timing only: the
  few trades a stop or target ended end at the next cross instead);
- the trailing stop with the signal built once and the scan stubbed: what is left of the
  stops' cost without both.

A second and a third table give each part's cost inside the run, per entry and as a share
of the stops' extra time.

Usage::

    .venv/bin/python bench/stops_overhead.py [--bars N] [--repeat K] [--data FILE] [--attribute]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

sys.dont_write_bytecode = True  # importing the helper must not leave a cache folder in bench/

from backtest_throughput import (  # noqa: E402
    RULES_FAST,
    RULES_SLOW,
    SYMBOL,
    build_series,
    in_process_inputs,
    load_source,
    resolve_data,
)

#: the stops of speed_table.py's "SmaCross + SL/TP/trailing" row
STOPS = {"stop_loss": 0.01, "take_profit": 0.02, "trailing_stop": 0.01}
PLAIN_CASE = "SmaCross"
STOPS_CASE = "SmaCross + SL 1% / TP 2% / trailing 1%"
#: --attribute: case name -> the part of every entry done twice
DOUBLED = {
    "stops, each entry's Signal built twice": "signal",
    "stops, each fill's exit scan run twice": "scan",
}
#: --attribute: a 1% trailing stop alone (its entry signal does not depend on the bar)
TRAIL = {"trailing_stop": 0.01}
TRAIL_CASE = "trailing 1% only"
TRAIL_ONCE_CASE = "trailing 1% only, entry Signal built once"
STUB_CASE = "stops, exit scan stubbed (no exit found; timing only)"
BOTH_CASE = "trailing 1% only, Signal built once, scan stubbed (timing only)"
#: --attribute: case name -> (parameters, the parts taken away, '+'-joined)
REMOVED: dict[str, tuple[dict[str, float], str]] = {
    TRAIL_CASE: (TRAIL, ""),
    TRAIL_ONCE_CASE: (TRAIL, "signal-once"),
    STUB_CASE: (STOPS, "scan-stub"),
    BOTH_CASE: (TRAIL, "signal-once+scan-stub"),
}

#: a case: the strategy's parameters and what is changed, '+'-joined (None or "": nothing):
#: ``signal``/``scan`` done twice, ``signal-once``, ``scan-stub`` (see ``variant``)
Case = tuple[dict[str, float], str | None]


@contextmanager
def variant(parts: str | None) -> Iterator[None]:
    """Within the block, each of the '+'-joined ``parts`` applies: ``signal`` or ``scan``
    (see :func:`doubled`), ``signal-once`` (:func:`signal_once`), ``scan-stub``
    (:func:`scan_stubbed`)."""
    with ExitStack() as stack:
        for part in (parts or "").split("+"):
            if part in ("signal", "scan"):
                stack.enter_context(doubled(part))
            elif part == "signal-once":
                stack.enter_context(signal_once())
            elif part == "scan-stub":
                stack.enter_context(scan_stubbed())
            elif part:
                raise ValueError(f"unknown part {part!r}")
        yield


@contextmanager
def signal_once() -> Iterator[None]:
    """Within the block, ``SmaCross`` builds its entry signals once per symbol and direction
    in ``on_init`` (as it does without exits), for a trailing stop alone only: its signal
    does not depend on the bar's price, so the trades are the same."""
    from tradeloop.strategy.examples.sma_cross import SmaCross

    original = SmaCross.on_init

    def on_init(self: SmaCross, view: Any) -> None:
        if self.stop_loss or self.take_profit:
            raise ValueError("signal-once: the stop and target depend on the bar's price")
        original(self, view)
        for symbol in view.symbols:
            for direction in (1, -1):
                self._fixed[(symbol, direction)] = (self._signal(symbol, direction, 0.0),)

    SmaCross.on_init = on_init  # type: ignore[method-assign]
    try:
        yield
    finally:
        SmaCross.on_init = original  # type: ignore[method-assign]


@contextmanager
def scan_stubbed() -> Iterator[None]:
    """Within the block, the broker's exit scan at an entry's fill finds no exit (the anchor
    unmoved): the scan's cost taken out of the run; the trades a level ended differ."""
    import tradeloop.execution.simulated as owner

    original = owner.range_exit_bar

    def stub(*args: Any) -> tuple[int, float | None]:
        return args[12], args[6]  # (the scan's end, the anchor as it was)

    owner.range_exit_bar = stub  # type: ignore[assignment]
    try:
        yield
    finally:
        owner.range_exit_bar = original


@contextmanager
def doubled(part: str | None) -> Iterator[None]:
    """Within the block, ``part`` (``signal`` or ``scan``, see ``DOUBLED``) runs twice per
    call, the second result returned: the same trades, the part's cost paid twice."""
    if part is None:
        yield
        return
    owner: Any
    if part == "signal":
        from tradeloop.strategy.examples.sma_cross import SmaCross

        owner, name = SmaCross, "_signal"
    else:
        import tradeloop.execution.simulated as owner

        name = "range_exit_bar"
    original = getattr(owner, name)

    def twice(*args: Any) -> Any:
        original(*args)
        return original(*args)

    setattr(owner, name, twice)
    try:
        yield
    finally:
        setattr(owner, name, original)


def _cpu_now() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f} (5 min {five:.2f})"


#: a timed run: (wall s, CPU s, trades, the trades' digest)
Run = tuple[float, float, int, int]


def make_runner(bars: Any) -> Callable[[dict[str, float]], Run]:
    """A function running ``SmaCross(**params)`` in process on ``bars``: (wall s, CPU s,
    trades, a digest of the trades' times and prices), the run itself timed
    (``run_on_bars``, result included; the digest after the clock stops)."""
    from tradeloop.engine.runner import run_on_bars
    from tradeloop.strategy.examples.sma_cross import SmaCross

    arrays, instruments, config = in_process_inputs(bars)

    def run(params: dict[str, float]) -> Run:
        strategy = SmaCross(fast=RULES_FAST, slow=RULES_SLOW, **params)
        cpu, wall = _cpu_now(), time.perf_counter()
        result = run_on_bars(strategy, {SYMBOL: arrays}, config, instruments=instruments)
        wall, cpu = time.perf_counter() - wall, _cpu_now() - cpu
        digest = hash(
            tuple((t.entry_ts, t.entry_price, t.exit_ts, t.exit_price) for t in result.trades)
        )
        return wall, cpu, len(result.trades), digest

    return run


def measure(
    run: Callable[[dict[str, float]], Run],
    cases: dict[str, Case],
    repeat: int,
) -> dict[str, list[Run]]:
    """One warm-up run per case, then ``repeat`` alternating rounds: every case's runs."""
    for params, part in cases.values():
        with variant(part):
            run(params)
    out: dict[str, list[Run]] = {name: [] for name in cases}
    for _ in range(max(1, repeat)):
        for name, (params, part) in cases.items():
            with variant(part):
                out[name].append(run(params))
    for name, runs in out.items():
        if len({(trades, digest) for _, _, trades, digest in runs}) != 1:
            raise SystemExit(f"{name}: the trades changed between runs")
    return out


def table(runs: dict[str, list[Run]], bars: int) -> list[str]:
    """The markdown table: per case the medians, the ratio to the first case, every run."""
    lines = [
        "| case | bars | wall s (median) | CPU s (median) | vs plain, wall | vs plain, CPU "
        "| trades | runs, wall s | runs, CPU s |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    base_wall = base_cpu = 0.0
    for k, (name, got) in enumerate(runs.items()):
        wall = statistics.median(r[0] for r in got)
        cpu = statistics.median(r[1] for r in got)
        if k == 0:
            base_wall, base_cpu = wall, cpu
        lines.append(
            f"| {name} | {bars:,} | {wall:.3f} | {cpu:.3f} | {wall / base_wall:.2f}x "
            f"| {cpu / base_cpu:.2f}x | {got[0][2]:,} "
            f"| {', '.join(f'{r[0]:.3f}' for r in got)} "
            f"| {', '.join(f'{r[1]:.3f}' for r in got)} |"
        )
    return lines


def attribution(runs: dict[str, list[Run]]) -> list[str]:
    """The second table of ``--attribute``: each doubled part's cost inside the stops run."""
    stops = runs[STOPS_CASE]
    entries = stops[0][2]
    base_wall = statistics.median(r[0] for r in stops)
    base_cpu = statistics.median(r[1] for r in stops)
    extra = base_wall - statistics.median(r[0] for r in runs[PLAIN_CASE])
    lines = [
        f"The stops run takes {extra * 1000:.0f} ms more than the plain one "
        f"({extra / entries * 1e6:.1f} us an entry, {entries:,} entries).\n",
        "| part done twice | added to the stops run, wall ms | CPU ms | per entry, wall us "
        "| share of the stops' extra time |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in DOUBLED:
        wall = statistics.median(r[0] for r in runs[name]) - base_wall
        cpu = statistics.median(r[1] for r in runs[name]) - base_cpu
        share = f"{wall / extra:.0%}" if extra > 0 else "-"
        lines.append(
            f"| {name} | {wall * 1000:.0f} | {cpu * 1000:.0f} "
            f"| {wall / entries * 1e6:.2f} | {share} |"
        )
    lines += ["", *removals(runs, extra, entries)]
    return lines


def removals(runs: dict[str, list[Run]], extra: float, entries: int) -> list[str]:
    """The third table of ``--attribute``: each part taken away, its cost inside the run
    (the case with the part against the case without it), and what is left without both."""

    def med(name: str, k: int = 0) -> float:
        return statistics.median(r[k] for r in runs[name])

    def same(a: str, b: str) -> str:
        return "same" if runs[a][0][2:] == runs[b][0][2:] else "differ (timing only)"

    if same(TRAIL_CASE, TRAIL_ONCE_CASE) != "same":
        raise SystemExit(f"{TRAIL_ONCE_CASE}: the trades differ from {TRAIL_CASE}'s")

    lines = [
        "| part taken away | with it | without it | cost, wall ms | CPU ms | per entry, wall us "
        "| share of the stops' extra time | trades |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    for part, with_it, without in (
        ("each entry's Signal", TRAIL_CASE, TRAIL_ONCE_CASE),
        ("the exit scan at the fill", STOPS_CASE, STUB_CASE),
    ):
        wall, cpu = med(with_it) - med(without), med(with_it, 1) - med(without, 1)
        share = f"{wall / extra:.0%}" if extra > 0 else "-"
        lines.append(
            f"| {part} | {with_it} | {without} | {wall * 1000:.0f} | {cpu * 1000:.0f} "
            f"| {wall / entries * 1e6:.2f} | {share} | {same(with_it, without)} |"
        )
    lines.append(
        f"\nWithout both ({BOTH_CASE}): {med(BOTH_CASE) / med(PLAIN_CASE):.2f}x the plain run "
        f"(CPU {med(BOTH_CASE, 1) / med(PLAIN_CASE, 1):.2f}x); the trailing stop alone "
        f"{med(TRAIL_CASE) / med(PLAIN_CASE):.2f}x (CPU "
        f"{med(TRAIL_CASE, 1) / med(PLAIN_CASE, 1):.2f}x)."
    )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Run the cases and print the table(s)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bars", type=int, default=1_000_000, help="bars (default 1,000,000)")
    parser.add_argument("--repeat", type=int, default=3, help="alternating rounds (median of K)")
    parser.add_argument("--data", type=Path, default=None, help="OHLCV source file")
    parser.add_argument(
        "--attribute",
        action="store_true",
        help="also run the stops case with each entry's Signal, then its exit scan, done "
        "twice, and cases with each taken away",
    )
    args = parser.parse_args(argv)

    load_start = _load()
    bars = build_series(load_source(resolve_data(args.data)), args.bars)
    run = make_runner(bars)
    cases: dict[str, Case] = {PLAIN_CASE: ({}, None), STOPS_CASE: (STOPS, None)}
    if args.attribute:
        cases.update({name: (STOPS, part) for name, part in DOUBLED.items()})
        cases.update(REMOVED)
    runs = measure(run, cases, args.repeat)
    load_end = _load()
    print(
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"load average {load_start} at the start, {load_end} at the end; "
        f"median of {max(1, args.repeat)} alternating rounds after one warm-up run each\n"
    )
    print("\n".join(table(runs, len(bars.close))))
    if args.attribute:
        print()
        print("\n".join(attribution(runs)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
