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
