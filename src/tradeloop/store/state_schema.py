"""Schema and forward migrations of the state store (SQLite and PostgreSQL).

``MIGRATIONS[i]`` upgrades a database from version ``i`` to ``i + 1``. The statements use the
SQL both backends accept (``BIGINT``, ``DOUBLE PRECISION``, ``TEXT``, composite primary keys),
so one list serves both. A database written by an older release is upgraded in place on open
and keeps its rows; versions are only ever added, never edited.

Prices and quantities are float64 columns; times are UTC int64 nanoseconds; booleans are
``INTEGER`` 0/1; JSON (strategy state, marks) is ``TEXT``.
"""

from __future__ import annotations

__all__ = ["MIGRATIONS", "STATE_SCHEMA_VERSION", "STATE_TABLES"]

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # v1: orders, open positions, trades, portfolio snapshots, strategy state, checkpoints
    (
        """CREATE TABLE orders (
            run_id TEXT NOT NULL,
            id BIGINT NOT NULL,
            symbol TEXT NOT NULL,
            side TEXT NOT NULL,
            type TEXT NOT NULL,
            quantity DOUBLE PRECISION NOT NULL,
            ts_created BIGINT NOT NULL,
            limit_price DOUBLE PRECISION,
            stop_price DOUBLE PRECISION,
            time_in_force TEXT NOT NULL,
            equity_fraction DOUBLE PRECISION,
            reduce_only INTEGER NOT NULL,
            tag TEXT NOT NULL,
            exit_stop_loss DOUBLE PRECISION,
            exit_take_profit DOUBLE PRECISION,
            exit_trailing_stop DOUBLE PRECISION,
            exit_trailing_activation DOUBLE PRECISION,
            has_exits INTEGER NOT NULL,
            position_id TEXT,
            PRIMARY KEY (run_id, id)
        )""",
        """CREATE TABLE positions (
            run_id TEXT NOT NULL,
            id TEXT NOT NULL,
            symbol TEXT NOT NULL,
            direction INTEGER NOT NULL,
            quantity DOUBLE PRECISION NOT NULL,
            entry_price DOUBLE PRECISION NOT NULL,
            entry_ts BIGINT NOT NULL,
            entry_fee DOUBLE PRECISION NOT NULL,
            stop_loss DOUBLE PRECISION,
            take_profit DOUBLE PRECISION,
            trail_fraction DOUBLE PRECISION,
            trail_anchor DOUBLE PRECISION,
            tag TEXT NOT NULL,
            trail_activation DOUBLE PRECISION,
            PRIMARY KEY (run_id, id)
        )""",
        """CREATE TABLE trades (
            run_id TEXT NOT NULL,
            id TEXT NOT NULL,
            symbol TEXT NOT NULL,
            direction INTEGER NOT NULL,
            quantity DOUBLE PRECISION NOT NULL,
            entry_ts BIGINT NOT NULL,
            entry_price DOUBLE PRECISION NOT NULL,
            exit_ts BIGINT,
            exit_price DOUBLE PRECISION,
            entry_fee DOUBLE PRECISION NOT NULL,
            exit_fee DOUBLE PRECISION NOT NULL,
            pnl DOUBLE PRECISION NOT NULL,
            exit_reason TEXT,
            tag TEXT NOT NULL,
            stop_loss DOUBLE PRECISION,
            take_profit DOUBLE PRECISION,
            PRIMARY KEY (run_id, id)
        )""",
        """CREATE TABLE portfolio_snapshots (
            run_id TEXT NOT NULL,
            ts BIGINT NOT NULL,
            initial_balance DOUBLE PRECISION NOT NULL,
            balance DOUBLE PRECISION NOT NULL,
            equity DOUBLE PRECISION NOT NULL,
            marks TEXT NOT NULL,
            PRIMARY KEY (run_id, ts)
        )""",
        """CREATE TABLE strategy_state (
            run_id TEXT NOT NULL,
            strategy TEXT NOT NULL,
            state TEXT NOT NULL,
            ts BIGINT NOT NULL,
            PRIMARY KEY (run_id, strategy)
        )""",
        """CREATE TABLE checkpoints (
            run_id TEXT NOT NULL,
            symbol TEXT NOT NULL,
            last_bar_ts BIGINT NOT NULL,
            PRIMARY KEY (run_id, symbol)
        )""",
    ),
    # v2: order status, fills, and an index for "trades closed since"
    (
        "ALTER TABLE orders ADD COLUMN status TEXT NOT NULL DEFAULT 'submitted'",
        """CREATE TABLE fills (
            run_id TEXT NOT NULL,
            seq BIGINT NOT NULL,
            order_id BIGINT NOT NULL,
            symbol TEXT NOT NULL,
            side TEXT NOT NULL,
            quantity DOUBLE PRECISION NOT NULL,
            price DOUBLE PRECISION NOT NULL,
            fee DOUBLE PRECISION NOT NULL,
            ts BIGINT NOT NULL,
            reason TEXT NOT NULL,
            PRIMARY KEY (run_id, seq)
        )""",
        "CREATE INDEX trades_run_exit_ts ON trades (run_id, exit_ts)",
    ),
    # v3: run metadata, the bars a run saw (for restarts and the parity report), engine state
    (
        """CREATE TABLE runs (
            run_id TEXT NOT NULL PRIMARY KEY,
            created_ns BIGINT NOT NULL,
            meta TEXT NOT NULL
        )""",
        """CREATE TABLE bars (
            run_id TEXT NOT NULL,
            symbol TEXT NOT NULL,
            timeframe TEXT NOT NULL,
            ts BIGINT NOT NULL,
            open DOUBLE PRECISION NOT NULL,
            high DOUBLE PRECISION NOT NULL,
            low DOUBLE PRECISION NOT NULL,
            close DOUBLE PRECISION NOT NULL,
            volume DOUBLE PRECISION NOT NULL,
            live INTEGER NOT NULL,
            PRIMARY KEY (run_id, symbol, timeframe, ts)
        )""",
        """CREATE TABLE engine_state (
            run_id TEXT NOT NULL PRIMARY KEY,
            state TEXT NOT NULL,
            ts BIGINT NOT NULL
        )""",
    ),
)
STATE_SCHEMA_VERSION = len(MIGRATIONS)

STATE_TABLES: tuple[str, ...] = (
    "orders",
    "fills",
    "positions",
    "trades",
    "portfolio_snapshots",
    "strategy_state",
    "checkpoints",
    "runs",
    "bars",
    "engine_state",
)
