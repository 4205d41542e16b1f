"""The ``tradeloop`` command: Typer app with rich output. No trading logic lives here."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tradeloop.cli.column_options import (
    CloseCol,
    HighCol,
    LowCol,
    OpenCol,
    TimeUnit,
    TimeZone,
    TsCol,
    VolumeCol,
)
from tradeloop.cli.console import Console, Table
from tradeloop.cli.data_cmd import data_app
from tradeloop.cli.failure import fail
from tradeloop.cli.learn_cmd import register_learn_commands
from tradeloop.cli.live_cmd import register_live_commands
from tradeloop.cli.ml_cmd import (
    MinConfidenceOpt,
    MlThreadsOpt,
    ModelOpt,
    RegistryOpt,
    ToxicityOpt,
    model_options,
)
from tradeloop.cli.ml_cmd import register as register_ml_commands
from tradeloop.cli.optimize_cmd import register_optimize_commands
from tradeloop.cli.paper_cmd import register as register_paper_commands
from tradeloop.cli.regime_cmd import (
    RegimeConfirmOpt,
    RegimeExposureOpt,
    RegimeOpt,
    RegimeTransitionOpt,
    regime_options,
    register_regime_commands,
)
from tradeloop.cli.risk_cmd import register as register_risk_commands
from tradeloop.cli.run_cmd import register as register_loop_command
from tradeloop.cli.runs_cmd import register as register_run_commands
from tradeloop.cli.serve_cmd import register_serve_commands
from tradeloop.cli.signals_cmd import register as register_signal_commands
from tradeloop.cli.state_cmd import register_state_commands
from tradeloop.config.logging import setup_logging
from tradeloop.core.errors import ConfigError, TradeloopError
from tradeloop.core.time import parse_time
from tradeloop.ml.threads import DEFAULT_ML_THREADS

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from tradeloop.engine.runner import CacheSpec, DataSpec
    from tradeloop.engine.service import BacktestOutcome
    from tradeloop.risk.config import RiskConfig

app = typer.Typer(
    name="tradeloop",
    help="Systematic trading: backtest strategies on OHLCV files with one kernel for "
    "backtest, paper and live.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
console = Console()
err_console = Console(stderr=True)


def _show_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("tradeloop")
        except PackageNotFoundError:  # run from a source tree without an install
            number = "unknown"
        print(f"tradeloop {number}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the version and exit.",
            callback=_show_version,
            is_eager=True,
        ),
    ] = False,
) -> None:
    """Systematic trading: backtest strategies on OHLCV files with one kernel for backtest,
    paper and live.
    """
    from tradeloop.config.redact import install_redaction

    install_redaction()  # credentials never reach the terminal


_fail = fail  # the CLI's one error report (tradeloop.cli.failure)


def _parse_params(items: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--param expects key=value, got {item!r}")
        params[key.strip()] = value.strip()
    return params


class _LazyProgress:
    """A rich progress bar that appears only when a run lasts longer than a second."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.started = time.perf_counter()
        self.progress: Progress | None = None
        self.task: TaskID | None = None

    def __call__(self, done: int, total: int) -> None:
        if self.progress is None or self.task is None:
            if time.perf_counter() - self.started < 1.0 or not err_console.is_terminal:
                return
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self.progress = Progress(
                TextColumn(self.label),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=err_console,
                transient=True,
            )
            self.progress.start()
            self.task = self.progress.add_task(self.label, total=total)
        self.progress.update(self.task, completed=done)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


