"""``tradeloop --help`` prints the full app's page from an outline of the commands."""

from __future__ import annotations

import pytest
import typer.main
from typer.testing import CliRunner

from tradeloop.cli.app import _outline, app, main


def _page(target: typer.Typer) -> str:
    result = CliRunner().invoke(target, ["--help"], prog_name="tradeloop", env={"COLUMNS": "90"})
    assert result.exit_code == 0, result.output
    return result.output


def test_outline_prints_the_same_page_as_the_full_app() -> None:
    # Act
    full, outline = _page(app), _page(_outline(app))
    # Assert: identical, and it lists every command and group
    assert outline == full
    listed = {line.split()[0] for line in full.split("Commands:")[1].splitlines() if line.strip()}
    names = {c.name or c.callback.__name__ for c in app.registered_commands if not c.hidden}
    names |= {g.name for g in app.registered_groups if not g.hidden}
    assert {n.replace("_", "-") for n in names if n} <= listed
    assert len(listed) >= 20


def test_outline_builds_no_command_parameters() -> None:
    # Act
    full = typer.main.get_command(app)
    outline = typer.main.get_command(_outline(app))
    # Assert: the same commands; the outline's take nothing but --help, the real ones do
    assert isinstance(full, typer.core.TyperGroup)
    assert isinstance(outline, typer.core.TyperGroup)
    assert list(outline.commands) == list(full.commands)
    for name, command in outline.commands.items():
        assert [p.name for p in command.params if p.name != "help"] == [], name
    assert len(full.commands["backtest"].params) > 20


def test_main_prints_the_outline_for_top_level_help(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Arrange
    monkeypatch.setattr("sys.argv", ["tradeloop", "--help"])
    # Act: the entry point, then the full app called the same way
    with pytest.raises(SystemExit) as exited:
        main()
    page = capsys.readouterr().out
    with pytest.raises(SystemExit):
        app()
    full = capsys.readouterr().out
    # Assert
    assert exited.value.code == 0
    assert page == full
    assert "tradeloop [OPTIONS] COMMAND [ARGS]..." in page.splitlines()[0]
