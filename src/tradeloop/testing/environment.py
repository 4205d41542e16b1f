"""What the test suites need from the machine: real data, Redis, PostgreSQL, a browser.

Every check goes through :func:`unavailable`, so a missing server or data folder fails a test
when ``CI`` is set and skips it elsewhere — never a silent skip in CI.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

__all__ = ["postgres_url", "redis_url", "shared_data_dir", "unavailable"]

_REPO_ROOT = Path(__file__).resolve().parents[3]


def unavailable(message: str) -> NoReturn:
    """Fail the current test under ``CI``; skip it elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def shared_data_dir() -> Path:
    """The team's real-data folder: ``$TRADELOOP_SHARED_DATA`` or the repo's sibling
    ``shared/data``."""
    override = os.environ.get("TRADELOOP_SHARED_DATA")
    folder = Path(override) if override else _REPO_ROOT.parent / "shared" / "data"
    if not folder.is_dir():
        unavailable(f"real market data folder not found: {folder} (set TRADELOOP_SHARED_DATA)")
    return folder


def redis_url() -> str:
    """URL of the real Redis server (``$TRADELOOP_TEST_REDIS_URL``), checked with a ping."""
    import redis

    url = os.environ.get("TRADELOOP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.exceptions.ConnectionError as exc:
        unavailable(f"redis-server not reachable at {url}: {exc}")
    return url


def postgres_url() -> str:
    """URL of the real PostgreSQL server (``$TRADELOOP_TEST_POSTGRES_URL``), checked."""
    import psycopg

    url = os.environ.get("TRADELOOP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    try:
        psycopg.connect(url, connect_timeout=2).close()
    except psycopg.OperationalError as exc:
        unavailable(f"PostgreSQL not reachable at {url}: {exc}")
    return url
