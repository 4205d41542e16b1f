"""Meta-labeling in the backtest engine: a strategy wrapper sized by the meta-model.

:class:`MetaFilteredStrategy` wraps any strategy: every entry signal gets the meta-model's
calibrated confidence as :attr:`Signal.confidence` (which the risk engine's sizing multiplies
in) and signals below the threshold are dropped; exits pass through unchanged. Features are
computed once per run, causally, by the same :meth:`FeatureSet.compute` that training uses.
:func:`walk_forward_evaluate` trains on the past and compares filtered and unfiltered runs on
each following window.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tradeloop.core.bar import BarArrays
from tradeloop.core.errors import DataError
from tradeloop.core.portfolio import Portfolio
from tradeloop.core.signal import Signal, SignalAction
from tradeloop.engine.config import BacktestConfig
from tradeloop.engine.result import BacktestResult
from tradeloop.engine.runner import run_on_bars
from tradeloop.ml.model import MetaModel
from tradeloop.ml.training import TrainConfig, TrainResult, train_meta_model
from tradeloop.strategy.base import Strategy
from tradeloop.strategy.view import MarketView

__all__ = [
    "EvaluationFold",
    "MetaFilteredStrategy",
    "primary_events",
    "walk_forward_evaluate",
]

_OPEN_SIDE = {SignalAction.OPEN_LONG: 1, SignalAction.OPEN_SHORT: -1}


class MetaFilteredStrategy(Strategy):
    """Wrap ``base``: set each entry signal's confidence from ``model``; drop low ones.

    Parameters
    ----------
    base
        The primary strategy (already built with its parameters).
    model
        The meta-model, or None to pass signals through with confidence 0.5.
    threshold
        Entry signals scoring below it are dropped (0 keeps all, sizing only).
    """

    def __init__(self, base: Strategy, model: MetaModel | None, threshold: float = 0.5) -> None:
        self.base = base
        self.model = model
        self.threshold = threshold
        self.params = dict(base.params)
        self.timeframes = base.timeframes  # type: ignore[misc]
        self.symbols = base.symbols  # type: ignore[misc]
        self.scored: list[tuple[int, float]] = []
        self._features: dict[str, np.ndarray] = {}

    def strategy_name(self) -> str:  # type: ignore[override]
        """Return ``meta(<base>)``."""
        return f"meta({self.base.strategy_name()})"

    def on_init(self, view: MarketView) -> None:
        """Initialise the base strategy and compute the features of every symbol."""
        self.base.on_init(view)
        if self.model is not None:
            fs = self.model.feature_set
            self._features = {s: fs.compute_bars(view.arrays(s)) for s in view.symbols}

    def signal_bars(self, view: MarketView) -> np.ndarray | None:
        """Delegate to the base strategy."""
        return self.base.signal_bars(view)

    def on_bar(self, view: MarketView, portfolio: Portfolio) -> Sequence[Signal]:
        """Return the base strategy's signals, scored and filtered."""
        signals = self.base.on_bar(view, portfolio)
        if not signals:
            return signals
        out: list[Signal] = []
        for sig in signals:
            side = _OPEN_SIDE.get(sig.action)
            if side is None:
                out.append(sig)
                continue
            conf = self._score(view, sig.symbol, side)
            self.scored.append((view.ts, conf))
            if conf >= self.threshold:
                out.append(dataclasses.replace(sig, confidence=conf))
        return out

    def _score(self, view: MarketView, symbol: str, side: int) -> float:
        if self.model is None:
            return 0.5
        row = self._features[symbol][view.index(symbol)]
        if np.isnan(row).any():
            return 0.5
        fs = self.model.feature_set
        conf = self.model.predict_one(fs.with_signal(row, float(side))[0])
        return float(min(1.0, max(0.0, conf)))

    def get_state(self) -> dict[str, Any]:
        """Delegate to the base strategy."""
        return self.base.get_state()


def primary_events(result: BacktestResult, bars: BarArrays) -> tuple[np.ndarray, np.ndarray]:
    """Return bar indices and sides (+1/-1) of the entry signals of a run on ``bars``."""
    idx: list[int] = []
    sides: list[int] = []
    for ts, sig in result.signals:
        side = _OPEN_SIDE.get(sig.action)
        if side is not None and sig.symbol == bars.symbol:
            idx.append(int(np.searchsorted(bars.ts, ts)))
            sides.append(side)
    return np.asarray(idx, np.int64), np.asarray(sides, np.int64)


@dataclass(frozen=True, slots=True)
class EvaluationFold:
    """One out-of-sample window: the primary strategy alone and meta-filtered."""

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


def _win_rate(res: BacktestResult) -> float:
    closed = res.closed_trades
    return sum(1 for t in closed if t.pnl > 0) / len(closed) if closed else float("nan")


def walk_forward_evaluate(
    make_strategy: Any,
    bars: BarArrays,
    backtest: BacktestConfig,
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
        Filter threshold on the meta-confidence.

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
        meta = MetaFilteredStrategy(make_strategy(), result.model, threshold)
        filtered = run_on_bars(meta, {bars.symbol: bars}, window)
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
            )
        )
    return folds
