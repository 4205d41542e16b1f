"""The exit scan finds exactly the bar where checking every bar would first find an exit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tradeloop.core.instrument import Instrument
from tradeloop.core.orders import Bracket, Order, OrderSide, OrderType
from tradeloop.core.portfolio import Portfolio
from tradeloop.core.position import Position
from tradeloop.execution.config import FillPrice, SimulatedBrokerConfig
from tradeloop.execution.exit_scan import (
    WINDOW,
    next_exit_bar,
    next_exit_bar_of,
    span_clear,
    window_extremes,
)
from tradeloop.execution.simulated import SimulatedBroker


def _walk(seed: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A random walk of OHLC bars on a 0.01 grid (opens gap now and then)."""
    rng = np.random.default_rng(seed)
    close = np.round(100.0 * np.exp(np.cumsum(rng.normal(0, 0.004, n))), 2)
    prev = np.concatenate([[100.0], close[:-1]])
    gap = rng.random(n) < 0.05
    opens = np.round(np.where(gap, prev * (1 + rng.normal(0, 0.01, n)), prev), 2)
    high = np.round(np.maximum(opens, close) * (1 + rng.random(n) * 0.003), 2)
    low = np.round(np.minimum(opens, close) * (1 - rng.random(n) * 0.003), 2)
    return opens, high, low


def _first_touch_by_hand(
    pos: Position, o: np.ndarray, h: np.ndarray, low: np.ndarray, start: int, stop: int
) -> tuple[int, float | None]:
    """Bar by bar, the way the broker checks a position: the level in force from
    ``Position.active_stop``, the anchor moved after a bar without an exit."""
    anchor = pos.trail_anchor
    long = pos.direction > 0
    for k in range(start, stop):
        cur = Position(
            pos.id, pos.symbol, pos.direction, pos.quantity, pos.entry_price, pos.entry_ts,
            pos.entry_fee, pos.stop_loss, pos.take_profit, pos.trail_fraction, anchor, pos.tag,
            pos.trail_activation,
        )  # fmt: skip
        level, _ = cur.active_stop()
        tp = cur.take_profit
        if level is not None and (
            (o[k] <= level or low[k] <= level) if long else (o[k] >= level or h[k] >= level)
        ):
            return k, anchor
        if tp is not None and (
            (o[k] >= tp or h[k] >= tp) if long else (o[k] <= tp or low[k] <= tp)
        ):
            return k, anchor
        if pos.trail_fraction and anchor is not None:
            anchor = max(anchor, h[k]) if long else min(anchor, low[k])
    return stop, anchor


def _position(
    direction: int,
    entry: float,
    stop: float | None,
    target: float | None,
    trail: float | None,
    activation: float | None,
) -> Position:
    return Position(
        "p", "X", direction, 1.0, entry, 0, 0.0,
        stop_loss=stop, take_profit=target, trail_fraction=trail,
        trail_anchor=entry if trail else None, trail_activation=activation if trail else None,
    )  # fmt: skip


#: a random walk's seed and a position's levels around its entry, for the property tests
_LEVELS = {
    "seed": st.integers(0, 10_000),
    "direction": st.sampled_from([1, -1]),
    "stop_frac": st.one_of(st.none(), st.floats(0.002, 0.2)),
    "target_frac": st.one_of(st.none(), st.floats(0.002, 0.5)),
    "trail": st.one_of(st.none(), st.floats(0.001, 0.3)),
    "activation": st.one_of(st.none(), st.floats(0.001, 0.05)),
}


def _walk_and_position(
    seed: int,
    bars: int,
    start: int,
    direction: int,
    stop_frac: float | None,
    target_frac: float | None,
    trail: float | None,
    activation: float | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Position]:
    """A walk of ``bars`` bars and a position entered at the open of the bar before
    ``start``, its levels the given fractions away from the entry."""
    o, h, low = _walk(seed, bars)
    entry = float(o[start - 1])
    stop = None if stop_frac is None else entry * (1 - direction * stop_frac)
    target = None if target_frac is None else entry * (1 + direction * target_frac)
    return o, h, low, _position(direction, entry, stop, target, trail, activation)


