"""Report and run-record cost: time and size of what a backtest writes after the bar loop.

For each size (default 100k and 1M one-minute bars) the bench runs SMA(10/30) in process once,
then times, best of ``--repeat``:

* **analysis**: metrics with breakdowns, statistical validation (t-test, block-bootstrap Sharpe
  interval, PSR/DSR, Monte Carlo) and the bias checks (``analyze_run``);
* **report**: ``report.html`` (``write_report``), and its size;
* **records**: ``trades.csv``, ``equity.csv``, ``equity.parquet``, ``summary.json`` and
  ``metrics.json`` (``write_outputs`` without the report), and their total size;
* optionally (``--cli``) the whole ``tradeloop backtest`` process, and (``--browser``) how long
  headless Chromium takes to load the report and draw every chart.

The series is the real Binance BTC/USDT 1-minute data of ``backtest_throughput.py``, repeated
end to end. Nothing is written into the repository; ``--json PATH`` saves the results.

Usage::

    .venv/bin/python bench/report_size.py [--bars 100000,1000000] [--repeat 3] [--cli]
                                          [--browser] [--data FILE] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.dont_write_bytecode = True  # importing the helpers must not leave a cache folder in bench/

from backtest_throughput import (  # noqa: E402
    BALANCE,
    FEE,
    FILE_STEM,
    RULES_FAST,
    RULES_SLOW,
    SYMBOL,
    Bars,
    best_of,
    build_series,
    cli_command,
    cpu_check,
    load_average,
    load_source,
    markdown_table,
    print_table,
    resolve_data,
    time_process,
    timeframe_of,
    warm_up,
    write_parquet,
)

MB = 1_000_000


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_once(bars: Bars) -> Any:
    """The in-process backtest whose results the post-run stages work on."""
    from tradeloop.core.bar import BarArrays
    from tradeloop.core.instrument import Instrument
    from tradeloop.engine.config import RunConfig
    from tradeloop.engine.runner import run_on_bars
    from tradeloop.strategy.examples.sma_cross import SmaCross

    arrays = BarArrays(
        SYMBOL, timeframe_of(bars), bars.ts, bars.open, bars.high, bars.low, bars.close,
        bars.volume,
    )  # fmt: skip
    instruments = {SYMBOL: Instrument(SYMBOL, tick_size=bars.tick, maker_fee=FEE, taker_fee=FEE)}
    started = time.perf_counter()
    result = run_on_bars(
        SmaCross(fast=RULES_FAST, slow=RULES_SLOW),
        {SYMBOL: arrays},
        RunConfig(balance=BALANCE, fee=FEE),
        instruments=instruments,
    )
    return result, {SYMBOL: arrays}, time.perf_counter() - started


def timed(repeat: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    """Best-of-``repeat`` seconds of ``fn`` and its last result."""
    best, value = float("inf"), None
    for _ in range(max(1, repeat)):
        started = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - started)
    return best, value


def browser_render_s(page: Path) -> float | None:
    """Seconds for headless Chromium to load ``page`` and draw every chart (None: no browser)."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.support.ui import WebDriverWait
    except ImportError:
        return None
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if binary is None or driver_path is None:
        return None
    options = webdriver.ChromeOptions()
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
    ):
        options.add_argument(arg)  # fmt: skip
    options.binary_location = binary
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    try:
        driver.get("about:blank")
        started = time.perf_counter()
        driver.get(page.resolve().as_uri())
        WebDriverWait(driver, 300).until(
            lambda d: d.execute_script(
                "return document.querySelectorAll('div.chart').length === "
                "document.querySelectorAll('div.chart.js-plotly-plot').length"
            )
        )
        return time.perf_counter() - started
    finally:
        driver.quit()


