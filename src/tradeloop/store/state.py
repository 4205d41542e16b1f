"""Durable state of paper and live runs: the ``StateStore`` port and its two backends.

:class:`SqliteStateStore` (a file; WAL, ``synchronous=FULL``) is the default and needs no
server; :class:`PostgresStateStore` (a ``postgresql://`` URL) is the same store on a server.
:func:`open_state_store` picks one from its argument.

Both hold orders, fills, open positions, trades, portfolio snapshots, strategy state (the JSON
of ``Strategy.get_state()``) and engine checkpoints (the last processed bar time per run and
symbol). Every write method is atomic, and ``with store.transaction():`` groups several into one
commit, so a crash leaves either all of a step or none of it. :meth:`StateStore.load_run`
rebuilds what a restart needs. The domain types come from :mod:`tradeloop.core`; their fields
map to columns one to one.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    TemporaryError,
    TimeInForce,
    Trade,
)
from tradeloop.core.extras import needs_extra
from tradeloop.core.order_status import OPEN_STATUSES
from tradeloop.store.state_schema import MIGRATIONS, STATE_SCHEMA_VERSION, STATE_TABLES

__all__ = [
    "OPEN_ORDER_STATUSES",
    "PostgresStateStore",
    "RunState",
    "SqliteStateStore",
    "StateStore",
    "StoredBar",
    "StoredOrder",
    "open_state_store",
]

OPEN_ORDER_STATUSES: frozenset[str] = frozenset(OPEN_STATUSES)

_ORDER_COLS = (
    "run_id, id, symbol, side, type, quantity, ts_created, limit_price, stop_price, "
    "time_in_force, equity_fraction, reduce_only, tag, exit_stop_loss, exit_take_profit, "
    "exit_trailing_stop, exit_trailing_activation, has_exits, position_id, status"
)
_POSITION_COLS = (
    "run_id, id, symbol, direction, quantity, entry_price, entry_ts, entry_fee, stop_loss, "
    "take_profit, trail_fraction, trail_anchor, tag, trail_activation"
)
_TRADE_COLS = (
    "run_id, id, symbol, direction, quantity, entry_ts, entry_price, exit_ts, exit_price, "
    "entry_fee, exit_fee, pnl, exit_reason, tag, stop_loss, take_profit"
)
_FILL_COLS = "run_id, seq, order_id, symbol, side, quantity, price, fee, ts, reason"
_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def _upsert(table: str, cols: str, keys: str) -> str:
    names = [c.strip() for c in cols.split(",")]
    key_set = {k.strip() for k in keys.split(",")}
    updates = ", ".join(f"{n} = excluded.{n}" for n in names if n not in key_set)
    marks = ", ".join("?" for _ in names)
    return (
        f"INSERT INTO {table} ({cols}) VALUES ({marks}) "
        f"ON CONFLICT ({keys}) DO UPDATE SET {updates}"
    )


_UPSERT_ORDER = _upsert("orders", _ORDER_COLS, "run_id, id")
_UPSERT_TRADE = _upsert("trades", _TRADE_COLS, "run_id, id")
_INSERT_POSITION = (
    f"INSERT INTO positions ({_POSITION_COLS}) VALUES ({', '.join('?' for _ in range(14))})"
)
_INSERT_FILL = f"INSERT INTO fills ({_FILL_COLS}) VALUES ({', '.join('?' for _ in range(10))})"
_UPSERT_SNAPSHOT = _upsert(
    "portfolio_snapshots", "run_id, ts, initial_balance, balance, equity, marks", "run_id, ts"
)
_UPSERT_STRATEGY = _upsert("strategy_state", "run_id, strategy, state, ts", "run_id, strategy")
_UPSERT_CHECKPOINT = _upsert("checkpoints", "run_id, symbol, last_bar_ts", "run_id, symbol")
_UPSERT_RUN = _upsert("runs", "run_id, created_ns, meta", "run_id")
_UPSERT_ENGINE = _upsert("engine_state", "run_id, state, ts", "run_id")
_BAR_COLS = "run_id, symbol, timeframe, ts, open, high, low, close, volume, live"
_UPSERT_BAR = _upsert("bars", _BAR_COLS, "run_id, symbol, timeframe, ts")

#: One stored bar: symbol, timeframe, open time (UTC ns), open, high, low, close, volume and
#: whether the run traded on it (False: warm-up history).
StoredBar = tuple[str, str, int, float, float, float, float, float, bool]


@dataclass(frozen=True, slots=True)
class StoredOrder:
    """An order as stored, with its last known status (``submitted``, ``filled``, ...)."""

    order: Order
    status: str


@dataclass(slots=True)
class RunState:
    """What :meth:`StateStore.load_run` restores for one run.

    ``portfolio`` is rebuilt from the latest snapshot (cash, initial balance, marks), the open
    positions and the run's trades; it is None when no snapshot was written. ``checkpoints``
    maps symbol to the last processed bar time (UTC ns); ``strategy_states`` maps strategy
    name to the dict to pass to ``Strategy.set_state``.
    """

    run_id: str
    portfolio: Portfolio | None
    snapshot_ts: int | None
    checkpoints: dict[str, int] = field(default_factory=dict)
    strategy_states: dict[str, dict[str, Any]] = field(default_factory=dict)
    open_orders: list[StoredOrder] = field(default_factory=list)
    engine_state: dict[str, Any] = field(default_factory=dict)


def _order_row(run_id: str, order: Order, status: str) -> tuple[Any, ...]:
    ex = order.exits
    return (
        run_id,
        order.id,
        order.symbol,
        order.side.value,
        order.type.value,
        order.quantity,
        order.ts_created,
        order.limit_price,
        order.stop_price,
        order.time_in_force.value,
        order.equity_fraction,
        int(order.reduce_only),
        order.tag,
        None if ex is None else ex.stop_loss,
        None if ex is None else ex.take_profit,
        None if ex is None else ex.trailing_stop,
        None if ex is None else ex.trailing_activation,
        int(ex is not None),
        order.position_id,
        status,
    )


def _order_from(row: Sequence[Any]) -> StoredOrder:
    exits = Bracket(row[13], row[14], row[15], row[16]) if row[17] else None
    order = Order(
        id=int(row[1]),
        symbol=row[2],
        side=OrderSide(row[3]),
        type=OrderType(row[4]),
        quantity=float(row[5]),
        ts_created=int(row[6]),
        limit_price=row[7],
        stop_price=row[8],
        time_in_force=TimeInForce(row[9]),
        equity_fraction=row[10],
        reduce_only=bool(row[11]),
        tag=row[12],
        exits=exits,
        position_id=row[18],
    )
    return StoredOrder(order, row[19])


def _position_row(run_id: str, p: Position) -> tuple[Any, ...]:
    return (
        run_id,
        p.id,
        p.symbol,
        p.direction,
        p.quantity,
        p.entry_price,
        p.entry_ts,
        p.entry_fee,
        p.stop_loss,
        p.take_profit,
        p.trail_fraction,
        p.trail_anchor,
        p.tag,
        p.trail_activation,
    )


def _position_from(row: Sequence[Any]) -> Position:
    return Position(
        id=row[1],
        symbol=row[2],
        direction=int(row[3]),
        quantity=float(row[4]),
        entry_price=float(row[5]),
        entry_ts=int(row[6]),
        entry_fee=float(row[7]),
        stop_loss=row[8],
        take_profit=row[9],
        trail_fraction=row[10],
        trail_anchor=row[11],
        tag=row[12],
        trail_activation=row[13],
    )


def _trade_row(run_id: str, t: Trade) -> tuple[Any, ...]:
    return (
        run_id,
        t.id,
        t.symbol,
        t.direction,
        t.quantity,
        t.entry_ts,
        t.entry_price,
        t.exit_ts,
        t.exit_price,
        t.entry_fee,
        t.exit_fee,
        t.pnl,
        None if t.exit_reason is None else t.exit_reason.value,
        t.tag,
        t.stop_loss,
        t.take_profit,
    )


def _trade_from(row: Sequence[Any]) -> Trade:
    return Trade(
        id=row[1],
        symbol=row[2],
        direction=int(row[3]),
        quantity=float(row[4]),
        entry_ts=int(row[5]),
        entry_price=float(row[6]),
        exit_ts=None if row[7] is None else int(row[7]),
        exit_price=row[8],
        entry_fee=float(row[9]),
        exit_fee=float(row[10]),
        pnl=float(row[11]),
        exit_reason=None if row[12] is None else ExitReason(row[12]),
        tag=row[13],
        stop_loss=row[14],
        take_profit=row[15],
    )


def _fill_from(row: Sequence[Any]) -> Fill:
    return Fill(
        order_id=int(row[2]),
        symbol=row[3],
        side=OrderSide(row[4]),
        quantity=float(row[5]),
        price=float(row[6]),
        fee=float(row[7]),
        ts=int(row[8]),
        reason=row[9],
    )


class StateStore:
    """The state-store port: one interface over SQLite and PostgreSQL.

    Every ``save_*``/``record_step`` call is one transaction on its own; inside
    ``with store.transaction():`` the calls join the enclosing transaction, which commits when
    the block exits normally and rolls back entirely when it raises. Nested blocks are
    savepoints. A store is used from one thread, as the kernel is.
    """

    backend: str = ""

    def __init__(self) -> None:
        self._depth = 0
        self._closed = False

    # -- backend hooks -------------------------------------------------------------------
    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        raise NotImplementedError

    def _executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        raise NotImplementedError

    def _begin(self) -> None:
        raise NotImplementedError

    def _lock_schema(self) -> None:
        """Serialize concurrent migrations (inside the migration transaction)."""

    def _close(self) -> None:
        raise NotImplementedError

    # -- transactions --------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes into one atomic commit.

        Raises
        ------
        ConfigError
            When the store is closed.
        """
        if self._closed:
            raise ConfigError(f"state store ({self.backend}) is closed")
        if self._depth:
            name = f"sp{self._depth}"
            self._execute(f"SAVEPOINT {name}")
            self._depth += 1
            try:
                yield
            except BaseException:
                self._execute(f"ROLLBACK TO SAVEPOINT {name}")
                self._execute(f"RELEASE SAVEPOINT {name}")
                raise
            else:
                self._execute(f"RELEASE SAVEPOINT {name}")
            finally:
                self._depth -= 1
            return
        self._begin()
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            self._execute("ROLLBACK")
            raise
        self._depth = 0
        try:
            self._execute("COMMIT")
        except BaseException:
            self._execute("ROLLBACK")
            raise

    # -- schema --------------------------------------------------------------------------
    def _migrate(self, target: int = STATE_SCHEMA_VERSION) -> int:
        with self.transaction():
            self._lock_schema()
            self._execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            before = self._version()
            if before > len(MIGRATIONS):
                raise ConfigError(
                    f"state store schema version {before} is newer than this release "
                    f"supports ({len(MIGRATIONS)}); upgrade tradeloop"
                )
            for step in range(before, target):
                for statement in MIGRATIONS[step]:
                    self._execute(statement)
                self._execute("INSERT INTO schema_version (version) VALUES (?)", (step + 1,))
        return before

    def _version(self) -> int:
        row = self._execute("SELECT max(version) FROM schema_version").fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    @property
    def schema_version(self) -> int:
        """The schema version of the open database."""
        return self._version()

    # -- writes --------------------------------------------------------------------------
    def save_order(self, run_id: str, order: Order, status: str = "submitted") -> None:
        """Insert or replace ``order`` of ``run_id`` with ``status``."""
        with self.transaction():
            self._execute(_UPSERT_ORDER, _order_row(run_id, order, status))

    def set_order_status(self, run_id: str, order_id: int, status: str) -> None:
        """Set the status of a stored order.

        Raises
        ------
        ConfigError
            When the order is not stored.
        """
        with self.transaction():
            cur = self._execute(
                "UPDATE orders SET status = ? WHERE run_id = ? AND id = ?",
                (status, run_id, order_id),
            )
            if cur.rowcount == 0:
                raise ConfigError(f"run {run_id!r}: no stored order {order_id}")

    def save_fill(self, run_id: str, fill: Fill) -> int:
        """Append ``fill`` to ``run_id`` and return its sequence number (1, 2, ...)."""
        with self.transaction():
            row = self._execute(
                "SELECT coalesce(max(seq), 0) FROM fills WHERE run_id = ?", (run_id,)
            ).fetchone()
            seq = int(row[0]) + 1
            self._execute(
                _INSERT_FILL,
                (
                    run_id,
                    seq,
                    fill.order_id,
                    fill.symbol,
                    fill.side.value,
                    fill.quantity,
                    fill.price,
                    fill.fee,
                    fill.ts,
                    fill.reason,
                ),
            )
        return seq

    def save_trade(self, run_id: str, trade: Trade) -> None:
        """Insert or replace ``trade`` (an open trade is replaced when it closes)."""
        with self.transaction():
            self._execute(_UPSERT_TRADE, _trade_row(run_id, trade))

    def save_portfolio(
        self, run_id: str, portfolio: Portfolio, ts: int, trades: Iterable[Trade] | None = None
    ) -> None:
        """Snapshot ``portfolio`` at ``ts``: cash, marks, open positions and trades.

        The stored open positions are replaced by ``portfolio.positions``. ``trades`` are the
        trades to upsert (None: all of ``portfolio.trades``; pass only the changed ones on a
        hot path).
        """
        marks = json.dumps(dict(sorted(portfolio.marks.items())))
        with self.transaction():
            self._execute(
                _UPSERT_SNAPSHOT,
                (run_id, ts, portfolio.initial_balance, portfolio.balance, portfolio.equity, marks),
            )
            self._execute("DELETE FROM positions WHERE run_id = ?", (run_id,))
            self._executemany(
                _INSERT_POSITION, [_position_row(run_id, p) for p in portfolio.positions.values()]
            )
            rows = [_trade_row(run_id, t) for t in (portfolio.trades if trades is None else trades)]
            self._executemany(_UPSERT_TRADE, rows)

    def save_strategy_state(
        self, run_id: str, strategy: str, state: Mapping[str, Any], ts: int
    ) -> None:
        """Store ``state`` (from ``Strategy.get_state()``) of ``strategy`` in ``run_id``.

        Raises
        ------
        StrategyError
            When ``state`` is not JSON-serializable.
        """
        try:
            text = json.dumps(dict(state), sort_keys=True, allow_nan=True)
        except (TypeError, ValueError) as exc:
            raise StrategyError(
                f"get_state() is not JSON-serializable: {exc}", strategy=strategy
            ) from exc
        with self.transaction():
            self._execute(_UPSERT_STRATEGY, (run_id, strategy, text, ts))

    def save_checkpoint(self, run_id: str, symbol: str, last_bar_ts: int) -> None:
        """Record ``last_bar_ts`` (UTC ns) as the last bar of ``symbol`` processed in ``run_id``."""
        with self.transaction():
            self._execute(_UPSERT_CHECKPOINT, (run_id, symbol, last_bar_ts))

    def record_step(
        self,
        run_id: str,
        *,
        ts: int,
        portfolio: Portfolio | None = None,
        checkpoints: Mapping[str, int] | None = None,
        strategy_states: Mapping[str, Mapping[str, Any]] | None = None,
        orders: Iterable[StoredOrder] = (),
        fills: Iterable[Fill] = (),
        trades: Iterable[Trade] | None = None,
        bars: Iterable[StoredBar] = (),
        engine_state: Mapping[str, Any] | None = None,
    ) -> None:
        """Write everything one kernel step changed in a single transaction.

        Raises
        ------
        StrategyError
            When a strategy state is not JSON-serializable (nothing is written then).
        """
        with self.transaction():
            for stored in orders:
                self.save_order(run_id, stored.order, stored.status)
            for fill in fills:
                self.save_fill(run_id, fill)
            if portfolio is not None:
                self.save_portfolio(run_id, portfolio, ts, trades)
            elif trades is not None:
                for trade in trades:
                    self.save_trade(run_id, trade)
            for name, state in (strategy_states or {}).items():
                self.save_strategy_state(run_id, name, state, ts)
            for symbol, bar_ts in (checkpoints or {}).items():
                self.save_checkpoint(run_id, symbol, bar_ts)
            self.save_bars(run_id, bars)
            if engine_state is not None:
                self.save_engine_state(run_id, engine_state, ts)

    def save_run_meta(self, run_id: str, meta: Mapping[str, Any], created_ns: int) -> None:
        """Store what ``run_id`` is (mode, strategy, parameters, symbols, settings) as JSON."""
        with self.transaction():
            self._execute(_UPSERT_RUN, (run_id, created_ns, json.dumps(dict(meta))))

    def load_run_meta(self, run_id: str) -> dict[str, Any] | None:
        """Return the metadata saved by :meth:`save_run_meta`, or None."""
        row = self._execute("SELECT meta FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def run_created_ns(self, run_id: str) -> int | None:
        """Return when ``run_id`` was first started (UTC ns), or None without metadata."""
        row = self._execute("SELECT created_ns FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return None if row is None else int(row[0])

    def save_bars(self, run_id: str, bars: Iterable[StoredBar]) -> int:
        """Insert or replace bars of ``run_id``; returns how many were written."""
        rows = [(run_id, *b[:8], int(b[8])) for b in bars]
        if rows:
            with self.transaction():
                self._executemany(_UPSERT_BAR, rows)
        return len(rows)

    def load_bars(
        self, run_id: str, symbol: str, timeframe: str
    ) -> list[tuple[int, float, float, float, float, float, bool]]:
        """Return the stored bars of one series by time: (ts, o, h, l, c, v, live)."""
        rows = self._execute(
            "SELECT ts, open, high, low, close, volume, live FROM bars "
            "WHERE run_id = ? AND symbol = ? AND timeframe = ? ORDER BY ts",
            (run_id, symbol, timeframe),
        ).fetchall()
        return [
            (int(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[4]), float(r[5]), bool(r[6]))
            for r in rows
        ]

    def save_engine_state(self, run_id: str, state: Mapping[str, Any], ts: int) -> None:
        """Store the engine's own state of ``run_id`` (JSON)."""
        with self.transaction():
            self._execute(_UPSERT_ENGINE, (run_id, json.dumps(dict(state)), ts))

    def load_engine_state(self, run_id: str) -> dict[str, Any]:
        """Return the engine state saved by :meth:`save_engine_state` ({} when none)."""
        row = self._execute("SELECT state FROM engine_state WHERE run_id = ?", (run_id,)).fetchone()
        return {} if row is None else dict(json.loads(row[0]))

    def delete_run(self, run_id: str) -> None:
        """Remove every row of ``run_id``."""
        with self.transaction():
            for table in STATE_TABLES:
                self._execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))

    # -- reads ---------------------------------------------------------------------------
    def load_orders(self, run_id: str, statuses: Iterable[str] | None = None) -> list[StoredOrder]:
        """Return the orders of ``run_id`` by id, optionally only those in ``statuses``."""
        rows = self._execute(
            f"SELECT {_ORDER_COLS} FROM orders WHERE run_id = ? ORDER BY id", (run_id,)
        ).fetchall()
        wanted = None if statuses is None else set(statuses)
        out = [_order_from(r) for r in rows]
        return out if wanted is None else [o for o in out if o.status in wanted]

    def load_fills(self, run_id: str) -> list[Fill]:
        """Return the fills of ``run_id`` in the order they were saved."""
        rows = self._execute(
            f"SELECT {_FILL_COLS} FROM fills WHERE run_id = ? ORDER BY seq", (run_id,)
        ).fetchall()
        return [_fill_from(r) for r in rows]

    def load_positions(self, run_id: str) -> dict[str, Position]:
        """Return the open positions of ``run_id`` by symbol."""
        rows = self._execute(
            f"SELECT {_POSITION_COLS} FROM positions WHERE run_id = ? ORDER BY entry_ts, id",
            (run_id,),
        ).fetchall()
        return {p.symbol: p for p in map(_position_from, rows)}

    def load_trades(self, run_id: str) -> list[Trade]:
        """Return the trades of ``run_id`` by entry time."""
        rows = self._execute(
            f"SELECT {_TRADE_COLS} FROM trades WHERE run_id = ? ORDER BY entry_ts, id", (run_id,)
        ).fetchall()
        return [_trade_from(r) for r in rows]

    def load_equity_curve(self, run_id: str) -> tuple[list[int], list[float]]:
        """The run's stored equity snapshots (step times in UTC ns, equity), oldest first."""
        rows = self._execute(
            "SELECT ts, equity FROM portfolio_snapshots WHERE run_id = ? ORDER BY ts", (run_id,)
        ).fetchall()
        return [int(r[0]) for r in rows], [float(r[1]) for r in rows]

    def load_checkpoints(self, run_id: str) -> dict[str, int]:
        """Return symbol -> last processed bar time (UTC ns) of ``run_id``."""
        rows = self._execute(
            "SELECT symbol, last_bar_ts FROM checkpoints WHERE run_id = ?", (run_id,)
        ).fetchall()
        return {r[0]: int(r[1]) for r in rows}

    def load_strategy_states(self, run_id: str) -> dict[str, dict[str, Any]]:
        """Return strategy name -> stored state of ``run_id``."""
        rows = self._execute(
            "SELECT strategy, state FROM strategy_state WHERE run_id = ?", (run_id,)
        ).fetchall()
        return {r[0]: json.loads(r[1]) for r in rows}

    def run_ids(self) -> list[str]:
        """Return the runs with a snapshot or a checkpoint, sorted."""
        rows = self._execute(
            "SELECT run_id FROM portfolio_snapshots UNION SELECT run_id FROM checkpoints "
            "UNION SELECT run_id FROM runs"
        ).fetchall()
        return sorted(r[0] for r in rows)

    def load_run(self, run_id: str) -> RunState | None:
        """Restore what a restart of ``run_id`` needs, read in one transaction.

        Returns None when nothing of the run is stored.
        """
        with self.transaction():
            snap = self._execute(
                "SELECT ts, initial_balance, balance, marks FROM portfolio_snapshots "
                "WHERE run_id = ? ORDER BY ts DESC LIMIT 1",
                (run_id,),
            ).fetchone()
            checkpoints = self.load_checkpoints(run_id)
            states = self.load_strategy_states(run_id)
            orders = self.load_orders(run_id, OPEN_ORDER_STATUSES)
            engine_state = self.load_engine_state(run_id)
            portfolio = None
            if snap is not None:
                portfolio = Portfolio(float(snap[1]))
                portfolio.balance = float(snap[2])
                portfolio.marks = {k: float(v) for k, v in json.loads(snap[3]).items()}
                portfolio.positions = self.load_positions(run_id)
                portfolio.trades = self.load_trades(run_id)
        if snap is None and not checkpoints and not states and not orders:
            return None
        return RunState(
            run_id=run_id,
            portfolio=portfolio,
            snapshot_ts=None if snap is None else int(snap[0]),
            checkpoints=checkpoints,
            strategy_states=states,
            open_orders=orders,
            engine_state=engine_state,
        )

    # -- lifetime ------------------------------------------------------------------------
    def close(self) -> None:
        """Close the connection (idempotent)."""
        if not self._closed:
            self._closed = True
            self._close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SqliteStateStore(StateStore):
    """State store in a SQLite file (WAL journal, ``synchronous=FULL``).

    Parameters
    ----------
    path
        Database file (created with its folder when missing) or ``":memory:"``.
    timeout_s
        How long to wait for another writer's lock.
    """

    backend = "sqlite"

    def __init__(self, path: str | Path, *, timeout_s: float = 30.0) -> None:
        super().__init__()
        self.path = str(path) if str(path) == ":memory:" else str(Path(path).expanduser())
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._con = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None)
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute("PRAGMA synchronous=FULL")
        self._migrate()

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._con.execute(sql, tuple(params))

    def _executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._con.executemany(sql, [tuple(r) for r in rows])

    def _begin(self) -> None:
        # IMMEDIATE takes the write lock up front: no upgrade deadlock between two writers
        self._con.execute("BEGIN IMMEDIATE")

    def _close(self) -> None:
        self._con.close()


