"""State-store contract: the same checks against SQLite and the real PostgreSQL server.

The ``postgresql`` cases use a fresh schema per test on 127.0.0.1:5432 (``pg_url`` fails them
under ``CI`` and skips them elsewhere when the server is missing). Backend-specific checks
(pragmas, migrations, SIGKILL recovery) stay in ``test_state_sqlite.py`` and
``tests/integration/test_state_postgres.py``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
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
from tradeloop.store import StateStore, StoredOrder, open_state_store

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

# A short stop-limit exit, for the one-call ``record_step`` round trip
STEP_ORDER = Order(
    7, "BTC/USDT", OrderSide.SELL, OrderType.STOP_LIMIT, 0.25, 1_700_000_000_000_000_000,
    29_500.0, 29_600.0, TimeInForce.DAY, None, True, "exit", Bracket(None, 28_000.0), "pos-1",
)  # fmt: skip
STEP_FILL = Fill(
    7, "BTC/USDT", OrderSide.SELL, 0.25, 29_500.5, 0.01, 1_700_000_000_000_000_009, "sl"
)
STEP_POSITION = Position(
    "pos-1", "BTC/USDT", -1, 0.25, 30_000.0, 3, 0.01, 31_000.0, None, 0.05, 29_000
)
STEP_TRADE = Trade(
    "pos-0", "ETH/USDT", 1, 2.0, 1, 2_000.0, 2, 2_100.0, 0.2, 0.2, 199.6, ExitReason.TRAILING, "x"
)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    """An empty store: a SQLite file, or a fresh PostgreSQL schema dropped afterwards."""
    if request.param == "sqlite":
        with open_state_store(tmp_path / "state" / "run.db") as s:
            yield s
        return
    pg_url: str = request.getfixturevalue("pg_url")
    schema = f"t_state_{uuid.uuid4().hex[:12]}"
    try:
        with open_state_store(pg_url, schema=schema) as s:
            yield s
    finally:
        with psycopg.connect(pg_url, autocommit=True) as con:
            con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _portfolio() -> Portfolio:
    pf = Portfolio(10_000.0)
    pf.balance = 5_123.456789
    pf.positions = {"BTC/USDT": POSITION, "ETH/USDT": SHORT}
    pf.trades = [CLOSED_TRADE, OPEN_TRADE]
    pf.marks = {"BTC/USDT": 30_123.1, "ETH/USDT": 1_999.9}
    return pf


def _step_portfolio() -> Portfolio:
    pf = Portfolio(2_500.0)
    pf.balance = 9_876.54321
    pf.positions = {"BTC/USDT": STEP_POSITION}
    pf.trades = [STEP_TRADE]
    pf.marks = {"BTC/USDT": 29_800.0, "ETH/USDT": 2_100.0}
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


def test_record_step_round_trips_every_record_type(store: StateStore) -> None:
    # Arrange
    pf = _step_portfolio()
    # Act
    store.record_step(
        RUN,
        ts=50,
        portfolio=pf,
        checkpoints={"BTC/USDT": 60_000_000_000, "ETH/USDT": 0},
        strategy_states={"rsi": {"window": [1.0, 2.5], "armed": True}},
        orders=[StoredOrder(STEP_ORDER, "accepted")],
        fills=[STEP_FILL],
    )
    state = store.load_run(RUN)
    # Assert
    assert state is not None
    assert state.portfolio is not None
    assert [(o.order, o.status) for o in state.open_orders] == [(STEP_ORDER, "accepted")]
    assert store.load_fills(RUN) == [STEP_FILL]
    assert state.portfolio.positions == pf.positions
    assert state.portfolio.trades == [STEP_TRADE]
    assert (state.portfolio.balance, state.portfolio.initial_balance) == (9_876.54321, 2_500.0)
    assert state.portfolio.marks == pf.marks
    assert state.snapshot_ts == 50
    assert state.strategy_states == {"rsi": {"window": [1.0, 2.5], "armed": True}}
    assert state.checkpoints == {"BTC/USDT": 60_000_000_000, "ETH/USDT": 0}


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
