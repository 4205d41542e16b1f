"""Numba kernels recomputing each window from scratch, so a value never depends on where the
series started (batch and online agree bit for bit)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def rolling_std_nb(x: np.ndarray, n: int) -> np.ndarray:  # pragma: no cover - numba
    """Sample std (ddof=1) of each window ``x[i-n+1 : i+1]``; NaN where it holds a NaN."""
    out = np.full(x.shape[0], np.nan)
    for i in range(n - 1, x.shape[0]):
        s = 0.0
        for j in range(i - n + 1, i + 1):
            s += x[j]
        m = s / n
        ss = 0.0
        for j in range(i - n + 1, i + 1):
            d = x[j] - m
            ss += d * d
        out[i] = np.sqrt(ss / (n - 1))
    return out


@njit(cache=True)
def rolling_abs_ratio_nb(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:  # pragma: no cover
    """``|sum(a)| / sum(b)`` over each window; NaN when the b-sum is not positive."""
    out = np.full(a.shape[0], np.nan)
    for i in range(n - 1, a.shape[0]):
        sa = 0.0
        sb = 0.0
        for j in range(i - n + 1, i + 1):
            sa += a[j]
            sb += b[j]
        if sb > 0.0:
            out[i] = abs(sa) / sb
    return out
