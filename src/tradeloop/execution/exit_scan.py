"""Find the next bar where an open position's stop, trailing stop or target can trigger.

The simulated broker checks exits bar by bar (:meth:`SimulatedBroker.on_bar_range`). Between
two bars where the strategy can act, a backtest only needs the first bar whose open or range
reaches a level: every bar before it leaves the position as it was, except that a trailing
stop's anchor follows the best price. :func:`next_exit_bar` finds that bar (a short Python
loop over list-like columns, then vectorized windows for long stretches) and returns the
anchor as it stands before it, so the broker's own exit check runs only on that bar and gives
the same fills as checking every bar.

With :func:`window_extremes` (the highest high and lowest low of the 8 bars from every bar,
computed once per run) the Python loop tests a whole stretch at once: when the stretch's
extremes reach no level, even with the anchor moved to the stretch's best price (the stop in
force anywhere inside it is at most the stop of that anchor), no bar of it does. A stretch of
up to 64 bars is covered by its windows of 8 bars, the last one ending at the stretch's end
(it may reach back over bars the scan has passed: they were below every level that held then,
and the anchor already holds their best price). Only the bars of a stretch that may hold an
exit are read bar by bar, eight at a time.

The scan is conservative: it reports a bar when the open or the range touches a level (a gap
through a level, a stop or a target inside the range), with exactly the levels
:meth:`Position.active_stop <tradeloop.core.position.Position.active_stop>` would give at that
bar. The broker then decides what happens on it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import numpy as np

from tradeloop.core.position import Position

__all__ = [
    "WINDOW",
    "ExitLevels",
    "Windows",
    "check_exit_levels",
    "next_exit_bar",
    "next_exit_bar_of",
    "span_clear",
    "window_extremes",
]

#: stretches up to this many bars are scanned in Python (numpy's per-call cost is higher)
_PY_SPAN = 96
#: with window extremes, up to this many bars (most of them passed a window at a time)
_WINDOW_SPAN = 1024
#: the width of :func:`window_extremes`' windows, in bars
WINDOW = 8
#: bars tested at once, by this many windows
_STRETCH = 8 * WINDOW
_INF = math.inf

#: a position's exit levels for :func:`next_exit_bar_of`: (direction, entry price, stop-loss,
#: take-profit, trailing fraction, trailing activation, trailing anchor)
ExitLevels = tuple[int, float, float | None, float | None, float | None, float | None, float | None]


#: :func:`window_extremes`: the highest highs and lowest lows of the windows of
#: :data:`WINDOW` bars starting at every bar (index ``i``: bars ``i`` to ``i + WINDOW - 1``)
Windows = tuple[Sequence[float], Sequence[float]]


def window_extremes(highs: np.ndarray, lows: np.ndarray) -> Windows:
    """``(tops, bottoms)``: for every bar ``i`` with a whole window after it, the highest high
    and the lowest low of bars ``i`` to ``i + WINDOW - 1`` (``n - WINDOW + 1`` values of ``n``
    bars, none when fewer), as memoryviews for :func:`next_exit_bar`'s ``windows``. Built by
    doubling: the windows of 2, 4 and 8 bars, each the pairwise extreme of two windows of
    half its width."""
    n = min(len(highs), len(lows))
    top = np.asarray(highs[:n], dtype=np.float64)
    bottom = np.asarray(lows[:n], dtype=np.float64)
    width = 1
    while width < WINDOW:
        if top.size > width:
            top = np.maximum(top[:-width], top[width:])
            bottom = np.minimum(bottom[:-width], bottom[width:])
        else:  # too few bars for a window this wide
            top, bottom = top[:0], bottom[:0]
        width *= 2
    return cast(Sequence[float], top.data), cast(Sequence[float], bottom.data)


def check_exit_levels(
    stop_loss: float | None,
    take_profit: float | None,
    trail_fraction: float | None,
    trail_activation: float | None,
) -> str | None:
    """What is wrong with a position's exit levels, or None when they can be checked.

    Stops and targets are prices: finite and above 0. A trailing stop is a fraction in
    (0, 1), its activation a finite fraction of at least 0. A NaN level would never trigger
    (every comparison with NaN is false), an infinite one neither: both are refused rather
    than silently ignored.
    """
    if (
        (stop_loss is None or 0.0 < stop_loss < _INF)
        and (take_profit is None or 0.0 < take_profit < _INF)
        and (trail_fraction is None or 0.0 < trail_fraction < 1.0)
        and (trail_activation is None or 0.0 <= trail_activation < _INF)
    ):
        return None  # the common case, without building anything (one call per entry)
    for name, level in (("stop_loss", stop_loss), ("take_profit", take_profit)):
        if level is not None and not (0.0 < level < _INF):
            return f"{name} must be a finite price above 0, got {level}"
    if trail_fraction is not None and not (0.0 < trail_fraction < 1.0):
        return f"trailing stop must be a fraction in (0, 1), got {trail_fraction}"
    if trail_activation is not None and not (0.0 <= trail_activation < _INF):
        return f"trailing activation must be a finite fraction >= 0, got {trail_activation}"
    return None


def _levels(
    lv: ExitLevels, owner: tuple[str, str] | None
) -> tuple[float, float, float | None, float, float]:
    """(fixed stop, target, trailing keep factor or None, arming anchor, anchor) as a long
    sees them; for a short every price is negated so the same comparisons apply."""
    direction, entry_price, stop_loss, take_profit, frac, act, trail_anchor = lv
    problem = check_exit_levels(stop_loss, take_profit, frac, act)
    if problem is not None:
        name = "position" if owner is None else f"position {owner[0]} in {owner[1]}"
        raise ValueError(f"{name}: {problem}")
    sign = 1.0 if direction > 0 else -1.0
    stop = -_INF if stop_loss is None else sign * stop_loss
    target = _INF if take_profit is None else sign * take_profit
    keep: float | None = None
    arm = -_INF
    anchor = -_INF
    if frac and trail_anchor is not None:
        keep = 1.0 - frac if sign > 0 else 1.0 + frac
        anchor = sign * trail_anchor
        if act:
            arm = sign * entry_price * (1.0 + act if sign > 0 else 1.0 - act)
    return stop, target, keep, arm, anchor


def next_exit_bar(
    pos: Position,
    opens: Sequence[float] | None,
    highs: Sequence[float],
    lows: Sequence[float],
    arrays: tuple[np.ndarray | None, np.ndarray, np.ndarray],
    start: int,
    stop: int,
    windows: Windows | None = None,
) -> tuple[int, float | None]:
    """Return ``(k, anchor)``: the first bar ``k`` in ``[start, stop)`` whose open, high or low
    reaches ``pos``'s stop, trailing stop or target (``stop`` when none does), and the
    trailing anchor as it stands before bar ``k`` (None without a trailing stop): see
    :func:`next_exit_bar_of`, which takes the levels themselves.

    Raises:
        ValueError: a level of ``pos`` is NaN, infinite or not above 0, or its trailing
            fraction is outside (0, 1) (:func:`check_exit_levels`).
    """
    return next_exit_bar_of(
        (
            pos.direction,
            pos.entry_price,
            pos.stop_loss,
            pos.take_profit,
            pos.trail_fraction,
            pos.trail_activation,
            pos.trail_anchor,
        ),
        opens,
        highs,
        lows,
        arrays,
        start,
        stop,
        windows,
        (pos.id, pos.symbol),
    )


def next_exit_bar_of(
    levels: ExitLevels,
    opens: Sequence[float] | None,
    highs: Sequence[float],
    lows: Sequence[float],
    arrays: tuple[np.ndarray | None, np.ndarray, np.ndarray],
    start: int,
    stop: int,
    windows: Windows | None = None,
    owner: tuple[str, str] | None = None,
    checked: bool = False,
) -> tuple[int, float | None]:
    """Return ``(k, anchor)``: the first bar ``k`` in ``[start, stop)`` whose open, high or low
    reaches the stop, trailing stop or target of a position with these ``levels`` (``stop``
    when none does), and the trailing anchor as it stands before bar ``k`` (None without a
    trailing stop). ``levels`` are a position's (direction, entry price, stop-loss,
    take-profit, trailing fraction, trailing activation, trailing anchor), as
    :class:`~tradeloop.core.position.Position` holds them: the broker scans at an entry's
    fill, before the position exists, and builds it once with the anchor moved.

    ``opens``/``highs``/``lows`` are the bars as lists or memoryviews (read for short
    stretches) and ``arrays`` the same columns as numpy arrays (read in windows for long ones).
    ``opens`` (and ``arrays[0]``) may be None when every open lies inside its bar's range
    (``low <= open <= high``, as the data check requires): a level the open reaches, the
    range reaches too, so only the range is read (the same bar is found, faster). Then
    ``windows`` (:func:`window_extremes` of the same highs and lows) let the Python loop pass
    a stretch of bars at a time (:func:`range_exit_bar`).

    ``checked`` says the caller has just found ``levels`` valid by :func:`check_exit_levels`
    (the broker at an entry's fill, before any cash moves), so they are not checked again.

    Raises:
        ValueError: a level is NaN, infinite or not above 0, or the trailing fraction is
            outside (0, 1) (:func:`check_exit_levels`; the message names ``owner``, a
            position's id and symbol), unless ``checked``.
    """
    if opens is None and windows is not None:
        direction, entry_price, sl, tp, frac, act, anchor = levels
        if not checked and check_exit_levels(sl, tp, frac, act) is not None:
            _levels(levels, owner)  # raises, naming the level
        return range_exit_bar(
            direction, entry_price, sl, tp, frac, act, anchor, highs, lows, arrays, windows,
            start, stop,
        )  # fmt: skip
    long = levels[0] > 0
    sign = 1.0 if long else -1.0
    fixed, target, keep, arm, anchor = _levels(levels, owner)
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
    return _finish_windows(arrays, long, fixed, target, keep, arm, anchor, k, stop)


def range_exit_bar(
    direction: int,
    entry_price: float,
    stop_loss: float | None,
    take_profit: float | None,
    trail_fraction: float | None,
    trail_activation: float | None,
    trail_anchor: float | None,
    highs: Sequence[float],
    lows: Sequence[float],
    arrays: tuple[np.ndarray | None, np.ndarray, np.ndarray],
    windows: Windows,
    start: int,
    stop: int,
) -> tuple[int, float | None]:
    """:func:`next_exit_bar_of` for bars whose opens lie inside their ranges, with the
    :func:`window_extremes` of ``highs`` and ``lows``, for levels :func:`check_exit_levels`
    found valid (the broker at an entry's fill, before any cash moves: the levels given one
    by one, as the order holds them). The levels are used as they are (no sign-flipped
    copies) up to ``_WINDOW_SPAN`` bars, numpy windows after that.

    A span of one stretch (``WINDOW`` to ``_STRETCH`` bars) that reaches no level is
    answered from its :func:`_stretch` by :func:`span_clear`, without the general scan's
    set-up: the same test as :func:`_scan_long`'s (:func:`_scan_short`'s) first stretch,
    with the same arithmetic; any other span goes the general way."""
    trailing = trail_fraction is not None and trail_anchor is not None  # a fraction in (0, 1)
    if WINDOW <= stop - start <= _STRETCH:
        h, low, _ = _stretch(windows[0], windows[1], start, start, stop)  # the whole span
        clear, moved = span_clear(
            direction, entry_price, stop_loss, take_profit, trail_fraction, trail_activation,
            trail_anchor, h, low,
        )  # fmt: skip
        if clear:
            return stop, moved
    end = stop if stop < start + _WINDOW_SPAN else start + _WINDOW_SPAN
    long = direction > 0
    if long:
        k, a = _scan_long(
            highs,
            lows,
            windows,
            start,
            end,
            -_INF if stop_loss is None else stop_loss,
            _INF if take_profit is None else take_profit,
            1.0 - trail_fraction if trailing else None,  # type: ignore[operator]
            entry_price * (1.0 + trail_activation) if trailing and trail_activation else -_INF,
            trail_anchor if trailing else -_INF,  # type: ignore[arg-type]
        )
    else:
        k, a = _scan_short(
            highs,
            lows,
            windows,
            start,
            end,
            _INF if stop_loss is None else stop_loss,
            -_INF if take_profit is None else take_profit,
            1.0 + trail_fraction if trailing else None,  # type: ignore[operator]
            entry_price * (1.0 - trail_activation) if trailing and trail_activation else _INF,
            trail_anchor if trailing else _INF,  # type: ignore[arg-type]
        )
    if k < end or k >= stop:
        return k, (a if trailing else None)
    fixed, target, keep, arm, _ = _levels(  # sign-flipped for the numpy windows
        (direction, entry_price, stop_loss, take_profit, trail_fraction, trail_activation, a),
        None,
    )
    return _finish_windows(arrays, long, fixed, target, keep, arm, a if long else -a, k, stop)


def span_clear(
    direction: int,
    entry_price: float,
    stop_loss: float | None,
    take_profit: float | None,
    trail_fraction: float | None,
    trail_activation: float | None,
    trail_anchor: float | None,
    high: float,
    low: float,
) -> tuple[bool, float | None]:
    """``(True, anchor after)`` when no bar of a span whose highest high is ``high`` and
    lowest low is ``low`` can reach a position's levels (bars whose opens lie inside their
    ranges), else ``(False, None)``.

    The test of one stretch of :func:`range_exit_bar`, for any span whose extremes the
    caller has: with the trailing anchor moved to the span's best price, the stop in force
    anywhere in the span is at most the stop of that anchor; when even that stop and the
    target lie outside ``[low, high]``, no bar reaches a level, and the anchor after the span
    is that best price (None without a trailing stop). A NaN extreme clears no level (every
    comparison with NaN is false). The levels are a position's, as :func:`check_exit_levels`
    accepts them.

    >>> span_clear(1, 100.0, 95.0, 110.0, None, None, None, 105.0, 97.0)
    (True, None)
    >>> span_clear(1, 100.0, 95.0, 110.0, 0.05, None, 100.0, 108.0, 102.0)  # trail 102.6
    (False, None)
    >>> span_clear(-1, 100.0, 104.0, None, 0.02, None, 100.0, 101.0, 98.0)  # trail 99.96
    (False, None)
    >>> span_clear(-1, 100.0, 104.0, None, 0.05, None, 100.0, 101.0, 98.0)
    (True, 98.0)
    """
    if direction > 0:
        if take_profit is None or high < take_profit:
            level = -_INF if stop_loss is None else stop_loss
            if trail_fraction is not None and trail_anchor is not None:  # trailing
                a = high if high > trail_anchor else trail_anchor
                if not trail_activation or a >= entry_price * (1.0 + trail_activation):
                    trail = a * (1.0 - trail_fraction)
                    if trail > level:
                        level = trail
                if low > level:
                    return True, a
            elif low > level:
                return True, None
    elif take_profit is None or low > take_profit:
        level = _INF if stop_loss is None else stop_loss
        if trail_fraction is not None and trail_anchor is not None:  # trailing
            a = low if low < trail_anchor else trail_anchor
            if not trail_activation or a <= entry_price * (1.0 - trail_activation):
                trail = a * (1.0 + trail_fraction)
                if trail < level:
                    level = trail
            if high < level:
                return True, a
        elif high < level:
            return True, None
    return False, None


def _finish_windows(
    arrays: tuple[np.ndarray | None, np.ndarray, np.ndarray],
    long: bool,
    fixed: float,
    target: float,
    keep: float | None,
    arm: float,
    anchor: float,
    k: int,
    stop: int,
) -> tuple[int, float | None]:
    """:func:`_scan_windows` from bar ``k`` on (sign-flipped levels), the anchor unflipped."""
    if k < stop:
        k, anchor = _scan_windows(arrays, long, fixed, target, keep, arm, anchor, k, stop)
    if keep is None:
        return k, None
    return k, (anchor if long else -anchor)


def _stretch(
    tops: Sequence[float], bottoms: Sequence[float], start: int, k: int, end: int
) -> tuple[float, float, int]:
    """``(highest high, lowest low, n)`` of the stretch of ``n`` bars from ``k`` (up to
    :data:`_STRETCH`, at most to ``end``) from its windows, the last one ending at the
    stretch's end (over bars from ``start`` on, passed already); ``n`` 0 when the bars
    ``[start, end)`` hold no window."""
    n = end - k
    if n < WINDOW and end - WINDOW < start:
        return 0.0, 0.0, 0
    if n > _STRETCH:
        n = _STRETCH
        last = k + _STRETCH - WINDOW
    else:
        last = end - WINDOW
    h, low = tops[last], bottoms[last]
    while k < last:
        x = tops[k]
        if x > h:
            h = x
        x = bottoms[k]
        if x < low:
            low = x
        k += WINDOW
    return h, low, n


def _scan_long(
    highs: Sequence[float],
    lows: Sequence[float],
    windows: Windows,
    start: int,
    end: int,
    fixed: float,
    target: float,
    keep: float | None,
    arm: float,
    anchor: float,
) -> tuple[int, float]:
    """A long's bars ``[start, end)``, a stretch at a time where its windows' extremes reach no
    level: ``(first bar reaching a level or end, anchor before it)``. Prices as they are;
    without a trailing stop ``keep`` is None (the stop stays ``fixed``)."""
    tops, bottoms = windows
    if keep is None:
        keep, arm = 1.0, _INF  # never armed: the anchor moves, the stop does not
    s = fixed
    if anchor >= arm:
        trail = anchor * keep
        s = trail if trail > fixed else fixed
    k = start
    while k < end:
        h, low, n = _stretch(tops, bottoms, start, k, end)
        if n and h < target:
            a = h if h > anchor else anchor
            if a >= arm:
                trail = a * keep
                level = trail if trail > fixed else fixed
            else:
                level = fixed
            if low > level:  # no bar of the stretch reaches the highest stop in it
                anchor, s, k = a, level, k + n
                continue
        nxt = k + WINDOW if k + WINDOW < end else end  # a level may be reached: bar by bar
        for j in range(k, nxt):
            h = highs[j]
            if lows[j] <= s or h >= target:
                return j, anchor
            if h > anchor:
                anchor = h
                if anchor >= arm:
                    trail = anchor * keep
                    s = trail if trail > fixed else fixed
        k = nxt
    return end, anchor


def _scan_short(
    highs: Sequence[float],
    lows: Sequence[float],
    windows: Windows,
    start: int,
    end: int,
    fixed: float,
    target: float,
    keep: float | None,
    arm: float,
    anchor: float,
) -> tuple[int, float]:
    """:func:`_scan_long` for a short, prices as they are: the stop above (``fixed``, +inf
    for none), the target below, the anchor following the lows, armed at or below ``arm``."""
    tops, bottoms = windows
    if keep is None:
        keep, arm = 1.0, -_INF
    s = fixed
    if anchor <= arm:
        trail = anchor * keep
        s = trail if trail < fixed else fixed
    k = start
    while k < end:
        h, low, n = _stretch(tops, bottoms, start, k, end)
        if n and low > target:
            a = low if low < anchor else anchor
            if a <= arm:
                trail = a * keep
                level = trail if trail < fixed else fixed
            else:
                level = fixed
            if h < level:
                anchor, s, k = a, level, k + n
                continue
        nxt = k + WINDOW if k + WINDOW < end else end
        for j in range(k, nxt):
            low = lows[j]
            if highs[j] >= s or low <= target:
                return j, anchor
            if low < anchor:
                anchor = low
                if anchor <= arm:
                    trail = anchor * keep
                    s = trail if trail < fixed else fixed
        k = nxt
    return end, anchor


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
