"""DuckDB schema migrations for the analytics store.

``MIGRATIONS[i]`` upgrades a database from version ``i`` to ``i + 1``. The applied version is
kept in ``schema_version``; :func:`migrate` applies the missing steps in one transaction each,
so a file written by an older release is upgraded in place and keeps its rows.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "current_version", "migrate"]

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # v1: feedback and weight versions
    (
        """CREATE TABLE signal_feedback (
            signal_id VARCHAR NOT NULL,
            source VARCHAR NOT NULL,
            symbol VARCHAR NOT NULL,
            side VARCHAR NOT NULL,
            entry_price DOUBLE NOT NULL,
            exit_price DOUBLE NOT NULL,
            entry_ts BIGINT NOT NULL,
            exit_ts BIGINT NOT NULL,
            pnl DOUBLE NOT NULL,
            pnl_pct DOUBLE NOT NULL,
            PRIMARY KEY (signal_id, source)
        )""",
        """CREATE TABLE adaptive_weights (
            version INTEGER NOT NULL,
            component VARCHAR NOT NULL,
            weight DOUBLE NOT NULL,
            ts BIGINT NOT NULL,
            reason VARCHAR NOT NULL,
            PRIMARY KEY (version, component)
        )""",
    ),
    # v2: per-component attribution and ingest time
    (
        "ALTER TABLE signal_feedback ADD COLUMN component VARCHAR DEFAULT 'liquidation_zone'",
        "ALTER TABLE signal_feedback ADD COLUMN ingested_ts BIGINT DEFAULT 0",
        "CREATE INDEX signal_feedback_exit_ts ON signal_feedback (exit_ts)",
    ),
    # v3: the signal journal of the learning loop (every signal, executed or rejected)
    (
        """CREATE TABLE signal_journal (
            source VARCHAR NOT NULL,
            signal_key VARCHAR NOT NULL,
            signal_id VARCHAR,
            mode VARCHAR NOT NULL,
            strategy VARCHAR NOT NULL,
            ts BIGINT NOT NULL,
            symbol VARCHAR NOT NULL,
            action VARCHAR NOT NULL,
            tag VARCHAR NOT NULL,
            size DOUBLE NOT NULL,
            confidence DOUBLE,
            executed BOOLEAN NOT NULL,
            reason VARCHAR,
            detail VARCHAR,
            pnl DOUBLE,
            pnl_pct DOUBLE,
            exit_ts BIGINT,
            PRIMARY KEY (source, signal_key)
        )""",
        "CREATE INDEX signal_journal_ts ON signal_journal (ts)",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


def current_version(con: Any) -> int:
    """Return the schema version of the open DuckDB connection ``con`` (0 when empty)."""
    con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    rows = con.execute("SELECT max(version) FROM schema_version").fetchall()
    return int(rows[0][0]) if rows[0][0] is not None else 0


def migrate(con: Any, target: int = SCHEMA_VERSION) -> int:
    """Upgrade ``con`` to ``target`` and return the version it was at before.

    Raises
    ------
    ValueError
        If ``target`` is not a known version.
    """
    if not 0 <= target <= SCHEMA_VERSION:
        raise ValueError(f"unknown schema version {target} (latest is {SCHEMA_VERSION})")
    before = current_version(con)
    for version in range(before, target):
        con.execute("BEGIN TRANSACTION")
        try:
            for statement in MIGRATIONS[version]:
                con.execute(statement)
            con.execute("INSERT INTO schema_version VALUES (?)", [version + 1])
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
    return before
