"""Find the next bar where an open position's stop, trailing stop or target can trigger.

The simulated broker checks exits bar by bar (:meth:`SimulatedBroker.on_bar_range`). Between
two bars where the strategy can act, a backtest only needs the first bar whose open or range
reaches a level: every bar before it leaves the position as it was, except that a trailing
stop's anchor follows the best price. :func:`next_exit_bar` finds that bar (a short Python
loop over list-like columns, then vectorized windows for long stretches) and returns the
anchor as it stands before it, so the broker's own exit check runs only on that bar and gives
the same fills as checking every bar.

The scan is conservative: it reports a bar when the open or the range touches a level (a gap
through a level, a stop or a target inside the range), with exactly the levels
:meth:`Position.active_stop <tradeloop.core.position.Position.active_stop>` would give at that
bar. The broker then decides what happens on it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from tradeloop.core.position import Position

__all__ = ["next_exit_bar"]

#: stretches up to this many bars are scanned in Python (numpy's per-call cost is higher)
_PY_SPAN = 96
_INF = math.inf


def _levels(pos: Position) -> tuple[float, float, float | None, float, float]:
    """(fixed stop, target, trailing keep factor or None, arming anchor, anchor) as a long
    sees them; for a short every price is negated so the same comparisons apply."""
    sign = 1.0 if pos.direction > 0 else -1.0
    stop = -_INF if pos.stop_loss is None else sign * pos.stop_loss
    target = _INF if pos.take_profit is None else sign * pos.take_profit
    keep: float | None = None
    arm = -_INF
    anchor = -_INF
    if pos.trail_fraction and pos.trail_anchor is not None:
        keep = 1.0 - pos.trail_fraction if sign > 0 else 1.0 + pos.trail_fraction
        anchor = sign * pos.trail_anchor
        act = pos.trail_activation
        if act:
            arm = sign * pos.entry_price * (1.0 + act if sign > 0 else 1.0 - act)
    return stop, target, keep, arm, anchor


def next_exit_bar(
    pos: Position,
    opens: Sequence[float] | None,
    highs: Sequence[float],
    lows: Sequence[float],
    arrays: tuple[np.ndarray | None, np.ndarray, np.ndarray],
    start: int,
    stop: int,
) -> tuple[int, float | None]:
    """Return ``(k, anchor)``: the first bar ``k`` in ``[start, stop)`` whose open, high or low
    reaches ``pos``'s stop, trailing stop or target (``stop`` when none does), and the
    trailing anchor as it stands before bar ``k`` (None without a trailing stop).

    ``opens``/``highs``/``lows`` are the bars as lists or memoryviews (read for short
    stretches) and ``arrays`` the same columns as numpy arrays (read in windows for long ones).
    ``opens`` (and ``arrays[0]``) may be None when every open lies inside its bar's range
    (``low <= open <= high``, as the data check requires): a level the open reaches, the
    range reaches too, so only the range is read (the same bar is found, faster).
    """
    long = pos.direction > 0
    sign = 1.0 if long else -1.0
    fixed, target, keep, arm, anchor = _levels(pos)
    # a long's stop follows its highs, a short's its lows (negated: the same max applies)
    best_px, worst_px = (highs, lows) if long else (lows, highs)

    k = start
    py_end = min(stop, start + _PY_SPAN)
    if keep is None:  # fixed levels: the common case, one loop per side without arithmetic
        if opens is None:
            lo_px, hi_px, lo_level, hi_level = (
                (lows, highs, fixed, target) if long else (lows, highs, -target, -fixed)
            )
            for k in range(start, py_end):
                if lo_px[k] <= lo_level or hi_px[k] >= hi_level:
                    return k, None
        elif long:
            for k in range(start, py_end):
                o = opens[k]
                if lows[k] <= fixed or highs[k] >= target or o <= fixed or o >= target:
                    return k, None
        else:
            up, down = -fixed, -target  # the short's stop above, target below
            for k in range(start, py_end):
                o = opens[k]
                if highs[k] >= up or lows[k] <= down or o >= up or o <= down:
                    return k, None
        k = py_end
    elif long:  # a trailing long, inlined: the anchor follows the highs
        s = _level(anchor, keep, arm, fixed, sign)
        if opens is None:
            for k in range(start, py_end):
                h = highs[k]
                if lows[k] <= s or h >= target:
                    return k, anchor
                if h > anchor:
                    anchor = h
                    if anchor >= arm:
                        trail = anchor * keep
                        s = trail if trail > fixed else fixed
        else:
            for k in range(start, py_end):
                o = opens[k]
                h = highs[k]
                if lows[k] <= s or o <= s or h >= target or o >= target:
                    return k, anchor
                if h > anchor:
                    anchor = h
                    if anchor >= arm:
                        trail = anchor * keep
                        s = trail if trail > fixed else fixed
        k = py_end
    s = _level(anchor, keep, arm, fixed, sign)
    while k < py_end:
        worst = sign * worst_px[k]
        best = sign * best_px[k]
        if worst <= s or best >= target:
            return k, (sign * anchor if keep is not None else None)
        if opens is not None and (sign * opens[k] <= s or sign * opens[k] >= target):
            return k, (sign * anchor if keep is not None else None)
        if keep is not None and best > anchor:
            anchor = best
            s = _level(anchor, keep, arm, fixed, sign)
        k += 1
    if k < stop:
        k, anchor = _scan_windows(arrays, long, fixed, target, keep, arm, anchor, k, stop)
    return k, (sign * anchor if keep is not None else None)


def _level(a: float, keep: float | None, arm: float, fixed: float, sign: float) -> float:
    """The stop in force for anchor ``a`` (sign-flipped prices, see :func:`_levels`)."""
    if keep is None or a < arm:
        return fixed
    trail = sign * ((sign * a) * keep)  # the same product as Position.trailing_stop_price
    return trail if trail > fixed else fixed


def _scan_windows(
    arrays: tuple[np.ndarray | None, np.ndarray, np.ndarray],
    long: bool,
    fixed: float,
    target: float,
    keep: float | None,
    arm: float,
    anchor: float,
    start: int,
    stop: int,
) -> tuple[int, float]:
    """The vectorized part of :func:`next_exit_bar`, in growing windows (sign-flipped prices)."""
    o_arr, h_arr, l_arr = arrays
    sign = 1.0 if long else -1.0
    window = 4 * _PY_SPAN
    k = start
    while k < stop:
        end = min(stop, k + window)
        window *= 4
        best = sign * (h_arr if long else l_arr)[k:end]
        worst = sign * (l_arr if long else h_arr)[k:end]
        if keep is None:
            levels = np.full(end - k, fixed)
            anchors = None
        else:
            # the anchor before each bar: the best price up to the bar before it
            anchors = np.empty(end - k)
            anchors[0] = anchor
            if end - k > 1:
                np.maximum.accumulate(best[:-1], out=anchors[1:])
                np.maximum(anchors[1:], anchor, out=anchors[1:])
            trail = sign * ((sign * anchors) * keep)
            levels = np.where(anchors >= arm, np.maximum(trail, fixed), fixed)
        hit = (worst <= levels) | (best >= target)
        if o_arr is not None:
            o = sign * o_arr[k:end]
            hit |= (o <= levels) | (o >= target)
        found = np.flatnonzero(hit)
        if found.size:
            at = int(found[0])
            return k + at, (float(anchors[at]) if anchors is not None else anchor)
        if keep is not None:
            anchor = max(anchor, float(best.max()))
        k = end
    return stop, anchor
