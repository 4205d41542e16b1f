"""Multi-timeframe trend following: a 4h trend filter with 15m entries."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tradeloop.core.portfolio import Portfolio
from tradeloop.core.signal import Signal
from tradeloop.indicators import ema, rsi
from tradeloop.strategy.base import NO_SIGNALS, Strategy
from tradeloop.strategy.params import Param
from tradeloop.strategy.view import MarketView


class MtfTrend(Strategy):
    """Multi-timeframe trend: trade 15m RSI pullbacks only in the direction of the 4h EMA trend.

    The 4h trend is read from completed 4h bars only (a 4h bar is visible after it closes).
    Long when the 4h fast EMA is above the slow EMA and the 15m RSI dips below `pullback`;
    short in the mirror case when `short` is on. Exit when the 4h trend flips or RSI recovers
    past 50 + `exit_band` (long) / 50 - `exit_band` (short).
    """

    name = "mtf_trend"
    timeframes = ("15m", "4h")
    trend_fast = Param(10, min=2, help="fast EMA on the 4h timeframe")
    trend_slow = Param(30, min=3, help="slow EMA on the 4h timeframe")
    rsi_period = Param(14, min=2, help="RSI length on the trading timeframe")
    pullback = Param(35.0, min=1.0, max=50.0, help="long entry when RSI is below this")
    exit_band = Param(20.0, min=0.0, max=49.0, help="exit when RSI is 50 +/- this")
    size = Param(1.0, min=0.0, max=1.0, help="equity fraction per entry, split across symbols")
    stop_loss = Param(0.03, min=0.0, max=0.99, help="stop-loss distance as a fraction (0: none)")
    short = Param(False, help="also trade pullbacks in a 4h down-trend")

    def on_init(self, view: MarketView) -> None:
        """Compute the 4h trend and the trading-timeframe RSI once."""
        self._trend_tf = self.timeframes[1]
        self._trend: dict[str, np.ndarray] = {}
        self._rsi: dict[str, np.ndarray] = {}
        self._fraction = self.size / len(view.symbols)
        for symbol in view.symbols:
            higher = view.arrays(symbol, self._trend_tf)
            fast = ema(higher.close, self.trend_fast)
            slow = ema(higher.close, self.trend_slow)
            with np.errstate(invalid="ignore"):
                self._trend[symbol] = np.where(fast > slow, 1, np.where(fast < slow, -1, 0))
            self._rsi[symbol] = rsi(view.arrays(symbol).close, self.rsi_period)

    def on_bar(self, view: MarketView, portfolio: Portfolio) -> Sequence[Signal]:
        """Enter pullbacks with the higher-timeframe trend; exit on a flip or recovery."""
        out: list[Signal] = []
        for symbol in view.symbols:
            if not view.updated(symbol):
                continue
            k = view.index(symbol, self._trend_tf)
            trend = int(self._trend[symbol][k]) if k >= 0 else 0
            value = self._rsi[symbol][view.index(symbol)]
            if value != value:  # NaN during warm-up
                continue
            position = portfolio.positions.get(symbol)
            price = view.close(symbol)
            if position is None:
                if trend > 0 and value < self.pullback:
                    out.append(
                        Signal.open_long(
                            symbol,
                            self._fraction,
                            tag="mtf_long",
                            stop_loss=price * (1 - self.stop_loss) if self.stop_loss else None,
                        )
                    )
                elif self.short and trend < 0 and value > 100 - self.pullback:
                    out.append(
                        Signal.open_short(
                            symbol,
                            self._fraction,
                            tag="mtf_short",
                            stop_loss=price * (1 + self.stop_loss) if self.stop_loss else None,
                        )
                    )
            elif (position.is_long and (trend < 0 or value > 50 + self.exit_band)) or (
                not position.is_long and (trend > 0 or value < 50 - self.exit_band)
            ):
                out.append(Signal.close(symbol, tag="mtf_exit"))
        return out or NO_SIGNALS
