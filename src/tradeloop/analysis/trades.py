"""Trades as columns: one numpy array per field, for vectorized statistics.

Metrics, validation, bias checks and reports read many fields of every trade; pulling them out
of the :class:`~tradeloop.core.position.Trade` objects once keeps those passes vectorized.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tradeloop.core.position import ExitReason, Trade

__all__ = ["TradeColumns", "equity_before", "trade_columns"]

_NO_TS = np.iinfo(np.int64).min
#: an exit reason's text (a dict read; ``.value`` is a descriptor call)
_REASON_TEXT: dict[ExitReason, str] = {r: r.value for r in ExitReason}


@dataclass(frozen=True, slots=True)
class TradeColumns:
    """Columns of a trade list, in the list's order.

    Attributes
    ----------
    ids, symbols, exit_reasons
        Object arrays of str (``exit_reasons`` holds "" for open trades).
    direction
        +1 long, -1 short (int8).
    quantity, entry_price, exit_price, fees, pnl, stop_loss, take_profit
        float64; ``exit_price`` is NaN for open trades, stops are NaN when absent.
    entry_ts, exit_ts
        int64 UTC ns; ``exit_ts`` is ``int64 min`` for open trades.
    closed
        True for trades with an exit.
    """

    ids: np.ndarray
    symbols: np.ndarray
    exit_reasons: np.ndarray
    direction: np.ndarray
    quantity: np.ndarray
    entry_ts: np.ndarray
    entry_price: np.ndarray
    exit_ts: np.ndarray
    exit_price: np.ndarray
    fees: np.ndarray
    pnl: np.ndarray
    stop_loss: np.ndarray
    take_profit: np.ndarray
    closed: np.ndarray

    def __len__(self) -> int:
        return int(self.entry_ts.shape[0])

    @property
    def notional(self) -> np.ndarray:
        """Entry notional ``quantity * entry_price``."""
        return np.asarray(self.quantity * self.entry_price, dtype=np.float64)

    @property
    def pnl_pct(self) -> np.ndarray:
        """Net P&L as a fraction of the entry notional (0 for a zero notional)."""
        notional = self.notional
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(notional != 0, self.pnl / notional, 0.0)

    def select(self, mask: np.ndarray | slice) -> TradeColumns:
        """Return the trades that ``mask`` (bool array, index array or slice) selects."""
        return TradeColumns(
            *(getattr(self, name)[mask] for name in TradeColumns.__dataclass_fields__)
        )


def trade_columns(trades: Sequence[Trade]) -> TradeColumns:
    """Return ``trades`` as :class:`TradeColumns`.

    >>> from tradeloop.core.position import ExitReason, Trade
    >>> t = Trade("a", "X", 1, 2.0, 0, 10.0, 5, 11.0, 0.0, 0.0, 2.0, ExitReason.SIGNAL)
    >>> cols = trade_columns([t])
    >>> float(cols.pnl_pct[0]), bool(cols.closed[0])
    (0.1, True)
    """
    # one list per column, read into numpy with fromiter: about 2.5x faster than an array
    # built from per-trade tuples (a backtest's trades.csv, metrics and report read these)
    n = len(trades)
    nan = float("nan")

    def ints(values: list[int]) -> np.ndarray:
        return np.fromiter(values, dtype=np.int64, count=n)

    def floats(values: list[float]) -> np.ndarray:
        return np.fromiter(values, dtype=np.float64, count=n)

    exit_ts = ints([_NO_TS if t.exit_ts is None else t.exit_ts for t in trades])
    text = _REASON_TEXT
    return TradeColumns(
        ids=np.array([t.id for t in trades], dtype=object),
        symbols=np.array([t.symbol for t in trades], dtype=object),
        exit_reasons=np.array(
            [text[t.exit_reason] if t.exit_reason is not None else "" for t in trades],
            dtype=object,
        ),
        direction=ints([t.direction for t in trades]).astype(np.int8),
        quantity=floats([t.quantity for t in trades]),
        entry_ts=ints([t.entry_ts for t in trades]),
        entry_price=floats([t.entry_price for t in trades]),
        exit_ts=exit_ts,
        exit_price=floats([nan if t.exit_price is None else t.exit_price for t in trades]),
        fees=floats([t.entry_fee + t.exit_fee for t in trades]),
        pnl=floats([t.pnl for t in trades]),
        stop_loss=floats([nan if t.stop_loss is None else t.stop_loss for t in trades]),
        take_profit=floats([nan if t.take_profit is None else t.take_profit for t in trades]),
        closed=exit_ts != _NO_TS,
    )


def equity_before(
    at_ns: np.ndarray, ts: np.ndarray, equity: np.ndarray, initial_equity: float
) -> np.ndarray:
    """Return the equity marked at the last step that opened before each time in ``at_ns``.

    A trade entered at the open of step ``k`` sees the equity marked at the close of step
    ``k - 1``; before the first step it is ``initial_equity``.

    >>> import numpy as np
    >>> equity_before(np.array([0, 10, 25]), np.array([0, 10, 20]), np.array([1.0, 2.0, 3.0]), 9.0)
    array([9., 1., 3.])
    """
    at = np.searchsorted(ts, at_ns, side="left") - 1
    return np.where(at >= 0, equity[np.maximum(at, 0)], initial_equity).astype(np.float64)
