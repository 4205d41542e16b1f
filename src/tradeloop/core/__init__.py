"""Domain model: instruments, bars, signals, orders, fills, positions, trades, portfolio, time."""

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
