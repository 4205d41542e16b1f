"""Purged cross-validation for labels that span time (de Prado, AFML ch. 7).

Each event ``k`` has a label span ``[t0[k], t1[k]]`` in bar indices. A training event is
dropped ("purged") when its span overlaps the test fold's span ``[min t0, max t1]``, and events
starting within ``embargo`` bars after the test span are dropped too ("embargo").
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from tradeloop.core.errors import ConfigError

__all__ = ["purged_kfold", "purged_walk_forward", "spans_overlap"]


def _check(t0: np.ndarray, t1: np.ndarray, n_splits: int) -> tuple[np.ndarray, np.ndarray]:
    t0 = np.asarray(t0, dtype=np.int64)
    t1 = np.asarray(t1, dtype=np.int64)
    if t0.shape != t1.shape or np.any(t1 < t0):
        raise ConfigError("label spans need t0 <= t1, same length")
    if np.any(np.diff(t0) < 0):
        raise ConfigError("events must be sorted by t0")
    if n_splits < 2 or n_splits > t0.shape[0]:
        raise ConfigError(f"n_splits must be in [2, {t0.shape[0]}], got {n_splits}")
    return t0, t1


def _train_mask(t0: np.ndarray, t1: np.ndarray, test: np.ndarray, embargo: int) -> np.ndarray:
    lo = int(t0[test].min())
    hi = int(t1[test].max())
    overlap = (t0 <= hi) & (t1 >= lo)
    embargoed = (t0 > hi) & (t0 <= hi + embargo)
    mask = ~(overlap | embargoed)
    mask[test] = False
    return mask


def purged_kfold(
    t0: np.ndarray, t1: np.ndarray, n_splits: int = 5, embargo: int = 0
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(train_idx, test_idx)`` for contiguous test folds, purged and embargoed.

    Raises
    ------
    ConfigError
        For bad spans or split count.
    """
    t0, t1 = _check(t0, t1, n_splits)
    for test in np.array_split(np.arange(t0.shape[0]), n_splits):
        yield np.flatnonzero(_train_mask(t0, t1, test, embargo)), test


def purged_walk_forward(
    t0: np.ndarray, t1: np.ndarray, n_splits: int = 5, embargo: int = 0
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield expanding-window ``(train_idx, test_idx)``: train only on earlier events, purged.

    The events are cut into ``n_splits + 1`` blocks; fold ``k`` tests block ``k + 1``.

    Raises
    ------
    ConfigError
        For bad spans or split count.
    """
    t0, t1 = _check(t0, t1, n_splits)
    blocks = np.array_split(np.arange(t0.shape[0]), n_splits + 1)
    for k in range(1, n_splits + 1):
        test = blocks[k]
        mask = _train_mask(t0, t1, test, embargo)
        mask[test[0] :] = False
        yield np.flatnonzero(mask), test


def spans_overlap(
    t0: np.ndarray, t1: np.ndarray, train: np.ndarray, test: np.ndarray, embargo: int = 0
) -> bool:
    """Return True if any training span overlaps (or sits in the embargo of) the test span.

    Examples
    --------
    >>> t0 = np.array([0, 5, 10]); t1 = np.array([6, 9, 12])
    >>> spans_overlap(t0, t1, np.array([0]), np.array([1]))
    True
    >>> spans_overlap(t0, t1, np.array([0]), np.array([2]))
    False
    """
    lo = int(np.min(t0[test]))
    hi = int(np.max(t1[test]))
    a, b = t0[train], t1[train]
    return bool(np.any(((a <= hi) & (b >= lo)) | ((a > hi) & (a <= hi + embargo))))