@app.command()
def backtest(
    strategy: Annotated[
        str,
        typer.Option(
            "--strategy",
            "-s",
            help="Strategy name (see `tradeloop strategies`), pkg.module:Class or file.py:Class.",
        ),
    ],
    data: Annotated[
        list[Path] | None,
        typer.Option(
            "--data",
            "-d",
            help="OHLCV file (CSV, CSV.gz, Parquet, feather). Repeat for a multi-symbol portfolio.",
        ),
    ] = None,
    symbol: Annotated[
        list[str] | None,
        typer.Option(
            "--symbol",
            help="Symbol for the matching --data file (default: from the file name); with "
            "--exchange, the cached symbols to trade.",
        ),
    ] = None,
    exchange: Annotated[
        str | None,
        typer.Option(
            help="Read --symbol series from the cache filled by `tradeloop data fetch` "
            "instead of --data files."
        ),
    ] = None,
    market: Annotated[
        str, typer.Option(help="Cache market with --exchange: spot or perp.")
    ] = "spot",
    cache_root: Annotated[
        Path | None, typer.Option(help="Cache folder (default: the configured one).")
    ] = None,
    risk: Annotated[
        str | None,
        typer.Option(
            "--risk",
            help="Risk profile (permissive or default) or a risk .toml file (limits, sizing, "
            "kill switches), as for 'tradeloop paper --risk'; default: permissive "
            "(instrument rules only).",
        ),
    ] = None,
    timeframe: Annotated[
        str | None,
        typer.Option(
            "--timeframe", "-t", help="Trading timeframe, e.g. 15m; finer data is resampled."
        ),
    ] = None,
    start: Annotated[str | None, typer.Option(help="First bar (UTC date or ISO time).")] = None,
    end: Annotated[str | None, typer.Option(help="End, exclusive (UTC date or ISO time).")] = None,
    balance: Annotated[float, typer.Option(help="Starting cash.")] = 10_000.0,
    fee: Annotated[
        float, typer.Option(help="Commission per fill as a fraction (0.001 = 0.1%).")
    ] = 0.0,
    slippage_bps: Annotated[float, typer.Option(help="Adverse slippage in basis points.")] = 0.0,
    fill_price: Annotated[
        str,
        typer.Option("--fill-price", help="Fill market orders at 'next_open' or 'close'."),
    ] = "next_open",
    fill_old: Annotated[
        str | None,
        typer.Option("--fill", hidden=True, help="Deprecated: --fill-price."),
    ] = None,
    post_only_entries: Annotated[
        bool,
        typer.Option(
            "--post-only-entries",
            help="Enter with post-only limit orders at the signal bar's close (maker fee): "
            "filled at the limit only if the next bar trades through it, else expired.",
        ),
    ] = False,
    cash_buffer_pct: Annotated[
        float,
        typer.Option(
            help="Size buy entries at the signal bar's close to leave this fraction of the "
            "cash unspent (as paper and live do), so a higher next open still pays for them. "
            "0: sizes unchanged.",
        ),
    ] = 0.0,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="Strategy parameter key=value (repeatable)."),
    ] = None,
    close_at_end: Annotated[
        bool,
        typer.Option(
            help="Close positions still open at the last close, paying slippage and fee "
            "(exit reason 'end')."
        ),
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(help="Output folder (default: output/runs/<run id>, with output/latest)."),
    ] = None,
    report: Annotated[bool, typer.Option(help="Write report.html.")] = True,
    equity_csv: Annotated[
        bool,
        typer.Option(
            "--equity-csv",
            help="Also write the equity curve as equity.csv (ISO times; large on long runs). "
            "equity.parquet is always written.",
        ),
    ] = False,
    seed: Annotated[
        int, typer.Option(help="Seed of the bootstrap and Monte Carlo validation (>= 0).")
    ] = 42,
    trials: Annotated[
        int,
        typer.Option(help="Strategies/parameter sets tried, for the deflated Sharpe ratio."),
    ] = 1,
    sharpe_bar: Annotated[
        float, typer.Option(help="The validation's Sharpe rule passes above this.")
    ] = 1.0,
    mc_sims: Annotated[int, typer.Option(help="Monte Carlo paths of the validation.")] = 1000,
    ts_col: TsCol = None,
    open_col: OpenCol = None,
    high_col: HighCol = None,
    low_col: LowCol = None,
    close_col: CloseCol = None,
    volume_col: VolumeCol = None,
    time_unit: TimeUnit = None,
    tz: TimeZone = None,
    repair: Annotated[
        bool,
        typer.Option(
            help="Sort rows and drop duplicate timestamps (counts are logged) instead of failing."
        ),
    ] = False,
    allow_data_issues: Annotated[
        bool,
        typer.Option(
            "--allow-data-issues",
            help="Run on data that fails the data check (extreme values, off-grid stamps, "
            "interpolated runs, OHLC violations); the findings go into run.json and the report.",
        ),
    ] = False,
    calendar: Annotated[
        str | None,
        typer.Option(
            help="Market calendar (exchange_calendars name, e.g. XNYS): trade only bars inside "
            "its sessions (DST and holidays included) and annualize by its sessions.",
        ),
    ] = None,
    periods_per_year: Annotated[
        float | None,
        typer.Option(
            help="Periods per year for Sharpe/volatility (default: inferred, 365 days for "
            "24/7 data, 252 sessions for data with empty weekends).",
        ),
    ] = None,
    no_header: Annotated[
        bool, typer.Option("--no-header", help="CSV without a header row (see --columns).")
    ] = False,
    columns: Annotated[
        str | None,
        typer.Option(help="CSV column names in file order, comma-separated (--no-header)."),
    ] = None,
    skip_rows: Annotated[
        int | None, typer.Option(help="CSV lines above the header to skip (default: detected).")
    ] = None,
    strategies_dir: Annotated[Path, typer.Option(help="Folder of user strategies.")] = Path(
        "strategies"
    ),
    model: ModelOpt = None,
    registry: RegistryOpt = Path("models"),
    min_confidence: MinConfidenceOpt = None,
    toxicity: ToxicityOpt = False,
    ml_threads: MlThreadsOpt = DEFAULT_ML_THREADS,
    regime: RegimeOpt = None,
    regime_transition: RegimeTransitionOpt = "30m",
    regime_confirm: RegimeConfirmOpt = 3,
    regime_exposure: RegimeExposureOpt = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False,
) -> None:
    """Backtest a strategy on one or more OHLCV files and write trades, equity and a report.

    \b
    Example:
      tradeloop backtest -s sma_cross -d BTC_USDT-1m.parquet -t 15m \
        --fee 0.001 -p fast=10 -p slow=30

    With --model NAME[:VERSION] every entry signal is scored by the model before the risk
    gate; the run record (run.json) names the model and version. The confidence sizes
    positions under a risk profile with sizing.use_confidence (the default profile; the
    permissive one of a plain backtest only filters).

    With --regime NAME[:VERSION] a regime model (`tradeloop regime fit`) filters the bars
    causally at every step: the regime lowers the leverage cap, scales entry sizes by its
    exposure and its confidence weighs the model's; regimes.csv and the report show them.
    """
    if seed < 0:  # checked here: a typer range would load pydantic for every backtest
        raise typer.BadParameter(f"{seed} is below 0", param_hint="'--seed'")
    from tradeloop.cli.memory import batch_command

    # entered before numpy is first imported (its BLAS sizes its thread pool then); the
    # process ends after the run: freed memory is kept for reuse, the collector paused
    with batch_command():
        setup_logging(logging.INFO if verbose else logging.WARNING)
        try:
            from tradeloop.analysis.validation import ValidationConfig
            from tradeloop.engine.config import RunConfig
            from tradeloop.engine.service import BacktestJob, run_backtest_job

            specs = _data_specs(
                list(data or []),
                list(symbol or []),
                exchange,
                market,
                cache_root,
                timeframe,
                (ts_col, open_col, high_col, low_col, close_col, volume_col),
                time_unit,
                repair,
                (no_header, columns, skip_rows),
                tz,
            )
            risk_rules = _risk_rules(risk)
            if fill_old is not None:
                err_console.print(
                    "[yellow]--fill is deprecated (removed in the next release): "
                    "use --fill-price[/]"
                )
                fill_price = fill_old
            model_job = model_options(model, registry, min_confidence, toxicity, ml_threads)
            job = BacktestJob(
                strategy=strategy,
                data=tuple(specs),
                config=RunConfig(
                    balance=balance,
                    fee=fee,
                    slippage_bps=slippage_bps,
                    fill_price=fill_price,  # type: ignore[arg-type]
                    post_only_entries=post_only_entries,
                    cash_buffer_pct=cash_buffer_pct,
                    timeframe=timeframe,
                    start=parse_time(start, field="--start") if start else None,
                    end=parse_time(end, field="--end") if end else None,
                    close_at_end=close_at_end,
                    risk=risk_rules,
                    periods_per_year=periods_per_year,
                ),
                params=_parse_params(list(param or [])),
                model=model_job,
                regime=regime_options(
                    regime, registry, regime_transition, regime_confirm, regime_exposure
                ),
                validation=ValidationConfig(
                    seed=seed, min_sharpe=sharpe_bar, n_trials=trials, mc_sims=mc_sims
                ),
                report=report,
                out=out,
                strategies_dir=strategies_dir,
                command=" ".join(sys.argv),
                allow_data_issues=allow_data_issues,
                calendar=calendar,
                equity_csv=equity_csv,
            )
            progress = _LazyProgress("backtest")
            try:
                outcome = run_backtest_job(job, progress=progress)
            finally:
                progress.close()
        except TradeloopError as exc:
            raise _fail(exc, verbose) from None
        _print_outcome(outcome)


