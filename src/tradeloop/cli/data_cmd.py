"""``tradeloop data ...``: fetch, list and check market data."""

from __future__ import annotations

import typer

data_app = typer.Typer(
    help="Market data: fetch exchange history into the Parquet cache, list it, check quality.",
    no_args_is_help=True,
)
