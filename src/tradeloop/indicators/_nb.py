"""Private numba kernels and argument checks shared by the indicator modules.

Kernels take contiguous 1-D float64 arrays that the public wrappers have already checked, and
return new float64 arrays of the same length, with NaN where there is no value yet.

Rolling-window kernels keep running sums for O(1) work per element, and rebuild them from the
window itself every ``_REBUILD_EVERY`` steps (at least once per window length), so rounding
error cannot accumulate along a long series. A window that holds any non-finite value yields
NaN; the running state is rebuilt from scratch as soon as the window is clean again.

Recursive kernels (EMA, Wilder smoothing) treat NaN inputs as missing: the output at a NaN is
NaN and the recursion carries on from the last state, so leading NaNs (e.g. the warm-up of an
input that is itself an indicator) just delay the seed.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Callable
from typing import Any

import numpy as np

from tradeloop.core.errors import ConfigError

__all__: list[str] = []

# Rebuild running window sums from scratch at least this often (in steps).
_REBUILD_EVERY = 256
# The variance kernel re-centres its sums on each rebuild, so it rebuilds more often.
_REBUILD_EVERY_VAR = 64
# Windows up to this length are computed directly (two-pass) at every step.
_DIRECT_VAR_MAX_N = 16


# --------------------------------------------------------------------------- lazy compilation

# numba costs ~0.4 s to import; a backtest whose strategy needs no compiled kernel should not
# pay it. Kernels are registered here and compiled together, in definition order (so a kernel
# that calls another finds it already compiled), on the first call of any of them.
_KERNELS: list[tuple[str, Callable[..., Any], dict[str, Any]]] = []
_COMPILED = False


def njit(**options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a kernel for lazy ``numba.njit(**options)`` compilation."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        name = fn.__name__
        _KERNELS.append((name, fn, options))

        @functools.wraps(fn)
        def dispatch(*args: Any) -> Any:
            if not _COMPILED:
                _compile_all()
            return globals()[name](*args)

        return dispatch

    return register


def _compile_all() -> None:
    global _COMPILED
    import numba

    namespace = globals()
    for name, fn, options in _KERNELS:
        namespace[name] = numba.njit(**options)(fn)
    _COMPILED = True


# --------------------------------------------------------------------------- argument checks


def as_float_array(values: Any, name: str) -> np.ndarray:
    """Return ``values`` as a contiguous 1-D float64 array, raising ConfigError otherwise."""
    try:
        arr = np.ascontiguousarray(np.asarray(values, dtype=np.float64))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} must be numeric array-like: {exc}") from exc
    if arr.ndim != 1:
        raise ConfigError(f"{name} must be 1-D, got an array of shape {arr.shape}")
    return arr


def check_period(value: Any, name: str) -> int:
    """Return ``value`` as an int if it is an integer >= 1, else raise ConfigError naming it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def check_same_length(**arrays: np.ndarray) -> int:
    """Return the common length of ``arrays``; raise ConfigError naming them if they differ."""
    lengths = {name: len(arr) for name, arr in arrays.items()}
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{name}={n}" for name, n in lengths.items())
        raise ConfigError(f"input arrays must have the same length, got {detail}")
    return next(iter(lengths.values()), 0)


# --------------------------------------------------------------------------- rolling kernels
# Each kernel counts the non-finite values in its window inline (``bad``) rather than in a
# separate array: on 10^6 points every extra temporary costs as much as the arithmetic.


@njit(cache=True)
def _neumaier_add(s: float, c: float, v: float) -> tuple[float, float]:
    # One compensated addition: returns the new (sum, compensation).
    t = s + v
    if abs(s) >= abs(v):
        c += (s - t) + v
    else:
        c += (v - t) + s
    return t, c


@njit(cache=True)
def rolling_sum_nb(x: np.ndarray, n: int) -> np.ndarray:
    """Rolling sum over ``n`` values with compensated (Neumaier) updates and periodic rebuilds."""
    size = x.shape[0]
    out = np.full(size, np.nan)
    rebuild = max(n, _REBUILD_EVERY)
    s = 0.0
    c = 0.0
    clean = False
    since = 0
    bad = 0
    for i in range(size):
        if not np.isfinite(x[i]):
            bad += 1
        if i >= n and not np.isfinite(x[i - n]):
            bad -= 1
        if i < n - 1:
            continue
        if bad > 0:
            clean = False
            continue
        if not clean or since >= rebuild:
            s = 0.0
            c = 0.0
            for j in range(i - n + 1, i + 1):
                s, c = _neumaier_add(s, c, x[j])
            clean = True
            since = 0
        else:
            s, c = _neumaier_add(s, c, x[i])
            s, c = _neumaier_add(s, c, -x[i - n])
            since += 1
        out[i] = s + c
    return out


