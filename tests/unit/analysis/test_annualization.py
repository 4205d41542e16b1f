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


def test_stamps_out_of_time_order_are_annualized_as_in_order() -> None:
    # Arrange: 6 weeks of Mon-Fri sessions of 3 to 8 hourly bars (a different count each day,
    # so the median bars a day is 5.5 by hand), and 6 weeks of hourly bars every day; each
    # also shuffled and reversed
    start = pd.Timestamp("2024-01-01 14:00", tz="UTC").value  # a Monday
    hour = 3600 * 10**9
    days = [d for d in range(42) if d % 7 < 5]
    counts = [3 + k % 6 for k in range(len(days))]  # 3, 4, ..., 8, 3, ...
    sessions = np.concatenate(
        [start + d * DAY + np.arange(c) * hour for d, c in zip(days, counts, strict=True)]
    )
    every_day = start + np.arange(42 * 24) * hour
    rng = np.random.default_rng(7)
    # Act / Assert: the same factor and basis in any order
    for ts, periods, basis in (
        (sessions, 252 * 5.5, "sessions"),
        (every_day, 365 * 24, "24/7"),
    ):
        for stamps in (ts, rng.permutation(ts), ts[::-1]):
            annual = infer_annualization(stamps, hour)
            assert (annual.periods_per_year, annual.basis) == (periods, basis)
    assert float(np.median(counts)) == 5.5


@pytest.mark.parametrize("origin_days", [0, -7 * 3000, 7 * 2800])
def test_weekend_bars_are_counted_to_the_nanosecond(origin_days: int) -> None:
    # Arrange: daily stamps Monday to Friday 23:59:59.999999999 (still the weekday), plus
    # stamps at Saturday 00:00 and Sunday 23:59:59.999999999 of the same weeks (1970-01-05 was
    # a Monday; weeks before 1970 too)
    monday = (4 + origin_days) * DAY
    weeks = 20
    week = 7 * DAY
    weekdays = [monday + w * week + d * DAY + DAY - 1 for w in range(weeks) for d in range(5)]
    saturday = [monday + w * week + 5 * DAY for w in range(weeks)]
    sunday_end = [monday + w * week + 7 * DAY - 1 for w in range(weeks)]

    def basis(*stamps: list[int]) -> str:
        ts = np.sort(np.array([t for part in stamps for t in part], dtype=np.int64))
        return infer_annualization(ts, DAY).basis

    # Act / Assert: weekdays alone are sessions; every weekend day filled is 24/7; a few
    # Saturdays (a quarter of them) and no Sunday are still sessions
    assert basis(weekdays) == "sessions"
    assert basis(weekdays, saturday, sunday_end) == "24/7"
    assert basis(weekdays, saturday[::4]) == "sessions"
    assert basis(weekdays, saturday[:1], sunday_end[:1]) == "sessions"


