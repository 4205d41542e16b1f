"""``tradeloop runs | report | compare``: work with recorded backtest runs."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the run-record commands to ``app``."""
