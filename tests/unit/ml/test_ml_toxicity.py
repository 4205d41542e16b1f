"""VPIN from trades with aggressor side and from bars by bulk volume classification."""

from __future__ import annotations

import numpy as np
import pytest

from tradeloop.core.errors import ConfigError, DataError
from tradeloop.ml.toxicity import (
    bvc_buy_fraction,
    vpin_from_bars,
    vpin_from_trades,
    windowed_imbalance,
)


def test_vpin_all_buys_is_one():
    res = vpin_from_trades(np.ones(100), np.ones(100, bool), bucket_volume=10, n_buckets=3)
    assert len(res.bucket_buy) == 10
    assert np.isnan(res.vpin[:29]).all()
    assert res.vpin[-1] == pytest.approx(1.0)


def test_vpin_alternating_sides_is_zero():
    side = np.arange(100) % 2 == 0
    res = vpin_from_trades(np.ones(100), side, bucket_volume=10, n_buckets=3)
    assert res.vpin[-1] == pytest.approx(0.0)


def test_vpin_splits_a_large_trade_across_buckets():
    # one buy of 25 then sells of 5: buckets [10 buy], [10 buy], [5 buy + 5 sell]
    res = vpin_from_trades(np.array([25.0, 5.0]), np.array([True, False]), 10, 3)
    np.testing.assert_allclose(res.bucket_buy, [10, 10, 5])
    np.testing.assert_allclose(res.bucket_sell, [0, 0, 5])
    assert res.bucket_end.tolist() == [0, 0, 1]
    assert res.vpin[1] == pytest.approx((10 + 10 + 0) / 30)


def test_bvc_up_move_is_mostly_buys(make_bars):
    bars = make_bars(300)
    frac = bvc_buy_fraction(bars.close, 50)
    dp = np.diff(bars.close)
    assert np.all(frac[1:][dp > 0][60:] > 0.5)
    assert np.all((frac >= 0) & (frac <= 1))


def test_vpin_from_bars_and_window_are_in_unit_interval(make_bars):
    bars = make_bars(1000)
    res = vpin_from_bars(bars.close, bars.volume, n_buckets=20)
    v = res.vpin[np.isfinite(res.vpin)]
    assert v.size > 500
    assert np.all((v >= 0) & (v <= 1))
    w = windowed_imbalance(bars.close, bars.volume, 50)
    w = w[np.isfinite(w)]
    assert np.all((w >= 0) & (w <= 1))


def test_vpin_bad_input_raises():
    with pytest.raises(ConfigError):
        vpin_from_trades(np.ones(3), np.ones(3, bool), 0)
    with pytest.raises(DataError):
        vpin_from_trades(np.array([1.0, -1.0]), np.ones(2, bool), 1)
