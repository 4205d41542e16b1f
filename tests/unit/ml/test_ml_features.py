"""One feature code path: batch and online rows agree for every bar."""

from __future__ import annotations

import numpy as np
import pytest

from tradeloop.core.errors import ConfigError
from tradeloop.ml.features import DEFAULT_FEATURE_SET, OnlineFeatures, feature_set_by_name


def test_features_batch_equals_online_for_each_bar(make_bars):
    # Arrange: longer than the online buffer so it has rolled
    bars = make_bars(1300)
    batch = DEFAULT_FEATURE_SET.compute_bars(bars)
    online = OnlineFeatures(DEFAULT_FEATURE_SET)
    # Act / Assert
    for i in range(len(bars)):
        online.update(bars.bar(i))
        if i in (150, 319, 320, 641, 700, 1024, 1299):
            row = online.latest()
            np.testing.assert_allclose(row, batch[i], rtol=1e-9, atol=1e-12)


def test_features_are_causal(make_bars):
    bars = make_bars(800)
    full = DEFAULT_FEATURE_SET.compute_bars(bars)
    head = DEFAULT_FEATURE_SET.compute_bars(bars.slice(0, 600))
    np.testing.assert_array_equal(full[:600], head)


def test_features_defined_after_warmup(bars):
    x = DEFAULT_FEATURE_SET.compute_bars(bars)
    assert x.shape == (len(bars), len(DEFAULT_FEATURE_SET.bar_features))
    assert np.isfinite(x[DEFAULT_FEATURE_SET.warmup :]).all()


def test_feature_set_lookup_by_name_and_unknown():
    assert feature_set_by_name("meta_v1") is DEFAULT_FEATURE_SET
    assert feature_set_by_name("meta_v1@1") is DEFAULT_FEATURE_SET
    with pytest.raises(ConfigError):
        feature_set_by_name("nope")


def test_online_features_before_any_bar_are_nan():
    assert np.isnan(OnlineFeatures().latest()).all()
