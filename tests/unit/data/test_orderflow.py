"""Order flow: as-of joins through funding jitter, CVD from trades or from bars."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.feather as pf
import pytest

from tradeloop.data.cache import TS_TYPE
from tradeloop.data.orderflow import (
    CVD_BAR_SIGN,
    CVD_TRADES,
    asof_align,
    cvd_from_bars,
    derive_orderflow,
    trade_volume_delta,
)

H = 3_600_000_000_000
M = 60_000_000_000


def _ns(table: pa.Table, column: str) -> np.ndarray:
    col = table.column(column)
    if pa.types.is_timestamp(col.type):
        return np.asarray(col.cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64()).to_numpy())
    return np.asarray(col.to_numpy(), dtype=np.int64) * 1_000_000  # epoch ms


def test_asof_join_keeps_every_jittered_funding_event(shared_data: Path) -> None:
    # Arrange: real funding stamps, 47 of 89 a few ms after the 8h grid
    funding = pf.read_table(
        shared_data / "crypto_futures/binance_usdm_2025/BTC_USDT_USDT-8h-funding_rate.feather"
    )
    event_ts = _ns(funding, "date")
    rates = funding.column("open").to_numpy()
    grid = (event_ts // (8 * H)) * (8 * H)
    bars = np.arange(grid[0], grid[-1] + 8 * H, 5 * M)
    # Act
    aligned = asof_align(bars, event_ts, rates)
    exact = asof_align(bars, event_ts, rates, tolerance_ns=0)
    # Assert: with the tolerance each funding bar gets its own event; without it 47 are late
    at_funding = np.searchsorted(bars, grid)
    assert np.array_equal(aligned[at_funding], rates)
    assert int(np.count_nonzero(exact[at_funding] != rates)) == 47
    # between events the last rate is carried, and nothing is NaN inside the history
    assert np.isfinite(aligned).all()


def test_asof_join_leaves_bars_empty_before_history_and_past_max_age() -> None:
    bars = np.arange(0, 10) * H
    out = asof_align(bars, np.array([2 * H, 3 * H]), np.array([1.0, 2.0]), max_age_ns=2 * H)
    assert np.isnan(out[:2]).all()
    assert out[2:6].tolist() == [1.0, 2.0, 2.0, 2.0]
    assert np.isnan(out[6:]).all()


def test_cvd_from_bars_uses_the_sign_of_the_body() -> None:
    delta, cvd = cvd_from_bars(
        np.array([10.0, 11.0, 11.0]), np.array([11.0, 10.0, 11.0]), np.array([2.0, 5.0, 7.0])
    )
    assert delta.tolist() == [2.0, -5.0, 0.0]
    assert cvd.tolist() == [2.0, -3.0, -3.0]


def test_cvd_from_real_aggressor_trades_ends_at_the_documented_total(shared_data: Path) -> None:
    # Arrange: 12,477 XRP/ETH aggTrades and the 1m candles built from them
    trades = pf.read_table(shared_data / "trades/binance_xrpeth_2019/XRP_ETH-trades.feather")
    candles = pf.read_table(shared_data / "trades/binance_xrpeth_2019/XRP_ETH-1m.feather")
    bar_ts = _ns(candles, "date")
    trade_ts = _ns(trades, "timestamp")
    side = np.asarray(trades.column("side").to_pylist(), dtype=object)
    # Act
    delta, covered = trade_volume_delta(
        bar_ts,
        M,
        trade_ts,
        trades.column("amount").to_numpy(),
        side,
        [(int(bar_ts[0]), int(bar_ts[-1]) + M)],
    )
    # Assert: buy 3,206,668 - sell 2,339,067 = +867,601 XRP (shared data README)
    assert covered.all()
    assert float(delta.sum()) == pytest.approx(867_601.0, abs=0.5)
    # every trade falls in its candle: per-bar traded amounts add up to the candle volumes
    per_bar = np.zeros(bar_ts.shape[0])
    np.add.at(
        per_bar,
        np.searchsorted(bar_ts, trade_ts, side="right") - 1,
        trades.column("amount").to_numpy(),
    )
    assert np.allclose(per_bar, candles.column("volume").to_numpy())
    assert np.all(np.abs(delta) <= per_bar + 1e-9)


def test_bars_outside_trade_coverage_fall_back_to_the_bar_approximation() -> None:
    # Arrange: 4 one-minute bars; trades cover only the first two minutes
    ts = np.arange(4) * M
    candles = pa.table(
        {
            "timestamp": pa.array(ts).cast(TS_TYPE),
            "open": [1.0, 2.0, 3.0, 4.0],
            "high": [2.0, 3.0, 4.0, 5.0],
            "low": [0.5, 1.5, 2.5, 1.0],
            "close": [2.0, 3.0, 4.0, 2.0],
            "volume": [10.0, 10.0, 10.0, 10.0],
        }
    )
    trades = pa.table(
        {
            "timestamp": pa.array(np.array([1, M + 1, M + 2])).cast(TS_TYPE),
            "trade_id": ["1", "2", "3"],
            "price": [1.0, 2.0, 2.0],
            "amount": [4.0, 3.0, 1.0],
            "side": ["sell", "buy", "sell"],
        }
    )
    # Act
    out = derive_orderflow(candles, M, trades=trades, trades_coverage=[(0, 2 * M)])
    # Assert
    assert out.column("volume_delta").to_pylist() == [-4.0, 2.0, 10.0, -10.0]
    assert out.column("cvd").to_pylist() == [-4.0, -2.0, 8.0, -2.0]
    assert out.column("cvd_method").to_pylist() == [
        CVD_TRADES,
        CVD_TRADES,
        CVD_BAR_SIGN,
        CVD_BAR_SIGN,
    ]
    assert out.schema.metadata[b"tradeloop.cvd_method"] == b"mixed"


def test_trades_without_a_side_do_not_count_as_aggressor_data() -> None:
    delta, covered = trade_volume_delta(
        np.array([0, M]),
        M,
        np.array([5, M + 5]),
        np.array([1.0, 2.0]),
        np.array(["buy", None], dtype=object),
        [(0, 2 * M)],
    )
    assert covered.tolist() == [True, False]
    assert delta.tolist() == [1.0, 0.0]
