"""The exit scan finds exactly the bar where checking every bar would first find an exit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradeloop.core.position import Position
from tradeloop.execution.exit_scan import next_exit_bar


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


@settings(max_examples=300, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    direction=st.sampled_from([1, -1]),
    stop_frac=st.one_of(st.none(), st.floats(0.002, 0.2)),
    target_frac=st.one_of(st.none(), st.floats(0.002, 0.5)),
    trail=st.one_of(st.none(), st.floats(0.001, 0.3)),
    activation=st.one_of(st.none(), st.floats(0.001, 0.05)),
    start=st.integers(1, 50),
    length=st.integers(0, 3_000),
    range_only=st.booleans(),
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
    range_only: bool,
) -> None:
    # Arrange: levels around the entry (the bar before start), short and long stretches
    o, h, low = _walk(seed, start + length + 1)
    entry = float(o[start - 1])
    stop = None if stop_frac is None else entry * (1 - direction * stop_frac)
    target = None if target_frac is None else entry * (1 + direction * target_frac)
    pos = _position(direction, entry, stop, target, trail, activation)
    stop_at = start + length
    # Act: with the opens, or (every open inside its bar's range) with the range only
    if range_only:
        got = next_exit_bar(pos, None, h.tolist(), low.tolist(), (None, h, low), start, stop_at)
    else:
        got = next_exit_bar(pos, o.tolist(), h.tolist(), low.tolist(), (o, h, low), start, stop_at)
    # Assert
    assert got == _first_touch_by_hand(pos, o, h, low, start, stop_at)


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
