"""Stores. ``AnalyticsStore`` (DuckDB) holds signal feedback and weight versions."""

from tradeloop.store.analytics import FEEDBACK_COLUMNS, AnalyticsStore, WeightVersion
from tradeloop.store.migrations import SCHEMA_VERSION, current_version, migrate

__all__ = [
    "FEEDBACK_COLUMNS",
    "SCHEMA_VERSION",
    "AnalyticsStore",
    "WeightVersion",
    "current_version",
    "migrate",
]
