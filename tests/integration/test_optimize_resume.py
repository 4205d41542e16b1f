"""A study killed with SIGKILL resumes to the same table; Ray gives the same table as serial."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tradeloop.engine.config import RunConfig
from tradeloop.engine.runner import DataSpec
from tradeloop.optimize.service import OptimizeJob, run_optimize_job
from tradeloop.optimize.study import StudyOptions

SMALL = "crypto_1m/freqtrade/UNITTEST_BTC-1m.feather"


def _cmd(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "tradeloop.cli.app",
        "optimize",
        "-s",
        "sma_cross",
        "-d",
        str(data),
        "-p",
        "fast=3:13:2",
        "-p",
        "slow=30:90:30",
        "--fee",
        "0.001",
        "--backend",
        "serial",
        "--fast",
        "off",
        "--no-record",
        "--no-report",
        "--out",
        str(out),
        *extra,
    ]


def _complete(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db) as con:
            row = con.execute("SELECT count(*) FROM trials WHERE state = 'COMPLETE'").fetchone()
    except sqlite3.Error:
        return 0
    return int(row[0])


def test_sigkilled_study_resumes_to_the_uninterrupted_table(
    shared_data: Path, tmp_path: Path
) -> None:
    data = shared_data / SMALL
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # Arrange: the uninterrupted study (the same job, in process)
    whole = tmp_path / "whole"
    run_optimize_job(
        OptimizeJob(
            "sma_cross",
            DataSpec(data),
            ("fast=3:13:2", "slow=30:90:30"),
            options=StudyOptions(method="grid", storage=f"sqlite:///{tmp_path}/whole.db"),
            config=RunConfig(fee=0.001),
            backend="serial",
            fast="off",
            out=whole,
            record=False,
            report=False,
            strategies_dir=None,
        )
    )
    # Act: the same study killed once a few trials are stored, then run again
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        _cmd(data, killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 240
    while _complete(killed / "study.db") < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = _complete(killed / "study.db")
    assert 5 <= done_before < 18, "the kill must land mid-study"
    assert not (killed / "trials.csv").exists()
    resumed = subprocess.run(
        _cmd(data, killed), check=True, env=env, capture_output=True, text=True, timeout=300
    )
    # Assert: the same table, and only the missing trials ran again
    assert (killed / "trials.csv").read_text() == (whole / "trials.csv").read_text()
    assert f"{18 - done_before} trial(s) run now, {done_before} resumed" in resumed.stdout


def test_ray_local_cluster_gives_the_serial_table(shared_data: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray")

    def job(name: str, backend: str) -> OptimizeJob:
        return OptimizeJob(
            "sma_cross",
            DataSpec(shared_data / SMALL),
            ("fast=5:15:5", "slow=30:90:30"),
            options=StudyOptions(method="grid"),
            config=RunConfig(fee=0.001),
            backend=backend,
            workers=2,
            out=tmp_path / name,
            record=False,
            report=False,
            strategies_dir=None,
        )

    serial = run_optimize_job(job("serial", "serial"))
    ray_run = run_optimize_job(job("ray", "ray"))
    assert (tmp_path / "ray" / "trials.csv").read_text() == (
        tmp_path / "serial" / "trials.csv"
    ).read_text()
    assert len(ray_run.study.rows) == len(serial.study.rows) == 9
    assert len(ray_run.study.peak_memory_mb) >= 1


def test_postgresql_storage_resumes_and_hides_the_password(
    shared_data: Path, tmp_path: Path, pg_url: str
) -> None:
    from tradeloop.optimize.study import mask_url, storage_url

    url = storage_url(pg_url)
    assert url is not None
    name = f"pytest-{tmp_path.name}"

    def job(out: str) -> OptimizeJob:
        return OptimizeJob(
            "sma_cross",
            DataSpec(shared_data / SMALL),
            ("fast=5:15:5", "slow=30:90:30"),
            options=StudyOptions(method="grid", storage=url, name=name),
            config=RunConfig(fee=0.001),
            backend="serial",
            out=tmp_path / out,
            record=False,
            report=False,
            strategies_dir=None,
        )

    first = run_optimize_job(job("a"))
    again = run_optimize_job(job("b"))
    assert (first.study.evaluated, again.study.evaluated, again.study.resumed) == (9, 0, 9)
    assert (tmp_path / "a" / "trials.csv").read_text() == (
        tmp_path / "b" / "trials.csv"
    ).read_text()
    secret = "postgresql://bob:hunter2@127.0.0.1:5432/x"
    assert "hunter2" not in str(mask_url(storage_url(secret)))
    import optuna

    optuna.delete_study(study_name=name, storage=url)
