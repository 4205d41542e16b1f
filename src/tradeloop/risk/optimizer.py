"""Portfolio optimizer: minimum variance and maximum Sharpe with weight bounds and a gross
exposure cap.

Why scipy (SLSQP) rather than cvxpy or riskfolio-lib
----------------------------------------------------
* Both problems are small and dense (one weight per symbol, tens to a few hundred symbols);
  SLSQP solves them in milliseconds from the analytic gradients given here.
* Maximum Sharpe is a ratio, not a convex program as written; cvxpy would need the
  Cornuejols-Tutuncu change of variables, which breaks when bounds and a gross cap must hold
  on the *original* weights. SLSQP takes the ratio and those constraints directly.
* scipy is already installed with the numerical stack we use and ships wheels everywhere;
  cvxpy brings several native solvers, and riskfolio-lib pulls in cvxpy plus a large
  dependency tree, for features (risk parity, CVaR optimisation) this issue does not need.

Shorts are handled by splitting ``w = p - n`` with ``p, n >= 0``, which makes the gross
exposure ``sum(p + n)`` a smooth linear constraint. Weights sum to ``net`` (1 = fully
invested). Solutions are cached by the inputs' bytes, so repeating a solve in the same bar
costs a dictionary lookup.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from tradeloop.core.errors import ConfigError

__all__ = ["OptimizationResult", "PortfolioOptimizer", "max_sharpe_weights", "min_variance_weights"]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class OptimizationResult:
    """Weights (fractions of equity, signed) and the solution's statistics."""

    weights: FloatArray
    volatility: float
    expected_return: float
    sharpe: float
    success: bool
    message: str


def _check(cov: FloatArray, lower: float, upper: float, gross: float, net: float) -> int:
    c = np.asarray(cov, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] != c.shape[1] or c.shape[0] == 0:
        raise ConfigError(f"covariance must be a square matrix, got shape {c.shape}")
    if not np.isfinite(c).all():
        raise ConfigError("covariance holds NaN or inf")
    k = int(c.shape[0])
    if not lower <= upper:
        raise ConfigError(f"weight bounds are empty: [{lower}, {upper}]")
    if not (lower * k <= net <= upper * k):
        raise ConfigError(f"weights in [{lower}, {upper}] cannot sum to {net} over {k} assets")
    if not gross >= abs(net):
        raise ConfigError(f"gross cap {gross} is below the net exposure {net}")
    return k


def _solve(
    objective: str,
    cov: FloatArray,
    mu: FloatArray | None,
    lower: float,
    upper: float,
    gross: float,
    net: float,
    risk_free: float,
) -> OptimizationResult:
    from scipy.optimize import minimize  # imported lazily: only optimizer users pay for it

    c_in = np.asarray(cov, dtype=np.float64)
    k = _check(c_in, lower, upper, gross, net)
    m_in = np.zeros(k) if mu is None else np.asarray(mu, dtype=np.float64)
    # Solve on a covariance scaled to unit mean variance: the optimal weights do not change,
    # and SLSQP's tolerances then mean the same for daily and minute returns.
    scale = float(np.mean(np.diag(c_in)))
    scale = scale if scale > 0 else 1.0
    c = c_in / scale
    m = m_in / math.sqrt(scale)
    risk_free = risk_free / math.sqrt(scale)
    if lower < 0 and gross <= abs(net):
        # a gross cap equal to the net exposure leaves no room for the opposite side
        lower, upper = (0.0, upper) if net >= 0 else (lower, min(upper, 0.0))
    shorts = lower < 0
    size = 2 * k if shorts else k

    def weights(x: FloatArray) -> FloatArray:
        return x[:k] - x[k:] if shorts else x

    def lift(g: FloatArray) -> FloatArray:  # gradient in w -> gradient in x
        return np.concatenate((g, -g)) if shorts else g

    if objective == "min_variance":

        def fun(x: FloatArray) -> tuple[float, FloatArray]:
            w = weights(x)
            cw = c @ w
            return float(w @ cw), lift(2.0 * cw)

    else:

        def fun(x: FloatArray) -> tuple[float, FloatArray]:
            w = weights(x)
            cw = c @ w
            var = max(float(w @ cw), 1e-18)
            vol = math.sqrt(var)
            excess = float(m @ w) - risk_free
            grad = -(m * vol - excess * cw / vol) / var
            return -excess / vol, lift(grad)

    bounds = (
        [(0.0, upper if upper > 0 else 0.0)] * k + [(0.0, -lower)] * k
        if shorts
        else [(lower, upper)] * k
    )
    ones = np.ones(size)
    sign = np.concatenate((np.ones(k), -np.ones(k))) if shorts else ones
    constraints = [{"type": "eq", "fun": lambda x: float(sign @ x) - net, "jac": lambda x: sign}]
    # Only constraints that can bind are passed: SLSQP (scipy >= 1.17) stops at a vertex
    # when an active constraint's gradient repeats another's. Without shorts the gross sum
    # equals the net sum; with shorts the bounds on p and n already keep each weight inside
    # [lower, upper], except an all-short upper bound.
    if shorts and gross > abs(net):
        constraints.append(
            {"type": "ineq", "fun": lambda x: gross - float(ones @ x), "jac": lambda x: -ones}
        )
    if shorts and upper < 0:
        eye = np.hstack((np.eye(k), -np.eye(k)))
        constraints.append(
            {"type": "ineq", "fun": lambda x: upper - eye @ x, "jac": lambda x: -eye}
        )
    start_w = np.clip(np.full(k, net / k), lower, upper)
    x0 = np.concatenate((np.maximum(start_w, 0), np.maximum(-start_w, 0))) if shorts else start_w
    res = minimize(
        fun,
        x0,
        jac=True,
        method="SLSQP",
        bounds=bounds,
        constraints=constraints,
        options={"maxiter": 300, "ftol": 1e-10},
    )
    w = weights(np.asarray(res.x, dtype=np.float64))
    w[np.abs(w) < 1e-12] = 0.0
    vol = math.sqrt(max(float(w @ c_in @ w), 0.0))
    ret = float(m_in @ w)
    sharpe = (ret - risk_free * math.sqrt(scale)) / vol if vol > 0 else math.nan
    return OptimizationResult(w, vol, ret, sharpe, bool(res.success), str(res.message))


