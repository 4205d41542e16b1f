"""``tradeloop live``: the paper session (or ``tradeloop run``'s loop) on a real venue;
``tradeloop live flatten`` and ``tradeloop live report`` (slippage per fill and in total).

The options are ``tradeloop paper``'s (the same strategy, risk, state and status handling)
plus the venue's: ``--broker`` (``ccxt`` or ``alpaca``), ``--exchange``/``--market``, the
real-money switch with its caps, reconciliation and the user-data stream. Testnet/sandbox
endpoints unless ``--real-money`` is given and confirmed.
"""

from __future__ import annotations

import inspect
import logging
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from tradeloop.cli import paper_cmd
from tradeloop.cli.console import Console, Table
from tradeloop.cli.failure import fail, require
from tradeloop.cli.regime_cmd import regime_options
from tradeloop.core.errors import ConfigError, TradeloopError

__all__ = ["register_live_commands"]

console = Console()
err_console = Console(stderr=True)

#: the ``tradeloop paper`` options ``tradeloop live`` takes over (same names, help, defaults)
_PAPER_OPTIONS = (
    "strategy",
    "symbol",
    "exchange",
    "market",
    "timeframe",
    "balance",
    "slippage_bps",
    "fill_price",
    "post_only_entries",
    "cash_buffer_pct",
    "risk",
    "param",
    "run_id",
    "state",
    "status_file",
    "warmup",
    "max_bars",
    "until",
    "fresh",
    "stale_after",
    "heartbeat",
    "alert_after_failures",
    "discord_webhook",
    "calendar",
    "strategies_dir",
    "model",
    "registry",
    "min_confidence",
    "toxicity",
    "ml_threads",
    "regime",
    "regime_transition",
    "regime_confirm",
    "regime_exposure",
    "journal",
    "no_journal",
    "log_file",
    "verbose",
)


_fail = fail  # the CLI's one error report (tradeloop.cli.failure)


def live(
    ctx: typer.Context,
    broker: Annotated[
        str, typer.Option(help="Venue broker: ccxt (crypto exchanges) or alpaca (US equities).")
    ] = "ccxt",
    real_money: Annotated[
        bool,
        typer.Option(
            "--real-money",
            help="Trade real money (default: the venue's testnet/sandbox/paper endpoints). "
            "Needs --max-order-notional and --max-daily-notional and a confirmation.",
        ),
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", help="Answer the real-money confirmation with yes.")
    ] = False,
    max_order_notional: Annotated[
        float | None, typer.Option(help="Refuse an entry order above this notional (quote).")
    ] = None,
    max_daily_notional: Annotated[
        float | None, typer.Option(help="Refuse entries once a UTC day's notional passes this.")
    ] = None,
    reconcile_every: Annotated[
        float, typer.Option(help="Seconds between reconciliations with the venue (0: at start).")
    ] = 300.0,
    reconcile_policy: Annotated[
        str,
        typer.Option(
            help="On a difference with the venue: 'adopt' its balances/positions/orders, or "
            "'halt' trading (both list the differences in the log, an alert and status.json)."
        ),
    ] = "adopt",
    stream: Annotated[
        bool,
        typer.Option(help="Use the venue's user-data stream (--no-stream: REST polling only)."),
    ] = True,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Run a loop.toml (as 'tradeloop run') on the venue instead of one strategy.",
        ),
    ] = None,
    **options: Any,
) -> None:
    """Trade a strategy (or a loop.toml) live on a venue: the same kernel, step, risk engine,
    state store and status file as `tradeloop paper`, with orders sent to the venue.

    Orders carry client ids derived from the run and the order, so a retry or a restart never
    places one twice; fills come from the venue's user-data stream (REST polling while it is
    down). At start and every --reconcile-every seconds the venue's balances, positions and
    open orders are compared and adopted (or trading halts). A circuit breaker puts the risk
    engine into reducing-only while the venue fails. With ccxt a position's stop-loss,
    take-profit and trailing stop rest at the venue (USD-M: reduce-only STOP_MARKET /
    TAKE_PROFIT_MARKET; spot: STOP_LOSS / TAKE_PROFIT, both as one OCO list), one
    cancelling the other, a trailing stop cancelled and replaced as it moves, so the
    position stays protected while the bot is down; with Alpaca the bot watches them.
    SIGINT/SIGTERM stop after the event in flight with everything stored. Keys:
    TRADELOOP_<EXCHANGE>_API_KEY / _API_SECRET (or _SECRET_COMMAND), environment or .env.

    Subcommands: `tradeloop live flatten` cancels open orders and closes positions;
    `tradeloop live report` lists every fill's expected vs actual price (slippage).
    """
    if ctx.invoked_subcommand is not None:
        return
    require("live", "tradeloop live")
    options["exchange"] = resolve_exchange_or_fail(broker, options.get("exchange"))
    opts = live_options(
        broker=broker,
        venue=options["exchange"],
        real_money=real_money,
        yes=yes,
        max_order_notional=max_order_notional,
        max_daily_notional=max_daily_notional,
        reconcile_every=reconcile_every,
        reconcile_policy=reconcile_policy,
        stream=stream,
        can_prompt=True,
    )
    if config is not None:
        _run_loop(config, opts, options)
    else:
        _run_strategy(opts, options)


