"""Backtest throughput: bars/second of an SMA(10/30) crossover on ~1M 1-minute bars.

Measures tradeloop twice - the whole ``tradeloop backtest`` process (interpreter start,
imports, load, run, write trades/equity/summary/report) and an in-process ``run_on_bars`` - and,
in the same run, the peers that are importable (backtrader, backtesting.py, vectorbt) on the
same bars with the same rules (see ``bench/_peers.py``). Every peer's trades (entry and exit
times) are compared with tradeloop's on the same bars. A second table splits tradeloop's
whole-process time into phases.

The data are the real Binance BTC/USDT 1-minute series repeated end to end: each copy is
shifted in time to follow the previous one and its prices are scaled (and rounded back to the
tick) so that its first open equals the previous copy's last close.

Nothing is written into the repository: the data file and the CLI outputs live in a temporary
folder; ``--json PATH`` writes the results to ``PATH``.

Usage::

    .venv/bin/python bench/backtest_throughput.py [--bars N] [--peers a,b] [--peer-bars N]
                                                  [--repeat K] [--peer-repeat K]
                                                  [--data FILE] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

sys.dont_write_bytecode = True  # importing the helper must not leave a cache folder in bench/

from _peers import (  # noqa: E402
    PEERS,
    Bars,
    Match,
    PeerRun,
    Rules,
    Trade,
    is_available,
    match_trades,
)

#: The shared data folder, next to the repository (overridden by TRADELOOP_SHARED_DATA).
DEFAULT_SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SOURCE = Path("crypto_1m") / "binance_spot_2025" / "BTC_USDT-1m.feather"
SYMBOL = "BTC/USDT"
FILE_STEM = "BTC_USDT"  # the CLI infers the symbol from the file name
SLOW_PEERS = frozenset({"backtrader"})  # peers --peer-bars applies to
RULES_FAST, RULES_SLOW, FEE, BALANCE = 10, 30, 0.001, 10_000.0

_TIMESTAMP_NAMES = ("date", "timestamp", "datetime", "time", "open_time", "ts")

# Run in a fresh interpreter: imports the CLI, wraps the functions the CLI goes through with
# timers, runs ``tradeloop backtest`` (arguments as JSON in argv[2]) through the CLI's own
# ``main`` and writes the timings as JSON to the file named by TL_BENCH_PHASES_OUT. Wrappers are
# skipped for names that do not exist (the API may move).
_PHASES_CHILD = r"""
import json, os, sys, time
t0 = time.perf_counter()
from tradeloop.cli.app import main
import tradeloop.engine.kernel as kernel
import tradeloop.engine.output as output
import tradeloop.engine.runner as runner
times = {"imports": time.perf_counter() - t0}

def timed(owner, name, key):
    fn = getattr(owner, name, None)
    if fn is None:
        return
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            times[key] = times.get(key, 0.0) + time.perf_counter() - start
    setattr(owner, name, wrapper)

timed(runner, "run_backtest", "run_backtest")
timed(runner, "load_data", "load_data")
timed(runner, "run_on_bars", "run_on_bars")
timed(kernel.BacktestEngine, "run", "engine_run")
timed(kernel.BacktestEngine, "_finish", "finish")
timed(output, "write_outputs", "write_outputs")
timed(output, "write_report", "write_report")
sys.argv = ["tradeloop", *json.loads(sys.argv[2])]
start = time.perf_counter()
try:
    main()
except SystemExit as exc:
    if exc.code not in (0, None):
        raise
times["main"] = time.perf_counter() - start
with open(os.environ["TL_BENCH_PHASES_OUT"], "w") as fh:
    json.dump(times, fh)
"""


# --------------------------------------------------------------------------- data


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def resolve_data(explicit: Path | None) -> Path:
    """Return the source file: ``--data``, else the shared data folder's BTC/USDT 1m file."""
    if explicit is not None:
        return explicit
    shared = os.environ.get("TRADELOOP_SHARED_DATA")
    return (Path(shared) if shared else DEFAULT_SHARED) / SOURCE