def min_variance_weights(
    cov: FloatArray,
    *,
    lower: float = 0.0,
    upper: float = 1.0,
    gross: float = 1.0,
    net: float = 1.0,
) -> OptimizationResult:
    """Return the minimum-variance weights summing to ``net``.

    Parameters
    ----------
    cov
        Covariance matrix of the assets' returns.
    lower, upper
        Bounds of every weight (``lower < 0`` allows shorts).
    gross
        Cap on the sum of absolute weights.
    net
        Sum of the weights.

    Raises
    ------
    ConfigError
        For a malformed covariance matrix or infeasible bounds.
    """
    return _solve("min_variance", cov, None, lower, upper, gross, net, 0.0)


def max_sharpe_weights(
    mu: FloatArray,
    cov: FloatArray,
    *,
    risk_free: float = 0.0,
    lower: float = 0.0,
    upper: float = 1.0,
    gross: float = 1.0,
    net: float = 1.0,
) -> OptimizationResult:
    """Return the weights with the highest ``(mu @ w - risk_free) / sqrt(w @ cov @ w)``.

    Parameters are those of :func:`min_variance_weights` plus the expected returns ``mu``
    and the risk-free return per period.

    Raises
    ------
    ConfigError
        For a malformed covariance matrix or infeasible bounds.
    """
    m = np.asarray(mu, dtype=np.float64)
    if m.shape != (np.asarray(cov).shape[0],):
        raise ConfigError(f"expected returns {m.shape} do not match the covariance")
    return _solve("max_sharpe", cov, m, lower, upper, gross, net, risk_free)


class PortfolioOptimizer:
    """Solves with fixed bounds and caches the last solutions by their inputs.

    Parameters
    ----------
    objective
        ``min_variance`` or ``max_sharpe``.
    lower, upper, gross, net
        As in :func:`min_variance_weights`.
    cache_size
        Solutions kept.
    """

    def __init__(
        self,
        objective: str = "min_variance",
        *,
        lower: float = 0.0,
        upper: float = 1.0,
        gross: float = 1.0,
        net: float = 1.0,
        cache_size: int = 64,
    ) -> None:
        if objective not in ("min_variance", "max_sharpe"):
            raise ConfigError(f"objective must be min_variance or max_sharpe, got {objective!r}")
        self.objective = objective
        self.lower, self.upper, self.gross, self.net = lower, upper, gross, net
        self._cache: OrderedDict[bytes, OptimizationResult] = OrderedDict()
        self._cache_size = cache_size

    def solve(self, returns: FloatArray) -> OptimizationResult:
        """Return the optimal weights for the columns of ``returns`` (bars x assets).

        Rows with a NaN are dropped; the sample mean and covariance are the inputs.

        Raises
        ------
        ConfigError
            With fewer than two complete rows.
        """
        r = np.asarray(returns, dtype=np.float64)
        r = r[np.isfinite(r).all(axis=1)]
        if r.shape[0] < 2:
            raise ConfigError("the optimizer needs at least two complete rows of returns")
        key = hashlib.blake2b(r.tobytes() + repr(r.shape).encode(), digest_size=16).digest()
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        cov = np.atleast_2d(np.cov(r, rowvar=False))
        bounds = {"lower": self.lower, "upper": self.upper, "gross": self.gross, "net": self.net}
        if self.objective == "min_variance":
            result = min_variance_weights(cov, **bounds)
        else:
            result = max_sharpe_weights(r.mean(axis=0), cov, **bounds)
        self._cache[key] = result
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return result