@settings(max_examples=300, deadline=None)
@given(
    **_LEVELS,
    start=st.integers(1, 50),
    length=st.integers(0, 3_000),
    range_only=st.sampled_from(["opens", "range", "windows"]),
)
def test_the_scan_finds_the_first_exit_bar_and_the_anchor_before_it(
    seed: int,
    direction: int,
    stop_frac: float | None,
    target_frac: float | None,
    trail: float | None,
    activation: float | None,
    start: int,
    length: int,
    range_only: str,
) -> None:
    # Arrange: levels around the entry (the bar before start), short and long stretches
    o, h, low, pos = _walk_and_position(
        seed, start + length + 1, start, direction, stop_frac, target_frac, trail, activation
    )
    stop_at = start + length
    # Act: with the opens, or (every open inside its bar's range) with the range only, bar
    # by bar or a stretch at a time
    if range_only == "range":
        got = next_exit_bar(pos, None, h.tolist(), low.tolist(), (None, h, low), start, stop_at)
    elif range_only == "windows":
        windows = window_extremes(h, low)
        got = next_exit_bar(
            pos, None, h.tolist(), low.tolist(), (None, h, low), start, stop_at, windows
        )
    else:
        got = next_exit_bar(pos, o.tolist(), h.tolist(), low.tolist(), (o, h, low), start, stop_at)
    # Assert
    assert got == _first_touch_by_hand(pos, o, h, low, start, stop_at)


@settings(max_examples=200, deadline=None)
@given(
    **_LEVELS,
    moved=st.floats(0.0, 0.03),
    start=st.integers(1, 50),
    length=st.integers(0, 2_000),
    range_only=st.sampled_from(["opens", "range", "windows"]),
)
def test_the_scan_of_levels_equals_the_scan_of_the_position_holding_them(
    seed: int,
    direction: int,
    stop_frac: float | None,
    target_frac: float | None,
    trail: float | None,
    activation: float | None,
    moved: float,
    start: int,
    length: int,
    range_only: str,
) -> None:
    # Arrange: a position (its anchor already moved past the entry when trailing) and the
    # same levels as a tuple, the way the broker passes them at an entry's fill
    o, h, low, pos = _walk_and_position(
        seed, start + length + 1, start, direction, stop_frac, target_frac, trail, activation
    )
    if trail:
        from dataclasses import replace

        pos = replace(pos, trail_anchor=pos.entry_price * (1 + direction * moved))
    levels = (
        pos.direction, pos.entry_price, pos.stop_loss, pos.take_profit, pos.trail_fraction,
        pos.trail_activation, pos.trail_anchor,
    )  # fmt: skip
    opens = None if range_only != "opens" else o.tolist()
    arrays = (None if opens is None else o, h, low)
    windows = window_extremes(h, low) if range_only == "windows" else None
    stop_at = start + length
    # Act
    of_levels = next_exit_bar_of(
        levels, opens, h.tolist(), low.tolist(), arrays, start, stop_at, windows
    )
    of_position = next_exit_bar(
        pos, opens, h.tolist(), low.tolist(), arrays, start, stop_at, windows
    )
    # Assert: the same bar and anchor, and both the bar-by-bar answer
    assert of_levels == of_position
    assert of_levels == _first_touch_by_hand(pos, o, h, low, start, stop_at)


def test_bad_levels_are_refused_naming_the_position_when_one_is_given() -> None:
    # Arrange: a NaN stop, as levels with and without the position's id and symbol
    h, low = _calm_walk(1, 50)
    levels = (1, 100.0, float("nan"), None, None, None, None)
    args = (None, h.tolist(), low.tolist(), (None, h, low), 1, 50, window_extremes(h, low))
    # Act / Assert
    with pytest.raises(ValueError, match=r"^position p-7 in ETH: stop_loss"):
        next_exit_bar_of(levels, *args, ("p-7", "ETH"))
    with pytest.raises(ValueError, match=r"^position: stop_loss"):
        next_exit_bar_of(levels, *args)


@pytest.mark.parametrize("direction", [1, -1])
def test_a_gap_through_the_stop_is_found_at_the_gap_bar(direction: int) -> None:
    # Arrange: flat bars, then one bar that opens beyond the stop
    n = 500
    o = np.full(n, 100.0)
    h, low = o + 0.5, o - 0.5
    o[400] = h[400] = low[400] = 100.0 - direction * 10.0
    pos = _position(direction, 100.0, 100.0 - direction * 5.0, None, None, None)
    # Act
    k, anchor = next_exit_bar(pos, o.tolist(), h.tolist(), low.tolist(), (o, h, low), 1, n)
    # Assert
    assert (k, anchor) == (400, None)


def test_a_trailing_anchor_follows_the_best_price_over_a_stretch_without_exit() -> None:
    # Arrange: a steady climb, never 5% off its high
    n = 1_000
    close = 100.0 + 0.01 * np.arange(n)
    o, h, low = close, close + 0.02, close - 0.02
    pos = _position(1, 100.0, None, None, 0.05, None)
    # Act
    k, anchor = next_exit_bar(pos, o.tolist(), h.tolist(), low.tolist(), (o, h, low), 1, n)
    # Assert: no exit, the anchor is the highest high
    assert k == n
    assert anchor == float(h.max())


