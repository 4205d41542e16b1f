"""Walk-forward validation: optimise on each in-sample window, trade the next window unseen.

The bars are cut into ``folds`` consecutive out-of-sample (OOS) segments after a first
in-sample (IS) stretch ``ratio`` times as long as one segment. For each fold:

* the IS window is the ``ratio`` segments just before the OOS segment (``rolling``) or
  everything from the first bar up to it (``anchored``);
* a study runs on the IS window only (its trials see no bar at or after the OOS start);
* the chosen parameters trade the OOS segment: the run starts at the IS start so indicators
  are warm, the strategy acts from the OOS start (``trade_start``), it ends at the OOS end with
  positions closed, and it starts with the equity the previous segment ended with.

The OOS equity segments, chained, are the stitched out-of-sample equity curve; its metrics are
what the strategy did on data no choice was made on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from tradeloop.analysis.metrics import PerformanceMetrics, compute_metrics
from tradeloop.core.errors import ConfigError
from tradeloop.core.time import to_iso
from tradeloop.optimize.backends import SerialBackend
from tradeloop.optimize.evaluate import TrialEvaluator
from tradeloop.optimize.objective import metric_row
from tradeloop.optimize.space import SearchSpace
from tradeloop.optimize.study import StudyOptions, run_study

__all__ = ["Fold", "WalkForwardResult", "fold_config", "plan_folds", "stitch_fixed", "walk_forward"]

logger = logging.getLogger(__name__)

MODES = ("rolling", "anchored")


@dataclass(frozen=True, slots=True)
class Fold:
    """One walk-forward fold as bar indices: IS ``[is_start, is_end)``, OOS ``[oos_start,
    oos_end)`` with ``is_end == oos_start``."""

    index: int
    is_start: int
    is_end: int
    oos_start: int
    oos_end: int


def plan_folds(n_bars: int, folds: int, ratio: float = 3.0, mode: str = "rolling") -> list[Fold]:
    """Cut ``n_bars`` into walk-forward folds (see the module docstring).

    >>> [(f.is_start, f.is_end, f.oos_end) for f in plan_folds(100, 2, 3.0)]
    [(0, 60, 80), (20, 80, 100)]

    Raises
    ------
    ConfigError
        For an unknown mode, fewer than one fold, a ratio <= 0 or too few bars.
    """
    if mode not in MODES:
        raise ConfigError(f"--wf-mode must be one of {list(MODES)}, got {mode!r}")
    if folds < 1:
        raise ConfigError(f"--wf-folds must be >= 1, got {folds}")
    if not ratio > 0:
        raise ConfigError(f"--wf-ratio must be > 0, got {ratio}")
    seg = int(n_bars // (folds + ratio))
    is_len = round(ratio * seg)
    if seg < 2 or is_len < 2:
        raise ConfigError(
            f"{n_bars} bars are too few for {folds} walk-forward folds at IS/OOS ratio {ratio}"
        )
    out = []
    for k in range(folds):
        oos_start = is_len + k * seg
        oos_end = n_bars if k == folds - 1 else oos_start + seg
        is_start = 0 if mode == "anchored" else oos_start - is_len
        out.append(Fold(k, is_start, oos_start, oos_start, oos_end))
    return out


@dataclass(slots=True)
class WalkForwardResult:
    """Every fold's choice and OOS figures, and the stitched OOS curve."""

    mode: str
    folds: list[Fold]
    chosen: list[dict[str, Any]]
    is_metrics: list[dict[str, float]]
    oos_metrics: list[dict[str, float]]
    ts: np.ndarray
    equity: np.ndarray
    metrics: PerformanceMetrics
    trials_per_fold: list[int]

    def to_dict(self, bar_ts: np.ndarray) -> dict[str, Any]:
        """JSON-safe summary (fold dates as ISO-8601)."""
        from tradeloop.analysis.run_analysis import metrics_dict

        last = len(bar_ts) - 1
        return {
            "mode": self.mode,
            "folds": [
                {
                    "fold": f.index,
                    "is_start": to_iso(int(bar_ts[f.is_start])),
                    "is_end": to_iso(int(bar_ts[min(f.is_end, last)])),
                    "oos_start": to_iso(int(bar_ts[f.oos_start])),
                    "oos_end": to_iso(int(bar_ts[f.oos_end])) if f.oos_end <= last else None,
                    "params": self.chosen[i],
                    "is": self.is_metrics[i],
                    "oos": self.oos_metrics[i],
                    "trials": self.trials_per_fold[i],
                }
                for i, f in enumerate(self.folds)
            ],
            "oos": metrics_dict(self.metrics),
        }


def fold_config(evaluator: TrialEvaluator, fold: Fold, balance: float) -> Any:
    """The trading rules of a fold's OOS run (warm from the IS start, acting from the OOS
    start, closed at the OOS end, starting at ``balance``)."""
    ts = evaluator.bars.ts
    end = int(ts[fold.oos_end]) if fold.oos_end < len(ts) else None
    return replace(
        evaluator.spec.config,
        start=int(ts[fold.is_start]),
        end=end,
        trade_start=int(ts[fold.oos_start]),
        close_at_end=True,
        balance=balance,
    )


