"""``tradeloop signals ...``: publish liquidation-zone signals, consume P&L feedback."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the signal-loop commands to ``app``."""
