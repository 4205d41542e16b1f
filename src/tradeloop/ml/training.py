"""Training loop: triple-barrier meta-labels, purged CV, metrics per fold, calibration."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tradeloop.core.bar import BarArrays
from tradeloop.core.errors import ConfigError, DataError
from tradeloop.core.extras import needs_extra
from tradeloop.ml.cv import purged_kfold, purged_walk_forward
from tradeloop.ml.features import DEFAULT_FEATURE_SET, FeatureSet
from tradeloop.ml.labels import meta_labels, triple_barrier
from tradeloop.ml.model import Calibrator, MetaModel, make_estimator

__all__ = [
    "MIN_BARS",
    "FoldReport",
    "TrainConfig",
    "TrainResult",
    "build_dataset",
    "train_meta_model",
]

logger = logging.getLogger(__name__)

#: Fewer bars than this raise :class:`DataError`.
MIN_BARS = 1000


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """How to label, validate and fit the meta-model.

    Attributes
    ----------
    pt, sl, horizon, vol_window
        Triple-barrier settings (see :func:`~tradeloop.ml.labels.triple_barrier`).
    cv
        ``"walk_forward"`` (expanding, purged) or ``"kfold"`` (purged, embargoed).
    n_splits, embargo
        Folds and embargo in bars.
    estimator, estimator_params
        ``"lightgbm"`` or ``"pkg.mod:Class"`` and its keyword arguments.
    calibration
        ``"isotonic"``, ``"platt"`` or ``"none"``, fitted on out-of-fold predictions.
    threshold
        Trading threshold for precision and the filter.
    """

    pt: float = 2.0
    sl: float = 2.0
    horizon: int = 24
    vol_window: int = 50
    cv: str = "walk_forward"
    n_splits: int = 5
    embargo: int = 10
    estimator: str = "lightgbm"
    estimator_params: dict[str, Any] = field(default_factory=dict)
    calibration: str = "isotonic"
    threshold: float = 0.5

    def __post_init__(self) -> None:
        if self.cv not in ("walk_forward", "kfold"):
            raise ConfigError(f"cv must be walk_forward or kfold, got {self.cv!r}")
        if self.calibration not in ("isotonic", "platt", "none"):
            raise ConfigError(f"calibration must be isotonic, platt or none: {self.calibration!r}")
        if not 0.0 < self.threshold < 1.0:
            raise ConfigError(f"threshold must be in (0, 1), got {self.threshold}")


@dataclass(frozen=True, slots=True)
class FoldReport:
    """Out-of-sample metrics of one fold."""

    fold: int
    n_train: int
    n_test: int
    accuracy: float
    auc: float
    log_loss: float
    precision: float
    base_rate: float
    importance: dict[str, float]


@dataclass(slots=True)
class TrainResult:
    """A trained model with its fold reports and overall figures."""

    model: MetaModel
    folds: list[FoldReport]
    overall: dict[str, float]
    importance: dict[str, float]
    n_bars: int
    n_events: int
    data_range: tuple[int, int]
    seconds: float
    config: TrainConfig


@dataclass(frozen=True, slots=True)
class Dataset:
    """Feature rows, meta-labels and label spans of the primary signal's events."""

    x: np.ndarray
    y: np.ndarray
    t0: np.ndarray
    t1: np.ndarray
    ret: np.ndarray


def build_dataset(
    bars: BarArrays,
    events: np.ndarray,
    sides: np.ndarray,
    config: TrainConfig,
    feature_set: FeatureSet = DEFAULT_FEATURE_SET,
    features: np.ndarray | None = None,
) -> Dataset:
    """Label the events and gather their features (rows with NaN features are dropped).

    Raises
    ------
    DataError
        With fewer than :data:`MIN_BARS` bars.
    """
    if len(bars) < MIN_BARS:
        raise DataError(
            f"{bars.symbol}: meta-model training needs at least {MIN_BARS} bars, got {len(bars)}"
        )
    order = np.argsort(np.asarray(events, np.int64), kind="stable")
    ev = np.asarray(events, np.int64)[order]
    sd = np.asarray(sides, np.int64)[order]
    lab = triple_barrier(
        bars.high, bars.low, bars.close, ev, sd,
        pt=config.pt, sl=config.sl, horizon=config.horizon, vol_window=config.vol_window,
    )  # fmt: skip
    feats = feature_set.compute_bars(bars) if features is None else features
    x = feature_set.with_signal(feats[lab.t0], lab.side.astype(float), 1.0)
    keep = np.all(np.isfinite(x), axis=1)
    return Dataset(x[keep], meta_labels(lab)[keep], lab.t0[keep], lab.t1[keep], lab.ret[keep])


