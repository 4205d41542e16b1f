"""Gradient-boosted-tree regimes: a LightGBM classifier of labelled regimes on causal features.

:class:`GBMDetector` learns each bar's regime (labels given, or the Viterbi path of an HMM fitted
on the same bars, see :mod:`tradeloop.ml.regimes.labels`) from multi-horizon trend, volatility,
volume and range features that read only the bar and the bars before it. Detection predicts
each bar independently (stateless), so a bar's regime never depends on later bars. The fit
keeps the last ``holdout`` share of the bars out once to measure out-of-sample accuracy
against the labels, then refits on everything.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tradeloop.core.bar import BarArrays
from tradeloop.core.errors import ConfigError, DataError
from tradeloop.core.extras import needs_extra
from tradeloop.ml.regimes.base import (
    RegimeDetector,
    RegimeFilter,
    WindowFilter,
    require_fitted,
    state_names,
)
from tradeloop.ml.regimes.features import (
    CLASSIFIER_FEATURES,
    FeatureSpec,
    check_bars,
    compute_features,
    ensure_finite,
    feature_range,
)
from tradeloop.ml.regimes.labels import regime_labels

__all__ = ["GBMDetector"]


class GBMDetector(RegimeDetector):
    """LightGBM regime classifier (see the module doc).

    Parameters
    ----------
    n_states
        2 to 5 states (names as the HMM's).
    features, window
        Feature columns and the window of ``vol``/``volume``.
    n_estimators, num_leaves, learning_rate
        LightGBM settings (seed 003: 100 trees, histogram algorithm).
    holdout
        Share of the last bars kept out once to measure accuracy (0: none).
    seed
        Random seed (LightGBM and the labelling HMM).
    """

    method = "gbm"

    def __init__(
        self,
        n_states: int = 3,
        *,
        features: tuple[str, ...] = CLASSIFIER_FEATURES,
        window: int = 20,
        n_estimators: int = 100,
        num_leaves: int = 15,
        learning_rate: float = 0.05,
        holdout: float = 0.2,
        seed: int = 0,
    ) -> None:
        self._names = state_names(n_states)
        if not 0.0 <= holdout < 0.9:
            raise ConfigError(f"holdout must be in [0, 0.9), got {holdout}")
        self.n_states = n_states
        self.spec = FeatureSpec(tuple(features), window)
        self.n_estimators = n_estimators
        self.num_leaves = num_leaves
        self.learning_rate = learning_rate
        self.holdout = holdout
        self.seed = seed
        self.model: Any = None
        self.holdout_accuracy = math.nan
        self.feature_importance: dict[str, float] = {}

    @property
    def names(self) -> tuple[str, ...]:
        """State names, calmest first."""
        return self._names

    @property
    def lookback(self) -> int:
        """The features' warm-up in bars."""
        return self.spec.lookback

    def _classifier(self) -> Any:
        with needs_extra("ml", "the gbm regime detector"):
            from lightgbm import LGBMClassifier

        return LGBMClassifier(
            n_estimators=self.n_estimators,
            num_leaves=self.num_leaves,
            learning_rate=self.learning_rate,
            random_state=self.seed,
            n_jobs=1,
            verbose=-1,
        )

    def fit(
        self, bars: BarArrays, labels: np.ndarray | None = None, *, labeler: Any = None
    ) -> GBMDetector:
        """Fit on ``bars`` and their labels (None: an HMM's Viterbi path, or ``labeler``'s).

        Raises
        ------
        DataError
            For too little data, constant prices, bad values or labels.
        """
        lb = self.lookback
        check_bars(bars, min_bars=lb + 100, what="a boosted-tree regime fit")
        y_all, _ = regime_labels(bars, labels, self.n_states, seed=self.seed, labeler=labeler)
        rows = compute_features(bars, self.spec)[lb:]
        ensure_finite(rows, self.spec.names, lb, bars.symbol)
        y = y_all[lb:]
        keep = y >= 0
        x, y = rows[keep], y[keep]
        present = np.unique(y)
        if present.size < 2:
            raise DataError(
                f"the labels hold {present.size} regime(s); a classifier needs at least two",
                file=bars.symbol,
                field="regime",
            )
        cut = int(len(y) * (1.0 - self.holdout))
        if self.holdout > 0 and 50 <= cut < len(y) and np.unique(y[:cut]).size >= 2:
            probe = self._classifier().fit(x[:cut], y[:cut])
            self.holdout_accuracy = float((probe.predict(x[cut:]) == y[cut:]).mean())
        self.model = self._classifier().fit(x, y)
        gains = np.asarray(self.model.booster_.feature_importance("gain"), dtype=float)
        total = gains.sum()
        self.feature_importance = {
            name: float(g / total) if total > 0 else 0.0
            for name, g in zip(self.spec.names, gains, strict=True)
        }
        return self

    def predict_rows(self, rows: np.ndarray) -> np.ndarray:
        """``(n, K)`` state probabilities of feature rows (classes never seen: 0)."""
        require_fitted(self, "model", "gbm")
        out = np.zeros((rows.shape[0], self.n_states))
        if rows.shape[0]:
            # the booster itself: the scikit-learn wrapper's checks cost more than the trees
            # for one row; the same probabilities (a 2-class booster gives P(class 1))
            raw = np.asarray(self.model.booster_.predict(rows, num_threads=1))
            proba = np.column_stack([1.0 - raw, raw]) if raw.ndim == 1 else raw
            out[:, np.asarray(self.model.classes_, dtype=np.int64)] = proba
        return out

    def online(self) -> RegimeFilter:
        """A fresh (stateless) causal filter."""
        require_fitted(self, "model", "gbm")
        return _RowFilter(self)

    def describe(self) -> dict[str, Any]:
        """Settings, holdout accuracy and feature importance (share of the gain)."""
        out = super().describe()
        out.update(
            features=self.spec.to_dict(),
            n_estimators=self.n_estimators,
            num_leaves=self.num_leaves,
            learning_rate=self.learning_rate,
            holdout_accuracy=self.holdout_accuracy,
            feature_importance=self.feature_importance,
            seed=self.seed,
        )
        return out


class _RowFilter(WindowFilter):
    """Each bar from its own feature row (no state between bars)."""

    def __init__(self, detector: GBMDetector) -> None:
        super().__init__(detector.lookback, detector.n_states)
        self.detector = detector

    def score(self, bars: BarArrays, first: int, stop: int) -> np.ndarray:
        det = self.detector
        rows = feature_range(bars, det.spec, first, stop)
        ensure_finite(rows, det.spec.names, first, bars.symbol)
        return det.predict_rows(rows)
