"""Shared on_bar logic for long/flat examples driven by precomputed entry and exit masks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tradeloop.core.portfolio import Portfolio
from tradeloop.core.signal import Signal
from tradeloop.strategy.base import NO_SIGNALS
from tradeloop.strategy.view import MarketView


class LongFlatRules:
    """Per-symbol boolean entry/exit arrays (indexed by base-timeframe bar) turned into signals.

    Flat and ``entry[i]`` -> open long; long and ``exit[i]`` -> close. Optional stop-loss and
    trailing-stop fractions are attached to entries.
    """

    __slots__ = ("entries", "exits", "fraction", "stop_loss", "tag", "trailing")

    def __init__(self, fraction: float, stop_loss: float, trailing: float, tag: str) -> None:
        self.entries: dict[str, np.ndarray] = {}
        self.exits: dict[str, np.ndarray] = {}
        self.fraction = fraction
        self.stop_loss = stop_loss
        self.trailing = trailing
        self.tag = tag

    def set(self, symbol: str, entries: np.ndarray, exits: np.ndarray) -> None:
        """Register the rule arrays of ``symbol`` (NaN comparisons must already be False)."""
        self.entries[symbol] = np.asarray(entries, dtype=bool)
        self.exits[symbol] = np.asarray(exits, dtype=bool)

    def active_bars(self, view: MarketView) -> np.ndarray | None:
        """Bars where an entry or exit rule holds (single-symbol runs), else None."""
        if len(view.symbols) != 1:
            return None
        symbol = view.symbols[0]
        return self.entries[symbol] | self.exits[symbol]

    def signals(self, view: MarketView, portfolio: Portfolio) -> Sequence[Signal]:
        """Return the signals of every symbol with a new bar at this step."""
        out: list[Signal] | None = None
        single = len(view.symbols) == 1
        for symbol in view.symbols:
            if single:
                i = view.i
            else:
                if not view.updated(symbol):
                    continue
                i = view.index(symbol)
            position = portfolio.positions.get(symbol)
            if position is None:
                if self.entries[symbol][i]:
                    price = view.close(symbol)
                    signal = Signal.open_long(
                        symbol,
                        self.fraction,
                        stop_loss=price * (1 - self.stop_loss) if self.stop_loss else None,
                        trailing_stop=self.trailing or None,
                        tag=self.tag,
                    )
                    out = [signal] if out is None else [*out, signal]
            elif position.is_long and self.exits[symbol][i]:
                signal = Signal.close(symbol, tag=self.tag)
                out = [signal] if out is None else [*out, signal]
        return out if out is not None else NO_SIGNALS