def _calm_walk(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Highs and lows of a calm random walk (0.1% a bar) on a 0.01 grid, opens inside
    the range: most stretches of bars reach no 1% level, some do."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    high = np.round(close * (1 + rng.random(n) * 0.0005), 2)
    low = np.round(close * (1 - rng.random(n) * 0.0005), 2)
    return high, low


@pytest.mark.parametrize("direction", [1, -1])
@pytest.mark.parametrize(
    ("stop_frac", "target_frac", "trail", "activation"),
    [
        (0.01, 0.02, 0.01, None),
        (None, None, 0.004, None),
        (0.01, 0.02, None, None),
        (0.02, None, 0.003, 0.002),
        (0.003, 0.003, None, None),
    ],
    ids=["sl-tp-trail", "trail", "sl-tp", "trail-armed-later", "stop-and-target-near"],
)
def test_window_steps_give_the_bar_by_bar_answer_from_every_start(
    direction: int,
    stop_frac: float | None,
    target_frac: float | None,
    trail: float | None,
    activation: float | None,
) -> None:
    # Arrange: entries at the first bars, each scanned to the next bars: every length up to
    # three stretches of eight windows, and 2-300 more
    h, low = _calm_walk(7, 4_000)
    rng = np.random.default_rng(3)
    windows = window_extremes(h, low)
    h_list, low_list = h.tolist(), low.tolist()
    checked = hits = 0
    lengths = [*range(1, 3 * 8 * WINDOW + 3), *rng.integers(2, 300, 6).tolist()]
    for start in range(1, 2 * WINDOW + 2):
        for length in lengths:
            entry = float((h[start - 1] + low[start - 1]) / 2)
            stop = None if stop_frac is None else entry * (1 - direction * stop_frac)
            target = None if target_frac is None else entry * (1 + direction * target_frac)
            pos = _position(direction, entry, stop, target, trail, activation)
            o = (h + low) / 2  # inside every bar's range: never the first to reach a level
            # Act
            got = next_exit_bar(
                pos, None, h_list, low_list, (None, h, low), start, start + length, windows
            )
            # Assert
            want = _first_touch_by_hand(pos, o, h, low, start, start + length)
            assert got == want
            checked += 1
            hits += want[0] < start + length
    assert 0 < hits < checked  # both outcomes are exercised


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("stop_loss", float("nan")),
        ("stop_loss", float("inf")),
        ("stop_loss", 0.0),
        ("stop_loss", -99.0),
        ("take_profit", float("nan")),
        ("take_profit", float("-inf")),
        ("take_profit", 0.0),
        ("trail_fraction", float("nan")),
        ("trail_fraction", 0.0),
        ("trail_fraction", 1.5),
        ("trail_fraction", -0.01),
        ("trail_activation", float("nan")),
        ("trail_activation", -0.01),
    ],
)
@pytest.mark.parametrize("windowed", [False, True])
def test_a_level_that_cannot_be_checked_is_an_error_not_a_silent_no_exit(
    field: str, value: float, windowed: bool
) -> None:
    # Arrange: a valid long, then one level made NaN, infinite, zero or negative
    from dataclasses import replace

    h, low = _calm_walk(1, 200)
    pos = _position(1, 100.0, 99.0, 102.0, 0.01, 0.001)
    bad = replace(pos, **{field: value})
    windows = window_extremes(h, low) if windowed else None
    # Act / Assert: the scan refuses the position, naming the level
    with pytest.raises(ValueError, match=field.split("_")[-1] if "trail" in field else field):
        next_exit_bar(bad, None, h.tolist(), low.tolist(), (None, h, low), 1, 200, windows)


@pytest.mark.parametrize("n", [0, 1, WINDOW - 1, WINDOW, WINDOW + 1, 1_603])
def test_window_extremes_are_the_highest_high_and_lowest_low_from_every_bar(n: int) -> None:
    # Arrange
    rng = np.random.default_rng(n)
    h = 100.0 + rng.random(n)
    low = h - rng.random(n)
    # Act
    tops, bottoms = window_extremes(h, low)
    # Assert: one value per bar with a whole window from it, by hand
    count = max(n - WINDOW + 1, 0)
    assert np.array_equal(np.asarray(tops), [h[i : i + WINDOW].max() for i in range(count)])
    assert np.array_equal(np.asarray(bottoms), [low[i : i + WINDOW].min() for i in range(count)])


