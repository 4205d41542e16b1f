"""Timeframe utilities: parse ``15m``/``4h``/``1d``, bucket boundaries, lower timeframes.

Bars are stamped by their open time. A bar with open time ``t`` on timeframe ``tf`` is complete
at ``t + duration(tf)``. Buckets are aligned to the UTC epoch, which is what exchanges use for
minute to day bars; weekly bars start on Monday 00:00 UTC (Binance convention).
"""

from __future__ import annotations

import re

import numpy as np

from tradeloop.core.errors import ConfigError
from tradeloop.core.time import NS_PER_MINUTE

__all__ = [
    "STANDARD_TIMEFRAMES",
    "bucket_start",
    "is_bar_complete",
    "next_lower_timeframe",
    "timeframe_from_ns",
    "timeframe_minutes",
    "timeframe_ns",
]

STANDARD_TIMEFRAMES: tuple[str, ...] = (
    "1m",
    "3m",
    "5m",
    "15m",
    "30m",
    "1h",
    "2h",
    "4h",
    "6h",
    "8h",
    "12h",
    "1d",
    "1w",
)

# The chain used to drill into a bar whose stop-loss and take-profit are both in range.
_DRILL_CHAIN: tuple[str, ...] = ("1w", "1d", "4h", "1h", "15m", "5m", "1m")

_UNIT_MINUTES = {"m": 1, "h": 60, "d": 1440, "w": 10080}
_PATTERN = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")

# 1970-01-01 was a Thursday; Monday 1970-01-05 anchors weekly buckets.
_WEEK_ANCHOR_NS = 4 * 1440 * NS_PER_MINUTE


def timeframe_minutes(tf: str) -> int:
    """Return the number of minutes in timeframe ``tf``.

    Raises
    ------
    ConfigError
        If ``tf`` is not of the form ``<n><m|h|d|w>``.

    >>> timeframe_minutes("4h")
    240
    """
    match = _PATTERN.match(tf)
    if match is None or int(match.group(1)) <= 0:
        raise ConfigError(f"unknown timeframe {tf!r}; use e.g. {', '.join(STANDARD_TIMEFRAMES)}")
    return int(match.group(1)) * _UNIT_MINUTES[match.group(2)]


def timeframe_ns(tf: str) -> int:
    """Return the duration of ``tf`` in nanoseconds."""
    return timeframe_minutes(tf) * NS_PER_MINUTE


def timeframe_from_ns(step_ns: int) -> str:
    """Return the canonical name of a bar duration, e.g. ``3_600e9`` -> ``"1h"``.

    Raises
    ------
    ConfigError
        If the duration is not a whole number of minutes.
    """
    if step_ns <= 0 or step_ns % NS_PER_MINUTE:
        raise ConfigError(f"bar spacing of {step_ns} ns is not a whole number of minutes")
    minutes = step_ns // NS_PER_MINUTE
    for unit, size in (("w", 10080), ("d", 1440), ("h", 60)):
        if minutes % size == 0:
            return f"{minutes // size}{unit}"
    return f"{minutes}m"


def next_lower_timeframe(tf: str, floor: str = "1m") -> str | None:
    """Return the next lower timeframe used for intrabar drill-down, or None at ``floor``.

    The chain is 1w -> 1d -> 4h -> 1h -> 15m -> 5m -> 1m; a timeframe off the chain goes to the
    largest chain member that divides it.

    >>> next_lower_timeframe("4h")
    '1h'
    >>> next_lower_timeframe("1m") is None
    True
    """
    minutes = timeframe_minutes(tf)
    floor_minutes = timeframe_minutes(floor)
    for candidate in _DRILL_CHAIN:
        c_min = timeframe_minutes(candidate)
        if c_min < minutes and minutes % c_min == 0 and c_min >= floor_minutes:
            return candidate
    return None


def bucket_start(ts_ns: np.ndarray | int, tf: str) -> np.ndarray | int:
    """Return the open time of the ``tf`` bucket that contains each timestamp."""
    step = timeframe_ns(tf)
    anchor = _WEEK_ANCHOR_NS if tf.strip().endswith("w") else 0
    if isinstance(ts_ns, np.ndarray):
        return ((ts_ns - anchor) // step) * step + anchor
    return ((int(ts_ns) - anchor) // step) * step + anchor


def is_bar_complete(open_ns: int, tf: str, now_ns: int) -> bool:
    """Return True when the ``tf`` bar opened at ``open_ns`` has closed by ``now_ns``.

    >>> is_bar_complete(0, "1m", 60_000_000_000)
    True
    >>> is_bar_complete(0, "1m", 59_999_999_999)
    False
    """
    return now_ns >= open_ns + timeframe_ns(tf)
