"""Meta-labeling on real data: VPIN on real trades, walk-forward report, CLI, engine wiring.

A model enters a run one way: :class:`ModelEnrichment` in the kernel step. It replaced a
strategy wrapper (``MetaFilteredStrategy``); :class:`_RemovedWrapper` below is that wrapper's
logic, kept only as the oracle the enrichment is compared with.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tradeloop.cli.app import app
from tradeloop.core.instrument import Instrument
from tradeloop.core.portfolio import Portfolio
from tradeloop.core.signal import Signal, SignalAction
from tradeloop.data.loader import load_ohlcv
from tradeloop.engine.config import RunConfig
from tradeloop.engine.enrichment import ModelEnrichment
from tradeloop.engine.kernel import BacktestEngine
from tradeloop.engine.market import MarketData
from tradeloop.engine.ml_strategy import primary_events, walk_forward_evaluate
from tradeloop.engine.result import BacktestResult
from tradeloop.engine.runner import run_on_bars
from tradeloop.ml.model import MetaModel
from tradeloop.ml.registry import ModelRegistry
from tradeloop.ml.toxicity import bvc_buy_fraction, vpin_from_trades
from tradeloop.ml.training import TrainConfig, train_meta_model
from tradeloop.risk.config import RiskConfig
from tradeloop.strategy.base import Strategy
from tradeloop.strategy.examples.sma_cross import SmaCross
from tradeloop.strategy.view import MarketView

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
    folds = walk_forward_evaluate(SmaCross, btc_1h, RunConfig(fee=0.001), FAST, n_windows=3)
    # Assert: both numbers exist for every window, whatever they are
    assert len(folds) == 3
    for f in folds:
        assert math.isfinite(f.primary_return)
        assert math.isfinite(f.filtered_return)
        assert f.primary_trades > 0
        assert f.filtered_trades <= f.primary_trades + 1
        assert f.train_events > 100
        assert f.start < f.end


class _RemovedWrapper(Strategy):
    """The removed ``MetaFilteredStrategy``'s logic (the oracle): score entries in the
    strategy, set their confidence, drop those below the threshold."""

    def __init__(self, base: Strategy, model: MetaModel, threshold: float) -> None:
        self.base, self.model, self.threshold = base, model, threshold
        self.params = dict(base.params)
        self.timeframes = base.timeframes  # type: ignore[misc]
        self.symbols = base.symbols  # type: ignore[misc]

    def on_init(self, view: MarketView) -> None:
        self.base.on_init(view)
        fs = self.model.feature_set
        self._features = {s: fs.compute_bars(view.arrays(s)) for s in view.symbols}

    def signal_bars(self, view: MarketView) -> np.ndarray | None:
        return self.base.signal_bars(view)

    def on_bar(self, view: MarketView, portfolio: Portfolio) -> Sequence[Signal]:
        out: list[Signal] = []
        for sig in self.base.on_bar(view, portfolio) or ():
            side = {SignalAction.OPEN_LONG: 1, SignalAction.OPEN_SHORT: -1}.get(sig.action)
            if side is None:
                out.append(sig)
                continue
            row = self._features[sig.symbol][view.index(sig.symbol)]
            conf = 0.5
            if not np.isnan(row).any():
                fs = self.model.feature_set
                conf = min(1.0, max(0.0, self.model.predict_one(fs.with_signal(row, side)[0])))
            if conf >= self.threshold:
                out.append(dataclasses.replace(sig, confidence=conf))
        return out


def _trade_rows(result: BacktestResult) -> list[tuple]:
    return [
        (t.symbol, t.direction, t.entry_ts, t.entry_price, t.quantity, t.exit_ts, t.exit_price,
         t.exit_reason, t.pnl)
        for t in result.trades
    ]  # fmt: skip


@pytest.fixture(scope="module")
def btc_model(btc_1h):
    """A meta-model of sma_cross (long and short) trained on the first 20,000 real bars."""
    bars = btc_1h.slice(0, 20_000)
    plain = run_on_bars(SmaCross(short=True), {bars.symbol: bars}, RunConfig(fee=0.001))
    events, sides = primary_events(plain, bars)
    return train_meta_model(bars, events, sides, FAST).model


@pytest.mark.parametrize("profile", ["permissive", "default"])
@pytest.mark.parametrize("threshold", [0.0, 0.45])
def test_enrichment_equals_the_removed_strategy_wrapper_on_real_btc(
    btc_1h, btc_model, profile, threshold
):
    # Arrange: the whole real series, out of sample after bar 20,000
    cfg = RunConfig(fee=0.001, risk=RiskConfig.from_profile(profile))
    data = {btc_1h.symbol: btc_1h}
    # Act
    old = run_on_bars(_RemovedWrapper(SmaCross(short=True), btc_model, threshold), data, cfg)
    enrichment = ModelEnrichment(btc_model, min_confidence=threshold)
    new = run_on_bars(SmaCross(short=True), data, cfg, enrichment=enrichment)
    # Assert: the same trades and equity; the enrichment saw every strategy signal
    assert len(new.trades) > 20
    assert _trade_rows(new) == _trade_rows(old)
    np.testing.assert_array_equal(new.equity, old.equity)
    counts = enrichment.counts
    assert counts.signals == len(new.signals)
    assert counts.enriched + counts.exits == counts.signals
    kept = [r for r in enrichment.records if r.kept]
    assert len(kept) == counts.enriched - counts.dropped
    assert all(r.confidence >= threshold for r in kept)
    assert all(not r.kept for r in enrichment.records if r.confidence < threshold)
    if threshold > 0:
        assert counts.dropped > 0


def test_default_profile_sizes_each_position_by_its_confidence_under_the_cap(shared_data):
    # Arrange: real BTC/USDT 5m bars of 2025; the model learns on the first half
    bars = load_ohlcv(shared_data / "crypto_1m/binance_spot_2025/BTC_USDT-5m.feather").bars
    half = len(bars) // 2
    head = bars.slice(0, half)
    plain_head = run_on_bars(SmaCross(), {bars.symbol: head}, RunConfig(fee=0.001))
    events, sides = primary_events(plain_head, head)
    model = train_meta_model(head, events, sides, FAST).model
    cfg = RunConfig(fee=0.001, risk=RiskConfig.default(), start=int(bars.ts[half]))
    instruments = {bars.symbol: Instrument(bars.symbol, maker_fee=0.001, taker_fee=0.001)}
    market = MarketData({bars.symbol: bars}, instruments, "5m", start=cfg.start)
    enrichment = ModelEnrichment(model, min_confidence=0.0)
    # Act
    engine = BacktestEngine(SmaCross(), market, cfg, enrichment=enrichment)
    result = engine.run()
    plain = run_on_bars(SmaCross(), {bars.symbol: bars}, cfg)
    # Assert: every entry is the 10% cap times its confidence (equity and close at its bar)
    confidence = {r.signal_id: r.confidence for r in enrichment.records}
    entries = [o for o in engine.orders if o.position_id in confidence]
    assert len(entries) > 10
    step_of = {int(t): k for k, t in enumerate(market.step_ts)}
    close = market.series[(bars.symbol, "5m")].close
    for order in entries:
        k = step_of[order.ts_created]
        notional = order.quantity * close[k]
        c = confidence[order.position_id]
        assert notional == pytest.approx(0.10 * result.equity[k] * c, rel=1e-9)
        assert notional <= 0.10 * result.equity[k] * (1 + 1e-12)
    assert len({round(confidence[o.position_id], 6) for o in entries}) > 3  # sizes vary
    ml_avg = np.mean([t.quantity * t.entry_price for t in result.trades])
    plain_avg = np.mean([t.quantity * t.entry_price for t in plain.trades])
    assert ml_avg < 0.8 * plain_avg


def test_cli_train_and_evaluate(tmp_path, sample_1h):
    runner = CliRunner()
    reg = tmp_path / "models"
    out = runner.invoke(
        app,
        ["train", "--strategy", "sma_cross", "--data", str(sample_1h), "--registry", str(reg),
         "--n-estimators", "30", "--folds", "3"],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "saved sma_cross:v0001" in out.output
    assert ModelRegistry(reg / "sma_cross").metadata()["params"]["strategy"] == "sma_cross"
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
