"""Backtest kernel: multi-timeframe visibility, strategy errors and parameter errors."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from tradeloop.core.bar import Bar, BarArrays
from tradeloop.core.errors import ConfigError, StrategyError
from tradeloop.core.portfolio import Portfolio
from tradeloop.core.signal import Signal
from tradeloop.core.time import parse_time
from tradeloop.engine.config import RunConfig
from tradeloop.engine.runner import run_on_bars
from tradeloop.strategy.base import NO_SIGNALS, Strategy
from tradeloop.strategy.examples.sma_cross import SmaCross
from tradeloop.strategy.view import MarketView

MINUTE = 60_000_000_000
HOUR = 60 * MINUTE
T0 = parse_time("2024-01-01T00:00:00Z")
SYM = "BTC"


def bars_every(step_ns: int, timeframe: str, n: int, symbol: str = SYM) -> BarArrays:
    """``n`` bars from T0 whose open is 100+k, high 101+k, low 99+k, close 100.5+k."""
    k = np.arange(n, dtype=np.float64)
    ts = T0 + np.arange(n, dtype=np.int64) * step_ns
    return BarArrays(symbol, timeframe, ts, 100 + k, 101 + k, 99 + k, 100.5 + k, np.ones(n))


# --------------------------------------------------------------------------- multi-timeframe


class HourlyWatcher(Strategy):
    """Records what it can see of the 1h series at every 15m step."""

    name = "hourly_watcher"
    timeframes = ("15m", "1h")

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[int, int, Bar | None, bool, int]] = []

    def on_bar(self, view: MarketView, portfolio: Portfolio) -> Sequence[Signal]:
        self.seen.append(
            (
                view.ts,
                view.index(SYM, "1h"),
                view.bar(SYM, "1h"),
                view.updated(SYM, "1h"),
                len(view.history(SYM, "1h")),
            )
        )
        return NO_SIGNALS


def test_kernel_1h_bar_visible_only_after_its_close_on_15m_steps() -> None:
    # Arrange: 12 bars of 15m = hours 00:00, 01:00, 02:00
    strategy = HourlyWatcher()
    # Act
    result = run_on_bars(strategy, {SYM: bars_every(15 * MINUTE, "15m", 12)}, RunConfig())
    # Assert
    assert result.timeframe == "15m"
    indexes = [seen[1] for seen in strategy.seen]
    # the 00:00 hour closes at 01:00 = the close of the 00:45 step (step 3)
    assert indexes == [-1, -1, -1, 0, 0, 0, 0, 1, 1, 1, 1, 2]
    step_ts, _, bar, updated, history = strategy.seen[3]
    assert step_ts == T0 + 45 * MINUTE
    assert bar is not None
    assert bar.ts == T0
    assert bar.timeframe == "1h"
    # the 1h bar aggregates 15m bars 0-3: open 100, high 101+3, low 99, close 100.5+3
    assert (bar.open, bar.high, bar.low, bar.close) == (100.0, 104.0, 99.0, 103.5)
    assert updated is True
    assert history == 1
    for step_ts, index, bar, updated, history in strategy.seen[:3]:
        assert step_ts < T0 + 45 * MINUTE
        assert index == -1
        assert bar is None
        assert not updated
        assert history == 0
    # a new 1h bar completes on steps 3 (00:45), 7 (01:45) and 11 (02:45)
    assert [seen[3] for seen in strategy.seen] == [k in (3, 7, 11) for k in range(12)]


def test_kernel_1h_bar_never_visible_before_it_closes() -> None:
    # Arrange
    strategy = HourlyWatcher()
    # Act
    run_on_bars(strategy, {SYM: bars_every(15 * MINUTE, "15m", 12)}, RunConfig())
    # Assert: a visible 1h bar always closed by the current step's close (ts + 15m)
    for step_ts, _, bar, _, _ in strategy.seen:
        if bar is not None:
            assert bar.ts + HOUR <= step_ts + 15 * MINUTE


# --------------------------------------------------------------------------- strategy errors


class Exploding(Strategy):
    """Raises on bar 2."""

    name = "exploding"

    def on_bar(self, view: MarketView, portfolio: Portfolio) -> Sequence[Signal]:
        if view.i == 2:
            raise ValueError("boom")
        return NO_SIGNALS


def test_kernel_strategy_raises_in_on_bar_strategy_error_names_strategy_and_bar_time() -> None:
    # Arrange
    bars = bars_every(HOUR, "1h", 5)
    # Act
    with pytest.raises(StrategyError) as info:
        run_on_bars(Exploding(), {SYM: bars}, RunConfig())
    # Assert: bar 2 opens at 02:00
    err = info.value
    assert err.strategy == "exploding"
    assert err.time_iso == "2024-01-01T02:00:00+00:00"
    assert "strategy 'exploding'" in str(err)
    assert "2024-01-01T02:00:00+00:00" in str(err)
    assert "ValueError: boom" in str(err)
    assert isinstance(err.__cause__, ValueError)


def test_kernel_strategy_raises_multi_symbol_strategy_error_names_bar_time() -> None:
    # Arrange: two symbols take the general (multi-lane) loop
    bars = {SYM: bars_every(HOUR, "1h", 5), "ETH": bars_every(HOUR, "1h", 5, "ETH")}
    # Act
    with pytest.raises(StrategyError) as info:
        run_on_bars(Exploding(), bars, RunConfig())
    # Assert
    assert info.value.time_iso == "2024-01-01T02:00:00+00:00"


def test_kernel_strategy_raises_in_on_init_strategy_error_without_bar_time() -> None:
    # Arrange
    class BadInit(Strategy):
        name = "bad_init"

        def on_init(self, view: MarketView) -> None:
            raise KeyError("missing")

        def on_bar(self, view: MarketView, portfolio: Portfolio) -> Sequence[Signal]:
            return NO_SIGNALS

    # Act
    with pytest.raises(StrategyError) as info:
        run_on_bars(BadInit(), {SYM: bars_every(HOUR, "1h", 3)}, RunConfig())
    # Assert
    assert info.value.strategy == "bad_init"
    assert info.value.time_iso is None


def test_kernel_strategy_unknown_parameter_config_error_did_you_mean() -> None:
    # Arrange / Act
    with pytest.raises(ConfigError) as info:
        SmaCross(fsat=5)
    # Assert
    message = str(info.value)
    assert "'fsat'" in message
    assert "Did you mean: 'fast'?" in message


def test_kernel_strategy_bad_parameter_type_config_error() -> None:
    # Arrange / Act
    with pytest.raises(ConfigError, match="cannot read 'abc' as int"):
        SmaCross(fast="abc")


def test_kernel_strategy_parameter_below_minimum_config_error() -> None:
    # Arrange / Act / Assert
    with pytest.raises(ConfigError, match="below its minimum"):
        SmaCross(fast=0)


def test_kernel_strategy_symbol_missing_from_data_config_error() -> None:
    # Arrange
    class WantsEth(Strategy):
        name = "wants_eth"
        symbols = ("ETH",)

        def on_bar(self, view: MarketView, portfolio: Portfolio) -> Sequence[Signal]:
            return NO_SIGNALS

    # Act / Assert
    with pytest.raises(ConfigError, match="ETH"):
        run_on_bars(WantsEth(), {SYM: bars_every(HOUR, "1h", 3)}, RunConfig())


def test_kernel_timeframe_finer_than_data_config_error() -> None:
    # Arrange: 1h data cannot make 15m bars
    # Act / Assert
    with pytest.raises(ConfigError, match="cannot build 15m"):
        run_on_bars(Exploding(), {SYM: bars_every(HOUR, "1h", 3)}, RunConfig(timeframe="15m"))


def test_kernel_result_ts_and_equity_length_match_base_steps() -> None:
    # Arrange: 8 x 15m = two full hours on the 1h base timeframe
    bars = bars_every(15 * MINUTE, "15m", 8)
    # Act
    result = run_on_bars(Exploding(), {SYM: bars}, RunConfig(timeframe="1h"))
    # Assert: bar 2 never comes, so nothing raises
    assert result.ts.tolist() == [T0, T0 + HOUR]
    assert result.equity.shape == result.cash.shape == (2,)
