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

With ``--attribute`` three more cases run in the same rounds: the stops run with the exit
scan at each entry's fill (the scan of a span the broker's span test cannot clear, and a
carried position's span test; an entry's own span test is inlined in the broker) done twice
(the second result kept: the same trades), whose added time is a lower bound of the scan's
cost (the repeated call finds its code and the bars it reads warm); the stops run with the
scan replaced by a stub that finds no exit (timing only: the few trades a stop or target
ended end at the next cross instead), which takes the scan's whole cost away; and the stops
run whose orders carry no exits (the levels still resolved per entry; timing only: the
plain run's trades). A second table gives the scan's cost both ways, per entry and as a
share of the stops' extra time; a third builds the stops run up part by part.

(Until 2026-12-06 ``SmaCross`` built each entry's ``Signal`` at the bar, its stop and target
priced around the bar's close, and ``--attribute`` measured that too; its entries now give
the levels as distances and are built once, like the plain ones.)

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
from contextlib import contextmanager
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
DOUBLED_CASE = "stops, each fill's exit scan run twice"
STUB_CASE = "stops, exit scan stubbed (no exit found; timing only)"
DETACHED_CASE = "stops, levels resolved but not attached to the order (timing only)"

#: a case: the strategy's parameters and what is changed: None, ``scan`` (the scan done
#: twice, :func:`doubled`), ``scan-stub`` (:func:`scan_stubbed`) or ``detached``
#: (:func:`detached`)
Case = tuple[dict[str, float], str | None]


@contextmanager
def variant(part: str | None) -> Iterator[None]:
    """Within the block, ``part`` applies (see :data:`Case`)."""
    if part is None:
        yield
    elif part == "scan":
        with doubled():
            yield
    elif part == "scan-stub":
        with scan_stubbed():
            yield
    elif part == "detached":
        with detached():
            yield
    else:
        raise ValueError(f"unknown part {part!r}")


#: the broker's exit scans: a carried position's span test (an entry's is inlined in the
#: broker, so it stays), and at an entry's fill the windowed scan and the scan without
#: windows, each with a stub that finds no exit (the anchor as it was)
_SCANS: dict[str, Callable[..., Any]] = {
    "span_clear": lambda *args: (True, args[6]),
    "range_exit_bar": lambda *args: (args[12], args[6]),
    "next_exit_bar_of": lambda *args: (args[6], args[0][6]),
}


@contextmanager
def _patched(replace: Callable[[str, Callable[..., Any]], Callable[..., Any]]) -> Iterator[None]:
    """Within the block, each of :data:`_SCANS` in the broker's module is ``replace(name,
    original)``."""
    import tradeloop.execution.simulated as owner

    originals = {name: getattr(owner, name) for name in _SCANS}
    try:
        for name, original in originals.items():
            setattr(owner, name, replace(name, original))
        yield
    finally:
        for name, original in originals.items():
            setattr(owner, name, original)


@contextmanager
def scan_stubbed() -> Iterator[None]:
    """Within the block, the broker's exit scans (a carried position's span test, and the
    scan at an entry's fill of a span the inlined span test cannot clear) find no exit, the
    anchor unmoved: the scans' cost taken out of the run; the trades a level ended differ."""
    with _patched(lambda name, _: _SCANS[name]):
        yield


@contextmanager
def detached() -> Iterator[None]:
    """Within the block, an order gets no ``Bracket``: the entry's levels are still resolved
    (in ``order_from_signal``) but the broker sees a plain entry (no check, no watched set, no
    scan, no levels on the position). Timing only: the trades are the plain run's."""
    import tradeloop.core.orders as owner

    original = owner._new_tuple  # order_from_signal builds its Bracket with it

    def none(*args: Any) -> None:
        return None

    owner._new_tuple = none  # type: ignore[assignment]
    try:
        yield
    finally:
        owner._new_tuple = original


@contextmanager
def doubled() -> Iterator[None]:
    """Within the block, the exit scan at an entry's fill (each of :data:`_SCANS`) runs twice
    per call, the second result returned: the same trades, the scan's cost paid twice."""

    def twice(_: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            original(*args)
            return original(*args)

        return call

    with _patched(twice):
        yield


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
    """The second table of ``--attribute``: the exit scan's cost inside the stops run, as
    the time a second scan adds (a lower bound) and as the time the stub takes away."""

    def med(name: str, k: int = 0) -> float:
        return statistics.median(r[k] for r in runs[name])

    entries = runs[STOPS_CASE][0][2]
    extra = med(STOPS_CASE) - med(PLAIN_CASE)
    lines = [
        f"The stops run takes {extra * 1000:.0f} ms more than the plain one "
        f"({extra / entries * 1e6:.1f} us an entry, {entries:,} entries).\n",
        "| the exit scan at the fill | wall ms | CPU ms | per entry, wall us "
        "| share of the stops' extra time | trades |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for label, wall, cpu, trades in (
        (
            "done twice: the time the second adds (lower bound)",
            med(DOUBLED_CASE) - med(STOPS_CASE),
            med(DOUBLED_CASE, 1) - med(STOPS_CASE, 1),
            "same" if runs[DOUBLED_CASE][0][2:] == runs[STOPS_CASE][0][2:] else "differ",
        ),
        (
            "stubbed: the time taken away",
            med(STOPS_CASE) - med(STUB_CASE),
            med(STOPS_CASE, 1) - med(STUB_CASE, 1),
            "same" if runs[STUB_CASE][0][2:] == runs[STOPS_CASE][0][2:] else "differ (timing only)",
        ),
    ):
        share = f"{wall / extra:.0%}" if extra > 0 else "-"
        lines.append(
            f"| {label} | {wall * 1000:.0f} | {cpu * 1000:.0f} | {wall / entries * 1e6:.2f} "
            f"| {share} | {trades} |"
        )
    lines.append(
        f"\nWithout the scan ({STUB_CASE}): {med(STUB_CASE) / med(PLAIN_CASE):.2f}x the plain "
        f"run (CPU {med(STUB_CASE, 1) / med(PLAIN_CASE, 1):.2f}x)."
    )
    lines += ["", "| the stops run, built up part by part | wall, vs plain | CPU, vs plain |"]
    lines.append("|---|---:|---:|")
    for label, name in (
        ("plain", PLAIN_CASE),
        ("+ the levels resolved per entry (not attached to the order)", DETACHED_CASE),
        ("+ the broker's exits bookkeeping (the scan stubbed)", STUB_CASE),
        ("+ the exit scan: the stops run", STOPS_CASE),
    ):
        lines.append(
            f"| {label} | {med(name) / med(PLAIN_CASE):.2f}x "
            f"| {med(name, 1) / med(PLAIN_CASE, 1):.2f}x |"
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
        help="also run the stops case with the exit scan done twice, and with it stubbed",
    )
    args = parser.parse_args(argv)

    load_start = _load()
    bars = build_series(load_source(resolve_data(args.data)), args.bars)
    run = make_runner(bars)
    cases: dict[str, Case] = {PLAIN_CASE: ({}, None), STOPS_CASE: (STOPS, None)}
    if args.attribute:
        cases.update(
            {
                DOUBLED_CASE: (STOPS, "scan"),
                STUB_CASE: (STOPS, "scan-stub"),
                DETACHED_CASE: (STOPS, "detached"),
            }
        )
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
