"""The ``tradeloop backtest`` process runs numpy's BLAS with one thread and Arrow's memory pool
on malloc, unless the user set them (:func:`tradeloop.cli.memory.process_defaults`).

The settings only work if they are made before numpy and pyarrow load, so they are checked in
a fresh interpreter running the CLI's ``main``: a user strategy file records the variables,
the size of the BLAS thread pool (as threadpoolctl reads it from the loaded library) and
Arrow's pool while the run is in progress.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tradeloop.cli.memory import ARROW_POOL_VARIABLE, BLAS_THREAD_VARIABLES

VARIABLES = (*BLAS_THREAD_VARIABLES, ARROW_POOL_VARIABLE)

threadpoolctl = pytest.importorskip("threadpoolctl")

PROBE = """
import json, os
from pathlib import Path
import pyarrow as pa
from threadpoolctl import threadpool_info
from tradeloop.strategy.examples.sma_cross import SmaCross

class Probe(SmaCross):
    name = "probe"

    def on_init(self, view):
        seen = {
            "env": {k: os.environ.get(k) for k in THREAD_VARIABLES},
            "blas_threads": [
                p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"
            ],
            "arrow_pool": pa.default_memory_pool().backend_name,
        }
        Path(os.environ["PROBE_OUT"]).write_text(json.dumps(seen))
        super().on_init(view)
""".replace("THREAD_VARIABLES", repr(VARIABLES))


def _run(tmp_path: Path, sample_1h: Path, **user_env: str) -> dict[str, object]:
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE, encoding="utf-8")
    seen = tmp_path / "seen.json"
    env = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    env.update(user_env, PROBE_OUT=str(seen))
    args = [
        "backtest",
        "-s",
        f"{probe}:Probe",
        "-d",
        str(sample_1h),
        "--out",
        str(tmp_path / "run"),
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "tradeloop", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(seen.read_text()))


def test_backtest_process_runs_blas_on_one_thread_and_arrow_on_malloc(
    tmp_path: Path, sample_1h: Path
) -> None:
    # Act
    seen = _run(tmp_path, sample_1h)
    # Assert: every variable set, and the library loaded with a pool of one
    assert seen["env"] == {
        **dict.fromkeys(BLAS_THREAD_VARIABLES, "1"),
        ARROW_POOL_VARIABLE: "system",
    }
    assert seen["blas_threads"] == [1]
    assert seen["arrow_pool"] == "system"


def test_backtest_process_keeps_the_users_settings(tmp_path: Path, sample_1h: Path) -> None:
    # Act
    seen = _run(
        tmp_path,
        sample_1h,
        OPENBLAS_NUM_THREADS="2",
        MKL_NUM_THREADS="4",
        ARROW_DEFAULT_MEMORY_POOL="mimalloc",
    )
    # Assert: the user's values kept, only the unset one defaulted
    assert seen["env"] == {
        "OPENBLAS_NUM_THREADS": "2",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "4",
        ARROW_POOL_VARIABLE: "mimalloc",
    }
    assert seen["arrow_pool"] == "mimalloc"
