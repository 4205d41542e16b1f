"""SMA crossover."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np

from tradeloop.core.errors import ConfigError
from tradeloop.core.portfolio import Portfolio
from tradeloop.core.signal import Signal
from tradeloop.indicators.crossover import ExactSmaCross, sma_crossover_exact
from tradeloop.strategy.base import NO_SIGNALS, Strategy
from tradeloop.strategy.params import Param
from tradeloop.strategy.view import MarketView


def _rolling_mean(x: np.ndarray, n: int) -> np.ndarray:
    """Mean of the last ``n`` values (NaN for the first ``n - 1``), from one cumulative sum."""
    x = np.asarray(x, dtype=np.float64)
    out = np.full(x.size, np.nan)
    if x.size >= n:
        cs = np.concatenate(([0.0], np.cumsum(x)))
        out[n - 1 :] = (cs[n:] - cs[:-n]) / n
    return out


class SmaCross(Strategy):
    """SMA crossover: long when the fast SMA crosses above the slow SMA, flat when it crosses below.

    Averages are compared exactly on integer ticks, so a tie never flips the trend. With
    ``short=True`` the cross below opens a short instead of only closing the long. The equity
    fraction ``size`` is split evenly across the run's symbols. In paper and live the crosses
    of new bars come from a streaming twin of the same computation (O(1) per bar, whatever
    the window), when the instruments have a tick size.
    """

    name = "sma_cross"
    fast = Param(10, min=1, help="fast SMA length (bars)")
    slow = Param(30, min=2, help="slow SMA length (bars)")
    size = Param(1.0, min=0.0, max=1.0, help="equity fraction per entry, split across symbols")
    short = Param(False, help="also trade the short side")
    stop_loss = Param(0.0, min=0.0, max=0.99, help="stop-loss distance as a fraction (0: none)")
    take_profit = Param(0.0, min=0.0, help="take-profit distance as a fraction (0: none)")
    trailing_stop = Param(0.0, min=0.0, max=0.99, help="trailing stop fraction (0: none)")

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
        first = view.arrays(view.symbols[0])
        self._plot_bars = (first.ts, first.close)  # views, no copy; SMAs computed in plot()
        # a Python list reads ~5x faster per element than a numpy array in the bar loop
        self._single_crosses = (
            self._crosses[self._single].tolist() if self._single is not None else None
        )
        self._fraction = self.size / len(view.symbols)
        # every signal, built once per symbol (signals are immutable): the close, and each
        # direction's entry, its stop and target given as distances from the signal bar's
        # close (placed where the order is made: Signal.exit_levels)
        self._fixed: dict[tuple[str, int], Sequence[Signal]] = {
            (symbol, direction): (self._signal(symbol, direction),)
            for symbol in view.symbols
            for direction in ((1, -1, 0) if self.short else (1, 0))
        }
        self._streams: dict[str, tuple[ExactSmaCross, deque[int], int]] | None = None
        self._init_last_ts = {
            s: int(view.arrays(s).ts[-1]) if len(view.arrays(s)) else -1 for s in view.symbols
        }

    def plot(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """The fast and slow SMAs of the first symbol, for the report's price chart.

        Plain numpy window sums: drawing them must not load the numba kernels (about 0.5 s of
        every backtest process); a chart needs no compensated sums.
        """
        bars = getattr(self, "_plot_bars", None)
        if bars is None:
            return {}
        ts, close = bars
        return {
            f"SMA {self.fast}": (ts, _rolling_mean(close, self.fast)),
            f"SMA {self.slow}": (ts, _rolling_mean(close, self.slow)),
        }

    def on_new_bars(self, view: MarketView) -> None:
        """Append the new bars' crosses (and drop those of bars that left the window)."""
        if self._streams is None:
            self._streams = self._start_streams(view)
            if self._streams is None:  # no tick size: recompute like any strategy
                super().on_new_bars(view)
                return
        for symbol in view.symbols:
            stream, crosses, last_ts = self._streams[symbol]
            bars = view.arrays(symbol)
            held = int(np.searchsorted(bars.ts, last_ts, side="right"))  # bars already seen
            for _ in range(len(crosses) - held):
                crosses.popleft()  # a bar that left the window
            for close in bars.close[held:].tolist():
                crosses.append(stream.update(close))
            self._streams[symbol] = (stream, crosses, int(bars.ts[-1]))
            self._crosses[symbol] = crosses  # type: ignore[assignment]
        if self._single is not None:
            self._single_crosses = self._crosses[self._single]  # type: ignore[assignment]

    def _start_streams(
        self, view: MarketView
    ) -> dict[str, tuple[ExactSmaCross, deque[int], int]] | None:
        """Streams positioned after the last bar ``on_init`` saw, with the crosses of the held
        bars up to it (None without a tick size: the exact sums need one)."""
        streams = {}
        for symbol in view.symbols:
            tick = view.instrument(symbol).tick_size
            if not tick:
                return None
            bars = view.arrays(symbol)
            last_ts = self._init_last_ts[symbol]
            seen = int(np.searchsorted(bars.ts, last_ts, side="right"))
            try:
                stream, crosses = ExactSmaCross.from_history(
                    bars.close[:seen], self.fast, self.slow, tick
                )
            except ConfigError:
                return None
            # a deque: O(1) at both ends, and on_bar reads next to the right end
            streams[symbol] = (stream, deque(crosses.tolist()), last_ts)
        return streams

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
        if cross > 0:
            if position is not None and position.is_long:
                return NO_SIGNALS
            return self._fixed[(symbol, 1)]
        if self.short:
            if position is not None and not position.is_long:
                return NO_SIGNALS
            return self._fixed[(symbol, -1)]
        if position is not None and position.is_long:
            return self._fixed[(symbol, 0)]
        return NO_SIGNALS

    def _signal(self, symbol: str, direction: int) -> Signal:
        """The entry of ``direction`` (+1 long, -1 short), its stop and target as distances
        from the signal bar's close, or the close (``direction`` 0)."""
        if direction == 0:
            return Signal.close(symbol, tag="sma_cross_down")
        factory = Signal.open_long if direction > 0 else Signal.open_short
        return factory(
            symbol,
            self._fraction,
            stop_loss_pct=self.stop_loss or None,
            take_profit_pct=self.take_profit or None,
            trailing_stop=self.trailing_stop or None,
            tag="sma_cross_up" if direction > 0 else "sma_cross_down",
        )
