"""Core domain types: Bar, Signal, Position, Trade, Instrument, Portfolio, money and time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

from tradeloop.core.bar import Bar, BarArrays
from tradeloop.core.errors import ConfigError, DataError, StrategyError, did_you_mean
from tradeloop.core.instrument import Instrument
from tradeloop.core.money import fee_for, pnl_for, quantity_for_budget
from tradeloop.core.portfolio import Portfolio
from tradeloop.core.position import ExitReason, Position, Trade
from tradeloop.core.signal import Signal, SignalAction, SizeMode
from tradeloop.core.time import parse_time, to_iso


def make_bar(o: float, h: float, low: float, c: float) -> Bar:
    return Bar("X", "1h", 0, o, h, low, c, 1.0)


# --------------------------------------------------------------------------- Bar


def test_bar_close_above_open_is_bullish() -> None:
    # Arrange
    bar = make_bar(100.0, 110.0, 95.0, 104.0)
    # Act / Assert
    assert bar.is_bullish
    assert not bar.is_bearish
    assert bar.range == 15.0  # 110 - 95
    assert bar.body == 4.0  # |104 - 100|


def test_bar_close_below_open_is_bearish() -> None:
    # Arrange
    bar = make_bar(100.0, 101.0, 90.0, 93.0)
    # Act / Assert
    assert bar.is_bearish
    assert not bar.is_bullish
    assert bar.range == 11.0
    assert bar.body == 7.0


def test_bar_doji_neither_bullish_nor_bearish() -> None:
    # Arrange
    bar = make_bar(100.0, 101.0, 99.0, 100.0)
    # Act / Assert
    assert not bar.is_bullish
    assert not bar.is_bearish
    assert bar.body == 0.0


def test_bar_time_iso_is_utc() -> None:
    # Arrange
    bar = Bar("X", "1h", parse_time("2024-01-02T03:00:00Z"), 1, 1, 1, 1, 1)
    # Act / Assert
    assert bar.time_iso == "2024-01-02T03:00:00+00:00"


def test_bar_arrays_are_read_only_and_slice_shares_memory() -> None:
    # Arrange
    ts = np.arange(4, dtype=np.int64)
    values = np.array([1.0, 2.0, 3.0, 4.0])
    bars = BarArrays("X", "1m", ts, values, values + 1, values - 1, values, np.ones(4))
    # Act
    part = bars.slice(1, 3)
    # Assert
    assert len(part) == 2
    assert part.close.tolist() == [2.0, 3.0]
    assert np.shares_memory(part.close, bars.close)
    with pytest.raises(ValueError, match="read-only"):
        bars.close[0] = 9.0
    assert bars.bar(2) == Bar("X", "1m", 2, 3.0, 4.0, 2.0, 3.0, 1.0)


# --------------------------------------------------------------------------- Signal


def test_signal_factories_set_action_and_size_mode() -> None:
    # Arrange / Act
    long_ = Signal.open_long("X", 0.5, stop_loss=90.0, take_profit=120.0, trailing_stop=0.02)
    short = Signal.open_short("X", 3.0, quantity=True)
    close = Signal.close("X", tag="exit")
    # Assert
    assert long_.action is SignalAction.OPEN_LONG
    assert long_.size_mode is SizeMode.EQUITY_FRACTION
    assert (long_.size, long_.stop_loss, long_.take_profit, long_.trailing_stop) == (
        0.5,
        90.0,
        120.0,
        0.02,
    )
    assert short.action is SignalAction.OPEN_SHORT
    assert short.size_mode is SizeMode.QUANTITY
    assert short.size == 3.0
    assert close.action is SignalAction.CLOSE
    assert close.tag == "exit"
    # the positional close equals the keyword construction (every other field its default)
    assert close == Signal("X", SignalAction.CLOSE, tag="exit")
    assert Signal.close("X", position_id="p") == Signal("X", SignalAction.CLOSE, position_id="p")


@pytest.mark.parametrize("size", [0.0, -1.0, float("nan"), float("inf")])
def test_signal_non_positive_or_non_finite_size_config_error(size: float) -> None:
    # Arrange / Act / Assert
    with pytest.raises(ConfigError, match="size must be > 0"):
        Signal.open_long("X", size)


@pytest.mark.parametrize("field", ["stop_loss", "take_profit"])
@pytest.mark.parametrize("level", [0.0, -1.0, float("nan"), float("inf"), float("-inf")])
def test_signal_non_positive_or_non_finite_level_config_error(field: str, level: float) -> None:
    # Arrange / Act / Assert: a level that could never trigger is refused, naming it
    with pytest.raises(ConfigError, match=f"{field} must be > 0"):
        Signal.open_long("X", 0.5, **{field: level})
    # a finite level above 0 is kept as given
    assert getattr(Signal.open_short("X", 0.5, **{field: 1e-9}), field) == 1e-9


def test_signal_implausible_equity_fraction_config_error() -> None:
    # Arrange / Act / Assert
    with pytest.raises(ConfigError, match="not plausible"):
        Signal.open_long("X", 101.0)


def test_signal_large_quantity_accepted() -> None:
    # Arrange / Act
    signal = Signal.open_long("X", 5_000.0, quantity=True)
    # Assert
    assert signal.size == 5_000.0


@pytest.mark.parametrize("trail", [0.0, 1.0, -0.1, 1.5])
def test_signal_trailing_stop_outside_open_unit_interval_config_error(trail: float) -> None:
    # Arrange / Act / Assert
    with pytest.raises(ConfigError, match="trailing_stop"):
        Signal.open_long("X", trailing_stop=trail)


@pytest.mark.parametrize("confidence", [-0.01, 1.01])
def test_signal_confidence_outside_unit_interval_config_error(confidence: float) -> None:
    # Arrange / Act / Assert
    with pytest.raises(ConfigError, match="confidence"):
        Signal.open_short("X", confidence=confidence)


@pytest.mark.parametrize("confidence", [0.0, 1.0])
def test_signal_confidence_at_bounds_accepted(confidence: float) -> None:
    # Arrange / Act
    signal = Signal.open_long("X", confidence=confidence)
    # Assert
    assert signal.confidence == confidence


@pytest.mark.parametrize("field", ["stop_loss", "take_profit"])
def test_signal_non_positive_stop_level_config_error(field: str) -> None:
    # Arrange / Act / Assert
    with pytest.raises(ConfigError, match=field):
        Signal.open_long("X", **{field: 0.0})


def test_signal_close_skips_size_checks() -> None:
    # Arrange / Act
    signal = Signal("X", SignalAction.CLOSE, size=0.0)
    # Assert
    assert signal.action is SignalAction.CLOSE


# --------------------------------------------------------------------------- Position, Trade


def test_position_long_unrealized_pnl_after_entry_fee() -> None:
    # Arrange: 2 long at 100 with a 0.2 entry fee
    pos = Position("p", "X", 1, 2.0, 100.0, 0, 0.2)
    # Act / Assert: 2 * (110 - 100) - 0.2 = 19.8
    assert pos.unrealized_pnl(110.0) == pytest.approx(19.8)
    assert pos.market_value(110.0) == 220.0
    assert pos.signed_quantity == 2.0
    assert pos.is_long


def test_position_short_unrealized_pnl_gains_when_price_falls() -> None:
    # Arrange: 2 short at 100 with a 0.2 entry fee
    pos = Position("p", "X", -1, 2.0, 100.0, 0, 0.2)
    # Act / Assert: -1 * 2 * (90 - 100) - 0.2 = 19.8; -1 * 2 * (110 - 100) - 0.2 = -20.2
    assert pos.unrealized_pnl(90.0) == pytest.approx(19.8)
    assert pos.unrealized_pnl(110.0) == pytest.approx(-20.2)
    assert pos.market_value(90.0) == -180.0
    assert pos.signed_quantity == -2.0
    assert not pos.is_long


def test_position_trailing_stop_price_long_below_and_short_above_anchor() -> None:
    # Arrange
    long_ = Position("a", "X", 1, 1.0, 100.0, 0, 0.0, trail_fraction=0.05, trail_anchor=120.0)
    short = Position("b", "X", -1, 1.0, 100.0, 0, 0.0, trail_fraction=0.05, trail_anchor=80.0)
    plain = Position("c", "X", 1, 1.0, 100.0, 0, 0.0)
    # Act / Assert: 120 * 0.95 = 114; 80 * 1.05 = 84
    assert long_.trailing_stop_price() == pytest.approx(114.0)
    assert short.trailing_stop_price() == pytest.approx(84.0)
    assert plain.trailing_stop_price() is None


def test_trade_pnl_pct_is_net_pnl_over_entry_notional() -> None:
    # Arrange: 4 units at 50 -> notional 200; pnl 10
    t = Trade("t", "X", 1, 4.0, 0, 50.0, 3_600_000_000_000, 52.6, 0.1, 0.1, 10.0, ExitReason.SIGNAL)
    # Act / Assert
    assert t.pnl_pct == pytest.approx(0.05)  # 10 / 200
    assert t.fees == pytest.approx(0.2)
    assert t.holding_ns == 3_600_000_000_000
    assert t.is_closed


def test_trade_open_has_zero_holding_time() -> None:
    # Arrange
    t = Trade("t", "X", -1, 1.0, 5, 50.0, None, None, 0.0, 0.0, 0.0, None)
    # Act / Assert
    assert not t.is_closed
    assert t.holding_ns == 0


# --------------------------------------------------------------------------- Instrument


def test_instrument_round_quantity_floors_to_lots() -> None:
    # Arrange
    inst = Instrument("X", lot_size=0.001)
    # Act / Assert: 0.12345 -> 123 lots; 0.1239999 -> 123 lots (never up)
    assert inst.round_quantity(0.12345) == 0.123
    assert inst.round_quantity(0.1239999) == 0.123
    assert inst.round_quantity(-0.12345) == -0.123
    assert inst.round_quantity(0.0009) == 0.0


def test_instrument_round_quantity_exact_multiple_survives_float_noise() -> None:
    # Arrange: 0.3 / 0.1 = 2.9999999999999996 in float
    inst = Instrument("X", lot_size=0.1)
    # Act / Assert
    assert inst.round_quantity(0.3) == pytest.approx(0.3)


def test_instrument_round_price_to_nearest_tick() -> None:
    # Arrange
    inst = Instrument("X", tick_size=0.05)
    # Act / Assert: 1.02 -> 1.00, 1.03 -> 1.05
    assert inst.round_price(1.02) == pytest.approx(1.0)
    assert inst.round_price(1.03) == pytest.approx(1.05)
    assert inst.round_price(101.26) == pytest.approx(101.25)


def test_instrument_zero_tick_and_lot_leave_values_unchanged() -> None:
    # Arrange
    inst = Instrument("X")
    # Act / Assert
    assert inst.round_price(1.23456789) == 1.23456789
    assert inst.round_quantity(0.987654321) == 0.987654321


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"symbol": ""}, "symbol"),
        ({"symbol": "X", "tick_size": -1.0}, "tick_size"),
        ({"symbol": "X", "taker_fee": float("nan")}, "taker_fee"),
        ({"symbol": "X", "contract_multiplier": 0.0}, "contract_multiplier"),
    ],
)
def test_instrument_invalid_fields_config_error(kwargs: dict[str, object], match: str) -> None:
    # Arrange / Act / Assert
    with pytest.raises(ConfigError, match=match):
        Instrument(**kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- Portfolio, money


def test_portfolio_equity_is_cash_plus_signed_marked_positions() -> None:
    # Arrange: long 2 A bought at 100, short 3 B sold at 50; cash after both = 10_000 - 200 +
    # 150 = 9_950
    portfolio = Portfolio(10_000.0)
    portfolio.balance = 9_950.0
    portfolio.positions["A"] = Position("a", "A", 1, 2.0, 100.0, 0, 0.0)
    portfolio.positions["B"] = Position("b", "B", -1, 3.0, 50.0, 0, 0.0)
    portfolio.marks.update({"A": 110.0, "B": 40.0})
    # Act / Assert: 9_950 + 2*110 - 3*40 = 10_050 = 10_000 + 20 + 30
    assert portfolio.equity == pytest.approx(10_050.0)
    assert portfolio.unrealized_pnl == pytest.approx(50.0)
    assert portfolio.margin_used == pytest.approx(2 * 110 + 3 * 40)
    assert not portfolio.is_flat("A")
    assert portfolio.is_flat("C")


def test_money_helpers_by_hand() -> None:
    # Arrange / Act / Assert
    assert fee_for(-2.0, 100.0, 0.001) == pytest.approx(0.2)  # sign of quantity ignored
    assert quantity_for_budget(10_100.0, 100.0, 0.01) == pytest.approx(100.0)
    assert pnl_for(1, 2.0, 100.0, 90.0) == -20.0
    assert pnl_for(-1, 2.0, 100.0, 90.0) == 20.0


# --------------------------------------------------------------------------- time, errors


def test_parse_time_naive_datetime_config_error() -> None:
    # Arrange
    naive = datetime(2024, 1, 1)  # noqa: DTZ001 - the point of the test
    # Act / Assert
    with pytest.raises(ConfigError, match="naive datetime"):
        parse_time(naive)


def test_parse_time_aware_datetime_and_strings_agree() -> None:
    # Arrange
    expected = 1_704_067_200 * 1_000_000_000  # 2024-01-01T00:00:00Z
    plus_two = timezone(timedelta(hours=2))
    # Act / Assert
    assert parse_time(datetime(2024, 1, 1, tzinfo=UTC)) == expected
    assert parse_time(datetime(2024, 1, 1, 2, tzinfo=plus_two)) == expected
    assert parse_time("2024-01-01") == expected
    assert parse_time("2024-01-01T00:00:00Z") == expected
    assert parse_time("2024-01-01T02:00:00+02:00") == expected
    assert parse_time(np.datetime64("2024-01-01T00:00:00")) == expected
    assert to_iso(expected) == "2024-01-01T00:00:00+00:00"


@pytest.mark.parametrize("bad", ["yesterday", "2024-13-01", True])
def test_parse_time_unreadable_value_config_error(bad: object) -> None:
    # Arrange / Act / Assert
    with pytest.raises(ConfigError):
        parse_time(bad)  # type: ignore[arg-type]


def test_errors_messages_name_their_fields() -> None:
    # Arrange / Act
    data = DataError("bad price", file="a.csv", row=3, field="close")
    strat = StrategyError("boom", strategy="s", time_iso="2024-01-01T00:00:00+00:00")
    # Assert
    assert str(data) == "file a.csv, row 3, field 'close': bad price"
    assert str(strat) == "strategy 's' at bar 2024-01-01T00:00:00+00:00: boom"
    assert did_you_mean("fsat", ["fast", "slow"]) == " Did you mean: 'fast'?"
    assert did_you_mean("zzz", ["fast", "slow"]) == ""
