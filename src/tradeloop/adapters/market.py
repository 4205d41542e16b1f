"""Live market data of venues that are not ccxt exchanges, chosen by name.

A paper or live session gets its instruments, warm-up/backfill bars and live bar feed from
ccxt for crypto exchanges; a venue listed here provides the same three things itself (plus its
market hours). Today: ``alpaca`` (US equities, minute bars).
"""

from __future__ import annotations

import queue
from collections.abc import Sequence
from typing import Any, Protocol

from tradeloop.core.instrument import Instrument

__all__ = ["VENUE_FEEDS", "BarFeed", "VenueMarketData", "venue_market_data"]

VENUE_FEEDS = ("alpaca",)
"""Venue names whose market data does not come through ccxt."""


class BarFeed(Protocol):
    """A running live feed putting ``KlineUpdate`` / ``FeedStatus`` events on a queue."""

    name: str

    @property
    def running(self) -> bool:
        """True while the feed's thread is alive."""
        ...

    def start(self) -> Any:
        """Start the feed's thread."""
        ...

    def stop(self, timeout: float = 3.0) -> bool:
        """Stop it within about ``timeout`` seconds; True when it ended."""
        ...


class VenueMarketData(Protocol):
    """What a session needs from a venue's market data."""

    exchange: str

    def instruments(self, symbols: Sequence[str]) -> dict[str, Instrument]:
        """The trading rules of ``symbols``."""
        ...

    def closed_bars(
        self, symbol: str, timeframe: str, start_ns: int, end_ns: int
    ) -> list[tuple[int, float, float, float, float, float]]:
        """Closed bars opened in ``[start_ns, end_ns)``, oldest first."""
        ...

    def feed(
        self, symbols: Sequence[str], timeframe: str, events: queue.Queue[Any], **options: Any
    ) -> BarFeed:
        """The live bar feed (not started)."""
        ...

    def schedule(self) -> Any:
        """The venue's market hours (a scheduler ``MarketSchedule``)."""
        ...


def venue_market_data(exchange: str, settings: Any = None) -> VenueMarketData | None:
    """The market data of ``exchange`` when it is not a ccxt exchange, else None.

    Raises
    ------
    ConfigError
        When the venue's optional extra is missing or its keys are not configured.
    """
    if exchange.lower() != "alpaca":
        return None
    from tradeloop.adapters.alpaca.config import AlpacaConfig, require_alpaca

    require_alpaca()
    from tradeloop.adapters.alpaca.market import AlpacaMarketData

    return AlpacaMarketData(AlpacaConfig.from_settings(settings))