def _risk_rules(risk: str | None) -> RiskConfig:
    """``--risk``: a profile name (``permissive``, ``default``) or a risk TOML file."""
    from tradeloop.risk.config import RiskConfig, load_risk_config

    if risk is None:
        return RiskConfig.permissive()
    if risk.strip().lower() in ("permissive", "default") and not Path(risk).is_file():
        return RiskConfig.from_profile(risk.strip().lower())
    return load_risk_config(Path(risk))


def _data_specs(
    files: list[Path],
    symbols: list[str],
    exchange: str | None,
    market: str,
    cache_root: Path | None,
    timeframe: str | None,
    columns: tuple[str | None, ...],
    time_unit: str | None,
    repair: bool,
    layout: tuple[bool, str | None, int | None] = (False, None, None),
    tz: str | None = None,
) -> list[DataSpec | CacheSpec]:
    """The data options as data sources: ``--data`` files, or ``--exchange`` cached series.

    ``columns`` are the ``--ts-col`` ... ``--volume-col`` names (None: detected by name).

    Raises
    ------
    ConfigError
        When both or neither are given, or the ``--symbol`` count does not match the files.
    """
    from tradeloop.data.loader import ColumnMap, CsvLayout
    from tradeloop.engine.runner import CacheSpec, DataSpec

    if exchange is not None:
        if files:
            raise ConfigError("give either --data files or --exchange with --symbol, not both")
        if not symbols:
            raise ConfigError("--exchange needs at least one --symbol (e.g. BTC/USDT)")
        if tz is not None:
            raise ConfigError("--tz reads --data files; the cache's series are stored in UTC")
        return [CacheSpec(exchange, sym, timeframe or "1m", market, cache_root) for sym in symbols]
    if not files:
        raise ConfigError(
            "give --data FILE (repeatable), or --exchange NAME --symbol SYMBOL to read "
            "the cache filled by `tradeloop data fetch`"
        )
    if symbols and len(symbols) != len(files):
        raise ConfigError(
            f"give one --symbol per --data file ({len(symbols)} symbols, {len(files)} files)"
        )
    column_map = ColumnMap(*columns) if any(v is not None for v in columns) else None
    csv_layout = CsvLayout.from_options(*layout)
    return [
        DataSpec(
            path,
            symbols[k] if symbols else None,
            column_map,
            time_unit,
            repair,
            layout=csv_layout,
            tz=tz,
        )
        for k, path in enumerate(files)
    ]


