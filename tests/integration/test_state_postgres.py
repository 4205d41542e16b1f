"""PostgreSQL state store against the real server on 127.0.0.1:5432 (one schema per test).

The backend-independent checks (round trips, transactions) run on PostgreSQL too, from
``tests/unit/store/test_state_contract.py``.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from tradeloop.core import (
    Bracket,
    ConfigError,
    Fill,
    Order,
    OrderSide,
    OrderType,
    TemporaryError,
    TimeInForce,
)
from tradeloop.store import STATE_SCHEMA_VERSION, PostgresStateStore, StateStore, open_state_store
from tradeloop.store.state_schema import MIGRATIONS
from tradeloop.testing.state_writer import check_step_consistent

WRITER = [sys.executable, "-m", "tradeloop.testing.state_writer"]
ORDER = Order(
    7, "BTC/USDT", OrderSide.SELL, OrderType.STOP_LIMIT, 0.25, 1_700_000_000_000_000_000,
    29_500.0, 29_600.0, TimeInForce.DAY, None, True, "exit", Bracket(None, 28_000.0), "pos-1",
)  # fmt: skip
FILL = Fill(7, "BTC/USDT", OrderSide.SELL, 0.25, 29_500.5, 0.01, 1_700_000_000_000_000_009, "sl")


@pytest.fixture
def schema(pg_url: str) -> Iterator[str]:
    """A fresh schema, dropped with everything in it after the test."""
    name = f"t_state_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(pg_url, autocommit=True) as con:
        con.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture
def store(pg_url: str, schema: str) -> Iterator[StateStore]:
    with open_state_store(pg_url, schema=schema) as s:
        yield s


def test_open_state_store_url_gives_postgres_at_latest_version(store: StateStore) -> None:
    assert isinstance(store, PostgresStateStore)
    assert store.schema_version == STATE_SCHEMA_VERSION


def test_open_state_store_unreachable_server_raises_temporary_error() -> None:
    with pytest.raises(TemporaryError, match="not reachable"):
        open_state_store("postgresql://postgres@127.0.0.1:1/test")


def test_open_v1_schema_is_migrated_in_place_keeping_rows(pg_url: str, schema: str) -> None:
    # Arrange: a schema as the first release wrote it
    with psycopg.connect(pg_url, autocommit=True) as con:
        con.execute(f'CREATE SCHEMA "{schema}"')
        con.execute(f'SET search_path TO "{schema}"')
        con.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        for statement in MIGRATIONS[0]:
            con.execute(statement)
        con.execute("INSERT INTO schema_version VALUES (1)")
        con.execute("INSERT INTO checkpoints VALUES ('r', 'BTC/USDT', 42)")
    # Act
    with open_state_store(pg_url, schema=schema) as store:
        # Assert
        assert store.schema_version == STATE_SCHEMA_VERSION
        assert store.load_checkpoints("r") == {"BTC/USDT": 42}
        store.save_order("r", ORDER)
        assert store.load_orders("r")[0].status == "submitted"
        assert store.save_fill("r", FILL) == 1


def test_open_newer_schema_raises_config_error(pg_url: str, schema: str) -> None:
    open_state_store(pg_url, schema=schema).close()
    with psycopg.connect(pg_url, autocommit=True) as con:
        con.execute(
            f'INSERT INTO "{schema}".schema_version VALUES (%s)', (STATE_SCHEMA_VERSION + 1,)
        )
    with pytest.raises(ConfigError, match="newer"):
        open_state_store(pg_url, schema=schema)


def test_sigkill_at_random_moments_leaves_consistent_state(pg_url: str, schema: str) -> None:
    rng = random.Random()
    last = 0
    for _ in range(3):
        # Arrange / Act: start the writer and kill it at a random moment
        proc = subprocess.Popen(
            [*WRITER, pg_url, "crash", "--schema", schema],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        printed = [int(proc.stdout.readline())]
        time.sleep(rng.uniform(0.0, 0.25))
        proc.send_signal(signal.SIGKILL)
        rest, _ = proc.communicate(timeout=10)
        printed += [int(x) for x in rest.split()]
        # Assert: one whole step, every acknowledged step kept, progress across restarts
        with open_state_store(pg_url, schema=schema) as store:
            state = store.load_run("crash")
            assert state is not None
            step = check_step_consistent(state)
        assert step >= printed[-1] > last
        last = step
