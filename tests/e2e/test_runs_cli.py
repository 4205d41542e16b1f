"""Run records from the command line: backtest writes them, runs/report/compare read them."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import tradeloop
from tradeloop.cli.app import app

runner = CliRunner()
WIDE = {"COLUMNS": "220"}


def backtest(data: Path, *extra: str) -> str:
    result = runner.invoke(
        app,
        [
            "backtest",
            "-s",
            "sma_cross",
            "-d",
            str(data),
            "-t",
            "4h",
            "--fee",
            "0.001",
            "--end",
            "2019-06-01",
            *extra,
        ],
        env=WIDE,
    )
    assert result.exit_code == 0, result.output
    return result.output


def chart_specs(html: str) -> dict[str, str]:
    return dict(
        re.findall(r'<script type="application/json" id="([^"]+)-spec">(.*?)</script>', html)
    )


@pytest.fixture
def workdir(tmp_path: Path, sample_1h: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working folder holding a copy of the sample data."""
    monkeypatch.chdir(tmp_path)
    shutil.copy(sample_1h, tmp_path / sample_1h.name)
    return tmp_path


def only_run(workdir: Path) -> Path:
    runs = sorted((workdir / "output" / "runs").iterdir())
    assert len(runs) == 1
    return runs[0]


def test_runs_backtest_records_a_run_folder(workdir: Path, sample_1h: Path) -> None:
    # Arrange
    data = workdir / sample_1h.name
    # Act
    output = backtest(data)
    folder = only_run(workdir)
    run = json.loads((folder / "run.json").read_text())
    # Assert: files, the latest link and what the terminal shows
    for name in (
        "trades.csv",
        "equity.parquet",
        "metrics.json",
        "summary.json",
        "report.html",
        "run.json",
    ):
        assert (folder / name).is_file(), name
    assert not (folder / "equity.csv").exists()  # only with --equity-csv
    assert (workdir / "output" / "latest").resolve() == folder.resolve()
    assert re.fullmatch(r"\d{8}T\d{6}Z-sma_cross-[0-9a-f]{6}", folder.name)
    assert "Statistical validation" in output
    assert "Behavioural bias checks" in output
    # a finding says when, readably, not by a trade id ending in nanoseconds
    assert re.search(r"│ \d{4}-\d\d-\d\d \d\d:\d\d: long entry on BTC/USDT after", output)
    assert not re.search(r"BTC/USDT:\d{19}", output)
    assert "report.html" in output
    assert "total_return" in output
    # run.json: everything needed to reproduce the run
    assert run["run_id"] == folder.name
    assert run["strategy"] == "sma_cross"
    assert run["params"]["fast"] == 10
    assert run["timeframe"] == "4h"
    assert run["seed"] == 42
    assert run["engine_version"] == tradeloop.__version__
    assert "git_revision" in run
    assert run["start"].startswith("2017-08-17")
    assert run["end"] < "2019-06-01"
    assert run["config"]["fee"] == 0.001
    assert run["validation"]["seed"] == 42
    (file_info,) = run["data"]
    assert file_info["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert file_info["symbol"] == "BTC/USDT"
    assert file_info["rows"] > 10_000


def test_runs_validation_is_deterministic_per_seed(workdir: Path, sample_1h: Path) -> None:
    # Arrange
    data = workdir / sample_1h.name
    # Act
    backtest(data, "--out", "a", "--seed", "7")
    backtest(data, "--out", "b", "--seed", "7")
    backtest(data, "--out", "c", "--seed", "8", "--trials", "50")
    a, b, c = (json.loads((workdir / x / "metrics.json").read_text()) for x in "abc")
    # Assert
    assert a["validation"] == b["validation"]
    assert a["validation"]["sharpe_ci"] != c["validation"]["sharpe_ci"]
    assert c["validation"]["significance"]["dsr"] < a["validation"]["significance"]["dsr"]
    assert json.loads((workdir / "c" / "run.json").read_text())["seed"] == 8


def test_runs_lists_recorded_runs(workdir: Path, sample_1h: Path) -> None:
    # Arrange
    data = workdir / sample_1h.name
    backtest(data)
    backtest(data, "-p", "fast=20", "-p", "slow=50")
    # Act
    result = runner.invoke(app, ["runs"], env=WIDE)
    # Assert
    assert result.exit_code == 0, result.output
    ids = [p.name for p in (workdir / "output" / "runs").iterdir()]
    assert len(ids) == 2
    for run_id in ids:
        assert run_id in result.output
    for column in ("id", "symbols", "tf", "return", "sharpe", "trades", "verdict"):
        assert column in result.output
    assert "BTC/USDT" in result.output


def test_runs_table_fits_80_columns_and_lists_out_folders_and_json(
    workdir: Path, sample_1h: Path
) -> None:
    # Arrange: one run in output/runs, one written with --out into output/demo (make demo)
    data = workdir / sample_1h.name
    backtest(data)
    backtest(data, "--out", str(workdir / "output" / "demo"))
    # Act
    narrow = runner.invoke(app, ["runs"], env={"COLUMNS": "80"})
    listed = runner.invoke(app, ["runs", "--json"], env=WIDE)
    # Assert: every row's id is there (folded, not cut) and no line is wider than 80
    assert narrow.exit_code == 0, narrow.output
    assert max(len(line) for line in narrow.output.splitlines()) <= 80
    runs = json.loads(listed.output)
    assert len(runs) == 2
    assert {Path(r["path"]).name for r in runs} >= {"demo"}
    joined = narrow.output.replace("\n", "").replace(" ", "")
    for run in runs:
        assert run["run_id"][:10] in joined
        assert run["trades"] > 0


def test_runs_report_regenerates_identical_charts(workdir: Path, sample_1h: Path) -> None:
    # Arrange
    backtest(workdir / sample_1h.name)
    folder = only_run(workdir)
    before = chart_specs((folder / "report.html").read_text())
    (folder / "report.html").unlink()
    # Act
    result = runner.invoke(app, ["report", "latest"], env=WIDE)
    # Assert
    assert result.exit_code == 0, result.output
    after = chart_specs((folder / "report.html").read_text())
    assert "chart-price-0" in after
    assert after == before
    assert "report:" in result.output


def test_runs_report_with_changed_data_warns_and_drops_price_charts(
    workdir: Path, sample_1h: Path
) -> None:
    # Arrange: the data file changes after the run
    data = workdir / sample_1h.name
    backtest(data)
    folder = only_run(workdir)
    data.write_bytes(data.read_bytes()[:-100])
    # Act
    result = runner.invoke(app, ["report", folder.name], env=WIDE)
    # Assert
    assert result.exit_code == 0, result.output
    assert "changed since the run" in result.output
    html = (folder / "report.html").read_text()
    assert "chart-equity" in html
    assert "chart-price-0" not in html
    assert "changed since the run" in html


def test_runs_report_require_data_fails_on_missing_file(workdir: Path, sample_1h: Path) -> None:
    # Arrange
    data = workdir / sample_1h.name
    backtest(data)
    data.unlink()
    # Act
    result = runner.invoke(app, ["report", "latest", "--require-data"], env=WIDE)
    # Assert
    assert result.exit_code == 3
    assert "DataError" in result.output
    assert "missing" in result.output


def test_runs_report_unknown_run_exits_2_with_hint(workdir: Path, sample_1h: Path) -> None:
    # Arrange
    backtest(workdir / sample_1h.name)
    # Act
    result = runner.invoke(app, ["report", "no-such-run"], env=WIDE)
    # Assert
    assert result.exit_code == 2
    assert "tradeloop runs" in result.output


def test_runs_compare_prints_side_by_side_and_writes_overlay(
    workdir: Path, sample_1h: Path
) -> None:
    # Arrange
    data = workdir / sample_1h.name
    backtest(data, "--out", "output/runs/fast")
    backtest(data, "--out", "output/runs/slow", "-p", "fast=20", "-p", "slow=50")
    assert (workdir / "output" / "runs" / "fast" / "run.json").is_file()  # --out records too
    # Act
    result = runner.invoke(
        app,
        ["compare", "output/runs/fast", "output/runs/slow", "--out", "cmp.html"],
        env=WIDE,
    )
    # Assert
    assert result.exit_code == 0, result.output
    for key in ("total_return", "sharpe", "max_drawdown", "trade_count", "B - A"):
        assert key in result.output
    html = (workdir / "cmp.html").read_text()
    (traces,) = re.findall(r'id="chart-overlay" data-traces="(\d+)"', html)
    assert traces == "4"  # equity and drawdown of each run
    assert "fast=20" in result.output  # the parameters row, one name=value a line
    assert "annualization" in result.output
    assert "note:" not in result.output  # both annualized alike


def test_runs_compare_says_when_the_annualization_differs(workdir: Path, sample_1h: Path) -> None:
    # Arrange: the same run annualized by the data (365 days of bars) and at 252
    data = workdir / sample_1h.name
    backtest(data, "--out", "output/runs/inferred")
    backtest(data, "--out", "output/runs/given", "--periods-per-year", "252")
    # Act
    result = runner.invoke(
        app, ["compare", "output/runs/inferred", "output/runs/given", "--out", "c.html"], env=WIDE
    )
    # Assert: the row, and a note naming both factors
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    assert "annualization" in flat
    assert re.search(r"annualized with [\d,]+ and 252 periods a year", flat)


def test_report_regenerated_keeps_the_open_positions_marked_pnl(
    workdir: Path, sample_1h: Path
) -> None:
    # Arrange: long or short at every bar after the first cross, so a position is open at the end
    backtest(workdir / sample_1h.name, "-p", "short=true", "--slippage-bps", "3")
    folder = only_run(workdir)
    with (folder / "trades.csv").open(newline="") as f:
        last = list(csv.DictReader(f))[-1]
    before = (folder / "report.html").read_text()
    # Act
    result = runner.invoke(app, ["report", "latest"], env=WIDE)
    # Assert: the open trade's P&L, in the file and in both reports' trade tables
    assert result.exit_code == 0, result.output
    assert last["exit_time"] == ""
    assert last["exit_reason"] == ""
    pnl = float(last["pnl"])
    assert pnl != 0.0
    after = (folder / "report.html").read_text()
    open_row = re.compile(r"<td>open</td>(?:<td>[^<]*</td>){4}<td>([^<]*)</td><td>([^<]*)</td>")
    assert open_row.findall(before) == open_row.findall(after)
    ((shown, pct),) = open_row.findall(after)
    assert float(shown.replace(",", "")) == pytest.approx(pnl, abs=1e-4)
    assert pct.endswith("%")


def test_report_regenerates_indicators_and_the_annualization_given(
    workdir: Path, sample_1h: Path
) -> None:
    # Arrange: a run annualized by hand, whose strategy plots its SMAs
    backtest(workdir / sample_1h.name, "--periods-per-year", "100")
    folder = only_run(workdir)
    before = (folder / "report.html").read_text()
    (folder / "report.html").unlink()
    # Act
    result = runner.invoke(app, ["report", "latest"], env=WIDE)
    # Assert: the same SMA lines and the same factor in the regenerated report
    assert result.exit_code == 0, result.output
    after = (folder / "report.html").read_text()
    assert (folder / "indicators.parquet").is_file()
    for text in ('"name":"SMA 10"', '"name":"SMA 30"', "100 periods/year (given)"):
        assert text in before
        assert text in after


def test_tz_reads_a_file_of_new_york_wall_clock_times_end_to_end(workdir: Path) -> None:
    # Arrange: a week of XNYS minutes written in New York time without an offset
    days = pd.bdate_range("2024-01-08", "2024-01-12")
    wall = [d + pd.Timedelta(minutes=570 + m) for d in days for m in range(390)]
    close = 470 + np.cumsum(np.random.default_rng(5).normal(0, 0.05, len(wall)))
    frame = pd.DataFrame({"timestamp": [t.strftime("%Y-%m-%d %H:%M:%S") for t in wall],
                          "open": close, "high": close + 0.05, "low": close - 0.05,
                          "close": close, "volume": 100.0})  # fmt: skip
    frame.to_csv(workdir / "spy.csv", index=False)
    args = ["backtest", "-s", "sma_cross", "-d", "spy.csv", "--symbol", "SPY", "--calendar",
            "XNYS", "--out", "output/runs/spy"]  # fmt: skip
    # Act
    as_utc = runner.invoke(app, args, env=WIDE)
    local = runner.invoke(app, [*args, "--tz", "America/New_York"], env=WIDE)
    checked = runner.invoke(
        app,
        ["data", "check", "spy.csv", "--tz", "America/New_York", "--calendar", "XNYS"],
        env=WIDE,
    )
    unchecked = runner.invoke(app, ["data", "check", "spy.csv", "--calendar", "XNYS"], env=WIDE)
    first = chart_specs((workdir / "output/runs/spy/report.html").read_text())
    regenerated = runner.invoke(app, ["report", "output/runs/spy"], env=WIDE)
    again = chart_specs((workdir / "output/runs/spy/report.html").read_text())
    # Assert: refused as read (UTC), with the option named; with it, every session minute kept
    assert as_utc.exit_code == 3
    assert "--tz America/New_York" in " ".join(as_utc.output.split())
    assert local.exit_code == 0, local.output
    run = json.loads((workdir / "output/runs/spy/run.json").read_text())
    assert run["data"][0]["tz"] == "America/New_York"
    assert run["start"].startswith("2024-01-08T14:30")
    assert run["data"][0]["repaired"].get("outside_sessions", 0) == 0
    assert checked.exit_code == 0, checked.output
    # data check says it too: the failure a backtest would stop on, and what falls outside
    flat = " ".join(unchecked.output.split())
    assert unchecked.exit_code == 1
    assert "look like America/New_York wall-clock time" in flat
    assert "--tz America/New_York" in flat
    assert "1,500 of 1,950 bars fall outside XNYS sessions" in flat
    assert "2024-01-08T14:30:00Z → 2024-01-12T20:59:00Z" in checked.output
    assert regenerated.exit_code == 0, regenerated.output
    assert "without price charts" not in regenerated.output
    assert again["chart-price-0"] == first["chart-price-0"]  # the data read in New York time
