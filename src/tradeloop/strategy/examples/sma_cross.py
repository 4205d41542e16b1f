"""SMA crossover."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tradeloop.core.errors import ConfigError
from tradeloop.core.portfolio import Portfolio
from tradeloop.core.signal import Signal
from tradeloop.indicators.crossover import sma_crossover_exact
from tradeloop.strategy.base import NO_SIGNALS, Strategy
from tradeloop.strategy.params import Param
from tradeloop.strategy.view import MarketView


class SmaCross(Strategy):
    """SMA crossover: long when the fast SMA crosses above the slow SMA, flat when it crosses below.

    Averages are compared exactly on integer ticks, so a tie never flips the trend. With
    ``short=True`` the cross below opens a short instead of only closing the long. The equity
    fraction ``size`` is split evenly across the run's symbols.
    """

    name = "sma_cross"
    fast = Param(10, min=1, help="fast SMA length (bars)")
    slow = Param(30, min=2, help="slow SMA length (bars)")
    size = Param(1.0, min=0.0, max=1.0, help="equity fraction per entry, split across symbols")
    short = Param(False, help="also trade the short side")
    stop_loss = Param(0.0, min=0.0, max=0.99, help="stop-loss distance as a fraction (0: none)")
    take_profit = Param(0.0, min=0.0, help="take-profit distance as a fraction (0: none)")

    def validate(self) -> None:
        """Require fast < slow."""
        if self.fast >= self.slow:
            raise ConfigError(f"sma_cross: fast ({self.fast}) must be below slow ({self.slow})")

    def on_init(self, view: MarketView) -> None:
        """Compute the crosses of every symbol once, vectorized."""
        self._crosses: dict[str, np.ndarray] = {}
        for symbol in view.symbols:
            tick = view.instrument(symbol).tick_size
            close = view.arrays(symbol).close
            self._crosses[symbol] = sma_crossover_exact(close, self.fast, self.slow, tick or None)
        self._single = view.symbols[0] if len(view.symbols) == 1 else None
        # a Python list reads ~5x faster per element than a numpy array in the bar loop
        self._single_crosses = (
            self._crosses[self._single].tolist() if self._single is not None else None
        )
        self._fraction = self.size / len(view.symbols)

    def signal_bars(self, view: MarketView) -> np.ndarray | None:
        """Only bars with a cross can produce a signal."""
        if self._single is None:
            return None
        return self._crosses[self._single] != 0

    def on_bar(self, view: MarketView, portfolio: Portfolio) -> Sequence[Signal]:
        """Act on a cross of the bar that just completed."""
        crosses = self._single_crosses
        if crosses is not None:
            cross = crosses[view.i]
            if not cross:
                return NO_SIGNALS
            return self._act(view.symbols[0], cross, view, portfolio)
        out: list[Signal] = []
        for symbol in view.symbols:
            if not view.updated(symbol):
                continue
            cross = self._crosses[symbol][view.index(symbol)]
            if cross != 0:
                out.extend(self._act(symbol, int(cross), view, portfolio))
        return out

    def _act(
        self, symbol: str, cross: int, view: MarketView, portfolio: Portfolio
    ) -> Sequence[Signal]:
        position = portfolio.positions.get(symbol)
        price = view.close(symbol)
        if cross > 0:
            if position is not None and position.is_long:
                return NO_SIGNALS
            return [
                Signal.open_long(
                    symbol,
                    self._fraction,
                    stop_loss=price * (1 - self.stop_loss) if self.stop_loss else None,
                    take_profit=price * (1 + self.take_profit) if self.take_profit else None,
                    tag="sma_cross_up",
                )
            ]
        if self.short:
            if position is not None and not position.is_long:
                return NO_SIGNALS
            return [
                Signal.open_short(
                    symbol,
                    self._fraction,
                    stop_loss=price * (1 + self.stop_loss) if self.stop_loss else None,
                    take_profit=price * (1 - self.take_profit) if self.take_profit else None,
                    tag="sma_cross_down",
                )
            ]
        if position is not None and position.is_long:
            return [Signal.close(symbol, tag="sma_cross_down")]
        return NO_SIGNALS