@njit(cache=True)
def rolling_wma_nb(x: np.ndarray, n: int) -> np.ndarray:
    """Linearly weighted rolling mean, weights 1..n with the latest value weighted n."""
    size = x.shape[0]
    out = np.full(size, np.nan)
    rebuild = max(n, _REBUILD_EVERY)
    denom = n * (n + 1) / 2.0
    s = 0.0  # plain sum of the window
    w = 0.0  # weighted sum of the window
    clean = False
    since = 0
    bad = 0
    for i in range(size):
        if not np.isfinite(x[i]):
            bad += 1
        if i >= n and not np.isfinite(x[i - n]):
            bad -= 1
        if i < n - 1:
            continue
        if bad > 0:
            clean = False
            continue
        if not clean or since >= rebuild:
            s = 0.0
            w = 0.0
            for k in range(n):
                v = x[i - n + 1 + k]
                s += v
                w += (k + 1) * v
            clean = True
            since = 0
        else:
            # Every older value loses one weight step, the new one enters with weight n.
            w += n * x[i] - s
            s += x[i] - x[i - n]
            since += 1
        out[i] = w / denom
    return out


@njit(cache=True)
def rolling_mean_std_nb(x: np.ndarray, n: int, ddof: int) -> tuple[np.ndarray, np.ndarray]:
    """Rolling mean and standard deviation from shifted running sums.

    The sums are of ``x - shift`` and ``(x - shift)**2``, where ``shift`` is the window mean
    at the last rebuild; keeping the terms small avoids the cancellation that plain sums of
    squares (and Welford add/remove updates) suffer when the variance is tiny next to the
    level, e.g. a 2-bar std of 0.03 on a price of 4000. A window of ``n`` identical values
    gets exactly that value as mean and exactly 0.0 as std. Windows of up to
    ``_DIRECT_VAR_MAX_N`` values are computed two-pass at every step.
    """
    size = x.shape[0]
    mean_out = np.full(size, np.nan)
    std_out = np.full(size, np.nan)
    if n - ddof <= 0:
        return mean_out, std_out
    rebuild = max(n, _REBUILD_EVERY_VAR)
    shift = 0.0
    s1 = 0.0
    s2 = 0.0
    clean = False
    since = 0
    run = 0  # length of the current run of identical consecutive values
    bad = 0
    for i in range(size):
        if not np.isfinite(x[i]):
            bad += 1
        if i >= n and not np.isfinite(x[i - n]):
            bad -= 1
        if i > 0 and x[i] == x[i - 1]:
            run += 1
        else:
            run = 1
        if i < n - 1:
            continue
        if bad > 0:
            clean = False
            continue
        if not clean or since >= rebuild or n <= _DIRECT_VAR_MAX_N:
            # Re-centre on the exact window mean (two-pass); short windows always do this.
            shift = 0.0
            for j in range(i - n + 1, i + 1):
                shift += x[j]
            shift /= n
            s1 = 0.0
            s2 = 0.0
            for j in range(i - n + 1, i + 1):
                d = x[j] - shift
                s1 += d
                s2 += d * d
            clean = True
            since = 0
        else:
            d_new = x[i] - shift
            d_old = x[i - n] - shift
            s1 += d_new - d_old
            s2 += (d_new - d_old) * (d_new + d_old)
            since += 1
        if run >= n:
            mean_out[i] = x[i]
            std_out[i] = 0.0
        else:
            mean_out[i] = shift + s1 / n
            std_out[i] = np.sqrt(max(s2 - s1 * s1 / n, 0.0) / (n - ddof))
    return mean_out, std_out


@njit(cache=True)
def rolling_extreme_nb(x: np.ndarray, n: int, want_max: bool) -> np.ndarray:
    """Rolling max (``want_max``) or min over ``n`` values (van Herk/Gil-Werman, O(1) each).

    The series is cut into blocks of ``n``. A window ending at ``i`` is either one whole block
    or the tail of the previous block plus the head of the current one, so its extreme is
    ``max(suffix max of the previous block, running max of the current block)``.
    """
    size = x.shape[0]
    out = np.full(size, np.nan)
    sign = 1.0 if want_max else -1.0
    prev_suffix = np.full(n, -np.inf)  # suffix maxima of the previous block, by offset
    cur_suffix = np.full(n, -np.inf)
    bad = 0
    for start in range(0, size, n):
        stop = min(start + n, size)
        # Suffix maxima of this block (non-finite values count as -inf; their windows are NaN).
        acc = -np.inf
        for i in range(stop - 1, start - 1, -1):
            v = x[i]
            if np.isfinite(v):
                acc = max(acc, sign * v)
            cur_suffix[i - start] = acc
        acc = -np.inf
        for i in range(start, stop):
            v = x[i]
            if np.isfinite(v):
                acc = max(acc, sign * v)
            else:
                bad += 1
            if i >= n and not np.isfinite(x[i - n]):
                bad -= 1
            if i >= n - 1 and bad == 0:
                first = i - n + 1
                if first == start:
                    out[i] = sign * acc
                else:
                    out[i] = sign * max(prev_suffix[first - start + n], acc)
        prev_suffix, cur_suffix = cur_suffix, prev_suffix
    return out


