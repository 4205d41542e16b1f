"""The outcome of a backtest."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tradeloop.analysis.metrics import PerformanceMetrics
from tradeloop.analysis.run_analysis import metrics_dict
from tradeloop.analysis.trades import TradeColumns
from tradeloop.core.position import Trade
from tradeloop.core.signal import Signal
from tradeloop.core.time import to_iso
from tradeloop.execution.simulated import Rejection

__all__ = ["BacktestResult"]


@dataclass(slots=True)
class BacktestResult:
    """Trades, the equity curve and metrics of one run.

    ``trades`` holds closed trades followed by positions still open at the end (those have
    no exit). ``equity`` is marked at every step's close; ``ts`` holds the steps' open times.
    ``indicators`` are what the strategy asked to plot (:meth:`Strategy.plot`), for the report.
    """

    strategy: str
    params: dict[str, Any]
    symbols: tuple[str, ...]
    timeframe: str
    ts: np.ndarray
    equity: np.ndarray
    cash: np.ndarray
    exposure: np.ndarray
    trades: list[Trade]
    metrics: PerformanceMetrics
    #: every signal with its step time (a :class:`~tradeloop.engine.step.SignalRecord` from
    #: the engine: opening signals are given their ids when first read)
    signals: Sequence[tuple[int, Signal]] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    intrabar: dict[str, int] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    bars_processed: int = 0
    indicators: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    #: the trades as columns, built once by the engine for its metrics and reused by the
    #: run analysis and the report (None: build them from ``trades``)
    trade_columns: TradeColumns | None = field(default=None, repr=False, compare=False)

    @property
    def start(self) -> int:
        """Open time of the first step (UTC ns)."""
        return int(self.ts[0])

    @property
    def end(self) -> int:
        """Open time of the last step (UTC ns)."""
        return int(self.ts[-1])

    @property
    def closed_trades(self) -> list[Trade]:
        """Trades with an exit."""
        return [t for t in self.trades if t.is_closed]

    @property
    def total_pnl(self) -> float:
        """Sum of closed trades' net P&L."""
        cols = self.trade_columns
        if cols is not None and len(cols) == len(self.trades):
            # fsum is correctly rounded: the same sum as over the trade objects
            return math.fsum(cols.pnl[cols.closed].tolist())
        return math.fsum(t.pnl for t in self.trades if t.is_closed)

    def summary(self) -> dict[str, Any]:
        """Return a flat, JSON-friendly summary of the run (metric dates as ISO-8601)."""
        out: dict[str, Any] = {
            "strategy": self.strategy,
            "params": dict(self.params),
            "symbols": list(self.symbols),
            "timeframe": self.timeframe,
            "start": to_iso(self.start),
            "end": to_iso(self.end),
            "bars": self.bars_processed,
            "open_positions_at_end": sum(1 for t in self.trades if not t.is_closed),
            "total_pnl": self.total_pnl,
            "signals": len(self.signals),
            "rejected_orders": len(self.rejections),
            "rejections_by_reason": dict(Counter(str(r.reason) for r in self.rejections)),
            "intrabar_resolution": dict(self.intrabar),
        }
        out.update(metrics_dict(self.metrics))
        return out
