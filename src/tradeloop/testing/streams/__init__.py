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
    """A unified ccxt market for ``symbol`` (``BASE/QUOTE`` spot or ``BASE/QUOTE:SETTLE``
    linear perpetual), as the venue's REST markets call would give it, so a client needs no
    markets endpoint from the local server."""
    pair, _, settle = symbol.partition(":")
    base, quote = pair.split("/")
    swap = bool(settle)
    market_id = {"okx": f"{base}-{quote}", "kraken": f"{base}/{quote}"}.get(venue, base + quote)
    if swap and venue == "okx":
        market_id += "-SWAP"
    return {
        "id": market_id,
        "lowercaseId": market_id.lower(),
        "symbol": symbol,
        "base": base,
        "quote": quote,
        "settle": settle or None,
        "baseId": base,
        "quoteId": quote,
        "settleId": settle or None,
        "wsId": f"{base}/{quote}",
        "altname": base + quote,
        "type": "swap" if swap else "spot",
        "spot": not swap,
        "margin": False,
        "swap": swap,
        "future": False,
        "option": False,
        "contract": swap,
        "linear": True if swap else None,
        "inverse": False if swap else None,
        "contractSize": 1.0 if swap else None,
        "active": True,
        "precision": {"amount": 1e-8, "price": 1e-8},
        "limits": {"amount": {"min": None, "max": None}, "price": {"min": None, "max": None}},
        "info": {"instType": "SWAP" if swap else "SPOT"},
    }


def ccxt_config(venue: str, symbols: list[str]) -> dict[str, Any]:
    """ccxt constructor config for a client of a local server: preset markets, no rate limit."""
    return {
        "markets": {s: local_market(venue, s) for s in symbols},
        "enableRateLimit": False,
    }
