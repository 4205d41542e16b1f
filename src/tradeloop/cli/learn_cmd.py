"""``tradeloop learn``: the learning loop's journal, report, proposals and their application.

``record`` backtests with every signal journaled; ``report`` shows per-strategy P&L and hit
rates by regime, hour and symbol from the journal (which ``tradeloop run`` and ``tradeloop paper``
also fill); ``propose`` re-runs walk-forward optimisation on recent data and writes a proposal
that is never applied by itself; ``apply`` applies one through ``loop.toml`` (a running loop
hot-reloads it) with an audit record.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer

from tradeloop.cli.console import Console, Table
from tradeloop.cli.failure import fail, require
from tradeloop.core.errors import DataError, TradeloopError

__all__ = ["register_learn_commands"]

console = Console()
err_console = Console(stderr=True)

learn_app = typer.Typer(
    help="The learning loop: every signal journaled (executed or rejected), per-strategy "
    "P&L by regime/hour/symbol, walk-forward parameter proposals and their audited application.",
    no_args_is_help=True,
)

JournalOpt = Annotated[
    Path,
    typer.Option(
        help="Analytics store (DuckDB) holding the journal (loop.toml's [run] analytics)."
    ),
]


_fail = fail  # the CLI's one error report (tradeloop.cli.failure)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "-" if math.isnan(v) else f"{v:.4g}"
    if isinstance(v, dict):
        return ", ".join(f"{k} {n}" for k, n in v.items()) or "-"
    return str(v)


def _table(title: str, rows: list[dict[str, Any]], key: str | None) -> Table:
    t = Table(title=title)
    cols = [
        "strategy",
        *([key] if key else []),
        "signals",
        "executed",
        "rejected",
        "rejected_by_reason",
        "closed_trades",
        "pnl",
        "hit_rate",
    ]
    for c in cols:
        t.add_column(
            c.replace("_", " "),
            justify="left" if c in ("strategy", "rejected_by_reason") else "right",
        )
    for r in rows:
        t.add_row(*[_fmt(r[c]) for c in cols])
    return t


@learn_app.command("record")
def record(
    strategy: Annotated[str, typer.Option("--strategy", "-s", help="Strategy to backtest.")],
    data: Annotated[Path, typer.Option("--data", "-d", help="OHLCV file (one symbol).")],
    journal: JournalOpt = Path("output/learn/analytics.duckdb"),
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="key=value.")] = None,
    fee: Annotated[float, typer.Option(help="Commission fraction.")] = 0.0,
    risk: Annotated[
        str,
        typer.Option(
            help="Risk profile (permissive or default) or a risk .toml file, as for "
            "'tradeloop backtest --risk'; default: the default profile, so rejections are "
            "journaled with their reasons."
        ),
    ] = "default",
    source: Annotated[str | None, typer.Option(help="The run's name in the journal.")] = None,
    allow_data_issues: Annotated[
        bool,
        typer.Option(
            "--allow-data-issues", help="Run on data that fails the data check, as backtest."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the counts as JSON.")] = False,
) -> None:
    """Backtest with every signal journaled: executed or rejected, with the risk reason."""
    from tradeloop.cli.app import _parse_params, _risk_rules
    from tradeloop.cli.leftovers import NewPaths
    from tradeloop.engine.config import RunConfig
    from tradeloop.engine.runner import DataSpec
    from tradeloop.optimize.learn import record_backtest
    from tradeloop.store.analytics import AnalyticsStore

    made = NewPaths(journal)  # a journal this command creates goes again if the run fails
    try:
        params = _parse_params(param or [])
        config = RunConfig(fee=fee, risk=_risk_rules(risk))
        journal.parent.mkdir(parents=True, exist_ok=True)
        store = AnalyticsStore(journal)
        try:
            counts = record_backtest(
                strategy,
                DataSpec(data),
                store,
                params=params,
                config=config,
                source=source,
                allow_data_issues=allow_data_issues,
            )
        finally:
            store.close()
    except TradeloopError as exc:
        made.remove()
        raise _fail(exc) from None
    if as_json:
        import json

        print(json.dumps(counts, indent=2, default=str))
        return
    table = Table(title=f"Journaled in {journal}", show_header=False)
    table.add_column("what", style="cyan")
    table.add_column("count", justify="right")
    for key, value in counts.items():
        table.add_row(key, f"{value:,}" if isinstance(value, int) else str(value))
    console.print(table)


@learn_app.command("report")
def report(
    journal: JournalOpt = Path("output/learn/analytics.duckdb"),
    source: Annotated[str | None, typer.Option(help="One run only (its id).")] = None,
    data: Annotated[
        Path | None,
        typer.Option("--data", "-d", help="The traded bars, to label volatility regimes."),
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the report as JSON.")
    ] = None,
) -> None:
    """Per-strategy P&L and hit rate, by regime, UTC hour and symbol, from the journal."""
    from tradeloop.engine.runner import DataSpec, load_data
    from tradeloop.optimize.learn import learn_report
    from tradeloop.store.analytics import AnalyticsStore

    try:
        if not journal.exists():
            raise DataError(
                "no journal here (run `tradeloop learn record` or `tradeloop run`)",
                file=str(journal),
            )
        bars = load_data([DataSpec(data)])[0].bars if data is not None else None
        store = AnalyticsStore(journal, read_only=True, hold=False)
        rep = learn_report(store, source=source, bars=bars)
    except TradeloopError as exc:
        raise _fail(exc) from None
    if not rep["rows"]:
        console.print("The journal has no signals yet.")
        return
    console.print(_table(f"Strategies ({rep['rows']} signals)", rep["by_strategy"], None))
    console.print(_table("By regime", rep["by_regime"], "regime"))
    console.print(_table("By UTC hour", rep["by_hour"], "hour"))
    console.print(_table("By symbol", rep["by_symbol"], "symbol"))
    if json_out is not None:
        json_out.write_text(json.dumps(rep, indent=2, default=str), encoding="utf-8")


@learn_app.command("propose")
def propose_cmd(
    config: Annotated[Path, typer.Option("--config", "-c", help="The loop's loop.toml.")],
    strategy: Annotated[str, typer.Option("--strategy", "-s", help="Strategy label in loop.toml.")],
    data: Annotated[Path, typer.Option("--data", "-d", help="Recent OHLCV data of its symbol.")],
    param: Annotated[
        list[str], typer.Option("--param", "-p", help="Searched parameter (as for optimize).")
    ],
    out: Annotated[Path, typer.Option(help="Proposals folder.")] = Path("output/proposals"),
    recent_days: Annotated[
        float | None, typer.Option(help="Use only the last N days of data.")
    ] = None,
    folds: Annotated[int, typer.Option(help="Walk-forward folds.")] = 4,
    ratio: Annotated[float, typer.Option(help="IS/OOS length ratio.")] = 3.0,
    mode: Annotated[str, typer.Option(help="rolling or anchored.")] = "rolling",
    method: Annotated[str, typer.Option(help="grid, random or tpe.")] = "grid",
    trials: Annotated[int | None, typer.Option(help="Trials per fold (random/tpe).")] = None,
    objective: Annotated[str, typer.Option(help="Run metric to maximise.")] = "sharpe",
    min_trades: Annotated[int, typer.Option(help="Fewest trades of a chosen trial.")] = 0,
    fee: Annotated[float, typer.Option(help="Commission fraction.")] = 0.0,
    allow_data_issues: Annotated[
        bool,
        typer.Option(
            "--allow-data-issues", help="Search on data that fails the data check, as backtest."
        ),
    ] = False,
) -> None:
    """Re-run walk-forward on recent data and write a proposal (never applied by itself)."""
    require("ml", "tradeloop learn propose")
    from tradeloop.engine.runner import DataSpec
    from tradeloop.optimize.learn import propose

    try:
        path, p = propose(
            config,
            strategy,
            DataSpec(data),
            list(param),
            out,
            recent_days=recent_days,
            folds=folds,
            ratio=ratio,
            mode=mode,
            method=method,
            trials=trials,
            objective=objective,
            min_trades=min_trades,
            fee=fee,
            allow_data_issues=allow_data_issues,
        )
    except TradeloopError as exc:
        raise _fail(exc) from None
    t = Table(title=f"Proposal {p['id']} for {strategy} (not applied)")
    for c in ("", "current", "proposed"):
        t.add_column(c)
    t.add_row("params", str(p["current"]), str(p["proposed"]))
    for m in ("total_return", "sharpe", "max_drawdown"):
        t.add_row(
            f"OOS {m}",
            _fmt(p["current_oos"].get(m, math.nan)),
            _fmt(p["expected_oos"].get(m, math.nan)),
        )
    console.print(t)
    console.print(
        f"deflated Sharpe {_fmt(p['deflated_sharpe']['dsr'])} over "
        f"{p['deflated_sharpe']['n_trials']} trials"
    )
    console.print(f"written to {path}; apply with: tradeloop learn apply {path}")


@learn_app.command("apply")
def apply_cmd(
    proposal: Annotated[Path, typer.Argument(help="A proposal file from `learn propose`.")],
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="loop.toml (default: the proposal's).")
    ] = None,
    audit: Annotated[
        Path | None, typer.Option(help="Audit log (default: <config>.audit.jsonl).")
    ] = None,
) -> None:
    """Apply a proposal to loop.toml (a running loop hot-reloads it), with an audit record."""
    from tradeloop.optimize.learn import apply_proposal

    try:
        record_ = apply_proposal(proposal, config_path=config, audit_path=audit)
    except TradeloopError as exc:
        raise _fail(exc) from None
    console.print(f"applied {record_['proposal']} to {record_['config']}: {record_['diff']}")


def register_learn_commands(app: typer.Typer) -> None:
    """Add ``tradeloop learn`` to ``app``."""
    app.add_typer(learn_app, name="learn")
