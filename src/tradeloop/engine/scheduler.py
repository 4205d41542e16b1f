"""Market hours: when the paper/live engine may trade, and hooks on session open and close.

:class:`AlwaysOpen` is the 24/7 crypto market. :class:`ExchangeCalendarSchedule` reads
sessions, holidays, early closes and lunch breaks from the ``exchange_calendars`` library.
:class:`Scheduler` turns a stream of increasing times into session-open / session-close events.
Times are UTC nanoseconds since the epoch; a session is the half-open interval [open, close).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from tradeloop.core.errors import ConfigError, did_you_mean
from tradeloop.core.time import NS_PER_SECOND, to_iso

if TYPE_CHECKING:  # pandas (~0.5 s to import) is needed only by a calendar schedule
    import pandas as pd

__all__ = [
    "FOREVER_NS",
    "AlwaysOpen",
    "ExchangeCalendarSchedule",
    "MarketSchedule",
    "Scheduler",
    "SessionHook",
    "schedule_for",
]


FOREVER_NS = 2**63 - 1
"""``next_close`` of a market that never closes."""

SessionHook = Callable[[int], None]
"""Called with the ``update`` time (UTC ns) at which a session change was seen."""

_ALWAYS_OPEN_NAMES = frozenset({"24/7", "crypto", "always", "always_open"})


@runtime_checkable
class MarketSchedule(Protocol):
    """Port: when a market is open."""

    def is_open(self, ts_ns: int) -> bool:
        """Whether a session is in progress at ``ts_ns``."""
        ...

    def next_open(self, ts_ns: int) -> int:
        """Return the first session open at or after ``ts_ns`` (``ts_ns`` itself if always open)."""
        ...

    def next_close(self, ts_ns: int) -> int:
        """Return the first session close after ``ts_ns`` (:data:`FOREVER_NS` if never)."""
        ...


class AlwaysOpen:
    """A market that never closes (crypto)."""

    def is_open(self, ts_ns: int) -> bool:
        """Always True."""
        return True

    def next_open(self, ts_ns: int) -> int:
        """Return ``ts_ns``: the market is open now."""
        return ts_ns

    def next_close(self, ts_ns: int) -> int:
        """Return :data:`FOREVER_NS`."""
        return FOREVER_NS

    def __repr__(self) -> str:
        return "AlwaysOpen()"


@lru_cache(maxsize=1)
def _calendar_names() -> tuple[str, ...]:
    import exchange_calendars as xcals

    return tuple(xcals.get_calendar_names(include_aliases=True))


def _ns(values: pd.Series) -> np.ndarray:
    import pandas as pd

    index = pd.DatetimeIndex(values)
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    return np.asarray(index.as_unit("ns").asi8, dtype=np.int64).copy()


class ExchangeCalendarSchedule:
    """Sessions of an exchange from ``exchange_calendars`` (holidays, early closes, breaks).

    A lunch break (e.g. XHKG) splits a session in two: closed during the break.

    Parameters
    ----------
    calendar_name
        An ``exchange_calendars`` name or alias: ``XNYS`` (NYSE), ``XNAS``, ``XLON``...
    start, end
        Range of sessions to load (ISO dates); default: the library's (about 20 years back to
        one year ahead). Asking about a time outside the range raises :class:`ConfigError`.

    Raises
    ------
    ConfigError
        If the calendar name is unknown (with a "did you mean").
    """

    def __init__(
        self, calendar_name: str = "XNYS", *, start: str | None = None, end: str | None = None
    ) -> None:
        import exchange_calendars as xcals

        names = _calendar_names()
        if calendar_name not in names:
            raise ConfigError(
                f"unknown exchange calendar {calendar_name!r}" + did_you_mean(calendar_name, names)
            )
        kwargs = {k: v for k, v in (("start", start), ("end", end)) if v is not None}
        with warnings.catch_warnings():  # the library's own pandas deprecation noise
            warnings.simplefilter("ignore", DeprecationWarning)
            self.calendar = xcals.get_calendar(calendar_name, **kwargs)
        self.name = calendar_name
        opens, closes = _ns(self.calendar.opens), _ns(self.calendar.closes)
        b_starts, b_ends = _ns(self.calendar.break_starts), _ns(self.calendar.break_ends)
        nat = np.iinfo(np.int64).min
        has_break = (b_starts != nat) & (b_ends != nat)
        # A session with a break is two intervals: [open, break_start) and [break_end, close).
        self._opens = np.sort(np.concatenate([opens, b_ends[has_break]]))
        self._closes = np.sort(np.concatenate([closes, b_starts[has_break]]))

    def _check(self, ts_ns: int) -> None:
        if ts_ns < self._opens[0] or ts_ns >= self._closes[-1]:
            raise ConfigError(
                f"{to_iso(ts_ns)} is outside the {self.name} calendar loaded "
                f"({to_iso(int(self._opens[0]))} .. {to_iso(int(self._closes[-1]))}); "
                "pass a wider start/end"
            )

    def is_open(self, ts_ns: int) -> bool:
        """Whether ``ts_ns`` falls in a session (and not in its break)."""
        self._check(ts_ns)
        i = int(np.searchsorted(self._opens, ts_ns, side="right")) - 1
        return i >= 0 and ts_ns < int(self._closes[i])

    def next_open(self, ts_ns: int) -> int:
        """Return the first session (or post-break) open at or after ``ts_ns``."""
        self._check(ts_ns)
        i = int(np.searchsorted(self._opens, ts_ns, side="left"))
        if i >= len(self._opens):
            self._check(FOREVER_NS)
        return int(self._opens[i])

    def next_close(self, ts_ns: int) -> int:
        """Return the first session (or break-start) close after ``ts_ns``."""
        self._check(ts_ns)
        i = int(np.searchsorted(self._closes, ts_ns, side="right"))
        return int(self._closes[i])

    def __repr__(self) -> str:
        return f"ExchangeCalendarSchedule({self.name!r})"


def schedule_for(exchange_or_calendar: str) -> MarketSchedule:
    """Return the schedule of a venue or calendar name.

    ``24/7`` (or ``crypto``) and any ccxt exchange id (``binance``, ``bybit``...) trade around
    the clock: :class:`AlwaysOpen`. Otherwise the name is an ``exchange_calendars`` calendar
    (``XNYS``, ``NYSE``, ``XLON``...; case-insensitive).

    Raises
    ------
    ConfigError
        If the name is neither (with a "did you mean").
    """
    name = exchange_or_calendar.strip()
    if name.lower() in _ALWAYS_OPEN_NAMES:
        return AlwaysOpen()
    # ccxt ids first: no calendar name is also an exchange id (in any case), and a crypto
    # session then never imports exchange_calendars and pandas (~0.8 s of its start-up).
    import ccxt

    exchanges: list[str] = list(ccxt.exchanges)
    if name.lower() in exchanges:
        return AlwaysOpen()
    calendars = _calendar_names()
    if name in calendars:
        return ExchangeCalendarSchedule(name)
    by_upper = {c.upper(): c for c in calendars}
    if name.upper() in by_upper:
        return ExchangeCalendarSchedule(by_upper[name.upper()])
    hint = did_you_mean(name, [*calendars, *exchanges]) or did_you_mean(name.upper(), calendars)
    raise ConfigError(
        f"unknown exchange or market calendar {exchange_or_calendar!r}: expected a ccxt "
        f"exchange id (binance, bybit...), '24/7', or an exchange_calendars name (XNYS...)." + hint
    )


class Scheduler:
    """Turn increasing times into session-open / session-close events.

    Parameters
    ----------
    schedule
        The market's hours.
    on_session_open, on_session_close
        Called with the ``update`` time when a session opened / closed since the previous
        ``update``. The first ``update`` only records the state (no hook fires) unless
        ``fire_on_start`` is set, in which case ``on_session_open`` fires if the market is open.
    max_sleep_s
        Cap on :meth:`sleep_seconds`.

    Notes
    -----
    Each hook fires once per transition seen. If the steps are coarser than a session, a whole
    session (or break) between two updates fires both hooks in order (open then close, or
    close then open), so opens and closes always alternate.
    """

    def __init__(
        self,
        schedule: MarketSchedule,
        *,
        on_session_open: SessionHook | None = None,
        on_session_close: SessionHook | None = None,
        max_sleep_s: float = 60.0,
        fire_on_start: bool = False,
    ) -> None:
        if max_sleep_s <= 0:
            raise ConfigError(f"max_sleep_s must be > 0, got {max_sleep_s}")
        self.schedule = schedule
        self.on_session_open = on_session_open
        self.on_session_close = on_session_close
        self.max_sleep_s = max_sleep_s
        self.fire_on_start = fire_on_start
        self._last_ts: int | None = None
        self._open = False

    @property
    def is_open(self) -> bool:
        """Market state at the last :meth:`update` (False before the first)."""
        return self._open

    def update(self, ts_ns: int) -> bool:
        """Advance to ``ts_ns``, firing hooks on session changes; return whether trading is on.

        Raises
        ------
        ConfigError
            If ``ts_ns`` is earlier than the previous update.
        """
        now_open = self.schedule.is_open(ts_ns)
        prev_ts, was_open = self._last_ts, self._open
        if prev_ts is not None and ts_ns < prev_ts:
            raise ConfigError(
                f"Scheduler.update: time went backwards ({to_iso(ts_ns)} < {to_iso(prev_ts)})"
            )
        self._last_ts, self._open = ts_ns, now_open
        events: list[SessionHook | None] = []
        if prev_ts is None:
            if now_open and self.fire_on_start:
                events.append(self.on_session_open)
        elif was_open and not now_open:
            events.append(self.on_session_close)
        elif now_open and not was_open:
            events.append(self.on_session_open)
        elif was_open and self.schedule.next_close(prev_ts) <= ts_ns:
            events += [self.on_session_close, self.on_session_open]
        elif not was_open and not now_open and self.schedule.next_open(prev_ts) <= ts_ns:
            events += [self.on_session_open, self.on_session_close]
        for hook in events:
            if hook is not None:
                hook(ts_ns)
        return now_open

    def sleep_seconds(self, ts_ns: int) -> float:
        """Return how long to sleep at ``ts_ns``: 0 when open, else until the next open, capped
        at ``max_sleep_s``."""
        if self.schedule.is_open(ts_ns):
            return 0.0
        wait = (self.schedule.next_open(ts_ns) - ts_ns) / NS_PER_SECOND
        return float(min(max(wait, 0.0), self.max_sleep_s))