def resolve_exchange_or_fail(broker: str, exchange: str | None) -> str:
    """:func:`resolve_exchange`, a refusal ending the command with its message."""
    try:
        return resolve_exchange(broker, exchange)
    except TradeloopError as exc:
        raise _fail(exc) from None


def live_options(
    *,
    broker: str,
    venue: str,
    real_money: bool,
    yes: bool,
    max_order_notional: float | None,
    max_daily_notional: float | None,
    reconcile_every: float,
    reconcile_policy: str,
    stream: bool,
    can_prompt: bool,
) -> Any:
    """The :class:`~tradeloop.engine.live_session.LiveOptions` of ``tradeloop live``'s options
    (also ``tradeloop serve --live``'s), with its safety checks: testnet unless
    ``--real-money``; real money needs both caps and a confirmation, asked when
    ``can_prompt`` and not ``yes``; a process that cannot ask (a server) needs ``--yes``.
    A refusal ends the command (exit 1) with nothing started."""
    from tradeloop.engine.live_session import LiveOptions
    from tradeloop.execution.venue_broker import NotionalCaps

    try:
        opts = LiveOptions(
            broker=broker.lower(),
            real_money=real_money,
            caps=NotionalCaps(max_order_notional, max_daily_notional),
            reconcile_every_s=reconcile_every,
            reconcile_policy=reconcile_policy,  # type: ignore[arg-type]
            stream=stream,
        )
        if real_money and not yes and not can_prompt:
            raise ConfigError(
                "--real-money in a server needs --yes (it cannot ask for the confirmation)"
            )
    except (TradeloopError, ValueError) as exc:
        raise _fail(exc if isinstance(exc, TradeloopError) else ConfigError(str(exc))) from None
    if (
        real_money
        and not yes
        and not typer.confirm(
            f"Trade REAL MONEY on {venue} (caps: {max_order_notional} per order, "
            f"{max_daily_notional} per day)?",
            default=False,
        )
    ):
        err_console.print("not confirmed: nothing was started")
        raise typer.Exit(1)
    return opts


#: the data venue ``tradeloop live`` uses for a broker when ``--exchange`` is not given
DEFAULT_EXCHANGE = {"ccxt": "binance", "alpaca": "alpaca"}


def resolve_exchange(broker: str, exchange: str | None) -> str:
    """The data venue of a live run: ``--exchange`` if given, else the broker's default
    (``alpaca`` for ``--broker alpaca``, ``binance`` for ``--broker ccxt``).

    Raises
    ------
    ConfigError
        An unknown broker, or an exchange the broker cannot trade (``--broker alpaca`` with a
        ccxt exchange, ``--broker ccxt`` with ``--exchange alpaca``); both options are named.
    """
    from tradeloop.adapters.market import VENUE_FEEDS

    b = broker.lower()
    if b not in DEFAULT_EXCHANGE:
        raise ConfigError(f"--broker {broker!r}: expected one of {', '.join(DEFAULT_EXCHANGE)}")
    if exchange is None:
        return DEFAULT_EXCHANGE[b]
    ex = exchange.lower()
    if b == "alpaca" and ex != "alpaca":
        raise ConfigError(
            f"--broker alpaca trades US equities on Alpaca; --exchange {exchange!r} is a ccxt "
            "exchange (use --exchange alpaca, or leave --exchange out, or --broker ccxt)"
        )
    if b == "ccxt" and ex in VENUE_FEEDS:
        raise ConfigError(
            f"--broker ccxt trades crypto exchanges; --exchange {exchange!r} needs "
            f"--broker {ex} (or leave --exchange out)"
        )
    return ex


