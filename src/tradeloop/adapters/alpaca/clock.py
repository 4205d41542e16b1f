"""Market hours from Alpaca's clock, as the scheduler's
:class:`~tradeloop.engine.scheduler.MarketSchedule` (the session's open/close hooks).

Alpaca's ``GET /v2/clock`` says whether the market is open now and when it next opens and
closes. The schedule keeps the sessions those answers revealed and asks again once a time
passes what it knows (at most once per ``min_refresh_s`` of wall time for the same
question), so trading starts and stops with Alpaca's own hours (holidays, early closes).
"""

from __future__ import annotations

import time
from typing import Any

__all__ = ["AlpacaClockSchedule"]

_FOREVER = 2**63 - 1


class AlpacaClockSchedule:
    """A :class:`~tradeloop.engine.scheduler.MarketSchedule` fed by ``client.market_clock()``.

    Parameters
    ----------
    client
        Anything with ``market_clock() -> MarketClock`` (the Alpaca venue client).
    """

    def __init__(self, client: Any, *, min_refresh_s: float = 1.0) -> None:
        self.client = client
        self.min_refresh_s = min_refresh_s
        self.sessions: list[tuple[int, int]] = []
        """Known sessions [open, close), oldest first (open -1: began before we looked)."""
        self.refreshes = 0
        self._valid_until = -1
        self._last_refresh = -1e18

    def _refresh(self, ts_ns: int) -> None:
        if ts_ns < self._valid_until:
            return
        now = time.monotonic()
        if now - self._last_refresh < self.min_refresh_s and self.sessions:
            return
        self._last_refresh = now
        clock = self.client.market_clock()
        self.refreshes += 1
        if clock.is_open:
            start = next((o for o, c in self.sessions if c == clock.next_close), -1)
            self._add(start if start >= 0 else min(clock.ts, ts_ns), clock.next_close)
            self._valid_until = clock.next_close
        else:
            self._add(clock.next_open, clock.next_close)
            self._valid_until = clock.next_open
        if clock.ts > self._valid_until:  # a clock behind the data: trust it no further
            self._valid_until = clock.ts

    def _add(self, start: int, end: int) -> None:
        self.sessions = [(o, c) for o, c in self.sessions if c != end]
        self.sessions.append((start, end))
        self.sessions.sort(key=lambda s: s[1])

    def is_open(self, ts_ns: int) -> bool:
        """Whether a known session contains ``ts_ns`` (asks Alpaca when past what it knows)."""
        self._refresh(ts_ns)
        return any(o <= ts_ns < c for o, c in self.sessions)

    def next_open(self, ts_ns: int) -> int:
        """The first known session open at or after ``ts_ns`` (``ts_ns`` when open)."""
        if self.is_open(ts_ns):
            return ts_ns
        later = [o for o, _ in self.sessions if o >= ts_ns]
        return min(later) if later else _FOREVER

    def next_close(self, ts_ns: int) -> int:
        """The first known session close after ``ts_ns``."""
        self._refresh(ts_ns)
        later = [c for _, c in self.sessions if c > ts_ns]
        return min(later) if later else _FOREVER

    def __repr__(self) -> str:
        return f"AlpacaClockSchedule(sessions={len(self.sessions)})"
