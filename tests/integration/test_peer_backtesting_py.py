"""Our SMA crossover gives the same trades as backtesting.py on real data."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from backtesting import Backtest, Strategy
from backtesting.lib import crossover

from tradeloop.data.loader import load_ohlcv
from tradeloop.engine.config import RunConfig
from tradeloop.engine.runner import run_on_bars
from tradeloop.strategy.examples.sma_cross import SmaCross


def _rolling_mean(values: np.ndarray, n: int) -> np.ndarray:
    return pd.Series(values).rolling(n).mean().to_numpy()


class _PeerSmaCross(Strategy):
    fast = 10
    slow = 30

    def init(self) -> None:
        self.fast_ma = self.I(_rolling_mean, self.data.Close, self.fast)
        self.slow_ma = self.I(_rolling_mean, self.data.Close, self.slow)

    def next(self) -> None:
        if crossover(self.fast_ma, self.slow_ma) and not self.position:
            self.buy()
        elif crossover(self.slow_ma, self.fast_ma) and self.position:
            self.position.close()


def test_sma_cross_trades_match_backtesting_py_on_real_btc_1h(sample_1h: Path) -> None:
    # Arrange: 12k real hourly bars (2019-2020, including the March 2020 crash)
    bars = load_ohlcv(sample_1h).bars.slice(12_000, 24_000)
    frame = pd.DataFrame(
        {
            "Open": bars.open,
            "High": bars.high,
            "Low": bars.low,
            "Close": bars.close,
            "Volume": bars.volume,
        },
        index=pd.to_datetime(bars.ts, utc=True).tz_localize(None),
    )
    # Act
    ours = run_on_bars(
        SmaCross(fast=10, slow=30), {bars.symbol: bars}, RunConfig(balance=10_000_000.0)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peer = Backtest(
            frame,
            _PeerSmaCross,
            cash=10_000_000,
            commission=0.0,
            trade_on_close=False,
            exclusive_orders=False,
        ).run()
    peer_trades = peer["_trades"]
    # Assert: same entries and exits (times and prices) for every closed trade
    closed = [t for t in ours.trades if t.is_closed]
    assert len(closed) == len(peer_trades) > 100
    ours_entry = pd.to_datetime([t.entry_ts for t in closed])
    ours_exit = pd.to_datetime([t.exit_ts for t in closed])
    assert (ours_entry == pd.DatetimeIndex(peer_trades.EntryTime)).all()
    assert (ours_exit == pd.DatetimeIndex(peer_trades.ExitTime)).all()
    assert np.array_equal([t.entry_price for t in closed], peer_trades.EntryPrice.to_numpy())
    assert np.array_equal([t.exit_price for t in closed], peer_trades.ExitPrice.to_numpy())
    # per-unit P&L agrees (backtesting.py trades whole units, we trade fractional ones)
    ours_per_unit = np.array([t.pnl / t.quantity for t in closed])
    peer_per_unit = (peer_trades.PnL / peer_trades.Size).to_numpy()
    assert ours_per_unit == pytest.approx(peer_per_unit, rel=1e-9, abs=1e-9)
