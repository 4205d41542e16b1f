"""``tradeloop train`` and ``tradeloop ml ...``: meta-model training and evaluation."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the ML commands to ``app``."""
