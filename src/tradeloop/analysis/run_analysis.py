"""One call that analyses a finished run: metrics, breakdowns, validation and bias checks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from tradeloop.analysis.bias import BiasConfig, BiasReport, detect_biases
from tradeloop.analysis.metrics import (
    Annualization,
    MonthRow,
    PerformanceMetrics,
    SymbolRow,
    compute_metrics,
    month_breakdown,
    periods_per_year,
    symbol_breakdown,
)
from tradeloop.analysis.trades import TradeColumns, equity_before, trade_columns
from tradeloop.analysis.validation import ValidationConfig, ValidationReport, validate
from tradeloop.core.bar import BarArrays
from tradeloop.core.position import Trade
from tradeloop.core.time import to_iso

_NO_TRADES = trade_columns(())

__all__ = ["DATE_FIELDS", "RunAnalysis", "analyze_run", "bar_returns", "metrics_dict"]

#: Metric fields holding UTC ns times (shown as ISO-8601 at the edges).
DATE_FIELDS = ("max_drawdown_start", "max_drawdown_trough", "max_drawdown_recovery")


def metrics_dict(metrics: PerformanceMetrics) -> dict[str, Any]:
    """Return ``metrics`` as a dict with the drawdown dates as ISO-8601 text."""
    out = metrics.as_dict()
    for key in DATE_FIELDS:
        if out[key] is not None:
            out[key] = to_iso(int(out[key]))
    return out


def bar_returns(equity: np.ndarray, initial_equity: float) -> np.ndarray:
    """Simple returns per bar, the first from ``initial_equity`` (non-finite ones dropped).

    >>> bar_returns(np.array([110.0, 99.0]), 100.0).round(6).tolist()
    [0.1, -0.1]
    """
    series = np.concatenate(([initial_equity], np.asarray(equity, dtype=np.float64)))
    with np.errstate(divide="ignore", invalid="ignore"):
        rets = np.diff(series) / series[:-1]
    return rets[np.isfinite(rets)]


@dataclass(frozen=True, slots=True)
class RunAnalysis:
    """Everything computed about a run after it finished."""

    metrics: PerformanceMetrics
    by_symbol: list[SymbolRow]
    by_month: list[MonthRow]
    validation: ValidationReport
    biases: BiasReport
    bar_ns: int
    columns: TradeColumns = field(repr=False, compare=False, default_factory=lambda: _NO_TRADES)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict (the content of ``metrics.json``)."""
        return {
            "annualization": {
                "periods_per_year": self.metrics.periods_per_year or periods_per_year(self.bar_ns),
                "basis": self.metrics.annualization,
                "bar_seconds": self.bar_ns / 1e9,
            },
            "metrics": metrics_dict(self.metrics),
            "by_symbol": [asdict(r) for r in self.by_symbol],
            "by_month": [asdict(r) for r in self.by_month],
            "validation": self.validation.to_dict(),
            "biases": self.biases.to_dict(),
        }


def analyze_run(
    *,
    ts: np.ndarray,
    equity: np.ndarray,
    trades: Sequence[Trade],
    bar_ns: int,
    initial_equity: float,
    exposure: np.ndarray | None = None,
    prices: Mapping[str, BarArrays] | None = None,
    metrics: PerformanceMetrics | None = None,
    validation: ValidationConfig | None = None,
    bias: BiasConfig | None = None,
    periods: float | Annualization | None = None,
    columns: TradeColumns | None = None,
) -> RunAnalysis:
    """Analyse a run: metrics (reused when given), per-symbol and per-month breakdowns,
    statistical validation and bias checks.

    Parameters
    ----------
    ts, equity
        Step open times (UTC ns) and the equity marked at each step's close.
    trades
        Closed trades followed by open ones.
    bar_ns
        Step length, for annualization and the bias windows.
    initial_equity
        Starting equity.
    exposure
        Per-step in-market flags (for the exposure metric when ``metrics`` is None).
    prices
        Bars per symbol (for the FOMO check); None skips that check.
    metrics
        Metrics already computed by the engine.
    validation, bias
        Configurations (defaults when None).
    periods
        Periods per year when ``metrics`` is None, as a number or with its basis (None:
        inferred from ``ts``).
    columns
        ``trades`` as :class:`TradeColumns` when the caller has them (the engine builds them
        once for its metrics); built here otherwise.
    """
    ts = np.asarray(ts, dtype=np.int64)
    equity = np.asarray(equity, dtype=np.float64)
    cols: TradeColumns = (
        columns if columns is not None and len(columns) == len(trades) else trade_columns(trades)
    )
    if metrics is None:
        metrics = compute_metrics(
            equity,
            ts,
            cols,
            bar_ns,
            initial_equity=initial_equity,
            exposure_mask=exposure,
            periods=periods,
        )
    closed_idx = np.flatnonzero(cols.closed)
    closed = cols.select(closed_idx[np.argsort(cols.exit_ts[closed_idx], kind="stable")])
    before = equity_before(closed.entry_ts, ts, equity, initial_equity)
    with np.errstate(divide="ignore", invalid="ignore"):
        on_equity = np.where(before > 0, closed.pnl / before, np.nan)
    report = validate(
        bar_returns(equity, initial_equity),
        metrics.periods_per_year or periods_per_year(bar_ns),
        closed.pnl_pct,
        on_equity,
        sharpe=metrics.sharpe,
        expectancy=metrics.expectancy,
        initial_equity=initial_equity,
        config=validation,
    )
    biases = detect_biases(
        cols,
        bar_ns,
        config=bias,
        prices=prices,
        equity_ts=ts,
        equity=equity,
        initial_equity=initial_equity,
    )
    return RunAnalysis(
        metrics=metrics,
        by_symbol=symbol_breakdown(cols),
        by_month=month_breakdown(ts, equity, cols, initial_equity),
        validation=report,
        biases=biases,
        bar_ns=int(bar_ns),
        columns=cols,
    )
