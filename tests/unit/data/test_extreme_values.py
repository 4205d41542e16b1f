"""Extreme values: the pre-filtered detector flags exactly the bars a brute-force reading of
its rule flags (medians of the 10 and of the 40 neighbours), on a random walk with spikes of
every shape, and names every bar of a long bad run, not the good bars beside it."""

from __future__ import annotations

import numpy as np

from tradeloop.data.loader import RawOhlcv
from tradeloop.data.quality import QualityThresholds, check_quality

M = 60_000_000_000


def _median(c: np.ndarray, i: int, k: int) -> float:
    return float(np.median([c[j] for j in range(i - k, i + k + 1) if j != i and 0 <= j < len(c)]))


def _brute(o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, f: float) -> np.ndarray:
    """The documented rule bar by bar: off the median of the 5 closes on each side and off
    the median of the 20 on each side, or, where those two medians differ by more than
    sqrt(f), off the wider one."""
    n = c.size
    out = np.zeros(n, dtype=bool)
    for i in range(n):
        top, bottom = max(o[i], h[i], lo[i], c[i]), min(o[i], h[i], lo[i], c[i])
        near, far = _median(c, i, 5), _median(c, i, 20)

        def off(ref: float, top: float = top, bottom: float = bottom) -> bool:
            return top > ref * f or (bottom > 0 and bottom * f < ref)

        disagree = not (1 / np.sqrt(f) <= near / far <= np.sqrt(f))
        out[i] = off(far) if disagree else off(near) and off(far)
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
    assert {998, 999, 1001, 1002} <= set(expected.tolist())  # the hill's 21.5x and 46x bars
    assert 2500 not in expected


def test_a_run_of_bad_bars_longer_than_the_neighbours_is_named_bar_by_bar() -> None:
    # Arrange: a random walk with 6 consecutive bars 100x too high (more than the 5
    # neighbours on each side the median looks at), and 12 more further on
    rng = np.random.default_rng(5)
    n = 2_000
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    o = np.concatenate(([100.0], c[:-1]))
    h, lo = np.maximum(o, c) * 1.001, np.minimum(o, c) * 0.999
    for run in (range(600, 606), range(1200, 1212)):
        for j in run:
            o[j], h[j], lo[j], c[j] = o[j] * 100, h[j] * 100, lo[j] * 100, c[j] * 100
    raw = RawOhlcv("x", np.arange(n, dtype=np.int64) * M, o, h, lo, c, np.ones(n))
    # Act
    report = check_quality(raw, "1m", QualityThresholds(), outliers=False)
    # Assert: exactly the 18 bad bars, none of the good bars around them
    found = next(f for f in report.findings if f.check == "extreme values")
    assert report.extreme_bars == 18
    assert list(found.rows) == [*range(600, 606), *range(1200, 1212)][: len(found.rows)]
