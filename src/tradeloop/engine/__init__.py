"""Engine: composes data, strategy and broker into one kernel for backtest, paper and live.

``BacktestConfig`` is the deprecated name of :class:`RunConfig` (the same class).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

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


def __getattr__(name: str) -> Any:
    """Import an export on first use."""
    try:
        module, attr = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = ["BacktestConfig", "BacktestEngine", "BacktestResult", "MarketData", "RunConfig"]
