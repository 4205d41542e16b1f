"""The CLI's tables at 80 columns: nothing wider than the terminal, nothing cut to "…"."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tradeloop.cli.app import app

NARROW = {"COLUMNS": "80"}
runner = CliRunner()


def fits(output: str) -> None:
    lines = output.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in output


def first_column(output: str) -> str:
    """A bordered table's first column, its cells' folded pieces joined again."""
    cells = [line.split("│")[1] for line in output.splitlines() if line.count("│") > 2]
    return "".join(cell.strip() for cell in cells)


@pytest.fixture
def two_runs(tmp_path: Path, sample_1h: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.chdir(tmp_path)
    shutil.copy(sample_1h, tmp_path / sample_1h.name)
    for strategy in ("sma_cross", "rsi_reversion"):
        args = ["backtest", "-s", strategy, "-d", sample_1h.name, "--end", "2018-06-01",
                "--no-report", "--out", f"output/runs/{strategy}-with-a-long-run-name"]  # fmt: skip
        result = runner.invoke(app, args, env=NARROW)
        assert result.exit_code == 0, result.output
    return [f"{s}-with-a-long-run-name" for s in ("sma_cross", "rsi_reversion")]


def test_strategies_at_80_columns_keep_every_parameter_whole() -> None:
    # Act
    result = runner.invoke(app, ["strategies"], env=NARROW)
    # Assert: each parameter line whole (it was cut to "trailing_stop=…")
    assert result.exit_code == 0, result.output
    fits(result.output)
    for line in ("trailing_stop=0.0", "take_profit=0.0", "overbought=70.0"):
        assert line in result.output
    assert "donchian_breakout" in result.output


def test_runs_and_compare_at_80_columns_keep_ids_and_figures(two_runs: list[str]) -> None:
    # Act
    listing = runner.invoke(app, ["runs"], env=NARROW)
    compared = runner.invoke(app, ["compare", *(f"output/runs/{r}" for r in two_runs),
                                   "--out", "cmp.html"], env=NARROW)  # fmt: skip
    # Assert: every id readable (folded, not cut), the compare headers A and B named above
    assert listing.exit_code == 0, listing.output
    assert compared.exit_code == 0, compared.output
    fits(listing.output)
    fits(compared.output)
    lines = listing.output.splitlines()
    header = next(line for line in lines if " symbols " in line)
    width = header.index("symbols")  # the id column: its folded pieces joined again
    ids = "".join(line[:width].strip() for line in lines[lines.index(header) + 2 :])
    for run in two_runs:
        recorded = json.loads((Path("output/runs") / run / "run.json").read_text())["run_id"]
        assert recorded in ids
        assert f": {recorded}" in compared.output
    assert "fast=10" in compared.output
    assert "period=14" in compared.output
    assert "max_drawdown_duration_days" in first_column(compared.output)
