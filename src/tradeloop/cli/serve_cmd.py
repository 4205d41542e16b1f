"""``tradeloop serve``: the HTTP API, and with ``--config`` the loop engine it operates."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tradeloop.cli.console import Console
from tradeloop.cli.failure import require
from tradeloop.core.errors import ConfigError, TradeloopError

if TYPE_CHECKING:
    from tradeloop.engine.service import SessionFactory

__all__ = ["register_serve_commands", "serve"]

err_console = Console(stderr=True)


def serve(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="A loop's TOML file (as for `tradeloop run`): run that engine in this process "
            "and operate it over HTTP. Without it: the API only (signals, backtests, runs).",
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port.")] = 8000,
    fresh: Annotated[
        bool, typer.Option(help="Delete the stored run of the same id and start over.")
    ] = False,
    feed_stale_s: Annotated[
        float | None,
        typer.Option(
            min=0.1,
            help="/health reports the feed down after this many seconds without a kline "
            "(default: 60).",
        ),
    ] = None,
    auth_reads: Annotated[
        bool,
        typer.Option(help="Require the API key for read routes too (control routes always)."),
    ] = False,
    audit_log: Annotated[
        Path | None,
        typer.Option(
            help="Control audit log (JSON lines, hash-chained; default: "
            "control_audit.jsonl next to the run's status file)."
        ),
    ] = None,
    output: Annotated[
        Path, typer.Option(help="Research runs: POST /backtests writes and GET /runs reads here.")
    ] = Path("output"),
    discord_webhook: Annotated[
        str | None, typer.Option(help="Discord webhook URL for alerts (default: settings).")
    ] = None,
    live: Annotated[
        bool,
        typer.Option(
            "--live",
            help="Run the loop live on its venue (as `tradeloop live --config`): testnet/"
            "sandbox endpoints unless --real-money. Default: paper.",
        ),
    ] = False,
    broker: Annotated[
        str, typer.Option(help="With --live: venue broker, ccxt (crypto) or alpaca (US equities).")
    ] = "ccxt",
    real_money: Annotated[
        bool,
        typer.Option(
            "--real-money",
            help="With --live: trade real money. Needs --max-order-notional, "
            "--max-daily-notional and --yes (a server cannot ask for the confirmation).",
        ),
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", help="Confirm --real-money (required with it here).")
    ] = False,
    max_order_notional: Annotated[
        float | None, typer.Option(help="With --live: refuse an entry order above this notional.")
    ] = None,
    max_daily_notional: Annotated[
        float | None,
        typer.Option(help="With --live: refuse entries once a UTC day's notional passes this."),
    ] = None,
    reconcile_every: Annotated[
        float, typer.Option(help="With --live: seconds between reconciliations (0: at start).")
    ] = 300.0,
    reconcile_policy: Annotated[
        str, typer.Option(help="With --live: 'adopt' the venue's state on a difference, or 'halt'.")
    ] = "adopt",
    stream: Annotated[
        bool, typer.Option(help="With --live: use the user-data stream (--no-stream: polling).")
    ] = True,
) -> None:
    """Serve the HTTP API and, with --config, run the loop engine of that file in this process.

    One process runs one engine (one loop.toml: its strategies on one account); run one
    `serve` per engine on its own port to operate several. Routes: /health (per component,
    503 when one is down), /status, /positions, /orders, /trades, /equity, /risk, /strategies,
    /runs, /signals/status, /signals/metrics, /signals/recent, /metrics (Prometheus),
    /dashboard, /docs, and POST /control/pause, /resume, /flatten, /close/{symbol},
    /risk-override and /reload, which need the API key (TRADELOOP_API_KEY, header X-API-Key)
    and are audited. The
    config file is watched: strategy weights and parameters, zones and risk rules reload on
    change (an invalid file is refused, the running config kept). Ctrl-C or SIGTERM stops the
    engine after the event in flight, state saved.

    With --live the loop trades on its venue exactly as `tradeloop live --config` (same
    options, same checks: testnet unless --real-money with both caps and --yes); /health's
    broker component and the broker series of /metrics (orders by status, circuit state,
    rate budget left) then come from the venue broker, and /control/flatten closes the
    positions at the venue.
    """
    require("serve", "tradeloop serve")
    import uvicorn

    from tradeloop.alerts import alerter_from_settings
    from tradeloop.api import create_app
    from tradeloop.api.backtests import BacktestApiConfig
    from tradeloop.cli.app import _fail
    from tradeloop.config.logging import setup_logging
    from tradeloop.config.settings import load_settings
    from tradeloop.engine.service import LoopService
    from tradeloop.risk.overrides import AuditLog

    setup_logging()
    factory = None
    if live or real_money:
        require("live", "tradeloop serve --live")
        factory = _live_factory(
            config,
            broker=broker,
            real_money=real_money,
            yes=yes,
            max_order_notional=max_order_notional,
            max_daily_notional=max_daily_notional,
            reconcile_every=reconcile_every,
            reconcile_policy=reconcile_policy,
            stream=stream,
        )
    try:
        settings = load_settings()
        engine = None
        if config is not None:
            alerter = alerter_from_settings(
                discord_webhook or settings.discord_webhook_url,
                [u.get_secret_value() for u in settings.notify_urls],
            )
            engine = LoopService(
                config,
                settings=settings,
                alerter=alerter,
                audit=AuditLog(audit_log) if audit_log is not None else None,
                feed_stale_s=feed_stale_s,
                fresh=fresh,
                session_factory=factory,
            )
        key = settings.api_key.get_secret_value() if settings.api_key is not None else None
        app = create_app(
            backtests=BacktestApiConfig(output_root=output),
            engine=engine,
            api_key=key,
            auth_reads=auth_reads,
        )
    except TradeloopError as exc:
        raise _fail(exc) from None
    if engine is not None:
        mode = "paper" if factory is None else ("REAL MONEY" if real_money else "live testnet")
        err_console.print(
            f"engine [bold]{engine.run_id}[/] ({mode}) from {config}; API on http://{host}:{port} "
            f"(dashboard /dashboard, metrics /metrics); control "
            f"{'enabled' if key else 'disabled: set TRADELOOP_API_KEY'}",
            highlight=False,
        )
    uvicorn.run(app, host=host, port=port, log_level="warning")
    if engine is not None and engine.error is not None:
        err_console.print(f"[bold red]engine error:[/] {engine.error}", highlight=False)
        raise typer.Exit(1)


def _live_factory(config: Path | None, **live: Any) -> SessionFactory:
    """A session factory building ``tradeloop live --config``'s session with its options
    (parsed and checked by :func:`tradeloop.cli.live_cmd.live_options`)."""
    from tradeloop.cli.app import _fail
    from tradeloop.cli.live_cmd import live_options, resolve_exchange_or_fail
    from tradeloop.engine.live_session import LiveLoopSession
    from tradeloop.engine.loop_config import load_loop_config

    if config is None:
        raise _fail(ConfigError("--live needs --config loop.toml (the loop to trade)"))
    try:
        exchange = load_loop_config(config).run.exchange
    except TradeloopError as exc:
        raise _fail(exc) from None
    venue = resolve_exchange_or_fail(live["broker"], exchange)
    opts = live_options(venue=venue, can_prompt=False, **live)

    def factory(cfg: Any, **kwargs: Any) -> LiveLoopSession:
        return LiveLoopSession(cfg, live=opts, **kwargs)

    return factory


def register_serve_commands(app: typer.Typer) -> None:
    """Add ``serve`` to the CLI."""
    app.command("serve")(serve)