def _tick_decimals(*columns: np.ndarray, max_decimals: int = 8) -> int:
    """Smallest number of decimals that represents every price (``max_decimals`` at most)."""
    prices = np.concatenate([np.asarray(c, dtype=np.float64) for c in columns])
    prices = prices[np.isfinite(prices)]
    for decimals in range(max_decimals + 1):
        scaled = prices * 10.0**decimals
        # a decimal price read from a file is within an ulp or two of a whole number of ticks
        if np.all(np.abs(scaled - np.round(scaled)) <= 1e-12 * np.maximum(1.0, np.abs(scaled))):
            return decimals
    return max_decimals


def load_source(path: Path) -> Bars:
    """Read an OHLCV Feather, Parquet or CSV file into :class:`Bars` (UTC ns, float64)."""
    suffix = "".join(path.suffixes).lower()
    if suffix.endswith((".feather", ".arrow", ".ipc", ".ftr")):
        frame = pa.ipc.open_file(path).read_all().to_pandas()
    elif suffix.endswith((".parquet", ".pq")):
        frame = pq.read_table(path).to_pandas()
    else:
        frame = pd.read_csv(path)
    lower = {str(c).lower(): c for c in frame.columns}
    ts_col = next((lower[n] for n in _TIMESTAMP_NAMES if n in lower), None)
    if ts_col is None:
        raise SystemExit(f"{path.name}: no timestamp column (looked for {_TIMESTAMP_NAMES})")
    raw = frame[ts_col]
    if pd.api.types.is_numeric_dtype(raw):
        unit = "ms" if raw.max() < 10**14 else "ns"
        stamps = pd.to_datetime(raw, unit=unit, utc=True)
    else:
        stamps = pd.to_datetime(raw, utc=True)
    ts = stamps.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[ns]")
    cols = {k: frame[lower[k]].to_numpy(np.float64) for k in ("open", "high", "low", "close")}
    volume = frame[lower["volume"]].to_numpy(np.float64)
    decimals = _tick_decimals(*cols.values())
    return Bars(
        ts.view(np.int64),
        cols["open"],
        cols["high"],
        cols["low"],
        cols["close"],
        volume,
        10.0**-decimals,
    )


def build_series(src: Bars, n_bars: int) -> Bars:
    """Repeat ``src`` end to end until it holds ``n_bars`` bars and return the first ``n_bars``.

    Copy ``k`` is shifted by ``k * (span + one bar)`` and its prices are scaled so that its
    first open equals copy ``k-1``'s last close, then rounded back to the source's tick.
    """
    if len(src) < 2:
        raise SystemExit("the source needs at least two bars")
    step = int(np.median(np.diff(src.ts)))
    shift = int(src.ts[-1] - src.ts[0]) + step
    decimals = max(0, round(-math.log10(src.tick)))
    copies = max(1, math.ceil(n_bars / len(src)))
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("ts", "o", "h", "lo", "c", "v")}
    last_close: float | None = None
    for k in range(copies):
        scale = 1.0 if last_close is None else last_close / float(src.open[0])
        o, h, lo, c = (
            np.round(col * scale, decimals) if scale != 1.0 else col.copy()
            for col in (src.open, src.high, src.low, src.close)
        )
        parts["ts"].append(src.ts + k * shift)
        parts["o"].append(o)
        parts["h"].append(h)
        parts["lo"].append(lo)
        parts["c"].append(c)
        parts["v"].append(src.volume)
        last_close = float(c[-1])
    ts, o, h, lo, c, v = (np.concatenate(parts[k])[:n_bars] for k in parts)
    return Bars(ts, o, h, lo, c, v, src.tick)


