"""Market-hours scheduling: real NYSE sessions, session hooks, 24/7 crypto and name lookup."""

from __future__ import annotations

import pytest

from tradeloop.core.errors import ConfigError
from tradeloop.core.time import NS_PER_MINUTE, NS_PER_SECOND, parse_time
from tradeloop.engine.scheduler import (
    FOREVER_NS,
    AlwaysOpen,
    ExchangeCalendarSchedule,
    MarketSchedule,
    Scheduler,
    schedule_for,
)

HOUR = 60 * NS_PER_MINUTE
DAY = 24 * HOUR


def t(text: str) -> int:
    return parse_time(text)


@pytest.fixture(scope="module")
def nyse() -> ExchangeCalendarSchedule:
    return ExchangeCalendarSchedule("XNYS")


# --------------------------------------------------------------------------- NYSE facts


def test_nyse_independence_day_2025_is_closed_all_day(nyse: ExchangeCalendarSchedule) -> None:
    # Act / Assert
    for hour in range(24):
        assert not nyse.is_open(t("2025-07-04") + hour * HOUR)
    assert nyse.next_open(t("2025-07-04T12:00:00Z")) == t("2025-07-07T13:30:00Z")


def test_nyse_day_before_independence_day_closes_early(nyse: ExchangeCalendarSchedule) -> None:
    # 2025-07-03: 13:00 ET (EDT) = 17:00 UTC
    assert nyse.next_close(t("2025-07-03T15:00:00Z")) == t("2025-07-03T17:00:00Z")


def test_nyse_black_friday_2025_closes_at_1300_et(nyse: ExchangeCalendarSchedule) -> None:
    # Arrange: 2025-11-28, 13:00 EST = 18:00 UTC; Thanksgiving the day before is a holiday
    # Act / Assert
    assert not nyse.is_open(t("2025-11-27T16:00:00Z"))
    assert nyse.is_open(t("2025-11-28T14:30:00Z"))
    assert nyse.is_open(t("2025-11-28T17:59:00Z"))
    assert not nyse.is_open(t("2025-11-28T18:00:00Z"))
    assert nyse.next_close(t("2025-11-28T15:00:00Z")) == t("2025-11-28T18:00:00Z")


def test_nyse_summer_day_is_0930_to_1600_edt(nyse: ExchangeCalendarSchedule) -> None:
    # 2025-07-08 (Tuesday): 13:30-20:00 UTC
    assert not nyse.is_open(t("2025-07-08T13:29:59Z"))
    assert nyse.is_open(t("2025-07-08T13:30:00Z"))
    assert nyse.is_open(t("2025-07-08T19:59:59Z"))
    assert not nyse.is_open(t("2025-07-08T20:00:00Z"))
    assert nyse.next_open(t("2025-07-08T05:00:00Z")) == t("2025-07-08T13:30:00Z")
    assert nyse.next_close(t("2025-07-08T13:30:00Z")) == t("2025-07-08T20:00:00Z")


def test_nyse_open_moves_with_us_daylight_saving(nyse: ExchangeCalendarSchedule) -> None:
    # US DST began 2025-03-09: Friday 7th opens 14:30 UTC (EST), Monday 10th 13:30 UTC (EDT)
    assert nyse.next_open(t("2025-03-07T00:00:00Z")) == t("2025-03-07T14:30:00Z")
    assert nyse.next_open(t("2025-03-07T15:00:00Z")) == t("2025-03-10T13:30:00Z")
    assert nyse.next_close(t("2025-03-07T15:00:00Z")) == t("2025-03-07T21:00:00Z")
    # and back: DST ended 2025-11-02
    assert nyse.next_open(t("2025-10-31T00:00:00Z")) == t("2025-10-31T13:30:00Z")
    assert nyse.next_open(t("2025-11-03T00:00:00Z")) == t("2025-11-03T14:30:00Z")


def test_nyse_weekend_is_closed(nyse: ExchangeCalendarSchedule) -> None:
    assert not nyse.is_open(t("2025-07-05T15:00:00Z"))
    assert not nyse.is_open(t("2025-07-06T15:00:00Z"))


def test_lunch_break_splits_the_session() -> None:
    # Arrange: Hong Kong trades 09:30-12:00 and 13:00-16:00 HKT (UTC+8)
    hkex = ExchangeCalendarSchedule("XHKG")
    # Act / Assert
    assert hkex.is_open(t("2025-07-03T03:59:00Z"))
    assert not hkex.is_open(t("2025-07-03T04:30:00Z"))
    assert hkex.next_open(t("2025-07-03T04:30:00Z")) == t("2025-07-03T05:00:00Z")
    assert hkex.next_close(t("2025-07-03T02:00:00Z")) == t("2025-07-03T04:00:00Z")


def test_time_outside_the_loaded_calendar_raises(nyse: ExchangeCalendarSchedule) -> None:
    with pytest.raises(ConfigError, match="outside the XNYS calendar"):
        nyse.is_open(t("1990-01-02T15:00:00Z"))


def test_unknown_calendar_suggests_a_name() -> None:
    with pytest.raises(ConfigError, match=r"Did you mean: .*'XNYS'"):
        ExchangeCalendarSchedule("XNYZ")


# --------------------------------------------------------------------------- Scheduler