def _metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    with needs_extra("ml", "meta-model training"):
        from sklearn.metrics import log_loss, roc_auc_score

    pred = p >= threshold
    both = len(np.unique(y)) == 2
    return {
        "accuracy": float(np.mean(pred == (y == 1))),
        "auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "log_loss": float(log_loss(y, np.clip(p, 1e-6, 1 - 1e-6), labels=[0, 1])),
        "precision": float(np.mean(y[pred] == 1)) if pred.any() else float("nan"),
        "base_rate": float(np.mean(y)),
    }


def _importance(est: Any, columns: tuple[str, ...]) -> dict[str, float]:
    raw = getattr(est, "feature_importances_", None)
    if raw is None and hasattr(est, "coef_"):
        raw = np.abs(np.asarray(est.coef_)).ravel()
    if raw is None:
        return {}
    arr = np.asarray(raw, float)
    total = arr.sum() or 1.0
    return {c: float(v / total) for c, v in zip(columns, arr, strict=False)}


def train_meta_model(
    bars: BarArrays,
    events: np.ndarray,
    sides: np.ndarray,
    config: TrainConfig | None = None,
    feature_set: FeatureSet = DEFAULT_FEATURE_SET,
    *,
    features: np.ndarray | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> TrainResult:
    """Train and validate a meta-model for a primary strategy's signals.

    Parameters
    ----------
    bars
        The price history (at least :data:`MIN_BARS` bars).
    events, sides
        Bar index and side (+1/-1) of each primary entry signal.
    config
        Labelling, validation and estimator settings.
    feature_set
        Features to compute.
    features
        Precomputed ``feature_set.compute_bars(bars)``, to skip recomputing it.
    progress
        Called with ``(folds_done, folds_total)``.

    Returns
    -------
    TrainResult
        The model fitted on every event, calibrated on the out-of-fold predictions.

    Raises
    ------
    DataError
        Too few bars, or too few labelled events / a single class.
    ConfigError
        For bad settings or an unusable estimator.
    """
    cfg = config or TrainConfig()
    started = time.perf_counter()
    ds = build_dataset(bars, events, sides, cfg, feature_set, features)
    if ds.y.shape[0] < 4 * cfg.n_splits or len(np.unique(ds.y)) < 2:
        raise DataError(
            f"{bars.symbol}: {ds.y.shape[0]} labelled events ({int(ds.y.sum())} positive) are "
            f"too few to train with {cfg.n_splits} folds"
        )
    split = purged_walk_forward if cfg.cv == "walk_forward" else purged_kfold
    folds: list[FoldReport] = []
    oof = np.full(ds.y.shape[0], np.nan)
    imp_sum: dict[str, float] = {}
    splits = list(split(ds.t0, ds.t1, cfg.n_splits, cfg.embargo))
    for k, (train, test) in enumerate(splits):
        if len(np.unique(ds.y[train])) < 2:
            continue
        est = make_estimator(cfg.estimator, cfg.estimator_params)
        est.fit(ds.x[train], ds.y[train])
        p = MetaModel(est, feature_set).raw_proba(ds.x[test])
        oof[test] = p
        m = _metrics(ds.y[test], p, cfg.threshold)
        imp = _importance(est, feature_set.columns)
        for key, val in imp.items():
            imp_sum[key] = imp_sum.get(key, 0.0) + val
        folds.append(FoldReport(k, len(train), len(test), importance=imp, **m))
        if progress is not None:
            progress(k + 1, len(splits))
    held = np.isfinite(oof)
    if not held.any():
        raise DataError(f"{bars.symbol}: no fold had both classes in training")
    calibrator = Calibrator(cfg.calibration).fit(oof[held], ds.y[held])
    overall = _metrics(ds.y[held], calibrator.apply(oof[held]), cfg.threshold)
    overall["raw_accuracy"] = _metrics(ds.y[held], oof[held], cfg.threshold)["accuracy"]
    final = make_estimator(cfg.estimator, cfg.estimator_params)
    final.fit(ds.x, ds.y)
    model = MetaModel(
        final,
        feature_set,
        calibrator,
        baseline_accuracy=overall["accuracy"],
        threshold=cfg.threshold,
    )
    n_f = max(len(folds), 1)
    importance = dict(sorted(((k, v / n_f) for k, v in imp_sum.items()), key=lambda t: -t[1]))
    seconds = time.perf_counter() - started
    logger.info(
        "trained meta-model on %s events in %.2fs", ds.y.shape[0], seconds,
        extra={"overall": overall},
    )  # fmt: skip
    return TrainResult(
        model,
        folds,
        overall,
        importance,
        len(bars),
        int(ds.y.shape[0]),
        (int(bars.ts[0]), int(bars.ts[-1])),
        seconds,
        cfg,
    )