def measure(bars: Bars, repeat: int, work: Path, *, cli: bool, browser: bool) -> dict[str, Any]:
    """Every figure of one series size."""
    from tradeloop.analysis.report import write_report
    from tradeloop.analysis.run_analysis import analyze_run
    from tradeloop.engine.output import run_bar_ns, write_outputs

    result, prices, backtest_s = run_once(bars)
    bar_ns = run_bar_ns(result)

    def analyse() -> Any:
        return analyze_run(
            ts=result.ts,
            equity=result.equity,
            trades=result.trades,
            bar_ns=bar_ns,
            initial_equity=BALANCE,
            exposure=result.exposure,
            prices=prices,
            metrics=result.metrics,
        )

    analysis_s, analysis = timed(repeat, analyse)
    folder = work / f"records-{len(bars)}"
    report_path = folder / "report.html"
    folder.mkdir()
    report_s, _ = timed(
        repeat,
        lambda: write_report(
            report_path,
            title="bench",
            ts=result.ts,
            equity=result.equity,
            trades=result.trades,
            prices=prices,
            analysis=analysis,
            bar_ns=bar_ns,
            initial_equity=BALANCE,
        ),
    )
    records_s, paths = timed(
        repeat,
        lambda: write_outputs(result, folder, report=False, prices=prices, analysis=analysis),
    )
    out: dict[str, Any] = {
        "bars": len(bars),
        "trades": len(result.trades),
        "mc_paths": analysis.validation.monte_carlo.sims,
        "backtest_s": backtest_s,
        "analysis_s": analysis_s,
        "report_s": report_s,
        "report_mb": report_path.stat().st_size / MB,
        "records_s": records_s,
        "records_mb": sum(p.stat().st_size for p in paths.values()) / MB,
        "files_mb": {name: p.stat().st_size / MB for name, p in paths.items()},
        "cli_s": None,
        "browser_s": None,
    }
    if cli:
        data = work / f"{FILE_STEM}-{len(bars)}.parquet"
        write_parquet(bars, data)
        cmd = [
            *cli_command(), "backtest", "--strategy", "sma_cross", "--data", str(data),
            "--param", f"fast={RULES_FAST}", "--param", f"slow={RULES_SLOW}",
            "--balance", f"{BALANCE:g}", "--fee", f"{FEE:g}", "--out", str(work / "cli-out"),
        ]  # fmt: skip
        out["cli_s"], _ = best_of(repeat, lambda: time_process(cmd, work))
    if browser:
        out["browser_s"] = browser_render_s(report_path)
    return out


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--bars", default="100000,1000000", help="comma-separated series sizes (default 100k, 1M)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="best-of-K timing (default 3)")
    parser.add_argument(
        "--cli", action="store_true", help="also time the whole `tradeloop backtest` process"
    )
    parser.add_argument(
        "--browser", action="store_true", help="also time loading the report in headless Chromium"
    )
    parser.add_argument("--data", type=Path, default=None, help="source OHLCV file")
    parser.add_argument("--json", type=Path, default=None, help="also write results as JSON")
    args = parser.parse_args(argv)
    args.sizes = [int(x.replace("_", "")) for x in args.bars.split(",") if x.strip()]
    return args


def _s(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def row_cells(r: dict[str, Any]) -> list[str]:
    """One table row."""
    return [
        f"{r['bars']:,}", f"{r['trades']:,}", str(r["mc_paths"]), _s(r["backtest_s"]),
        _s(r["analysis_s"]), _s(r["report_s"]), f"{r['report_mb']:.2f}", _s(r["records_s"]),
        f"{r['records_mb']:.1f}", _s(r["cli_s"]), _s(r["browser_s"]),
    ]  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bench and print the table; return the exit code."""
    args = parse_args(argv)
    load_at_start, cpu_at_start = load_average(), cpu_check()
    source = resolve_data(args.data)
    if not source.exists():
        _log(f"data file not found: {source} (pass --data FILE or set TRADELOOP_SHARED_DATA)")
        return 2
    src = load_source(source)
    results = []
    with tempfile.TemporaryDirectory(prefix="tradeloop-report-bench-") as tmp:
        work = Path(tmp)
        if args.cli:
            warm_up(build_series(src, 2_000), work)
        for size in args.sizes:
            _log(f"{size:,} bars ...")
            results.append(
                measure(build_series(src, size), args.repeat, work, cli=args.cli,
                        browser=args.browser)
            )  # fmt: skip
    headers = [
        "bars", "trades", "MC paths", "backtest s (in process)", "analysis s", "report s",
        "report MB", "records s", "records MB", "whole CLI s", "browser render s",
    ]  # fmt: skip
    cells = [row_cells(r) for r in results]
    title = (
        f"Report and run records, best of {args.repeat} (load {load_at_start}, "
        f"CPU check {cpu_at_start:.2f} s at start, {cpu_check():.2f} s at end)"
    )
    print_table(title, headers, cells, right=range(len(headers)))
    print()
    print(markdown_table(headers, cells, right=range(len(headers))))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
