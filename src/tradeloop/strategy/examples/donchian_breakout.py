"""Donchian channel breakout."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tradeloop.core.portfolio import Portfolio
from tradeloop.core.signal import Signal
from tradeloop.strategy.base import Strategy
from tradeloop.strategy.examples._long_flat import LongFlatRules
from tradeloop.strategy.params import Param
from tradeloop.strategy.view import MarketView


def _prior_extreme(values: np.ndarray, n: int, want_max: bool) -> np.ndarray:
    """Max (or min) of the ``n`` bars before each bar, excluding the bar itself (NaN first)."""
    out = np.full(values.size, np.nan)
    if values.size > n:
        windows = np.lib.stride_tricks.sliding_window_view(values, n)[:-1]
        out[n:] = windows.max(axis=1) if want_max else windows.min(axis=1)
    return out


class DonchianBreakout(Strategy):
    """Donchian breakout: buy a close above the prior `entry`-bar high, exit below the prior
    `exit`-bar low (turtle-style)."""

    name = "donchian_breakout"
    entry = Param(20, min=2, help="breakout channel length (bars)")
    exit = Param(10, min=2, help="exit channel length (bars)")
    size = Param(1.0, min=0.0, max=1.0, help="equity fraction per entry, split across symbols")
    trailing_stop = Param(0.0, min=0.0, max=0.99, help="trailing stop fraction (0: none)")

    def on_init(self, view: MarketView) -> None:
        """Compute the channels once."""
        self._rules = LongFlatRules(
            self.size / len(view.symbols), 0.0, self.trailing_stop, "donchian"
        )
        for symbol in view.symbols:
            bars = view.arrays(symbol)
            upper = _prior_extreme(bars.high, self.entry, want_max=True)
            lower = _prior_extreme(bars.low, self.exit, want_max=False)
            with np.errstate(invalid="ignore"):
                self._rules.set(symbol, bars.close > upper, bars.close < lower)

    def signal_bars(self, view: MarketView) -> np.ndarray | None:
        """Only bars where an entry or exit rule holds can produce a signal."""
        return self._rules.active_bars(view)

    def on_bar(self, view: MarketView, portfolio: Portfolio) -> Sequence[Signal]:
        """Enter on a breakout, exit on a breakdown."""
        return self._rules.signals(view, portfolio)
