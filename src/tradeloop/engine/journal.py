"""The journal of a paper/live run: one transaction per step, and the restore after a crash.

:class:`Journal` is the only place the kernel talks to the state store. :meth:`Journal.record`
writes everything one event changed (orders and their status changes, fills, trades, the
portfolio, bars, the strategy's state and the kernel's own state: broker, risk engine,
counters) in a single transaction, before the next event is taken; :meth:`Journal.load` reads
back what a restarted process needs, so a run killed at any moment continues exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tradeloop.core.orders import Fill
from tradeloop.core.portfolio import Portfolio
from tradeloop.core.position import Trade
from tradeloop.store.state import RunState, StateStore, StoredBar, StoredOrder

__all__ = ["Journal", "JournalEntry"]

#: a stored bar as the kernel holds it: ``(ts, open, high, low, close, volume, live)``
BarRow = tuple[int, float, float, float, float, float, bool]


@dataclass(slots=True)
class JournalEntry:
    """A run as the store holds it: its state, its bars by symbol, its orders and fills."""

    state: RunState
    bars: dict[str, list[BarRow]] = field(default_factory=dict)
    orders: dict[int, StoredOrder] = field(default_factory=dict)
    fills: list[Fill] = field(default_factory=list)

    @property
    def engine_state(self) -> dict[str, Any]:
        """The kernel's own state stored with the last step."""
        return self.state.engine_state


class Journal:
    """Persistence of one run (``run_id``) in ``store``.

    Parameters
    ----------
    store
        The state store (SQLite file or PostgreSQL).
    run_id
        The run's key.
    """

    def __init__(self, store: StateStore, run_id: str) -> None:
        self.store = store
        self.run_id = run_id
        #: transactions written by this process
        self.records = 0

    def load(self, symbols: Sequence[str], timeframe: str) -> JournalEntry | None:
        """What a restart needs, or None when nothing of the run is stored."""
        store, run_id = self.store, self.run_id
        state = store.load_run(run_id)
        if state is None:
            return None
        bars: dict[str, list[BarRow]] = {
            s: [tuple(r) for r in store.load_bars(run_id, s, timeframe)]  # type: ignore[misc]
            for s in symbols
        }
        orders = {s.order.id: s for s in store.load_orders(run_id)}
        return JournalEntry(state, bars, orders, list(store.load_fills(run_id)))

    def save_bars(self, bars: Sequence[StoredBar]) -> None:
        """History bars (a warm-up) written at once."""
        if bars:
            self.store.save_bars(self.run_id, list(bars))

    def record(
        self,
        *,
        ts: int,
        portfolio: Portfolio,
        checkpoints: Mapping[str, int],
        strategy_states: Mapping[str, Mapping[str, Any]],
        orders: Iterable[StoredOrder],
        fills: Iterable[Fill],
        trades: Iterable[Trade],
        bars: Iterable[StoredBar],
        engine_state: Mapping[str, Any],
    ) -> None:
        """Everything one event changed, in one transaction."""
        self.store.record_step(
            self.run_id,
            ts=ts,
            portfolio=portfolio,
            checkpoints=checkpoints,
            strategy_states=strategy_states,
            orders=orders,
            fills=fills,
            trades=trades,
            bars=bars,
            engine_state=engine_state,
        )
        self.records += 1
