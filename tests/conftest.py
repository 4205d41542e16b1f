"""Shared fixtures: real market data, the bundled sample, and the real servers.

A missing data folder or server fails the tests that need it when ``CI`` is set and skips them
elsewhere (see :mod:`tradeloop.testing.environment`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tradeloop.testing import environment

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_1H = REPO_ROOT / "samples" / "BTC_USDT-1h.csv.gz"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The team's real-data folder (``../shared/data`` or ``$TRADELOOP_SHARED_DATA``)."""
    return environment.shared_data_dir()


@pytest.fixture(scope="session")
def sample_1h() -> Path:
    """The bundled BTC/USDT 1h sample (part of the repository: never missing)."""
    return SAMPLE_1H


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The real Redis server's URL."""
    return environment.redis_url()


@pytest.fixture(scope="session")
def pg_url() -> str:
    """The real PostgreSQL server's URL."""
    return environment.postgres_url()


@pytest.fixture(scope="session", autouse=True)
def _analytics_in_a_temp_folder(tmp_path_factory: pytest.TempPathFactory) -> object:
    """Commands that write the default analytics store (``tradeloop paper`` journals every
    signal there) write into the test session's temp folder, never the user's home; a test
    that sets its own path (env or option) still wins. Subprocesses inherit the variable."""
    import os

    name = "TRADELOOP_ANALYTICS_PATH"
    before = os.environ.get(name)
    if before is None:
        os.environ[name] = str(tmp_path_factory.mktemp("analytics") / "analytics.duckdb")
    yield None
    if before is None:
        os.environ.pop(name, None)
