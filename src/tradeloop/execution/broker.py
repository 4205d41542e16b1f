"""The :class:`Broker` port the kernel step calls, and the intrabar data hook for drill-down."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from tradeloop.core.bar import BarArrays
from tradeloop.core.order_status import OrderStatus
from tradeloop.core.orders import Fill, Order
from tradeloop.core.portfolio import Portfolio
from tradeloop.core.position import Trade
from tradeloop.core.rejection import Rejection

__all__ = ["Broker", "IntrabarSource"]


class IntrabarSource(Protocol):
    """Gives the bars of the next lower timeframe inside one bar, for SL/TP drill-down."""

    def sub_bars(self, symbol: str, timeframe: str, ts_open: int) -> BarArrays | None:
        """Return the next-lower-timeframe bars inside the ``timeframe`` bar opened at
        ``ts_open``, or None when no finer data exists."""
        ...


class Broker(Protocol):
    """What the kernel step needs from any broker (simulated, exchange, Alpaca).

    The step calls, per step: :meth:`on_open` for symbols with :attr:`pending` orders,
    :meth:`on_bar_range` for symbols with an open position, :meth:`flatten` on a black swan,
    then :meth:`submit_order` for each order the risk gate made of the strategy's signals.
    The kernels persist and restore it through :meth:`export_state` / :meth:`restore_state`
    and :meth:`restore_fills`.
    """

    portfolio: Portfolio
    #: the kernel's current step number (fills and the equity ledger are keyed by it)
    step: int
    #: orders waiting for their symbol's next open, by symbol
    pending: dict[str, list[Order]]
    #: symbols whose open position has a stop, target or trailing stop to check each bar
    watched: set[str]
    #: orders the broker refused (fill rules), oldest first
    rejections: list[Rejection]
    #: when not None (paper/live): order id -> new status, collected by the kernel per step
    order_status: dict[int, OrderStatus] | None

    def next_order_id(self) -> int:
        """Return a new order id."""
        ...

    def submit_order(self, order: Order, ts_ns: int, price: float) -> None:
        """Send ``order`` at ``ts_ns``; ``price`` is the last known price (NaN: none)."""
        ...

    def on_open(self, symbol: str, ts_ns: int, open_price: float) -> None:
        """A new bar of ``symbol`` opened: fill what waits for it."""
        ...

    def on_bar_range(
        self, symbol: str, ts_ns: int, o: float, h: float, low: float, c: float
    ) -> None:
        """Check exits of the open position against the bar's range; mark it at ``c``."""
        ...

    def flatten(self, ts_ns: int, prices: Mapping[str, float] | None = None) -> int:
        """Cancel waiting orders and close every position; return how many are closing."""
        ...

    def cancel_pending(self) -> int:
        """Cancel every waiting order; return how many."""
        ...

    def close_all(self, ts_ns: int, prices: dict[str, float]) -> None:
        """Close every open position at ``prices`` (end of a run)."""
        ...

    def fills(self) -> list[Fill]:
        """Return every fill so far, oldest first."""
        ...

    def restore_fills(self, fills: list[Fill]) -> None:
        """Take back the fills of a restored run (before any new one)."""
        ...

    def open_trades(self) -> list[Trade]:
        """The open positions as trades without an exit."""
        ...

    def export_state(self) -> dict[str, object]:
        """The broker's own state for the state store (JSON-serializable)."""
        ...

    def restore_state(self, state: Mapping[str, object], orders: Mapping[int, Order]) -> None:
        """Restore :meth:`export_state`'s dict; ``orders`` maps id to stored order."""
        ...
