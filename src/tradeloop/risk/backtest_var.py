"""Risk backtest: does the VaR model hold on a real price history? (seed 003, TASK_2.11)

Each bar's VaR is forecast from the ``window`` returns before it (no lookahead); a breach is a
return below minus that VaR. The Kupiec proportion-of-failures test compares the breach count
``x`` in ``T`` forecasts with the expected rate ``p = 1 - level``:

``LR = -2 ln[(1-p)^(T-x) p^x] + 2 ln[(1-x/T)^(T-x) (x/T)^x]``, chi-square with one degree of
freedom under a calibrated model; its p-value is ``erfc(sqrt(LR / 2))``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

from tradeloop.core.errors import ConfigError
from tradeloop.risk.var import _z

__all__ = ["KupiecResult", "VarBacktestResult", "kupiec_pof", "rolling_var", "var_backtest"]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class KupiecResult:
    """Kupiec POF test of ``breaches`` in ``observations`` at VaR ``level``."""

    observations: int
    breaches: int
    level: float
    lr: float
    p_value: float

    @property
    def expected_rate(self) -> float:
        """The breach rate a calibrated model gives: ``1 - level``."""
        return 1.0 - self.level

    @property
    def breach_rate(self) -> float:
        """Observed breaches / observations."""
        return self.breaches / self.observations if self.observations else math.nan

    def rejects(self, significance: float = 0.05) -> bool:
        """True when the test rejects calibration at ``significance``."""
        return self.p_value < significance


def _xlogy(x: float, y: float) -> float:
    return 0.0 if x == 0 else x * math.log(y)


def kupiec_pof(breaches: int, observations: int, level: float) -> KupiecResult:
    """Return the Kupiec proportion-of-failures statistic and p-value.

    >>> round(kupiec_pof(10, 1000, 0.99).lr, 12)
    0.0
    >>> round(kupiec_pof(20, 1000, 0.99).lr, 4)
    7.8272

    Raises
    ------
    ConfigError
        For no observations, a breach count outside ``[0, observations]`` or a bad level.
    """
    if observations <= 0 or not (0 <= breaches <= observations):
        raise ConfigError(f"need 0 <= breaches <= observations > 0, got {breaches}/{observations}")
    if not (0.0 < level < 1.0):
        raise ConfigError(f"level must be in (0, 1), got {level}")
    p = 1.0 - level
    t, x = observations, breaches
    rate = x / t
    log_null = _xlogy(t - x, 1.0 - p) + _xlogy(x, p)
    log_alt = _xlogy(t - x, 1.0 - rate) + _xlogy(x, rate)
    lr = max(0.0, -2.0 * (log_null - log_alt))
    return KupiecResult(t, x, level, lr, math.erfc(math.sqrt(lr / 2.0)))


def rolling_var(
    returns: FloatArray, level: float = 0.99, window: int = 500, method: str = "historical"
) -> FloatArray:
    """Return the VaR forecast for every bar from the ``window`` returns before it.

    Element ``t`` is NaN for ``t < window``. Historical VaR is ``-quantile(past, 1 - level)``
    (numpy's linear interpolation); parametric is ``z * std(past, ddof=1) - mean(past)``.

    Raises
    ------
    ConfigError
        For a window under 2, an unknown method or a non-finite return.
    """
    r = np.asarray(returns, dtype=np.float64)
    if window < 2:
        raise ConfigError(f"window must be >= 2, got {window}")
    if not np.isfinite(r).all():
        raise ConfigError("returns must be finite")
    out = np.full(r.size, np.nan)
    if r.size <= window:
        return out
    if method == "historical":
        views = sliding_window_view(r[:-1], window)  # row j: returns before bar j + window
        step = max(1, 4_000_000 // window)
        for lo in range(0, views.shape[0], step):
            block = views[lo : lo + step]
            out[window + lo : window + lo + block.shape[0]] = -np.quantile(
                block, 1.0 - level, axis=1
            )
    elif method == "parametric":
        views = sliding_window_view(r[:-1], window)
        mu = views.mean(axis=1)
        sd = views.std(axis=1, ddof=1)
        out[window:] = _z(level) * sd - mu
    else:
        raise ConfigError(f"method must be historical or parametric, got {method!r}")
    return out


@dataclass(frozen=True, slots=True)
class VarBacktestResult:
    """Breaches of a rolling VaR forecast and the Kupiec test on them."""

    method: str
    window: int
    kupiec: KupiecResult
    breach_index: NDArray[np.int64]

    def as_dict(self) -> dict[str, float | int | str | bool]:
        """Return the figures as a flat dict."""
        k = self.kupiec
        return {
            "method": self.method,
            "window": self.window,
            "level": k.level,
            "observations": k.observations,
            "breaches": k.breaches,
            "breach_rate": k.breach_rate,
            "expected_rate": k.expected_rate,
            "kupiec_lr": k.lr,
            "kupiec_p_value": k.p_value,
            "rejects_at_5pct": k.rejects(0.05),
        }


def var_backtest(
    returns: FloatArray, level: float = 0.99, window: int = 500, method: str = "historical"
) -> VarBacktestResult:
    """Count breaches of the rolling VaR over ``returns`` and run the Kupiec test.

    Raises
    ------
    ConfigError
        With no more returns than ``window``, or as :func:`rolling_var`.
    """
    r = np.asarray(returns, dtype=np.float64)
    if r.size <= window:
        raise ConfigError(f"need more than {window} returns for a VaR backtest, got {r.size}")
    var = rolling_var(r, level, window, method)
    tested = r[window:]
    breach = tested < -var[window:]
    idx = np.flatnonzero(breach) + window
    return VarBacktestResult(
        method, window, kupiec_pof(int(breach.sum()), int(tested.size), level), idx
    )
