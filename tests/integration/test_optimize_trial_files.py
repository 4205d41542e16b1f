"""`tradeloop optimize --trial-files`: every trial's trades and equity, only when asked."""

from __future__ import annotations

import csv
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from tests.integration.test_optimize_resume import SMALL, _cmd

from tradeloop.core.errors import ConfigError
from tradeloop.engine.config import RunConfig
from tradeloop.engine.runner import DataSpec, load_data, run_on_bars
from tradeloop.optimize.service import OptimizeJob, run_optimize_job
from tradeloop.strategy.examples.sma_cross import SmaCross


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _finish(proc: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    try:
        out, err = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_trial_files_hold_every_trials_trades_and_equity_and_default_writes_none(
    shared_data: Path, tmp_path: Path
) -> None:
    # Arrange
    data = shared_data / SMALL
    plain, asked = tmp_path / "plain", tmp_path / "asked"
    (loaded,) = load_data([DataSpec(data)])
    # Act: the two studies are independent processes, run side by side
    started = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for cmd in (_cmd(data, plain), _cmd(data, asked, "--trial-files"))
    ]
    first, second = (_finish(proc) for proc in started)
    # Assert
    assert first.returncode == 0, first.stdout + first.stderr
    assert second.returncode == 0, second.stdout + second.stderr
    assert not (plain / "trials").exists(), "no per-trial files unless asked"
    trials = _rows(asked / "trials.csv")
    assert (plain / "trials.csv").read_bytes() == (asked / "trials.csv").read_bytes()
    ran = [t for t in trials if not t.get("error")]
    assert len(ran) == 18
    assert sorted(p.name for p in (asked / "trials").iterdir()) == sorted(t["trial"] for t in ran)
    for t in ran:
        folder = asked / "trials" / t["trial"]
        expected = run_on_bars(
            SmaCross(fast=int(t["fast"]), slow=int(t["slow"])),
            {loaded.bars.symbol: loaded.bars},
            RunConfig(fee=0.001),
        )
        trades = _rows(folder / "trades.csv")
        assert len(trades) == len(expected.trades)
        closed = [x for x in expected.trades if x.exit_ts is not None]
        assert len(closed) == int(float(t["trade_count"])), "the trial's own row agrees"
        # every trade's P&L, an open one's marked at the last close
        assert [float(r["pnl"]) for r in trades] == [x.pnl for x in expected.trades]
        assert [r["exit_time"] == "" for r in trades] == [
            x.exit_ts is None for x in expected.trades
        ]
        equity = pq.read_table(folder / "equity.parquet").column("equity").to_pylist()
        assert equity == list(expected.equity)
        assert len(_rows(folder / "equity.csv")) == len(loaded.bars)


def test_trial_files_without_out_is_a_clear_error(shared_data: Path) -> None:
    job = OptimizeJob("sma_cross", DataSpec(shared_data / SMALL), ("fast=3:5:2",), trial_files=True)
    with pytest.raises(ConfigError, match=r"--trial-files.*--out"):
        run_optimize_job(job)
