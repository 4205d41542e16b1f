"""VPIN: volume-synchronized probability of informed trading.

Volume is cut into equal buckets of ``bucket_volume``; each bucket's buy and sell volume come
either from the trades' aggressor side (:func:`vpin_from_trades`) or from bulk volume
classification of bars (:func:`bvc_buy_fraction`, :func:`vpin_from_bars`): a bar's buy share is
``Phi(dp / sigma_dp)``. VPIN is the mean of ``|V_buy - V_sell| / bucket_volume`` over the last
``n_buckets`` completed buckets. :func:`windowed_imbalance` is the bar-window variant used as a
feature: it depends only on the last ``window`` bars, so batch and online agree exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from tradeloop.core.errors import ConfigError, DataError
from tradeloop.core.extras import needs_extra
from tradeloop.ml._kernels import rolling_abs_ratio_nb, rolling_std_nb

__all__ = [
    "VpinResult",
    "bvc_buy_fraction",
    "vpin_from_bars",
    "vpin_from_trades",
    "windowed_imbalance",
]


@dataclass(frozen=True, slots=True)
class VpinResult:
    """VPIN per input row and the completed buckets.

    Attributes
    ----------
    vpin
        VPIN known after each input row (NaN until ``n_buckets`` buckets are complete).
    bucket_buy, bucket_sell
        Buy and sell volume of each completed bucket.
    bucket_end
        Input row index where each bucket completed.
    """

    vpin: np.ndarray
    bucket_buy: np.ndarray
    bucket_sell: np.ndarray
    bucket_end: np.ndarray


def bvc_buy_fraction(close: np.ndarray, window: int = 50) -> np.ndarray:
    """Return each bar's buy-volume fraction by bulk volume classification.

    ``Phi(dp / sigma)`` where ``dp`` is the close-to-close change and ``sigma`` the standard
    deviation of ``dp`` over the last ``window`` bars (causal); 0.5 where undefined.

    Raises
    ------
    ConfigError
        If ``window`` < 2.
    """
    if window < 2:
        raise ConfigError(f"BVC window must be >= 2, got {window}")
    close = np.asarray(close, dtype=np.float64)
    dp = np.zeros(close.shape[0])
    dp[1:] = np.diff(close)
    sigma = rolling_std_nb(dp, window)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(sigma > 0, dp / sigma, 0.0)
    z[~np.isfinite(z)] = 0.0
    with needs_extra("ml", "order-flow toxicity (BVC)"):
        from scipy.special import ndtr
    return np.asarray(ndtr(z), dtype=np.float64)


def windowed_imbalance(close: np.ndarray, volume: np.ndarray, window: int = 50) -> np.ndarray:
    """Return ``|sum(V_buy - V_sell)| / sum(V)`` over the last ``window`` bars (BVC split).

    A time-bucketed VPIN proxy in [0, 1] (NaN during warm-up or with zero volume).
    """
    volume = np.asarray(volume, dtype=np.float64)
    buy = bvc_buy_fraction(close, window) * volume
    signed = 2.0 * buy - volume
    out = rolling_abs_ratio_nb(signed, volume, window)
    out[: 2 * window - 2] = np.nan  # sigma itself needs a window
    return out


@njit(cache=True)
def _bucket_nb(
    buy: np.ndarray, sell: np.ndarray, bucket: float, n_buckets: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover - numba
    n = buy.shape[0]
    cap = int((buy.sum() + sell.sum()) / bucket) + 2
    bb = np.zeros(cap)
    bs = np.zeros(cap)
    be = np.zeros(cap, np.int64)
    vpin = np.full(n, np.nan)
    k = 0
    fill_b = 0.0
    fill_s = 0.0
    roll = 0.0
    for i in range(n):
        rb = buy[i]
        rs = sell[i]
        while rb + rs > 0.0:
            room = bucket - fill_b - fill_s
            total = rb + rs
            take = min(room, total)
            fb = rb * take / total
            fs = take - fb
            fill_b += fb
            fill_s += fs
            rb -= fb
            rs -= fs
            if rb < 1e-15:
                rb = 0.0
            if rs < 1e-15:
                rs = 0.0
            if fill_b + fill_s >= bucket * (1.0 - 1e-12):
                bb[k] = fill_b
                bs[k] = fill_s
                be[k] = i
                roll += abs(fill_b - fill_s)
                if k >= n_buckets:
                    roll -= abs(bb[k - n_buckets] - bs[k - n_buckets])
                k += 1
                fill_b = 0.0
                fill_s = 0.0
        if k >= n_buckets:
            vpin[i] = roll / (n_buckets * bucket)
    return vpin, bb[:k], bs[:k], be[:k]


def _vpin(buy: np.ndarray, sell: np.ndarray, bucket_volume: float, n_buckets: int) -> VpinResult:
    if not (bucket_volume > 0) or n_buckets < 1:
        raise ConfigError(
            f"bucket_volume must be > 0 and n_buckets >= 1, got {bucket_volume}, {n_buckets}"
        )
    if np.any(~np.isfinite(buy)) or np.any(buy < 0) or np.any(sell < 0):
        raise DataError("VPIN volumes must be finite and non-negative")
    vpin, bb, bs, be = _bucket_nb(buy, sell, float(bucket_volume), int(n_buckets))
    return VpinResult(vpin, bb, bs, be)


def vpin_from_bars(
    close: np.ndarray,
    volume: np.ndarray,
    bucket_volume: float | None = None,
    n_buckets: int = 50,
    sigma_window: int = 50,
) -> VpinResult:
    """Return VPIN of bars with bulk volume classification.

    ``bucket_volume`` defaults to the mean bar volume (about one bucket per bar).

    Raises
    ------
    ConfigError
        For a non-positive bucket size or bucket count.
    DataError
        For negative or non-finite volume.
    """
    volume = np.asarray(volume, dtype=np.float64)
    if bucket_volume is None:
        bucket_volume = float(volume.mean()) if volume.size else 1.0
    frac = bvc_buy_fraction(close, sigma_window)
    return _vpin(frac * volume, (1.0 - frac) * volume, bucket_volume, n_buckets)


def vpin_from_trades(
    amount: np.ndarray,
    is_buy: np.ndarray,
    bucket_volume: float,
    n_buckets: int = 50,
) -> VpinResult:
    """Return VPIN of trades whose aggressor (taker) side is known.

    Parameters
    ----------
    amount
        Trade sizes in the base asset.
    is_buy
        True where the taker bought.
    bucket_volume
        Volume per bucket (base asset).
    n_buckets
        Buckets averaged.

    Raises
    ------
    ConfigError
        For a non-positive bucket size or bucket count, or mismatched lengths.
    DataError
        For negative or non-finite amounts.
    """
    amount = np.asarray(amount, dtype=np.float64)
    side = np.asarray(is_buy, dtype=bool)
    if side.shape != amount.shape:
        raise ConfigError("amount and is_buy must have the same length")
    return _vpin(np.where(side, amount, 0.0), np.where(side, 0.0, amount), bucket_volume, n_buckets)
