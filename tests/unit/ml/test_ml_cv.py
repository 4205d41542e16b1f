"""Purged walk-forward and purged k-fold leave no overlap between train and test spans."""

from __future__ import annotations

import numpy as np
import pytest

from tradeloop.core.errors import ConfigError
from tradeloop.ml.cv import purged_kfold, purged_walk_forward, spans_overlap


def _spans(n: int = 400, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t0 = np.sort(rng.choice(5000, n, replace=False)).astype(np.int64)
    t1 = t0 + rng.integers(1, 60, n)
    return t0, t1


@pytest.mark.parametrize("split", [purged_kfold, purged_walk_forward])
@pytest.mark.parametrize("embargo", [0, 25])
def test_purged_cv_train_spans_never_overlap_test_spans(split, embargo):
    # Arrange
    t0, t1 = _spans()
    # Act
    folds = list(split(t0, t1, 5, embargo))
    # Assert: checked pairwise, not with the function under test
    assert len(folds) == 5
    for train, test in folds:
        assert len(train) > 0
        assert len(np.intersect1d(train, test)) == 0
        lo, hi = t0[test].min(), t1[test].max()
        for i in train:
            assert t1[i] < lo or t0[i] > hi + embargo
        assert not spans_overlap(t0, t1, train, test, embargo)


def test_purged_walk_forward_trains_only_on_the_past():
    t0, t1 = _spans()
    for train, test in purged_walk_forward(t0, t1, 4):
        assert t1[train].max() < t0[test].min()


def test_purged_kfold_removes_the_overlapping_neighbours():
    # spans all 10 bars long, events every 5 bars: each test fold loses neighbours both sides
    t0 = np.arange(0, 500, 5, dtype=np.int64)
    t1 = t0 + 10
    train, test = list(purged_kfold(t0, t1, 5))[2]
    unpurged = np.setdiff1d(np.arange(100), test)
    assert len(train) < len(unpurged)
    assert not spans_overlap(t0, t1, train, test)


def test_purged_cv_rejects_unsorted_events():
    with pytest.raises(ConfigError):
        list(purged_kfold(np.array([5, 1, 3]), np.array([6, 2, 4]), 2))
