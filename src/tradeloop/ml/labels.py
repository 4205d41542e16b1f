"""Triple-barrier labels and meta-labels (numba kernels, vectorized wrappers).

A long or short trade entered at the close of bar ``i`` has three barriers: a profit barrier
``pt * vol[i]`` away from the entry price, a stop barrier ``sl * vol[i]`` away on the other
side, and a vertical barrier ``horizon`` bars later. The label is the barrier touched first
(bar highs and lows are checked; when both price barriers fall inside one bar the stop is taken,
the conservative reading), and the return is the side-adjusted return at the touch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from tradeloop.core.errors import ConfigError
from tradeloop.ml._kernels import rolling_std_nb

__all__ = [
    "LABEL_PROFIT",
    "LABEL_STOP",
    "LABEL_VERTICAL",
    "BarrierLabels",
    "meta_labels",
    "rolling_volatility",
    "triple_barrier",
]

#: The profit barrier was touched first.
LABEL_PROFIT = 1
#: The stop barrier was touched first.
LABEL_STOP = -1
#: Neither price barrier within ``horizon`` bars.
LABEL_VERTICAL = 0


@dataclass(frozen=True, slots=True)
class BarrierLabels:
    """Triple-barrier outcome of each event.

    Attributes
    ----------
    t0
        Event (entry) bar index.
    t1
        Bar index where the first barrier was touched (the label's end).
    label
        :data:`LABEL_PROFIT`, :data:`LABEL_STOP` or :data:`LABEL_VERTICAL`.
    ret
        Side-adjusted return at the touch (barrier level for price barriers, close at t1 for
        the vertical barrier).
    side
        +1 long, -1 short.
    """

    t0: np.ndarray
    t1: np.ndarray
    label: np.ndarray
    ret: np.ndarray
    side: np.ndarray

    def __len__(self) -> int:
        return int(self.t0.shape[0])


def rolling_volatility(close: np.ndarray, window: int = 50) -> np.ndarray:
    """Return the rolling standard deviation of simple returns (NaN during warm-up).

    Causal: the value at bar ``i`` uses returns up to and including bar ``i``.

    Raises
    ------
    ConfigError
        If ``window`` < 2.

    Examples
    --------
    >>> v = rolling_volatility(np.array([1.0, 1.1, 1.0, 1.1, 1.0]), 2)
    >>> bool(np.isnan(v[1])) and round(float(v[4]), 4)
    0.135
    """
    if window < 2:
        raise ConfigError(f"volatility window must be >= 2, got {window}")
    close = np.asarray(close, dtype=np.float64)
    ret = np.full(close.shape[0], np.nan)
    ret[1:] = close[1:] / close[:-1] - 1.0
    return rolling_std_nb(ret, window)


@njit(cache=True)
def _barrier_nb(
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    events: np.ndarray,
    side: np.ndarray,
    width: np.ndarray,
    pt: float,
    sl: float,
    horizon: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover - numba
    n = close.shape[0]
    m = events.shape[0]
    t1 = np.empty(m, np.int64)
    label = np.zeros(m, np.int64)
    ret = np.zeros(m)
    for k in range(m):
        i = events[k]
        s = side[k]
        entry = close[i]
        w = width[k]
        if s > 0:
            up = entry * (1.0 + pt * w)
            dn = entry * (1.0 - sl * w)
        else:
            up = entry * (1.0 + sl * w)
            dn = entry * (1.0 - pt * w)
        end = min(i + horizon, n - 1)
        t1[k] = end
        ret[k] = s * (close[end] / entry - 1.0)
        for j in range(i + 1, end + 1):
            hit_up = high[j] >= up
            hit_dn = low[j] <= dn
            if hit_up or hit_dn:
                t1[k] = j
                if s > 0:
                    if hit_dn:
                        label[k] = -1
                        ret[k] = dn / entry - 1.0
                    else:
                        label[k] = 1
                        ret[k] = up / entry - 1.0
                else:
                    if hit_up:
                        label[k] = -1
                        ret[k] = -(up / entry - 1.0)
                    else:
                        label[k] = 1
                        ret[k] = -(dn / entry - 1.0)
                break
    return t1, label, ret


def triple_barrier(
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    events: np.ndarray | None = None,
    side: np.ndarray | None = None,
    *,
    vol: np.ndarray | None = None,
    pt: float = 2.0,
    sl: float = 2.0,
    horizon: int = 24,
    vol_window: int = 50,
) -> BarrierLabels:
    """Label each event bar by the first barrier its trade touches.

    Parameters
    ----------
    high, low, close
        Bar prices (float64, same length).
    events
        Entry bar indices (sorted or not); every bar when None.
    side
        +1/-1 per event (all long when None).
    vol
        Barrier width per bar as a return fraction; :func:`rolling_volatility` of ``close``
        over ``vol_window`` when None. Events whose width is NaN or <= 0 are dropped.
    pt, sl
        Profit and stop barriers as multiples of the width.
    horizon
        Vertical barrier in bars.

    Returns
    -------
    BarrierLabels
        One entry per kept event.

    Raises
    ------
    ConfigError
        For non-positive ``pt``, ``sl`` or ``horizon``, mismatched lengths or bad indices.
    """
    if pt <= 0 or sl <= 0 or horizon < 1:
        raise ConfigError(f"pt, sl and horizon must be > 0, got {pt}, {sl}, {horizon}")
    close = np.asarray(close, dtype=np.float64)
    high = np.asarray(high, dtype=np.float64)
    low = np.asarray(low, dtype=np.float64)
    n = close.shape[0]
    if high.shape[0] != n or low.shape[0] != n:
        raise ConfigError("high, low and close must have the same length")
    ev = np.arange(n, dtype=np.int64) if events is None else np.asarray(events, dtype=np.int64)
    if ev.size and (ev.min() < 0 or ev.max() >= n):
        raise ConfigError(f"event indices must be in [0, {n})")
    sd = np.ones(ev.shape[0], np.int64) if side is None else np.asarray(side, dtype=np.int64)
    if sd.shape != ev.shape or not np.all(np.abs(sd) == 1):
        raise ConfigError("side must hold +1 or -1 for every event")
    width_all = rolling_volatility(close, vol_window) if vol is None else np.asarray(vol, float)
    width = width_all[ev]
    keep = np.isfinite(width) & (width > 0) & (ev < n - 1)
    ev, sd, width = ev[keep], sd[keep], width[keep]
    t1, label, ret = _barrier_nb(high, low, close, ev, sd, width, float(pt), float(sl), horizon)
    return BarrierLabels(ev, t1, label, ret, sd)


def meta_labels(labels: BarrierLabels) -> np.ndarray:
    """Return the meta-label of each event: 1 when the primary side's trade made money.

    That is the profit barrier, or the vertical barrier with a positive return; 0 otherwise.

    Examples
    --------
    >>> lb = BarrierLabels(np.array([0, 1]), np.array([1, 2]), np.array([1, 0]),
    ...                    np.array([0.01, -0.002]), np.array([1, 1]))
    >>> meta_labels(lb).tolist()
    [1, 0]
    """
    return (labels.ret > 0).astype(np.int64)
