"""Fixtures shared by the integration tests: the recorded venues and their REST server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tradeloop.testing.venue import LocalVenueServer, VenueData
from tradeloop.testing.venue.data import recorded_venues


@pytest.fixture(scope="module")
def venue(shared_data: Path) -> VenueData:
    """The recorded exchange data (no derived open interest)."""
    return recorded_venues(shared_data, open_interest=False)


@pytest.fixture
def rest(venue: VenueData) -> Iterator[LocalVenueServer]:
    """The local REST venue serving the recording (warm-up candles, backfill, markets)."""
    with LocalVenueServer(venue) as server:
        yield server
