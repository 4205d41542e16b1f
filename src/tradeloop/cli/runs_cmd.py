"""``tradeloop runs | report | compare``: work with recorded backtest runs; the result tables
that ``tradeloop backtest`` prints."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tradeloop.cli.console import Console, Table
from tradeloop.cli.failure import fail
from tradeloop.core.errors import ConfigError, TradeloopError

if TYPE_CHECKING:
    from tradeloop.analysis.run_analysis import RunAnalysis

__all__ = [
    "COMPARE_KEYS",
    "METRIC_KEYS",
    "bias_table",
    "fmt",
    "metrics_table",
    "register",
    "validation_table",
]

#: Rows of the metrics table printed after a backtest (summary keys).
METRIC_KEYS: tuple[str, ...] = (
    "start",
    "end",
    "bars",
    "total_return",
    "cagr",
    "max_drawdown",
    "max_drawdown_start",
    "max_drawdown_trough",
    "max_drawdown_recovery",
    "max_drawdown_duration_days",
    "sharpe",
    "sortino",
    "calmar",
    "volatility",
    "annualization",
    "win_rate",
    "profit_factor",
    "payoff_ratio",
    "expectancy",
    "median_trade_pnl",
    "avg_trade_return",
    "longest_win_streak",
    "longest_loss_streak",
    "exposure",
    "turnover",
    "trade_count",
    "avg_holding_hours",
    "total_pnl",
    "fees_paid",
    "final_equity",
    "open_positions_at_end",
    "rejected_orders",
)

#: Rows of ``tradeloop compare`` (metrics.json keys).
COMPARE_KEYS: tuple[str, ...] = (
    "initial_equity",
    "final_equity",
    "total_return",
    "cagr",
    "volatility",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown",
    "max_drawdown_duration_days",
    "trade_count",
    "win_rate",
    "profit_factor",
    "payoff_ratio",
    "expectancy",
    "avg_trade_return",
    "longest_win_streak",
    "longest_loss_streak",
    "exposure",
    "turnover",
    "fees_paid",
)

console = Console()
err_console = Console(stderr=True)


def fmt(key: str, value: Any) -> str:
    """Format a metric for the terminal (``∞`` for infinity, ``–`` for missing)."""
    from tradeloop.analysis.report import fmt_value

    return fmt_value(key, _from_json(value))


def _from_json(value: Any) -> Any:
    """Undo the JSON encoding of infinities ("inf", "-inf")."""
    if value == "inf":
        return math.inf
    if value == "-inf":
        return -math.inf
    return value


def metrics_table(summary: Mapping[str, Any], title: str) -> Table:
    """The headline metrics of a run as a two-column table."""
    table = Table(title=title, show_header=False)
    table.add_column("metric", style="cyan")
    table.add_column("value", justify="right")
    for key in METRIC_KEYS:
        if key in summary:
            table.add_row(key, fmt(key, summary[key]))
    return table


def validation_table(analysis: RunAnalysis) -> Table:
    """The verdict rules and the statistics behind them."""
    report = analysis.validation
    verdict = report.verdict
    colour = "green" if verdict.passed else "red"
    table = Table(title=f"Statistical validation: [{colour}]{verdict.summary}[/]")
    table.add_column("check", style="cyan")
    table.add_column("value", justify="right")
    table.add_column("result", justify="center")
    for rule in verdict.rules:
        table.add_row(
            rule.description,
            fmt(rule.name, rule.value),
            "[green]pass[/]" if rule.passed else "[red]fail[/]",
        )
    ci, sig, mc = report.sharpe_ci, report.significance, report.monte_carlo
    table.add_row(
        f"Sharpe {ci.confidence:.0%} interval (block bootstrap)",
        f"{fmt('', ci.low)} … {fmt('', ci.high)}",
        "",
    )
    table.add_row("probabilistic Sharpe ratio (> 0)", fmt("", sig.psr), "")
    table.add_row(f"deflated Sharpe ratio ({sig.n_trials} trial(s))", fmt("", sig.dsr), "")
    if mc.sims:
        dd = " / ".join(fmt("max_drawdown", x) for x in mc.max_drawdown)
        fe = " / ".join(fmt("", x) for x in mc.final_equity)
        how = f"blocks of {mc.block} trades" if mc.method == "bootstrap" else "reshuffled"
        table.add_row(f"Monte Carlo max drawdown p5/p50/p95 ({mc.sims} paths, {how})", dd, "")
        table.add_row("Monte Carlo final equity p5/p50/p95", fe, "")
    table.add_row("seed", str(report.config.seed), "")
    return table


def bias_table(analysis: RunAnalysis, examples: int = 3) -> Table:
    """Bias findings per kind with the first few examples."""
    report = analysis.biases
    counts = report.counts()
    table = Table(title="Behavioural bias checks")
    table.add_column("bias", style="cyan")
    table.add_column("findings", justify="right")
    table.add_column("first findings")
    for kind, count in counts.items():
        if not report.checked.get(kind):
            table.add_row(kind, "–", "not checked (no price data)")
            continue
        found = report.by_kind(kind)[:examples]
        # when, readable (the trade ids, in trades.csv's id column, are in metrics.json)
        shown = "\n".join(f"{_minute(f.ts)}: {f.message}" for f in found)
        table.add_row(kind, str(count), shown or "none")
    return table


_fail = fail  # the CLI's one error report (tradeloop.cli.failure)


def _minute(ts_ns: int) -> str:
    """``2017-09-06 20:00`` (UTC) for a time in ns."""
    import datetime as dt

    return dt.datetime.fromtimestamp(ts_ns / 1e9, dt.UTC).strftime("%Y-%m-%d %H:%M")


def _params_text(params: Mapping[str, Any]) -> str:
    """A run's parameters one ``name=value`` a line (a dict's repr folds mid-word)."""
    return "\n".join(f"{k}={v!r}" for k, v in params.items()) or "-"


def _run_json(run: Any) -> dict[str, Any]:
    """One run listing as JSON (non-finite numbers as text)."""
    from tradeloop.engine.output import json_safe

    data: dict[str, Any] = json_safe(
        {
            "run_id": run.run_id,
            "path": str(run.path),
            "strategy": run.strategy,
            "symbols": list(run.symbols),
            "timeframe": run.timeframe,
            "total_return": run.total_return,
            "sharpe": run.sharpe,
            "trades": run.trades,
            "verdict": run.verdict,
            "created": run.created,
            "slippage_fills": run.slippage_fills,
            "slippage_bps": run.slippage_bps,
            "slippage_cost": run.slippage_cost,
        }
    )
    return data


def live_run_listings(state: str) -> list[Any]:
    """The live runs of state store ``state`` as ``tradeloop runs`` lines, with their slippage
    (expected vs actual fill price: fills, mean adverse bps, total cost)."""
    from tradeloop.analysis.runs import RunListing
    from tradeloop.analysis.slippage import totals
    from tradeloop.cli.paper_cmd import _existing_state
    from tradeloop.engine.paper import run_summaries
    from tradeloop.store.state import open_state_store

    target = _existing_state(state)
    listings = []
    with open_state_store(target) as store:
        for row in run_summaries(store):
            if row["mode"] != "live":
                continue
            run = store.load_run(row["run_id"])
            broker = (run.engine_state.get("broker") or {}) if run is not None else {}
            slip = totals(broker)
            fills = int(slip["fills"])
            listings.append(
                RunListing(
                    run_id=row["run_id"],
                    path=Path(target) if "://" not in target else Path(row["run_id"]),
                    strategy=str(row["strategy"]),
                    symbols=tuple(row["symbols"]),
                    timeframe=str(row["timeframe"]),
                    total_return=(row["return_pct"] or 0.0) / 100.0,
                    sharpe=float("nan"),
                    trades=int(row["trades"]),
                    created=str(row["started"] or ""),
                    verdict="live",
                    slippage_fills=fills,
                    slippage_bps=slip["mean_bps"] if fills else None,
                    slippage_cost=slip["total_cost"] if fills else None,
                )
            )
    return listings


def register(app: typer.Typer) -> None:
    """Add the run-record commands to ``app``."""

    @app.command("runs")
    def runs(
        root: Annotated[Path, typer.Option(help="Output folder holding runs/.")] = Path("output"),
        limit: Annotated[int, typer.Option(help="Show the most recent N runs.")] = 50,
        as_json: Annotated[
            bool, typer.Option("--json", help="Print JSON instead of a table.")
        ] = False,
        state: Annotated[
            str | None,
            typer.Option(
                help="Also list the live runs of this state store (SQLite file or "
                "postgresql:// URL), with their slippage: expected vs actual fill price."
            ),
        ] = None,
    ) -> None:
        """List recorded runs (newest last): id, strategy, symbols, timeframe, return, Sharpe,
        trades and verdict (the id starts with the run's UTC time). With --state, the live runs
        of the state store too, and slippage columns (fills, mean bps, cost; + is adverse) for
        runs with fills at an expected price; `tradeloop live report` lists them per fill."""
        import json

        from rich import box

        from tradeloop.analysis.runs import find_runs

        try:
            if limit < 1:
                raise ConfigError(f"--limit must be 1 or more, got {limit}")
            live_runs = live_run_listings(state) if state is not None else []
        except TradeloopError as exc:
            raise _fail(exc) from None
        found = sorted([*find_runs(root), *live_runs], key=lambda r: r.created)[-limit:]
        if as_json:
            print(json.dumps([_run_json(run) for run in found], indent=2))
            return
        if not found:
            console.print(f"no runs under {root}; run `tradeloop backtest` first")
            return
        table = Table(title=f"Runs in {root} ({len(found)})", box=box.SIMPLE_HEAD, pad_edge=False)
        for name, justify in (
            ("id", "left"),
            ("symbols", "left"),
            ("tf", "left"),
            ("return", "right"),
            ("sharpe", "right"),
            ("trades", "right"),
            ("verdict", "left"),
        ):
            table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
        slipped = any(run.slippage_fills for run in found)
        if slipped:
            for name in ("fills", "slip bps", "slip cost"):
                table.add_column(name, justify="right")
        for run in found:
            extra = (
                (
                    str(run.slippage_fills),
                    f"{run.slippage_bps:+.2f}" if run.slippage_bps is not None else "",
                    f"{run.slippage_cost:+,.4f}" if run.slippage_cost is not None else "",
                )
                if slipped
                else ()
            )
            table.add_row(
                run.run_id,
                ",".join(run.symbols),
                run.timeframe,
                fmt("total_return", run.total_return),
                fmt("sharpe", run.sharpe),
                str(run.trades),
                run.verdict,
                *extra,
            )
        console.print(table)

    @app.command("report")
    def report(
        run: Annotated[str, typer.Argument(help="Run id (or unique prefix), 'latest' or folder.")],
        root: Annotated[Path, typer.Option(help="Output folder holding runs/.")] = Path("output"),
        require_data: Annotated[
            bool,
            typer.Option(
                help="Fail when a data file is missing or changed instead of leaving "
                "the price charts out."
            ),
        ] = False,
        out: Annotated[
            Path | None, typer.Option(help="Write here instead of <run>/report.html.")
        ] = None,
    ) -> None:
        """Regenerate report.html of a recorded run from its files (data re-read and checked
        against the recorded sha256)."""
        from tradeloop.analysis.runs import resolve_run
        from tradeloop.config.logging import setup_logging
        from tradeloop.engine.output import regenerate_report

        setup_logging()
        try:
            folder = resolve_run(run, root)
            path, warnings = regenerate_report(folder, require_data=require_data, out=out)
        except TradeloopError as exc:
            raise _fail(exc) from None
        for message in warnings:
            err_console.print(f"[yellow]warning:[/] {message}; report without price charts")
        console.print(f"report: {path}")

    @app.command("compare")
    def compare(
        run_a: Annotated[str, typer.Argument(help="First run (id, prefix, 'latest' or folder).")],
        run_b: Annotated[str, typer.Argument(help="Second run.")],
        root: Annotated[Path, typer.Option(help="Output folder holding runs/.")] = Path("output"),
        out: Annotated[
            Path | None,
            typer.Option(help="Overlay chart HTML (default <root>/compare/<A>_vs_<B>.html)."),
        ] = None,
    ) -> None:
        """Print two runs' metrics side by side and write an overlay chart of their equity."""
        import numpy as np

        from tradeloop.analysis.report import write_compare_report
        from tradeloop.analysis.runs import read_equity, read_json, resolve_run

        try:
            folders = [resolve_run(r, root) for r in (run_a, run_b)]
            records = [read_json(f / "run.json") for f in folders]
            metrics = [read_json(f / "metrics.json").get("metrics", {}) for f in folders]
            curves = {}
            labels = []
            for k, (folder, rec) in enumerate(zip(folders, records, strict=True)):
                label = str(rec.get("run_id") or folder.name)
                if label in labels:
                    label = f"{label} ({k + 1})"
                labels.append(label)
                eq = read_equity(folder)
                initial = float((rec.get("config") or {}).get("balance") or eq.equity[0])
                ts = np.concatenate((eq.ts[:1], eq.ts))
                curves[label] = (ts, np.concatenate(([initial], eq.equity)))
        except TradeloopError as exc:
            raise _fail(exc) from None
        # the ids above the table, "A" and "B" as its headers: two ids would take its width
        table = Table(title=f"Runs compared\nA: {labels[0]}\nB: {labels[1]}")
        table.add_column("metric", style="cyan")
        for header in ("A", "B"):
            table.add_column(header, justify="right")
        table.add_column("B - A", justify="right")
        rows = []
        for row_name, values in (
            ("strategy", [r.get("strategy", "") for r in records]),
            ("symbols", [", ".join(r.get("symbols") or []) for r in records]),
            ("timeframe", [r.get("timeframe", "") for r in records]),
            ("params", [_params_text(r.get("params") or {}) for r in records]),
            ("start", [r.get("start", "") for r in records]),
            ("end", [r.get("end", "") for r in records]),
            ("annualization", [m.get("annualization", "") for m in metrics]),
        ):
            table.add_row(row_name, *(str(v) for v in values), "")
            rows.append((row_name, *values))
        for key in COMPARE_KEYS:
            values = [m.get(key) for m in metrics]
            diff = ""
            if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
                a, b = (float(v) for v in values)
                if math.isfinite(a) and math.isfinite(b):
                    diff = fmt(key, b - a)
            table.add_row(key, *(fmt(key, v) for v in values), diff)
            rows.append((key, *(_from_json(v) for v in values)))
        console.print(table)
        periods = [m.get("periods_per_year") for m in metrics]
        if periods[0] != periods[1] and all(isinstance(p, int | float) for p in periods):
            console.print(
                f"[bold yellow]note:[/] the runs are annualized with {periods[0]:,.6g} and "
                f"{periods[1]:,.6g} periods a year: Sharpe, Sortino and volatility differ by "
                "that too (rerun one with --periods-per-year to compare like with like)",
                highlight=False,
            )
        target = out or root / "compare" / f"{folders[0].name}_vs_{folders[1].name}.html"
        target.parent.mkdir(parents=True, exist_ok=True)
        write_compare_report(
            target,
            title=f"{labels[0]} vs {labels[1]}",
            curves=curves,
            rows=rows,
            labels=labels,
        )
        console.print(f"overlay chart: {target}")
