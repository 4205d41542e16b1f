"""One spelling per option across every command the CLI has (hidden deprecated aliases aside)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import typer

from tradeloop.cli.app import app


def _commands(group: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every command below ``group`` by its path (lazily loaded subcommands loaded; typer's
    own copy of click, so by what the objects do rather than their classes)."""
    if hasattr(group, "list_commands"):
        ctx = type(group).context_class(group)
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            assert command is not None, name
            yield from _commands(command, f"{path} {name}".strip())
    else:
        yield path, group


def _visible_options() -> list[tuple[str, Any]]:
    root = typer.main.get_command(app)
    return [
        (path, param)
        for path, command in _commands(root)
        for param in command.params
        if param.param_type_name == "option" and not param.hidden
    ]


def test_short_flags_mean_one_thing_in_every_command() -> None:
    # Arrange
    meaning = {"-s": "--strategy", "-d": "--data", "-p": "--param", "-t": "--timeframe"}
    seen: dict[str, set[str]] = {}
    # Act
    for path, option in _visible_options():
        for flag in option.opts:
            if flag in meaning:
                longs = {o for o in option.opts if o.startswith("--")}
                seen.setdefault(flag, set()).update(f"{path}: {o}" for o in longs)
                # Assert: a short flag is always the same long option
                assert meaning[flag] in longs, (path, option.opts)
    assert len(seen["-s"]) >= 5  # backtest, optimize, paper, live, train... all -s strategy


def test_no_command_shows_a_retired_spelling() -> None:
    retired = {"--venue", "--backup-venue", "--stale-after-s", "-e"}
    shown = {(path, flag) for path, option in _visible_options() for flag in option.opts}
    assert not {(path, flag) for path, flag in shown if flag in retired}
    assert ("backtest", "--fill") not in shown  # --fill-price (data fetch --fill: gap policy)
    assert ("backtest", "--fill-price") in shown
    # the venue is --exchange wherever a command connects to one
    assert ("data record", "--exchange") in shown
    assert ("paper", "--exchange") in shown
    assert ("data record", "--stale-after") in shown
