"""The options that say how to read a data file's columns, one spelling for every command
that reads one (``backtest``, ``data check``)."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = [
    "CloseCol",
    "HighCol",
    "LowCol",
    "OpenCol",
    "TimeUnit",
    "TimeZone",
    "TsCol",
    "VolumeCol",
]

TsCol = Annotated[str | None, typer.Option(help="Timestamp column name.")]
OpenCol = Annotated[str | None, typer.Option(help="Open column name.")]
HighCol = Annotated[str | None, typer.Option(help="High column name.")]
LowCol = Annotated[str | None, typer.Option(help="Low column name.")]
CloseCol = Annotated[str | None, typer.Option(help="Close column name.")]
VolumeCol = Annotated[
    str | None, typer.Option(help="Volume column name ('none': the data has no volume).")
]
TimeZone = Annotated[
    str | None,
    typer.Option(
        "--tz",
        help="Time zone the file's times are written in when they carry no offset (e.g. "
        "America/New_York; DST included); default: UTC.",
    ),
]
TimeUnit = Annotated[
    str | None,
    typer.Option(help="Unit of integer timestamps: s, ms, us or ns (default: detected)."),
]
