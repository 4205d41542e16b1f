"""Liquidation-zone model on constructed cases and on real futures data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tradeloop.bus import InProcessBus
from tradeloop.data.loader import load_ohlcv
from tradeloop.signals import (
    HeatmapConfig,
    LiquidationHeatmap,
    LiquidationSignal,
    SignalPublisher,
    liquidation_price,
)

HOUR = 3_600_000_000_000


def _one_tier(lev: float = 10.0, mmr: float = 0.005, half_life: float = 0.0) -> HeatmapConfig:
    return HeatmapConfig(leverage_tiers=(lev,), maintenance_margin=mmr, half_life_bars=half_life)


def test_liquidation_price_known_values() -> None:
    assert liquidation_price(100.0, 10, "long", 0.005) == pytest.approx(90.5, abs=1e-12)
    assert liquidation_price(100.0, 10, "short", 0.005) == pytest.approx(109.5, abs=1e-12)
    assert liquidation_price(50_000.0, 100, "long", 0.004) == pytest.approx(49_700.0)


def test_heatmap_oi_added_at_price_one_tier_gives_exact_liquidation_price() -> None:
    # Arrange: OI rises by 1,000 on a bar closing at 100, all taker buying
    hm = LiquidationHeatmap("BTC/USDT", _one_tier())
    hm.update(0, 100, 100, 100, 100, 5.0, open_interest=10_000.0)
    # Act
    hm.update(HOUR, 100, 100.5, 99.5, 100, 5.0, open_interest=11_000.0, volume_delta=5.0)
    top = hm.top_signals(5)
    # Assert
    assert hm.flow_source == "open_interest"
    assert hm.split == "volume_delta"
    assert len(top) == 1  # all new interest was long
    sig = top[0]
    assert sig.side == "long"
    assert sig.price_level == pytest.approx(90.5, abs=1e-9)
    assert sig.strength == pytest.approx(1_000.0)
    assert sig.distance_pct == pytest.approx(-0.095)
    assert sig.confidence == pytest.approx(1.0)
    assert sig.component == "lev_10x"


def test_heatmap_volume_fallback_splits_by_range_and_decays() -> None:
    hm = LiquidationHeatmap("X", _one_tier(half_life=1.0))
    hm.update(0, 100, 101, 99, 100, 10.0)  # close mid-range: half long, half short
    assert hm.flow_source == "volume"
    assert hm.split == "range"
    by_side = {s.side: s for s in hm.top_signals(5)}
    assert by_side["long"].strength == pytest.approx(5.0)
    assert by_side["short"].price_level == pytest.approx(109.5)
    hm.update(1, 100, 100.1, 99.9, 100, 0.0)  # no new interest, one half-life passes
    assert {s.side: s.strength for s in hm.top_signals(5)}["long"] == pytest.approx(2.5)


def test_heatmap_level_removed_when_price_trades_through() -> None:
    hm = LiquidationHeatmap("X", _one_tier())
    hm.update(0, 100, 101, 99, 100, 10.0)
    hm.update(1, 100, 100, 90.0, 95, 0.0)  # low 90 < long level 90.5
    sides = [s.side for s in hm.top_signals(5)]
    assert sides == ["short"]


def test_heatmap_weights_reorder_zones() -> None:
    cfg = HeatmapConfig(leverage_tiers=(10.0, 50.0), maintenance_margin=0.005, half_life_bars=0)
    hm = LiquidationHeatmap("X", cfg)
    hm.update(0, 100, 100, 100, 100, 10.0)
    heavy = hm.top_signals(1, {"lev_10x": 3.0, "lev_50x": 0.5})[0]
    assert heavy.component == "lev_10x"
    assert hm.top_signals(1, {"lev_10x": 0.5, "lev_50x": 3.0})[0].component == "lev_50x"


def test_heatmap_real_futures_data_top_n_is_sane(shared_data: Path) -> None:
    path = shared_data / "crypto_futures" / "binance_usdm_2025" / "BTC_USDT_USDT-5m-futures.feather"
    loaded = load_ohlcv(path, symbol="BTC/USDT")
    bars = loaded.bars.slice(0, 2_000)
    bus = InProcessBus()
    got: list[LiquidationSignal] = []
    pub = SignalPublisher(bus, LiquidationHeatmap("BTC/USDT"), top_n=5)
    bus.subscribe(pub.topic, got.append)  # type: ignore[arg-type]
    published = pub.replay(bars, publish_every=100)
    assert published == len(got) == 5 * 20
    assert pub.heatmap.flow_source == "volume"  # this file has no open interest column
    last = pub.last
    price = float(bars.close[-1])
    assert [s.strength for s in last] == sorted((s.strength for s in last), reverse=True)
    for s in last:
        assert (s.price_level < price) == (s.side == "long")
        assert 0 < s.confidence <= 1
        assert abs(s.distance_pct) < 0.25
    # levels below the running low were all removed
    longs = pub.heatmap.price[pub.heatmap.is_long]
    assert np.all(longs < float(bars.low[-1]))


def test_price_time_heatmap_rows_equal_the_model_histogram_after_each_bar(
    shared_data: Path,
) -> None:
    # Arrange: 300 real 5m perpetual bars, one leverage tier for exact prices
    from tradeloop.data.loader import load_ohlcv
    from tradeloop.signals.heatmap import LiquidationHeatmap, price_time_heatmap

    path = shared_data / "crypto_futures" / "binance_usdm_2025" / "BTC_USDT_USDT-5m-futures.feather"
    bars = load_ohlcv(path).bars.slice(0, 300)
    cfg = HeatmapConfig(leverage_tiers=(10.0, 25.0), maintenance_margin=0.005)
    # Act
    ts, edges, grid = price_time_heatmap(bars, cfg, bins=80, every=10)
    # Assert: one row per 10 bars, and the last row equals a hand replay's histogram
    assert grid.shape == (30, 80)
    assert ts[-1] == bars.ts[-1]
    model = LiquidationHeatmap(bars.symbol, cfg)
    for i in range(len(bars)):
        model.update(
            int(bars.ts[i]),
            float(bars.open[i]),
            float(bars.high[i]),
            float(bars.low[i]),
            float(bars.close[i]),
            float(bars.volume[i]),
        )
    assert np.allclose(grid[-1], model.histogram(edges))
    # zones lie below (longs at risk) and above (shorts at risk) the traded range
    assert grid[-1].sum() > 0
    assert edges[0] < float(bars.low.min()) < float(bars.high.max()) < edges[-1]
