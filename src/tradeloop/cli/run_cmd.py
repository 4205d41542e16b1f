"""``tradeloop run --config loop.toml``: the whole loop (strategies, zones, model, risk, fills,
feedback, adaptation) in one running process on live or replayed data."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tradeloop.cli.console import Console, Table
from tradeloop.cli.failure import fail
from tradeloop.core.errors import TradeloopError

if TYPE_CHECKING:
    from tradeloop.engine.loop_config import LoopConfig

__all__ = ["register", "require_loop_extras"]

console = Console()
err_console = Console(stderr=True)


_fail = fail  # the CLI's one error report (tradeloop.cli.failure)


def stage_table(stages: dict[str, Any], title: str) -> Table:
    """The stage counts as a two-column table (rejections one row per reason)."""
    table = Table(title=title)
    table.add_column("stage")
    table.add_column("count", justify="right")
    for key in (
        "bars",
        "signals",
        "enriched",
        "dropped_by_model",
        "orders",
        "fills",
        "trades",
        "open_positions",
        "feedback_received",
        "feedback_stored",
        "feedback_rows",
        "adaptations",
        "weight_versions",
        "weight_version",
        "models_swapped",
    ):
        if key in stages:
            table.add_row(key.replace("_", " "), f"{stages[key]:,}")
    for reason, n in sorted(stages.get("rejected", {}).items()):
        table.add_row(f"rejected: {reason}", f"{n:,}")
    for name, pnl in sorted(stages.get("by_strategy", {}).items()):
        if isinstance(pnl, dict):
            table.add_row(
                f"{name}: trades / P&L",
                f"{pnl.get('trades', 0):,} / {pnl.get('pnl', 0.0):+,.2f}",
            )
    return table


def run(
    config: Annotated[
        Path,
        typer.Option("--config", "-c", help="The loop's TOML file (see the README: 'The loop')."),
    ],
    fresh: Annotated[
        bool, typer.Option(help="Delete the stored run of the same id and start over.")
    ] = False,
    check: Annotated[
        bool, typer.Option(help="Only check the file (strategies, parameters, risk) and exit.")
    ] = False,
    discord_webhook: Annotated[
        str | None, typer.Option(help="Discord webhook URL for alerts (default: settings).")
    ] = None,
) -> None:
    """Run a whole trading loop from a config file: one or more strategies on one account
    (a weight each), the liquidation-zone input, an optional model, the risk rules, simulated
    fills on live (or replayed) exchange data, every stage published on the bus, and the
    feedback that adapts the weights while it runs.

    Stop with Ctrl-C or SIGTERM: the event in flight finishes, state is saved, and the count
    at every stage is printed and written to the status file. Run the same command again to
    continue the run exactly where it stopped (also after a kill -9).
    """
    from dataclasses import replace

    from tradeloop.alerts import alerter_from_settings
    from tradeloop.cli.paper_cmd import stop_on_signals
    from tradeloop.config.logging import setup_logging
    from tradeloop.config.settings import load_settings
    from tradeloop.engine.loop import LoopSession, build_strategy
    from tradeloop.engine.loop_config import load_loop_config

    setup_logging()
    try:
        cfg = load_loop_config(config)
        build_strategy(cfg)  # unknown strategies and parameters fail here, named
        cfg.risk_setting()
        require_loop_extras(cfg)
        if check:
            console.print(
                f"[green]ok[/]: {config} - run {cfg.run.id}, "
                f"{len(cfg.strategies)} strateg{'y' if len(cfg.strategies) == 1 else 'ies'}, "
                f"{', '.join(cfg.run.symbols)} {cfg.run.timeframe}",
                highlight=False,
            )
            return
        settings = load_settings()
        alerter = alerter_from_settings(discord_webhook or settings.discord_webhook_url)
        session = LoopSession(cfg, settings=settings, alerter=alerter, config_path=config)
        if fresh:
            session.config = replace(session.config, fresh=True)
    except TradeloopError as exc:
        raise _fail(exc) from None

    stop_on_signals(session)
    err_console.print(
        f"loop [bold]{cfg.run.id}[/]: {session.strategy.strategy_name()} on {cfg.run.exchange} "
        f"{', '.join(cfg.run.symbols)} {cfg.run.timeframe}; bus "
        f"{'redis' if cfg.bus.url else 'in-process'}; status in {session.config.status_path}",
        highlight=False,
    )
    try:
        session.run()
    except TradeloopError as exc:
        raise _fail(exc) from None
    finally:
        logging.getLogger(__name__).debug("loop finished")
    console.print(stage_table(session.stages(), f"Loop {cfg.run.id}: stages"))


def require_loop_extras(cfg: LoopConfig) -> None:
    """Refuse a loop whose sections need a missing extra, naming the section and the extra.

    Raises
    ------
    MissingExtraError
        ``[bus] url`` or PostgreSQL ``[run] state`` without the ``live`` extra, ``[model]``
        or ``[regime]`` without ``ml``.
    """
    from tradeloop.core.extras import require_extra

    if cfg.bus.url:
        require_extra("live", "a loop with a Redis bus ([bus] url)")
    if cfg.run.state.startswith(("postgresql://", "postgres://")):
        require_extra("live", "a loop with PostgreSQL state ([run] state)")
    if cfg.model is not None:
        require_extra("ml", "a loop with a model ([model])")
    if cfg.regime is not None:
        require_extra("ml", "a loop with a regime model ([regime])")


def register(app: typer.Typer) -> None:
    """Add ``run`` to the CLI."""
    app.command(name="run")(run)
