"""Crossovers with a defined tie rule, including an exact SMA crossover on integer ticks.

The sign of ``a - b`` is tracked bar by bar; an exact tie (``a == b``) keeps the previous sign,
so a touch without crossing is not a cross. A cross up at ``t`` is a change of sign from
negative to positive between ``t-1`` and ``t``; a cross down the reverse. No cross is reported
until both series exist at ``t-1`` and ``t``.
"""

from __future__ import annotations

import math
from collections import deque
from math import gcd

import numpy as np

from tradeloop.core.errors import ConfigError
from tradeloop.core.precision import price_decimals, to_ticks

__all__ = ["ExactSmaCross", "crossover_signs", "sign_with_ties", "sma_crossover_exact"]


def sign_with_ties(diff: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Return the int8 sign of ``diff`` where a zero keeps the previous non-zero sign.

    Positions where ``valid`` is False (or ``diff`` is NaN) get sign 0 and break the carry.

    >>> sign_with_ties(np.array([1.0, 0.0, -2.0, 0.0])).tolist()
    [1, 1, -1, -1]
    """
    diff = np.asarray(diff)
    if valid is None:
        valid = ~np.isnan(diff) if diff.dtype.kind == "f" else np.ones(diff.shape, dtype=bool)
    raw = np.sign(np.where(valid, diff, 0)).astype(np.int8)
    carry_from = np.where((raw != 0) | ~valid, np.arange(raw.size), 0)
    np.maximum.accumulate(carry_from, out=carry_from)
    out = raw[carry_from]
    out[~valid] = 0
    return out


def _crosses_from_sign(sign: np.ndarray) -> np.ndarray:
    out = np.zeros(sign.size, dtype=np.int8)
    if sign.size > 1:
        prev, cur = sign[:-1], sign[1:]
        out[1:][(prev == -1) & (cur == 1)] = 1
        out[1:][(prev == 1) & (cur == -1)] = -1
    return out


def crossover_signs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return +1 where ``a`` crosses above ``b``, -1 where it crosses below, else 0 (int8).

    Float comparison; see :func:`sma_crossover_exact` for an exact moving-average cross.

    >>> crossover_signs(np.array([1.0, 2.0, 3.0, 2.0]), np.array([2.0, 2.0, 2.5, 2.5])).tolist()
    [0, 0, 1, -1]
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ConfigError(f"crossover_signs: length mismatch {a.shape} vs {b.shape}")
    valid = ~(np.isnan(a) | np.isnan(b))
    return _crosses_from_sign(sign_with_ties(a - b, valid))


def _tick_sma_signs(ticks: np.ndarray, fast: int, slow: int, g: int) -> np.ndarray:
    """The int8 sign of ``slow/g * sum_fast - fast/g * sum_slow`` per bar (the windows' sums
    of integer ``ticks`` ending at the bar), a tie keeping the previous sign; 0 until both
    windows are full. Callers make sure the products fit in int64.

    One cumulative sum serves both windows, and only the bars with full windows are
    computed: a few arrays instead of a dozen (each new 8 MB array of a 1M-bar run costs its
    page faults, more than the arithmetic).
    """
    size = ticks.size
    longest = max(fast, slow)
    out = np.zeros(size, dtype=np.int8)
    if size < longest:
        return out
    # int64 cumulative sums may wrap on long series; differences stay exact modulo 2**64
    # and every true window sum fits in int64, so the result is exact.
    cs = np.empty(size + 1, dtype=np.int64)
    cs[0] = 0
    with np.errstate(over="ignore"):
        np.cumsum(ticks, dtype=np.int64, out=cs[1:])
        end = cs[longest:]  # the sums up to each bar from the longest window's last bar on
        diff = end - cs[longest - fast : size + 1 - fast]  # the fast windows' sums
        diff *= slow // g
        other = end - cs[longest - slow : size + 1 - slow]  # the slow windows' sums
        other *= fast // g
        diff -= other
    sign = out[longest - 1 :]
    np.subtract((diff > 0).view(np.int8), (diff < 0).view(np.int8), out=sign)
    ties = np.flatnonzero(sign == 0)  # equal averages: rare, each keeps the sign before it
    if ties.size:
        # each run of ties takes the sign of the bar before the run (0 before any sign)
        first = np.where(np.diff(ties, prepend=-2) != 1, ties, 0)
        np.maximum.accumulate(first, out=first)
        before = first - 1
        sign[ties] = np.where(before >= 0, sign[np.maximum(before, 0)], 0)
    return out


def sma_crossover_exact(
    close: np.ndarray, fast: int, slow: int, tick_size: float | None = None
) -> np.ndarray:
    """Return crosses (+1 up, -1 down, 0 none) of SMA(fast) over SMA(slow), computed exactly.

    Prices are converted to integer ticks so ``fast_sma == slow_sma`` is decided exactly
    (``slow * sum_fast`` vs ``fast * sum_slow`` in integers); a tie keeps the previous sign.
    ``tick_size`` defaults to the finest decimal that represents every close; when the prices
    have no short decimal form the comparison falls back to float SMAs.

    Raises
    ------
    ConfigError
        If a length is not a positive integer.

    >>> sma_crossover_exact(np.array([3.0, 1.0, 2.0, 3.0, 1.0]), 1, 2).tolist()
    [0, 0, 1, 0, -1]
    """
    signs = _exact_signs(close, fast, slow, tick_size)
    if signs is not None:
        return _crosses_from_sign(signs)
    close = np.asarray(close, dtype=np.float64)
    size = close.size
    valid = np.arange(size) >= max(fast, slow) - 1
    # float fallback: window means from a compensated rolling sum
    fast_ma = np.full(size, np.nan)
    slow_ma = np.full(size, np.nan)
    if size >= fast:
        fast_ma[fast - 1 :] = np.lib.stride_tricks.sliding_window_view(close, fast).mean(axis=1)
    if size >= slow:
        slow_ma[slow - 1 :] = np.lib.stride_tricks.sliding_window_view(close, slow).mean(axis=1)
    return _crosses_from_sign(sign_with_ties(fast_ma - slow_ma, valid))


def _check_lengths(fast: int, slow: int) -> None:
    for name, n in (("fast", fast), ("slow", slow)):
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
            raise ConfigError(f"sma_crossover_exact: {name} must be a positive integer, got {n!r}")


def _exact_signs(
    close: np.ndarray, fast: int, slow: int, tick_size: float | None
) -> np.ndarray | None:
    """The tie-carrying sign of SMA(fast) - SMA(slow) on integer ticks, or None when the
    prices have no tick form or the integer sums could overflow (the float fallback)."""
    _check_lengths(fast, slow)
    close = np.asarray(close, dtype=np.float64)
    size = close.size
    longest = max(fast, slow)
    if tick_size is None or tick_size <= 0:
        decimals = price_decimals(close)
        tick_size = 10.0**-decimals if decimals is not None else 0.0
    if tick_size > 0:
        g = gcd(int(fast), int(slow))
        # the largest tick count, in floats first: a price near 1e300 has no int64 tick form
        largest = float(np.max(np.abs(close))) / tick_size if size else 0.0
        if not (math.isfinite(largest) and largest * longest * (longest // g) < 2**62):
            return None
        ticks = to_ticks(close, tick_size)
        max_abs = int(np.max(np.abs(ticks))) if size else 0
        if max_abs * longest * (longest // g) < 2**62:
            return _tick_sma_signs(ticks, int(fast), int(slow), g)
    return None


class ExactSmaCross:
    """The streaming twin of :func:`sma_crossover_exact`: one cross per new close, O(1).

    Built from the history with :meth:`from_history` (which also returns the history's
    crosses), then :meth:`update` takes each new close. Sums are Python integers on the
    instrument's tick, so every value equals the vectorized function on the whole series.

    >>> stream, crosses = ExactSmaCross.from_history(np.array([3.0, 1.0, 2.0]), 1, 2, 1.0)
    >>> crosses.tolist(), stream.update(3.0), stream.update(1.0)
    ([0, 0, 1], 0, -1)
    """

    __slots__ = (
        "_fast",
        "_fast_sum",
        "_g_fast",
        "_g_slow",
        "_sign",
        "_slow",
        "_slow_sum",
        "_tick",
        "_window",
    )

    def __init__(self, fast: int, slow: int, tick_size: float) -> None:
        _check_lengths(fast, slow)
        if not tick_size > 0:
            raise ConfigError(f"ExactSmaCross: tick_size must be > 0, got {tick_size}")
        self._fast, self._slow, self._tick = int(fast), int(slow), float(tick_size)
        g = gcd(self._fast, self._slow)
        self._g_fast, self._g_slow = self._fast // g, self._slow // g
        self._window: deque[int] = deque(maxlen=max(self._fast, self._slow))
        self._fast_sum = 0
        self._slow_sum = 0
        self._sign = 0

    @classmethod
    def from_history(
        cls, close: np.ndarray, fast: int, slow: int, tick_size: float
    ) -> tuple[ExactSmaCross, np.ndarray]:
        """A stream positioned after ``close`` and the crosses of ``close``.

        Raises
        ------
        ConfigError
            If the history would take the float fallback of :func:`sma_crossover_exact`
            (prices too large for exact integer sums): stream it with that function instead.
        """
        stream = cls(fast, slow, tick_size)
        signs = _exact_signs(close, fast, slow, tick_size)
        if signs is None:
            raise ConfigError("ExactSmaCross: the history needs the float fallback")
        for value in np.asarray(close, dtype=np.float64)[-stream._window.maxlen :].tolist():
            stream._push(round(value / stream._tick))
        stream._sign = int(signs[-1]) if signs.size else 0
        return stream, _crosses_from_sign(signs)

    def _push(self, tick: int) -> None:
        window, n = self._window, len(self._window)
        if n >= self._fast:
            self._fast_sum -= window[n - self._fast]
        if n >= self._slow:
            self._slow_sum -= window[n - self._slow]
        self._fast_sum += tick
        self._slow_sum += tick
        window.append(tick)  # at full length the oldest (already out of both sums) drops

    def update(self, close: float) -> int:
        """Take the next close; return its cross (+1 up, -1 down, 0 none)."""
        self._push(round(close / self._tick))  # half to even, like numpy's rint
        window = self._window
        prev = self._sign
        if len(window) < window.maxlen:  # type: ignore[operator]
            self._sign = 0
            return 0
        diff = self._g_slow * self._fast_sum - self._g_fast * self._slow_sum
        sign = (diff > 0) - (diff < 0) or prev
        self._sign = sign
        if prev == -1 and sign == 1:
            return 1
        if prev == 1 and sign == -1:
            return -1
        return 0
