"""Multi-symbol runs: shared capital, the union step timeline, gaps and the equity curve."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pytest

from tradeloop.core.bar import BarArrays
from tradeloop.core.portfolio import Portfolio
from tradeloop.core.signal import Signal
from tradeloop.core.time import parse_time
from tradeloop.engine.config import RunConfig
from tradeloop.engine.runner import run_on_bars
from tradeloop.strategy.base import NO_SIGNALS, Strategy
from tradeloop.strategy.examples.sma_cross import SmaCross
from tradeloop.strategy.view import MarketView

HOUR = 3_600_000_000_000
T0 = parse_time("2024-02-01T00:00:00Z")


def hourly(
    symbol: str, hours: Sequence[int], opens: Sequence[float], closes: Sequence[float]
) -> BarArrays:
    """1h bars at ``T0 + hours[k]`` with the given opens and closes (high/low enclose both)."""
    o = np.asarray(opens, dtype=np.float64)
    c = np.asarray(closes, dtype=np.float64)
    ts = T0 + np.asarray(hours, dtype=np.int64) * HOUR
    return BarArrays(symbol, "1h", ts, o, np.maximum(o, c), np.minimum(o, c), c, np.ones(len(o)))


class ByStep(Strategy):
    """Returns the signals scheduled for engine step ``view.step``."""

    name = "by_step"

    def __init__(self, schedule: Mapping[int, Sequence[Signal]]) -> None:
        super().__init__()
        self.schedule = dict(schedule)

    def on_bar(self, view: MarketView, portfolio: Portfolio) -> Sequence[Signal]:
        return self.schedule.get(view.step, NO_SIGNALS)


def test_multi_symbol_half_each_splits_capital_equally_without_fee() -> None:
    # Arrange: A opens at 100, B at 50 on step 1
    bars = {
        "A": hourly("A", [0, 1, 2], [100, 100, 100], [100, 100, 100]),
        "B": hourly("B", [0, 1, 2], [50, 50, 50], [50, 50, 50]),
    }
    schedule = {0: [Signal.open_long("A", 0.5), Signal.open_long("B", 0.5)]}
    # Act
    result = run_on_bars(ByStep(schedule), bars, RunConfig())
    # Assert: 0.5 * 10_000 each -> qA = 5_000 / 100 = 50, qB = 5_000 / 50 = 100, cash 0
    a, b = result.trades
    assert (a.symbol, b.symbol) == ("A", "B")
    assert a.quantity == pytest.approx(50.0)
    assert b.quantity == pytest.approx(100.0)
    assert result.cash[1] == pytest.approx(0.0, abs=1e-9)
    assert result.equity[1] == pytest.approx(10_000.0)


def test_multi_symbol_half_each_with_fee_second_sized_on_equity_after_first() -> None:
    # Arrange: fee 0.1%; A fills first (symbol order), then B on the equity left
    bars = {
        "A": hourly("A", [0, 1, 2], [100, 100, 100], [100, 100, 100]),
        "B": hourly("B", [0, 1, 2], [50, 50, 50], [50, 50, 50]),
    }
    schedule = {0: [Signal.open_long("A", 0.5), Signal.open_long("B", 0.5)]}
    # Act
    result = run_on_bars(ByStep(schedule), bars, RunConfig(fee=0.001))
    # Assert
    q_a = 5_000 / (100 * 1.001)  # 49.95005, spends exactly 5_000 with its fee
    equity_after_a = 5_000 + q_a * 100  # 9_995.005: the fee is gone
    budget_b = 0.5 * equity_after_a  # 4_997.5025 (< cash 5_000)
    q_b = budget_b / (50 * 1.001)
    a, b = result.trades
    assert a.quantity == pytest.approx(q_a, rel=1e-12)
    assert b.quantity == pytest.approx(q_b, rel=1e-12)
    assert result.cash[1] == pytest.approx(5_000 - budget_b, rel=1e-9)  # 2.4975


def test_multi_symbol_sma_cross_splits_size_across_symbols() -> None:
    # Arrange: the same shape on both symbols (B = 2 * A) so both cross up on the same step;
    # SMA(2) of 10,9,8,9,12 stays below SMA(3) until the last close 12 lifts it above
    closes_a = [10.0, 9.0, 8.0, 9.0, 12.0, 13.0, 14.0]
    closes_b = [2 * c for c in closes_a]
    hours = list(range(len(closes_a)))
    bars = {
        "A": hourly("A", hours, closes_a, closes_a),
        "B": hourly("B", hours, closes_b, closes_b),
    }
    # Act
    result = run_on_bars(SmaCross(fast=2, slow=3), bars, RunConfig())
    # Assert: size 1.0 split in two -> each entry's notional is 0.5 * 10_000 = 5_000
    a, b = result.trades
    assert {a.symbol, b.symbol} == {"A", "B"}
    assert a.entry_ts == b.entry_ts
    assert a.quantity * a.entry_price == pytest.approx(5_000.0)
    assert b.quantity * b.entry_price == pytest.approx(5_000.0)


def test_multi_symbol_steps_are_union_of_timestamps() -> None:
    # Arrange: A trades hours 0-3, B misses hour 1 and adds hour 4
    bars = {
        "A": hourly("A", [0, 1, 2, 3], [1, 1, 1, 1], [1, 1, 1, 1]),
        "B": hourly("B", [0, 2, 3, 4], [1, 1, 1, 1], [1, 1, 1, 1]),
    }
    # Act
    result = run_on_bars(ByStep({}), bars, RunConfig())
    # Assert
    assert result.ts.tolist() == [T0 + k * HOUR for k in range(5)]
    assert result.bars_processed == 5


def test_multi_symbol_gap_order_waits_for_next_bar_of_its_symbol() -> None:
    # Arrange: B has no bar at hour 1; its signal from step 0 must wait for hour 2
    bars = {
        "A": hourly("A", [0, 1, 2, 3], [100, 105, 115, 125], [100, 110, 120, 130]),
        "B": hourly("B", [0, 2, 3, 4], [50, 58, 60, 65], [50, 60, 55, 70]),
    }
    schedule = {0: [Signal.open_long("B", 20.0, quantity=True)]}
    # Act
    result = run_on_bars(ByStep(schedule), bars, RunConfig())
    # Assert: filled at B's hour-2 open 58, not on step 1 when only A traded
    (trade,) = result.trades
    assert trade.entry_ts == T0 + 2 * HOUR
    assert trade.entry_price == 58.0
    assert result.cash[1] == 10_000.0


def test_multi_symbol_equity_curve_marks_latest_close_of_each_symbol() -> None:
    # Arrange: 10 A (fills at step 1 open 105) and 20 B (fills at step 2, B's open 58)
    bars = {
        "A": hourly("A", [0, 1, 2, 3], [100, 105, 115, 125], [100, 110, 120, 130]),
        "B": hourly("B", [0, 2, 3, 4], [50, 58, 60, 65], [50, 60, 55, 70]),
    }
    schedule = {
        0: [Signal.open_long("A", 10.0, quantity=True), Signal.open_long("B", 20.0, quantity=True)]
    }
    # Act
    result = run_on_bars(ByStep(schedule), bars, RunConfig())
    # Assert
    # step 0: 10_000
    # step 1: cash 10_000 - 10*105 = 8_950;  equity 8_950 + 10*110 = 10_050
    # step 2: cash 8_950 - 20*58 = 7_790;    equity 7_790 + 10*120 + 20*60 = 10_190
    # step 3: equity 7_790 + 10*130 + 20*55 = 10_190
    # step 4: A has no bar, keeps its close 130: 7_790 + 10*130 + 20*70 = 10_490
    np.testing.assert_allclose(result.cash, [10_000, 8_950, 7_790, 7_790, 7_790])
    np.testing.assert_allclose(result.equity, [10_000, 10_050, 10_190, 10_190, 10_490])
    np.testing.assert_array_equal(result.exposure, [False, True, True, True, True])


def test_multi_symbol_close_at_end_uses_latest_close_of_symbol_without_last_bar() -> None:
    # Arrange: A's last bar is hour 3, the run ends at hour 4 (B)
    bars = {
        "A": hourly("A", [0, 1, 2, 3], [100, 105, 115, 125], [100, 110, 120, 130]),
        "B": hourly("B", [0, 2, 3, 4], [50, 58, 60, 65], [50, 60, 55, 70]),
    }
    schedule = {0: [Signal.open_long("A", 10.0, quantity=True)]}
    # Act
    result = run_on_bars(ByStep(schedule), bars, RunConfig(close_at_end=True))
    # Assert: closed at A's close 130 at the last step time; pnl 10 * (130 - 105) = 250
    (trade,) = result.trades
    assert trade.exit_ts == T0 + 4 * HOUR
    assert trade.exit_price == 130.0
    assert trade.pnl == pytest.approx(250.0)
    assert result.equity[-1] == pytest.approx(10_250.0)


def test_multi_symbol_gap_close_fill_mode_no_fill_on_step_without_bar() -> None:
    # Arrange: fill_price="close"; B has no bar at hour 1 but is signalled on step 1
    bars = {
        "A": hourly("A", [0, 1, 2, 3], [100, 105, 115, 125], [100, 110, 120, 130]),
        "B": hourly("B", [0, 2, 3, 4], [50, 58, 60, 65], [50, 60, 55, 70]),
    }
    schedule = {1: [Signal.open_long("B", 20.0, quantity=True)]}
    # Act
    result = run_on_bars(ByStep(schedule), bars, RunConfig(fill_price="close"))
    # Assert: B did not trade at hour 1, so nothing may fill at hour 1 (B's hour-0 close 50
    # is stale); the earliest real B price after the signal is hour 2
    for trade in result.trades:
        assert trade.entry_ts != T0 + 1 * HOUR
        assert trade.entry_price != 50.0


def test_multi_symbol_open_fill_sizing_ignores_other_symbols_close_of_same_bar() -> None:
    # Arrange: 10 A bought at 100 on step 1 (cash 9_000). On step 2 A opens at 100 and closes
    # at 200; B's order fills at B's step-2 open, when A's close is still in the future
    bars = {
        "A": hourly("A", [0, 1, 2], [100, 100, 100], [100, 100, 200]),
        "B": hourly("B", [0, 1, 2], [50, 50, 50], [50, 50, 50]),
    }
    schedule = {
        0: [Signal.open_long("A", 10.0, quantity=True)],
        1: [Signal.open_long("B", 0.5)],
    }
    # Act
    result = run_on_bars(ByStep(schedule), bars, RunConfig())
    # Assert: equity at the step-2 open = 9_000 + 10 * 100 = 10_000 -> budget 5_000 -> 100 B
    # (marking A at its step-2 close 200 would give 0.5 * 11_000 / 50 = 110)
    b = next(t for t in result.trades if t.symbol == "B")
    assert b.entry_ts == T0 + 2 * HOUR
    assert b.quantity == pytest.approx(100.0)


@pytest.mark.parametrize("risk", [None, "default"])
def test_a_distance_for_a_symbol_without_a_bar_this_step_is_placed_at_its_latest_close(
    risk: str | None,
) -> None:
    # Arrange: B trades every other hour; at hour 1 only A has a bar, and the strategy enters
    # B with a stop 5% and a target 10% from B's latest close (50, at hour 0)
    bars = {
        "A": hourly("A", [0, 1, 2, 3, 4], [100] * 5, [100] * 5),
        "B": hourly("B", [0, 2, 4], [50, 51, 52], [50, 51, 52]),
    }
    schedule = {1: [Signal.open_long("B", 0.5, stop_loss_pct=0.05, take_profit_pct=0.1)]}
    cfg = RunConfig(risk=risk) if risk else RunConfig()
    # Act
    result = run_on_bars(ByStep(schedule), bars, cfg)
    # Assert: not refused for want of this step's close; filled at B's next open (hour 2)
    assert not [r for r in result.rejections if r.reason == "no_price"]
    (trade,) = result.trades
    assert trade.symbol == "B"
    assert trade.entry_price == 51.0
    assert trade.stop_loss == 50.0 * (1 - 0.05)
    assert trade.take_profit == 50.0 * (1 + 0.1)
