"""Annualization inferred from the data: 252 sessions for SPY daily, 365 days for BTC.

Each run's Sharpe and volatility are recomputed by hand from its own equity curve at the
factor the data implies, and against empyrical (whose daily default is 252 periods a year).
"""

from __future__ import annotations

import math
from pathlib import Path

import empyrical
import numpy as np
import pandas as pd
import pytest

from tradeloop.analysis.metrics import compute_metrics, infer_annualization
from tradeloop.core.timeframes import timeframe_ns
from tradeloop.data import load_ohlcv
from tradeloop.data.sessions import sessions_for
from tradeloop.engine import RunConfig
from tradeloop.engine.runner import DataSpec, run_backtest, run_on_bars
from tradeloop.strategy.examples.sma_cross import SmaCross

DAY = timeframe_ns("1d")


def _returns(balance: float, equity: np.ndarray) -> np.ndarray:
    series = np.concatenate(([balance], equity))
    return np.diff(series) / series[:-1]


def _by_hand(returns: np.ndarray, periods: float) -> tuple[float, float]:
    std = float(np.std(returns, ddof=1))
    return float(np.mean(returns)) / std * math.sqrt(periods), std * math.sqrt(periods)


def test_spy_daily_is_annualized_by_252_sessions(shared_data: Path) -> None:
    # Arrange
    bars = load_ohlcv(shared_data / "equities_daily/pandas_ta/SPY_D.csv", symbol="SPY").bars
    # Act
    result = run_on_bars(SmaCross(fast=10, slow=30), {"SPY": bars}, RunConfig(fee=0.001))
    # Assert
    m = result.metrics
    returns = _returns(10_000.0, result.equity)
    sharpe, vol = _by_hand(returns, 252.0)
    assert m.periods_per_year == 252.0
    assert "252 sessions" in m.annualization
    assert m.sharpe == pytest.approx(sharpe, rel=1e-12)
    assert m.volatility == pytest.approx(vol, rel=1e-12)
    series = pd.Series(returns, index=pd.to_datetime(result.ts, utc=True))
    assert m.sharpe == pytest.approx(empyrical.sharpe_ratio(series), rel=1e-9)  # 252 default
    assert m.volatility == pytest.approx(empyrical.annual_volatility(series), rel=1e-9)


def test_btc_daily_is_annualized_by_365_days(sample_1h: Path) -> None:
    # Arrange
    bars = load_ohlcv(sample_1h).bars
    # Act
    result = run_on_bars(
        SmaCross(fast=10, slow=30), {bars.symbol: bars}, RunConfig(fee=0.001, timeframe="1d")
    )
    # Assert
    m = result.metrics
    returns = _returns(10_000.0, result.equity)
    sharpe, vol = _by_hand(returns, 365.0)
    assert m.periods_per_year == 365.0
    assert m.sharpe == pytest.approx(sharpe, rel=1e-12)
    assert m.volatility == pytest.approx(vol, rel=1e-12)
    series = pd.Series(returns, index=pd.to_datetime(result.ts, utc=True))
    assert m.sharpe == pytest.approx(empyrical.sharpe_ratio(series, annualization=365), rel=1e-9)


def test_periods_per_year_override_rescales_ratios(shared_data: Path) -> None:
    # Arrange
    bars = load_ohlcv(shared_data / "equities_daily/pandas_ta/SPY_D.csv", symbol="SPY").bars
    # Act
    inferred = run_on_bars(SmaCross(), {"SPY": bars}, RunConfig()).metrics
    given = run_on_bars(SmaCross(), {"SPY": bars}, RunConfig(periods_per_year=12.0)).metrics
    # Assert
    assert given.periods_per_year == 12.0
    assert given.sharpe == pytest.approx(inferred.sharpe * math.sqrt(12 / 252), rel=1e-12)
    assert given.volatility == pytest.approx(inferred.volatility * math.sqrt(12 / 252), rel=1e-12)
    assert inferred.cagr == given.cagr  # calendar time, not periods


def test_weekday_minutes_are_sessions_times_bars_per_day() -> None:
    # Arrange: 4 weeks of Mon-Fri 390-minute days from 2024-01-01 (a Monday)
    start = pd.Timestamp("2024-01-01 14:30", tz="UTC").value
    minute = 60 * 10**9
    days = [d for d in range(28) if d % 7 < 5]
    ts = np.concatenate([start + d * DAY + np.arange(390) * minute for d in days])
    # Act
    annual = infer_annualization(ts, minute)
    # Assert
    assert annual.periods_per_year == 252 * 390
    assert annual.basis == "sessions"


@pytest.mark.parametrize("origin_days", [0, -7 * 3000, 7 * 2800])
def test_weekend_bars_are_counted_to_the_nanosecond(origin_days: int) -> None:
    # Arrange: daily stamps Monday to Friday 23:59:59.999999999, plus k stamps at Saturday
    # 00:00 or Sunday 23:59:59.999999999 of the same weeks (1970-01-05 was a Monday; weeks
    # before 1970 too): 24/7 once the weekend stamps are more than 1% of all
    monday = (4 + origin_days) * DAY
    weeks = 20
    week = 7 * DAY
    weekdays = [monday + w * week + d * DAY + DAY - 1 for w in range(weeks) for d in range(5)]
    saturday = [monday + w * week + 5 * DAY for w in range(weeks)]
    sunday_end = [monday + w * week + 7 * DAY - 1 for w in range(weeks)]
    weekend = saturday + sunday_end

    def basis(k: int) -> str:
        ts = np.sort(np.array(weekdays + weekend[:k], dtype=np.int64))
        return infer_annualization(ts, DAY).basis

    # Act / Assert: 1 weekend stamp of 101 is 0.99%, 2 of 102 are 1.96%
    assert basis(0) == "sessions"
    assert basis(1) == "sessions"
    assert basis(2) == "24/7"
    assert basis(len(weekend)) == "24/7"


def test_metrics_report_the_factor_used() -> None:
    # Arrange: 30 days of bars every day
    ts = np.arange(30) * DAY
    equity = 100.0 + np.arange(30) % 3
    # Act
    m = compute_metrics(equity, ts, [], DAY, initial_equity=100.0)
    # Assert
    assert m.periods_per_year == 365.0
    assert m.annualization == "365 periods/year (365 days a year, bars every day)"


def test_calendar_backtest_keeps_session_bars_and_uses_xnys_sessions(shared_data: Path) -> None:
    # Arrange: NinjaTrader SPY minutes (headerless, ';', extended hours)
    path = shared_data / "equities_1m/pyalgotrade/nt-spy-minute-2011.csv"
    config = RunConfig(timeframe="1m")
    # Act
    result, loaded = run_backtest(
        "sma_cross", [DataSpec(path, "SPY")], config, strategies_dir=None, calendar="XNYS"
    )
    # Assert: every traded bar is inside a regular session (14:30-21:00 UTC in January)
    sessions = sessions_for("XNYS", int(result.ts[0]), int(result.ts[-1]))
    assert sessions.in_session(result.ts).all()
    dropped = loaded[0].repaired["outside_sessions"]
    assert dropped > 0
    assert len(loaded[0].bars) + dropped == 14_180
    assert result.metrics.periods_per_year == pytest.approx(252 * 390)
    minutes = pd.to_datetime(result.ts, utc=True)
    assert ((minutes.hour * 60 + minutes.minute) >= 14 * 60 + 30).all()
