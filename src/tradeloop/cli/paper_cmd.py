"""``tradeloop paper`` (a paper-trading session on live exchange data) and ``tradeloop parity``
(replay a paper run through the backtest engine and diff)."""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tradeloop.cli.console import Console, Table
from tradeloop.cli.failure import fail
from tradeloop.cli.ml_cmd import MinConfidenceOpt, MlThreadsOpt, ModelOpt, RegistryOpt, ToxicityOpt
from tradeloop.cli.regime_cmd import (
    RegimeConfirmOpt,
    RegimeExposureOpt,
    RegimeOpt,
    RegimeTransitionOpt,
    regime_options,
)
from tradeloop.core.errors import ConfigError, TradeloopError
from tradeloop.ml.threads import DEFAULT_ML_THREADS

if TYPE_CHECKING:
    from tradeloop.engine.paper import PaperSession

__all__ = ["register", "stop_on_signals"]

console = Console()
err_console = Console(stderr=True)


_fail = fail  # the CLI's one error report (tradeloop.cli.failure)


def _existing_state(state: str | None) -> str:
    """The state store to read: ``state`` or the configured one; a missing file is an error
    (opening it would create an empty store)."""
    from tradeloop.config.settings import load_settings

    target = state or str(load_settings().state_url)
    if "://" not in target and not Path(target).exists():
        raise ConfigError(f"state store {target} does not exist")
    return target


def stop_on_signals(session: PaperSession) -> None:
    """SIGINT and SIGTERM ask ``session`` to stop after the event in flight (said on stderr)."""

    def _stop(signum: int, _frame: object) -> None:
        err_console.print(f"{signal.Signals(signum).name}: stopping after the current event")
        session.request_stop()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)


def _risk_setting(value: str) -> str | dict[str, object]:
    """A profile name as is; a ``.toml`` file's parsed content (checked, errors name it)."""
    from tradeloop.risk.config import load_risk_table

    if Path(value).suffix.lower() != ".toml":
        return value
    return load_risk_table(value)  # checked: a clear error naming the file and the setting


