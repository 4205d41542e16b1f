"""Streaming indicators: one value in, the indicator's current value out, O(1) per bar.

For strategies written bar by bar (``on_bar`` reads the new close and updates its averages)
and for paper/live, where bars arrive one at a time. Each class runs the same arithmetic, in
the same order, as its vectorized twin in this package (:func:`~tradeloop.indicators.sma`,
:func:`~tradeloop.indicators.ema`, :func:`~tradeloop.indicators.rsi`,
:func:`~tradeloop.indicators.atr`, :func:`~tradeloop.indicators.bollinger`,
:func:`~tradeloop.indicators.vwap`), so feeding a series value by value gives the same numbers
as the vectorized call on the whole series: NaN during warm-up and where a window holds a
non-finite value, the compensated sums and their periodic rebuilds included.

>>> s = StreamingSMA(3)
>>> [s.update(v) for v in (1.0, 2.0, 3.0, 4.0)]
[nan, nan, 2.0, 3.0]
"""

from __future__ import annotations

import math
from collections import deque

from tradeloop.indicators._nb import _DIRECT_VAR_MAX_N, _REBUILD_EVERY, _REBUILD_EVERY_VAR
from tradeloop.indicators._nb import check_period as _check_period

__all__ = [
    "StreamingATR",
    "StreamingBollinger",
    "StreamingEMA",
    "StreamingRSI",
    "StreamingSMA",
    "StreamingSum",
    "StreamingVWAP",
]

_NAN = math.nan


def _neumaier(s: float, c: float, v: float) -> tuple[float, float]:
    t = s + v
    if abs(s) >= abs(v):
        c += (s - t) + v
    else:
        c += (v - t) + s
    return t, c


class StreamingSum:
    """Rolling sum of the last ``n`` values (compensated, rebuilt from the window at least
    every 256 updates): the streaming form of the rolling sum behind ``sma`` and ``vwap``."""

    __slots__ = (
        "_bad",
        "_c",
        "_clean",
        "_divisor",
        "_rebuild",
        "_s",
        "_since",
        "_window",
        "n",
        "value",
    )

    def __init__(self, n: int) -> None:
        self.n = _check_period(n, "n")
        self._window: deque[float] = deque(maxlen=self.n + 1)
        self._rebuild = max(self.n, _REBUILD_EVERY)
        self._s = self._c = 0.0
        self._clean = False
        self._since = 0
        self._bad = 0
        self._divisor = 1.0
        #: the current value (NaN in warm-up or while the window holds a non-finite value)
        self.value = _NAN

    def update(self, x: float) -> float:
        """Add ``x`` (the oldest value leaves once ``n`` are held); return the value."""
        window = self._window
        window.append(x)
        if (
            self._clean
            and self._since < self._rebuild
            and x - x == 0.0  # finite (the window was clean, so the leaving value is too)
            and len(window) > self.n
        ):
            # the steady state, inlined: one compensated add of x and one of -old
            s, c = self._s, self._c
            t = s + x
            if abs(s) >= abs(x):
                c += (s - t) + x
            else:
                c += (x - t) + s
            v = -window[0]
            s = t + v
            if abs(t) >= abs(v):
                c += (t - s) + v
            else:
                c += (v - s) + t
            self._s, self._c = s, c
            self._since += 1
            self.value = (s + c) / self._divisor
            return self.value
        return self._update_slow(x)

    def _update_slow(self, x: float) -> float:
        n, window = self.n, self._window
        if not math.isfinite(x):
            self._bad += 1
        if len(window) > n and not math.isfinite(window[0]):
            self._bad -= 1
        if len(window) < n:
            return _NAN
        if self._bad > 0:
            self._clean = False
            self.value = _NAN
            return _NAN
        if not self._clean or self._since >= self._rebuild:
            s = c = 0.0
            for j in range(len(window) - n, len(window)):
                s, c = _neumaier(s, c, window[j])
            self._clean, self._since = True, 0
        else:
            s, c = _neumaier(self._s, self._c, x)
            s, c = _neumaier(s, c, -window[0])
            self._since += 1
        self._s, self._c = s, c
        self.value = (s + c) / self._divisor
        return self.value


class StreamingSMA(StreamingSum):
    """Simple moving average of the last ``n`` values; equals :func:`~tradeloop.indicators.sma`.

    >>> s = StreamingSMA(2)
    >>> [s.update(v) for v in (1.0, 3.0, 5.0)]
    [nan, 2.0, 4.0]
    """

    __slots__ = ()

    def __init__(self, n: int) -> None:
        super().__init__(n)
        self._divisor = float(self.n)


