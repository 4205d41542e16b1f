"""``tradeloop state backup|restore``: consistent copies of the state and analytics stores."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tradeloop.cli.console import Console, Table
from tradeloop.core.errors import ConfigError, TradeloopError

__all__ = ["register_state_commands"]

console = Console()

state_app = typer.Typer(
    help="Back up and restore a loop's state store (SQLite or PostgreSQL) and analytics store "
    "(DuckDB).",
    no_args_is_help=True,
)

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="The loop's TOML file: its [run] state and analytics."),
]
StateOpt = Annotated[
    str | None, typer.Option(help="State store: SQLite file or postgresql:// URL (or --config).")
]
AnalyticsOpt = Annotated[Path | None, typer.Option(help="Analytics DuckDB file (or --config).")]


def _stores(config: Path | None, state: str | None, analytics: Path | None) -> tuple[str, Path]:
    if config is not None:
        from tradeloop.engine.loop_config import load_loop_config

        cfg = load_loop_config(config)
        state = state or cfg.path(cfg.run.state)
        analytics = analytics or Path(cfg.path(cfg.run.analytics))
    if state is None or analytics is None:
        raise ConfigError("give --config loop.toml, or both --state and --analytics")
    return state, analytics


def _table(title: str, rows: dict[str, int], analytics: dict[str, int]) -> Table:
    table = Table(title=title)
    table.add_column("store")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, n in sorted(rows.items()):
        table.add_row("state", name, f"{n:,}")
    for name, n in sorted(analytics.items()):
        table.add_row("analytics", name, f"{n:,}")
    return table


@state_app.command("backup")
def backup(
    to: Annotated[Path, typer.Option("--to", help="New (or empty) folder for the backup.")],
    config: ConfigOpt = None,
    state: StateOpt = None,
    analytics: AnalyticsOpt = None,
) -> None:
    """Copy both stores consistently, also while the engine runs (SQLite online backup,
    pg_dump for PostgreSQL, DuckDB EXPORT DATABASE), with a manifest of row counts and hashes.
    """
    from tradeloop.cli.app import _fail
    from tradeloop.store.backup import backup_stores

    try:
        state_url, analytics_path = _stores(config, state, analytics)
        result = backup_stores(state_url, analytics_path, to)
    except TradeloopError as exc:
        raise _fail(exc) from None
    console.print(_table(f"backup in {to}", result.state_rows, result.analytics_rows))


@state_app.command("restore")
def restore(
    from_: Annotated[Path, typer.Option("--from", help="A folder made by `state backup`.")],
    config: ConfigOpt = None,
    state: StateOpt = None,
    analytics: AnalyticsOpt = None,
    force: Annotated[
        bool, typer.Option(help="Replace stores that exist (stop the engine first).")
    ] = False,
) -> None:
    """Restore both stores from a backup; each is checked against the backup's row counts
    before it replaces the target (a failed check leaves the target as it was)."""
    from tradeloop.cli.app import _fail
    from tradeloop.store.backup import restore_stores

    try:
        state_url, analytics_path = _stores(config, state, analytics)
        result = restore_stores(from_, state_url, analytics_path, force=force)
    except TradeloopError as exc:
        raise _fail(exc) from None
    console.print(_table(f"restored from {from_}", result.state_rows, result.analytics_rows))


def register_state_commands(app: typer.Typer) -> None:
    """Add ``state backup|restore`` to the CLI."""
    app.add_typer(state_app, name="state")
