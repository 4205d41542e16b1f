"""Local market-stream servers speaking each venue's public WebSocket wire format (and the
REST calls its client makes alongside), replaying recorded real data, for the UNMODIFIED
ccxt.pro clients.

>>> sorted(DIALECTS)
['binance', 'bybit', 'kraken', 'okx']
"""

from __future__ import annotations

from typing import Any

from tradeloop.testing.streams.dialects import DIALECTS
from tradeloop.testing.streams.script import MarketScript, book_after, load_script
from tradeloop.testing.streams.server import StreamServer

__all__ = [
    "DIALECTS",
    "MarketScript",
    "StreamServer",
    "book_after",
    "ccxt_config",
    "load_script",
    "local_market",
]


def local_market(venue: str, symbol: str) -> dict[str, Any]:
    """A unified ccxt market for ``symbol`` (spot), as the venue's REST markets call would
    give it, so a client needs no markets endpoint from the local server."""
    base, quote = symbol.split("/")
    market_id = {"okx": f"{base}-{quote}", "kraken": f"{base}/{quote}"}.get(venue, base + quote)
    return {
        "id": market_id,
        "lowercaseId": market_id.lower(),
        "symbol": symbol,
        "base": base,
        "quote": quote,
        "baseId": base,
        "quoteId": quote,
        "wsId": f"{base}/{quote}",
        "altname": base + quote,
        "type": "spot",
        "spot": True,
        "margin": False,
        "swap": False,
        "future": False,
        "option": False,
        "contract": False,
        "linear": None,
        "inverse": None,
        "active": True,
        "precision": {"amount": 1e-8, "price": 1e-8},
        "limits": {"amount": {"min": None, "max": None}, "price": {"min": None, "max": None}},
        "info": {},
    }


def ccxt_config(venue: str, symbols: list[str]) -> dict[str, Any]:
    """ccxt constructor config for a client of a local server: preset markets, no rate limit."""
    return {
        "markets": {s: local_market(venue, s) for s in symbols},
        "enableRateLimit": False,
    }
