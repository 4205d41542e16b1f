"""Stream quality on real trades: injected outliers flagged (and nothing else), duplicates,
trade-id gaps and live CVD against the batch order-flow code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tradeloop.core.errors import ConfigError
from tradeloop.core.market_events import MarketTrade, TradeBatch
from tradeloop.data.orderflow import trade_volume_delta
from tradeloop.data.stream.quality import (
    Deduplicator,
    LiveCVD,
    OutlierConfig,
    OutlierFilter,
    TradeIdGaps,
)

TRADES = "trades/binance_btcusdt_2021/btcusdt-trades.normalized.csv"


def _batch(shared_data: Path) -> tuple[TradeBatch, pd.DataFrame]:
    df = pd.read_csv(shared_data / TRADES)
    ts = pd.to_datetime(df["timestamp"], utc=True, format="ISO8601")
    ns = ts.dt.tz_convert(None).astype("datetime64[ns]").astype("int64").to_numpy()
    side = np.where(df["side"] == "buy", 1, -1).astype(np.int8)
    batch = TradeBatch(
        "binance", "BTC/USDT", ns, ns + 1000, df["price"].to_numpy(), df["amount"].to_numpy(),
        side, df["trade_id"].astype(str).to_numpy(dtype=object),
    )  # fmt: skip
    return batch, df


INJECT = {300: 1.05, 777: 0.93, 1200: 1.02, 1500: 0.97, 1999: 1.1}


def _with_outliers(batch: TradeBatch) -> TradeBatch:
    price = batch.price.copy()
    for i, factor in INJECT.items():
        price[i] *= factor
    return TradeBatch(
        batch.venue, batch.symbol, batch.ts, batch.recv_ts, price, batch.amount, batch.side,
        batch.trade_id,
    )  # fmt: skip


def test_real_trades_have_no_outliers_and_injected_ones_are_flagged(shared_data: Path) -> None:
    batch, _ = _batch(shared_data)
    assert len(batch) == 2001
    assert not OutlierFilter().mask(batch).any()
    f = OutlierFilter()
    dirty = _with_outliers(batch)
    # in chunks, as a stream delivers them: the window carries across batches
    masks = [f.mask(dirty.take(np.arange(i, min(i + 97, len(dirty))))) for i in range(0, 2001, 97)]
    mask = np.concatenate(masks)
    assert sorted(np.nonzero(mask)[0].tolist()) == sorted(INJECT)
    assert f.flagged == {("binance", "BTC/USDT"): len(INJECT)}


@pytest.mark.parametrize("method", ["zscore", "iqr"])
def test_each_test_alone_flags_the_injected_spikes(shared_data: Path, method: str) -> None:
    batch, _ = _batch(shared_data)
    mask = OutlierFilter(OutlierConfig(method=method)).mask(_with_outliers(batch))  # type: ignore[arg-type]
    assert set(np.nonzero(mask)[0].tolist()) == set(INJECT)


def test_zscore_decision_matches_a_numpy_window() -> None:
    rng = np.random.default_rng(3)
    prices = 100 + rng.normal(0, 0.05, 300)
    prices[250] = 101.0  # 20 sigma, 1% away
    prices[260] = 100.1  # 2 sigma: normal
    n = len(prices)
    ids = np.array([str(i) for i in range(n)], dtype=object)
    b = TradeBatch(
        "x", "S", np.arange(n), np.arange(n), prices, np.ones(n), np.ones(n, np.int8), ids
    )
    cfg = OutlierConfig(window=100, z=6.0, method="zscore", min_rel=0.0)
    mask = OutlierFilter(cfg).mask(b)
    # reference: window = the 100 accepted prices before each one
    accepted: list[float] = []
    expect = []
    for p in prices:
        w = np.array(accepted[-100:])
        bad = len(w) >= cfg.min_count and abs(p - w.mean()) > cfg.z * w.std()
        expect.append(bad)
        if not bad:
            accepted.append(p)
    assert mask.tolist() == expect
    assert mask[250]
    assert not mask[260]


def test_drop_and_halt_actions(shared_data: Path) -> None:
    batch, _ = _batch(shared_data)
    dirty = _with_outliers(batch)
    kept, mask = OutlierFilter(OutlierConfig(action="drop")).apply(dirty)
    assert len(kept) == 2001 - len(INJECT)
    assert int(mask.sum()) == len(INJECT)
    halt = OutlierFilter(OutlierConfig(action="halt"))
    kept, _ = halt.apply(dirty)
    assert len(kept) == min(INJECT)  # everything before the first outlier
    assert ("binance", "BTC/USDT") in halt.halted
    again, _ = halt.apply(batch)
    assert len(again) == 0  # halted until resumed
    halt.resume("binance", "BTC/USDT")
    assert len(halt.apply(batch.take(np.arange(10)))[0]) == 10


def test_bad_outlier_config_is_refused() -> None:
    with pytest.raises(ConfigError, match="action"):
        OutlierConfig(action="ignore")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="window"):
        OutlierConfig(window=10, min_count=50)


def test_duplicates_suppressed_within_and_across_batches(shared_data: Path) -> None:
    batch, _ = _batch(shared_data)
    d = Deduplicator()
    first = d.apply(batch.take(np.arange(0, 1200)))
    # a reconnect replays 200 trades already seen, and one arrives twice in the batch
    idx = np.concatenate([np.arange(1000, 2001), [1500]])
    second = d.apply(batch.take(idx))
    assert len(first) + len(second) == 2001
    assert d.duplicates[("binance", "BTC/USDT")] == 201
    ids = np.concatenate([first.trade_id, second.trade_id]).tolist()
    assert ids == batch.trade_id.tolist()


def test_trade_id_gaps_give_the_missing_ranges(shared_data: Path) -> None:
    batch, _ = _batch(shared_data)
    keep = np.ones(len(batch), bool)
    keep[100:105] = False
    keep[1600] = False
    gaps = TradeIdGaps()
    ranges = gaps.check(batch.take(keep[:1000].nonzero()[0]))
    ranges += gaps.check(batch.take(np.arange(1000, 2001)[keep[1000:]]))
    first = int(batch.trade_id[0])
    assert ranges == [(first + 100, first + 104), (first + 1600, first + 1600)]
    assert gaps.missing[("binance", "BTC/USDT")] == 6


def test_live_cvd_matches_the_per_bar_trade_delta(shared_data: Path) -> None:
    batch, df = _batch(shared_data)
    cvd = LiveCVD()
    path = np.concatenate([cvd.update(batch.take(np.arange(i, min(i + 300, 2001))))
                           for i in range(0, 2001, 300)])  # fmt: skip
    signed = np.where(df["side"] == "buy", 1.0, -1.0) * df["amount"].to_numpy()
    np.testing.assert_allclose(path, np.cumsum(signed), rtol=1e-12)
    # the batch order-flow code's per-second bars sum to the same total
    step = 1_000_000_000
    bar_ts = np.arange(batch.ts[0] // step * step, batch.ts[-1] + step, step)
    delta, covered = trade_volume_delta(
        bar_ts, step, batch.ts, batch.amount, df["side"].to_numpy(dtype=object),
        [(int(bar_ts[0]), int(bar_ts[-1] + step))],
    )  # fmt: skip
    assert covered.all()
    assert cvd.value("binance", "BTC/USDT") == pytest.approx(delta.sum(), rel=1e-12)


def test_trade_batch_round_trip() -> None:
    t = [
        MarketTrade("v", "S", i, i + 1, 1.0 + i, 2.0, 1 if i % 2 else -1, str(i)) for i in range(5)
    ]
    b = TradeBatch.from_trades(t)
    assert b.to_trades() == t
    assert TradeBatch.concat([b, b.take(np.array([0]))]).to_trades() == [*t, t[0]]
    with pytest.raises(ValueError, match="one venue"):
        TradeBatch.from_trades([t[0], MarketTrade("w", "S", 0, 0, 1.0, 1.0, 1, "9")])
