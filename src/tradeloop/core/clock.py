"""Clocks: the only place engine code reads time from."""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["Clock", "HistoricalClock", "LiveClock"]


class Clock(Protocol):
    """A source of the current time in UTC nanoseconds."""

    def now_ns(self) -> int:
        """Return the current time."""
        ...


class HistoricalClock:
    """A clock the backtest kernel advances bar by bar."""

    __slots__ = ("_now",)

    def __init__(self, start_ns: int = 0) -> None:
        self._now = start_ns

    def now_ns(self) -> int:
        """Return the simulated time."""
        return self._now

    def advance_to(self, ts_ns: int) -> None:
        """Move the clock to ``ts_ns``; time never goes backwards."""
        if ts_ns > self._now:
            self._now = ts_ns


class LiveClock:
    """Wall-clock time."""

    __slots__ = ()

    def now_ns(self) -> int:
        """Return the wall-clock time."""
        return time.time_ns()
