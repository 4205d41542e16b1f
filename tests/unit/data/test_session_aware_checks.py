"""With a market calendar, a night, a weekend or a holiday is no gap, stamps written in the
exchange's wall-clock time are not silently read as UTC, and the last session's coarser bar
is complete at the session's close."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tradeloop.core.errors import DataError
from tradeloop.core.timeframes import timeframe_ns
from tradeloop.data.gaps import find_gaps, find_session_gaps
from tradeloop.data.loader import read_unvalidated
from tradeloop.data.quality import check_quality
from tradeloop.data.sessions import sessions_for
from tradeloop.engine import RunConfig
from tradeloop.engine.runner import DataSpec, run_backtest

MINUTE = 60 * 10**9


def _xnys_minutes(first: str, last: str) -> np.ndarray:
    """Every XNYS session minute from ``first`` to ``last`` (UTC ns), DST and early closes in."""
    sessions = sessions_for("XNYS", pd.Timestamp(first).value, pd.Timestamp(last).value)
    spans = [np.arange(o, c, MINUTE) for o, c in zip(sessions.opens, sessions.closes, strict=True)]
    ts = np.concatenate(spans)
    return ts[(ts >= pd.Timestamp(first).value) & (ts < pd.Timestamp(last).value)]


def _write(path: Path, ts: np.ndarray, stamps: list[str] | None = None) -> Path:
    close = 100.0 + np.cumsum(np.where(np.arange(ts.size) % 7 < 4, 0.01, -0.01))
    frame = pd.DataFrame(
        {
            "timestamp": stamps
            if stamps is not None
            else pd.to_datetime(ts, utc=True).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "open": close,
            "high": close + 0.02,
            "low": close - 0.02,
            "close": close,
            "volume": 100.0,
        }
    )
    frame.to_csv(path, index=False)
    return path


def test_session_gaps_count_only_the_minutes_a_market_trades() -> None:
    # Arrange: two weeks of XNYS minutes over the March 2024 DST change (the open moves from
    # 14:30 to 13:30 UTC) and a weekend; 17 minutes taken out of one session, 3 of another
    ts = _xnys_minutes("2024-03-07", "2024-03-13")
    sessions = sessions_for("XNYS", int(ts[0]), int(ts[-1]))
    cut = np.r_[500:517, 1200:1203]
    kept = np.delete(ts, cut)
    # Act
    plain = find_gaps(kept, MINUTE)
    by_session = find_session_gaps(kept, MINUTE, sessions.opens, sessions.closes, sessions.dates)
    # Assert: only the minutes taken out; every night and the weekend counted as no gap
    assert by_session.missing.tolist() == [17, 3]
    assert by_session.before_ns.tolist() == [int(ts[499]), int(ts[1199])]
    assert len(plain) == 5  # the two cuts, two nights and a weekend
    assert plain.total_missing > 17 * 60


def test_session_gaps_of_daily_bars_are_the_missing_session_dates(shared_data: Path) -> None:
    # Arrange: SPY daily (1999-2020), one session removed
    raw = read_unvalidated(shared_data / "equities_daily/pandas_ta/SPY_D.normalized.csv")
    sessions = sessions_for("XNYS", int(raw.ts[0]), int(raw.ts[-1]))
    ts = np.delete(raw.ts, 1000)
    # Act
    everyday = find_gaps(raw.ts, 86_400 * 10**9)
    by_session = find_session_gaps(raw.ts, 86_400 * 10**9, sessions.opens, sessions.closes,
                                   sessions.dates)  # fmt: skip
    one_out = find_session_gaps(ts, 86_400 * 10**9, sessions.opens, sessions.closes,
                                sessions.dates)  # fmt: skip
    # Assert: weekends and holidays are no gap; the removed session is one missing bar
    assert len(everyday) > 1_000
    assert len(by_session) == 0
    assert one_out.missing.tolist() == [1]
    assert one_out.after_ns.tolist() == [int(raw.ts[1001])]


def test_data_check_with_a_calendar_counts_no_gap_over_nights(tmp_path: Path) -> None:
    # Arrange
    path = _write(
        tmp_path / "SPY-1m.csv", np.delete(_xnys_minutes("2024-01-02", "2024-01-09"), 100)
    )
    raw = read_unvalidated(path)
    sessions = sessions_for("XNYS", int(raw.ts[0]), int(raw.ts[-1]))
    # Act
    plain = check_quality(raw, "1m")
    calendar = check_quality(raw, "1m", sessions=sessions)
    # Assert
    assert calendar.gaps.missing.tolist() == [1]
    assert len(plain.gaps) == 5  # the one minute, and four nights


def test_wall_clock_times_read_as_utc_are_refused_by_name(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Arrange: a week of XNYS minutes written in New York time with a "Z" (09:30 for 14:30 UTC)
    ts = _xnys_minutes("2024-01-08", "2024-01-13")
    wall = (
        pd.to_datetime(ts, utc=True).tz_convert("America/New_York").strftime("%Y-%m-%dT%H:%M:%SZ")
    )
    path = _write(tmp_path / "SPY-1m.csv", ts, list(wall))
    spec = [DataSpec(path, "SPY")]
    # Act / Assert: refused, naming the zone and what each reading keeps
    with pytest.raises(DataError, match=r"look like America/New_York wall-clock time") as err:
        run_backtest("sma_cross", spec, RunConfig(), strategies_dir=None, calendar="XNYS")
    assert f"read as America/New_York time, {ts.size:,}" in str(err.value)
    assert "SPY-1m.csv" in str(err.value)
    # with --allow-data-issues: run on the bars inside sessions as read, said in a warning
    with caplog.at_level(logging.WARNING):
        result, loaded = run_backtest("sma_cross", spec, RunConfig(), strategies_dir=None,
                                      calendar="XNYS", allow_data_issues=True)  # fmt: skip
    outside = loaded[0].repaired["outside_sessions"]
    assert len(result.ts) + outside == ts.size
    assert f"{outside} of {ts.size} bars fall outside XNYS sessions" in caplog.text


def test_utc_times_with_pre_market_bars_run_and_say_what_was_left_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Arrange: the sessions' minutes in UTC plus an hour of pre-market bars each day
    ts = _xnys_minutes("2024-01-08", "2024-01-13")
    opens = sessions_for("XNYS", int(ts[0]), int(ts[-1])).opens
    early = np.concatenate([o - np.arange(60, 0, -1) * MINUTE for o in opens[:5]])
    path = _write(tmp_path / "SPY-1m.csv", np.sort(np.concatenate([early, ts])))
    # Act
    with caplog.at_level(logging.WARNING):
        result, loaded = run_backtest("sma_cross", [DataSpec(path, "SPY")], RunConfig(),
                                      strategies_dir=None, calendar="XNYS")  # fmt: skip
    # Assert
    assert len(result.ts) == ts.size
    assert loaded[0].repaired["outside_sessions"] == early.size
    assert f"{early.size} of {early.size + ts.size} bars fall outside XNYS sessions" in caplog.text


@pytest.mark.parametrize(("timeframe", "per_session"), [("1d", 1), ("4h", 3), ("1h", 7)])
def test_coarser_bars_of_the_last_session_are_complete_at_its_close(
    tmp_path: Path, timeframe: str, per_session: int
) -> None:
    # Arrange: XNYS minutes of the week of 2024-01-08, which end at Friday's 21:00 UTC close
    # (14:30-21:00 UTC: 4h buckets 12:00 and 16:00 and 20:00, of which 20:00 holds one hour)
    ts = _xnys_minutes("2024-01-08", "2024-01-13")
    path = _write(tmp_path / "SPY-1m.csv", ts)
    config = RunConfig(timeframe=timeframe)
    # Act
    with_calendar, _ = run_backtest("sma_cross", [DataSpec(path, "SPY")], config,
                                    strategies_dir=None, calendar="XNYS")  # fmt: skip
    without, _ = run_backtest("sma_cross", [DataSpec(path, "SPY")], config, strategies_dir=None)
    # Assert: Friday's last bar is there with the calendar; without one it ends at midnight
    # (or 24:00 for the 20:00 4h bar), after the data, so it is dropped as incomplete
    friday = pd.Timestamp("2024-01-12", tz="UTC").value
    assert len(with_calendar.ts) == 5 * per_session
    assert int(with_calendar.ts[-1]) >= friday
    assert int(with_calendar.ts[-1]) + timeframe_ns(timeframe) > int(ts[-1])
    if timeframe == "1h":  # the 20:00 hour closes at 21:00 with the session either way
        assert len(without.ts) == len(with_calendar.ts)
    else:
        assert len(without.ts) == len(with_calendar.ts) - 1


@pytest.mark.parametrize("weekday", ["2024-01-07", "2024-01-08"])  # Sunday, Monday stamps
def test_weekly_bars_with_a_calendar_are_kept_and_annualized_by_calendar_weeks(
    tmp_path: Path, weekday: str
) -> None:
    # Arrange: 60 weekly bars of SPY, stamped on a Sunday or on a Monday
    ts = pd.Timestamp(weekday, tz="UTC").value + np.arange(60) * 7 * 86_400 * 10**9
    path = _write(tmp_path / "SPY-1w.csv", ts)
    # Act
    result, loaded = run_backtest("sma_cross", [DataSpec(path, "SPY")], RunConfig(),
                                  strategies_dir=None, calendar="XNYS")  # fmt: skip
    # Assert: every week holds sessions, so every bar is kept; 365.25 / 7 bars a year
    assert len(result.ts) == 60
    assert loaded[0].repaired.get("outside_sessions", 0) == 0
    assert result.metrics.periods_per_year == pytest.approx(365.25 / 7)