def _run_strategy(opts: Any, o: dict[str, Any]) -> None:
    from contextlib import nullcontext

    from tradeloop.alerts import alerter_from_settings
    from tradeloop.cli.app import _parse_params
    from tradeloop.config.logging import setup_logging
    from tradeloop.config.settings import load_settings
    from tradeloop.core.time import parse_time
    from tradeloop.engine.live_session import LiveSession
    from tradeloop.engine.paper import PaperConfig, default_run_id
    from tradeloop.ml.threads import bounded_threads
    from tradeloop.strategy.registry import load_strategy_class

    setup_logging(logging.INFO if o["verbose"] else logging.WARNING, o["log_file"])
    try:
        if not o["strategy"] or not o["symbol"]:
            raise ConfigError("give --strategy and at least one --symbol (or --config loop.toml)")
        settings = load_settings()
        cls = load_strategy_class(o["strategy"], o["strategies_dir"])
        strat = cls(**_parse_params(o["param"] or []))
        symbols = tuple(s.strip().upper() for s in o["symbol"])
        exchange = o["exchange"].lower()
        config = PaperConfig(
            exchange=exchange,
            market=o["market"],
            symbols=symbols,
            timeframe=o["timeframe"],
            balance=o["balance"],
            slippage_bps=o["slippage_bps"],
            fill_price=o["fill_price"],
            post_only_entries=bool(o["post_only_entries"]),
            cash_buffer_pct=float(o["cash_buffer_pct"]),
            risk=paper_cmd._risk_setting(o["risk"]),  # type: ignore[arg-type]
            run_id=o["run_id"]
            or "live-" + default_run_id(strat.strategy_name(), exchange, symbols, o["timeframe"]),
            state_url=o["state"] or str(settings.state_url),
            status_path=o["status_file"],
            warmup_bars=o["warmup"],
            max_bars=o["max_bars"],
            until_ns=parse_time(o["until"], field="--until") if o["until"] else None,
            stale_after_s=o["stale_after"],
            heartbeat_s=o["heartbeat"],
            alert_after_failures=o["alert_after_failures"],
            fresh=o["fresh"],
            calendar=o["calendar"],
            settings=settings,
            model=o["model"],
            model_registry=o["registry"],
            min_confidence=o["min_confidence"],
            use_toxicity=o["toxicity"],
            ml_threads=o["ml_threads"],
            regime=regime_options(
                o["regime"],
                o["registry"],
                o["regime_transition"],
                o["regime_confirm"],
                o["regime_exposure"],
            ),
            journal_path=None if o["no_journal"] else (o["journal"] or settings.analytics_path),
        )
        alerter = alerter_from_settings(o["discord_webhook"] or settings.discord_webhook_url)
        session = LiveSession(strat, config, alerter=alerter, live=opts)
    except TradeloopError as exc:
        raise _fail(exc) from None
    paper_cmd.stop_on_signals(session)
    err_console.print(
        f"live run [bold]{config.run_id}[/] ({'REAL MONEY' if opts.real_money else 'testnet'}): "
        f"{strat.strategy_name()} on {opts.broker}:{exchange} {', '.join(symbols)} "
        f"{config.timeframe}; state in {config.state_url}; status in {config.status_path}",
        highlight=False,
    )
    try:
        with bounded_threads(o["ml_threads"]) if o["model"] is not None else nullcontext():
            session.run()
    except TradeloopError as exc:
        raise _fail(exc) from None
    _print_summary(session)


def _run_loop(path: Path, opts: Any, o: dict[str, Any]) -> None:
    from dataclasses import replace

    from tradeloop.alerts import alerter_from_settings
    from tradeloop.config.logging import setup_logging
    from tradeloop.config.settings import load_settings
    from tradeloop.engine.live_session import LiveLoopSession
    from tradeloop.engine.loop import build_strategy
    from tradeloop.engine.loop_config import load_loop_config

    setup_logging(logging.INFO if o["verbose"] else logging.WARNING, o["log_file"])
    try:
        cfg = load_loop_config(path)
        resolve_exchange(opts.broker, cfg.run.exchange)  # loop.toml's [run] exchange
        build_strategy(cfg)
        settings = load_settings()
        alerter = alerter_from_settings(o["discord_webhook"] or settings.discord_webhook_url)
        session = LiveLoopSession(
            cfg, settings=settings, alerter=alerter, config_path=path, live=opts
        )
        if o["fresh"]:
            session.config = replace(session.config, fresh=True)
    except TradeloopError as exc:
        raise _fail(exc) from None
    paper_cmd.stop_on_signals(session)
    try:
        session.run()
    except TradeloopError as exc:
        raise _fail(exc) from None
    _print_summary(session)


