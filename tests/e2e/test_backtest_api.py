"""`tradeloop backtest` and `POST /backtests` run the same engine job: the same run recorded."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from fastapi.testclient import TestClient

from tradeloop.api import create_app
from tradeloop.api.backtests import BacktestApiConfig
from tradeloop.bus import InProcessBus
from tradeloop.config.settings import Settings
from tradeloop.signals import SignalService

RunCli = Callable[..., Result]  # the ``run_cli`` fixture

#: what differs between two recordings of one job: when and how it was asked for
_HOW = ("run_id", "created", "command")


def _without(record: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in keys}


def _read(folder: Path, name: str) -> Any:
    return json.loads((folder / name).read_text())


def test_cli_and_api_record_the_same_run_for_the_same_job(
    run_cli: RunCli, sample_1h: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange: one data folder; the CLI and the API write their runs to their own folders
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(sample_1h, data / sample_1h.name)
    (tmp_path / "cli").mkdir()
    monkeypatch.chdir(tmp_path / "cli")
    settings = Settings(signals_enabled=False, analytics_path=tmp_path / "api.duckdb")
    app = create_app(
        SignalService(settings, bus=InProcessBus()),
        backtests=BacktestApiConfig(output_root=tmp_path / "api" / "output", data_root=data),
    )
    # Act
    cli = run_cli(
        "backtest", "-s", "sma_cross", "-d", str(data / sample_1h.name), "-t", "4h",
        "--fee", "0.001", "--slippage-bps", "2", "--fill", "close", "--close-at-end",
        "-p", "fast=12", "-p", "slow=40", "--start", "2018-01-01", "--end", "2020-01-01",
        "--seed", "7", "--trials", "3", "--sharpe-bar", "0.5", "--mc-sims", "200",
        "--no-report",
    )  # fmt: skip
    with TestClient(app) as client:
        created = client.post(
            "/backtests",
            json={
                "strategy": "sma_cross",
                "data": [{"path": sample_1h.name}],
                "timeframe": "4h",
                "fee": 0.001,
                "slippage_bps": 2,
                "fill": "close",
                "close_at_end": True,
                "params": {"fast": 12, "slow": 40},
                "start": "2018-01-01",
                "end": "2020-01-01",
                "seed": 7,
                "trials": 3,
                "sharpe_bar": 0.5,
                "mc_sims": 200,
                "report": False,
            },
        )
        record = client.get(f"/runs/{created.json()['run_id']}").json()
    # Assert
    assert cli.exit_code == 0, cli.output
    assert created.status_code == 201, created.text
    (cli_folder,) = (tmp_path / "cli" / "output" / "runs").iterdir()
    api_folder = tmp_path / "api" / "output" / "runs" / created.json()["run_id"]
    cli_run, api_run = _read(cli_folder, "run.json"), _read(api_folder, "run.json")
    # the same trades and equity, byte for byte
    for name in ("trades.csv", "equity.parquet"):
        assert (cli_folder / name).read_bytes() == (api_folder / name).read_bytes(), name
    assert len((cli_folder / "trades.csv").read_text().splitlines()) > 5
    # the same run record but for when and how it was asked for; the same identity hash
    assert _without(cli_run, _HOW) == _without(api_run, _HOW)
    assert cli_run["run_id"].split("-", 1)[1] == api_run["run_id"].split("-", 1)[1]
    assert api_run == record
    assert api_run["command"] == "POST /backtests"
    assert (cli_run["config"]["fill_price"], cli_run["config"]["slippage_bps"]) == ("close", 2.0)
    assert (cli_run["seed"], cli_run["validation"]["n_trials"]) == (7, 3)
    # the same metrics, validation and bias findings, and the same summary
    assert _read(cli_folder, "metrics.json") == _read(api_folder, "metrics.json")
    cli_summary, api_summary = _read(cli_folder, "summary.json"), _read(api_folder, "summary.json")
    assert cli_summary.pop("provenance")["files"] == api_summary.pop("provenance")["files"]
    assert cli_summary == api_summary
    assert created.json()["metrics"]["final_equity"] == api_summary["final_equity"]
    # both point their `latest` at the run
    assert (tmp_path / "cli" / "output" / "latest").resolve() == cli_folder.resolve()
    assert (tmp_path / "api" / "output" / "latest").resolve() == api_folder.resolve()
