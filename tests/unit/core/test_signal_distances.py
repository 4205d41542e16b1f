"""A signal's stop and target given as distances from the reference close: checked when the
signal is made, placed at the prices a strategy computing them itself would get."""

from __future__ import annotations

import math
import pickle

import pytest

from tradeloop.core.errors import ConfigError
from tradeloop.core.orders import Bracket, OrderSide, order_from_signal
from tradeloop.core.portfolio import Portfolio
from tradeloop.core.signal import Signal, SignalAction


@pytest.mark.parametrize("close", [100.0, 27_123.45, 0.000123, 1.1])
@pytest.mark.parametrize(("sl", "tp"), [(0.01, 0.02), (0.003, None), (None, 0.07), (0.2, 0.5)])
def test_distances_are_placed_as_the_strategy_would_place_them(
    close: float, sl: float | None, tp: float | None
) -> None:
    # Arrange
    long = Signal.open_long("X", stop_loss_pct=sl, take_profit_pct=tp)
    short = Signal.open_short("X", stop_loss_pct=sl, take_profit_pct=tp)
    # Act / Assert: the same products as `close * (1 - d * sl)`, to the last bit
    for d, signal in ((1, long), (-1, short)):
        assert signal.exit_levels(close) == (
            None if sl is None else close * (1 - d * sl),
            None if tp is None else close * (1 + d * tp),
        )


def test_absolute_levels_are_returned_as_given_and_mix_with_a_distance() -> None:
    # Arrange
    absolute = Signal.open_long("X", stop_loss=95.0, take_profit=110.0)
    mixed = Signal.open_short("X", stop_loss_pct=0.05, take_profit=80.0)
    # Act / Assert: no reference needed without a distance
    assert absolute.exit_levels(math.nan) == (95.0, 110.0)
    assert mixed.exit_levels(100.0) == (100.0 * 1.05, 80.0)


@pytest.mark.parametrize("reference", [math.nan, 0.0, -5.0, math.inf])
def test_a_distance_without_a_price_is_an_error_naming_the_symbol(reference: float) -> None:
    # Arrange
    signal = Signal.open_long("ETH/USDT", stop_loss_pct=0.01)
    # Act / Assert
    with pytest.raises(ValueError, match=r"ETH/USDT: no price"):
        signal.exit_levels(reference)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"stop_loss_pct": 0.0}, "stop_loss_pct is a fraction in"),
        ({"stop_loss_pct": 1.0}, "stop_loss_pct is a fraction in"),
        ({"stop_loss_pct": -0.01}, "stop_loss_pct is a fraction in"),
        ({"stop_loss_pct": math.nan}, "stop_loss_pct is a fraction in"),
        ({"take_profit_pct": 0.0}, "take_profit_pct must be in"),
        ({"take_profit_pct": math.inf}, "take_profit_pct must be in"),
        ({"take_profit_pct": math.nan}, "take_profit_pct must be in"),
        ({"stop_loss": 99.0, "stop_loss_pct": 0.01}, "stop_loss or stop_loss_pct, not both"),
        ({"take_profit": 120.0, "take_profit_pct": 0.2}, "take_profit or take_profit_pct"),
    ],
)
def test_bad_distances_are_refused_when_the_signal_is_made(
    kwargs: dict[str, float], match: str
) -> None:
    # Arrange / Act / Assert
    with pytest.raises(ConfigError, match=match):
        Signal.open_long("X", **kwargs)


def test_a_short_target_distance_must_leave_a_price_above_zero() -> None:
    # Arrange / Act / Assert: 100% below the close is no price; a long may aim 150% above
    with pytest.raises(ConfigError, match=r"take_profit_pct must be in \(0, 1\) for open_short"):
        Signal.open_short("X", take_profit_pct=1.0)
    assert Signal.open_long("X", take_profit_pct=1.5).exit_levels(10.0) == (None, 25.0)


def test_the_kernel_id_copy_keeps_the_distances() -> None:
    # Arrange
    signal = Signal.open_long("X", stop_loss_pct=0.01, take_profit_pct=0.03, trailing_stop=0.02)
    # Act
    copy = signal.with_position_id("s:X:1")
    # Assert
    assert copy == Signal.open_long(
        "X", stop_loss_pct=0.01, take_profit_pct=0.03, trailing_stop=0.02, position_id="s:X:1"
    )


