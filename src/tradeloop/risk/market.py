"""What the risk engine reads about the market: prices, aligned return history and regime.

:class:`MarketContext` is the port. The backtest kernel implements it over its precomputed
arrays (no per-bar work); :class:`RollingMarket` is the incremental implementation for paper
and live trading: one :meth:`RollingMarket.push` per bar costs O(symbols), and the last
``window`` returns of any symbols are a contiguous view, never a copy of the whole history.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from tradeloop.core.errors import ConfigError

__all__ = ["MarketContext", "RollingMarket"]

FloatArray = NDArray[np.float64]


class MarketContext(Protocol):
    """Read-only market state at the time of a pre-trade check."""

    @property
    def ts(self) -> int:
        """UTC ns time of the latest completed bar."""
        ...

    @property
    def bar_ns(self) -> int:
        """Length of one bar of the return history, in ns."""
        ...

    @property
    def regime(self) -> str | None:
        """Market regime label from a regime model, or None."""
        ...

    def price(self, symbol: str) -> float:
        """Return the latest price of ``symbol`` (NaN when unknown)."""
        ...

    def returns(self, symbols: Sequence[str], n: int) -> FloatArray:
        """Return the last ``n`` (or fewer) one-bar simple returns, rows aligned in time.

        Shape ``(rows, len(symbols))``, oldest first, NaN where a symbol had no bar.
        """
        ...

    def ranges(self, symbol: str, n: int) -> tuple[FloatArray, FloatArray, FloatArray] | None:
        """Return the last ``n`` bars' high, low and close (for ATR), or None if unknown."""
        ...


class RollingMarket:
    """An incrementally updated :class:`MarketContext` (paper and live trading, benchmarks).

    Parameters
    ----------
    symbols
        Symbols tracked; more may be added with :meth:`add_symbol`.
    window
        Bars of history kept (at least the VaR window).
    bar_ns
        Bar length in ns.
    """

    def __init__(self, symbols: Sequence[str], window: int, bar_ns: int) -> None:
        if window < 2:
            raise ConfigError(f"window must be >= 2, got {window}")
        self.window = window
        self._bar_ns = bar_ns
        self._ts = 0
        self.regime_label: str | None = None
        self._cols: dict[str, int] = {}
        self._cap = 0
        # Every row is written twice (at i and i + window) so the last ``window`` rows are
        # always one contiguous slice.
        self._ret = np.empty((2 * window, 0))
        self._high = np.empty((2 * window, 0))
        self._low = np.empty((2 * window, 0))
        self._close = np.empty((2 * window, 0))
        self._last = np.empty(0)
        self._pos = 0
        self._count = 0
        for symbol in symbols:
            self.add_symbol(symbol)

    # -- MarketContext ------------------------------------------------------------------------
    @property
    def ts(self) -> int:
        """UTC ns time of the latest push."""
        return self._ts

    @property
    def bar_ns(self) -> int:
        """Bar length in ns."""
        return self._bar_ns

    @property
    def regime(self) -> str | None:
        """The regime label set by :meth:`set_regime`."""
        return self.regime_label

    def set_regime(self, regime: str | None) -> None:
        """Set the market regime (fed by a regime model)."""
        self.regime_label = regime

    def price(self, symbol: str) -> float:
        """Return the latest close of ``symbol`` (NaN if unknown)."""
        col = self._cols.get(symbol)
        return math.nan if col is None else float(self._last[col])

    def returns(self, symbols: Sequence[str], n: int) -> FloatArray:
        """Return the last ``n`` returns of ``symbols`` (see :class:`MarketContext`)."""
        rows = min(n, self._count, self.window)
        lo = self._pos + self.window - rows
        block = self._ret[lo : lo + rows]
        cols = [self._cols.get(s, -1) for s in symbols]
        if min(cols, default=0) < 0:
            out = np.full((rows, len(symbols)), np.nan)
            for k, c in enumerate(cols):
                if c >= 0:
                    out[:, k] = block[:, c]
            return out
        picked: FloatArray = np.take(block, np.asarray(cols, dtype=np.intp), axis=1)
        return picked

    def ranges(self, symbol: str, n: int) -> tuple[FloatArray, FloatArray, FloatArray] | None:
        """Return the last ``n`` highs, lows and closes of ``symbol`` (None if unknown)."""
        col = self._cols.get(symbol)
        if col is None:
            return None
        rows = min(n, self._count, self.window)
        lo = self._pos + self.window - rows
        return (
            self._high[lo : lo + rows, col].copy(),
            self._low[lo : lo + rows, col].copy(),
            self._close[lo : lo + rows, col].copy(),
        )

    # -- updates ------------------------------------------------------------------------------
    def add_symbol(self, symbol: str) -> None:
        """Start tracking ``symbol`` (its past rows are NaN)."""
        if symbol in self._cols:
            return
        col = len(self._cols)
        if col >= self._cap:
            cap = max(8, 2 * self._cap)
            for name in ("_ret", "_high", "_low", "_close"):
                old = getattr(self, name)
                grown = np.full((2 * self.window, cap), np.nan)
                grown[:, : old.shape[1]] = old
                setattr(self, name, grown)
            last = np.full(cap, np.nan)
            last[: self._last.size] = self._last
            self._last = last
            self._cap = cap
        self._cols[symbol] = col

    def push(
        self,
        ts: int,
        closes: Mapping[str, float],
        highs: Mapping[str, float] | None = None,
        lows: Mapping[str, float] | None = None,
    ) -> None:
        """Append one bar: the closes (and optionally highs/lows) of the symbols that have one.

        A symbol without a bar this time gets a NaN return.
        """
        cols_of = self._cols
        for symbol in closes:
            if symbol not in cols_of:
                self.add_symbol(symbol)
        w = self.window
        i = self._pos
        cols = np.fromiter((cols_of[s] for s in closes), dtype=np.intp, count=len(closes))
        price = np.fromiter(closes.values(), dtype=np.float64, count=len(closes))
        prev = self._last[cols]
        with np.errstate(divide="ignore", invalid="ignore"):
            ret_vals = np.where(prev != 0, price / prev - 1.0, np.nan)
        ret = np.full(self._cap, np.nan)
        ret[cols] = ret_vals
        close = np.full(self._cap, np.nan)
        close[cols] = price
        high = close.copy()
        low = close.copy()
        if highs is not None:
            for symbol, value in highs.items():
                if symbol in closes:
                    high[cols_of[symbol]] = value
        if lows is not None:
            for symbol, value in lows.items():
                if symbol in closes:
                    low[cols_of[symbol]] = value
        self._last[cols] = price
        for buf, row in (
            (self._ret, ret),
            (self._high, high),
            (self._low, low),
            (self._close, close),
        ):
            buf[i] = row
            buf[i + w] = row
        self._pos = (i + 1) % w
        self._count += 1
        self._ts = ts
