"""Fixtures shared by the integration tests: the recorded venues and their REST server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tradeloop.core.bar import BarArrays
from tradeloop.data.loader import load_ohlcv
from tradeloop.ml.regimes import HMMDetector
from tradeloop.testing.venue import LocalVenueServer, VenueData
from tradeloop.testing.venue.data import recorded_venues

REGIME_START_MS = 1_747_699_200_000 + 1_000 * 60_000
"""Where the regime tests' replay starts (inside the 1m recording)."""


@pytest.fixture(scope="module")
def venue(shared_data: Path) -> VenueData:
    """The recorded exchange data (no derived open interest)."""
    return recorded_venues(shared_data, open_interest=False)


@pytest.fixture
def rest(venue: VenueData) -> Iterator[LocalVenueServer]:
    """The local REST venue serving the recording (warm-up candles, backfill, markets)."""
    with LocalVenueServer(venue) as server:
        yield server


@pytest.fixture(scope="session")
def regime_train(shared_data: Path) -> BarArrays:
    """4,000 real BTC/USDT 1m bars, 2,000 minutes after the regime tests' replay starts."""
    bars = load_ohlcv(shared_data / "crypto_1m/binance_spot_2025/BTC_USDT-1m.feather").bars
    first = int(np.searchsorted(bars.ts, (REGIME_START_MS + 2_000 * 60_000) * 1_000_000))
    return bars.slice(first, first + 4_000)


@pytest.fixture(scope="session")
def regime_hmm3(regime_train: BarArrays) -> HMMDetector:
    """A 3-state HMM (seed 0) fitted once on :func:`regime_train` for every module that saves it
    (fitting is the costly part; each module saves it into a registry of its own)."""
    return HMMDetector(3, seed=0, n_init=1).fit(regime_train)
