"""`tradeloop serve --live` takes `tradeloop live`'s options with the same safety checks; a
server cannot ask, so real money needs --yes (and both caps) and nothing starts otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tradeloop.cli.app import app

LOOP = """
[run]
id = "serve-opts"
symbols = ["BTC/USDT"]

[[strategies]]
name = "sma_cross"
"""


@pytest.fixture
def loop_toml(tmp_path: Path) -> Path:
    path = tmp_path / "loop.toml"
    path.write_text(LOOP, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--real-money"], "--max-order-notional"),
        (
            ["--real-money", "--max-order-notional", "10", "--max-daily-notional", "100"],
            "--yes",
        ),
        (["--broker", "alpaca"], "--exchange 'binance'"),
        (["--reconcile-policy", "ignore"], "ignore"),
    ],
)
def test_serve_live_refuses_before_starting(loop_toml: Path, extra: list[str], named: str) -> None:
    result = CliRunner().invoke(app, ["serve", "--config", str(loop_toml), "--live", *extra])
    assert result.exit_code == 2  # a ConfigError
    assert named in result.output
    assert not (loop_toml.parent / "state.db").exists()


def test_serve_live_needs_a_config() -> None:
    result = CliRunner().invoke(app, ["serve", "--live"])
    assert result.exit_code == 2  # a ConfigError
    assert "--config" in result.output
