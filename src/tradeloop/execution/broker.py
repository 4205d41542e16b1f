"""The :class:`Broker` port the engine talks to, and the intrabar data hook for drill-down."""

from __future__ import annotations

from typing import Protocol

from tradeloop.core.bar import BarArrays
from tradeloop.core.orders import Fill
from tradeloop.core.portfolio import Portfolio
from tradeloop.core.signal import Signal

__all__ = ["Broker", "IntrabarSource"]


class IntrabarSource(Protocol):
    """Gives the bars of the next lower timeframe inside one bar, for SL/TP drill-down."""

    def sub_bars(self, symbol: str, timeframe: str, ts_open: int) -> BarArrays | None:
        """Return the next-lower-timeframe bars inside the ``timeframe`` bar opened at
        ``ts_open``, or None when no finer data exists."""
        ...


class Broker(Protocol):
    """What the kernel needs from any broker (simulated, exchange, Alpaca)."""

    portfolio: Portfolio

    def submit(self, signal: Signal, ts_ns: int, price: float) -> None:
        """Accept a strategy signal at ``ts_ns`` (last known price ``price``)."""
        ...

    def fills(self) -> list[Fill]:
        """Return every fill so far, oldest first."""
        ...
