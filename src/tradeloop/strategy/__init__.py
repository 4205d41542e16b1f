"""Strategy API: the :class:`Strategy` base, parameters, the market view and the registry."""

from tradeloop.strategy.base import NO_SIGNALS, Strategy, strategy_error
from tradeloop.strategy.params import Param
from tradeloop.strategy.registry import StrategyInfo, discover_strategies, load_strategy_class
from tradeloop.strategy.view import MarketView, SeriesTimeline

__all__ = [
    "NO_SIGNALS",
    "MarketView",
    "Param",
    "SeriesTimeline",
    "Strategy",
    "StrategyInfo",
    "discover_strategies",
    "load_strategy_class",
    "strategy_error",
]
