"""The ``tradeloop`` script ends a batch command's process without the interpreter's teardown
(:func:`tradeloop.cli.memory.end_batch_process`), after what a normal exit does that can be
seen: exit callbacks run, output flushed, the exit status kept.

Each case runs the script's entry point (:func:`tradeloop.cli.app.run`) in a fresh
interpreter: a process that ends is the behaviour under test.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "samples" / "BTC_USDT-1h.csv.gz"

#: the script's entry point with two markers: an exit callback (written on every exit that
#: runs them) and an object whose finalizer runs only in the interpreter's own teardown
_CHILD = r"""
import atexit, sys
from pathlib import Path

marks = Path(sys.argv[1])
sys.argv = ["tradeloop", *sys.argv[2:]]
atexit.register(lambda: (marks / "atexit").write_text("ran"))


class Teardown:
    def __del__(self):
        (marks / "teardown").write_text("ran")


KEEP = Teardown()  # a module global: finalized only when the interpreter tears down
from tradeloop.cli.app import run

run()
"""


def _run(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    marks = tmp_path / "marks"
    marks.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(marks), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "400"},  # one line per file listed
        timeout=300,
        check=False,
    )
    return proc, marks


def test_a_backtest_ends_without_teardown_with_its_output_complete(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc, marks = _run(
        tmp_path, "backtest", "-s", "sma_cross", "-d", str(SAMPLE), "--fee", "0.001",
        "--out", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (marks / "atexit").read_text() == "ran"  # the exit callbacks ran
    assert not (marks / "teardown").exists()  # the interpreter's teardown did not
    # everything printed reached the pipe: the listing of the files ends the output, each
    # line naming a file that exists
    listing = [line.split(": ", 1) for line in proc.stdout.splitlines() if ": " in line]
    files = {name.strip(): Path(path) for name, path in listing if name.strip().isidentifier()}
    assert {"trades", "summary", "report", "equity"} <= files.keys()
    name, path = listing[-1]
    assert Path(path).is_file()
    assert files[name.strip()] == Path(path)
    # and every file is whole
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    with (out / "trades.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == summary["trade_count"] + summary["open_positions_at_end"] > 0
    assert (out / "report.html").read_text(encoding="utf-8").rstrip().endswith("</html>")


def test_a_refused_backtest_keeps_its_exit_status_and_message(tmp_path: Path) -> None:
    bad = tmp_path / "BTC_USDT.csv"
    bad.write_text("timestamp,open,high,low,close,volume\n2024-01-01,1,2,0.5,x,1\n")
    proc, marks = _run(tmp_path, "backtest", "-s", "sma_cross", "-d", str(bad))
    assert proc.returncode == 3  # the CLI's status for bad data
    # the error, flushed before the process ended
    assert "BTC_USDT.csv, row 0, field 'close'" in proc.stderr
    assert (marks / "atexit").read_text() == "ran"
    assert not (marks / "teardown").exists()


def test_a_command_that_is_no_batch_command_exits_the_normal_way(tmp_path: Path) -> None:
    proc, marks = _run(tmp_path, "strategies", "--json")
    assert proc.returncode == 0, proc.stderr
    assert any(s["name"] == "sma_cross" for s in json.loads(proc.stdout))
    assert (marks / "atexit").read_text() == "ran"
    assert (marks / "teardown").read_text() == "ran"  # torn down as usual


_THREAD_CHILD = r"""
import sys, threading, time
from tradeloop.cli import memory

memory.end_batch_process(0)  # no batch command ran yet: returns
print("before", flush=True)
with memory.batch_command():
    pass
done = []
worker = threading.Thread(target=lambda: (time.sleep(0.3), done.append(1)))  # not a daemon
worker.start()
memory.end_batch_process(0)  # a thread still runs: returns, the normal exit waits for it
print("returned", flush=True)
memory.end_batch_process("a message")  # a message is printed by the normal exit
print("returned again", flush=True)
worker.join()
memory.end_batch_process(3)
print("not reached", flush=True)
"""


def test_no_batch_command_a_running_thread_or_a_message_leave_the_exit_to_python() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _THREAD_CHILD],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.stdout.split() == ["before", "returned", "returned", "again"], proc.stderr
    assert proc.returncode == 3  # once the thread is done the process ends with the status
