"""Domain model: instruments, bars, signals, orders, fills, positions, trades, portfolio, time."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tradeloop.core.lazy import lazy_exports

if TYPE_CHECKING:
    from tradeloop.core.bar import Bar, BarArrays
    from tradeloop.core.clock import Clock, HistoricalClock, LiveClock
    from tradeloop.core.errors import (
        ConfigError,
        DataError,
        StrategyError,
        TemporaryError,
        TradeloopError,
        VenueError,
    )
    from tradeloop.core.instrument import AssetClass, Instrument
    from tradeloop.core.orders import Bracket, Fill, Order, OrderSide, OrderType, TimeInForce
    from tradeloop.core.portfolio import Portfolio
    from tradeloop.core.position import ExitReason, Position, Trade
    from tradeloop.core.rejection import Rejection
    from tradeloop.core.signal import Signal, SignalAction, SizeMode

# Exports load on first use (PEP 562), so importing one submodule does not import them all.
_EXPORTS: dict[str, tuple[str, str]] = {
    "Bar": ("tradeloop.core.bar", "Bar"),
    "BarArrays": ("tradeloop.core.bar", "BarArrays"),
    "Clock": ("tradeloop.core.clock", "Clock"),
    "HistoricalClock": ("tradeloop.core.clock", "HistoricalClock"),
    "LiveClock": ("tradeloop.core.clock", "LiveClock"),
    "ConfigError": ("tradeloop.core.errors", "ConfigError"),
    "DataError": ("tradeloop.core.errors", "DataError"),
    "StrategyError": ("tradeloop.core.errors", "StrategyError"),
    "TemporaryError": ("tradeloop.core.errors", "TemporaryError"),
    "TradeloopError": ("tradeloop.core.errors", "TradeloopError"),
    "VenueError": ("tradeloop.core.errors", "VenueError"),
    "AssetClass": ("tradeloop.core.instrument", "AssetClass"),
    "Instrument": ("tradeloop.core.instrument", "Instrument"),
    "Bracket": ("tradeloop.core.orders", "Bracket"),
    "Fill": ("tradeloop.core.orders", "Fill"),
    "Order": ("tradeloop.core.orders", "Order"),
    "OrderSide": ("tradeloop.core.orders", "OrderSide"),
    "OrderType": ("tradeloop.core.orders", "OrderType"),
    "TimeInForce": ("tradeloop.core.orders", "TimeInForce"),
    "Portfolio": ("tradeloop.core.portfolio", "Portfolio"),
    "ExitReason": ("tradeloop.core.position", "ExitReason"),
    "Position": ("tradeloop.core.position", "Position"),
    "Trade": ("tradeloop.core.position", "Trade"),
    "Rejection": ("tradeloop.core.rejection", "Rejection"),
    "Signal": ("tradeloop.core.signal", "Signal"),
    "SignalAction": ("tradeloop.core.signal", "SignalAction"),
    "SizeMode": ("tradeloop.core.signal", "SizeMode"),
}


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())


__all__ = [
    "AssetClass",
    "Bar",
    "BarArrays",
    "Bracket",
    "Clock",
    "ConfigError",
    "DataError",
    "ExitReason",
    "Fill",
    "HistoricalClock",
    "Instrument",
    "LiveClock",
    "Order",
    "OrderSide",
    "OrderType",
    "Portfolio",
    "Position",
    "Rejection",
    "Signal",
    "SignalAction",
    "SizeMode",
    "StrategyError",
    "TemporaryError",
    "TimeInForce",
    "Trade",
    "TradeloopError",
    "VenueError",
]
