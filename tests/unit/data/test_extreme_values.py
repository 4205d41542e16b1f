"""Extreme values: the pre-filtered detector flags exactly the bars a brute-force median of
the 10 neighbours flags, on a random walk with spikes of every shape."""

from __future__ import annotations

import numpy as np

from tradeloop.data.loader import RawOhlcv
from tradeloop.data.quality import QualityThresholds, check_quality

M = 60_000_000_000


def _brute(o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, f: float) -> np.ndarray:
    n, k = c.size, 5
    out = np.zeros(n, dtype=bool)
    for i in range(n):
        around = [c[j] for j in range(i - k, i + k + 1) if j != i and 0 <= j < n]
        ref = float(np.median(around))
        top, bottom = max(o[i], h[i], lo[i], c[i]), min(o[i], h[i], lo[i], c[i])
        out[i] = top > ref * f or (bottom > 0 and bottom * f < ref)
    return out


def test_prefiltered_detector_equals_brute_force() -> None:
    # Arrange: a random walk with a 1e300 bar, a 100x spike, a 2-bar spike, a smooth 3-step
    # hill to 100x, a 0.01x dip, a high-only spike and a plain 5x spike (not extreme at 10x)
    rng = np.random.default_rng(3)
    n = 3_000
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    o = np.concatenate(([100.0], c[:-1]))
    h, lo = np.maximum(o, c) * 1.001, np.minimum(o, c) * 0.999
    c[100] = o[100] = h[100] = lo[100] = 1e300
    c[400] *= 100
    h[400] = max(h[400], c[400])
    c[700:702] *= 50
    h[700:702] = c[700:702]
    for d, m in ((0, 100), (1, 46), (2, 21.5), (3, 9.99)):
        for j in (1000 - d, 1000 + d):
            c[j] = o[j] = h[j] = lo[j] = c[990] * m
    c[1500] = lo[1500] = c[1500] * 0.01
    h[2000] = c[2000] * 30
    c[2500] *= 5
    h[2500] = max(h[2500], c[2500])
    raw = RawOhlcv("x", np.arange(n, dtype=np.int64) * M, o, h, lo, c, np.ones(n))
    # Act
    report = check_quality(raw, "1m", QualityThresholds(), outliers=False)
    # Assert
    expected = np.flatnonzero(_brute(o, h, lo, c, 10.0))
    found = next(f for f in report.findings if f.check == "extreme values")
    assert report.extreme_bars == expected.size
    assert list(found.rows) == expected.tolist()[:20]
    assert {100, 400, 700, 701, 1000, 1500, 2000} <= set(expected.tolist())
    assert 2500 not in expected