def write_parquet(bars: Bars, path: Path) -> None:
    """Write ``bars`` as an OHLCV Parquet file with a UTC ``date`` column."""
    table = pa.table(
        {
            "date": pa.array(bars.ts, type=pa.int64()).cast(pa.timestamp("ns", tz="UTC")),
            "open": bars.open,
            "high": bars.high,
            "low": bars.low,
            "close": bars.close,
            "volume": bars.volume,
        }
    )
    pq.write_table(table, path)


# --------------------------------------------------------------------------- tradeloop


def cli_command() -> list[str]:
    """The ``tradeloop`` console script of this interpreter, else ``python -c`` on its entry
    point."""
    script = Path(sys.executable).with_name("tradeloop")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from tradeloop.cli.app import run; run()"]


def cli_args(data: Path, out: Path | None) -> list[str]:
    """Arguments of the benchmarked ``tradeloop backtest`` command (``out`` None: no
    ``--out``, the run goes to the run store under the working folder's ``output``)."""
    return [
        "backtest", "--strategy", "sma_cross", "--data", str(data),
        "--param", f"fast={RULES_FAST}", "--param", f"slow={RULES_SLOW}",
        "--balance", f"{BALANCE:g}", "--fee", f"{FEE:g}",
        *(["--out", str(out)] if out is not None else []),
    ]  # fmt: skip


def best_of(repeat: int, fn: Callable[[], float]) -> tuple[float, list[float]]:
    """Call ``fn`` (which returns seconds) ``repeat`` times; return the best and all times."""
    times = [fn() for _ in range(max(1, repeat))]
    return min(times), times


def child_env(work: Path, **extra: str) -> dict[str, str]:
    """Environment of the timed subprocesses: a bytecode cache in ``work``, as in a normal install.

    Without a cache (e.g. with PYTHONDONTWRITEBYTECODE set) every run would recompile
    tradeloop's sources; with the default cache next to the sources the bench would write into
    the repository. Call :func:`warm_up` once before timing.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    env.update(extra)
    return env


def warm_up(bars: Bars, work: Path) -> None:
    """Run the CLI once on 2,000 bars (untimed) to fill the bytecode cache of :func:`child_env`."""
    folder = work / "warm-up"
    folder.mkdir()
    data = folder / f"{FILE_STEM}-{timeframe_of(bars)}.parquet"
    write_parquet(bars.head(2_000), data)
    time_process(cli_command() + cli_args(data, folder / "out"), work)


def time_process(cmd: Sequence[str], cwd: Path) -> float:
    """Wall seconds of one subprocess run in ``cwd``; stderr is shown if it fails."""
    env = child_env(cwd)
    started = time.perf_counter()
    proc = subprocess.run(
        cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} ... failed ({proc.returncode}):\n{proc.stderr}")
    return elapsed


def read_cli_trades(path: Path) -> list[Trade]:
    """Round trips from the CLI's trades.csv (exit None while open)."""
    frame = pd.read_csv(path, usecols=["entry_time", "exit_time"])
    entry = pd.to_datetime(frame["entry_time"], utc=True, format="ISO8601")
    exit_ = pd.to_datetime(frame["exit_time"], utc=True, format="ISO8601")
    out: list[Trade] = []
    for a, b in zip(entry, exit_, strict=True):
        out.append((int(a.value), None if pd.isna(b) else int(b.value)))
    return out


def run_phases(data: Path, work: Path) -> dict[str, float]:
    """Run the CLI once in a fresh interpreter with its phases timed (see ``_PHASES_CHILD``)."""
    out_json = work / "phases.json"
    env = child_env(work, TL_BENCH_PHASES_OUT=str(out_json))
    args = json.dumps(cli_args(data, work / "out-phases"))
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _PHASES_CHILD, "phases", args],
        cwd=work,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        _log(f"phase timing failed:\n{proc.stderr}")
        return {}
    return {**json.loads(out_json.read_text(encoding="utf-8")), "wall": wall}


