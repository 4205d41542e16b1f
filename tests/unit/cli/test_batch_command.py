"""``tradeloop backtest`` runs with the cyclic garbage collector paused
(:func:`tradeloop.cli.memory.batch_command`); it is restored when the command ends.

A user strategy file records what it sees while the run is in progress.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tradeloop.cli.app import app
from tradeloop.cli.memory import batch_command

#: a strategy (the bundled SMA cross) that writes the collector's state, as seen while the
#: run is in progress, to the file named by PROBE_OUT
PROBE = """
import gc, json, os
from pathlib import Path
from tradeloop.strategy.examples.sma_cross import SmaCross

class Probe(SmaCross):
    name = "probe"

    def on_init(self, view):
        seen = {"gc_enabled": gc.isenabled()}
        Path(os.environ["PROBE_OUT"]).write_text(json.dumps(seen))
        super().on_init(view)
"""


@pytest.fixture
def probe(tmp_path: Path) -> Path:
    path = tmp_path / "probe.py"
    path.write_text(PROBE, encoding="utf-8")
    return path


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


@pytest.mark.usefixtures("collector_on")
def test_backtest_pauses_the_collector_and_restores_it(
    probe: Path, sample_1h: Path, tmp_path: Path
) -> None:
    # Act
    seen = _backtest(probe, sample_1h, tmp_path / "run")
    # Assert: paused while the strategy ran, on again after the command, files written
    assert seen["gc_enabled"] is False
    assert gc.isenabled()
    assert (tmp_path / "run" / "trades.csv").is_file()


def test_batch_command_keeps_a_paused_collector_paused() -> None:
    # Arrange: the caller had the collector off
    was = gc.isenabled()
    gc.disable()
    try:
        # Act
        with batch_command():
            inside = gc.isenabled()
        after = gc.isenabled()
    finally:
        if was:
            gc.enable()
    # Assert
    assert (inside, after) == (False, False)


@pytest.mark.usefixtures("collector_on")
def test_batch_command_restores_the_collector_on_error() -> None:
    # Act
    with pytest.raises(RuntimeError), batch_command():
        raise RuntimeError("boom")
    # Assert
    assert gc.isenabled()
