"""DuckDB analytics store: idempotent feedback, weight versions, migrations."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest

from tradeloop.core.errors import ConfigError
from tradeloop.store import SCHEMA_VERSION, AnalyticsStore, current_version, migrate


def _row(i: int, source: str = "ext", pnl: float = 1.0) -> dict[str, object]:
    return {
        "signal_id": f"s{i}",
        "source": source,
        "symbol": "BTCUSDT",
        "side": "long",
        "entry_price": 100.0,
        "exit_price": 101.0,
        "entry_ts": i,
        "exit_ts": i + 10,
        "pnl": pnl,
        "pnl_pct": pnl / 100,
    }


def test_insert_feedback_same_signal_and_source_stored_once() -> None:
    store = AnalyticsStore()
    assert store.insert_feedback([_row(1), _row(1), _row(2)]) == 2
    assert store.insert_feedback([_row(1), _row(2)]) == 0
    assert store.insert_feedback([_row(1, source="tradeloop")]) == 1
    assert store.feedback_count() == 3


def test_rolling_metrics_groups_by_source_and_component() -> None:
    store = AnalyticsStore()
    store.insert_feedback([_row(1, pnl=1.0), _row(2, pnl=-1.0), _row(3, pnl=2.0)])
    rows = {(r["source"], r["component"]): r for r in store.rolling_metrics(0)}
    total = rows[("*", "*")]
    assert total["count"] == 3
    assert abs(total["hit_rate"] - 2 / 3) < 1e-12
    assert abs(total["mean_pnl"] - 2 / 3) < 1e-12
    assert rows[("ext", "liquidation_zone")]["count"] == 3
    assert store.rolling_metrics(1_000)[0:] == []


def test_weights_versions_are_kept() -> None:
    store = AnalyticsStore()
    assert store.weights() is None
    v1 = store.save_weights({"a": 1.0, "b": 1.0}, 5, "initial")
    v2 = store.save_weights({"a": 1.5, "b": 0.5}, 6, "ema")
    assert (v1, v2) == (1, 2)
    assert store.weights()["weights"] == {"a": 1.5, "b": 0.5}
    assert store.weights(1)["reason"] == "initial"
    assert [h["version"] for h in store.weight_history()] == [1, 2]


def test_older_schema_file_is_upgraded_not_recreated(tmp_path: Path) -> None:
    # Arrange: a file at schema v1 with one feedback row
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    migrate(con, target=1)
    con.execute(
        "INSERT INTO signal_feedback VALUES ('old', 'ext', 'BTCUSDT', 'long', 1, 2, 0, 1, 1, 1)"
    )
    con.close()
    # Act
    store = AnalyticsStore(path)
    # Assert: upgraded in place, the old row kept with the new column's default
    assert current_version(store._con) == SCHEMA_VERSION
    rows = store.feedback()
    assert [r["signal_id"] for r in rows] == ["old"]
    assert rows[0]["component"] == "liquidation_zone"
    store.close()
    # reopening a current file changes nothing
    again = AnalyticsStore(path)
    assert again.feedback_count() == 1


_READ_WEIGHTS = """
import sys
from tradeloop.store import AnalyticsStore
store = AnalyticsStore(sys.argv[1], read_only=True, hold=False, lock_timeout_s=30)
print(store.weights()["version"], store.feedback_count())
"""


def _read_in_other_process(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _READ_WEIGHTS, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_writer_that_releases_the_file_lets_another_process_read(tmp_path: Path) -> None:
    # Arrange: the single writer, opening the file per operation
    path = tmp_path / "shared.duckdb"
    writer = AnalyticsStore(path, hold=False)
    writer.save_weights({"a": 1.0}, 1, "initial")
    writer.insert_feedback([_row(1), _row(2)])
    # Act: another process reads while the writer object is alive
    read = _read_in_other_process(path)
    # Assert
    assert read.returncode == 0, read.stderr
    assert read.stdout.split() == ["1", "2"]
    writer.save_weights({"a": 2.0}, 2, "ema")  # and the writer can still write afterwards
    assert writer.weights()["version"] == 2  # type: ignore[index]


def test_reader_waits_for_a_writer_that_holds_the_file(tmp_path: Path) -> None:
    # Arrange: another process holds the file read-write until told to let go
    path = tmp_path / "held.duckdb"
    seed = AnalyticsStore(path)
    seed.save_weights({"a": 1.0}, 1, "initial")
    seed.close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, duckdb; c = duckdb.connect(sys.argv[1]); print('held', flush=True); "
            "sys.stdin.readline(); c.close()",
            str(path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        reader = AnalyticsStore(path, read_only=True, hold=False, lock_timeout_s=120)
        result: list[object] = []
        thread = threading.Thread(target=lambda: result.append(reader.weights()))
        # Act: the read starts while the file is locked, then the holder lets go
        thread.start()
        while reader.lock_waits == 0 and thread.is_alive():
            time.sleep(0.01)
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.flush()
        thread.join(120)
    finally:
        holder.kill()
        holder.wait()
    # Assert: it waited for the lock instead of failing, then read the stored version
    assert reader.lock_waits > 0
    assert result[0]["version"] == 1  # type: ignore[index]


def test_read_only_store_never_writes_and_missing_file_reads_empty(tmp_path: Path) -> None:
    path = tmp_path / "none.duckdb"
    reader = AnalyticsStore(path, read_only=True, hold=False)
    assert reader.weights() is None
    assert reader.feedback_count() == 0
    assert not path.exists()
    with pytest.raises(ConfigError, match="read-only"):
        reader.insert_feedback([_row(1)])
