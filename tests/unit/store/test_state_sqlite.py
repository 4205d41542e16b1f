"""SQLite state store: round trips, atomic transactions, migrations and SIGKILL recovery."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tradeloop.core import (
    Bracket,
    ConfigError,
    ExitReason,
    Fill,
    Order,
    OrderSide,
    OrderType,
    Portfolio,
    Position,
    StrategyError,
    TimeInForce,
    Trade,
)
from tradeloop.store import (
    STATE_SCHEMA_VERSION,
    SqliteStateStore,
    StateStore,
    StoredOrder,
    open_state_store,
)
from tradeloop.store.state_schema import MIGRATIONS
from tradeloop.testing.state_writer import check_step_consistent

RUN = "paper-1"
ORDER = Order(
    7,
    "BTC/USDT",
    OrderSide.BUY,
    OrderType.LIMIT,
    0.5,
    1_700_000_000_000_000_000,
    limit_price=30_000.5,
    stop_price=None,
    time_in_force=TimeInForce.IOC,
    equity_fraction=None,
    reduce_only=False,
    tag="entry",
    exits=Bracket(29_000.0, 32_000.0, 0.02, None),
    position_id="pos-1",
)
PLAIN_ORDER = Order(8, "ETH/USDT", OrderSide.SELL, OrderType.MARKET, 0.0, 5, equity_fraction=0.1)
FILL = Fill(7, "BTC/USDT", OrderSide.BUY, 0.5, 30_000.25, 0.015, 1_700_000_000_000_000_001)
POSITION = Position(
    "pos-1", "BTC/USDT", 1, 0.5, 30_000.25, 11, 0.015, 29_000.0, 32_000.0, 0.02, 30_100.0, "e", 0.01
)
SHORT = Position("pos-2", "ETH/USDT", -1, 2.0, 2_000.0, 12, 0.2)
OPEN_TRADE = Trade("pos-1", "BTC/USDT", 1, 0.5, 11, 30_000.25, None, None, 0.015, 0.0, 0.0, None)
CLOSED_TRADE = Trade(
    "pos-0", "BTC/USDT", -1, 1.0, 1, 31_000.0, 9, 30_000.0, 0.03, 0.03, 999.94,
    ExitReason.TAKE_PROFIT, "t", None, 30_000.0,
)  # fmt: skip


def _portfolio() -> Portfolio:
    pf = Portfolio(10_000.0)
    pf.balance = 5_123.456789
    pf.positions = {"BTC/USDT": POSITION, "ETH/USDT": SHORT}
    pf.trades = [CLOSED_TRADE, OPEN_TRADE]
    pf.marks = {"BTC/USDT": 30_123.1, "ETH/USDT": 1_999.9}
    return pf


def _write_step_then_fail(store: StateStore) -> None:
    with store.transaction():
        store.save_order(RUN, ORDER)
        store.save_fill(RUN, FILL)
        store.save_portfolio(RUN, _portfolio(), ts=1)
        store.save_strategy_state(RUN, "sma", {"n": 1}, ts=1)
        store.save_checkpoint(RUN, "BTC/USDT", 1)
        raise RuntimeError("crash mid-step")


def _checkpoint_then_fail(store: StateStore) -> None:
    with store.transaction():
        store.save_checkpoint(RUN, "ETH/USDT", 2)
        raise RuntimeError("inner")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    with open_state_store(tmp_path / "state" / "run.db") as s:
        yield s


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


def test_every_record_type_round_trips(store: StateStore) -> None:
    # Arrange
    pf = _portfolio()
    # Act
    store.save_order(RUN, ORDER, "accepted")
    store.save_order(RUN, PLAIN_ORDER)
    store.set_order_status(RUN, 8, "filled")
    assert store.save_fill(RUN, FILL) == 1
    assert store.save_fill(RUN, FILL) == 2
    store.save_portfolio(RUN, pf, ts=100)
    store.save_strategy_state(RUN, "sma", {"n": 3, "xs": [1.5, None], "s": "é"}, ts=100)
    store.save_checkpoint(RUN, "BTC/USDT", 60_000_000_000)
    store.save_checkpoint(RUN, "BTC/USDT", 120_000_000_000)
    state = store.load_run(RUN)
    # Assert
    assert state is not None
    assert [o.order for o in store.load_orders(RUN)] == [ORDER, PLAIN_ORDER]
    assert [(o.order, o.status) for o in state.open_orders] == [(ORDER, "accepted")]
    assert store.load_fills(RUN) == [FILL, FILL]
    assert state.portfolio is not None
    assert state.snapshot_ts == 100
    assert state.portfolio.positions == pf.positions
    assert state.portfolio.trades == [CLOSED_TRADE, OPEN_TRADE]
    assert state.portfolio.balance == pf.balance
    assert state.portfolio.initial_balance == pf.initial_balance
    assert state.portfolio.marks == pf.marks
    assert state.portfolio.equity == pytest.approx(pf.equity)
    assert state.strategy_states == {"sma": {"n": 3, "xs": [1.5, None], "s": "é"}}
    assert state.checkpoints == {"BTC/USDT": 120_000_000_000}
    assert store.run_ids() == [RUN]
    assert store.load_run("other") is None


def test_save_portfolio_closed_position_removed_and_trade_updated(store: StateStore) -> None:
    # Arrange
    pf = _portfolio()
    store.save_portfolio(RUN, pf, ts=1)
    closed = Trade("pos-1", "BTC/USDT", 1, 0.5, 11, 30_000.25, 20, 31_000.0, 0.015, 0.015, 374.0,
                   ExitReason.STOP_LOSS)  # fmt: skip
    del pf.positions["BTC/USDT"]
    # Act
    store.save_portfolio(RUN, pf, ts=2, trades=[closed])
    # Assert
    state = store.load_run(RUN)
    assert state is not None
    assert state.portfolio is not None
    assert list(state.portfolio.positions) == ["ETH/USDT"]
    assert state.portfolio.trades == [CLOSED_TRADE, closed]
    assert state.snapshot_ts == 2


def test_transaction_exception_rolls_back_everything(store: StateStore) -> None:
    # Act
    with pytest.raises(RuntimeError, match="mid-step"):
        _write_step_then_fail(store)
    # Assert
    assert store.load_run(RUN) is None
    assert store.load_orders(RUN) == []
    assert store.load_fills(RUN) == []
    assert store.load_trades(RUN) == []
    assert store.load_positions(RUN) == {}


def test_record_step_bad_strategy_state_writes_nothing(store: StateStore) -> None:
    # Act
    with pytest.raises(StrategyError, match="JSON"):
        store.record_step(
            RUN,
            ts=1,
            portfolio=_portfolio(),
            checkpoints={"BTC/USDT": 1},
            strategy_states={"bad": {"x": object()}},
            orders=[StoredOrder(ORDER, "submitted")],
        )
    # Assert
    assert store.load_run(RUN) is None


def test_nested_transaction_failure_rolls_back_only_inner_block(store: StateStore) -> None:
    # Act
    with store.transaction():
        store.save_checkpoint(RUN, "BTC/USDT", 1)
        with pytest.raises(RuntimeError, match="inner"):
            _checkpoint_then_fail(store)
    # Assert
    assert store.load_checkpoints(RUN) == {"BTC/USDT": 1}


def test_set_order_status_unknown_order_raises(store: StateStore) -> None:
    with pytest.raises(ConfigError, match="no stored order"):
        store.set_order_status(RUN, 99, "filled")


def test_delete_run_removes_only_that_run(store: StateStore) -> None:
    store.save_checkpoint(RUN, "BTC/USDT", 1)
    store.save_checkpoint("keep", "BTC/USDT", 2)
    store.delete_run(RUN)
    assert store.run_ids() == ["keep"]


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