class StreamingEMA:
    """Exponential moving average, ``alpha = 2 / (n + 1)``, seeded with the mean of the first
    ``n`` values; NaN inputs are skipped. Equals :func:`~tradeloop.indicators.ema`."""

    __slots__ = ("_acc", "_alpha", "_seen", "n", "value")

    def __init__(self, n: int) -> None:
        self.n = _check_period(n, "n")
        self._alpha = 2.0 / (self.n + 1.0)
        self._seen = 0
        self._acc = 0.0
        #: the current average (NaN until ``n`` values were seen)
        self.value = _NAN

    def update(self, x: float) -> float:
        """Add ``x``; return the average (NaN for a NaN input or during warm-up)."""
        if math.isnan(x):
            return _NAN
        if self._seen < self.n:
            self._acc += x
            self._seen += 1
            if self._seen < self.n:
                return _NAN
            self.value = self._acc / self.n
            return self.value
        self.value = self.value + self._alpha * (x - self.value)
        return self.value


class StreamingRSI:
    """Wilder's RSI of closes over ``n`` bars; equals :func:`~tradeloop.indicators.rsi`.

    The first close only sets the reference; gains and losses are SMA-seeded over the first
    ``n`` changes, then smoothed ``(prev * (n - 1) + v) / n``.
    """

    __slots__ = ("_gain", "_loss", "_prev", "_seen", "n", "value")

    def __init__(self, n: int = 14) -> None:
        self.n = _check_period(n, "n")
        self._prev: float | None = None
        self._seen = 0
        self._gain = self._loss = 0.0
        #: the current RSI in [0, 100] (NaN during warm-up)
        self.value = _NAN

    def update(self, close: float) -> float:
        """Add a close; return the RSI at it."""
        prev, self._prev = self._prev, close
        if prev is None:
            return _NAN
        d = close - prev
        if math.isnan(d):
            return _NAN
        n = self.n
        g = d if d > 0.0 else 0.0
        lo = -d if d < 0.0 else 0.0
        if self._seen < n:
            self._gain += g
            self._loss += lo
            self._seen += 1
            if self._seen < n:
                return _NAN
            self._gain /= n
            self._loss /= n
        else:
            self._gain = (self._gain * (n - 1) + g) / n
            self._loss = (self._loss * (n - 1) + lo) / n
        total = self._gain + self._loss
        self.value = 100.0 * self._gain / total if total != 0.0 else 0.0
        return self.value


class StreamingATR:
    """Average true range over ``n`` bars (Wilder smoothing, seeded with the mean of the first
    ``n`` true ranges); equals :func:`~tradeloop.indicators.atr`."""

    __slots__ = ("_prev_close", "_seen", "_y", "n", "value")

    def __init__(self, n: int = 14) -> None:
        self.n = _check_period(n, "n")
        self._prev_close: float | None = None
        self._seen = 0
        self._y = 0.0
        #: the current ATR (NaN during warm-up)
        self.value = _NAN

    def update(self, high: float, low: float, close: float) -> float:
        """Add a bar; return the ATR at it."""
        hl = high - low
        pc = self._prev_close
        tr = hl if pc is None else max(hl, abs(high - pc), abs(low - pc))
        self._prev_close = close
        if math.isnan(tr):
            return _NAN
        n = self.n
        if self._seen < n:
            self._y += tr
            self._seen += 1
            if self._seen < n:
                return _NAN
            self._y /= n
        else:
            self._y = (self._y * (n - 1) + tr) / n
        self.value = self._y
        return self.value


