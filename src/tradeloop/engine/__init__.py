"""Engine: composes data, strategy and broker into one kernel (backtest here)."""

from tradeloop.engine.config import BacktestConfig
from tradeloop.engine.kernel import BacktestEngine
from tradeloop.engine.market import MarketData
from tradeloop.engine.result import BacktestResult

__all__ = ["BacktestConfig", "BacktestEngine", "BacktestResult", "MarketData"]
