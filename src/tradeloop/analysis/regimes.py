"""Regimes in run analysis: counts, durations and returns by regime, and the shaded chart.

:func:`regime_summary` describes a regime series on a market (``tradeloop regime report``):
per regime the bars, episodes and their durations, and the **next** bar's log return after
each bar whose regime was known at its close (what a position taken on the regime earned), so
the table is free of lookahead. :func:`regime_performance` adds a strategy's side: its equity
return over the bars of each regime and the trades it entered in each. :func:`regime_figure`
is the price chart shaded by regime for the HTML report.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tradeloop.analysis._charts import typed
from tradeloop.core.position import Trade

__all__ = ["RegimeSeries", "regime_figure", "regime_performance", "regime_summary", "runs"]

_YEAR_NS = 365.25 * 24 * 3600 * 1e9
_NS_PER_MS = 1_000_000
#: shading colours, calmest regime first; ``uncertain`` grey
_COLOURS = (
    "rgba(44,160,44,0.16)",
    "rgba(31,119,180,0.16)",
    "rgba(255,187,120,0.25)",
    "rgba(214,39,40,0.20)",
    "rgba(148,103,189,0.25)",
)
_ORDER = ("calm", "low_vol", "normal", "high_vol", "crisis")


def runs(labels: Sequence[str]) -> list[tuple[str, int, int]]:
    """Consecutive episodes ``(label, start, length)`` of equal non-empty labels.

    >>> runs(["", "a", "a", "b", "a"])
    [('a', 1, 2), ('b', 3, 1), ('a', 4, 1)]
    """
    out: list[tuple[str, int, int]] = []
    start = 0
    n = len(labels)
    for i in range(1, n + 1):
        if i == n or labels[i] != labels[start]:
            if labels[start]:
                out.append((labels[start], start, i - start))
            start = i
    return out


def _ordered(labels: Sequence[str]) -> list[str]:
    seen = {x for x in labels if x}
    known = [x for x in _ORDER if x in seen]
    return known + sorted(seen - set(known))


def regime_summary(
    labels: Sequence[str], close: np.ndarray, bar_ns: int, ts: np.ndarray | None = None
) -> list[dict[str, Any]]:
    """One row per regime (calmest first): bars, share of the labelled bars, episodes, mean and
    longest episode in bars, mean episode in hours and days, the next bar's mean log return,
    its annualized mean and volatility, and the total log return earned in the regime.

    With ``ts`` (bar times) returns are annualized by the bars the data has per year (252 a
    year for exchange-traded daily bars); without, by ``bar_ns`` around the clock.

    Raises
    ------
    ValueError
        When ``labels`` and ``close`` differ in length.
    """
    n = len(labels)
    if close.shape[0] != n:
        raise ValueError(f"{n} labels for {close.shape[0]} closes")
    fwd = np.full(n, np.nan)
    if n >= 2:
        fwd[:-1] = np.log(close[1:] / close[:-1])
    per_year = _YEAR_NS / bar_ns if bar_ns > 0 else math.nan
    if ts is not None and n >= 2 and int(ts[-1]) > int(ts[0]):
        per_year = (n - 1) / ((int(ts[-1]) - int(ts[0])) / _YEAR_NS)
    episodes = runs(labels)
    lab = np.asarray(labels, dtype=object)
    known = int((lab != "").sum())
    rows = []
    for label in _ordered(labels):
        mask = lab == label
        lengths = [length for name, _, length in episodes if name == label]
        r = fwd[mask]
        r = r[np.isfinite(r)]
        mean = float(r.mean()) if r.size else math.nan
        sd = float(r.std(ddof=1)) if r.size > 1 else math.nan
        rows.append(
            {
                "regime": label,
                "bars": int(mask.sum()),
                "share": float(mask.sum() / known) if known else math.nan,
                "episodes": len(lengths),
                "mean_bars": float(np.mean(lengths)),
                "max_bars": int(max(lengths)),
                "mean_hours": float(np.mean(lengths)) * bar_ns / 3.6e12,
                "mean_days": float(np.mean(lengths)) * bar_ns / 8.64e13,
                "mean_log_return": mean,
                "ann_return": mean * per_year,
                "ann_vol": sd * math.sqrt(per_year),
                "total_log_return": float(r.sum()),
            }
        )
    return rows


def regime_performance(
    labels: Sequence[str],
    ts: np.ndarray,
    equity: np.ndarray,
    close: np.ndarray,
    trades: Sequence[Trade],
    initial_equity: float,
) -> list[dict[str, Any]]:
    """A strategy's results by the regime in force (calmest first).

    ``labels[i]`` is the regime the run acted on after step ``i`` (its close), so the equity
    change from step ``i`` to ``i + 1`` and the market's move over that bar belong to it;
    trades belong to the regime in force when they were entered (the step before their
    entry bar). Columns: bars, share, strategy log return, market log return, trades entered,
    their win rate and P&L.
    """
    n = len(labels)
    eq = np.asarray(equity, dtype=float)
    prev = np.r_[initial_equity, eq[:-1]] if n else eq
    with np.errstate(divide="ignore", invalid="ignore"):
        step_ret = np.log(eq / prev)
        mkt = np.full(n, np.nan)
        if n >= 2:
            mkt[1:] = np.log(close[1:] / close[:-1])
    # the return of step i+1 is earned under the regime set after step i
    lab = np.asarray(labels, dtype=object)
    held = np.r_[np.asarray([""], dtype=object), lab[:-1]] if n else lab
    entry_label: dict[str, list[Trade]] = {}
    ts = np.asarray(ts, dtype=np.int64)
    for t in trades:
        i = int(np.searchsorted(ts, t.entry_ts, side="right")) - 1  # the entry's fill bar
        label = str(held[i]) if 0 <= i < n else ""
        entry_label.setdefault(label, []).append(t)
    known = int((held != "").sum())
    rows = []
    for label in _ordered(labels):
        mask = held == label
        sr, mr = step_ret[mask], mkt[mask]
        mine = entry_label.get(label, [])
        wins = sum(1 for t in mine if t.pnl > 0)
        rows.append(
            {
                "regime": label,
                "bars": int(mask.sum()),
                "share": float(mask.sum() / known) if known else math.nan,
                "strategy_log_return": float(np.nansum(sr[np.isfinite(sr)])),
                "market_log_return": float(np.nansum(mr[np.isfinite(mr)])),
                "trades": len(mine),
                "win_rate": wins / len(mine) if mine else math.nan,
                "pnl": float(sum(t.pnl for t in mine)),
            }
        )
    return rows


def regime_figure(
    ts: np.ndarray, close: np.ndarray, labels: Sequence[str], symbol: str, max_points: int = 4000
) -> dict[str, Any]:
    """The close price with the background shaded by regime (one filled trace per regime,
    so the legend toggles them); long series are thinned to about ``max_points`` bars."""
    n = len(labels)
    step = max(1, math.ceil(n / max_points)) if n else 1
    idx = np.arange(0, n, step)
    x = typed(np.asarray(ts, dtype=np.int64)[idx] // _NS_PER_MS)
    c = np.asarray(close, dtype=float)[idx]
    lab = np.asarray(labels, dtype=object)[idx]
    top = float(np.nanmax(c)) * 1.02 if c.size else 1.0
    data: list[dict[str, Any]] = []
    for k, label in enumerate(_ordered(list(lab))):
        y = np.where(lab == label, top, np.nan)
        colour = "rgba(127,127,127,0.2)" if label == "uncertain" else _COLOURS[k % len(_COLOURS)]
        data.append(
            {
                "type": "scatter",
                "mode": "none",
                "name": label,
                "x": x,
                "y": typed(y),
                "fill": "tozeroy",
                "fillcolor": colour,
                "line": {"width": 0, "shape": "hv"},
                "hoverinfo": "skip",
                "connectgaps": False,
            }
        )
    data.append(
        {
            "type": "scatter",
            "mode": "lines",
            "name": f"{symbol} close",
            "x": x,
            "y": typed(c),
            "line": {"width": 1.2, "color": "#222"},
        }
    )
    low = float(np.nanmin(c)) * 0.98 if c.size else 0.0
    return {
        "data": data,
        "layout": {
            "title": {"text": f"{symbol}: price shaded by the regime the run acted on"},
            "height": 420,
            "margin": {"l": 60, "r": 20, "t": 50, "b": 40},
            "legend": {"orientation": "h", "y": 1.1},
            "xaxis": {"type": "date"},
            "yaxis": {"range": [low, top], "title": {"text": "price"}},
        },
    }


@dataclass(frozen=True, slots=True)
class RegimeSeries:
    """The regime a run acted on at each of its steps (for the report and ``regimes.csv``).

    Attributes
    ----------
    symbol
        The symbol the regime was detected on.
    model
        ``name:version`` of the regime model.
    ts
        The run's step open times (UTC ns).
    labels
        The adopted regime after each step ('' before the first).
    detected, confidence, exposure
        What the model named at each step, its confidence, and the exposure in force.
    """

    symbol: str
    model: str
    ts: np.ndarray
    labels: list[str]
    detected: list[str]
    confidence: np.ndarray
    exposure: np.ndarray

    def rows(self) -> list[dict[str, Any]]:
        """``timestamp, regime, detected, confidence, exposure`` rows (ISO-8601 UTC)."""
        from tradeloop.core.time import to_iso

        return [
            {
                "timestamp": to_iso(int(t)),
                "regime": label,
                "detected": det,
                "confidence": c if math.isfinite(c) else None,
                "exposure": e,
            }
            for t, label, det, c, e in zip(
                self.ts.tolist(),
                self.labels,
                self.detected,
                self.confidence.tolist(),
                self.exposure.tolist(),
                strict=True,
            )
        ]