@settings(max_examples=400, deadline=None)
@given(**_LEVELS, start=st.integers(1, 50), length=st.integers(1, 400))
def test_a_span_found_clear_by_its_extremes_has_no_exit_and_the_same_anchor(
    seed: int,
    direction: int,
    stop_frac: float | None,
    target_frac: float | None,
    trail: float | None,
    activation: float | None,
    start: int,
    length: int,
) -> None:
    # Arrange: a walk whose opens lie inside their ranges (as the span test requires) and a
    # position entered before ``start``; the span's highest high and lowest low
    o, h, low, pos = _walk_and_position(
        seed, start + length + 1, start, direction, stop_frac, target_frac, trail, activation
    )
    o = np.clip(o, low, h)
    stop_at = start + length
    high_max, low_min = float(h[start:stop_at].max()), float(low[start:stop_at].min())
    # Act
    clear, anchor = span_clear(
        pos.direction, pos.entry_price, pos.stop_loss, pos.take_profit, pos.trail_fraction,
        pos.trail_activation, pos.trail_anchor, high_max, low_min,
    )  # fmt: skip
    # Assert: clear only where checking every bar finds no exit, with the anchor it ends on
    by_hand = _first_touch_by_hand(pos, o, h, low, start, stop_at)
    if clear:
        assert by_hand == (stop_at, anchor)
    if pos.trail_fraction is None:  # fixed levels: clear exactly when both lie outside
        long = direction > 0
        stop_outside = pos.stop_loss is None or (
            pos.stop_loss < low_min if long else pos.stop_loss > high_max
        )
        target_outside = pos.take_profit is None or (
            pos.take_profit > high_max if long else pos.take_profit < low_min
        )
        assert clear == (stop_outside and target_outside)


@settings(max_examples=400, deadline=None)
@given(
    direction=_LEVELS["direction"],
    stop_frac=_LEVELS["stop_frac"],
    target_frac=_LEVELS["target_frac"],
    trail=_LEVELS["trail"],
    activation=_LEVELS["activation"],
    up=st.floats(0.0, 0.6),
    down=st.floats(0.0, 0.6),
)
def test_the_broker_tests_an_entrys_span_at_the_fill_as_span_clear_does(
    direction: int,
    stop_frac: float | None,
    target_frac: float | None,
    trail: float | None,
    activation: float | None,
    up: float,
    down: float,
) -> None:
    # Arrange: an entry at 100 with its levels (at least one: else there is nothing to
    # watch), filled where the backtest hands the broker the bars to scan (to bar 10) and
    # their highest high and lowest low
    assume(stop_frac is not None or target_frac is not None or trail is not None)
    price = 100.0
    stop = None if stop_frac is None else price * (1.0 - direction * stop_frac)
    target = None if target_frac is None else price * (1.0 + direction * target_frac)
    high, low = price * (1.0 + up), price * (1.0 - down)
    broker = SimulatedBroker(
        Portfolio(10_000.0),
        {"A": Instrument("A")},
        "1h",
        SimulatedBrokerConfig(fill_price=FillPrice.CLOSE),
    )
    broker.step = 0
    broker.fill_scan_stop, broker.fill_span = 10, (high, low)
    side = OrderSide.BUY if direction > 0 else OrderSide.SELL
    exits = Bracket(stop, target, trail, activation)
    # Act: the broker's own span test (inlined at the fill)
    broker.submit_order(Order(0, "A", side, OrderType.MARKET, 1.0, 1, exits=exits), 1, price)
    # Assert: cleared exactly when span_clear clears it, the trailing anchor moved as it says
    clear, moved = span_clear(
        direction, price, stop, target, trail, activation if trail else None,
        price if trail else None, high, low,
    )  # fmt: skip
    position = broker.portfolio.positions["A"]
    assert position.direction == direction
    assert (broker.fill_scan_hit == 10) is clear
    assert position.trail_anchor == (moved if clear else price if trail else None)


def test_a_span_with_a_nan_extreme_is_never_clear() -> None:
    # Arrange: data let through with NaN prices gives NaN extremes; a stop and a target that
    # the other extreme does not reach
    nan = float("nan")
    for direction, stop, target in ((1, 80.0, 120.0), (-1, 120.0, 80.0)):
        # Act / Assert: either extreme NaN, with and without a trailing stop
        for high, low in ((nan, 90.0), (110.0, nan)):
            for trail, anchor in ((None, None), (0.1, 100.0)):
                clear, _ = span_clear(
                    direction, 100.0, stop, target, trail, None, anchor, high, low
                )
                assert clear is False
