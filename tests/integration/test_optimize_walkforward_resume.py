"""Walk-forward fold studies live in the main study's storage: a rerun repeats no trial."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

from tests.integration.test_optimize_resume import SMALL, _cmd


def _trials(db: Path) -> dict[str, tuple[int, str]]:
    """Every study in the storage and its finished trials (with their start times hashed in)."""
    with sqlite3.connect(db) as con:
        rows = con.execute(
            "SELECT s.study_name, count(t.trial_id), group_concat(t.datetime_start) "
            "FROM studies s JOIN trials t ON t.study_id = s.study_id "
            "WHERE t.state = 'COMPLETE' GROUP BY s.study_name"
        ).fetchall()
    return {name: (n, starts) for name, n, starts in rows}


def test_walk_forward_rerun_resumes_every_fold_study_without_new_trials(
    shared_data: Path, tmp_path: Path
) -> None:
    # Arrange
    out = tmp_path / "out"
    cmd = _cmd(shared_data / SMALL, out, "--walk-forward", "rolling", "--wf-folds", "3")
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    before = _trials(out / "study.db")
    csv_before = (out / "trials.csv").read_bytes()
    best_before = json.loads((out / "best.json").read_text())
    # Act
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    # Assert
    assert second.returncode == 0, second.stdout + second.stderr
    after = _trials(out / "study.db")
    assert len(before) == 1 + 3, "the main study and one study per fold, in the same storage"
    assert all(n == 18 for n, _ in before.values()), "the 6x3 grid, in every study"
    assert after == before, "no new trial ran in any study (counts and start times unchanged)"
    assert (out / "trials.csv").read_bytes() == csv_before
    best_after = json.loads((out / "best.json").read_text())
    assert (best_before["evaluated_now"], best_after["evaluated_now"]) == (18, 0)
    assert best_after["walk_forward"] == best_before["walk_forward"]
    per_run = {"seconds", "resumed_from", "evaluated_now", "peak_memory_mb_per_worker"}
    assert {k: v for k, v in best_after.items() if k not in per_run} == {
        k: v for k, v in best_before.items() if k not in per_run
    }
