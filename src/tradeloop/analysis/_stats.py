"""Distribution functions the validation needs, without importing scipy.

``scipy.stats`` takes most of a second to import; a backtest validates every run, so the two
functions it needs are computed here (and cross-checked against scipy in the tests).
"""

from __future__ import annotations

import math
from statistics import NormalDist

__all__ = ["norm_cdf", "norm_ppf", "t_sf"]

_NORMAL = NormalDist()


def norm_cdf(x: float) -> float:
    """Standard normal cumulative distribution function.

    >>> round(norm_cdf(1.959963984540054), 6)
    0.975
    """
    if math.isnan(x):
        return math.nan
    return _NORMAL.cdf(x)


def norm_ppf(p: float) -> float:
    """Inverse of :func:`norm_cdf` (``-inf``/``inf`` at 0 and 1).

    >>> round(norm_ppf(0.975), 6)
    1.959964
    """
    if p <= 0.0:
        return -math.inf
    if p >= 1.0:
        return math.inf
    return _NORMAL.inv_cdf(p)


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz's method)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_sf(t: float, df: float) -> float:
    """Survival function P(T > t) of Student's t distribution with ``df`` degrees of freedom.

    >>> round(t_sf(2.0, 10), 6)
    0.036694
    >>> t_sf(0.0, 5)
    0.5
    """
    if math.isnan(t) or df <= 0:
        return math.nan
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    tail = 0.5 * _betainc(0.5 * df, 0.5, df / (df + t * t))
    return tail if t > 0 else 1.0 - tail