def paper(
    strategy: Annotated[
        str,
        typer.Option("--strategy", "-s", help="Strategy name, pkg.module:Class or file.py:Class."),
    ],
    symbol: Annotated[
        list[str], typer.Option("--symbol", help="Symbol to trade, e.g. BTC/USDT (repeatable).")
    ],
    exchange: Annotated[
        str,
        typer.Option(
            help="Data venue: binance or bybit (ccxt), or alpaca (US equities, 1m bars; "
            "keys TRADELOOP_ALPACA_API_KEY/_API_SECRET; add --calendar XNYS)."
        ),
    ] = "binance",
    market: Annotated[str, typer.Option(help="spot or perp (USD-M linear perpetuals).")] = "spot",
    timeframe: Annotated[
        str, typer.Option(help="Bar timeframe of the stream and the strategy.")
    ] = "1m",
    balance: Annotated[float, typer.Option(help="Starting paper cash.")] = 10_000.0,
    slippage_bps: Annotated[float, typer.Option(help="Adverse slippage in basis points.")] = 0.0,
    fill_price: Annotated[
        str, typer.Option(help="Fill market orders at 'next_open' or at the signal bar's 'close'.")
    ] = "next_open",
    post_only_entries: Annotated[
        bool,
        typer.Option(
            "--post-only-entries",
            help="Enter with post-only limit orders at the last close (maker fee): filled at "
            "the limit only if the next bar trades through it, refused if its open would "
            "take, else expired. Live: sent post-only to the venue.",
        ),
    ] = False,
    cash_buffer_pct: Annotated[
        float,
        typer.Option(
            help="Size buy entries when sent to leave this fraction of the cash unspent at the "
            "last price (e.g. 0.005), so a higher next open still pays for them; the same "
            "rule in paper and live. 0: sizes unchanged.",
        ),
    ] = 0.0,
    risk: Annotated[
        str,
        typer.Option(
            help="Risk profile (permissive or default) or a risk .toml file, as for "
            "'tradeloop backtest --risk'. The run stores the rules; a restart with other "
            "rules is refused. Kill-switch state (a daily-loss halt) survives restarts."
        ),
    ] = "permissive",
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="Strategy parameter key=value (repeatable)."),
    ] = None,
    run_id: Annotated[
        str | None,
        typer.Option(
            help="Run id in the state store (default: strategy, exchange, symbols and "
            "timeframe). The same id continues the run."
        ),
    ] = None,
    state: Annotated[
        str | None,
        typer.Option(
            help="State store: SQLite file or postgresql:// URL (default: setting state_url)."
        ),
    ] = None,
    status_file: Annotated[
        Path, typer.Option(help="status.json rewritten atomically every iteration.")
    ] = Path("status.json"),
    warmup: Annotated[
        int, typer.Option(help="Closed bars fetched over REST before trading.")
    ] = 500,
    max_bars: Annotated[int, typer.Option(help="Bars kept per symbol for the strategy.")] = 100_000,
    until: Annotated[
        str | None, typer.Option(help="Stop after the bar opened at this UTC time (ISO or date).")
    ] = None,
    fresh: Annotated[bool, typer.Option(help="Delete a stored run of the same id first.")] = False,
    stale_after: Annotated[
        float, typer.Option(help="Reconnect when the stream is silent this many seconds.")
    ] = 60.0,
    heartbeat: Annotated[float, typer.Option(help="Seconds between heartbeat log lines.")] = 60.0,
    alert_after_failures: Annotated[
        int, typer.Option(help="Alert after this many failed reconnections in a row.")
    ] = 5,
    discord_webhook: Annotated[
        str | None,
        typer.Option(
            help="Discord webhook URL for alerts (default: the configured one; none: log only)."
        ),
    ] = None,
    calendar: Annotated[
        str | None,
        typer.Option(
            help="Trade only in this market calendar's sessions (e.g. XNYS); default 24/7."
        ),
    ] = None,
    allow_data_issues: Annotated[
        bool,
        typer.Option(
            "--allow-data-issues",
            help="Start even when the warm-up history fails the data check (logged).",
        ),
    ] = False,
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
    journal: Annotated[
        Path | None,
        typer.Option(
            help="The learning loop's analytics store (DuckDB): every signal, executed or "
            "rejected with the risk reason, is journaled there for `tradeloop learn report` "
            "(default: setting analytics_path)."
        ),
    ] = None,
    no_journal: Annotated[
        bool, typer.Option("--no-journal", help="Do not journal the run's signals.")
    ] = False,
    log_file: Annotated[Path | None, typer.Option(help="Also write JSON-lines logs here.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at INFO level.")] = False,
) -> None:
    """Paper-trade a strategy on live exchange candles.

    The same strategy object and fill rules as `tradeloop backtest`, fed by the exchange's
    WebSocket kline stream (missed bars are backfilled over REST). Everything is persisted at
    every bar: kill the process at any moment and start it again with the same arguments to
    continue. SIGINT/SIGTERM stop it cleanly (exit 0). Endpoints come from settings
    (TRADELOOP_<EXCHANGE>_URL, TRADELOOP_<EXCHANGE>_WS_URL, TRADELOOP_<EXCHANGE>_TESTNET).

    --model NAME[:VERSION] scores every entry signal before the risk gate, as in a backtest.
    The run stores the model's name and resolved version: a restart keeps that version and
    `tradeloop parity` replays with it.

    --regime NAME[:VERSION] filters a regime model at every bar, as in a backtest (leverage
    cap, gradual exposure, regime weight); the status file shows the regime.
    """
    from tradeloop.alerts import alerter_from_settings
    from tradeloop.config.logging import setup_logging
    from tradeloop.config.settings import load_settings
    from tradeloop.core.time import parse_time
    from tradeloop.engine.paper import PaperConfig, PaperSession, default_run_id
    from tradeloop.strategy.registry import load_strategy_class

    setup_logging(logging.INFO if verbose else logging.WARNING, log_file)
    try:
        from tradeloop.cli.app import _parse_params

        settings = load_settings()
        cls = load_strategy_class(strategy, strategies_dir)
        strat = cls(**_parse_params(param or []))
        symbols = tuple(s.strip().upper() for s in symbol)
        if not symbols:
            raise ConfigError("give at least one --symbol")
        config = PaperConfig(
            exchange=exchange.lower(),
            market=market,
            symbols=symbols,
            timeframe=timeframe,
            balance=balance,
            slippage_bps=slippage_bps,
            fill_price=fill_price,
            post_only_entries=post_only_entries,
            cash_buffer_pct=cash_buffer_pct,
            risk=_risk_setting(risk),
            run_id=run_id
            or default_run_id(strat.strategy_name(), exchange.lower(), symbols, timeframe),
            state_url=state or str(settings.state_url),
            status_path=status_file,
            warmup_bars=warmup,
            max_bars=max_bars,
            until_ns=parse_time(until, field="--until") if until else None,
            stale_after_s=stale_after,
            heartbeat_s=heartbeat,
            alert_after_failures=alert_after_failures,
            fresh=fresh,
            calendar=calendar,
            allow_data_issues=allow_data_issues,
            settings=settings,
            model=model,
            model_registry=registry,
            min_confidence=min_confidence,
            use_toxicity=toxicity,
            ml_threads=ml_threads,
            regime=regime_options(
                regime, registry, regime_transition, regime_confirm, regime_exposure
            ),
            journal_path=None if no_journal else (journal or settings.analytics_path),
        )
        alerter = alerter_from_settings(discord_webhook or settings.discord_webhook_url)
        session = PaperSession(strat, config, alerter=alerter)
    except TradeloopError as exc:
        raise _fail(exc) from None

    stop_on_signals(session)
    err_console.print(
        f"paper run [bold]{config.run_id}[/]: {strat.strategy_name()} on {exchange} "
        f"{', '.join(symbols)} {timeframe}; state in {config.state_url}; "
        f"status in {config.status_path}",
        highlight=False,
    )
    from contextlib import nullcontext

    from tradeloop.ml.threads import bounded_threads

    try:
        with bounded_threads(ml_threads) if model is not None else nullcontext():
            session.run()
    except TradeloopError as exc:
        raise _fail(exc, verbose) from None
    if session.enrichment is not None:
        counts = session.enrichment.counts
        console.print(
            f"model {session.enrichment.spec}: {counts.enriched:,} entries scored, "
            f"{counts.dropped:,} dropped below {session.enrichment.min_confidence:g}",
            highlight=False,
        )
    kernel = session.kernel
    if kernel is not None:
        console.print(
            f"stopped: equity {kernel.portfolio.equity:,.2f}, {len(kernel.portfolio.trades)} "
            f"closed trade(s), {len(kernel.portfolio.positions)} open position(s)",
            highlight=False,
        )