def walk_forward(
    evaluator: TrialEvaluator,
    space: SearchSpace,
    options: StudyOptions,
    *,
    folds: int = 4,
    ratio: float = 3.0,
    mode: str = "rolling",
    progress: Callable[[int, int], None] | None = None,
    identity: dict[str, Any] | None = None,
) -> WalkForwardResult:
    """Run the walk-forward validation of ``space`` (see the module docstring).

    Each fold's study runs in this process, in ``options.storage`` when there is one (the main
    study's): named from ``identity`` (the main study's strategy, data and rules), the fold's
    in-sample window and mode, so a killed walk-forward run resumes without repeating a
    finished trial; in memory when ``options.storage`` is None.

    Raises
    ------
    ConfigError
        For a bad fold plan, or an IS window where no trial meets the constraints.
    """
    bars = evaluator.bars
    base = evaluator.spec.config
    plan = plan_folds(len(bars), folds, ratio, mode)
    fold_options = replace(options, name=None, batch=1)
    balance = base.balance
    chosen, is_m, oos_m, counts = [], [], [], []
    ts_parts, eq_parts = [], []
    for fold in plan:
        ts = bars.ts
        is_cfg = replace(
            base,
            start=int(ts[fold.is_start]),
            end=int(ts[fold.is_end]),
            trade_start=None,
        )
        is_eval = evaluator.with_config(is_cfg)
        study = run_study(
            space,
            SerialBackend(is_eval.spec, bars),
            fold_options,
            identity={
                **(identity or {}),
                "walk_forward": mode,
                "fold": fold.index,
                "is": [to_iso(int(ts[fold.is_start])), to_iso(int(ts[fold.is_end]))],
            },
            engine=is_eval.engine,
        )
        if study.best is None:
            raise ConfigError(
                f"walk-forward fold {fold.index}: no trial on the in-sample window "
                f"{to_iso(int(ts[fold.is_start]))} .. {to_iso(int(ts[fold.is_end]))} meets the "
                "constraints; loosen --min-trades/--max-drawdown or widen the window"
            )
        params = study.best.params
        oos_eval = replace(
            evaluator.spec, config=fold_config(evaluator, fold, balance), keep_equity=True
        )
        result = TrialEvaluator(oos_eval, bars).evaluate(params)
        assert result.metrics is not None
        assert result.equity is not None
        assert result.ts is not None
        warm = fold.oos_start - fold.is_start
        seg_eq = result.equity[warm:]
        seg_ts = result.ts[warm:]
        ts_parts.append(seg_ts)
        eq_parts.append(seg_eq)
        oos_metrics = compute_metrics(
            seg_eq,
            seg_ts,
            [],
            evaluator.bar_ns,
            initial_equity=balance,
            periods=base.periods_per_year,
        )
        balance = float(seg_eq[-1])
        chosen.append(dict(params))
        is_m.append(dict(study.best.metrics or {}))
        row = metric_row(oos_metrics)
        row["trade_count"] = result.metrics["trade_count"]
        oos_m.append(row)
        counts.append(len(study.complete))
        if progress is not None:
            progress(fold.index + 1, len(plan))
    ts_all = np.concatenate(ts_parts)
    eq_all = np.concatenate(eq_parts)
    metrics = compute_metrics(
        eq_all,
        ts_all,
        [],
        evaluator.bar_ns,
        initial_equity=base.balance,
        periods=base.periods_per_year,
    )
    return WalkForwardResult(mode, plan, chosen, is_m, oos_m, ts_all, eq_all, metrics, counts)


def stitch_fixed(
    evaluator: TrialEvaluator, folds: list[Fold], params: dict[str, Any]
) -> tuple[np.ndarray, PerformanceMetrics]:
    """The stitched OOS equity and metrics of fixed ``params`` over ``folds`` (what keeping
    the current parameters would have done on the walk-forward's segments)."""
    base = evaluator.spec.config
    balance = base.balance
    parts, ts_parts = [], []
    for fold in folds:
        spec = replace(
            evaluator.spec, config=fold_config(evaluator, fold, balance), keep_equity=True
        )
        result = TrialEvaluator(spec, evaluator.bars).evaluate(params)
        if result.equity is None or result.ts is None:
            raise ConfigError(f"parameters {params} are refused: {result.error}")
        warm = fold.oos_start - fold.is_start
        parts.append(result.equity[warm:])
        ts_parts.append(result.ts[warm:])
        balance = float(parts[-1][-1])
    equity = np.concatenate(parts)
    metrics = compute_metrics(
        equity,
        np.concatenate(ts_parts),
        [],
        evaluator.bar_ns,
        initial_equity=base.balance,
        periods=base.periods_per_year,
    )
    return equity, metrics
