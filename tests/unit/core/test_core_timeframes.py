"""Timeframe helpers: parsing, the drill-down chain, bucket alignment, bar completeness."""

from __future__ import annotations

import numpy as np
import pytest

from tradeloop.core.errors import ConfigError
from tradeloop.core.time import parse_time
from tradeloop.core.timeframes import (
    bucket_start,
    is_bar_complete,
    next_lower_timeframe,
    timeframe_from_ns,
    timeframe_minutes,
    timeframe_ns,
)

MINUTE = 60_000_000_000


@pytest.mark.parametrize(
    ("tf", "minutes"),
    [("1m", 1), ("15m", 15), ("1h", 60), ("4h", 240), ("1d", 1_440), ("1w", 10_080), (" 3m ", 3)],
)
def test_timeframe_minutes_known_units(tf: str, minutes: int) -> None:
    # Arrange / Act / Assert
    assert timeframe_minutes(tf) == minutes
    assert timeframe_ns(tf) == minutes * MINUTE


@pytest.mark.parametrize("tf", ["0m", "1s", "h", "1M", "1.5h", ""])
def test_timeframe_minutes_unknown_config_error(tf: str) -> None:
    # Arrange / Act / Assert
    with pytest.raises(ConfigError, match="unknown timeframe"):
        timeframe_minutes(tf)


def test_next_lower_timeframe_follows_drill_chain() -> None:
    # Arrange
    chain = []
    tf: str | None = "1w"
    # Act
    while tf is not None:
        chain.append(tf)
        tf = next_lower_timeframe(tf)
    # Assert
    assert chain == ["1w", "1d", "4h", "1h", "15m", "5m", "1m"]


@pytest.mark.parametrize(
    ("tf", "lower"),
    [("2h", "1h"), ("12h", "4h"), ("30m", "15m"), ("3m", "1m"), ("10m", "5m"), ("2d", "1d")],
)
def test_next_lower_timeframe_off_chain_goes_to_largest_divisor(tf: str, lower: str) -> None:
    # Arrange / Act / Assert
    assert next_lower_timeframe(tf) == lower


def test_next_lower_timeframe_stops_at_floor() -> None:
    # Arrange / Act / Assert
    assert next_lower_timeframe("15m", floor="15m") is None
    assert next_lower_timeframe("1h", floor="5m") == "15m"
    assert next_lower_timeframe("1m") is None


def test_bucket_start_week_aligns_to_monday() -> None:
    # Arrange: Wednesday 2025-06-04 12:34 UTC is in the week of Monday 2025-06-02
    ts = parse_time("2025-06-04T12:34:00Z")
    # Act / Assert
    assert bucket_start(ts, "1w") == parse_time("2025-06-02")
    assert bucket_start(parse_time("2025-06-02"), "1w") == parse_time("2025-06-02")
    # Sunday 23:59 still belongs to the previous Monday's week
    assert bucket_start(parse_time("2025-06-08T23:59:00Z"), "1w") == parse_time("2025-06-02")


def test_bucket_start_epoch_aligned_for_hours_and_days() -> None:
    # Arrange
    ts = np.array([parse_time("2025-06-04T12:34:00Z"), parse_time("2025-06-04T03:59:00Z")])
    # Act
    four_hours = bucket_start(ts, "4h")
    day = bucket_start(ts, "1d")
    # Assert
    assert isinstance(four_hours, np.ndarray)
    assert four_hours.tolist() == [
        parse_time("2025-06-04T12:00:00Z"),
        parse_time("2025-06-04T00:00:00Z"),
    ]
    assert day.tolist() == [parse_time("2025-06-04")] * 2


def test_bucket_start_before_epoch_rounds_down() -> None:
    # Arrange: one minute before the epoch is in the hour starting at -1h
    # Act / Assert
    assert bucket_start(-MINUTE, "1h") == -60 * MINUTE


def test_is_bar_complete_exactly_at_close() -> None:
    # Arrange: the 1h bar opened at 10:00 closes at 11:00
    open_ns = parse_time("2025-01-01T10:00:00Z")
    # Act / Assert
    assert not is_bar_complete(open_ns, "1h", open_ns + 60 * MINUTE - 1)
    assert is_bar_complete(open_ns, "1h", open_ns + 60 * MINUTE)


@pytest.mark.parametrize(
    ("step", "name"),
    [
        (MINUTE, "1m"),
        (90 * MINUTE, "90m"),
        (120 * MINUTE, "2h"),
        (1_440 * MINUTE, "1d"),
        (10_080 * MINUTE, "1w"),
    ],
)
def test_timeframe_from_ns_canonical_names(step: int, name: str) -> None:
    # Arrange / Act / Assert
    assert timeframe_from_ns(step) == name


@pytest.mark.parametrize("step", [0, -MINUTE, 30_000_000_000])
def test_timeframe_from_ns_not_whole_minutes_config_error(step: int) -> None:
    # Arrange / Act / Assert
    with pytest.raises(ConfigError):
        timeframe_from_ns(step)
