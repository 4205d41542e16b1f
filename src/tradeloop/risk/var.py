"""Value at risk and conditional value at risk (expected shortfall).

Conventions: inputs are returns or P&L values (gains positive); VaR and CVaR are reported as
positive losses. At confidence ``level`` (0.99):

* historical VaR is ``-quantile(x, 1 - level)`` with numpy's default linear interpolation;
  historical CVaR is the mean loss of the observations at or beyond that VaR;
* parametric (normal) VaR is ``z * sigma - mu`` and CVaR ``sigma * pdf(z) / (1 - level) - mu``
  with ``z = Phi^-1(level)``, ``mu`` the mean and ``sigma`` the sample standard deviation
  (``ddof=1``).

Portfolio VaR uses the P&L each bar of the history would have given the current positions:
``pnl_t = sum_i notional_i * r_{t,i}`` (missing returns count as 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist

import numpy as np
from numpy.typing import NDArray

from tradeloop.core.errors import ConfigError

__all__ = [
    "VarEstimate",
    "historical_cvar",
    "historical_var",
    "parametric_cvar",
    "parametric_var",
    "portfolio_pnl",
    "var_estimates",
]

FloatArray = NDArray[np.float64]

_STD_NORMAL = NormalDist()


@lru_cache(maxsize=64)
def _z(level: float) -> float:
    if not (0.0 < level < 1.0):
        raise ConfigError(f"VaR level must be in (0, 1), got {level}")
    return _STD_NORMAL.inv_cdf(level)


def _finite(values: FloatArray | list[float]) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ConfigError(f"VaR needs a 1-d series, got shape {arr.shape}")
    mask = np.isfinite(arr)
    return arr if mask.all() else arr[mask]


def historical_var(values: FloatArray | list[float], level: float = 0.99) -> float:
    """Return the historical VaR of ``values`` at ``level`` as a positive loss.

    NaNs are ignored; an empty series gives NaN.

    >>> round(historical_var([-3.0, -1.0, 0.0, 1.0, 2.0], 0.75), 6)
    1.0
    """
    _z(level)
    x = _finite(values)
    if x.size == 0:
        return math.nan
    return -_quantile(x, 1.0 - level)


def _quantile(x: FloatArray, q: float) -> float:
    """numpy's default (linear) quantile, from a partial sort: O(n) instead of a full one."""
    h = (x.size - 1) * q
    lo = math.floor(h)
    hi = min(lo + 1, x.size - 1)
    part = np.partition(x, (lo, hi))
    a, b = float(part[lo]), float(part[hi])
    t = h - lo
    # numpy's _lerp, written the same way so results agree to the last bit
    return a + (b - a) * t if t < 0.5 else b - (b - a) * (1.0 - t)


def historical_cvar(values: FloatArray | list[float], level: float = 0.99) -> float:
    """Return the historical CVaR: the mean loss of observations at or beyond the VaR.

    >>> historical_cvar([-3.0, -1.0, 0.0, 1.0, 2.0], 0.75)
    2.0
    """
    x = _finite(values)
    if x.size == 0:
        return math.nan
    var = historical_var(x, level)
    tail = x[x <= -var]
    return -float(tail.mean()) if tail.size else var


def parametric_var(mu: float, sigma: float, level: float = 0.99) -> float:
    """Return the normal VaR ``z * sigma - mu`` of a distribution with mean ``mu``.

    >>> round(parametric_var(0.0, 1.0, 0.975), 4)
    1.96
    """
    return _z(level) * sigma - mu


def parametric_cvar(mu: float, sigma: float, level: float = 0.99) -> float:
    """Return the normal CVaR ``sigma * pdf(z) / (1 - level) - mu``.

    >>> round(parametric_cvar(0.0, 1.0, 0.975), 4)
    2.3378
    """
    z = _z(level)
    return sigma * _STD_NORMAL.pdf(z) / (1.0 - level) - mu


def portfolio_pnl(returns: FloatArray, notionals: FloatArray) -> FloatArray:
    """Return the P&L per row of ``returns`` (bars x symbols) for signed ``notionals``.

    Missing (NaN) returns count as no move; rows where every return is missing (no bar of
    any symbol) are dropped.
    """
    r = np.asarray(returns, dtype=np.float64)
    w = np.asarray(notionals, dtype=np.float64)
    if r.ndim != 2 or r.shape[1] != w.size:
        raise ConfigError(f"returns {r.shape} do not match {w.size} notionals")
    finite = np.isfinite(r)
    if not finite.all():
        r = np.where(finite, r, 0.0)[finite.any(axis=1)]
    out: FloatArray = r @ w
    return out


@dataclass(frozen=True, slots=True)
class VarEstimate:
    """VaR and CVaR at one level, historical and parametric, as positive losses."""

    level: float
    historical_var: float
    historical_cvar: float
    parametric_var: float
    parametric_cvar: float

    def as_dict(self) -> dict[str, float]:
        """Return the estimate as a flat dict."""
        return {
            "level": self.level,
            "historical_var": self.historical_var,
            "historical_cvar": self.historical_cvar,
            "parametric_var": self.parametric_var,
            "parametric_cvar": self.parametric_cvar,
        }


def var_estimates(
    values: FloatArray | list[float], levels: tuple[float, ...] = (0.95, 0.99), scale: float = 1.0
) -> list[VarEstimate]:
    """Return historical and parametric VaR/CVaR of ``values`` at every level.

    ``scale`` multiplies every figure (square-root-of-time scaling to a longer horizon).
    """
    x = _finite(values)
    out = []
    if x.size < 2:
        return [VarEstimate(lv, math.nan, math.nan, math.nan, math.nan) for lv in levels]
    mu = float(x.mean())
    sigma = float(x.std(ddof=1))
    for level in levels:
        out.append(
            VarEstimate(
                level,
                scale * historical_var(x, level),
                scale * historical_cvar(x, level),
                scale * parametric_var(mu, sigma, level),
                scale * parametric_cvar(mu, sigma, level),
            )
        )
    return out
