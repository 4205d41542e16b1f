"""Fixtures shared by the end-to-end tests: the CLI run in-process, the local venue server."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Protocol

import pytest
from click.testing import Result
from typer.testing import CliRunner

from tradeloop.cli.app import app
from tradeloop.testing.venue import LocalVenueServer, recorded_venues


class RunCli(Protocol):
    def __call__(self, *args: str, env: Mapping[str, str] | None = None) -> Result: ...


class RunSmaCrossBacktest(Protocol):
    def __call__(self, data: Path, *args: str, env: Mapping[str, str] | None = None) -> Result: ...


@pytest.fixture
def run_cli() -> RunCli:
    """``tradeloop ARGS...`` run in-process; the result holds exit code and output."""
    runner = CliRunner()

    def run(*args: str, env: Mapping[str, str] | None = None) -> Result:
        return runner.invoke(app, list(args), env=env)

    return run


@pytest.fixture
def run_sma_cross_backtest(run_cli: RunCli) -> RunSmaCrossBacktest:
    """``tradeloop backtest -s sma_cross -d DATA ARGS...`` run in-process (no exit-code check)."""

    def run(data: Path, *args: str, env: Mapping[str, str] | None = None) -> Result:
        return run_cli("backtest", "-s", "sma_cross", "-d", str(data), *args, env=env)

    return run


@pytest.fixture
def venue(shared_data: Path) -> Iterator[LocalVenueServer]:
    """The local venue server replaying the recorded exchange data."""
    with LocalVenueServer(recorded_venues(shared_data)) as server:
        yield server
