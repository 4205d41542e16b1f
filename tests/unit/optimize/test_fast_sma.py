"""The vectorized SMA-crossover kernel equals the event kernel trade for trade."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tradeloop.engine.config import RunConfig
from tradeloop.engine.runner import DataSpec, _instrument, load_data, run_on_bars
from tradeloop.optimize.fast_sma import SmaCrossSweep, fast_path_blocker
from tradeloop.strategy.examples.rsi_reversion import RsiReversion
from tradeloop.strategy.examples.sma_cross import SmaCross

BTC_1M = "crypto_1m/binance_spot_2025/BTC_USDT-1m.feather"


@pytest.fixture(scope="module")
def btc(shared_data: Path):  # type: ignore[no-untyped-def]
    (loaded,) = load_data([DataSpec(shared_data / BTC_1M)])
    return loaded


CASES = [
    (RunConfig(fee=0.001), {"fast": 10, "slow": 30}),
    (
        RunConfig(fee=0.001, slippage_bps=2.0),
        {"fast": 7, "slow": 60, "short": True, "stop_loss": 0.003, "take_profit": 0.004},
    ),
    (
        RunConfig(fee=0.0005, close_at_end=True),
        {"fast": 20, "slow": 50, "stop_loss": 0.01, "size": 0.5},
    ),
    (RunConfig(fee=0.001), {"fast": 45, "slow": 240, "short": True, "take_profit": 0.02}),
    # always in the market: the last position is closed at the end, with its slippage
    (
        RunConfig(fee=0.001, slippage_bps=5.0, close_at_end=True),
        {"fast": 9, "slow": 21, "short": True},
    ),
]


@pytest.mark.parametrize(("config", "params"), CASES)
def test_fast_sma_kernel_equals_event_kernel_trade_for_trade(btc, config, params) -> None:  # type: ignore[no-untyped-def]
    # Arrange
    symbol = btc.bars.symbol
    instrument = _instrument(btc, config)
    # Act
    event = run_on_bars(
        SmaCross(**params), {symbol: btc.bars}, config, instruments={symbol: instrument}
    )
    fast = SmaCrossSweep(btc.bars, instrument, config).run(params, keep=True)
    # Assert: every trade (ids, times, prices, quantities, fees, P&L, exit reasons), the
    # equity and exposure at every bar, and every metric
    assert len(event.trades) > 300
    assert fast.trades() == event.trades
    np.testing.assert_array_equal(fast.equity, event.equity)
    np.testing.assert_array_equal(fast.exposure, event.exposure)
    assert fast.metrics == event.metrics


def test_fast_sma_kernel_window_and_trade_start_equal_event_kernel(btc) -> None:  # type: ignore[no-untyped-def]
    # Arrange: a bar window with warm-up bars before the strategy acts (a walk-forward OOS run)
    ts = btc.bars.ts
    config = RunConfig(
        fee=0.001,
        start=int(ts[20_000]),
        end=int(ts[50_000]),
        trade_start=int(ts[30_000]),
        close_at_end=True,
        balance=7_500.0,
    )
    params = {"fast": 15, "slow": 80, "stop_loss": 0.005}
    symbol = btc.bars.symbol
    instrument = _instrument(btc, config)
    # Act
    event = run_on_bars(
        SmaCross(**params), {symbol: btc.bars}, config, instruments={symbol: instrument}
    )
    fast = SmaCrossSweep(btc.bars, instrument, config).run(params, keep=True)
    # Assert
    assert event.trades
    assert all(t.entry_ts >= ts[30_000] for t in event.trades)
    assert fast.trades() == event.trades
    np.testing.assert_array_equal(fast.equity, event.equity)


def test_window_sums_are_computed_once_per_distinct_length(btc) -> None:  # type: ignore[no-untyped-def]
    # Arrange
    sweep = SmaCrossSweep(btc.bars, _instrument(btc, RunConfig()), RunConfig())
    # Act: a 3 x 3 grid over 6 distinct lengths
    for fast in (5, 10, 15):
        for slow in (60, 80, 100):
            sweep.run({"fast": fast, "slow": slow})
    # Assert
    assert sorted(sweep._sums) == [5, 10, 15, 60, 80, 100]


def test_fast_path_refuses_what_it_cannot_reproduce(btc) -> None:  # type: ignore[no-untyped-def]
    instrument = _instrument(btc, RunConfig())
    assert fast_path_blocker(SmaCross, btc.bars, instrument, RunConfig()) is None
    assert "sma_cross" in str(fast_path_blocker(RsiReversion, btc.bars, instrument, RunConfig()))
    assert fast_path_blocker(SmaCross, btc.bars, instrument, RunConfig(timeframe="1h"))
    assert fast_path_blocker(SmaCross, btc.bars, instrument, RunConfig(risk="default"))
    assert fast_path_blocker(SmaCross, btc.bars, instrument, RunConfig(fill_price="close"))
