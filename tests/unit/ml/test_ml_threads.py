"""Bounded inference threads: the pools are capped inside the block and restored after it."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from threadpoolctl import threadpool_info

from tradeloop.core.errors import ConfigError
from tradeloop.ml.threads import bounded_threads, check_threads
from tradeloop.ml.training import TrainConfig, train_meta_model


def _pools() -> dict[str, int]:
    return {p["filepath"]: p["num_threads"] for p in threadpool_info()}


def test_bounded_threads_caps_every_pool_and_restores_them():
    # Arrange: LightGBM's OpenMP runtime is loaded by the import below
    import lightgbm  # noqa: F401

    before_pools = _pools()
    before_numba = numba.get_num_threads()
    # Act / Assert
    with bounded_threads(1):
        assert numba.get_num_threads() == 1
        inside = _pools()
        assert inside
        assert all(n == 1 for n in inside.values())
    assert _pools() == before_pools
    assert numba.get_num_threads() == before_numba


@pytest.mark.parametrize("bad", [0, -2, 1.5, True])
def test_thread_counts_below_one_or_not_integers_are_refused(bad):
    with pytest.raises(ConfigError, match="ML threads"):
        check_threads(bad)


def test_predictions_with_bounded_threads_equal_the_default(bars):
    # Arrange
    idx = np.arange(120, len(bars) - 30, 3)
    model = train_meta_model(
        bars, idx, np.ones(idx.size, np.int64), TrainConfig(estimator_params={"n_estimators": 20})
    ).model
    x = np.random.default_rng(1).normal(size=(50, 18))
    # Act / Assert
    np.testing.assert_array_equal(model.predict_proba(x, threads=1), model.predict_proba(x))
