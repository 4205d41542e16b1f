"""RSI mean reversion."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tradeloop.core.errors import ConfigError
from tradeloop.core.portfolio import Portfolio
from tradeloop.core.signal import Signal
from tradeloop.indicators import rsi
from tradeloop.strategy.base import Strategy
from tradeloop.strategy.examples._long_flat import LongFlatRules
from tradeloop.strategy.params import Param
from tradeloop.strategy.view import MarketView


class RsiReversion(Strategy):
    """RSI mean reversion: buy when Wilder's RSI closes below `oversold`, exit above `overbought`.

    An optional stop-loss or trailing stop limits losers.
    """

    name = "rsi_reversion"
    period = Param(14, min=2, help="RSI length (bars)")
    oversold = Param(30.0, min=0.0, max=100.0, help="enter long below this RSI")
    overbought = Param(70.0, min=0.0, max=100.0, help="exit above this RSI")
    size = Param(1.0, min=0.0, max=1.0, help="equity fraction per entry, split across symbols")
    stop_loss = Param(0.0, min=0.0, max=0.99, help="stop-loss distance as a fraction (0: none)")
    trailing_stop = Param(0.0, min=0.0, max=0.99, help="trailing stop fraction (0: none)")

    def validate(self) -> None:
        """Require oversold < overbought."""
        if self.oversold >= self.overbought:
            raise ConfigError("rsi_reversion: oversold must be below overbought")

    def on_init(self, view: MarketView) -> None:
        """Compute RSI and the entry/exit rules once."""
        self._rules = LongFlatRules(
            self.size / len(view.symbols), self.stop_loss, self.trailing_stop, "rsi_reversion"
        )
        for symbol in view.symbols:
            values = rsi(view.arrays(symbol).close, self.period)
            self._rules.set(symbol, values < self.oversold, values > self.overbought)

    def signal_bars(self, view: MarketView) -> np.ndarray | None:
        """Only bars where an entry or exit rule holds can produce a signal."""
        return self._rules.active_bars(view)

    def on_bar(self, view: MarketView, portfolio: Portfolio) -> Sequence[Signal]:
        """Enter on oversold, exit on overbought."""
        return self._rules.signals(view, portfolio)
