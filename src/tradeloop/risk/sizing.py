"""Position sizing rules as pure functions: fixed fraction, risk per trade, volatility target,
fractional Kelly, and the confidence multiplier.

Sizes are notionals in quote currency unless a function says it returns a quantity.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
from numpy.typing import NDArray

from tradeloop.core.errors import ConfigError
from tradeloop.core.position import Trade
from tradeloop.indicators import atr

__all__ = [
    "apply_confidence",
    "atr_volatility",
    "fixed_fraction_notional",
    "kelly_fraction",
    "kelly_from_trades",
    "periods_per_year",
    "realized_volatility",
    "risk_per_trade_quantity",
    "vol_target_notional",
]

FloatArray = NDArray[np.float64]
_NS_PER_YEAR = 365 * 24 * 3600 * 1_000_000_000


def fixed_fraction_notional(equity: float, fraction: float) -> float:
    """Return ``fraction`` of ``equity``.

    >>> fixed_fraction_notional(10_000.0, 0.1)
    1000.0
    """
    return fraction * equity


def risk_per_trade_quantity(
    equity: float, risk: float, price: float, stop: float, slippage: float = 0.0
) -> float:
    """Return the quantity that loses ``risk`` of ``equity`` if the stop fills.

    The loss per unit is ``|price - stop| + slippage * stop`` (slippage as a fraction).

    Raises
    ------
    ConfigError
        If the stop equals the price (no distance).

    >>> risk_per_trade_quantity(10_000.0, 0.01, 100.0, 98.0)
    50.0
    """
    per_unit = abs(price - stop) + slippage * stop
    if not per_unit > 0:
        raise ConfigError(f"stop {stop} is no distance from the price {price}")
    return risk * equity / per_unit


def periods_per_year(bar_ns: int) -> float:
    """Return the number of bars of ``bar_ns`` in a 365-day year.

    >>> periods_per_year(86_400_000_000_000)
    365.0
    """
    if bar_ns <= 0:
        raise ConfigError(f"bar length must be > 0 ns, got {bar_ns}")
    return _NS_PER_YEAR / bar_ns


def realized_volatility(returns: FloatArray, periods: float) -> float:
    """Return the annualized standard deviation (``ddof=1``) of per-bar ``returns``.

    NaNs are ignored; fewer than two returns give NaN.
    """
    r = np.asarray(returns, dtype=np.float64)
    r = r[np.isfinite(r)]
    if r.size < 2:
        return math.nan
    return float(r.std(ddof=1)) * math.sqrt(periods)


def atr_volatility(
    high: FloatArray, low: FloatArray, close: FloatArray, n: int, periods: float
) -> float:
    """Return the latest ATR(``n``) as a fraction of the close, annualized.

    NaN until there are ``n`` bars.
    """
    if len(close) < n:
        return math.nan
    values = atr(
        np.asarray(high, dtype=np.float64),
        np.asarray(low, dtype=np.float64),
        np.asarray(close, dtype=np.float64),
        n,
    )
    last = float(values[-1])
    return last / float(close[-1]) * math.sqrt(periods) if last == last else math.nan


def vol_target_notional(equity: float, target_vol: float, asset_vol: float) -> float:
    """Return the notional whose volatility is ``target_vol`` of equity.

    ``equity * target_vol / asset_vol``; 0 when the asset's volatility is unknown or zero.

    >>> vol_target_notional(10_000.0, 0.2, 0.8)
    2500.0
    """
    if not (asset_vol > 0 and math.isfinite(asset_vol)):
        return 0.0
    return equity * target_vol / asset_vol


def kelly_fraction(win_rate: float, payoff: float) -> float:
    """Return the Kelly fraction ``p - (1 - p) / b`` for win rate ``p`` and payoff ``b``.

    ``b`` is the average win over the average loss. Negative edges give 0.

    >>> round(kelly_fraction(0.6, 1.0), 12)
    0.2
    """
    if not (0.0 <= win_rate <= 1.0):
        raise ConfigError(f"win rate must be in [0, 1], got {win_rate}")
    if not payoff > 0:
        return 0.0
    return max(0.0, win_rate - (1.0 - win_rate) / payoff)


def kelly_from_trades(trades: Iterable[Trade], min_trades: int = 20) -> float | None:
    """Return the Kelly fraction from closed trades' win rate and payoff (on ``pnl_pct``).

    None when there are fewer than ``min_trades`` closed trades, or no losing trade.
    """
    wins: list[float] = []
    losses: list[float] = []
    for trade in trades:
        if not trade.is_closed:
            continue
        (wins if trade.pnl > 0 else losses).append(trade.pnl_pct)
    n = len(wins) + len(losses)
    if n < min_trades or not losses:
        return None
    if not wins:
        return 0.0
    payoff = (sum(wins) / len(wins)) / abs(sum(losses) / len(losses))
    return kelly_fraction(len(wins) / n, payoff)


def apply_confidence(size: float, confidence: float | None) -> float:
    """Return ``size`` scaled by ``confidence`` in [0, 1] (unchanged when None).

    >>> apply_confidence(1_000.0, 0.25)
    250.0
    """
    if confidence is None:
        return size
    if not (0.0 <= confidence <= 1.0):
        raise ConfigError(f"confidence must be in [0, 1], got {confidence}")
    return size * confidence
