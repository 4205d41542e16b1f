"""Stop-loss, take-profit and trailing-stop exits of the simulated broker, long and short.

Every scenario opens 100 units at 100 (signal on bar 0, fill at bar 1's open) with no fee,
so a move of 1 in price is 100 of P&L.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pytest

from tradeloop.core.bar import BarArrays
from tradeloop.core.portfolio import Portfolio
from tradeloop.core.position import ExitReason, Trade
from tradeloop.core.signal import Signal
from tradeloop.core.time import parse_time
from tradeloop.engine.config import RunConfig
from tradeloop.engine.result import BacktestResult
from tradeloop.engine.runner import run_on_bars
from tradeloop.strategy.base import NO_SIGNALS, Strategy
from tradeloop.strategy.view import MarketView

HOUR = 3_600_000_000_000
T0 = parse_time("2024-03-01T00:00:00Z")
SYM = "ETH"
FLAT = (100.0, 100.0, 100.0, 100.0)


def hourly(rows: Sequence[tuple[float, float, float, float]]) -> BarArrays:
    """1h bars from ``(open, high, low, close)`` rows starting at T0."""
    arr = np.asarray(rows, dtype=np.float64)
    ts = T0 + np.arange(len(rows), dtype=np.int64) * HOUR
    return BarArrays(SYM, "1h", ts, arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3], np.ones(len(rows)))


class Scripted(Strategy):
    """Returns the signals scheduled for the completed bar index ``view.i``."""

    name = "scripted_stops"

    def __init__(self, schedule: Mapping[int, Sequence[Signal]]) -> None:
        super().__init__()
        self.schedule = dict(schedule)

    def on_bar(self, view: MarketView, portfolio: Portfolio) -> Sequence[Signal]:
        return self.schedule.get(view.i, NO_SIGNALS)


def run_one(
    rows: Sequence[tuple[float, float, float, float]], entry: Signal, **config: object
) -> tuple[Trade, BacktestResult]:
    result = run_on_bars(Scripted({0: [entry]}), {SYM: hourly(rows)}, RunConfig(**config))
    assert len(result.trades) == 1
    return result.trades[0], result


# --------------------------------------------------------------------------- long


def test_stops_long_stop_loss_touched_by_low_fills_at_stop() -> None:
    # Arrange: bar 1 low 97 stays above 95; bar 2 low 94 crosses it
    rows = [FLAT, (100.0, 101.0, 97.0, 99.0), (98.0, 99.0, 94.0, 96.0), (96.0, 97.0, 95.5, 96.0)]
    # Act
    trade, result = run_one(rows, Signal.open_long(SYM, stop_loss=95.0))
    # Assert: exit at the stop 95, pnl = 100 * (95 - 100) = -500
    assert trade.exit_reason is ExitReason.STOP_LOSS
    assert trade.exit_ts == T0 + 2 * HOUR
    assert trade.exit_price == 95.0
    assert trade.pnl == pytest.approx(-500.0)
    assert result.equity[-1] == pytest.approx(9_500.0)


def test_stops_long_gap_below_stop_fills_at_open() -> None:
    # Arrange: bar 2 opens at 92, already below the stop at 95
    rows = [FLAT, (100.0, 101.0, 97.0, 99.0), (92.0, 93.0, 90.0, 91.0)]
    # Act
    trade, _ = run_one(rows, Signal.open_long(SYM, stop_loss=95.0))
    # Assert: the open 92 is the first tradable price; pnl = 100 * (92 - 100) = -800
    assert trade.exit_reason is ExitReason.STOP_LOSS
    assert trade.exit_price == 92.0
    assert trade.pnl == pytest.approx(-800.0)


def test_stops_long_stop_loss_with_slippage_fills_below_stop() -> None:
    # Arrange: 10 bps slippage; entry 100 * 1.001 = 100.1 -> q = 10_000 / 100.1
    rows = [FLAT, (100.0, 101.0, 97.0, 99.0), (98.0, 99.0, 94.0, 96.0)]
    # Act
    trade, _ = run_one(rows, Signal.open_long(SYM, stop_loss=95.0), slippage_bps=10.0)
    # Assert: stop fill 95 * (1 - 0.001) = 94.905
    q = 10_000 / 100.1
    assert trade.entry_price == pytest.approx(100.1)
    assert trade.exit_price == pytest.approx(94.905)
    assert trade.pnl == pytest.approx(q * (94.905 - 100.1))


def test_stops_long_stop_checked_on_entry_bar() -> None:
    # Arrange: the entry bar itself (bar 1) trades down to 94
    rows = [FLAT, (100.0, 100.5, 94.0, 96.0), (96.0, 97.0, 95.5, 96.0)]
    # Act
    trade, _ = run_one(rows, Signal.open_long(SYM, stop_loss=95.0))
    # Assert
    assert trade.exit_reason is ExitReason.STOP_LOSS
    assert trade.entry_ts == trade.exit_ts == T0 + HOUR
    assert trade.exit_price == 95.0


def test_stops_long_take_profit_touched_by_high_fills_at_target() -> None:
    # Arrange: bar 2 high 112 reaches the target 110
    rows = [FLAT, (100.0, 103.0, 99.0, 102.0), (105.0, 112.0, 104.0, 108.0)]
    # Act
    trade, result = run_one(rows, Signal.open_long(SYM, take_profit=110.0))
    # Assert: pnl = 100 * (110 - 100) = 1_000
    assert trade.exit_reason is ExitReason.TAKE_PROFIT
    assert trade.exit_ts == T0 + 2 * HOUR
    assert trade.exit_price == 110.0
    assert trade.pnl == pytest.approx(1_000.0)
    assert result.cash[-1] == pytest.approx(11_000.0)


def test_stops_long_gap_above_take_profit_fills_at_open() -> None:
    # Arrange: bar 2 opens at 115, above the target 110
    rows = [FLAT, (100.0, 103.0, 99.0, 102.0), (115.0, 116.0, 113.0, 114.0)]
    # Act
    trade, _ = run_one(rows, Signal.open_long(SYM, take_profit=110.0))
    # Assert: pnl = 100 * (115 - 100) = 1_500
    assert trade.exit_reason is ExitReason.TAKE_PROFIT
    assert trade.exit_price == 115.0
    assert trade.pnl == pytest.approx(1_500.0)


def test_stops_long_trailing_stop_follows_high_and_exits_trailing() -> None:
    # Arrange: trail 1%.
    # bar 1: entry 100, stop 100 * 0.99 = 99; low 99.5 holds; the high 105 lifts the anchor
    # bar 2: stop 105 * 0.99 = 103.95; low 103.5 touches it
    rows = [FLAT, (100.0, 105.0, 99.5, 104.5), (104.0, 104.5, 103.5, 104.0)]
    # Act
    trade, _ = run_one(rows, Signal.open_long(SYM, trailing_stop=0.01))
    # Assert: pnl = 100 * (103.95 - 100) = 395
    assert trade.exit_reason is ExitReason.TRAILING
    assert trade.exit_ts == T0 + 2 * HOUR
    assert trade.exit_price == pytest.approx(103.95)
    assert trade.pnl == pytest.approx(395.0)


def test_stops_long_trailing_stop_never_moves_down() -> None:
    # Arrange: anchor rises to 110 on bar 1, then bar 2 has a lower high; stop stays 108.9
    rows = [
        FLAT,
        (100.0, 110.0, 100.0, 109.5),
        (109.5, 109.6, 109.0, 109.2),
        (109.0, 109.1, 108.5, 108.8),
    ]
    # Act
    trade, _ = run_one(rows, Signal.open_long(SYM, trailing_stop=0.01))
    # Assert: bar 2 low 109.0 > 108.9 holds; bar 3 low 108.5 hits 110 * 0.99 = 108.9
    assert trade.exit_reason is ExitReason.TRAILING
    assert trade.exit_ts == T0 + 3 * HOUR
    assert trade.exit_price == pytest.approx(108.9)


def test_stops_long_trailing_above_fixed_stop_takes_precedence() -> None:
    # Arrange: stop 90 and trail 1%; after bar 1's high 105 the trail (103.95) is the tighter
    rows = [FLAT, (100.0, 105.0, 99.5, 104.5), (104.0, 104.5, 103.5, 104.0)]
    # Act
    trade, _ = run_one(rows, Signal.open_long(SYM, stop_loss=90.0, trailing_stop=0.01))
    # Assert
    assert trade.exit_reason is ExitReason.TRAILING
    assert trade.exit_price == pytest.approx(103.95)


# --------------------------------------------------------------------------- short


def test_stops_short_stop_loss_touched_by_high_fills_at_stop() -> None:
    # Arrange: short 100 units at 100, stop 105; bar 2 high 106 crosses it
    rows = [FLAT, (100.0, 103.0, 99.0, 101.0), (102.0, 106.0, 101.0, 104.0)]
    # Act
    trade, _ = run_one(rows, Signal.open_short(SYM, stop_loss=105.0))
    # Assert: pnl = -1 * 100 * (105 - 100) = -500
    assert trade.direction == -1
    assert trade.exit_reason is ExitReason.STOP_LOSS
    assert trade.exit_ts == T0 + 2 * HOUR
    assert trade.exit_price == 105.0
    assert trade.pnl == pytest.approx(-500.0)


def test_stops_short_gap_above_stop_fills_at_open() -> None:
    # Arrange: bar 2 opens at 108, above the stop 105
    rows = [FLAT, (100.0, 103.0, 99.0, 101.0), (108.0, 109.0, 107.0, 108.0)]
    # Act
    trade, _ = run_one(rows, Signal.open_short(SYM, stop_loss=105.0))
    # Assert: pnl = -1 * 100 * (108 - 100) = -800
    assert trade.exit_reason is ExitReason.STOP_LOSS
    assert trade.exit_price == 108.0
    assert trade.pnl == pytest.approx(-800.0)


def test_stops_short_take_profit_touched_by_low_fills_at_target() -> None:
    # Arrange: target 90; bar 2 low 88
    rows = [FLAT, (100.0, 101.0, 97.0, 98.0), (95.0, 96.0, 88.0, 89.0)]
    # Act
    trade, result = run_one(rows, Signal.open_short(SYM, take_profit=90.0))
    # Assert: pnl = -1 * 100 * (90 - 100) = +1_000
    assert trade.exit_reason is ExitReason.TAKE_PROFIT
    assert trade.exit_price == 90.0
    assert trade.pnl == pytest.approx(1_000.0)
    assert result.equity[-1] == pytest.approx(11_000.0)


def test_stops_short_gap_below_take_profit_fills_at_open() -> None:
    # Arrange: bar 2 opens at 85, below the target 90
    rows = [FLAT, (100.0, 101.0, 97.0, 98.0), (85.0, 86.0, 84.0, 85.0)]
    # Act
    trade, _ = run_one(rows, Signal.open_short(SYM, take_profit=90.0))
    # Assert: pnl = -1 * 100 * (85 - 100) = 1_500
    assert trade.exit_reason is ExitReason.TAKE_PROFIT
    assert trade.exit_price == 85.0
    assert trade.pnl == pytest.approx(1_500.0)


def test_stops_short_trailing_stop_follows_low_and_exits_trailing() -> None:
    # Arrange: trail 1%.
    # bar 1: entry 100, stop 101; high 100.5 holds; the low 95 lowers the anchor
    # bar 2: stop 95 * 1.01 = 95.95; high 96.5 touches it
    rows = [FLAT, (100.0, 100.5, 95.0, 95.5), (95.5, 96.5, 95.2, 96.0)]
    # Act
    trade, _ = run_one(rows, Signal.open_short(SYM, trailing_stop=0.01))
    # Assert: pnl = -1 * 100 * (95.95 - 100) = 405
    assert trade.exit_reason is ExitReason.TRAILING
    assert trade.exit_price == pytest.approx(95.95)
    assert trade.pnl == pytest.approx(405.0)


# --------------------------------------------------------------------------- bad levels


@pytest.mark.parametrize(
    "exits",
    [
        {"stop_loss": float("nan")},
        {"stop_loss": 0.0},
        {"take_profit": float("inf")},
        {"take_profit": -105.0},
        {"trailing_stop": 0.0},
        {"trailing_stop": float("nan")},
        {"trailing_stop": 0.01, "trailing_activation": float("nan")},
    ],
    ids=["nan-stop", "zero-stop", "inf-target", "negative-target", "zero-trail", "nan-trail",
         "nan-activation"],
)  # fmt: skip
def test_an_entry_whose_exit_levels_cannot_trigger_is_refused_not_opened(
    exits: dict[str, float],
) -> None:
    # Arrange: an entry order built by hand (a signal refuses such levels itself)
    from tradeloop.core.instrument import Instrument
    from tradeloop.core.orders import Bracket, Order, OrderSide, OrderType
    from tradeloop.execution.simulated import SimulatedBroker

    portfolio = Portfolio(10_000.0)
    broker = SimulatedBroker(portfolio, {SYM: Instrument(SYM)}, "1h")
    order = Order(0, SYM, OrderSide.BUY, OrderType.MARKET, 10.0, T0, exits=Bracket(**exits))
    # Act: queued at bar 0, reaching bar 1's open
    broker.submit_order(order, T0, 100.0)
    broker.on_open(SYM, T0 + HOUR, 100.0)
    # Assert: rejected with the level named; no position, no fill, the cash untouched
    assert [r.reason for r in broker.rejections] == ["invalid_exits"]
    name = next(iter(exits)).replace("trailing_stop", "trailing stop")
    name = "trailing activation" if "trailing_activation" in exits else name
    assert name in broker.rejections[0].detail
    assert portfolio.positions == {}
    assert broker.fills() == []
    assert portfolio.balance == 10_000.0
