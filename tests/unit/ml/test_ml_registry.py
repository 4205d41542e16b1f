"""Model registry: versioned folders, metadata, refusing another feature set."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from tradeloop.core.errors import ConfigError
from tradeloop.ml.features import DEFAULT_FEATURE_SET
from tradeloop.ml.registry import ModelCatalog, ModelRegistry, data_hash, parse_model_spec
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


# --------------------------------------------------------------------------- named models


def test_catalog_resolves_name_and_version_and_loads_that_model(tmp_path, bars):
    # Arrange: two names, two versions of one of them
    catalog = ModelCatalog(tmp_path)
    first = _train(bars).model
    catalog.registry("trend").save(first, bars=bars)
    catalog.registry("trend").save(_train(bars.slice(0, 1200)).model)
    catalog.registry("revert").save(first)
    # Act
    latest = catalog.resolve("trend")
    pinned = catalog.resolve("trend:1")
    model, ref, meta = catalog.load("trend:v0001")
    # Assert
    assert catalog.names() == ["revert", "trend"]
    assert (latest.name, latest.version, latest.spec) == ("trend", "v0002", "trend:v0002")
    assert pinned.version == "v0001"
    assert pinned.path == tmp_path / "trend" / "v0001"
    assert ref == pinned
    assert model.version == "v0001"
    assert meta["data"]["sha256"] == data_hash(bars)
    x = np.zeros((3, len(DEFAULT_FEATURE_SET.columns)))
    np.testing.assert_array_equal(model.predict_proba(x), first.predict_proba(x))


def test_catalog_unknown_name_lists_the_available_ones(tmp_path, bars):
    catalog = ModelCatalog(tmp_path)
    catalog.registry("trend").save(_train(bars).model)
    catalog.registry("revert").save(_train(bars).model)
    hint = r"unknown model 'trnd'.*Did you mean: 'trend'.*Available: revert, trend"
    with pytest.raises(ConfigError, match=hint):
        catalog.resolve("trnd")
    with pytest.raises(ConfigError, match="no model is saved"):
        ModelCatalog(tmp_path / "empty").resolve("trend")


def test_catalog_unknown_version_lists_the_saved_versions(tmp_path, bars):
    catalog = ModelCatalog(tmp_path)
    for _ in range(2):
        catalog.registry("trend").save(_train(bars).model)
    with pytest.raises(ConfigError, match="no version 'v0009'; versions: v0001, v0002"):
        catalog.resolve("trend:v0009")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("m", ("m", None)), ("m:latest", ("m", None)), ("m:7", ("m", "v0007")),
     ("m.v2:v12", ("m.v2", "v0012"))],
)  # fmt: skip
def test_model_spec_parsing(spec, expected):
    assert parse_model_spec(spec) == expected


@pytest.mark.parametrize("spec", ["", ":v1", "../x", "m:vx", "a b"])
def test_model_spec_rejects_malformed_references(spec):
    with pytest.raises(ConfigError):
        parse_model_spec(spec)
