"""Triple-barrier labels checked by hand on constructed price paths."""

from __future__ import annotations

import numpy as np
import pytest

from tradeloop.core.errors import ConfigError
from tradeloop.ml.labels import (
    LABEL_PROFIT,
    LABEL_STOP,
    LABEL_VERTICAL,
    meta_labels,
    rolling_volatility,
    triple_barrier,
)


def _path(highs: list[float], lows: list[float], closes: list[float]):
    # bar 0 is the entry at close 100; barrier width 1% (pt = sl = 1) -> 101 / 99
    h = np.array([100.0, *highs])
    lo = np.array([100.0, *lows])
    c = np.array([100.0, *closes])
    return h, lo, c, np.full(c.shape[0], 0.01)


def _label(highs, lows, closes, side=1, horizon=3):
    h, lo, c, vol = _path(highs, lows, closes)
    return triple_barrier(h, lo, c, [0], [side], vol=vol, pt=1.0, sl=1.0, horizon=horizon)


def test_triple_barrier_upper_touched_first_is_profit():
    # Arrange / Act: bar 2 reaches 101.2 (>= 101)
    lb = _label([100.5, 101.2, 100.0], [99.5, 100.2, 99.0], [100.2, 101.0, 99.5])
    # Assert
    assert lb.label.tolist() == [LABEL_PROFIT]
    assert lb.t1.tolist() == [2]
    assert lb.ret[0] == pytest.approx(0.01)


def test_triple_barrier_lower_touched_first_is_stop():
    lb = _label([100.5, 100.3, 102.0], [99.5, 98.9, 100.0], [100.2, 99.1, 101.5])
    assert lb.label.tolist() == [LABEL_STOP]
    assert lb.t1.tolist() == [2]
    assert lb.ret[0] == pytest.approx(-0.01)


def test_triple_barrier_no_touch_is_vertical_with_close_return():
    lb = _label([100.5, 100.6, 100.7], [99.5, 99.6, 99.7], [100.2, 100.1, 100.4])
    assert lb.label.tolist() == [LABEL_VERTICAL]
    assert lb.t1.tolist() == [3]
    assert lb.ret[0] == pytest.approx(0.004)


def test_triple_barrier_both_in_one_bar_takes_the_stop():
    lb = _label([101.5, 100.0, 100.0], [98.5, 100.0, 100.0], [100.0, 100.0, 100.0])
    assert lb.label.tolist() == [LABEL_STOP]
    assert lb.t1.tolist() == [1]


def test_triple_barrier_short_side_profits_on_the_lower_barrier():
    lb = _label([100.5, 100.3, 102.0], [99.5, 98.9, 100.0], [100.2, 99.1, 101.5], side=-1)
    assert lb.label.tolist() == [LABEL_PROFIT]
    assert lb.ret[0] == pytest.approx(0.01)
    assert meta_labels(lb).tolist() == [1]


def test_triple_barrier_horizon_limits_the_search():
    # the profit touch is at bar 3 but the vertical barrier is at bar 2
    lb = _label([100.5, 100.6, 101.5], [99.5, 99.6, 100.0], [100.1, 99.8, 101.2], horizon=2)
    assert lb.label.tolist() == [LABEL_VERTICAL]
    assert lb.t1.tolist() == [2]
    assert meta_labels(lb).tolist() == [0]


def test_triple_barrier_every_bar_of_a_long_series_is_labelled_causally(make_bars):
    bars = make_bars(5000)
    lb = triple_barrier(bars.high, bars.low, bars.close, horizon=10)
    assert np.all(lb.t1 > lb.t0)
    assert np.all(lb.t1 - lb.t0 <= 10)
    assert set(np.unique(lb.label)) <= {-1, 0, 1}
    # warm-up bars without a volatility estimate are dropped
    assert lb.t0[0] == 50


def test_triple_barrier_bad_settings_raise_config_error():
    with pytest.raises(ConfigError):
        triple_barrier([1.0], [1.0], [1.0], horizon=0)
    with pytest.raises(ConfigError):
        triple_barrier([1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [0], [2])
    with pytest.raises(ConfigError):
        rolling_volatility(np.ones(5), 1)