def parity(
    run_id: Annotated[str, typer.Argument(help="Run id of a paper session.")],
    state: Annotated[
        str | None,
        typer.Option(
            help="State store: SQLite file or postgresql:// URL (default: setting state_url)."
        ),
    ] = None,
    strategies_dir: Annotated[Path, typer.Option(help="Folder of user strategies.")] = Path(
        "strategies"
    ),
    show: Annotated[int, typer.Option(help="Differences to list.")] = 20,
    registry: Annotated[
        Path | None,
        typer.Option(
            "--registry",
            help="Model folder of a run with --model (default: the one stored with the run).",
        ),
    ] = None,
) -> None:
    """Replay a paper run's recorded bars through the backtest engine and diff every order and
    trade (time, price, size, exit reason). Exit code 0 when there is no difference, 1 otherwise."""
    from tradeloop.config.logging import setup_logging
    from tradeloop.engine.parity import parity_report
    from tradeloop.store.state import open_state_store

    setup_logging()
    try:
        target = _existing_state(state)
        with open_state_store(target) as store:
            report = parity_report(
                store, run_id, strategies_dir=str(strategies_dir), registry=registry
            )
    except TradeloopError as exc:
        raise _fail(exc) from None
    table = Table(title=f"Parity: paper run {run_id} vs backtest replay")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("bars replayed (live)", f"{report.bars:,} ({report.live_bars:,})")
    table.add_row("orders compared", f"{report.orders:,}")
    table.add_row("trades compared", f"{report.trades:,}")
    table.add_row("differences", f"{len(report.differences):,}")
    console.print(table)
    if report.differences:
        diffs = Table(title="Differences")
        for col in ("kind", "#", "field", "paper", "backtest"):
            diffs.add_column(col)
        for d in report.differences[:show]:
            diffs.add_row(d.kind, str(d.index), d.field, repr(d.paper), repr(d.backtest))
        console.print(diffs)
        raise typer.Exit(1)
    console.print("[green]identical[/]: every order and trade matches the backtest")


