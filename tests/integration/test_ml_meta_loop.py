"""Meta-labeling on real data: VPIN on real trades, walk-forward report, CLI, engine wiring."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tradeloop.cli.app import app
from tradeloop.core.signal import SignalAction
from tradeloop.data.loader import load_ohlcv
from tradeloop.engine.config import BacktestConfig
from tradeloop.engine.ml_strategy import (
    MetaFilteredStrategy,
    primary_events,
    walk_forward_evaluate,
)
from tradeloop.engine.runner import run_on_bars
from tradeloop.ml.registry import ModelRegistry
from tradeloop.ml.toxicity import bvc_buy_fraction, vpin_from_trades
from tradeloop.ml.training import TrainConfig, train_meta_model
from tradeloop.strategy.examples.sma_cross import SmaCross

FAST = TrainConfig(estimator_params={"n_estimators": 40}, n_splits=3)


@pytest.fixture(scope="module")
def btc_1h(sample_1h):
    return load_ohlcv(sample_1h).bars


def _trades(folder, name):
    df = pd.read_csv(folder / "trades" / name, parse_dates=["timestamp"])
    return df.assign(buy=df["side"] == "buy")


def test_vpin_from_real_trades_with_aggressor_side(shared_data):
    # Arrange: real Binance XRP/ETH trades with the taker side
    df = _trades(shared_data, "binance_xrpeth_2019/XRP_ETH-trades.normalized.csv")
    bucket = float(df["amount"].sum()) / 60
    # Act
    res = vpin_from_trades(df["amount"].to_numpy(), df["buy"].to_numpy(), bucket, 10)
    # Assert: buckets hold the traded volume, split by side exactly
    assert len(res.bucket_buy) in (59, 60)
    done = res.bucket_end[-1]
    first = df.iloc[: done + 1]
    total_buy = float(first.loc[first["buy"], "amount"].sum())
    assert res.bucket_buy.sum() == pytest.approx(total_buy, rel=0.02)
    v = res.vpin[np.isfinite(res.vpin)]
    assert v.size > 0
    assert np.all((v > 0) & (v < 1))


def test_bvc_agrees_with_real_aggressor_split(shared_data):
    # Arrange: 1-minute bars built from the same real trades
    df = _trades(shared_data, "binance_xrpeth_2019/XRP_ETH-trades.normalized.csv")
    df["buy_amount"] = df["amount"].where(df["buy"], 0.0)
    g = df.set_index("timestamp").resample("1min")
    bars = pd.DataFrame(
        {"close": g["price"].last(), "vol": g["amount"].sum(), "buy": g["buy_amount"].sum()}
    ).dropna()
    bars = bars[bars["vol"] > 0]
    # Act
    frac = bvc_buy_fraction(bars["close"].to_numpy(), 20)[21:]
    true = (bars["buy"] / bars["vol"]).to_numpy()[21:]
    # Assert: bulk classification tracks the true taker split (0.52 on this file)
    assert np.corrcoef(frac, true)[0, 1] > 0.3


def test_walk_forward_report_compares_filtered_and_primary_on_real_btc(btc_1h):
    # Act
    folds = walk_forward_evaluate(SmaCross, btc_1h, BacktestConfig(fee=0.001), FAST, n_windows=3)
    # Assert: both numbers exist for every window, whatever they are
    assert len(folds) == 3
    for f in folds:
        assert math.isfinite(f.primary_return)
        assert math.isfinite(f.filtered_return)
        assert f.primary_trades > 0
        assert f.filtered_trades <= f.primary_trades + 1
        assert f.train_events > 100
        assert f.start < f.end


def test_meta_filtered_strategy_sets_confidence_and_drops_low_signals(btc_1h):
    # Arrange
    bars = btc_1h.slice(0, 20_000)
    cfg = BacktestConfig(fee=0.001)
    plain = run_on_bars(SmaCross(), {bars.symbol: bars}, cfg)
    events, sides = primary_events(plain, bars)
    model = train_meta_model(bars, events, sides, FAST).model
    # Act
    wrapped = MetaFilteredStrategy(SmaCross(), model, threshold=0.5)
    res = run_on_bars(wrapped, {bars.symbol: bars}, cfg)
    # Assert
    opens = [s for _, s in res.signals if s.action is SignalAction.OPEN_LONG]
    assert opens
    assert all(s.confidence is not None and s.confidence >= 0.5 for s in opens)
    assert len(wrapped.scored) >= len(opens)
    assert len(opens) < len(events)


def test_cli_train_and_evaluate(tmp_path, sample_1h):
    runner = CliRunner()
    reg = tmp_path / "models"
    out = runner.invoke(
        app,
        ["train", "--strategy", "sma_cross", "--data", str(sample_1h), "--registry", str(reg),
         "--n-estimators", "30", "--folds", "3"],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "saved v0001" in out.output
    assert ModelRegistry(reg).metadata()["params"]["strategy"] == "sma_cross"
    listed = runner.invoke(app, ["ml", "models", "--registry", str(reg)])
    assert listed.exit_code == 0, listed.output
    assert "v0001" in listed.output
    out = runner.invoke(
        app,
        ["ml", "evaluate", "--strategy", "sma_cross", "--data", str(sample_1h),
         "--windows", "2", "--n-estimators", "30"],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "vs primary" in out.output


def test_cli_train_too_few_bars_is_a_clear_error(tmp_path, sample_1h):
    small = tmp_path / "small.csv"
    bars = load_ohlcv(sample_1h).bars.slice(0, 500)
    pd.DataFrame(
        {
            "timestamp": pd.to_datetime(bars.ts, utc=True),
            "open": bars.open, "high": bars.high, "low": bars.low,
            "close": bars.close, "volume": bars.volume,
        }
    ).to_csv(small, index=False)  # fmt: skip
    out = CliRunner().invoke(app, ["train", "--strategy", "sma_cross", "--data", str(small)])
    assert out.exit_code == 3
    assert "at least 1000 bars" in out.output
