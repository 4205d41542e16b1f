"""``tradeloop backtest`` runs with the cyclic garbage collector paused and one BLAS/OpenMP
thread (:func:`tradeloop.cli.memory.batch_command`); both are restored when it ends.

A user strategy file records what it sees while the run is in progress.
"""

from __future__ import annotations

import gc
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tradeloop.cli.app import app
from tradeloop.cli.memory import ARROW_POOL_VARIABLE, BLAS_THREAD_VARIABLES, batch_command

VARIABLES = (*BLAS_THREAD_VARIABLES, ARROW_POOL_VARIABLE)

#: a strategy (the bundled SMA cross) that writes the collector's state and the thread
#: variables, as seen while the run is in progress, to the file named by PROBE_OUT
PROBE = """
import gc, json, os
from pathlib import Path
from tradeloop.strategy.examples.sma_cross import SmaCross

class Probe(SmaCross):
    name = "probe"

    def on_init(self, view):
        seen = {
            "gc_enabled": gc.isenabled(),
            "env": {k: os.environ.get(k) for k in THREAD_VARIABLES},
        }
        Path(os.environ["PROBE_OUT"]).write_text(json.dumps(seen))
        super().on_init(view)
""".replace("THREAD_VARIABLES", repr(VARIABLES))


@pytest.fixture
def probe(tmp_path: Path) -> Path:
    path = tmp_path / "probe.py"
    path.write_text(PROBE, encoding="utf-8")
    return path


@pytest.fixture
def no_thread_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def collector_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def _backtest(probe: Path, sample_1h: Path, out: Path) -> dict[str, object]:
    seen = out.parent / "seen.json"
    result = CliRunner().invoke(
        app,
        ["backtest", "-s", f"{probe}:Probe", "-d", str(sample_1h), "--out", str(out)],
        env={"PROBE_OUT": str(seen)},
    )
    assert result.exit_code == 0, result.output
    return dict(json.loads(seen.read_text()))


@pytest.mark.usefixtures("collector_on", "no_thread_variables")
def test_backtest_pauses_the_collector_and_restores_it(
    probe: Path, sample_1h: Path, tmp_path: Path
) -> None:
    # Act
    seen = _backtest(probe, sample_1h, tmp_path / "run")
    # Assert: paused while the strategy ran, on again after the command, files written
    assert seen["gc_enabled"] is False
    assert gc.isenabled()
    assert (tmp_path / "run" / "trades.csv").is_file()


@pytest.mark.usefixtures("collector_on", "no_thread_variables")
def test_backtest_sets_one_blas_thread_only_while_it_runs(
    probe: Path, sample_1h: Path, tmp_path: Path
) -> None:
    # Act
    seen = _backtest(probe, sample_1h, tmp_path / "run")
    # Assert: one thread while it ran; the variables it set are gone again
    assert seen["env"] == {
        **dict.fromkeys(BLAS_THREAD_VARIABLES, "1"),
        ARROW_POOL_VARIABLE: "system",
    }
    assert not [name for name in VARIABLES if name in os.environ]


@pytest.mark.usefixtures("no_thread_variables")
def test_batch_command_keeps_a_user_setting_and_a_paused_collector(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Arrange: the user set one variable, and the caller had the collector off
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")
    was = gc.isenabled()
    gc.disable()
    try:
        # Act
        with batch_command():
            inside = (gc.isenabled(), {k: os.environ.get(k) for k in VARIABLES})
        after = (gc.isenabled(), {k: os.environ.get(k) for k in VARIABLES})
    finally:
        if was:
            gc.enable()
    # Assert: the user's value kept throughout, the others set to 1 inside only
    assert inside == (
        False,
        {
            "OPENBLAS_NUM_THREADS": "3",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            ARROW_POOL_VARIABLE: "system",
        },
    )
    assert after == (
        False,
        {
            "OPENBLAS_NUM_THREADS": "3",
            "OMP_NUM_THREADS": None,
            "MKL_NUM_THREADS": None,
            ARROW_POOL_VARIABLE: None,
        },
    )


@pytest.mark.usefixtures("collector_on", "no_thread_variables")
def test_batch_command_restores_on_error() -> None:
    # Act
    with pytest.raises(RuntimeError), batch_command():
        raise RuntimeError("boom")
    # Assert
    assert gc.isenabled()
    assert not [name for name in VARIABLES if name in os.environ]


@pytest.mark.usefixtures("collector_on", "no_thread_variables")
def test_objects_made_while_paused_join_the_oldest_generation() -> None:
    # Act
    with batch_command():
        made = [[k] for k in range(50_000)]
    young, frozen = gc.get_count()[0], gc.get_freeze_count()
    # Assert: no pass over them is due at the next allocation, none is left frozen, and a
    # full collection still sees them
    assert young < 1_000
    assert frozen == 0
    assert gc.is_tracked(made[-1])
    assert any(obj is made for obj in gc.get_referrers(made[0]))