def _print_outcome(outcome: BacktestOutcome) -> None:
    """Show a finished backtest: metrics, model counts, validation, bias, speed, files."""
    from tradeloop.cli.runs_cmd import bias_table, metrics_table, validation_table

    result = outcome.result
    table = metrics_table(
        result.summary(), f"{result.strategy} · {', '.join(result.symbols)} · {result.timeframe}"
    )
    if result.intrabar.get("drilled"):
        table.add_row(
            "intrabar drill-downs", ", ".join(f"{k}={v}" for k, v in result.intrabar.items())
        )
    console.print(table)
    model_record = outcome.model
    if model_record is not None:
        counts = model_record["counts"]
        console.print(
            f"model {model_record['name']}:{model_record['version']}: "
            f"{counts['enriched']:,} entries scored ({counts['cold']:,} before the features "
            f"were ready), {counts['dropped']:,} dropped below "
            f"{model_record['min_confidence']:g}",
            highlight=False,
        )
    console.print(validation_table(outcome.analysis))
    console.print(bias_table(outcome.analysis))
    _print_risk_and_data(outcome.record)
    elapsed = outcome.run_seconds
    rate = result.bars_processed / elapsed if elapsed > 0 else float("inf")
    console.print(f"{result.bars_processed:,} bars in {elapsed:.2f}s ({rate:,.0f} bars/s)")
    console.print(f"run: {outcome.run_id} in {outcome.folder}")
    for name, path in outcome.paths.items():
        console.print(f"{name:>14}: {path}")


