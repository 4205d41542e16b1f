"""Return correlations: one symbol against many, the full matrix, and clusters.

Returns may hold NaN where a symbol had no bar; every pair uses only the rows where both
sides have a value (pairwise-complete Pearson correlation, like ``pandas.DataFrame.corr``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

__all__ = ["correlation_clusters", "correlation_matrix", "correlations_with"]

FloatArray = NDArray[np.float64]


def correlations_with(x: FloatArray, others: FloatArray, min_periods: int = 3) -> FloatArray:
    """Return the Pearson correlation of column ``x`` with every column of ``others``.

    ``x`` has shape ``(n,)`` and ``others`` ``(n, k)``. A pair with fewer than ``min_periods``
    common rows, or with no variance, gives NaN.

    >>> import numpy as np
    >>> correlations_with(np.array([1.0, 2.0, 3.0]), np.array([[2.0, 3.0], [4.0, 2.0], [6.0, 1.0]]))
    array([ 1., -1.])
    """
    xa = np.asarray(x, dtype=np.float64)
    ya = np.asarray(others, dtype=np.float64)
    if ya.ndim == 1:
        ya = ya[:, None]
    mask = np.isfinite(ya) & np.isfinite(xa)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        if mask.all():  # the common case: matrix products
            n = np.full(ya.shape[1], float(xa.size))
            dx1 = xa - xa.mean()
            dy = ya - ya.mean(axis=0)
            vx = np.full(ya.shape[1], float(dx1 @ dx1))
            vy = np.einsum("ij,ij->j", dy, dy)
            corr = (dx1 @ dy) / np.sqrt(vx * vy)
        else:
            n = mask.sum(axis=0).astype(np.float64)
            xs = np.where(mask, xa[:, None], 0.0)
            ys = np.where(mask, ya, 0.0)
            dx = np.where(mask, xs - xs.sum(axis=0) / n, 0.0)
            dy = np.where(mask, ys - ys.sum(axis=0) / n, 0.0)
            vx = (dx * dx).sum(axis=0)
            vy = (dy * dy).sum(axis=0)
            corr = (dx * dy).sum(axis=0) / np.sqrt(vx * vy)
    corr = np.where((n >= min_periods) & (vx > 0) & (vy > 0), corr, np.nan)
    out: FloatArray = np.clip(corr, -1.0, 1.0)
    return out


def correlation_matrix(returns: FloatArray, min_periods: int = 3) -> FloatArray:
    """Return the pairwise-complete correlation matrix of the columns of ``returns``."""
    r = np.asarray(returns, dtype=np.float64)
    k = r.shape[1]
    if np.isfinite(r).all() and r.shape[0] >= min_periods:
        with np.errstate(invalid="ignore", divide="ignore"):
            full: FloatArray = np.corrcoef(r, rowvar=False).reshape(k, k)
        return full
    out = np.full((k, k), np.nan)
    for i in range(k):
        out[i, i:] = correlations_with(r[:, i], r[:, i:], min_periods)
        out[i:, i] = out[i, i:]
    return out


def correlation_clusters(
    corr: FloatArray, symbols: Sequence[str], threshold: float = 0.7
) -> list[list[str]]:
    """Group symbols linked by a correlation above ``threshold`` (connected components).

    Symbols that correlate with none stay out; clusters are sorted largest first.

    >>> import numpy as np
    >>> c = np.array([[1, .9, 0], [.9, 1, .1], [0, .1, 1]])
    >>> correlation_clusters(c, ["A", "B", "C"])
    [['A', 'B']]
    """
    k = len(symbols)
    parent = list(range(k))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(k):
        for j in range(i + 1, k):
            value = float(corr[i, j])
            if not math.isnan(value) and value > threshold:
                parent[find(i)] = find(j)
    groups: dict[int, list[str]] = {}
    for i in range(k):
        groups.setdefault(find(i), []).append(symbols[i])
    clusters = [sorted(g) for g in groups.values() if len(g) > 1]
    return sorted(clusters, key=lambda g: (-len(g), g))
