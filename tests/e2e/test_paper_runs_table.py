"""paper-runs stays readable at 80 columns: every run id and figure is there, folded."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from tradeloop.cli.app import app
from tradeloop.store import open_state_store

RUN_IDS = (
    "paper-sma_cross-binance-BTCUSDT-1m",
    "paper-rsi_reversion-bybit-ETHUSDT-SOLUSDT-15m",
)


def test_paper_runs_table_fits_80_columns(tmp_path: Path) -> None:
    # Arrange: two runs stored with their metadata
    state = tmp_path / "state.db"
    with open_state_store(state) as store:
        for k, run_id in enumerate(RUN_IDS):
            meta = {"mode": "paper", "strategy": run_id.split("-")[1], "exchange": "binance",
                    "symbols": ["BTC/USDT"], "timeframe": "1m", "balance": 10_000.0}  # fmt: skip
            store.save_run_meta(run_id, meta, 1_700_000_000_000_000_000 + k)
    # Act
    result = CliRunner().invoke(app, ["paper-runs", "--state", str(state)], env={"COLUMNS": "80"})
    # Assert
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    for run_id in RUN_IDS:  # each id whole, on its own line, its figures below
        at = lines.index(run_id)
        for figure in ("steps 0", "trades 0", "open 0", "risk active"):
            assert figure in lines[at + 1]


def test_paper_runs_wide_terminal_is_a_table(tmp_path: Path) -> None:
    # Arrange
    state = tmp_path / "state.db"
    with open_state_store(state) as store:
        store.save_run_meta(RUN_IDS[0], {"mode": "paper", "balance": 1.0}, 1)
    # Act
    result = CliRunner().invoke(app, ["paper-runs", "--state", str(state)], env={"COLUMNS": "160"})
    # Assert
    assert result.exit_code == 0, result.output
    assert RUN_IDS[0] in result.output
    assert "equity" in result.output.splitlines()[2]
