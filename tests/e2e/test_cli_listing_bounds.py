"""Numbers a listing or a session cannot use are refused by name; an empty place lists nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tradeloop.cli.app import app


@pytest.mark.parametrize("limit", ["0", "-1"])
def test_runs_limit_below_one_is_refused(limit: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["runs", "--root", str(tmp_path), "--limit", limit])
    assert result.exit_code == 2
    assert f"--limit must be 1 or more, got {limit}" in result.output


@pytest.mark.parametrize(
    ("flag", "value", "said"),
    [
        ("--warmup", "-5", "warmup_bars (--warmup) must be 0 or more, got -5"),
        ("--max-bars", "0", "max_bars (--max-bars) must be 1 or more, got 0"),
        ("--heartbeat", "0", "heartbeat_s (--heartbeat) must be a positive number"),
    ],
)
def test_paper_session_numbers_out_of_range_are_refused_before_connecting(
    flag: str, value: str, said: str, tmp_path: Path
) -> None:
    # Arrange: a venue address nothing listens on; the check must come first
    args = ["paper", "-s", "sma_cross", "--symbol", "BTC/USDT", "--state", str(tmp_path / "s.db"),
            "--status-file", str(tmp_path / "status.json"), flag, value]  # fmt: skip
    # Act
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    # Assert
    assert result.exit_code == 2, result.output
    assert said in result.output
    assert not (tmp_path / "s.db").exists()


def test_paper_runs_where_nothing_ran_lists_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange: a fresh folder, the default state store not created yet
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TRADELOOP_STATE_URL", raising=False)
    runner = CliRunner()
    # Act
    as_json = runner.invoke(app, ["paper-runs", "--json"])
    as_table = runner.invoke(app, ["paper-runs"])
    named = runner.invoke(app, ["paper-runs", "--state", "missing.db"])
    # Assert: the default store not there yet is an empty listing; a named one is an error
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout) == []
    assert as_table.exit_code == 0
    assert "no runs" in as_table.output
    assert named.exit_code == 2
    assert "missing.db does not exist" in named.output
    assert list(tmp_path.iterdir()) == []
