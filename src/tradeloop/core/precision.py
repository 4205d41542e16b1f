"""Decimal precision of price series, for exact (tick-integer) arithmetic."""

from __future__ import annotations

import numpy as np

__all__ = ["price_decimals", "to_ticks"]

_MAX_DECIMALS = 10


def price_decimals(values: np.ndarray, max_decimals: int = _MAX_DECIMALS) -> int | None:
    """Return the fewest decimals that represent every value exactly, or None if > max.

    A float64 read from decimal text (``105879.75``) is within a few ulps of ``k / 10**d``;
    the check allows that rounding noise and nothing more.

    >>> price_decimals(np.array([105879.75, 1.5]))
    2
    >>> price_decimals(np.array([101.0314]))
    4
    >>> price_decimals(np.array([np.pi])) is None
    True
    """
    arr = np.asarray(values, dtype=np.float64).ravel()
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return 0
    uniq = np.unique(arr)
    # check a sample first so the common failing decimals are rejected quickly
    sample = uniq if uniq.size <= 4096 else uniq[:: max(1, uniq.size // 4096)]
    for d in range(max_decimals + 1):
        if _is_exact(sample, d) and _is_exact(uniq, d):
            return d
    return None


def _is_exact(arr: np.ndarray, decimals: int) -> bool:
    scaled = arr * (10.0**decimals)
    if np.max(np.abs(scaled)) >= 2.0**52:
        return False
    err = np.abs(scaled - np.rint(scaled))
    tol = 8.0 * np.spacing(np.abs(scaled)) + 1e-9
    return bool(np.all(err <= tol))


def to_ticks(values: np.ndarray, tick_size: float) -> np.ndarray:
    """Return ``values`` as int64 multiples of ``tick_size`` (rounded to the nearest tick).

    >>> to_ticks(np.array([1.25, 1.5]), 0.05).tolist()
    [25, 30]
    """
    if tick_size <= 0:
        raise ValueError(f"tick_size must be > 0, got {tick_size}")
    return np.rint(np.asarray(values, dtype=np.float64) / tick_size).astype(np.int64)
