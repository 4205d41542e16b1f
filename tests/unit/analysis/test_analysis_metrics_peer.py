"""Sharpe, Sortino, max drawdown and CAGR against empyrical on a real equity curve.

The curve is SMA(10/30) on the bundled BTC/USDT sample, run on 1h and on 4h bars. Both
libraries get the same simple returns per bar, the first from the starting equity.

Annualization, stated per timeframe: the sample trades 24/7, so tradeloop infers 365-day years
of bars, 8,760 periods for 1h and 2,190 for 4h; empyrical is given the same
``annualization``. CAGR: tradeloop counts calendar time from the first bar's open to the last
bar's close, empyrical counts returns (``len(returns) / annualization`` years); the sample has
a few gaps, so empyrical gets ``annualization = len(returns) / calendar years``, which makes
the two definitions coincide.
"""

from __future__ import annotations

from pathlib import Path

import empyrical
import numpy as np
import pandas as pd
import pytest

from tradeloop.analysis.metrics import periods_per_year
from tradeloop.core.timeframes import timeframe_ns
from tradeloop.data import load_ohlcv
from tradeloop.engine import RunConfig
from tradeloop.engine.runner import run_on_bars
from tradeloop.strategy.examples.sma_cross import SmaCross

YEAR_NS = 365.25 * 86_400e9


@pytest.fixture(scope="module", params=["1h", "4h"])
def real_run(request: pytest.FixtureRequest, sample_1h: Path):  # type: ignore[no-untyped-def]
    bars = load_ohlcv(sample_1h).bars
    result = run_on_bars(
        SmaCross(fast=10, slow=30),
        {bars.symbol: bars},
        RunConfig(fee=0.001, timeframe=request.param),
    )
    series = np.concatenate(([result.config["balance"]], result.equity))
    returns = pd.Series(
        np.diff(series) / series[:-1],
        index=pd.to_datetime(result.ts, utc=True),
    )
    return request.param, result, returns


def test_peer_sharpe_matches_empyrical(real_run) -> None:  # type: ignore[no-untyped-def]
    # Arrange
    tf, result, returns = real_run
    periods = periods_per_year(timeframe_ns(tf))
    # Act
    theirs = empyrical.sharpe_ratio(returns, annualization=periods)
    # Assert
    assert result.metrics.sharpe == pytest.approx(theirs, rel=1e-9)


def test_peer_sortino_matches_empyrical(real_run) -> None:  # type: ignore[no-untyped-def]
    # Arrange
    tf, result, returns = real_run
    periods = periods_per_year(timeframe_ns(tf))
    # Act
    theirs = empyrical.sortino_ratio(returns, annualization=periods)
    # Assert
    assert result.metrics.sortino == pytest.approx(theirs, rel=1e-9)


def test_peer_volatility_matches_empyrical(real_run) -> None:  # type: ignore[no-untyped-def]
    # Arrange
    tf, result, returns = real_run
    periods = periods_per_year(timeframe_ns(tf))
    # Act
    theirs = empyrical.annual_volatility(returns, annualization=periods)
    # Assert
    assert result.metrics.volatility == pytest.approx(theirs, rel=1e-9)


def test_peer_max_drawdown_matches_empyrical(real_run) -> None:  # type: ignore[no-untyped-def]
    # Arrange
    _, result, returns = real_run
    # Act
    theirs = empyrical.max_drawdown(returns)
    # Assert
    assert result.metrics.max_drawdown == pytest.approx(theirs, rel=1e-9)


def test_peer_cagr_matches_empyrical_over_calendar_time(real_run) -> None:  # type: ignore[no-untyped-def]
    # Arrange
    tf, result, returns = real_run
    years = (int(result.ts[-1]) + timeframe_ns(tf) - int(result.ts[0])) / YEAR_NS
    # Act
    theirs = empyrical.cagr(returns, annualization=len(returns) / years)
    # Assert
    assert result.metrics.cagr == pytest.approx(theirs, rel=1e-9)
    assert len(returns) > 1000
