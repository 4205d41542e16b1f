"""`tradeloop state backup` / `restore` on the real stores: SQLite (copied while a writer keeps
writing), DuckDB, and PostgreSQL (pg_dump / pg_restore into a database of its own)."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tradeloop.cli.app import app
from tradeloop.store.analytics import FEEDBACK_COLUMNS, AnalyticsStore
from tradeloop.store.state import open_state_store

RUN = "run-a"


def _bars(
    start: int, n: int
) -> list[tuple[str, str, int, float, float, float, float, float, bool]]:
    return [("BTC/USDT", "1m", (start + i) * 60_000_000_000, 1.0, 2.0, 0.5, 1.5, 10.0, True)
            for i in range(n)]  # fmt: skip


def _feedback(n: int) -> list[dict[str, object]]:
    rows = []
    for i in range(n):
        row = dict.fromkeys(FEEDBACK_COLUMNS, 0)
        row.update(signal_id=f"s{i}", source=RUN, symbol="BTC/USDT", side="long",
                   component="near", pnl=float(i), entry_price=1.0, exit_price=1.1)  # fmt: skip
        rows.append(row)
    return rows


def test_sqlite_and_duckdb_backup_while_writing_then_restore(tmp_path: Path) -> None:
    # Arrange: a state store with a run and bars, an analytics store with feedback rows
    state, analytics = tmp_path / "state.db", tmp_path / "analytics.duckdb"
    with open_state_store(str(state)) as store:
        store.save_run_meta(RUN, {"mode": "paper"}, 1)
        store.save_bars(RUN, _bars(0, 500))
    AnalyticsStore(analytics).insert_feedback(_feedback(40))
    stop = threading.Event()
    written = [0]

    def writer() -> None:  # a running engine keeps writing during the backup
        with open_state_store(str(state)) as store:
            k = 500
            while not stop.is_set():
                store.save_bars(RUN, _bars(k, 10))
                k += 10
                written[0] = k

    thread = threading.Thread(target=writer)
    thread.start()
    time.sleep(0.2)
    runner = CliRunner()
    # Act
    backup = runner.invoke(app, ["state", "backup", "--state", str(state), "--analytics",
                                 str(analytics), "--to", str(tmp_path / "b1")])  # fmt: skip
    stop.set()
    thread.join()
    manifest = json.loads((tmp_path / "b1" / "manifest.json").read_text())
    refused = runner.invoke(app, ["state", "restore", "--from", str(tmp_path / "b1"), "--state",
                                  str(state), "--analytics", str(analytics)])  # fmt: skip
    state.unlink()
    analytics.unlink()
    restored = runner.invoke(app, ["state", "restore", "--from", str(tmp_path / "b1"), "--state",
                                   str(state), "--analytics", str(analytics)])  # fmt: skip
    # Assert: a consistent snapshot (whole batches of 10, between start and end of the writes)
    assert backup.exit_code == 0, backup.output
    bars_in_backup = manifest["state"]["rows"]["bars"]
    assert 500 <= bars_in_backup <= written[0]
    assert bars_in_backup % 10 == 0
    assert manifest["analytics"]["rows"]["signal_feedback"] == 40
    assert refused.exit_code == 2
    assert "--force" in refused.output
    assert restored.exit_code == 0, restored.output
    with open_state_store(str(state)) as store:
        assert store.load_run_meta(RUN) == {"mode": "paper"}
        assert len(store.load_bars(RUN, "BTC/USDT", "1m")) == bars_in_backup
    con = sqlite3.connect(state)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    rows = AnalyticsStore(analytics, read_only=True, hold=False).feedback()
    assert sorted(r["signal_id"] for r in rows) == sorted(f"s{i}" for i in range(40))


def test_a_changed_backup_is_refused_and_the_target_kept(tmp_path: Path) -> None:
    # Arrange
    state, analytics = tmp_path / "state.db", tmp_path / "analytics.duckdb"
    with open_state_store(str(state)) as store:
        store.save_run_meta(RUN, {"mode": "paper"}, 1)
    AnalyticsStore(analytics).insert_feedback(_feedback(3))
    runner = CliRunner()
    runner.invoke(app, ["state", "backup", "--state", str(state), "--analytics", str(analytics),
                        "--to", str(tmp_path / "b")])  # fmt: skip
    with sqlite3.connect(tmp_path / "b" / "state.db") as con:
        con.execute("DELETE FROM runs")
    before = state.read_bytes()
    # Act
    out = runner.invoke(app, ["state", "restore", "--from", str(tmp_path / "b"), "--state",
                              str(state), "--analytics", str(analytics), "--force"])  # fmt: skip
    # Assert
    assert out.exit_code == 3
    assert "state.db is missing or changed" in out.output
    assert state.read_bytes() == before


@pytest.fixture
def pg_database(pg_url: str) -> Iterator[str]:
    """A database of its own on the real PostgreSQL server (dropped afterwards)."""
    import psycopg

    name = f"tl_backup_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_url, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    url = pg_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with psycopg.connect(pg_url, autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_postgresql_state_store_backup_and_restore(pg_database: str, tmp_path: Path) -> None:
    # Arrange
    with open_state_store(pg_database) as store:
        store.save_run_meta(RUN, {"mode": "paper", "n": 1}, 1)
        store.save_bars(RUN, _bars(0, 300))
    analytics = tmp_path / "analytics.duckdb"
    AnalyticsStore(analytics).insert_feedback(_feedback(5))
    runner = CliRunner()
    # Act: back up, lose the run, restore
    backup = runner.invoke(app, ["state", "backup", "--state", pg_database, "--analytics",
                                 str(analytics), "--to", str(tmp_path / "b")])  # fmt: skip
    with open_state_store(pg_database) as store:
        store.delete_run(RUN)
        assert store.load_run_meta(RUN) is None
    args = ["--state", pg_database, "--analytics", str(analytics), "--force"]
    restored = runner.invoke(app, ["state", "restore", "--from", str(tmp_path / "b"), *args])
    # Assert
    assert backup.exit_code == 0, backup.output
    assert restored.exit_code == 0, restored.output
    with open_state_store(pg_database) as store:
        assert store.load_run_meta(RUN) == {"mode": "paper", "n": 1}
        assert len(store.load_bars(RUN, "BTC/USDT", "1m")) == 300
