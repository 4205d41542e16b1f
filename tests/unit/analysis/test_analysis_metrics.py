"""compute_metrics on small hand-worked equity curves and trade lists."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tradeloop.analysis.metrics import compute_metrics, periods_per_year
from tradeloop.core.position import ExitReason, Trade

HOUR = 3_600_000_000_000
DAY = 24 * HOUR
YEAR = 31_557_600_000_000_000  # 365.25 days in ns
SQRT_DAYS = math.sqrt(365.0)  # daily bars of a 24/7 market: sqrt(365 periods per year)


def days(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.int64) * DAY


def trade(pnl: float, hours: int, *, closed: bool = True, fee: float = 0.0) -> Trade:
    """A long trade entered at t=0 and held ``hours`` (open when ``closed`` is False)."""
    return Trade(
        id=f"t{pnl}",
        symbol="X",
        direction=1,
        quantity=1.0,
        entry_ts=0,
        entry_price=100.0,
        exit_ts=hours * HOUR if closed else None,
        exit_price=100.0 + pnl if closed else None,
        entry_fee=fee,
        exit_fee=fee if closed else 0.0,
        pnl=pnl,
        exit_reason=ExitReason.SIGNAL if closed else None,
    )


def test_metrics_periods_per_year_hourly_is_8760() -> None:
    # Arrange / Act / Assert: a 24/7 market, 365 * 24 = 8_760
    assert periods_per_year(HOUR) == pytest.approx(8_760.0)


def test_metrics_total_return_final_over_initial() -> None:
    # Arrange
    equity = np.array([110.0, 99.0, 108.9])
    # Act
    m = compute_metrics(equity, days(3), [], DAY, initial_equity=100.0)
    # Assert: 108.9 / 100 - 1 = 0.089
    assert m.initial_equity == 100.0
    assert m.final_equity == 108.9
    assert m.total_return == pytest.approx(0.089)


def test_metrics_initial_equity_defaults_to_first_point() -> None:
    # Arrange / Act
    m = compute_metrics(np.array([200.0, 250.0]), days(2), [], DAY)
    # Assert: 250 / 200 - 1
    assert m.initial_equity == 200.0
    assert m.total_return == pytest.approx(0.25)


def test_metrics_cagr_over_exactly_one_year_equals_total_return() -> None:
    # Arrange: first bar at 0, last bar opens one day before the year ends, so
    # years = (YEAR - DAY + DAY - 0) / YEAR = 1
    ts = np.array([0, YEAR - DAY], dtype=np.int64)
    equity = np.array([10_000.0, 11_000.0])
    # Act
    m = compute_metrics(equity, ts, [], DAY, initial_equity=10_000.0)
    # Assert: 1.1 ** (1 / 1) - 1
    assert m.cagr == pytest.approx(0.1, rel=1e-12)


def test_metrics_cagr_over_two_years_is_geometric() -> None:
    # Arrange: years = 2; 12_100 / 10_000 = 1.21 = 1.1 ** 2
    ts = np.array([0, 2 * YEAR - DAY], dtype=np.int64)
    equity = np.array([10_000.0, 12_100.0])
    # Act
    m = compute_metrics(equity, ts, [], DAY, initial_equity=10_000.0)
    # Assert
    assert m.cagr == pytest.approx(0.1, rel=1e-12)


def test_metrics_cagr_equity_wiped_out_is_minus_one() -> None:
    # Arrange / Act
    m = compute_metrics(np.array([50.0, -10.0]), days(2), [], DAY, initial_equity=100.0)
    # Assert
    assert m.cagr == -1.0


def test_metrics_max_drawdown_from_running_peak() -> None:
    # Arrange: peaks 100 110 110 120 120 120 -> worst 90 / 120 - 1 = -0.25
    equity = np.array([110.0, 99.0, 120.0, 90.0, 100.0])
    # Act
    m = compute_metrics(equity, days(5), [], DAY, initial_equity=100.0)
    # Assert
    assert m.max_drawdown == pytest.approx(-0.25)


def test_metrics_max_drawdown_counts_from_initial_equity() -> None:
    # Arrange: the first bar is already 20% below the starting 100
    equity = np.array([80.0, 120.0])
    # Act
    m = compute_metrics(equity, days(2), [], DAY, initial_equity=100.0)
    # Assert
    assert m.max_drawdown == pytest.approx(-0.2)


def test_metrics_sharpe_sortino_volatility_by_hand() -> None:
    # Arrange: 100 -> 110 -> 99 -> 108.9 gives returns r = +0.1, -0.1, +0.1
    equity = np.array([110.0, 99.0, 108.9])
    # mean = 0.1/3; deviations 0.2/3, -0.4/3, 0.2/3 -> var (ddof=1) = (0.24/9) / 2 = 0.12/9
    mean = 0.1 / 3
    std = math.sqrt(0.12 / 9)
    # downside deviation = sqrt(mean(min(r, 0)^2)) = sqrt(0.01 / 3)
    downside = math.sqrt(0.01 / 3)
    # Act
    m = compute_metrics(equity, days(3), [], DAY, initial_equity=100.0)
    # Assert
    assert m.volatility == pytest.approx(std * SQRT_DAYS, rel=1e-9)
    assert m.sharpe == pytest.approx(mean / std * SQRT_DAYS, rel=1e-9)  # 0.2887 * 19.105 = 5.52
    assert m.sharpe == pytest.approx(5.5151, rel=1e-4)
    assert m.sortino == pytest.approx(mean / downside * SQRT_DAYS, rel=1e-9)  # sqrt(365 / 3)
    assert m.sortino == pytest.approx(math.sqrt(365.0 / 3), rel=1e-9)


def test_metrics_sortino_without_losing_period_is_infinite() -> None:
    # Arrange: +10%, +10%
    equity = np.array([110.0, 121.0])
    # Act
    m = compute_metrics(equity, days(2), [], DAY, initial_equity=100.0)
    # Assert: std of identical returns is 0 -> sharpe 0; no downside -> inf
    assert m.sortino == math.inf


def test_metrics_flat_equity_zero_ratios() -> None:
    # Arrange
    equity = np.full(5, 100.0)
    # Act
    m = compute_metrics(equity, days(5), [], DAY, initial_equity=100.0)
    # Assert
    assert m.total_return == 0.0
    assert m.cagr == 0.0
    assert m.sharpe == 0.0
    assert m.sortino == 0.0
    assert m.volatility == 0.0
    assert m.max_drawdown == 0.0


def test_metrics_single_bar_no_ratios_but_return_and_cagr() -> None:
    # Arrange: one daily bar from 100 to 105; years = 1 day / 365.25 days
    # Act
    m = compute_metrics(np.array([105.0]), days(1), [], DAY, initial_equity=100.0)
    # Assert: one return only -> no std -> ratios 0
    assert m.total_return == pytest.approx(0.05)
    assert m.sharpe == 0.0
    assert m.sortino == 0.0
    assert m.volatility == 0.0
    assert m.cagr == pytest.approx(1.05**365.25 - 1, rel=1e-9)
    assert m.max_drawdown == 0.0


def test_metrics_trade_statistics_by_hand() -> None:
    # Arrange: closed pnls +100 (1h), -50 (2h), +30 (3h) and one open trade (ignored)
    trades = [
        trade(100.0, 1, fee=1.0),
        trade(-50.0, 2, fee=1.0),
        trade(30.0, 3, fee=1.0),
        trade(999.0, 0, closed=False, fee=2.0),
    ]
    # Act
    m = compute_metrics(np.full(3, 100.0), days(3), trades, DAY, initial_equity=100.0)
    # Assert
    assert m.trade_count == 3
    assert m.win_rate == pytest.approx(2 / 3)
    assert m.profit_factor == pytest.approx(130 / 50)  # (100 + 30) / 50 = 2.6
    assert m.expectancy == pytest.approx(80 / 3)  # (100 - 50 + 30) / 3
    assert m.avg_holding_hours == pytest.approx(2.0)  # (1 + 2 + 3) / 3
    # fees: 3 closed * (1 + 1) + the open trade's entry fee 2 = 8
    assert m.fees_paid == pytest.approx(8.0)


def test_metrics_profit_factor_without_losing_trade_is_infinite() -> None:
    # Arrange
    trades = [trade(10.0, 1), trade(20.0, 1)]
    # Act
    m = compute_metrics(np.full(2, 100.0), days(2), trades, DAY, initial_equity=100.0)
    # Assert
    assert m.profit_factor == math.inf
    assert m.win_rate == 1.0
    assert m.expectancy == pytest.approx(15.0)


def test_metrics_breakeven_trade_is_neither_win_nor_loss() -> None:
    # Arrange: pnls 0 and -10
    trades = [trade(0.0, 1), trade(-10.0, 1)]
    # Act
    m = compute_metrics(np.full(2, 100.0), days(2), trades, DAY, initial_equity=100.0)
    # Assert: 0 wins of 2; profit factor 0 / 10
    assert m.win_rate == 0.0
    assert m.profit_factor == 0.0


def test_metrics_no_trades_trade_stats_are_nan() -> None:
    # Arrange / Act
    m = compute_metrics(np.array([100.0, 101.0]), days(2), [], DAY, initial_equity=100.0)
    # Assert
    assert m.trade_count == 0
    assert math.isnan(m.win_rate)
    assert math.isnan(m.profit_factor)
    assert math.isnan(m.expectancy)
    assert math.isnan(m.avg_holding_hours)
    assert m.fees_paid == 0.0


def test_metrics_only_open_trades_counts_as_no_trades() -> None:
    # Arrange
    trades = [trade(50.0, 0, closed=False)]
    # Act
    m = compute_metrics(np.array([100.0, 150.0]), days(2), trades, DAY, initial_equity=100.0)
    # Assert
    assert m.trade_count == 0
    assert math.isnan(m.win_rate)


def test_metrics_exposure_is_fraction_of_bars_in_market() -> None:
    # Arrange: in the market on 3 of 4 bars
    mask = np.array([True, False, True, True])
    # Act
    m = compute_metrics(
        np.full(4, 100.0), days(4), [], DAY, initial_equity=100.0, exposure_mask=mask
    )
    # Assert
    assert m.exposure == pytest.approx(0.75)


def test_metrics_exposure_without_mask_is_zero() -> None:
    # Arrange / Act
    m = compute_metrics(np.full(4, 100.0), days(4), [], DAY, initial_equity=100.0)
    # Assert
    assert m.exposure == 0.0


def test_metrics_as_dict_has_every_field() -> None:
    # Arrange
    m = compute_metrics(np.full(2, 100.0), days(2), [], DAY, initial_equity=100.0)
    # Act
    d = m.as_dict()
    # Assert
    assert set(d) == {
        "initial_equity",
        "final_equity",
        "total_return",
        "cagr",
        "volatility",
        "sharpe",
        "sortino",
        "max_drawdown",
        "win_rate",
        "profit_factor",
        "expectancy",
        "exposure",
        "trade_count",
        "avg_holding_hours",
        "fees_paid",
        "calmar",
        "max_drawdown_start",
        "max_drawdown_trough",
        "max_drawdown_recovery",
        "max_drawdown_duration_days",
        "payoff_ratio",
        "avg_trade_pnl",
        "median_trade_pnl",
        "avg_trade_return",
        "median_trade_return",
        "longest_win_streak",
        "longest_loss_streak",
        "turnover",
        "periods_per_year",
        "annualization",
    }
