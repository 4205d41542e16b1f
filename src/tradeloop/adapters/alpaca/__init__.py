"""Alpaca (US equities) through alpaca-py: a venue client for live trading, the market clock,
and minute bars (data stream + historical REST) as a live data feed.

alpaca-py is an optional extra (``pip install 'tradeloop[alpaca]'``); it is imported only when
one of these objects is built, so the rest of tradeloop works without it. Keys come from
settings (``TRADELOOP_ALPACA_API_KEY`` / ``TRADELOOP_ALPACA_API_SECRET``, ``.env``, or
``TRADELOOP_ALPACA_SECRET_COMMAND``, a command printing the secret) and are never logged; the
paper endpoints are used unless live trading is asked for explicitly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tradeloop.adapters.alpaca.config import AlpacaConfig, require_alpaca

if TYPE_CHECKING:
    from tradeloop.adapters.alpaca.client import AlpacaClient
    from tradeloop.adapters.alpaca.clock import AlpacaClockSchedule
    from tradeloop.adapters.alpaca.market import AlpacaMarketData

__all__ = [
    "AlpacaClient",
    "AlpacaClockSchedule",
    "AlpacaConfig",
    "AlpacaMarketData",
    "require_alpaca",
]

_LAZY = {
    "AlpacaClient": "tradeloop.adapters.alpaca.client",
    "AlpacaClockSchedule": "tradeloop.adapters.alpaca.clock",
    "AlpacaMarketData": "tradeloop.adapters.alpaca.market",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(name)
    import importlib

    return getattr(importlib.import_module(module), name)