def test_the_order_carries_the_levels_placed_at_the_reference() -> None:
    # Arrange
    signal = Signal.open_short(
        "X", 0.5, stop_loss_pct=0.02, take_profit_pct=0.04, trailing_stop=0.01
    )
    # Act
    order = order_from_signal(signal, 7, Portfolio(1_000.0), 3, "p", reference=250.0)
    # Assert
    assert order.side is OrderSide.SELL
    assert order.exits is not None
    assert (order.exits.stop_loss, order.exits.take_profit, order.exits.trailing_stop) == (
        250.0 * (1 + 0.02),
        250.0 * (1 - 0.04),
        0.01,
    )
    assert (order.id, order.position_id, order.equity_fraction) == (3, "p", 0.5)
    # the hot path builds the Bracket without its constructor: the same value and type
    assert order.exits == Bracket(250.0 * (1 + 0.02), 250.0 * (1 - 0.04), 0.01)
    assert type(order.exits) is Bracket
    assert order.exits.trailing_activation is None


def test_a_bracket_is_an_immutable_value_with_named_levels() -> None:
    # Arrange
    exits = Bracket(99.0, take_profit=102.0)
    # Act / Assert: defaults, names, equality and hashing by value, no assignment, pickles
    assert (exits.stop_loss, exits.take_profit, exits.trailing_stop) == (99.0, 102.0, None)
    assert exits == Bracket(stop_loss=99.0, take_profit=102.0, trailing_activation=None)
    assert hash(exits) == hash(Bracket(99.0, 102.0))
    assert repr(exits) == (
        "Bracket(stop_loss=99.0, take_profit=102.0, trailing_stop=None, trailing_activation=None)"
    )
    with pytest.raises(AttributeError):
        exits.stop_loss = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        Bracket(1.0, nope=2)  # type: ignore[call-arg]
    assert pickle.loads(pickle.dumps(exits)) == exits


def test_an_order_with_a_distance_and_no_reference_is_refused() -> None:
    # Arrange
    signal = Signal.open_long("X", take_profit_pct=0.04)
    # Act / Assert
    with pytest.raises(ValueError, match="no price"):
        order_from_signal(signal, 7, Portfolio(1_000.0))


def test_a_close_takes_no_distance() -> None:
    # Arrange / Act / Assert: nothing would place it (a close order has no exits)
    with pytest.raises(ConfigError, match="a close takes no stop or target distance"):
        Signal("X", SignalAction.CLOSE, stop_loss_pct=0.05)


def test_a_distance_that_overflows_is_not_a_price() -> None:
    # Arrange: a finite fraction whose target around a finite close is infinite
    signal = Signal.open_long("X", take_profit_pct=1e308)
    # Act / Assert
    with pytest.raises(ValueError, match="not a price"):
        signal.exit_levels(100.0)


@pytest.mark.parametrize("reference", [100.0, 27_123.45, 0.000123, 1e-300, 1.7e308, math.nan, -5.0])
@pytest.mark.parametrize(
    ("sl", "tp", "stop", "target"),
    [(0.01, 0.02, None, None), (0.3, None, None, 120.0), (None, 0.07, 90.0, None)],
)
def test_the_order_places_its_levels_as_exit_levels_does(
    reference: float, sl: float | None, tp: float | None, stop: float | None, target: float | None
) -> None:
    # Arrange: order_from_signal computes the levels itself on the hot path; they must be
    # Signal.exit_levels' to the last bit, and fail as it fails (a level that overflows)
    for make in (Signal.open_long, Signal.open_short):
        absolute_target = target if make is Signal.open_long else None
        signal = make(
            "X", stop_loss_pct=sl, take_profit_pct=tp, stop_loss=stop, take_profit=absolute_target
        )
        try:
            expected: tuple[float | None, float | None] | str = signal.exit_levels(reference)
        except ValueError as exc:
            expected = str(exc)
        # Act
        try:
            order = order_from_signal(signal, 7, Portfolio(1_000.0), reference=reference)
            assert order.exits is not None
            got: tuple[float | None, float | None] | str = (
                order.exits.stop_loss,
                order.exits.take_profit,
            )
        except ValueError as exc:
            got = str(exc)
        # Assert
        assert got == expected
