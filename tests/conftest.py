"""Shared fixtures: where the real market data lives, and the bundled sample."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_1H = REPO_ROOT / "samples" / "BTC_USDT-1h.csv.gz"


def _shared_data_dir() -> Path:
    override = os.environ.get("TRADELOOP_SHARED_DATA")
    return Path(override) if override else REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The team's real-data folder (``../shared/data`` or ``$TRADELOOP_SHARED_DATA``).

    Missing data fails the test under CI and skips it elsewhere.
    """
    folder = _shared_data_dir()
    if not folder.is_dir():
        message = f"real market data folder not found: {folder} (set TRADELOOP_SHARED_DATA)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return folder


@pytest.fixture(scope="session")
def sample_1h() -> Path:
    """The bundled BTC/USDT 1h sample."""
    return SAMPLE_1H