def phase_rows(raw: dict[str, float], interpreter_s: float) -> list[tuple[str, float | None]]:
    """Turn the child's wrapper timings into exclusive phases (None: not measurable)."""

    def get(key: str) -> float | None:
        return raw.get(key)

    def minus(a: float | None, *rest: float | None) -> float | None:
        if a is None or any(r is None for r in rest):
            return None
        return a - sum(r for r in rest if r is not None)

    rows: list[tuple[str, float | None]] = [
        ("interpreter start", interpreter_s),
        ("imports (CLI, engine, output)", get("imports")),
        ("load data file", get("load_data")),
        (
            "strategy lookup, instruments",
            minus(get("run_backtest"), get("load_data"), get("run_on_bars")),
        ),
        ("market setup (align, engine init)", minus(get("run_on_bars"), get("engine_run"))),
        ("strategy init + bar loop", minus(get("engine_run"), get("finish"))),
        ("equity curve + metrics", get("finish")),
        ("write trades/equity/summary", minus(get("write_outputs"), get("write_report"))),
        ("write report.html", get("write_report")),
        (
            "CLI rest (args, table print)",
            minus(get("main"), get("run_backtest"), get("write_outputs")),
        ),
        (
            "interpreter exit, untimed rest",
            minus(get("wall"), interpreter_s, get("imports"), get("main")),
        ),
    ]
    return rows


@dataclass(slots=True)
class Row:
    """One line of the results table."""

    engine: str
    mode: str
    bars: int
    seconds: float
    trades: str
    notes: list[str] = field(default_factory=list)
    version: str = ""

    @property
    def bars_per_s(self) -> float:
        """Bars per second."""
        return self.bars / self.seconds if self.seconds > 0 else float("inf")


@dataclass(slots=True)
class OursRun:
    """In-process tradeloop timings plus what the peers are compared and sized against."""

    best_s: float
    times_s: list[float]
    trades: list[Trade]
    min_equity: float


def timeframe_of(bars: Bars) -> str:
    """The bars' timeframe from their most common spacing, e.g. ``1m`` or ``4h``."""
    minutes = max(1, int(np.median(np.diff(bars.ts[:10_000]))) // 60_000_000_000)
    if minutes % 1440 == 0:
        return f"{minutes // 1440}d"
    if minutes % 60 == 0:
        return f"{minutes // 60}h"
    return f"{minutes}m"


def in_process_inputs(bars: Bars) -> tuple[Any, dict[str, Any], Any]:
    """``run_on_bars``'s inputs for ``bars`` under the shared rules: the bar arrays, the
    instrument map and the run config (balance and fee)."""
    from tradeloop.core.bar import BarArrays
    from tradeloop.core.instrument import Instrument
    from tradeloop.engine.config import RunConfig

    arrays = BarArrays(
        SYMBOL, timeframe_of(bars), bars.ts, bars.open, bars.high, bars.low, bars.close,
        bars.volume,
    )  # fmt: skip
    instruments = {SYMBOL: Instrument(SYMBOL, tick_size=bars.tick, maker_fee=FEE, taker_fee=FEE)}
    return arrays, instruments, RunConfig(balance=BALANCE, fee=FEE)


def tradeloop_in_process(bars: Bars, repeat: int) -> OursRun:
    """Best-of-``repeat`` seconds of ``run_on_bars`` (strategy, kernel, metrics) and its trades."""
    from tradeloop.engine.runner import run_on_bars
    from tradeloop.strategy.examples.sma_cross import SmaCross

    arrays, instruments, config = in_process_inputs(bars)
    last = OursRun(0.0, [], [], BALANCE)

    def once() -> float:
        strategy = SmaCross(fast=RULES_FAST, slow=RULES_SLOW)
        started = time.perf_counter()
        result = run_on_bars(strategy, {SYMBOL: arrays}, config, instruments=instruments)
        elapsed = time.perf_counter() - started
        last.trades = [(t.entry_ts, t.exit_ts) for t in result.trades]
        last.min_equity = float(np.min(result.equity)) if len(result.equity) else BALANCE
        return elapsed

    last.best_s, last.times_s = best_of(repeat, once)
    return last


# --------------------------------------------------------------------------- report


def _fmt_ratio(value: float | None) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.2f}×"


