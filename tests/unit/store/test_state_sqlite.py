"""SQLite state store: file pragmas, migrations and SIGKILL recovery.

The backend-independent checks (round trips, transactions) are in ``test_state_contract.py``.
"""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tradeloop.core import ConfigError, Fill, Order, OrderSide, OrderType
from tradeloop.store import STATE_SCHEMA_VERSION, SqliteStateStore, open_state_store
from tradeloop.store.state_schema import MIGRATIONS
from tradeloop.testing.state_writer import check_step_consistent

FILL = Fill(7, "BTC/USDT", OrderSide.BUY, 0.5, 30_000.25, 0.015, 1_700_000_000_000_000_001)


def test_open_state_store_sqlite_file_uses_wal_and_full_sync(tmp_path: Path) -> None:
    # Arrange / Act
    s = open_state_store(f"sqlite:///{tmp_path / 'a.db'}")
    # Assert
    assert isinstance(s, SqliteStateStore)
    assert s._execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert s._execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert s.schema_version == STATE_SCHEMA_VERSION
    s.close()
    s.close()


def test_open_state_store_unknown_scheme_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="postgresql"):
        open_state_store("mysql://x/y")


def test_open_v1_database_is_migrated_in_place_keeping_rows(tmp_path: Path) -> None:
    # Arrange: a database as the first release wrote it
    path = tmp_path / "old.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for statement in MIGRATIONS[0]:
        con.execute(statement)
    con.execute("INSERT INTO schema_version VALUES (1)")
    con.execute(
        "INSERT INTO orders VALUES ('r', 3, 'BTC/USDT', 'buy', 'market', 1.0, 5, NULL, NULL, "
        "'gtc', NULL, 0, '', NULL, NULL, NULL, NULL, 0, NULL)"
    )
    con.execute("INSERT INTO checkpoints VALUES ('r', 'BTC/USDT', 42)")
    con.commit()
    con.close()
    # Act
    with open_state_store(path) as store:
        # Assert
        assert store.schema_version == STATE_SCHEMA_VERSION
        assert store.load_checkpoints("r") == {"BTC/USDT": 42}
        (old,) = store.load_orders("r")
        assert old.status == "submitted"
        assert old.order == Order(3, "BTC/USDT", OrderSide.BUY, OrderType.MARKET, 1.0, 5)
        assert store.save_fill("r", FILL) == 1
    with open_state_store(path) as again:
        assert again.schema_version == STATE_SCHEMA_VERSION
        versions = again._execute("SELECT version FROM schema_version ORDER BY 1").fetchall()
        assert [v[0] for v in versions] == list(range(1, STATE_SCHEMA_VERSION + 1))


def test_open_newer_schema_raises_config_error(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    open_state_store(path).close()
    con = sqlite3.connect(path)
    con.execute("INSERT INTO schema_version VALUES (?)", (STATE_SCHEMA_VERSION + 1,))
    con.commit()
    con.close()
    with pytest.raises(ConfigError, match="newer"):
        open_state_store(path)


def _run_and_kill(target: str, run_id: str, rng: random.Random, extra: list[str]) -> int:
    """Start the writer, SIGKILL it at a random moment, return the last step it printed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tradeloop.testing.state_writer", target, run_id, *extra],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    first = int(proc.stdout.readline())
    time.sleep(rng.uniform(0.0, 0.25))
    proc.send_signal(signal.SIGKILL)
    rest, _ = proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    printed = [first, *(int(x) for x in rest.split())]
    return printed[-1]


def test_sigkill_at_random_moments_leaves_consistent_state(tmp_path: Path) -> None:
    # Arrange
    target = str(tmp_path / "crash.db")
    rng = random.Random()
    last = 0
    for _ in range(3):
        # Act
        printed = _run_and_kill(target, "crash", rng, [])
        with open_state_store(target) as store:
            assert store._execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            state = store.load_run("crash")
            # Assert: one whole step, every acknowledged step kept, progress across restarts
            assert state is not None
            step = check_step_consistent(state)
        assert step >= printed > last
        last = step
