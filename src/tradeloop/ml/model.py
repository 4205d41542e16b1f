"""The meta-model: a classifier plus a probability calibrator, tied to one feature set."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tradeloop.core.errors import ConfigError
from tradeloop.core.extras import needs_extra
from tradeloop.ml.features import FeatureSet

__all__ = ["Calibrator", "MetaModel", "make_estimator"]


def make_estimator(name: str = "lightgbm", params: dict[str, Any] | None = None) -> Any:
    """Build an unfitted classifier: ``"lightgbm"`` or a ``"pkg.mod:Class"`` classifier.

    Raises
    ------
    ConfigError
        If the class cannot be imported or built.
    """
    params = dict(params or {})
    if name == "lightgbm":
        with needs_extra("ml", "the LightGBM meta-model"):
            from lightgbm import LGBMClassifier

        defaults: dict[str, Any] = {
            "n_estimators": 200,
            "learning_rate": 0.05,
            "num_leaves": 15,
            "min_child_samples": 20,
            "subsample": 0.8,
            "subsample_freq": 1,
            "colsample_bytree": 0.8,
            "random_state": 7,
            "n_jobs": 1,
            "verbosity": -1,
        }
        defaults.update(params)
        return LGBMClassifier(**defaults)
    module_name, sep, cls_name = name.partition(":")
    if not sep:
        raise ConfigError(f"estimator must be 'lightgbm' or 'pkg.mod:Class', got {name!r}")
    try:
        cls = getattr(importlib.import_module(module_name), cls_name)
        est = cls(**params)
    except (ImportError, AttributeError, TypeError) as exc:
        raise ConfigError(f"cannot build estimator {name!r}: {exc}") from exc
    if not (hasattr(est, "fit") and hasattr(est, "predict_proba")):
        raise ConfigError(f"estimator {name!r} has no fit/predict_proba")
    return est


@dataclass(slots=True)
class Calibrator:
    """Monotone map from raw to calibrated probability: ``isotonic``, ``platt`` or ``none``.

    Stored as plain arrays so applying it costs one ``np.interp`` or one logistic.
    """

    kind: str = "none"
    x: np.ndarray = field(default_factory=lambda: np.zeros(0))
    y: np.ndarray = field(default_factory=lambda: np.zeros(0))
    a: float = 1.0
    b: float = 0.0

    def fit(self, raw: np.ndarray, target: np.ndarray) -> Calibrator:
        """Fit on held-out raw probabilities and 0/1 outcomes.

        Raises
        ------
        ConfigError
            For an unknown kind.
        """
        raw = np.clip(np.asarray(raw, float), 1e-6, 1 - 1e-6)
        target = np.asarray(target, float)
        if self.kind == "isotonic":
            with needs_extra("ml", "isotonic calibration"):
                from sklearn.isotonic import IsotonicRegression

            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw, target)
            self.x = np.asarray(iso.X_thresholds_, float)
            self.y = np.asarray(iso.y_thresholds_, float)
        elif self.kind == "platt":
            with needs_extra("ml", "Platt calibration"):
                from sklearn.linear_model import LogisticRegression

            logit = np.log(raw / (1 - raw)).reshape(-1, 1)
            lr = LogisticRegression(C=1e6).fit(logit, target.astype(int))
            self.a = float(lr.coef_[0, 0])
            self.b = float(lr.intercept_[0])
        elif self.kind != "none":
            raise ConfigError(f"calibration must be isotonic, platt or none, got {self.kind!r}")
        return self

    def apply(self, raw: np.ndarray) -> np.ndarray:
        """Return calibrated probabilities."""
        if self.kind == "isotonic" and self.x.size:
            return np.interp(raw, self.x, self.y)
        if self.kind == "platt":
            p = np.clip(raw, 1e-6, 1 - 1e-6)
            return 1.0 / (1.0 + np.exp(-(self.a * np.log(p / (1 - p)) + self.b)))
        return np.asarray(raw, float)


@dataclass(slots=True)
class MetaModel:
    """A fitted classifier answering: will this primary signal's trade make money?

    Attributes
    ----------
    estimator
        Fitted classifier with ``predict_proba`` (LightGBM by default).
    feature_set
        The features it was trained on.
    calibrator
        Calibration fitted on held-out folds.
    version
        Registry version (``""`` until saved) or any label.
    baseline_accuracy
        Out-of-fold accuracy at training time (the retrain monitor's baseline).
    threshold
        Trading threshold on the calibrated probability.
    """

    estimator: Any
    feature_set: FeatureSet
    calibrator: Calibrator = field(default_factory=Calibrator)
    version: str = ""
    baseline_accuracy: float = 0.5
    threshold: float = 0.5

    def raw_proba(self, x: np.ndarray, threads: int | None = None) -> np.ndarray:
        """Return the uncalibrated probability of class 1 for rows ``x``.

        ``threads`` bounds the prediction's thread count (LightGBM's ``num_threads``); None
        leaves the library's default, which for LightGBM is every core: on a busy machine
        a one-row prediction then waits for a thread pool now and then, which is what a
        latency tail shows.
        """
        x = np.atleast_2d(np.asarray(x, float))
        booster = getattr(self.estimator, "booster_", None)
        if booster is not None:
            if threads is None:
                return np.asarray(booster.predict(x), float)
            return np.asarray(booster.predict(x, num_threads=threads), float)
        return np.asarray(self.estimator.predict_proba(x)[:, 1], float)

    def predict_proba(self, x: np.ndarray, threads: int | None = None) -> np.ndarray:
        """Return the calibrated probability of class 1 for rows ``x`` (see :meth:`raw_proba`)."""
        return self.calibrator.apply(self.raw_proba(x, threads))

    def predict_one(self, row: np.ndarray, threads: int | None = None) -> float:
        """Return the calibrated probability for one feature row."""
        return float(self.predict_proba(row.reshape(1, -1), threads)[0])
