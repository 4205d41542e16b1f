"""Local venue server: exchange REST APIs on loopback, serving recorded real data."""

from tradeloop.testing.venue.data import (
    Candles,
    FundingHistory,
    MarketSpec,
    OpenInterestHistory,
    Trades,
    VenueData,
    derived_open_interest,
    recorded_venues,
)
from tradeloop.testing.venue.server import Fault, LocalVenueServer, RequestRecord, Response

__all__ = [
    "Candles",
    "Fault",
    "FundingHistory",
    "LocalVenueServer",
    "MarketSpec",
    "OpenInterestHistory",
    "RequestRecord",
    "Response",
    "Trades",
    "VenueData",
    "derived_open_interest",
    "recorded_venues",
]