def paper_runs(
    state: Annotated[
        str | None,
        typer.Option(help="State store: SQLite file or postgresql:// URL (default: settings)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the paper and live runs in the state store: strategy, symbols, last bar, steps,
    equity, return, trades, open positions and risk state; live runs also their slippage (mean
    bps and total cost of expected vs actual fill prices; `tradeloop live report` per fill)."""
    import json

    from tradeloop.config.settings import load_settings
    from tradeloop.engine.paper import run_summaries
    from tradeloop.store.state import open_state_store

    try:
        try:
            target = _existing_state(state)
        except ConfigError:
            if state is not None:  # a store named on the command line must exist
                raise
            target, rows = str(load_settings().state_url), []  # nothing run here yet
        else:
            with open_state_store(target) as store:
                rows = run_summaries(store)
    except TradeloopError as exc:
        raise _fail(exc) from None
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        console.print(f"no runs in {target}")
        return
    from rich import box

    if console.width < 100:  # a narrow terminal: one block per run instead of a wide table
        _print_run_blocks(rows, target)
        return
    table = Table(title=f"Runs in {target}", box=box.SIMPLE_HEAD, pad_edge=False)
    columns = ("run", "last bar (UTC)", "steps", "equity", "return")
    live = any(r.get("slippage_cost") is not None for r in rows)
    extra = ("slippage bps", "slippage cost") if live else ()
    for name in (*columns, "trades", "open", "risk", *extra):
        numeric = name in ("steps", "equity", "return", "trades", "open", *extra)
        table.add_column(name, justify="right" if numeric else "left", overflow="fold")
    for r in rows:
        ret = "" if r["return_pct"] is None else f"{r['return_pct']:+.2f}%"
        equity = "" if r["equity"] is None else f"{r['equity']:,.2f}"
        table.add_row(
            r["run_id"],
            (r["last_bar"] or "")[:16].replace("T", " "),
            f"{r['steps']:,}",
            equity,
            ret,
            str(r["trades"]),
            str(r["open_positions"]),
            r["risk_state"],
            *(
                (
                    "" if r["slippage_bps"] is None else f"{r['slippage_bps']:+.2f}",
                    "" if r["slippage_cost"] is None else f"{r['slippage_cost']:+,.4f}",
                )
                if live
                else ()
            ),
        )
    console.print(table)


def _print_run_blocks(rows: list[dict[str, Any]], target: str) -> None:
    """``paper-runs`` below 100 columns: the run id on its own line, its figures below."""
    console.print(f"Runs in {target}", highlight=False)
    for r in rows:
        parts = [
            f"last bar {(r['last_bar'] or '-')[:16].replace('T', ' ')}",
            f"steps {r['steps']:,}",
            f"equity {'-' if r['equity'] is None else format(r['equity'], ',.2f')}",
            f"return {'-' if r['return_pct'] is None else format(r['return_pct'], '+.2f') + '%'}",
            f"trades {r['trades']}",
            f"open {r['open_positions']}",
            f"risk {r['risk_state']}",
        ]
        if r.get("slippage_bps") is not None:
            parts.append(f"slippage {r['slippage_bps']:+.2f} bps")
        console.print(f"[bold]{r['run_id']}[/]", highlight=False, soft_wrap=True)
        console.print("  " + " · ".join(parts), highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``paper``, ``paper-runs`` and ``parity`` to ``app``."""
    app.command("paper")(paper)
    app.command("paper-runs")(paper_runs)
    app.command("parity")(parity)