def table_cells(rows: list[Row], bt_rate: float | None, cli_rate: float) -> list[list[str]]:
    """Rows as formatted strings, in the order of :data:`HEADERS`."""
    cells = []
    for row in rows:
        rate = row.bars_per_s
        cells.append(
            [
                row.engine + (f" {row.version}" if row.version else ""),
                row.mode,
                f"{row.bars:,}",
                f"{row.seconds:.2f}",
                f"{rate:,.0f}",
                _fmt_ratio(rate / bt_rate if bt_rate else None),
                _fmt_ratio(rate / cli_rate),
                row.trades,
                "; ".join(row.notes),
            ]
        )
    return cells


HEADERS = [
    "engine",
    "timed",
    "bars",
    "wall s",
    "bars/s",
    "speed vs backtesting.py",
    "speed vs tradeloop CLI",
    "trades identical",
    "notes",
]


def markdown_table(
    headers: Sequence[str], cells: Sequence[Sequence[str]], right: Sequence[int] = ()
) -> str:
    """A GitHub-flavoured markdown table; columns in ``right`` are right-aligned."""
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---:" if i in right else "---" for i in range(len(headers))) + "|",
    ]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
    return "\n".join(lines)


def print_table(
    title: str, headers: Sequence[str], cells: Sequence[Sequence[str]], right: Sequence[int] = ()
) -> None:
    """Print a rich table (plain text if rich is missing)."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(f"\n{title}")
        widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
        print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
        for row in cells:
            print(
                "  ".join(
                    c.rjust(w) if i in right else c.ljust(w)
                    for i, (c, w) in enumerate(zip(row, widths, strict=True))
                )
            )
        return
    table = Table(title=title)
    for i, header in enumerate(headers):
        table.add_column(header, justify="right" if i in right else "left")
    for row in cells:
        table.add_row(*row)
    console = Console()
    if not console.is_terminal:  # piped: do not wrap to 80 columns
        console = Console(width=160)
    console.print(table)


# --------------------------------------------------------------------------- main


def load_average() -> str:
    """The 1, 5 and 15 minute load averages (``?`` where the OS has none)."""
    if not hasattr(os, "getloadavg"):
        return "?"
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def cpu_check(steps: int = 3_000_000) -> float:
    """Seconds of a fixed pure-Python loop: compare it between runs to spot a busy machine."""
    started = time.perf_counter()
    total = 0
    for i in range(steps):
        total += i
    return time.perf_counter() - started


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--bars", type=int, default=1_000_000, help="bars in the series (default 1,000,000)"
    )
    parser.add_argument(
        "--peers",
        default="backtrader,backtesting,vectorbt",
        help="comma-separated peers to run if importable ('' for none)",
    )
    parser.add_argument(
        "--peer-bars",
        type=int,
        default=200_000,
        help=f"cap on the bars given to slow peers ({', '.join(SLOW_PEERS)}); "
        "0 = no cap (default 200,000)",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="best-of-K timing for tradeloop (default 3)"
    )
    parser.add_argument(
        "--peer-repeat", type=int, default=1, help="best-of-K timing for each peer (default 1)"
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="source OHLCV file (default: the shared BTC/USDT 1m feather file; "
        "TRADELOOP_SHARED_DATA sets the shared data folder)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write results as JSON")
    args = parser.parse_args(argv)
    if args.bars < RULES_SLOW + 2:
        parser.error(f"--bars must be at least {RULES_SLOW + 2}")
    args.peer_names = [p.strip() for p in args.peers.split(",") if p.strip()]
    unknown = [p for p in args.peer_names if p not in PEERS]
    if unknown:
        parser.error(f"unknown peer(s) {unknown}; choose from {sorted(PEERS)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bench and print the tables; return the exit code."""
    args = parse_args(argv)
    load_at_start = load_average()
    cpu_at_start = cpu_check()
    source = resolve_data(args.data)
    if not source.exists():
        _log(
            f"data file not found: {source.name} (pass --data FILE or set "
            "TRADELOOP_SHARED_DATA to the shared data folder)"
        )
        return 2
    src = load_source(source)
    bars = build_series(src, args.bars)
    n = len(bars)
    _log(
        f"{n:,} bars from {len(src):,} source bars ({math.ceil(n / len(src))} copies), "
        f"tick {bars.tick:g}"
    )
    rules = Rules(RULES_FAST, RULES_SLOW, FEE, BALANCE, bars.tick)

    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="tradeloop-bench-") as tmp:
        work = Path(tmp)
        data_file = work / f"{FILE_STEM}-{timeframe_of(bars)}.parquet"
        write_parquet(bars, data_file)

        # --- tradeloop, whole process
        cmd = cli_command() + cli_args(data_file, work / "out")
        _log(f"tradeloop CLI, whole process, best of {args.repeat} ...")

        warm_up(bars, work)
        cpu_cli = cpu_check()

        def cli_once() -> float:
            shutil.rmtree(work / "out", ignore_errors=True)
            return time_process(cmd, work)

        cli_s, cli_all = best_of(args.repeat, cli_once)
        cli_trades = read_cli_trades(work / "out" / "trades.csv")
        interpreter_s, _ = best_of(
            args.repeat, lambda: time_process([sys.executable, "-c", "pass"], work)
        )
        _log(f"tradeloop CLI with phase timers, best of {args.repeat} per phase ...")
        phase_runs = [run_phases(data_file, work) for _ in range(max(1, args.repeat))]

        # --- tradeloop, in process
        _log(f"tradeloop run_on_bars in process, best of {args.repeat} ...")
        cpu_in_process = cpu_check()
        ours = tradeloop_in_process(bars, args.repeat)
        run_s, run_all, our_trades = ours.best_s, ours.times_s, ours.trades

    import tradeloop

    version = getattr(tradeloop, "__version__", "")
    cli_match = match_trades(our_trades, cli_trades)
    rows.append(
        Row(
            "tradeloop",
            "whole process (CLI)",
            n,
            cli_s,
            f"{cli_match.describe()} vs in-process",
            [
                f"best of {len(cli_all)}: " + ", ".join(f"{t:.2f}" for t in cli_all) + " s",
                "start + import + load + run + write incl. report.html",
                f"CPU check {cpu_cli:.2f} s",
            ],
            version,
        )
    )
    rows.append(
        Row(
            "tradeloop",
            "in-process run_on_bars",
            n,
            run_s,
            "reference",
            [
                f"best of {len(run_all)}",
                "strategy + kernel + metrics",
                f"CPU check {cpu_in_process:.2f} s",
            ],
            version,
        )
    )

    # --- peers
    peer_runs: list[tuple[PeerRun, Match]] = []
    ours_on: dict[int, OursRun] = {n: ours}
    # backtesting.py first: it is the reference, so time it closest to tradeloop.
    for name in sorted(args.peer_names, key=lambda p: p != "backtesting"):
        module, runner = PEERS[name]
        if not is_available(module):
            _log(f"{name}: not importable, skipped")
            continue
        size = n
        if name in SLOW_PEERS and args.peer_bars > 0:
            size = min(n, args.peer_bars)
        if size not in ours_on:
            ours_on[size] = tradeloop_in_process(bars.head(size), 1)
        _log(f"{name} on {size:,} bars ...")
        cpu_peer = cpu_check()
        sub = bars.head(size)
        peer_rules = replace(
            rules, min_equity=ours_on[size].min_equity, max_price=float(np.max(sub.high))
        )
        peer = min(
            (runner(sub, peer_rules) for _ in range(max(1, args.peer_repeat))),
            key=lambda run: run.run_s,
        )
        match = match_trades(ours_on[size].trades, peer.trades)
        peer_runs.append((peer, match))
        notes = [f"import {peer.import_s:.1f} s, data prep {peer.prep_s:.2f} s (not timed)"]
        if size < n:
            notes.append(f"first {size:,} bars only (--peer-bars)")
        notes += [*peer.notes, f"CPU check {cpu_peer:.2f} s"]
        rows.append(
            Row(
                peer.label,
                "in-process run",
                size,
                peer.run_s,
                match.describe(),
                notes,
                peer.version,
            )
        )

    bt_rate = next((p.bars_per_s for p, _ in peer_runs if p.name == "backtesting"), None)
    cli_rate = n / cli_s
    cells = table_cells(rows, bt_rate, cli_rate)
    stamp = datetime.now(tz=UTC).date().isoformat()
    machine = (
        f"{os.cpu_count()} CPU cores, Python {platform.python_version()}, "
        f"load average {load_at_start} at start, {load_average()} at end; "
        f"CPU check {cpu_at_start:.2f} s at start, {cpu_check():.2f} s at end"
    )
    print_table(
        f"SMA({RULES_FAST}/{RULES_SLOW}) crossover throughput · {stamp} · {machine}",
        HEADERS[:-1],
        [c[:-1] for c in cells],
        right=(2, 3, 4, 5, 6),
    )
    for row, c in zip(rows, cells, strict=True):
        print(f"  {c[0]}, {row.mode}: {c[-1]}")

    per_run = [phase_rows(raw, interpreter_s) for raw in phase_runs]
    phase_list: list[tuple[str, float | None]] = []
    for k, (name, _) in enumerate(per_run[0]):
        values = [rows_[k][1] for rows_ in per_run if rows_[k][1] is not None]
        phase_list.append((name, min(values) if values else None))
    phase_total = sum(s for _, s in phase_list if s is not None)
    phase_cells = [
        [
            name,
            "n/a" if s is None else f"{s:.2f}",
            "n/a" if s is None else f"{100 * s / phase_total:.0f}%",
        ]
        for name, s in phase_list
    ]
    phase_cells.append([f"sum (best of {args.repeat} per phase)", f"{phase_total:.2f}", "100%"])
    phase_cells.append([f"whole process, best of {len(cli_all)} (no timers)", f"{cli_s:.2f}", ""])
    print_table(
        "Where tradeloop's whole-process time goes",
        ["phase", "s", "share"],
        phase_cells,
        right=(1, 2),
    )

    summary = ""
    if bt_rate:
        summary = (
            f"tradeloop whole process: {cli_rate / bt_rate:.2f}× backtesting.py "
            f"(target ≥ 3×, goal 10×); in-process run_on_bars: "
            f"{(n / run_s) / bt_rate:.2f}×."
        )
    print(f"\nMarkdown ({stamp}, {machine}):\n")
    print(markdown_table(HEADERS, cells, right=(2, 3, 4, 5, 6)))
    print()
    print(markdown_table(["phase", "s", "share"], phase_cells, right=(1, 2)))
    if summary:
        print(f"\n{summary}")

    if args.json is not None:
        payload: dict[str, Any] = {
            "date": stamp,
            "machine": {
                "cpu_count": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "load_average_at_start": load_at_start,
                "cpu_check_at_start_s": cpu_at_start,
            },
            "data": {"source": source.name, "bars": n, "source_bars": len(src), "tick": bars.tick},
            "rules": asdict(rules),
            "rows": [dict(asdict(r), bars_per_s=r.bars_per_s) for r in rows],
            "cli_times_s": cli_all,
            "in_process_times_s": run_all,
            "interpreter_start_s": interpreter_s,
            "phases_s": dict(phase_list),
            "phases_raw_s": phase_runs,
            "speedup_vs_backtesting": {
                "cli": cli_rate / bt_rate,
                "in_process": (n / run_s) / bt_rate,
            }
            if bt_rate
            else None,
        }
        args.json.write_text(json.dumps(payload, indent=2), encoding="utf-8")
        _log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
