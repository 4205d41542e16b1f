"""Performance metrics of a run: returns, risk-adjusted ratios, drawdown and trade statistics.

Conventions (stated because peers differ):

* Returns are simple returns of the equity curve sampled at every bar.
* Annualization uses ``periods_per_year`` = 365.25 days / bar length (crypto trades every
  day); Sharpe = mean / std (ddof=1) * sqrt(periods), risk-free rate 0.
* Sortino uses the downside deviation sqrt(mean(min(r, 0)**2)) over all periods.
* CAGR = (final / initial) ** (1 / years) - 1 with years from first to last bar time.
* Trade statistics use closed trades only; profit factor = gross profit / gross loss
  (``inf`` with no losing trade, ``nan`` with no trade at all).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from tradeloop.core.position import Trade

__all__ = ["PerformanceMetrics", "compute_metrics", "periods_per_year"]

_YEAR_NS = int(365.25 * 86_400 * 1e9)


def periods_per_year(bar_ns: int) -> float:
    """Return the number of bars of length ``bar_ns`` in a 365.25-day year.

    >>> periods_per_year(86_400 * 10**9)
    365.25
    """
    return _YEAR_NS / bar_ns


@dataclass(frozen=True, slots=True)
class PerformanceMetrics:
    """Headline metrics of a run (fractions, not percent)."""

    initial_equity: float
    final_equity: float
    total_return: float
    cagr: float
    volatility: float
    sharpe: float
    sortino: float
    max_drawdown: float
    win_rate: float
    profit_factor: float
    expectancy: float
    exposure: float
    trade_count: int
    avg_holding_hours: float
    fees_paid: float

    def as_dict(self) -> dict[str, float | int]:
        """Return the metrics as a plain dict."""
        return asdict(self)


def _max_drawdown(equity: np.ndarray) -> float:
    if equity.size == 0:
        return 0.0
    peaks = np.maximum.accumulate(equity)
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(peaks > 0, equity / peaks - 1.0, 0.0)
    return float(dd.min())


def compute_metrics(
    equity: np.ndarray,
    ts: np.ndarray,
    trades: Sequence[Trade],
    bar_ns: int,
    *,
    initial_equity: float | None = None,
    exposure_mask: np.ndarray | None = None,
) -> PerformanceMetrics:
    """Compute :class:`PerformanceMetrics` from an equity curve and the run's trades.

    Parameters
    ----------
    equity
        Equity marked at every bar close.
    ts
        Bar open times (int64 ns), same length as ``equity``.
    trades
        All trades; only closed ones count in trade statistics.
    bar_ns
        Bar length in ns, for annualization.
    initial_equity
        Starting equity (defaults to the first equity value).
    exposure_mask
        Boolean per bar: a position was open at the close.
    """
    equity = np.asarray(equity, dtype=np.float64)
    initial = float(
        initial_equity if initial_equity is not None else (equity[0] if equity.size else 0.0)
    )
    final = float(equity[-1]) if equity.size else initial
    total_return = final / initial - 1.0 if initial else 0.0
    series = np.concatenate(([initial], equity))
    with np.errstate(divide="ignore", invalid="ignore"):
        rets = np.diff(series) / series[:-1]
    rets = rets[np.isfinite(rets)]
    ppy = periods_per_year(bar_ns)
    if rets.size > 1:
        std = float(np.std(rets, ddof=1))
        mean = float(np.mean(rets))
        volatility = std * math.sqrt(ppy)
        sharpe = mean / std * math.sqrt(ppy) if std > 0 else 0.0
        downside = float(np.sqrt(np.mean(np.minimum(rets, 0.0) ** 2)))
        sortino = (
            mean / downside * math.sqrt(ppy) if downside > 0 else (math.inf if mean > 0 else 0.0)
        )
    else:
        volatility = sharpe = sortino = 0.0
    years = (int(ts[-1]) + bar_ns - int(ts[0])) / _YEAR_NS if len(ts) else 0.0
    if years > 0 and initial > 0 and final > 0:
        cagr = (final / initial) ** (1.0 / years) - 1.0
    else:
        cagr = -1.0 if final <= 0 < initial else 0.0
    closed = [t for t in trades if t.is_closed]
    pnls = np.array([t.pnl for t in closed], dtype=np.float64)
    wins = pnls[pnls > 0]
    losses = pnls[pnls < 0]
    if pnls.size:
        win_rate = wins.size / pnls.size
        gross_loss = -float(losses.sum())
        profit_factor = float(wins.sum()) / gross_loss if gross_loss > 0 else math.inf
        expectancy = float(pnls.mean())
        avg_hold = float(np.mean([t.holding_ns for t in closed])) / 3.6e12
    else:
        win_rate = profit_factor = expectancy = avg_hold = math.nan
    exposure = (
        float(np.mean(exposure_mask)) if exposure_mask is not None and len(exposure_mask) else 0.0
    )
    fees = float(sum(t.entry_fee + t.exit_fee for t in trades))
    return PerformanceMetrics(
        initial_equity=initial,
        final_equity=final,
        total_return=total_return,
        cagr=cagr,
        volatility=volatility,
        sharpe=sharpe,
        sortino=sortino,
        max_drawdown=_max_drawdown(series),
        win_rate=win_rate,
        profit_factor=profit_factor,
        expectancy=expectancy,
        exposure=exposure,
        trade_count=len(closed),
        avg_holding_hours=avg_hold,
        fees_paid=fees,
    )
