"""Daily summaries of a running session: equity, P&L and trades per UTC day.

The tracker is fed the equity at each step's close and asked to roll the day at each step;
when the UTC day has changed it returns the summary of the day that ended.
Its state is part of the engine state, so a day that spans a restart is summarised whole.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tradeloop.core.position import Trade
from tradeloop.core.time import to_iso

__all__ = ["DAY_NS", "DaySummary", "DayTracker"]

DAY_NS = 86_400 * 1_000_000_000


@dataclass(frozen=True, slots=True)
class DaySummary:
    """One UTC day of a run.

    Attributes
    ----------
    day
        The day, ``YYYY-MM-DD``.
    start_equity, end_equity
        Equity at the close of the day before (the run's start on its first day) and at the
        day's last close.
    trades, wins
        Trades closed during the day (exit time inside it), and how many of them made money.
    realized_pnl
        Net P&L of those trades.
    open_positions
        Positions open when the summary was made (the next day's first step).
    """

    day: str
    start_equity: float
    end_equity: float
    trades: int
    wins: int
    realized_pnl: float
    open_positions: int

    @property
    def pnl(self) -> float:
        """Change of equity over the day (realized and unrealized)."""
        return self.end_equity - self.start_equity

    @property
    def return_pct(self) -> float:
        """The day's return in percent of its starting equity."""
        return (self.end_equity / self.start_equity - 1.0) * 100.0 if self.start_equity else 0.0


class DayTracker:
    """Knows the current UTC day, its starting equity and the last close's equity."""

    def __init__(self) -> None:
        self.day: int | None = None
        self.start_equity = 0.0
        self.last_equity = 0.0

    def mark(self, equity: float) -> None:
        """Record the equity at a step's close."""
        self.last_equity = equity

    def roll(
        self, ts: int, equity: float, trades: Sequence[Trade], open_positions: int
    ) -> DaySummary | None:
        """Move to the day of step ``ts``; return the summary of the day that ended, if one did.

        Call it at each step, before the step's strategy call; steps come in time order, and a
        time before the current day (never expected) changes nothing. ``equity`` is the equity
        now (used only for the very first day); ``trades`` are the run's trades in any order
        (those that closed inside the ended day are counted).
        """
        day = ts // DAY_NS
        if self.day is None:
            self.day, self.start_equity, self.last_equity = day, equity, equity
            return None
        if day <= self.day:
            return None
        start_ns, end_ns = self.day * DAY_NS, (self.day + 1) * DAY_NS
        closed = [t for t in trades if t.exit_ts is not None and start_ns <= t.exit_ts < end_ns]
        summary = DaySummary(
            day=to_iso(start_ns)[:10],
            start_equity=self.start_equity,
            end_equity=self.last_equity,
            trades=len(closed),
            wins=sum(1 for t in closed if t.pnl > 0),
            realized_pnl=sum(t.pnl for t in closed),
            open_positions=open_positions,
        )
        self.day, self.start_equity = day, self.last_equity
        return summary

    def export_state(self) -> dict[str, Any]:
        """Return the tracker's state, JSON-ready."""
        return {"day": self.day, "start_equity": self.start_equity, "last_equity": self.last_equity}

    def restore_state(self, data: Mapping[str, Any]) -> None:
        """Load what :meth:`export_state` returned (an empty mapping: a fresh tracker)."""
        day = data.get("day")
        self.day = None if day is None else int(day)
        self.start_equity = float(data.get("start_equity", 0.0))
        self.last_equity = float(data.get("last_equity", 0.0))
