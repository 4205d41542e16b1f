"""Simulated broker fills through the backtest kernel: timing, fees, sizing, slippage, lots,
shorts and end-of-run handling. Every expected number is worked out by hand below."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pytest

from tradeloop.core.bar import BarArrays
from tradeloop.core.instrument import Instrument
from tradeloop.core.portfolio import Portfolio
from tradeloop.core.position import ExitReason
from tradeloop.core.signal import Signal
from tradeloop.core.time import parse_time
from tradeloop.engine.config import RunConfig
from tradeloop.engine.result import BacktestResult
from tradeloop.engine.runner import run_on_bars
from tradeloop.strategy.base import NO_SIGNALS, Strategy
from tradeloop.strategy.view import MarketView

HOUR = 3_600_000_000_000
T0 = parse_time("2024-01-01T00:00:00Z")
SYM = "BTC"


def hourly(rows: Sequence[tuple[float, float, float, float]], symbol: str = SYM) -> BarArrays:
    """1h bars from ``(open, high, low, close)`` rows starting at T0."""
    arr = np.asarray(rows, dtype=np.float64)
    ts = T0 + np.arange(len(rows), dtype=np.int64) * HOUR
    return BarArrays(
        symbol, "1h", ts, arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3], np.ones(len(rows))
    )


class Scripted(Strategy):
    """Returns the signals scheduled for the completed bar index ``view.i``."""

    name = "scripted"

    def __init__(self, schedule: Mapping[int, Sequence[Signal]]) -> None:
        super().__init__()
        self.schedule = dict(schedule)

    def on_bar(self, view: MarketView, portfolio: Portfolio) -> Sequence[Signal]:
        return self.schedule.get(view.i, NO_SIGNALS)


def run(
    rows: Sequence[tuple[float, float, float, float]],
    schedule: Mapping[int, Sequence[Signal]],
    instruments: Mapping[str, Instrument] | None = None,
    **config: object,
) -> BacktestResult:
    return run_on_bars(
        Scripted(schedule), {SYM: hourly(rows)}, RunConfig(**config), instruments=instruments
    )


# bar 0 closes at 100; bar 1 opens at 102; bar 2 opens at 110; bar 3 closes at 120
ROWS = [
    (99.0, 101.0, 98.0, 100.0),
    (102.0, 104.0, 101.0, 103.0),
    (110.0, 112.0, 109.0, 111.0),
    (115.0, 121.0, 114.0, 120.0),
]


# --------------------------------------------------------------------------- fill timing


def test_broker_signal_on_bar_t_default_fills_at_next_open() -> None:
    # Arrange
    schedule = {0: [Signal.open_long(SYM)]}
    # Act
    result = run(ROWS, schedule)
    # Assert: filled at bar 1's open 102 with q = 10_000 / 102
    (trade,) = result.trades
    q = 10_000 / 102.0
    assert trade.entry_ts == T0 + HOUR
    assert trade.entry_price == 102.0
    assert trade.quantity == pytest.approx(q, rel=1e-12)
    # equity: bar 0 flat; then q * close (all cash spent)
    np.testing.assert_allclose(result.equity, [10_000.0, q * 103, q * 111, q * 120], rtol=1e-12)
    np.testing.assert_allclose(result.cash, [10_000.0, 0.0, 0.0, 0.0], atol=1e-9)


def test_broker_fill_price_close_fills_at_signal_bar_close() -> None:
    # Arrange
    schedule = {0: [Signal.open_long(SYM)]}
    # Act
    result = run(ROWS, schedule, fill_price="close")
    # Assert: filled at bar 0's close 100 at bar 0's time, q = 10_000 / 100 = 100
    (trade,) = result.trades
    assert trade.entry_ts == T0
    assert trade.entry_price == 100.0
    assert trade.quantity == pytest.approx(100.0)
    np.testing.assert_allclose(result.equity, [10_000.0, 10_300.0, 11_100.0, 12_000.0])


def test_broker_fee_charged_on_entry_and_exit_notional() -> None:
    # Arrange: fee 0.1%; long at bar 1 open 102, close at bar 2 open 110
    schedule = {0: [Signal.open_long(SYM)], 1: [Signal.close(SYM)]}
    # Act
    result = run(ROWS, schedule, fee=0.001)
    # Assert
    (trade,) = result.trades
    q = 10_000 / (102 * 1.001)  # 97.9413: cash / (price * (1 + fee))
    entry_fee = 0.001 * q * 102  # 9.9900
    exit_fee = 0.001 * q * 110  # 10.7735
    pnl = q * (110 - 102) - entry_fee - exit_fee  # 783.53 - 9.99 - 10.77 = 762.77
    assert trade.quantity == pytest.approx(q, rel=1e-12)
    assert trade.entry_fee == pytest.approx(entry_fee, rel=1e-12)
    assert trade.exit_fee == pytest.approx(exit_fee, rel=1e-12)
    assert trade.pnl == pytest.approx(pnl, rel=1e-12)
    assert trade.exit_reason is ExitReason.SIGNAL
    assert result.cash[-1] == pytest.approx(10_000 + pnl, rel=1e-12)
    assert result.metrics.fees_paid == pytest.approx(entry_fee + exit_fee, rel=1e-12)


def test_broker_equity_fraction_sizing_includes_fee() -> None:
    # Arrange: half the equity at fee 1%
    schedule = {0: [Signal.open_long(SYM, 0.5)]}
    # Act
    result = run(ROWS, schedule, fee=0.01)
    # Assert: budget 5_000 = q * 102 * 1.01 -> q = 48.5343...
    (trade,) = result.trades
    q = 5_000 / (102 * 1.01)
    assert trade.quantity == pytest.approx(q, rel=1e-12)
    # cash left: 10_000 - q*102 - 0.01*q*102 = 10_000 - 5_000
    assert result.cash[1] == pytest.approx(5_000.0, rel=1e-12)


def test_broker_quantity_sizing_buys_exact_units() -> None:
    # Arrange: 2.5 units at fee 0.2%
    schedule = {0: [Signal.open_long(SYM, 2.5, quantity=True)]}
    # Act
    result = run(ROWS, schedule, fee=0.002)
    # Assert: cash = 10_000 - 2.5*102 - 0.002*2.5*102 = 10_000 - 255 - 0.51 = 9_744.49
    (trade,) = result.trades
    assert trade.quantity == 2.5
    assert trade.entry_fee == pytest.approx(0.51)
    assert result.cash[1] == pytest.approx(9_744.49)
    assert result.equity[1] == pytest.approx(9_744.49 + 2.5 * 103)


def test_broker_quantity_sizing_beyond_cash_rejected_insufficient_cash() -> None:
    # Arrange: 100 units at 102 need 10_200 > 10_000
    schedule = {0: [Signal.open_long(SYM, 100.0, quantity=True)]}
    # Act
    result = run(ROWS, schedule)
    # Assert
    assert result.trades == []
    assert [r.reason for r in result.rejections] == ["insufficient_cash"]


def test_broker_slippage_worsens_long_entry_up_and_exit_down() -> None:
    # Arrange: 50 bps
    schedule = {0: [Signal.open_long(SYM, 1.0, quantity=True)], 1: [Signal.close(SYM)]}
    # Act
    result = run(ROWS, schedule, slippage_bps=50.0)
    # Assert: buy 102 * 1.005 = 102.51; sell 110 * 0.995 = 109.45
    (trade,) = result.trades
    assert trade.entry_price == pytest.approx(102.51)
    assert trade.exit_price == pytest.approx(109.45)
    assert trade.pnl == pytest.approx(109.45 - 102.51)


def test_broker_slippage_worsens_short_entry_down_and_exit_up() -> None:
    # Arrange: 50 bps
    schedule = {0: [Signal.open_short(SYM, 1.0, quantity=True)], 1: [Signal.close(SYM)]}
    # Act
    result = run(ROWS, schedule, slippage_bps=50.0)
    # Assert: sell 102 * 0.995 = 101.49; buy back 110 * 1.005 = 110.55
    (trade,) = result.trades
    assert trade.direction == -1
    assert trade.entry_price == pytest.approx(101.49)
    assert trade.exit_price == pytest.approx(110.55)
    assert trade.pnl == pytest.approx(101.49 - 110.55)


# --------------------------------------------------------------------------- instrument rules


def test_broker_lot_size_rounds_quantity_down() -> None:
    # Arrange: lot 0.1, fee 0.1% from the instrument
    inst = {SYM: Instrument(SYM, lot_size=0.1, taker_fee=0.001, maker_fee=0.001)}
    schedule = {0: [Signal.open_long(SYM)]}
    # Act
    result = run(ROWS, schedule, instruments=inst)
    # Assert: raw q = 10_000 / (102 * 1.001) = 97.941 -> 97.9 (979 lots of 0.1)
    (trade,) = result.trades
    assert trade.quantity == pytest.approx(97.9, abs=1e-12)
    fee = 0.001 * 97.9 * 102  # 9.98580
    assert trade.entry_fee == pytest.approx(fee)
    # cash = 10_000 - 97.9*102 - fee = 10_000 - 9_985.8 - 9.9858 = 4.2142
    assert result.cash[1] == pytest.approx(4.2142)


def test_broker_quantity_below_one_lot_rejected_zero_quantity() -> None:
    # Arrange: 0.05 units with lot 0.1
    inst = {SYM: Instrument(SYM, lot_size=0.1)}
    schedule = {0: [Signal.open_long(SYM, 0.05, quantity=True)]}
    # Act
    result = run(ROWS, schedule, instruments=inst)
    # Assert
    assert result.trades == []
    assert [r.reason for r in result.rejections] == ["zero_quantity"]


def test_broker_notional_below_min_notional_rejected() -> None:
    # Arrange: 5 units at 102 = 510 < 1_000
    inst = {SYM: Instrument(SYM, min_notional=1_000.0)}
    schedule = {0: [Signal.open_long(SYM, 5.0, quantity=True)]}
    # Act
    result = run(ROWS, schedule, instruments=inst)
    # Assert
    assert result.trades == []
    (rejection,) = result.rejections
    assert rejection.reason == "min_notional"
    assert rejection.ts == T0 + HOUR  # rejected when it would have filled
    np.testing.assert_array_equal(result.equity, np.full(4, 10_000.0))


# --------------------------------------------------------------------------- end of run


def test_broker_signal_on_last_bar_not_filled() -> None:
    # Arrange
    schedule = {3: [Signal.open_long(SYM)]}
    # Act
    result = run(ROWS, schedule)
    # Assert: recorded as a signal, never filled, not a rejection either
    assert len(result.signals) == 1
    assert result.trades == []
    assert result.rejections == []
    np.testing.assert_array_equal(result.equity, np.full(4, 10_000.0))


def test_broker_close_at_end_closes_at_last_close_with_reason_end() -> None:
    # Arrange: fee 0.1%
    schedule = {0: [Signal.open_long(SYM)]}
    # Act
    result = run(ROWS, schedule, fee=0.001, close_at_end=True)
    # Assert
    (trade,) = result.trades
    q = 10_000 / (102 * 1.001)
    exit_fee = 0.001 * q * 120
    assert trade.exit_reason is ExitReason.END
    assert trade.exit_ts == T0 + 3 * HOUR
    assert trade.exit_price == 120.0
    assert trade.exit_fee == pytest.approx(exit_fee, rel=1e-12)
    # cash after = q*120 - exit_fee; equity at the end equals cash (flat)
    assert result.cash[-1] == pytest.approx(q * 120 - exit_fee, rel=1e-12)
    assert result.equity[-1] == pytest.approx(result.cash[-1], rel=1e-12)
    assert result.metrics.trade_count == 1


@pytest.mark.parametrize(("signal", "direction"), [(Signal.open_long, 1), (Signal.open_short, -1)])
def test_broker_close_at_end_pays_slippage_against_the_position(
    signal: Callable[[str], Signal], direction: int
) -> None:
    # Arrange: 10 bps of slippage, no fee; entry at bar 1's open, the end at bar 3's close
    schedule = {0: [signal(SYM)]}
    # Act
    result = run(ROWS, schedule, slippage_bps=10.0, close_at_end=True)
    # Assert: the end is a market exit like any other (a long sells lower, a short buys higher)
    (trade,) = result.trades
    entry = 102.0 * (1 + direction * 0.001)
    exit_price = 120.0 * (1 - direction * 0.001)
    assert trade.exit_reason is ExitReason.END
    assert trade.entry_price == pytest.approx(entry, rel=1e-15)
    assert trade.exit_price == pytest.approx(exit_price, rel=1e-15)
    q = 10_000 / entry
    assert trade.pnl == pytest.approx(direction * q * (exit_price - entry), rel=1e-12)
    assert result.equity[-1] == pytest.approx(10_000 + trade.pnl, rel=1e-12)


def test_broker_open_position_at_end_reported_without_exit() -> None:
    # Arrange: fee 0.1%, close_at_end off (the default)
    schedule = {0: [Signal.open_long(SYM)]}
    # Act
    result = run(ROWS, schedule, fee=0.001)
    # Assert: one open trade marked at the last close 120, pnl after the entry fee
    (trade,) = result.trades
    q = 10_000 / (102 * 1.001)
    entry_fee = 0.001 * q * 102
    assert trade.exit_ts is None
    assert trade.exit_price is None
    assert trade.exit_reason is None
    assert not trade.is_closed
    assert trade.pnl == pytest.approx(q * (120 - 102) - entry_fee, rel=1e-12)
    assert result.closed_trades == []
    assert result.metrics.trade_count == 0
    assert result.equity[-1] == pytest.approx(10_000 + trade.pnl, rel=1e-12)


def test_broker_open_position_at_end_entry_fee_counted_in_fees_paid() -> None:
    # Arrange: the entry fee was paid in cash although the position is still open
    schedule = {0: [Signal.open_long(SYM)]}
    # Act
    result = run(ROWS, schedule, fee=0.001)
    # Assert: fees_paid = 0.001 * q * 102 = 9.99...
    q = 10_000 / (102 * 1.001)
    assert result.metrics.fees_paid == pytest.approx(0.001 * q * 102, rel=1e-12)


def test_broker_close_without_position_rejected_no_position() -> None:
    # Arrange
    schedule = {0: [Signal.close(SYM)]}
    # Act
    result = run(ROWS, schedule)
    # Assert
    assert [r.reason for r in result.rejections] == ["no_position"]


def test_broker_second_open_same_direction_rejected_already_open() -> None:
    # Arrange
    schedule = {0: [Signal.open_long(SYM, 0.5)], 1: [Signal.open_long(SYM, 0.5)]}
    # Act
    result = run(ROWS, schedule)
    # Assert: the first position stays, the second is refused
    assert len(result.trades) == 1
    assert [r.reason for r in result.rejections] == ["already_open"]


# --------------------------------------------------------------------------- shorts

# short at 100 (bar 1 open), marked at 95, covered at 90 (bar 2 open)
SHORT_ROWS = [
    (100.0, 100.0, 100.0, 100.0),
    (100.0, 101.0, 94.0, 95.0),
    (90.0, 92.0, 89.0, 91.0),
]


def test_broker_open_short_price_falls_profits() -> None:
    # Arrange
    schedule = {0: [Signal.open_short(SYM)], 1: [Signal.close(SYM)]}
    # Act
    result = run(SHORT_ROWS, schedule)
    # Assert: q = 10_000 / 100 = 100 sold; pnl = -1 * 100 * (90 - 100) = +1_000
    (trade,) = result.trades
    assert trade.direction == -1
    assert trade.quantity == pytest.approx(100.0)
    assert trade.pnl == pytest.approx(1_000.0)
    # cash after the sale = 10_000 + 100*100 = 20_000;
    # equity at bar 1 = cash + signed qty * close = 20_000 - 100*95 = 10_500
    assert result.cash[1] == pytest.approx(20_000.0)
    assert result.equity[1] == pytest.approx(10_500.0)
    # after covering: 20_000 - 100*90 = 11_000
    assert result.cash[2] == pytest.approx(11_000.0)
    assert result.equity[2] == pytest.approx(11_000.0)


def test_broker_reversal_long_to_short_closes_then_opens() -> None:
    # Arrange: long at 102 (bar 1 open), reverse at 110 (bar 2 open)
    schedule = {0: [Signal.open_long(SYM)], 1: [Signal.open_short(SYM)]}
    # Act
    result = run(ROWS, schedule)
    # Assert
    long_trade, short_trade = result.trades
    q_long = 10_000 / 102
    assert long_trade.direction == 1
    assert long_trade.exit_reason is ExitReason.SIGNAL
    assert long_trade.exit_ts == T0 + 2 * HOUR
    assert long_trade.exit_price == 110.0
    assert long_trade.pnl == pytest.approx(q_long * 8, rel=1e-12)
    # short sized on the equity after the close: q = (q_long * 110) / 110 = q_long
    equity_after_close = q_long * 110
    assert short_trade.direction == -1
    assert short_trade.entry_ts == T0 + 2 * HOUR
    assert short_trade.entry_price == 110.0
    assert short_trade.quantity == pytest.approx(equity_after_close / 110, rel=1e-12)
    assert short_trade.exit_ts is None
    # bar 3: cash = 2 * q_long*110, equity = cash - q*120
    assert result.equity[3] == pytest.approx(2 * q_long * 110 - q_long * 120, rel=1e-12)


def test_broker_allow_short_false_rejects_short_disabled() -> None:
    # Arrange
    schedule = {1: [Signal.open_short(SYM)]}
    # Act
    result = run(ROWS, schedule, allow_short=False)
    # Assert: refused at submission, at the signal bar's time
    assert result.trades == []
    (rejection,) = result.rejections
    assert rejection.reason == "short_disabled"
    assert rejection.ts == T0 + HOUR
    assert rejection.symbol == SYM


def test_broker_close_fill_with_slippage_on_last_bar_open_trade_marked_at_close() -> None:
    # Arrange: fill_price="close", 50 bps; buy 1 unit at the last close 120 * 1.005 = 120.6
    schedule = {3: [Signal.open_long(SYM, 1.0, quantity=True)]}
    # Act
    result = run(ROWS, schedule, fill_price="close", slippage_bps=50.0)
    # Assert: marked at the close 120, the open trade is down 1 * (120 - 120.6) = -0.6,
    # matching the equity curve 10_000 - 120.6 + 120 = 9_999.4
    (trade,) = result.trades
    assert trade.entry_price == pytest.approx(120.6)
    assert result.equity[-1] == pytest.approx(9_999.4)
    assert trade.pnl == pytest.approx(-0.6)


def test_broker_signal_for_symbol_without_data_rejected_unknown_symbol() -> None:
    # Arrange
    schedule = {0: [Signal.open_long("DOGE")]}
    # Act
    result = run(ROWS, schedule)
    # Assert
    assert result.trades == []
    assert [(r.symbol, r.reason) for r in result.rejections] == [("DOGE", "unknown_symbol")]