def _print_risk_and_data(record: dict[str, object]) -> None:
    """Warn about halts (above all one lasting to the end) and data issues run through."""
    risk = record.get("risk")
    if isinstance(risk, dict) and risk.get("halts"):
        halts = list(risk["halts"])
        days = float(risk.get("halted_days") or 0.0)
        reasons = risk.get("rejections_by_reason") or {}
        rejected = ", ".join(f"{n:,} {reason}" for reason, n in dict(reasons).items())
        console.print(
            f"risk: trading halted {len(halts)} time(s), {days:,.1f} days in all"
            + (f"; orders rejected: {rejected}" if rejected else ""),
            highlight=False,
        )
        shown = 5
        for halt in halts[:shown]:
            console.print(
                f"  halted {halt.get('start')} for {float(halt.get('days') or 0):,.2f} days "
                f"({halt.get('cause')}: {halt.get('detail')}), "
                + (f"lifted by {halt['lifted_by']}" if halt.get("lifted_by") else "to the end"),
                highlight=False,
            )
        if len(halts) > shown:
            console.print(f"  ... {len(halts) - shown} more in run.json and the report")
        if risk.get("halted_at_end"):
            last = halts[-1]
            err_console.print(
                f"[bold yellow]warning:[/] trading was halted from {last['start']} "
                f"({last['cause']}: {last['detail']}) to the end of the run, "
                f"{last['days']:,.1f} days without new positions; only a signed override "
                "lifts this halt (or set kill_switch.resume_after in the risk file)",
                highlight=False,
                soft_wrap=True,
            )
    issues = record.get("data_issues")
    if isinstance(issues, list) and issues:
        err_console.print(
            f"[bold yellow]warning:[/] ran on data with {len(issues)} data-check finding(s) "
            "(--allow-data-issues): "
            + "; ".join(f"{i['check']} {i['count']} in {i['source']}" for i in issues),
            highlight=False,
            soft_wrap=True,
        )


