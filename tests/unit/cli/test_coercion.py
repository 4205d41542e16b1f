"""Plain option values converted without pydantic equal typer's own (pydantic) conversion."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pytest
import typer
import typer.main
from typer._click import Context
from typer._click.exceptions import BadParameter
from typer._coercion import build_runtime_param

from tradeloop.cli import coercion

app = typer.Typer()


@app.command()
def probe(
    text: Annotated[str, typer.Option()] = "a",
    number: Annotated[float, typer.Option()] = 1.0,
    count: Annotated[int, typer.Option()] = 3,
    bounded: Annotated[int, typer.Option(min=1, max=5)] = 2,
    folder: Annotated[Path, typer.Option()] = Path("out"),
    existing: Annotated[Path | None, typer.Option(exists=True, dir_okay=False)] = None,
    files: Annotated[list[Path] | None, typer.Option()] = None,
    words: Annotated[list[str] | None, typer.Option()] = None,
    flag: Annotated[bool, typer.Option()] = False,
) -> None:
    """A command with one option of each kind."""


_VALUES: dict[str, list[Any]] = {
    "text": ["BTC/USDT", "", " spaced ", "a=b"],
    "number": [
        *("10000", "0.001", "-0.5", ".5", "5.", "1e3", "1E-4", "+2", 10000.0, 3),
        *("1_000", "nan", "inf", " 7", "abc", "1e", ""),  # typer's own conversion
    ],
    "count": ["10", "-3", "0010", "+4", 7, "1.5", "1_0", "x", ""],
    "bounded": ["3", "9", 2],
    "folder": ["runs/x", "", ".", Path("a/b")],
    "existing": [__file__, "no/such/file.csv", str(Path(__file__).parent)],
    "files": [("a.csv", "b.parquet"), (), ["c.csv"]],
    "words": [("fast=10", "slow=30"), ("x",)],
    "flag": [True, False],
}


def _convert(runtime: Any, value: Any, param: Any, ctx: Context) -> tuple[str, Any]:
    try:
        return "ok", runtime.coerce(value, param=param, ctx=ctx)
    except BadParameter as exc:
        return "error", exc.format_message()


@pytest.mark.parametrize("name", sorted(_VALUES))
def test_plain_conversion_equals_typers_own(name: str) -> None:
    # Arrange
    command = typer.main.get_command(app)
    param = next(p for p in command.params if p.name == name)
    ctx = Context(command)
    descriptor = param.type_descriptor  # type: ignore[attr-defined]
    plain = coercion._plain(descriptor)
    reference = build_runtime_param(descriptor)
    if name == "bounded":  # bounds are typer's: not converted here
        assert plain is None
        return
    assert plain is not None
    for value in _VALUES[name]:
        # Act
        ours, theirs = _convert(plain, value, param, ctx), _convert(reference, value, param, ctx)
        # Assert: the same value of the same type, or the same error message
        assert repr(ours) == repr(theirs), value  # repr: nan equals nan
        assert type(ours[1]) is type(theirs[1]), value


def test_install_converts_plain_options_through_the_cli() -> None:
    # Arrange
    assert coercion.install()
    assert coercion.install()  # twice: still one wrapper
    command = typer.main.get_command(app)
    # Act
    ctx = command.make_context("probe", ["--number", "1e3", "--count", "0010", "--files", "a"])
    # Assert
    assert ctx.params["number"] == 1000.0
    assert type(ctx.params["number"]) is float
    assert ctx.params["count"] == 10
    assert ctx.params["files"] == [Path("a")]
    with pytest.raises(BadParameter, match="valid number"):
        command.make_context("probe", ["--number", "1_0x"])
