"""Engine: composes data, strategy and broker into one kernel for backtest, paper and live.

``BacktestConfig`` is the deprecated name of :class:`RunConfig` (the same class).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tradeloop.core.lazy import lazy_exports

if TYPE_CHECKING:
    from tradeloop.engine.config import BacktestConfig, RunConfig
    from tradeloop.engine.kernel import BacktestEngine
    from tradeloop.engine.market import MarketData
    from tradeloop.engine.result import BacktestResult

# Exports load on first use (PEP 562), so importing one submodule does not import them all.
_EXPORTS: dict[str, tuple[str, str]] = {
    "BacktestConfig": ("tradeloop.engine.config", "BacktestConfig"),
    "RunConfig": ("tradeloop.engine.config", "RunConfig"),
    "BacktestEngine": ("tradeloop.engine.kernel", "BacktestEngine"),
    "MarketData": ("tradeloop.engine.market", "MarketData"),
    "BacktestResult": ("tradeloop.engine.result", "BacktestResult"),
}


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())


__all__ = ["BacktestConfig", "BacktestEngine", "BacktestResult", "MarketData", "RunConfig"]