def test_hooks_fire_once_per_transition_stepping_minutes_over_three_days(
    nyse: ExchangeCalendarSchedule,
) -> None:
    # Arrange: Wed 2025-11-26 normal, Thu 27 Thanksgiving, Fri 28 early close
    events: list[tuple[str, int]] = []
    scheduler = Scheduler(
        nyse,
        on_session_open=lambda ts: events.append(("open", ts)),
        on_session_close=lambda ts: events.append(("close", ts)),
    )
    start = t("2025-11-26T00:00:00Z")
    # Act
    allowed = [scheduler.update(start + i * NS_PER_MINUTE) for i in range(3 * 24 * 60)]
    # Assert
    assert events == [
        ("open", t("2025-11-26T14:30:00Z")),
        ("close", t("2025-11-26T21:00:00Z")),
        ("open", t("2025-11-28T14:30:00Z")),
        ("close", t("2025-11-28T18:00:00Z")),
    ]
    assert sum(allowed) == 390 + 210


def test_coarse_steps_still_alternate_open_and_close(nyse: ExchangeCalendarSchedule) -> None:
    # Arrange: one update a day at noon UTC (before the open): every session is skipped over
    events: list[str] = []
    scheduler = Scheduler(
        nyse,
        on_session_open=lambda ts: events.append("open"),
        on_session_close=lambda ts: events.append("close"),
    )
    # Act: Mon 2025-07-07 .. Mon 2025-07-14 (sessions on 7, 8, 9, 10, 11)
    for day in range(8):
        assert not scheduler.update(t("2025-07-07T12:00:00Z") + day * DAY)
    # Assert
    assert events == ["open", "close"] * 5


def test_close_then_open_when_stepping_from_one_session_into_the_next(
    nyse: ExchangeCalendarSchedule,
) -> None:
    events: list[str] = []
    scheduler = Scheduler(
        nyse,
        on_session_open=lambda ts: events.append("open"),
        on_session_close=lambda ts: events.append("close"),
    )
    assert scheduler.update(t("2025-07-08T15:00:00Z"))
    assert scheduler.update(t("2025-07-09T15:00:00Z"))
    assert events == ["close", "open"]


def test_first_update_fires_nothing_unless_asked(nyse: ExchangeCalendarSchedule) -> None:
    # Arrange
    quiet: list[int] = []
    loud: list[int] = []
    # Act
    Scheduler(nyse, on_session_open=quiet.append).update(t("2025-07-08T15:00:00Z"))
    Scheduler(nyse, on_session_open=loud.append, fire_on_start=True).update(
        t("2025-07-08T15:00:00Z")
    )
    # Assert
    assert quiet == []
    assert loud == [t("2025-07-08T15:00:00Z")]


def test_time_going_backwards_is_refused(nyse: ExchangeCalendarSchedule) -> None:
    scheduler = Scheduler(nyse)
    scheduler.update(t("2025-07-08T15:00:00Z"))
    with pytest.raises(ConfigError, match="backwards"):
        scheduler.update(t("2025-07-08T14:00:00Z"))


def test_sleep_seconds_until_next_open_capped(nyse: ExchangeCalendarSchedule) -> None:
    # Arrange
    holiday_noon = t("2025-07-04T12:00:00Z")
    wait = (t("2025-07-07T13:30:00Z") - holiday_noon) / NS_PER_SECOND
    # Act / Assert
    assert Scheduler(nyse).sleep_seconds(holiday_noon) == 60.0
    assert Scheduler(nyse, max_sleep_s=1e7).sleep_seconds(holiday_noon) == wait
    assert Scheduler(nyse).sleep_seconds(t("2025-07-08T15:00:00Z")) == 0.0
    assert Scheduler(nyse).sleep_seconds(t("2025-07-08T13:29:30Z")) == 30.0


# --------------------------------------------------------------------------- 24/7


def test_always_open_never_closes_and_fires_no_hooks() -> None:
    # Arrange
    market = AlwaysOpen()
    events: list[int] = []
    scheduler = Scheduler(market, on_session_open=events.append, on_session_close=events.append)
    start = t("2025-11-26T00:00:00Z")
    # Act
    allowed = [scheduler.update(start + i * NS_PER_MINUTE) for i in range(3 * 24 * 60)]
    # Assert
    assert all(allowed)
    assert events == []
    assert market.next_close(start) == FOREVER_NS
    assert market.next_open(start) == start
    assert scheduler.sleep_seconds(start) == 0.0
    assert isinstance(market, MarketSchedule)


# --------------------------------------------------------------------------- schedule_for


@pytest.mark.parametrize("name", ["binance", "bybit", "Kraken", "24/7", "crypto"])
def test_schedule_for_crypto_is_always_open(name: str) -> None:
    assert isinstance(schedule_for(name), AlwaysOpen)


@pytest.mark.parametrize("name", ["XNYS", "NYSE", "xnys", "XLON"])
def test_schedule_for_calendar_names(name: str) -> None:
    schedule = schedule_for(name)
    assert isinstance(schedule, ExchangeCalendarSchedule)
    assert not schedule.is_open(t("2025-12-25T15:00:00Z"))


def test_schedule_for_unknown_name_suggests() -> None:
    with pytest.raises(ConfigError, match="Did you mean: 'binance'"):
        schedule_for("binanse")


def test_no_calendar_name_is_a_ccxt_exchange_id() -> None:
    # schedule_for answers a ccxt id before it loads the calendars; that order only keeps
    # meaning if no calendar name (in any case) is also an exchange id
    import ccxt
    import exchange_calendars as xcals

    calendars = xcals.get_calendar_names(include_aliases=True)
    assert len(calendars) > 50
    assert [c for c in calendars if c.lower() in set(ccxt.exchanges)] == []