@njit(cache=True)
def stochastic_raw_nb(high: np.ndarray, low: np.ndarray, close: np.ndarray, k: int) -> np.ndarray:
    """Raw %K = 100 * (close - LL) / (HH - LL) over ``k`` bars; 50.0 when HH == LL."""
    hh = rolling_extreme_nb(high, k, True)
    ll = rolling_extreme_nb(low, k, False)
    for i in range(hh.shape[0]):
        rng = hh[i] - ll[i]
        if np.isnan(rng) or np.isnan(close[i]):
            hh[i] = np.nan
        elif rng != 0.0:
            hh[i] = 100.0 * (close[i] - ll[i]) / rng
        else:
            hh[i] = 50.0
    return hh


# --------------------------------------------------------------------------- recursive kernels


@njit(cache=True)
def ewm_seeded_nb(x: np.ndarray, n: int, alpha: float) -> np.ndarray:
    """Exponential smoothing seeded with the simple mean of the first ``n`` valid values.

    ``y = y_prev + alpha * (v - y_prev)`` after the seed; NaN inputs are skipped (output NaN).
    """
    size = x.shape[0]
    out = np.full(size, np.nan)
    seen = 0
    acc = 0.0
    y = 0.0
    for i in range(size):
        v = x[i]
        if np.isnan(v):
            continue
        if seen < n:
            acc += v
            seen += 1
            if seen == n:
                y = acc / n
                out[i] = y
        else:
            y = y + alpha * (v - y)
            out[i] = y
    return out


@njit(cache=True)
def rsi_nb(x: np.ndarray, n: int) -> np.ndarray:
    """Wilder RSI: SMA-seeded averages of gains and losses, then ``(prev * (n-1) + v) / n``."""
    size = x.shape[0]
    out = np.full(size, np.nan)
    seen = 0
    gain = 0.0
    loss = 0.0
    for i in range(1, size):
        d = x[i] - x[i - 1]
        if np.isnan(d):
            continue
        g = d if d > 0.0 else 0.0
        lo = -d if d < 0.0 else 0.0
        if seen < n:
            gain += g
            loss += lo
            seen += 1
            if seen < n:
                continue
            gain /= n
            loss /= n
        else:
            gain = (gain * (n - 1) + g) / n
            loss = (loss * (n - 1) + lo) / n
        total = gain + loss
        out[i] = 100.0 * gain / total if total != 0.0 else 0.0
    return out


@njit(cache=True)
def true_range_nb(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    """True range; bar 0 (no previous close) uses ``high - low``."""
    size = high.shape[0]
    out = np.empty(size)
    for i in range(size):
        hl = high[i] - low[i]
        if i == 0:
            out[i] = hl
            continue
        pc = close[i - 1]
        out[i] = max(hl, abs(high[i] - pc), abs(low[i] - pc))
    return out


@njit(cache=True)
def wilder_nb(x: np.ndarray, n: int) -> np.ndarray:
    """Wilder smoothing ``(prev * (n-1) + v) / n``, seeded with the mean of the first ``n``."""
    size = x.shape[0]
    out = np.full(size, np.nan)
    seen = 0
    y = 0.0
    for i in range(size):
        v = x[i]
        if np.isnan(v):
            continue
        if seen < n:
            y += v
            seen += 1
            if seen == n:
                y /= n
                out[i] = y
        else:
            y = (y * (n - 1) + v) / n
            out[i] = y
    return out


# --------------------------------------------------------------------------- VWAP


@njit(cache=True)
def cumulative_vwap_nb(pv: np.ndarray, vol: np.ndarray, reset: np.ndarray) -> np.ndarray:
    """Cumulative sum(pv) / sum(vol), restarting where ``reset`` is True; NaN while sum(vol) is 0.

    Both running sums use Neumaier compensation. Non-finite ``pv`` or ``vol`` bars are skipped
    (output NaN) without disturbing the sums.
    """
    size = pv.shape[0]
    out = np.full(size, np.nan)
    s_pv = 0.0
    c_pv = 0.0
    s_v = 0.0
    c_v = 0.0
    for i in range(size):
        if reset[i]:
            s_pv = 0.0
            c_pv = 0.0
            s_v = 0.0
            c_v = 0.0
        a = pv[i]
        b = vol[i]
        if not (np.isfinite(a) and np.isfinite(b)):
            continue
        t = s_pv + a
        if abs(s_pv) >= abs(a):
            c_pv += (s_pv - t) + a
        else:
            c_pv += (a - t) + s_pv
        s_pv = t
        t = s_v + b
        if abs(s_v) >= abs(b):
            c_v += (s_v - t) + b
        else:
            c_v += (b - t) + s_v
        s_v = t
        total_v = s_v + c_v
        if total_v != 0.0:
            out[i] = (s_pv + c_pv) / total_v
    return out
