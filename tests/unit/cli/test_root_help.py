"""``tradeloop --help`` prints the full app's page from an outline of the commands, and every
top-level command runs on an outline that builds only that command."""

from __future__ import annotations

import pytest
import typer.main
from typer.testing import CliRunner

from tradeloop.cli.app import _outline, app, app_for, main


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


def test_every_command_runs_on_an_outline_that_builds_only_it() -> None:
    # Arrange
    full = typer.main.get_command(app)
    assert isinstance(full, typer.core.TyperGroup)
    runner = CliRunner()
    compared = 0
    for name, command in full.commands.items():
        invocations = [[name, "--help"]]
        invocations += [[name, sub, "--help"] for sub in getattr(command, "commands", {})]
        for args in invocations:
            # Act
            chosen = app_for(args)
            got = runner.invoke(chosen, args, prog_name="tradeloop", env={"COLUMNS": "100"})
            want = runner.invoke(app, args, prog_name="tradeloop", env={"COLUMNS": "100"})
            # Assert: the same page and exit code as the full app
            assert chosen is not app, args
            assert (got.exit_code, got.output) == (want.exit_code, want.output), args
            compared += 1
    assert compared > 40
    # only the named command is built: backtest's parameters, none of the others'
    outline = typer.main.get_command(app_for(["backtest", "-s", "sma_cross"]))
    assert isinstance(outline, typer.core.TyperGroup)
    built = {n: [p.name for p in c.params if p.name != "help"] for n, c in outline.commands.items()}
    assert len(built.pop("backtest")) > 20
    assert all(params == [] for params in built.values())


def test_unknown_commands_options_first_and_completion_use_the_full_app(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Act / Assert
    assert app_for(["backtes"]) is app  # the full app's "did you mean"
    assert app_for(["--version"]) is app
    assert app_for([]) is app
    monkeypatch.setenv("_TRADELOOP_COMPLETE", "complete_bash")
    assert app_for(["backtest"]) is app
