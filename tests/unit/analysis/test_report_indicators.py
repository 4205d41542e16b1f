"""A strategy declares what to plot; the backtest keeps it and the report draws it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tradeloop.analysis import _charts as charts
from tradeloop.analysis.trades import trade_columns
from tradeloop.core.time import parse_time
from tradeloop.engine import RunConfig
from tradeloop.engine.runner import DataSpec, run_backtest


def test_sma_cross_plots_its_averages_over_the_price_chart(sample_1h: Path) -> None:
    # Arrange
    config = RunConfig(end=parse_time("2018-01-01"))
    # Act
    result, loaded = run_backtest(
        "sma_cross", [DataSpec(sample_1h)], config, {"fast": 10, "slow": 30}, strategies_dir=None
    )
    candles = charts.grid_candles(loaded[0].bars, result.ts, 3_600_000_000_000)
    figure = charts.price_figure(
        "BTC/USDT",
        candles,
        trade_columns(result.trades),
        end_ns=int(result.ts[-1]),
        title="t",
        indicators=result.indicators,
    )
    # Assert: the 10- and 30-bar means of the closes, by hand, at the run's bars
    assert set(result.indicators) == {"SMA 10", "SMA 30"}
    ts, fast = result.indicators["SMA 10"]
    close = loaded[0].bars.close
    i = int(np.searchsorted(ts, result.ts[500]))
    assert fast[i] == pytest.approx(close[i - 9 : i + 1].mean(), rel=1e-12)
    assert np.isnan(fast[:9]).all()
    lines = {t["name"]: t for t in figure["data"] if t["name"].startswith("SMA")}
    assert set(lines) == {"SMA 10", "SMA 30"}
    assert len(candles) == len(result.ts)


def test_merged_candles_plot_each_indicator_at_the_candles_close() -> None:
    # Arrange: 10 hourly candles with an indicator equal to each bar's close, merged 3 by 3
    hour = 3_600_000_000_000
    ts = np.arange(10, dtype=np.int64) * hour
    close = 100.0 + np.arange(10)
    candles = charts.Candles(ts, close - 0.5, close + 1, close - 1, close, np.ones(10))
    merged, per = charts.merge_candles(candles, 4)
    # Act
    figure = charts.price_figure("X", merged, trade_columns([]), end_ns=int(ts[-1]), title="t",
                                 indicators={"close": (ts, close)})  # fmt: skip
    # Assert: the line meets each merged candle's close (its last bar), not its first bar
    assert per == 3
    (line,) = [t for t in figure["data"] if t["name"] == "close"]
    drawn = charts.typed(merged.close)  # the same encoding as the figure's arrays
    assert line["y"] == drawn
    assert merged.close.tolist() == [102.0, 105.0, 108.0, 109.0]
    assert merged.close_bar_ts.tolist() == [2 * hour, 5 * hour, 8 * hour, 9 * hour]
    assert merged.tail(2).close_bar_ts.tolist() == [8 * hour, 9 * hour]