class PostgresStateStore(StateStore):
    """State store on a PostgreSQL server.

    Parameters
    ----------
    url
        ``postgresql://user@host:port/database`` (any libpq connection URL).
    schema
        Schema to keep the tables in (created when missing); None uses the server's
        ``search_path``.
    connect_timeout_s
        Seconds to wait for the server.

    Raises
    ------
    ConfigError
        When ``schema`` is not a plain identifier.
    TemporaryError
        When the server cannot be reached.
    """

    backend = "postgresql"

    def __init__(
        self, url: str, *, schema: str | None = None, connect_timeout_s: float = 5.0
    ) -> None:
        super().__init__()
        with needs_extra("live", "a PostgreSQL state store"):
            import psycopg  # lazy: only the PostgreSQL backend needs the driver

        if schema is not None and not _SCHEMA_NAME.match(schema):
            raise ConfigError(f"invalid schema name {schema!r}: use letters, digits and _")
        from tradeloop.config.redact import register_credentials

        register_credentials(url)  # a driver's error may quote the password alone
        self.url = url
        self.schema = schema
        if url.partition("://")[2].split("/", 1)[0].count("@") > 1:
            # the driver would read the password's tail as the host, and say so
            raise ConfigError(
                "the PostgreSQL URL's password holds a raw '@': percent-encode it as %40"
            )
        try:
            self._con = psycopg.connect(
                url, autocommit=True, connect_timeout=max(1, int(connect_timeout_s))
            )
        except psycopg.ProgrammingError as exc:  # the URL itself cannot be read
            from tradeloop.config.redact import redact

            raise ConfigError(f"invalid PostgreSQL URL {redact(url)}: {redact(str(exc))}") from None
        except psycopg.OperationalError as exc:
            raise TemporaryError(f"PostgreSQL not reachable: {exc}") from exc
        if schema is not None:
            self._con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            self._con.execute(f'SET search_path TO "{schema}"')
        self._migrate()

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._con.execute(sql.replace("?", "%s"), tuple(params))

    def _executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        batch = [tuple(r) for r in rows]
        if batch:
            with self._con.cursor() as cur:
                cur.executemany(sql.replace("?", "%s"), batch)

    def _begin(self) -> None:
        self._con.execute("BEGIN")

    def _lock_schema(self) -> None:
        # one migrating connection per database at a time; released at commit
        self._con.execute("SELECT pg_advisory_xact_lock(74161)")

    def _close(self) -> None:
        self._con.close()


def open_state_store(target: str | Path, *, schema: str | None = None) -> StateStore:
    """Open the state store at ``target`` and bring its schema up to date.

    Parameters
    ----------
    target
        A ``postgresql://`` (or ``postgres://``) URL for PostgreSQL, a ``sqlite:///path`` URL,
        or a file path (or ``":memory:"``) for SQLite.
    schema
        PostgreSQL schema to use (ignored for SQLite).

    Raises
    ------
    ConfigError
        When ``target`` names another scheme or its schema is newer than this release.
    TemporaryError
        When the PostgreSQL server cannot be reached.
    """
    text = str(target)
    if text.startswith(("postgresql://", "postgres://")):
        return PostgresStateStore(text, schema=schema)
    if text.startswith("sqlite:///"):
        return SqliteStateStore(text.removeprefix("sqlite:///"))
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text):
        raise ConfigError(
            f"state store target {text!r}: use a file path, sqlite:///path or postgresql://..."
        )
    return SqliteStateStore(text)