def _print_summary(session: Any) -> None:
    kernel = session.kernel
    if kernel is None:
        return
    p = kernel.portfolio
    table = Table(title=f"Live run {session.config.run_id}")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("equity", f"{p.equity:,.2f}")
    table.add_row("closed trades", f"{len(p.trades):,}")
    table.add_row("open positions", f"{len(p.positions):,}")
    broker = session.venue_broker
    if broker is not None:
        slip = broker.slippage_summary()
        table.add_row("fills", f"{int(slip['fills']):,}")
        table.add_row("mean slippage (bps)", f"{slip['mean_bps']:+.2f}")
        table.add_row("slippage cost", f"{slip['total_cost']:+,.4f}")
        table.add_row("working orders", f"{len(broker.working_orders()):,}")
        table.add_row("circuit breaker", broker.breaker.state.value)
        table.add_row("reconciliations", f"{session.reconciliations:,}")
    console.print(table)


def flatten(
    run_id: Annotated[str, typer.Option(help="The live run whose venue account to flatten.")],
    state: Annotated[
        str | None,
        typer.Option(help="State store: SQLite file or postgresql:// URL (default: settings)."),
    ] = None,
    real_money: Annotated[
        bool, typer.Option("--real-money", help="The run trades real money (its endpoints).")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for a confirmation.")] = False,
) -> None:
    """Cancel every open order of the run's symbols at the venue and close its positions
    (reduce-only market orders; spot: sell the base asset held). The next `tradeloop live`
    start reconciles the run with the flat account."""
    require("live", "tradeloop live flatten")
    from tradeloop.config.logging import setup_logging
    from tradeloop.config.settings import load_settings
    from tradeloop.engine.factories import VenueSpec, make_venue_client
    from tradeloop.execution.flatten import flatten_account
    from tradeloop.store.state import open_state_store

    setup_logging()
    try:
        target = paper_cmd._existing_state(state)
        with open_state_store(target) as store:
            meta = store.load_run_meta(run_id)
        if meta is None or meta.get("mode") != "live":
            raise ConfigError(f"no live run {run_id!r} in {target}")
        if real_money != bool(meta.get("real_money")):
            raise ConfigError(
                f"run {run_id!r} was started {'with' if meta.get('real_money') else 'without'} "
                "--real-money; pass the same"
            )
        if not yes and not typer.confirm(
            f"Cancel open orders and close positions of {', '.join(meta['symbols'])} on "
            f"{meta['exchange']}?",
            default=False,
        ):
            raise typer.Exit(1)
        client = make_venue_client(
            VenueSpec(
                broker=str(meta.get("broker", "ccxt")),
                exchange=str(meta["exchange"]),
                run_id=run_id,
                market=str(meta.get("market", "spot")),
                settings=load_settings(),
                real_money=real_money,
                stream=False,
            )
        )
        try:
            result = flatten_account(client, list(meta["symbols"]), tag=f"{int(time.time())}")
        finally:
            client.close()
    except TradeloopError as exc:
        raise _fail(exc) from None
    console.print(
        f"cancelled {result.cancelled} order(s), sent {result.closing} closing order(s)"
        + (
            f"; {len(result.errors)} error(s): " + "; ".join(result.errors) if result.errors else ""
        ),
        highlight=False,
    )
    if result.errors:
        raise typer.Exit(1)


def report(
    run_id: Annotated[str, typer.Option(help="The live run.")],
    state: Annotated[
        str | None,
        typer.Option(help="State store: SQLite file or postgresql:// URL (default: settings)."),
    ] = None,
    show: Annotated[int, typer.Option(help="Fills to list (the most recent).")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    html: Annotated[
        Path | None,
        typer.Option(
            "--html",
            help="Also write the run's HTML report here (equity, metrics, trades with their "
            "entry/exit slippage, and the slippage totals).",
        ),
    ] = None,
) -> None:
    """Slippage of a live run: every fill's expected price (the price when the order was sent)
    against the venue's actual price, in basis points (positive: adverse) and in quote
    currency, and the totals; plus the venue's last reconciliation."""
    import json

    from tradeloop.analysis.slippage import fill_rows, slippage_view, totals
    from tradeloop.store.state import open_state_store

    try:
        target = paper_cmd._existing_state(state)
        with open_state_store(target) as store:
            meta = store.load_run_meta(run_id)
            run = store.load_run(run_id)
            if meta is None or run is None or meta.get("mode") != "live":
                raise ConfigError(f"no live run {run_id!r} in {target}")
            stored_fills = store.load_fills(run_id) if html is not None else []
            curve = store.load_equity_curve(run_id) if html is not None else ([], [])
    except TradeloopError as exc:
        raise _fail(exc) from None
    broker = run.engine_state.get("broker") or {}
    rows = fill_rows(broker.get("slippage") or [])
    summary: dict[str, Any] = {"run_id": run_id, **totals(broker)}
    if html is not None:
        import numpy as np

        from tradeloop.analysis.report import write_report

        trades = run.portfolio.trades if run.portfolio is not None else []
        path = write_report(
            html,
            title=f"Live run {run_id}",
            ts=np.asarray(curve[0], dtype=np.int64),
            equity=np.asarray(curve[1], dtype=np.float64),
            trades=trades,
            initial_equity=run.portfolio.initial_balance if run.portfolio is not None else None,
            summary={"mode": "live", "exchange": meta.get("exchange"), "run_id": run_id},
            slippage=slippage_view(broker, trades, stored_fills),
        )
        err_console.print(f"report: {path}", highlight=False)
    if as_json:
        print(json.dumps({"summary": summary, "fills": rows}, indent=2))
        return
    table = Table(title=f"Slippage of live run {run_id} (last {min(show, len(rows))} fills)")
    for col in ("order", "symbol", "side", "quantity", "expected", "actual", "bps", "cost"):
        table.add_column(col, justify="left" if col in ("symbol", "side") else "right")
    for r in rows[-show:]:
        table.add_row(
            str(r["order_id"]),
            r["symbol"],
            r["side"],
            f"{r['quantity']:g}",
            f"{r['expected']:,.2f}",
            f"{r['actual']:,.2f}",
            f"{r['bps']:+.2f}",
            f"{r['cost']:+,.4f}",
        )
    console.print(table)
    console.print(
        f"total: {summary['fills']:,} fill(s), mean {summary['mean_bps']:+.2f} bps, "
        f"cost {summary['total_cost']:+,.4f}",
        highlight=False,
    )


def _compose_signature() -> None:
    """``live``'s options: its own, then ``tradeloop paper``'s (``--strategy`` and ``--symbol``
    optional here, so ``tradeloop live flatten`` needs neither)."""
    own = [
        p
        for p in inspect.signature(live, eval_str=True).parameters.values()
        if p.kind is not inspect.Parameter.VAR_KEYWORD
    ]
    paper_sig = inspect.signature(paper_cmd.paper, eval_str=True)
    extra = []
    annotations = dict(live.__annotations__)
    annotations.pop("options", None)
    for name in _PAPER_OPTIONS:
        param = paper_sig.parameters[name]
        if param.default is inspect.Parameter.empty:
            param = param.replace(default=None)
        if name == "exchange":
            param = param.replace(
                default=None,
                annotation=Annotated[
                    str | None,
                    typer.Option(
                        help="Data and trading venue: binance or bybit (ccxt), or alpaca. "
                        "Default: alpaca with --broker alpaca, else binance."
                    ),
                ],
            )
        extra.append(param.replace(kind=inspect.Parameter.KEYWORD_ONLY))
        annotations[name] = param.annotation
    live.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [*own, *extra], return_annotation=None
    )
    live.__annotations__ = annotations


def register_live_commands(app: typer.Typer) -> None:
    """Add ``live`` (and ``live flatten``) to the CLI."""
    _compose_signature()
    group = typer.Typer()
    group.callback(invoke_without_command=True)(live)
    group.command("flatten")(flatten)
    group.command("report")(report)
    app.add_typer(group, name="live")