@app.command()
def strategies(
    strategies_dir: Annotated[Path, typer.Option(help="Folder of user strategies.")] = Path(
        "strategies"
    ),
    detail: Annotated[
        bool, typer.Option("--detail", help="Show each parameter's type, bounds and help.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the strategies found in the bundled examples and in the user strategies folder."""
    setup_logging()
    from tradeloop.strategy.registry import scan_strategies

    try:
        found, broken = scan_strategies(strategies_dir)
    except TradeloopError as exc:
        raise _fail(exc) from None
    for exc in broken.values():
        err_console.print(f"[yellow]warning:[/] {exc}")
    if as_json:
        import json

        listing = [
            {
                "name": name,
                "description": found[name].cls.describe(),
                "timeframes": list(found[name].cls.timeframes),
                "parameters": {
                    k: {"default": p.default, "describe": p.describe()}
                    for k, p in found[name].cls.parameters().items()
                },
                "from": found[name].origin,
            }
            for name in sorted(found)
        ]
        print(json.dumps(listing, indent=2, default=str))
        return
    rows = []
    for name in sorted(found):
        info = found[name]
        declared = info.cls.parameters()
        if detail:
            params = "\n".join(f"{k}: {p.describe()}" for k, p in declared.items())
        else:
            params = "\n".join(f"{k}={p.default!r}" for k, p in declared.items())
        origin = "example" if info.origin.startswith("tradeloop.") else info.origin
        timeframes = ", ".join(info.cls.timeframes) or "data's"
        rows.append((name, info.cls.describe(), timeframes, params or "-", origin))
    # a parameter line whole where it fits (``trailing_stop=0.0``), folded rather than cut
    widest = max((len(line) for row in rows for line in row[3].splitlines()), default=1)
    from rich.markup import escape
    from rich.text import Text

    table = Table(title="Strategies", show_lines=True)
    narrow = console.width < 100  # timeframes and origin under the name, not in columns
    table.add_column("name" if not narrow else "name\ntimeframes, from", overflow="fold")
    table.add_column("description", ratio=3)
    if not narrow:
        table.add_column("timeframes", overflow="fold")
    table.add_column("parameters (defaults)", ratio=2, overflow="fold", min_width=min(widest, 24))
    if not narrow:
        table.add_column("from", style="dim", overflow="fold")
    for name, describe, timeframes, params, origin in rows:
        if narrow:
            cell = f"[bold cyan]{escape(name)}[/]\n{timeframes}\n[dim]{escape(origin)}[/]"
            table.add_row(cell, Text(describe), Text(params))
        else:
            table.add_row(
                Text(name, style="bold cyan"), Text(describe), timeframes, Text(params), origin
            )
    console.print(table)


app.add_typer(data_app, name="data")
register_run_commands(app)
register_risk_commands(app)
register_ml_commands(app)
register_signal_commands(app)
register_paper_commands(app)
register_live_commands(app)
register_regime_commands(app)
register_loop_command(app)
register_optimize_commands(app)
register_learn_commands(app)
register_serve_commands(app)
register_state_commands(app)


def _command_name(argv: list[str]) -> str:
    """``tradeloop COMMAND [SUBCOMMAND]`` of ``argv`` (the script's arguments)."""
    words = ["tradeloop"]
    group: object = typer.main.get_command(app)
    for arg in argv:
        commands = getattr(group, "commands", None)
        if not isinstance(commands, dict) or arg.startswith("-") or arg not in commands:
            break
        words.append(arg)
        group = commands[arg]
    return " ".join(words)


def _outline(typer_app: typer.Typer, keep: str | None = None) -> typer.Typer | None:
    """A copy of ``typer_app`` whose commands keep their names and help but take no
    parameters, and whose command groups are empty, except the top-level command or group
    named ``keep``, which stays whole. None when ``keep`` names none of them.

    Typer builds every parameter of every command (reading their type hints) before it
    runs one or prints any help. With no ``keep`` the outline prints the same top-level
    ``--help`` page; with ``keep`` it runs that command exactly as the full app would.
    """
    import copy

    def blank(callback: Any) -> Any:
        if not callable(callback):  # None, or typer's placeholder for "not set"
            return callback

        def stub() -> None:
            """Never called: the outline only prints help."""

        stub.__name__, stub.__qualname__ = callback.__name__, callback.__qualname__
        stub.__doc__ = callback.__doc__
        return stub

    outline = copy.copy(typer_app)
    kept = False
    commands = []
    for info in typer_app.registered_commands:
        name = info.name if isinstance(info.name, str) else None
        if name is None and callable(info.callback):
            name = typer.main.get_command_name(info.callback.__name__)
        if keep is not None and name == keep:
            commands.append(info)
            kept = True
            continue
        command = copy.copy(info)
        command.callback = blank(info.callback)
        commands.append(command)
    groups = []
    for info in typer_app.registered_groups:
        if keep is not None and isinstance(info.name, str) and info.name == keep:
            groups.append(info)
            kept = True
            continue
        group = copy.copy(info)
        sub = group.typer_instance
        if sub is not None:
            sub = copy.copy(sub)
            sub.registered_commands, sub.registered_groups = [], []
            if sub.registered_callback is not None:
                sub.registered_callback = copy.copy(sub.registered_callback)
                sub.registered_callback.callback = blank(sub.registered_callback.callback)
            group.typer_instance = sub
        group.callback = blank(group.callback)
        groups.append(group)
    if keep is not None and not kept:
        return None
    outline.registered_commands, outline.registered_groups = commands, groups
    return outline


def app_for(args: list[str]) -> typer.Typer:
    """The app to run ``tradeloop ARGS`` with: the top-level ``--help`` and every top-level
    command run on an outline of the app (:func:`_outline`) that builds only the command
    named; anything else (options first, an unknown command, shell completion) on the
    full app."""
    import os

    if not args or any(key.endswith("_COMPLETE") for key in os.environ):
        return app
    if args == ["--help"]:
        return _outline(app) or app
    if args[0].startswith("-"):
        return app
    return _outline(app, keep=args[0]) or app


def main() -> None:
    """Run the command line on ``sys.argv`` (the ``tradeloop`` script runs it through
    :func:`run`, which also ends the process).

    A command that reaches a package of a missing extra ends with one line naming the extra
    and its install command (exit 2), not a traceback; commands that need an extra check it
    first (:func:`tradeloop.cli.failure.require`), this catches the rest.
    """
    from tradeloop.cli import coercion
    from tradeloop.config.redact import install_redaction, register_arguments
    from tradeloop.core.extras import MissingExtraError, extra_of

    install_redaction()
    register_arguments(sys.argv[1:])  # a DSN's password or an API key given as an option
    coercion.install()  # plain option values without pydantic (about 0.2 s a process)
    try:
        app_for(sys.argv[1:])()
    except MissingExtraError as exc:
        raise SystemExit(fail(exc).exit_code) from None
    except ModuleNotFoundError as exc:
        extra = extra_of(exc.name)
        if extra is None:
            raise
        missing = MissingExtraError(extra, _command_name(sys.argv[1:]))
        raise SystemExit(fail(missing).exit_code) from None


def run() -> None:
    """Entry point of the ``tradeloop`` script and of ``python -m tradeloop``: :func:`main`,
    then the process ends; after a batch command (``backtest``) without the interpreter's
    teardown (:func:`tradeloop.cli.memory.end_batch_process`)."""
    from tradeloop.cli.memory import end_batch_process

    try:
        main()
    except SystemExit as exc:
        end_batch_process(exc.code)
        raise
    end_batch_process(0)


if __name__ == "__main__":
    run()
