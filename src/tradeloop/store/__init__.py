"""Stores. ``AnalyticsStore`` (DuckDB) holds signal feedback and weight versions;
``StateStore`` (SQLite or PostgreSQL) holds the durable state of paper and live runs."""

from tradeloop.store.analytics import FEEDBACK_COLUMNS, AnalyticsStore, WeightVersion
from tradeloop.store.migrations import SCHEMA_VERSION, current_version, migrate
from tradeloop.store.state import (
    OPEN_ORDER_STATUSES,
    PostgresStateStore,
    RunState,
    SqliteStateStore,
    StateStore,
    StoredBar,
    StoredOrder,
    open_state_store,
)
from tradeloop.store.state_schema import STATE_SCHEMA_VERSION

__all__ = [
    "FEEDBACK_COLUMNS",
    "OPEN_ORDER_STATUSES",
    "SCHEMA_VERSION",
    "STATE_SCHEMA_VERSION",
    "AnalyticsStore",
    "PostgresStateStore",
    "RunState",
    "SqliteStateStore",
    "StateStore",
    "StoredBar",
    "StoredOrder",
    "WeightVersion",
    "current_version",
    "migrate",
    "open_state_store",
]
