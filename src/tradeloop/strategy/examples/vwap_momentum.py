"""VWAP momentum with volume confirmation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tradeloop.core.portfolio import Portfolio
from tradeloop.core.signal import Signal
from tradeloop.indicators import sma, vwap
from tradeloop.strategy.base import Strategy
from tradeloop.strategy.examples._long_flat import LongFlatRules
from tradeloop.strategy.params import Param
from tradeloop.strategy.view import MarketView


class VwapMomentum(Strategy):
    """VWAP momentum: buy when price closes above its rolling VWAP with rising momentum and
    volume above average; exit on a close back below VWAP."""

    name = "vwap_momentum"
    window = Param(48, min=2, help="rolling VWAP window (bars)")
    momentum = Param(12, min=1, help="momentum lookback: close must exceed close n bars ago")
    volume_window = Param(20, min=2, help="volume average length (bars)")
    volume_factor = Param(1.5, min=0.0, help="volume must exceed this multiple of its average")
    size = Param(1.0, min=0.0, max=1.0, help="equity fraction per entry, split across symbols")
    trailing_stop = Param(0.02, min=0.0, max=0.99, help="trailing stop fraction (0: none)")

    def on_init(self, view: MarketView) -> None:
        """Compute VWAP, momentum and the volume filter once."""
        self._rules = LongFlatRules(
            self.size / len(view.symbols), 0.0, self.trailing_stop, "vwap_momentum"
        )
        for symbol in view.symbols:
            bars = view.arrays(symbol)
            close = bars.close
            level = vwap(bars.high, bars.low, close, bars.volume, window=self.window)
            past = np.full(close.size, np.nan)
            past[self.momentum :] = close[: close.size - self.momentum]
            avg_volume = sma(bars.volume, self.volume_window)
            with np.errstate(invalid="ignore"):
                entries = (
                    (close > level)
                    & (close > past)
                    & (bars.volume > self.volume_factor * avg_volume)
                )
                exits = close < level
            self._rules.set(symbol, entries, exits)

    def signal_bars(self, view: MarketView) -> np.ndarray | None:
        """Only bars where an entry or exit rule holds can produce a signal."""
        return self._rules.active_bars(view)

    def on_bar(self, view: MarketView, portfolio: Portfolio) -> Sequence[Signal]:
        """Enter on confirmed momentum above VWAP, exit below it."""
        return self._rules.signals(view, portfolio)