def test_after_hours_bars_stamped_on_saturday_utc_stay_sessions() -> None:
    # Arrange: US-equity hours bars 08:00-00:59 UTC (pre-market to after-hours), Monday to
    # Friday for 16 weeks from 2024-01-01 (a Monday): Friday's last bar is stamped Saturday
    # 00:00 UTC, so about 1.2% of the bars fall on a Saturday
    hour = 3_600 * 10**9
    start = pd.Timestamp("2024-01-01 08:00", tz="UTC").value
    days = [d for d in range(16 * 7) if d % 7 < 5]
    ts = np.concatenate([start + d * DAY + np.arange(17) * hour for d in days])
    saturday = np.count_nonzero(((ts // DAY) + 3) % 7 == 5)
    assert saturday > 0.01 * ts.size
    # Act
    annual = infer_annualization(ts, hour)
    # Assert
    assert annual.basis == "sessions"
    assert annual.periods_per_year == 252 * 17  # Tuesday to Friday (UTC): 1 + 16 bars


def test_market_east_of_utc_with_bars_stamped_the_day_before_is_sessions() -> None:
    # Arrange: a Tokyo-style daily series stamped 15:00 UTC the day before each session:
    # Sunday to Thursday (UTC), 30 weeks from 2024-01-07 (a Sunday)
    start = pd.Timestamp("2024-01-07 15:00", tz="UTC").value
    ts = np.array([start + d * DAY for d in range(30 * 7) if d % 7 < 5], dtype=np.int64)
    # Act
    annual = infer_annualization(ts, DAY)
    # Assert
    assert annual.basis == "sessions"
    assert annual.periods_per_year == 252.0


def test_short_span_over_a_weekend_without_weekend_bars_is_sessions() -> None:
    # Arrange: SPY-like daily bars 2020-07-01 (Wednesday) to 2020-07-14: two weekends and a
    # holiday (07-03) without bars, 9 sessions in all
    days = pd.bdate_range("2020-07-01", "2020-07-14").drop(pd.Timestamp("2020-07-03"))
    ts = days.as_unit("ns").asi8
    # Act
    annual = infer_annualization(ts, DAY)
    # Assert
    assert len(ts) == 9
    assert annual.basis == "sessions"
    assert annual.periods_per_year == 252.0


def test_a_span_without_a_weekend_is_judged_by_the_length_of_its_days() -> None:
    # Arrange: Monday to Wednesday 2024-01-01..03 of 390-minute sessions, of 24-hour minutes,
    # and daily bars
    minute = 60 * 10**9
    monday = pd.Timestamp("2024-01-01", tz="UTC").value
    session = np.concatenate([monday + d * DAY + 870 * minute + np.arange(390) * minute
                              for d in range(3)])  # fmt: skip
    all_day = monday + np.arange(3 * 1440) * minute
    daily = monday + np.arange(3) * DAY
    # Act
    short_days = infer_annualization(session, minute)
    full_days = infer_annualization(all_day, minute)
    days = infer_annualization(daily, DAY)
    # Assert
    assert (short_days.basis, short_days.periods_per_year) == ("sessions", 252 * 390)
    assert (full_days.basis, full_days.periods_per_year) == ("24/7", 525_600)
    assert (days.basis, days.periods_per_year) == ("24/7", 365)
    assert "no weekend in the data" in days.detail


def test_24_7_data_missing_a_whole_weekend_stays_24_7() -> None:
    # Arrange: 10 weeks of hourly bars every day, one weekend (48 hours) missing
    hour = 3_600 * 10**9
    monday = pd.Timestamp("2024-01-01", tz="UTC").value
    ts = monday + np.arange(10 * 7 * 24) * hour
    gap = (ts >= monday + 19 * DAY) & (ts < monday + 21 * DAY)
    # Act
    annual = infer_annualization(ts[~gap], hour)
    # Assert
    assert annual.basis == "24/7"
    assert annual.periods_per_year == 8_760


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
    assert result.metrics.annualization == (
        "98,280 periods/year (XNYS sessions: 252 a year x 390 bars a session)"
    )


def test_calendar_backtest_of_daily_bars_keeps_the_session_dates(shared_data: Path) -> None:
    # Arrange: SPY daily bars stamped with their session's date at 00:00 UTC (outside the
    # session's hours, as daily bars are everywhere)
    path = shared_data / "equities_daily/pandas_ta/SPY_D.normalized.csv"
    # Act
    result, loaded = run_backtest(
        "sma_cross", [DataSpec(path, "SPY")], RunConfig(), strategies_dir=None, calendar="XNYS"
    )
    plain, _ = run_backtest("sma_cross", [DataSpec(path, "SPY")], RunConfig(), strategies_dir=None)
    # Assert: no bar dropped, the same trades, the calendar's sessions a year as the factor
    assert loaded[0].repaired.get("outside_sessions", 0) == 0
    assert len(result.ts) == len(plain.ts)
    assert [t.entry_ts for t in result.trades] == [t.entry_ts for t in plain.trades]
    assert 250 < result.metrics.periods_per_year < 253
    assert "XNYS sessions" in result.metrics.annualization
    assert plain.metrics.periods_per_year == 252.0


def test_calendar_keeps_clock_hour_bars_that_hold_a_session_open(tmp_path: Path) -> None:
    # Arrange: XNYS minutes of 2024-01-02..05 (14:30-21:00 UTC) summed into clock-hour bars
    # stamped 14:00 .. 20:00 (the 14:00 bar holds the open's first half hour)
    minute = 60 * 10**9
    days = pd.bdate_range("2024-01-02", "2024-01-05", tz="UTC")
    ts = np.concatenate([d.value + 870 * minute + np.arange(390) * minute for d in days])
    close = 100.0 + np.sin(np.arange(ts.size) / 50.0)
    frame = pd.DataFrame({"ts": pd.to_datetime(ts, utc=True), "close": close})
    hours = frame.set_index("ts")["close"].resample("1h").ohlc().dropna()
    hours["volume"] = 1.0
    hours.index.name = "timestamp"
    path = tmp_path / "SPY-1h.csv"
    hours.reset_index().to_csv(path, index=False)
    # Act
    result, loaded = run_backtest(
        "sma_cross",
        [DataSpec(path, "SPY")],
        RunConfig(),
        strategies_dir=None,
        calendar="XNYS",
    )
    # Assert: every bar kept (7 a day, the first at 14:00), none refused as off the grid
    assert len(hours) == 4 * 7
    assert len(result.ts) == len(hours)
    assert loaded[0].repaired.get("outside_sessions", 0) == 0
    assert pd.Timestamp(int(result.ts[0]), tz="UTC").hour == 14
