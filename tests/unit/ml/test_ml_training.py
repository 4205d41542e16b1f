"""Training loop: minimum data, purged folds, metrics, estimators by config, calibration."""

from __future__ import annotations

import numpy as np
import pytest

from tradeloop.core.errors import ConfigError, DataError
from tradeloop.ml.training import TrainConfig, train_meta_model

FAST = {"n_estimators": 20}


def _events(bars, every: int = 3):
    idx = np.arange(120, len(bars) - 1, every)
    sides = np.where(np.arange(idx.size) % 2 == 0, 1, -1)
    return idx, sides


def test_training_needs_1000_bars(make_bars):
    bars = make_bars(999)
    with pytest.raises(DataError, match="at least 1000 bars"):
        train_meta_model(bars, *_events(bars))


def test_training_lightgbm_reports_metrics_per_fold(bars):
    # Act
    res = train_meta_model(bars, *_events(bars), TrainConfig(estimator_params=FAST, n_splits=4))
    # Assert
    assert len(res.folds) == 4
    for f in res.folds:
        assert 0 <= f.accuracy <= 1
        assert 0 <= f.auc <= 1
        assert f.log_loss > 0
        assert set(f.importance) == set(res.model.feature_set.columns)
    assert {"accuracy", "auc", "log_loss", "precision", "base_rate"} <= set(res.overall)
    assert abs(sum(res.importance.values()) - 1) < 1e-9
    p = res.model.predict_proba(np.zeros((3, len(res.model.feature_set.columns))))
    assert np.all((p >= 0) & (p <= 1))
    assert res.data_range == (int(bars.ts[0]), int(bars.ts[-1]))


def test_training_any_sklearn_classifier_with_platt_and_kfold(bars):
    cfg = TrainConfig(
        estimator="sklearn.linear_model:LogisticRegression",
        estimator_params={"max_iter": 500},
        calibration="platt",
        cv="kfold",
        n_splits=3,
    )
    res = train_meta_model(bars, *_events(bars), cfg)
    assert res.model.calibrator.kind == "platt"
    assert len(res.folds) == 3
    assert "ret_1" in res.importance


def test_training_isotonic_calibration_is_monotone(bars):
    res = train_meta_model(bars, *_events(bars), TrainConfig(estimator_params=FAST))
    grid = np.linspace(0, 1, 101)
    cal = res.model.calibrator.apply(grid)
    assert np.all(np.diff(cal) >= -1e-12)


def test_training_bad_estimator_or_config_raises(bars):
    with pytest.raises(ConfigError):
        train_meta_model(bars, *_events(bars), TrainConfig(estimator="nope.mod:X"))
    with pytest.raises(ConfigError):
        TrainConfig(cv="random")
    with pytest.raises(DataError):
        train_meta_model(bars, np.array([200, 300]), np.array([1, 1]))
