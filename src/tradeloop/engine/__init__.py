"""Engine: composes data, strategy and broker into one kernel for backtest, paper and live.

``BacktestConfig`` is the deprecated name of :class:`RunConfig` (the same class).
"""

from tradeloop.engine.config import BacktestConfig, RunConfig
from tradeloop.engine.kernel import BacktestEngine
from tradeloop.engine.market import MarketData
from tradeloop.engine.result import BacktestResult

__all__ = ["BacktestConfig", "BacktestEngine", "BacktestResult", "MarketData", "RunConfig"]
