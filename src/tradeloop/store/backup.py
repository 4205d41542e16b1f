"""Consistent backups of the state store and the analytics store, and their restore.

``tradeloop state backup`` / ``restore`` call these. A backup is a folder:

- ``state.db``: a SQLite state store copied with SQLite's online backup API (a consistent
  snapshot even while a running engine writes), or ``state.pgdump``: a PostgreSQL state store
  dumped by ``pg_dump --format=custom`` (needs the PostgreSQL client tools);
- ``analytics/``: the DuckDB analytics file exported with ``EXPORT DATABASE`` (Parquet) through
  a read-only connection, which DuckDB gives a consistent view of the file;
- ``manifest.json``: when, what, the row count of every table, and each file's SHA-256.

A restore writes each store to a temporary file next to the target, checks its row counts
against the manifest, and only then replaces the target (``os.replace``); a target that
exists is refused unless ``force``. A PostgreSQL restore runs ``pg_restore --clean`` and is
checked the same way. Passwords in a PostgreSQL URL are handed to the client tools through
``PGPASSWORD``, never on their command line, and never written to the manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from tradeloop.config.redact import redact
from tradeloop.core.errors import ConfigError, DataError
from tradeloop.core.extras import needs_extra

__all__ = ["BackupResult", "backup_stores", "restore_stores"]

MANIFEST = "manifest.json"
_STATE_FILE = "state.db"
_STATE_DUMP = "state.pgdump"
_ANALYTICS_DIR = "analytics"


@dataclass(frozen=True, slots=True)
class BackupResult:
    """What a backup or restore did: the folder, and the rows per store and table."""

    folder: Path
    state_kind: str
    state_rows: dict[str, int]
    analytics_rows: dict[str, int]


def _is_pg(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def _pg_args(url: str) -> tuple[str, dict[str, str]]:
    """The URL without its password, and the environment carrying it (``PGPASSWORD``,
    percent-decoded as the driver reads it): from the user info, or from a ``password=``
    query parameter, which leaves the query too (a command line is visible to every user)."""
    parts = urlsplit(url)
    env = dict(os.environ)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    user, colon, password = userinfo.partition(":")
    query = parse_qsl(parts.query, keep_blank_values=True)
    kept = [(k, v) for k, v in query if k != "password"]
    from_query = [v for k, v in query if k == "password"]
    if colon or from_query:
        env["PGPASSWORD"] = unquote(password) if colon else from_query[-1]
        netloc = f"{user}@{hostport}" if at else hostport
        url = urlunsplit(parts._replace(netloc=netloc, query=urlencode(kept)))
    return url, env


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ConfigError(
            f"{name} is needed to back up or restore a PostgreSQL state store "
            "(install the PostgreSQL client tools)"
        )
    return path


def _sqlite_rows(path: Path) -> dict[str, int]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [
            r[0]
            for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        return {t: int(con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]) for t in tables}
    finally:
        con.close()


def _pg_rows(url: str) -> dict[str, int]:
    with needs_extra("live", "backing up a PostgreSQL state store"):
        import psycopg

    with psycopg.connect(url, connect_timeout=5) as con:
        tables = [
            (r[0], r[1])
            for r in con.execute(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_type = 'BASE TABLE' AND table_schema NOT IN "
                "('pg_catalog', 'information_schema') ORDER BY 1, 2"
            ).fetchall()
        ]
        out: dict[str, int] = {}
        for schema, table in tables:
            row = con.execute(f'SELECT count(*) FROM "{schema}"."{table}"').fetchone()
            out[f"{schema}.{table}"] = int(row[0]) if row else 0
        return out


def _duck_rows(con: Any) -> dict[str, int]:
    tables = [
        r[0]
        for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
            "AND table_type = 'BASE TABLE' ORDER BY 1"
        ).fetchall()
    ]
    return {t: int(con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]) for t in tables}


def _duck_connect(path: Path, *, read_only: bool, timeout_s: float = 30.0) -> Any:
    """Open a DuckDB file, waiting while another process holds its lock."""
    import duckdb

    deadline = time.monotonic() + timeout_s
    delay = 0.05
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException:
            if time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def backup_stores(state_url: str, analytics_path: str | Path, dest: str | Path) -> BackupResult:
    """Copy the state store and the analytics store into the new folder ``dest``.

    Raises
    ------
    ConfigError
        When ``dest`` exists and is not empty, or a PostgreSQL store is to be dumped without
        ``pg_dump``.
    DataError
        When a store is missing or cannot be read.
    """
    folder = Path(dest)
    if folder.exists() and any(folder.iterdir()):
        raise ConfigError(f"backup folder {folder} exists and is not empty; choose a new one")
    folder.mkdir(parents=True, exist_ok=True)
    # state store
    if _is_pg(state_url):
        url, env = _pg_args(state_url)
        out = subprocess.run(
            [_tool("pg_dump"), "--format=custom", "--no-owner", "--file",
             str(folder / _STATE_DUMP), "--dbname", url],
            env=env, capture_output=True, text=True,
        )  # fmt: skip
        if out.returncode != 0:
            shutil.rmtree(folder, ignore_errors=True)  # no half backup to trip the next try
            raise DataError(f"pg_dump failed: {redact(out.stderr.strip()[:500])}")
        state_kind, state_rows = "postgresql", _pg_rows(state_url)
    else:
        source = Path(state_url).expanduser()
        if not source.is_file():
            raise DataError(f"state store {source} does not exist")
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30.0)
        dst = sqlite3.connect(folder / _STATE_FILE)
        try:
            src.backup(dst)  # one consistent snapshot, even while a writer is busy
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal
        finally:
            dst.close()
            src.close()
        state_kind, state_rows = "sqlite", _sqlite_rows(folder / _STATE_FILE)
    # analytics store
    analytics = Path(analytics_path).expanduser()
    analytics_rows: dict[str, int] = {}
    if analytics.is_file():
        con = _duck_connect(analytics, read_only=True)
        try:
            analytics_rows = _duck_rows(con)
            target = (folder / _ANALYTICS_DIR).as_posix().replace("'", "''")
            con.execute(f"EXPORT DATABASE '{target}' (FORMAT PARQUET)")
        finally:
            con.close()
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    manifest = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "state": {"kind": state_kind, "rows": state_rows},
        "analytics": {"rows": analytics_rows, "present": analytics.is_file()},
        "files": {p.relative_to(folder).as_posix(): _sha256(p) for p in files},
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return BackupResult(folder, state_kind, state_rows, analytics_rows)


def _read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    if not path.is_file():
        raise DataError(f"{folder} is not a backup: {MANIFEST} is missing")
    manifest: dict[str, Any] = json.loads(path.read_text())
    for name, digest in manifest["files"].items():
        file = folder / name
        if not file.is_file() or _sha256(file) != digest:
            raise DataError(f"backup {folder}: {name} is missing or changed since the backup")
    return manifest


def restore_stores(
    src: str | Path, state_url: str, analytics_path: str | Path, *, force: bool = False
) -> BackupResult:
    """Restore the backup in ``src`` into the state store and the analytics store.

    Stop the engine first. Each store is rebuilt beside its target, checked against the
    manifest's row counts, then swapped in; a failed check leaves the target untouched.

    Raises
    ------
    ConfigError
        When a target exists and ``force`` is False, or the backup's state store kind does not
        match ``state_url``.
    DataError
        When the backup is incomplete or changed, or a restored store does not hold the rows
        the manifest lists.
    """
    folder = Path(src)
    manifest = _read_manifest(folder)
    kind = manifest["state"]["kind"]
    if (kind == "postgresql") != _is_pg(state_url):
        raise ConfigError(
            f"the backup holds a {kind} state store; the target is "
            f"{'postgresql' if _is_pg(state_url) else 'sqlite'}"
        )
    analytics = Path(analytics_path).expanduser()
    if not force:
        taken = [str(p) for p in (analytics,) if p.exists()]
        if not _is_pg(state_url) and Path(state_url).expanduser().exists():
            taken.insert(0, str(Path(state_url).expanduser()))
        if taken:
            raise ConfigError(
                f"{', '.join(taken)} exist{'s' if len(taken) == 1 else ''}; "
                "pass --force to replace (stop the engine first)"
            )
    # state store
    if kind == "postgresql":
        url, env = _pg_args(state_url)
        out = subprocess.run(
            [_tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--dbname", url,
             str(folder / _STATE_DUMP)],
            env=env, capture_output=True, text=True,
        )  # fmt: skip
        if out.returncode != 0:
            raise DataError(f"pg_restore failed: {redact(out.stderr.strip()[:500])}")
        rows = _pg_rows(state_url)
        _check(manifest["state"]["rows"], rows, "state store")
    else:
        target = Path(state_url).expanduser()
        target.parent.mkdir(parents=True, exist_ok=True)
        staged = target.with_name(f".{target.name}.restore")
        staged.unlink(missing_ok=True)
        s = sqlite3.connect(f"file:{folder / _STATE_FILE}?mode=ro", uri=True)
        d = sqlite3.connect(staged)
        try:
            s.backup(d)
        finally:
            d.close()
            s.close()
        rows = _sqlite_rows(staged)
        _check(manifest["state"]["rows"], rows, "state store")
        for suffix in ("-wal", "-shm"):
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        os.replace(staged, target)
    # analytics store
    analytics_rows: dict[str, int] = {}
    if manifest["analytics"]["present"]:
        analytics.parent.mkdir(parents=True, exist_ok=True)
        staged = analytics.with_name(f".{analytics.name}.restore")
        staged.unlink(missing_ok=True)
        con = _duck_connect(staged, read_only=False)
        try:
            source = (folder / _ANALYTICS_DIR).as_posix().replace("'", "''")
            con.execute(f"IMPORT DATABASE '{source}'")
            analytics_rows = _duck_rows(con)
            con.execute("CHECKPOINT")
        finally:
            con.close()
        _check(manifest["analytics"]["rows"], analytics_rows, "analytics store")
        Path(f"{analytics}.wal").unlink(missing_ok=True)
        os.replace(staged, analytics)
    return BackupResult(folder, kind, rows, analytics_rows)


def _check(expected: dict[str, int], got: dict[str, int], what: str) -> None:
    missing = {t: n for t, n in expected.items() if got.get(t) != n}
    if missing:
        detail = ", ".join(f"{t}: {got.get(t)} of {n}" for t, n in sorted(missing.items()))
        raise DataError(f"restored {what} does not match the backup ({detail})")
