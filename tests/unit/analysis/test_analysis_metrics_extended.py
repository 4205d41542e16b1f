"""The metrics added for reports: Calmar, drawdown dates, payoff, streaks, turnover, breakdowns.

Every expected value is worked out by hand in the comments.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tradeloop.analysis.metrics import (
    compute_metrics,
    drawdown_curve,
    month_breakdown,
    monthly_returns,
    periods_per_year,
    symbol_breakdown,
)
from tradeloop.analysis.report import fmt_value
from tradeloop.core.position import ExitReason, Trade
from tradeloop.core.timeframes import timeframe_ns

HOUR = 3_600_000_000_000
DAY = 24 * HOUR
YEAR = 31_557_600_000_000_000  # 365.25 days in ns


def days(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.int64) * DAY


def trade(
    pnl: float,
    exit_hour: int,
    *,
    symbol: str = "X",
    closed: bool = True,
    quantity: float = 1.0,
    entry_hour: int | None = None,
) -> Trade:
    """A long trade at price 100 exiting at ``exit_hour`` with net ``pnl`` (no fees)."""
    entry = exit_hour - 1 if entry_hour is None else entry_hour
    return Trade(
        id=f"{symbol}-{exit_hour}",
        symbol=symbol,
        direction=1,
        quantity=quantity,
        entry_ts=entry * HOUR,
        entry_price=100.0,
        exit_ts=exit_hour * HOUR if closed else None,
        exit_price=100.0 + pnl / quantity if closed else None,
        entry_fee=0.0,
        exit_fee=0.0,
        pnl=pnl,
        exit_reason=ExitReason.SIGNAL if closed else None,
    )


@pytest.mark.parametrize(
    ("tf", "periods"),
    [
        ("1m", 525_600.0),  # 365 * 24 * 60
        ("15m", 35_040.0),  # 365 * 96
        ("1h", 8_760.0),  # 365 * 24
        ("4h", 2_190.0),  # 365 * 6
        ("1d", 365.0),
        ("1w", 365.0 / 7),  # 52.14
    ],
)
def test_metrics_periods_per_year_per_timeframe_are_365_day_years(tf: str, periods: float) -> None:
    # Arrange / Act / Assert
    assert periods_per_year(timeframe_ns(tf)) == pytest.approx(periods, rel=1e-12)


def test_metrics_drawdown_dates_and_duration_with_recovery() -> None:
    # Arrange: series with the initial 100 first: 100 110 99 120 90 100 125
    # running peak 120 is set at bar 2 (ts 2d), the trough 90 is bar 3 (3d), 125 at bar 5
    # (5d) is the first bar back at or above 120
    equity = np.array([110.0, 99.0, 120.0, 90.0, 100.0, 125.0])
    # Act
    m = compute_metrics(equity, days(6), [], DAY, initial_equity=100.0)
    # Assert
    assert m.max_drawdown == pytest.approx(-0.25)
    assert m.max_drawdown_start == 2 * DAY
    assert m.max_drawdown_trough == 3 * DAY
    assert m.max_drawdown_recovery == 5 * DAY
    assert m.max_drawdown_duration_days == pytest.approx(3.0)


def test_metrics_drawdown_not_recovered_runs_to_last_bar() -> None:
    # Arrange: as above without the final 125: still under water at bar 4 (4d)
    equity = np.array([110.0, 99.0, 120.0, 90.0, 100.0])
    # Act
    m = compute_metrics(equity, days(5), [], DAY, initial_equity=100.0)
    # Assert: duration from 2d to 4d
    assert m.max_drawdown_recovery is None
    assert m.max_drawdown_duration_days == pytest.approx(2.0)


def test_metrics_drawdown_from_starting_equity_starts_at_first_bar() -> None:
    # Arrange: 100 (start) -> 90 -> 95 -> 101: the peak is the starting equity
    equity = np.array([90.0, 95.0, 101.0])
    # Act
    m = compute_metrics(equity, days(3), [], DAY, initial_equity=100.0)
    # Assert
    assert m.max_drawdown == pytest.approx(-0.1)
    assert m.max_drawdown_start == 0
    assert m.max_drawdown_trough == 0
    assert m.max_drawdown_recovery == 2 * DAY
    assert m.max_drawdown_duration_days == pytest.approx(2.0)


def test_metrics_calmar_is_cagr_over_max_drawdown() -> None:
    # Arrange: exactly two years, 10_000 -> 9_000 -> 12_100: CAGR 10%, max drawdown -10%
    ts = np.array([0, 2 * YEAR - DAY], dtype=np.int64)
    equity = np.array([9_000.0, 12_100.0])
    # Act
    m = compute_metrics(equity, ts, [], DAY, initial_equity=10_000.0)
    # Assert: 0.10 / 0.10
    assert m.cagr == pytest.approx(0.1)
    assert m.calmar == pytest.approx(1.0)


def test_metrics_calmar_without_drawdown_is_infinite_when_growing() -> None:
    # Arrange / Act
    m = compute_metrics(np.array([110.0, 121.0]), days(2), [], DAY, initial_equity=100.0)
    # Assert
    assert m.max_drawdown == 0.0
    assert m.calmar == math.inf
    assert fmt_value("calmar", m.calmar) == "∞"


def test_metrics_trade_averages_medians_and_payoff_by_hand() -> None:
    # Arrange: pnl +100, -50, +30 on 100 of notional each
    trades = [trade(100.0, 1), trade(-50.0, 2), trade(30.0, 3)]
    # Act
    m = compute_metrics(np.full(3, 100.0), days(3), trades, DAY, initial_equity=100.0)
    # Assert
    assert m.payoff_ratio == pytest.approx(65.0 / 50.0)  # avg win (100+30)/2 over avg loss 50
    assert m.avg_trade_pnl == pytest.approx(80.0 / 3.0)
    assert m.median_trade_pnl == pytest.approx(30.0)
    assert m.avg_trade_return == pytest.approx(0.8 / 3.0)  # (1.0 - 0.5 + 0.3) / 3
    assert m.median_trade_return == pytest.approx(0.3)


def test_metrics_streaks_follow_exit_order_and_breakeven_breaks_them() -> None:
    # Arrange: exit order W W L W W W L L B L (B = break-even); listed out of exit order
    pnls = [5.0, 5.0, -1.0, 5.0, 5.0, 5.0, -1.0, -1.0, 0.0, -1.0]
    trades = [trade(p, k + 1) for k, p in enumerate(pnls)]
    trades.reverse()
    # Act
    m = compute_metrics(np.full(3, 100.0), days(3), trades, DAY, initial_equity=100.0)
    # Assert
    assert m.longest_win_streak == 3
    assert m.longest_loss_streak == 2


def test_metrics_turnover_is_traded_notional_over_mean_equity() -> None:
    # Arrange: entries 100 + 100, exits 200 + 50, an open entry of 100: 550 traded;
    # equity (with the start) is 100 throughout
    trades = [trade(100.0, 1), trade(-50.0, 2), trade(0.0, 3, closed=False)]
    # Act
    m = compute_metrics(np.full(3, 100.0), days(3), trades, DAY, initial_equity=100.0)
    # Assert
    assert m.turnover == pytest.approx(5.5)


def test_metrics_no_trades_edge_case() -> None:
    # Arrange / Act
    m = compute_metrics(np.array([100.0, 101.0]), days(2), [], DAY, initial_equity=100.0)
    # Assert
    assert math.isnan(m.payoff_ratio)
    assert math.isnan(m.avg_trade_pnl)
    assert math.isnan(m.median_trade_return)
    assert m.longest_win_streak == 0
    assert m.longest_loss_streak == 0
    assert m.turnover == 0.0
    assert fmt_value("profit_factor", m.profit_factor) == "–"


def test_metrics_all_wins_edge_case_profit_factor_shown_as_infinity() -> None:
    # Arrange
    trades = [trade(10.0, 1), trade(20.0, 2), trade(30.0, 3)]
    # Act
    m = compute_metrics(np.full(3, 100.0), days(3), trades, DAY, initial_equity=100.0)
    # Assert
    assert m.profit_factor == math.inf
    assert m.payoff_ratio == math.inf
    assert m.win_rate == 1.0
    assert m.longest_win_streak == 3
    assert m.longest_loss_streak == 0
    assert fmt_value("profit_factor", m.profit_factor) == "∞"


def test_metrics_all_losses_edge_case() -> None:
    # Arrange
    trades = [trade(-10.0, 1), trade(-20.0, 2)]
    # Act
    m = compute_metrics(np.array([90.0, 70.0]), days(2), trades, DAY, initial_equity=100.0)
    # Assert
    assert m.profit_factor == 0.0
    assert m.payoff_ratio == 0.0
    assert m.win_rate == 0.0
    assert m.expectancy == pytest.approx(-15.0)
    assert m.longest_loss_streak == 2
    assert m.max_drawdown == pytest.approx(-0.3)
    assert m.max_drawdown_recovery is None


def test_metrics_flat_equity_edge_case_has_no_drawdown_dates() -> None:
    # Arrange / Act
    m = compute_metrics(np.full(4, 100.0), days(4), [], DAY, initial_equity=100.0)
    # Assert
    assert m.calmar == 0.0
    assert m.max_drawdown_start is None
    assert m.max_drawdown_trough is None
    assert m.max_drawdown_recovery is None
    assert m.max_drawdown_duration_days == 0.0


def test_metrics_single_losing_bar_edge_case() -> None:
    # Arrange: one bar from 100 to 95
    # Act
    m = compute_metrics(np.array([95.0]), days(1), [], DAY, initial_equity=100.0)
    # Assert: the drawdown starts and bottoms on the only bar and never recovers
    assert m.max_drawdown == pytest.approx(-0.05)
    assert m.max_drawdown_start == 0
    assert m.max_drawdown_trough == 0
    assert m.max_drawdown_recovery is None
    assert m.max_drawdown_duration_days == 0.0
    assert m.sharpe == 0.0


def test_metrics_drawdown_curve_from_running_peak() -> None:
    # Arrange: peaks 100 (start) 110 110 120 -> 0, -0.1, 0
    # Act
    dd = drawdown_curve(np.array([110.0, 99.0, 120.0]), 100.0)
    # Assert
    assert dd == pytest.approx([0.0, -0.1, 0.0])


def test_metrics_symbol_breakdown_by_hand() -> None:
    # Arrange: A: +10, -5 and one open; B: +20
    trades = [
        trade(10.0, 1, symbol="A"),
        trade(20.0, 2, symbol="B"),
        trade(-5.0, 3, symbol="A"),
        trade(0.0, 4, symbol="A", closed=False),
    ]
    # Act
    rows = {r.symbol: r for r in symbol_breakdown(trades)}
    # Assert
    assert list(rows) == ["A", "B"]
    assert rows["A"].trades == 2
    assert rows["A"].open_trades == 1
    assert rows["A"].pnl == pytest.approx(5.0)
    assert rows["A"].win_rate == pytest.approx(0.5)
    assert rows["A"].profit_factor == pytest.approx(2.0)
    assert rows["A"].avg_return == pytest.approx((0.1 - 0.05) / 2)
    assert rows["B"].profit_factor == math.inf


def test_metrics_monthly_returns_chain_month_end_equity() -> None:
    # Arrange: bars in January, February and April (none in March)
    ts = np.array(
        ["2024-01-10", "2024-01-31", "2024-02-15", "2024-04-01"], dtype="datetime64[ns]"
    ).view(np.int64)
    equity = np.array([105.0, 110.0, 99.0, 108.9])
    # Act
    months, rets = monthly_returns(ts, equity, 100.0)
    # Assert: Jan 110/100, Feb 99/110, Apr 108.9/99
    assert [str(m) for m in months] == ["2024-01", "2024-02", "2024-04"]
    assert rets == pytest.approx([0.1, -0.1, 0.1])


def test_metrics_month_breakdown_counts_trades_by_exit_month() -> None:
    # Arrange: two trades exit in January 2024, one in February
    jan = int(np.datetime64("2024-01-05", "ns").view(np.int64)) // HOUR
    feb = int(np.datetime64("2024-02-05", "ns").view(np.int64)) // HOUR
    trades = [trade(10.0, jan), trade(-4.0, jan + 5), trade(7.0, feb)]
    ts = np.array([jan * HOUR, feb * HOUR], dtype=np.int64)
    # Act
    rows = month_breakdown(ts, np.array([106.0, 113.0]), trades, 100.0)
    # Assert
    assert [(r.month, r.trades) for r in rows] == [("2024-01", 2), ("2024-02", 1)]
    assert rows[0].pnl == pytest.approx(6.0)
    assert rows[0].win_rate == pytest.approx(0.5)
    assert rows[1].ret == pytest.approx(113.0 / 106.0 - 1.0)
