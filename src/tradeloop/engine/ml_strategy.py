"""Meta-labeling research on the backtest engine: primary events and walk-forward evaluation.

A model enters a run one way only: :class:`~tradeloop.engine.enrichment.ModelEnrichment` in
the kernel step, between the strategy and the risk gate (entries scored, weak ones dropped,
exits unchanged). :func:`primary_events` turns a plain run's entries into training events;
:func:`walk_forward_evaluate` trains on the past and compares the plain and the enriched runs
on each following window.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from tradeloop.core.bar import BarArrays
from tradeloop.core.errors import DataError
from tradeloop.engine.config import RunConfig
from tradeloop.engine.enrichment import ModelEnrichment, side_of
from tradeloop.engine.result import BacktestResult
from tradeloop.engine.runner import run_on_bars
from tradeloop.ml.training import TrainConfig, TrainResult, train_meta_model

__all__ = ["EvaluationFold", "primary_events", "walk_forward_evaluate"]


def primary_events(result: BacktestResult, bars: BarArrays) -> tuple[np.ndarray, np.ndarray]:
    """Return bar indices and sides (+1/-1) of the entry signals of a run on ``bars``."""
    idx: list[int] = []
    sides: list[int] = []
    for ts, sig in result.signals:
        side = side_of(sig)
        if side and sig.symbol == bars.symbol:
            idx.append(int(np.searchsorted(bars.ts, ts)))
            sides.append(side)
    return np.asarray(idx, np.int64), np.asarray(sides, np.int64)


@dataclass(frozen=True, slots=True)
class EvaluationFold:
    """One out-of-sample window: the primary strategy alone and with the model's enrichment
    (``filtered_*``; ``dropped`` entries were below the threshold)."""

    fold: int
    start: int
    end: int
    train_events: int
    primary_return: float
    primary_trades: int
    primary_win_rate: float
    filtered_return: float
    filtered_trades: int
    filtered_win_rate: float
    cv_auc: float
    dropped: int = 0


def _win_rate(res: BacktestResult) -> float:
    closed = res.closed_trades
    return sum(1 for t in closed if t.pnl > 0) / len(closed) if closed else float("nan")


def walk_forward_evaluate(
    make_strategy: Any,
    bars: BarArrays,
    backtest: RunConfig,
    train: TrainConfig,
    *,
    n_windows: int = 4,
    threshold: float = 0.5,
) -> list[EvaluationFold]:
    """Train on everything before each window and compare the runs inside it.

    Parameters
    ----------
    make_strategy
        Zero-argument callable returning a fresh primary strategy.
    bars
        One symbol's history.
    backtest
        Backtest settings (``start``/``end`` are set per window).
    train
        Training settings for each window's model.
    n_windows
        Out-of-sample windows; the history is cut into ``n_windows + 1`` equal parts.
    threshold
        Entries whose confidence is below it are dropped (see :class:`ModelEnrichment`).

    Raises
    ------
    DataError
        When a window's training history is too short or has too few events.
    """
    full = run_on_bars(make_strategy(), {bars.symbol: bars}, backtest)
    events, sides = primary_events(full, bars)
    n = len(bars)
    edges = np.linspace(0, n, n_windows + 2).astype(int)
    folds: list[EvaluationFold] = []
    for k in range(1, n_windows + 1):
        lo, hi = int(edges[k]), int(edges[k + 1])
        # train only on events whose label ends before the window (purge by horizon)
        keep = events + train.horizon < lo
        if keep.sum() < 4 * train.n_splits:
            raise DataError(f"window {k}: only {int(keep.sum())} primary events to train on")
        past = bars.slice(0, lo)
        result: TrainResult = train_meta_model(past, events[keep], sides[keep], train)
        window = dataclasses.replace(backtest, start=int(bars.ts[lo]), end=int(bars.ts[hi - 1]))
        plain = run_on_bars(make_strategy(), {bars.symbol: bars}, window)
        enrichment = ModelEnrichment(result.model, name=f"window{k}", min_confidence=threshold)
        filtered = run_on_bars(make_strategy(), {bars.symbol: bars}, window, enrichment=enrichment)
        folds.append(
            EvaluationFold(
                k,
                int(bars.ts[lo]),
                int(bars.ts[hi - 1]),
                int(keep.sum()),
                float(plain.metrics.total_return),
                len(plain.closed_trades),
                _win_rate(plain),
                float(filtered.metrics.total_return),
                len(filtered.closed_trades),
                _win_rate(filtered),
                float(result.overall.get("auc", float("nan"))),
                enrichment.counts.dropped,
            )
        )
    return folds
