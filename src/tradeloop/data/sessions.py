"""Market sessions of an exchange calendar for bar data (``--calendar XNYS``).

Sessions come from the ``exchange_calendars`` library: holidays, early closes, lunch breaks
and daylight saving time (an XNYS session opens at 14:30 UTC in winter and 13:30 UTC in
summer). Times are UTC nanoseconds; a session is the half-open interval ``[open, close)``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from tradeloop.core.errors import ConfigError, did_you_mean

__all__ = ["Sessions", "sessions_for"]

_DAY_NS = 86_400 * 10**9


@dataclass(frozen=True)
class Sessions:
    """The sessions of one calendar over a range: ``opens[i] <= t < closes[i]`` is open.

    A session with a lunch break is split into two intervals. ``dates`` are the session dates
    (midnight UTC, ns), the days daily bars are stamped with.
    """

    name: str
    opens: np.ndarray
    closes: np.ndarray
    session_count: int
    years: int
    dates: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    tz: str = ""

    def in_session(self, ts: np.ndarray, bar_ns: int = 0) -> np.ndarray:
        """Mask of the bars opening at ``ts`` (``bar_ns`` long) that trade in a session.

        An intraday bar is in when its interval ``[t, t + bar_ns)`` overlaps a session, so a
        clock-hour bar stamped 14:00 holds the 14:30 open's first half hour; a daily bar is
        in when its UTC date is a session date (daily bars are stamped with their session's
        date, at midnight or at any time of that day), a weekly bar when its days hold a
        session date (stamped Sunday or Monday alike). Vectorized.
        """
        ts = np.asarray(ts, dtype=np.int64)
        if bar_ns > _DAY_NS:  # a week's bar: in when a session date falls in its days
            day = ts - ts % _DAY_NS
            first = np.searchsorted(self.dates, day, side="left")
            after = np.searchsorted(self.dates, day + bar_ns, side="left")
            return np.asarray(after > first, dtype=bool)
        if bar_ns == _DAY_NS:
            return np.asarray(np.isin(ts - ts % _DAY_NS, self.dates), dtype=bool)
        i = np.searchsorted(self.opens, ts + max(bar_ns, 1), side="left") - 1
        ok = i >= 0
        closes = self.closes[np.clip(i, 0, None)]
        return np.asarray(ok & (ts < closes), dtype=bool)

    def read_as_local(self, ts: np.ndarray) -> np.ndarray:
        """``ts`` (UTC ns) read as the exchange's wall-clock time instead, in UTC ns.

        A stamp that does not exist there or exists twice (the hour a DST change skips or
        repeats) maps to the int64 minimum, which no session holds.
        """
        import pandas as pd

        wall = pd.DatetimeIndex(np.asarray(ts, dtype=np.int64).view("datetime64[ns]"))
        local = wall.tz_localize(self.tz, ambiguous="NaT", nonexistent="NaT")
        return np.asarray(local.asi8, dtype=np.int64)

    def wall_clock_reading(self, ts: np.ndarray, bar_ns: int) -> tuple[int, int] | None:
        """``(inside as UTC, inside as local time)`` when intraday times ``ts`` look like the
        exchange's wall-clock time read as UTC, else None.

        They do when reading them as local time keeps a fifth more bars inside the sessions,
        and a tenth of all (New York 09:30 read as 09:30 UTC is hours before the open).
        """
        if not self.tz or bar_ns >= _DAY_NS or len(ts) == 0:
            return None
        ts = np.asarray(ts, dtype=np.int64)
        as_utc = int(np.count_nonzero(self.in_session(ts, bar_ns)))
        as_local = int(np.count_nonzero(self.in_session(self.read_as_local(ts), bar_ns)))
        if as_local < 1.2 * as_utc or as_local - as_utc < 0.1 * ts.size:
            return None
        return as_utc, as_local

    def sessions_per_year(self) -> float:
        """Average sessions per calendar year over the whole years the data touches (~252)."""
        return self.session_count / self.years if self.years > 0 else 0.0


@lru_cache(maxsize=4)
def _names() -> tuple[str, ...]:
    import exchange_calendars as xcals

    return tuple(xcals.get_calendar_names(include_aliases=True))


def _ns(values: object) -> np.ndarray:
    import pandas as pd

    index = pd.DatetimeIndex(values)
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    return np.asarray(index.as_unit("ns").asi8, dtype=np.int64).copy()


def sessions_for(name: str, first_ns: int, last_ns: int) -> Sessions:
    """Return the sessions of calendar ``name`` covering ``first_ns .. last_ns``.

    Raises
    ------
    ConfigError
        For an unknown calendar name (with a "did you mean"), or a range the library has no
        sessions for.
    """
    import exchange_calendars as xcals
    import pandas as pd

    names = _names()
    by_upper = {n.upper(): n for n in names}
    resolved = name if name in names else by_upper.get(name.strip().upper())
    if resolved is None:
        raise ConfigError(
            f"unknown exchange calendar {name!r} (e.g. XNYS, XNAS, XLON)"
            + did_you_mean(name.upper(), names)
        )
    first_year = pd.Timestamp(first_ns, unit="ns").year
    last_year = pd.Timestamp(last_ns, unit="ns").year
    start = pd.Timestamp(year=first_year, month=1, day=1)
    end = pd.Timestamp(year=last_year, month=12, day=31)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            calendar = xcals.get_calendar(
                resolved, start=start.strftime("%Y-%m-%d"), end=end.strftime("%Y-%m-%d")
            )
    except Exception as exc:  # the library raises its own error types for a range
        raise ConfigError(
            f"calendar {resolved} has no sessions for the data's range: {exc}"
        ) from None
    opens, closes = _ns(calendar.opens), _ns(calendar.closes)
    b_starts, b_ends = _ns(calendar.break_starts), _ns(calendar.break_ends)
    nat = np.iinfo(np.int64).min
    has_break = (b_starts != nat) & (b_ends != nat)
    return Sessions(
        name=resolved,
        opens=np.sort(np.concatenate([opens, b_ends[has_break]])),
        closes=np.sort(np.concatenate([closes, b_starts[has_break]])),
        session_count=len(calendar.sessions),
        years=last_year - first_year + 1,
        dates=_ns(calendar.sessions),
        tz=str(getattr(calendar.tz, "key", calendar.tz)),
    )