class StreamingBollinger:
    """Bollinger bands over ``n`` closes, ``k`` standard deviations (``ddof`` 0 or 1); equals
    :func:`~tradeloop.indicators.bollinger`: :meth:`update` returns ``(middle, upper, lower)``.

    Windows of up to 16 values are recomputed two-pass; longer ones keep shifted running sums,
    re-centred on the exact window mean at least every 64 updates (O(1) amortized).
    """

    __slots__ = (
        "_bad",
        "_clean",
        "_k",
        "_last",
        "_run",
        "_s1",
        "_s2",
        "_shift",
        "_since",
        "_window",
        "ddof",
        "n",
        "value",
    )

    def __init__(self, n: int = 20, k: float = 2.0, ddof: int = 0) -> None:
        from tradeloop.core.errors import ConfigError

        self.n = _check_period(n, "n")
        if ddof not in (0, 1) or isinstance(ddof, bool) or self.n - ddof < 1:
            raise ConfigError(f"ddof must be 0 or 1 and below n, got n={n}, ddof={ddof!r}")
        if isinstance(k, bool) or not math.isfinite(float(k)) or k < 0:
            raise ConfigError(f"k must be a finite number >= 0, got {k!r}")
        self._k = float(k)
        self.ddof = int(ddof)
        self._window: deque[float] = deque(maxlen=self.n + 1)
        self._shift = self._s1 = self._s2 = 0.0
        self._clean = False
        self._since = 0
        self._run = 0
        self._bad = 0
        self._last: float | None = None
        #: (middle, upper, lower), NaN during warm-up
        self.value = (_NAN, _NAN, _NAN)

    def update(self, x: float) -> tuple[float, float, float]:
        """Add a close; return ``(middle, upper, lower)``."""
        n, window = self.n, self._window
        window.append(x)
        if not math.isfinite(x):
            self._bad += 1
        if len(window) > n and not math.isfinite(window[0]):
            self._bad -= 1
        self._run = self._run + 1 if self._last is not None and x == self._last else 1
        self._last = x
        if len(window) < n:
            return self.value
        if self._bad > 0:
            self._clean = False
            self.value = (_NAN, _NAN, _NAN)
            return self.value
        start = len(window) - n
        if not self._clean or self._since >= max(n, _REBUILD_EVERY_VAR) or n <= _DIRECT_VAR_MAX_N:
            shift = 0.0
            for j in range(start, len(window)):
                shift += window[j]
            shift /= n
            s1 = s2 = 0.0
            for j in range(start, len(window)):
                d = window[j] - shift
                s1 += d
                s2 += d * d
            self._shift, self._s1, self._s2 = shift, s1, s2
            self._clean, self._since = True, 0
        else:
            d_new = x - self._shift
            d_old = window[0] - self._shift
            self._s1 += d_new - d_old
            self._s2 += (d_new - d_old) * (d_new + d_old)
            self._since += 1
        if self._run >= n:
            mid, std = x, 0.0
        else:
            s1 = self._s1
            mid = self._shift + s1 / n
            std = math.sqrt(max(self._s2 - s1 * s1 / n, 0.0) / (n - self.ddof))
        width = self._k * std
        self.value = (mid, mid + width, mid - width)
        return self.value


class StreamingVWAP:
    """Volume-weighted average of the typical price ``(high + low + close) / 3``; equals
    :func:`~tradeloop.indicators.vwap` (cumulative, or over the last ``window`` bars).

    :meth:`reset` starts a new cumulative average (e.g. at a session open).
    """

    __slots__ = ("_c_pv", "_c_v", "_den", "_num", "_s_pv", "_s_v", "value", "window")

    def __init__(self, window: int | None = None) -> None:
        self.window = None if window is None else _check_period(window, "window")
        self._num = StreamingSum(self.window) if self.window is not None else None
        self._den = StreamingSum(self.window) if self.window is not None else None
        self._s_pv = self._c_pv = self._s_v = self._c_v = 0.0
        #: the current VWAP (NaN while the summed volume is 0)
        self.value = _NAN

    def reset(self) -> None:
        """Start the cumulative sums again (a new session)."""
        self._s_pv = self._c_pv = self._s_v = self._c_v = 0.0
        self.value = _NAN

    def update(self, high: float, low: float, close: float, volume: float) -> float:
        """Add a bar; return the VWAP at it (NaN where no volume was summed)."""
        pv = (high + low + close) / 3.0 * volume
        if self._num is not None and self._den is not None:
            num, den = self._num.update(pv), self._den.update(volume)
            self.value = num / den if den != 0.0 and not math.isnan(den) else _NAN
            if math.isnan(num):
                self.value = _NAN
            return self.value
        if not (math.isfinite(pv) and math.isfinite(volume)):
            return _NAN
        self._s_pv, self._c_pv = _neumaier(self._s_pv, self._c_pv, pv)
        self._s_v, self._c_v = _neumaier(self._s_v, self._c_v, volume)
        total = self._s_v + self._c_v
        self.value = (self._s_pv + self._c_pv) / total if total != 0.0 else _NAN
        return self.value
