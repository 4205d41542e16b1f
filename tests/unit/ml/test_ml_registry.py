"""Model registry: versioned folders, metadata, refusing another feature set."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from tradeloop.core.errors import ConfigError
from tradeloop.ml.features import DEFAULT_FEATURE_SET
from tradeloop.ml.registry import ModelRegistry, data_hash
from tradeloop.ml.training import TrainConfig, train_meta_model


def _train(bars):
    idx = np.arange(120, len(bars) - 1, 3)
    return train_meta_model(
        bars, idx, np.ones(idx.size, np.int64), TrainConfig(estimator_params={"n_estimators": 10})
    )


def test_registry_saves_versions_with_metadata_and_loads_latest(tmp_path, bars):
    # Arrange
    reg = ModelRegistry(tmp_path / "models")
    res = _train(bars)
    # Act
    v1 = reg.save(res.model, params={"a": 1}, metrics=res.overall, bars=bars)
    v2 = reg.save(res.model, bars=bars)
    loaded = reg.load(feature_set=DEFAULT_FEATURE_SET)
    # Assert
    assert (v1, v2) == ("v0001", "v0002")
    assert reg.versions() == ["v0001", "v0002"]
    assert loaded.version == "v0002"
    meta = json.loads((tmp_path / "models" / "v0001" / "metadata.json").read_text())
    assert meta["feature_set"]["name"] == "meta_v1"
    assert meta["params"] == {"a": 1}
    assert meta["data"]["sha256"] == data_hash(bars)
    assert meta["data"]["start_ns"] == int(bars.ts[0])
    assert {"lightgbm", "scikit-learn", "numpy"} <= set(meta["libraries"])
    assert meta["metrics"]["auc"] == pytest.approx(res.overall["auc"])
    x = np.zeros((2, len(DEFAULT_FEATURE_SET.columns)))
    np.testing.assert_allclose(reg.load("v0001").predict_proba(x), res.model.predict_proba(x))


def test_registry_refuses_a_mismatched_feature_set(tmp_path, bars):
    reg = ModelRegistry(tmp_path)
    reg.save(_train(bars).model)
    other = dataclasses.replace(DEFAULT_FEATURE_SET, version=2)
    with pytest.raises(ConfigError, match="feature set"):
        reg.load(feature_set=other)


def test_registry_unknown_version_raises(tmp_path):
    with pytest.raises(ConfigError):
        ModelRegistry(tmp_path).load()
