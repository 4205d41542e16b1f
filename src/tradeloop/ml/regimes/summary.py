"""What regimes looked like on a series: counts, durations and returns by regime.

Returns are the **next** bar's log return after each bar whose regime is known at its close
(what a position taken on the regime would earn), so the table is free of lookahead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["regime_summary", "runs"]

_YEAR_NS = 365.25 * 24 * 3600 * 1e9


def runs(labels: Sequence[str]) -> list[tuple[str, int, int]]:
    """Consecutive episodes ``(label, start, length)`` of equal non-empty labels."""
    out: list[tuple[str, int, int]] = []
    start = 0
    n = len(labels)
    for i in range(1, n + 1):
        if i == n or labels[i] != labels[start]:
            if labels[start]:
                out.append((labels[start], start, i - start))
            start = i
    return out


def regime_summary(labels: Sequence[str], close: np.ndarray, bar_ns: int) -> list[dict[str, Any]]:
    """One row per regime (in order of first appearance): bars, share, episodes, mean and
    longest episode in bars and hours, the next bar's mean log return, its annualized mean and
    volatility, and the total log return earned in the regime.

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
    episodes = runs(labels)
    lab = np.asarray(labels, dtype=object)
    known = int((lab != "").sum())
    order: list[str] = []
    for label, _, _ in episodes:
        if label not in order:
            order.append(label)
    rows = []
    for label in order:
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
                "mean_log_return": mean,
                "ann_return": mean * per_year,
                "ann_vol": sd * math.sqrt(per_year),
                "total_log_return": float(r.sum()),
            }
        )
    return rows
