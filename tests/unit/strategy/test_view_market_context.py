"""The market view is the run's one snapshot: the risk engine reads prices, step-aligned
returns and ranges from it, causally, computed here by hand."""

from __future__ import annotations

import math

import numpy as np

from tradeloop.core.bar import BarArrays
from tradeloop.core.instrument import Instrument
from tradeloop.engine.market import MarketData

MIN = 60_000_000_000


def _bars(symbol: str, minutes: list[int], closes: list[float]) -> BarArrays:
    ts = np.array(minutes, dtype=np.int64) * MIN
    c = np.array(closes)
    return BarArrays(symbol, "1m", ts, c, c + 1, c - 1, c, np.ones_like(c))


def test_price_returns_and_ranges_at_the_current_step_only() -> None:
    # Arrange: B has no bar at minute 2 (the union of bar times has 4 steps)
    a = _bars("A", [0, 1, 2, 3], [100.0, 110.0, 99.0, 99.0])
    b = _bars("B", [0, 1, 3], [50.0, 55.0, 44.0])
    view = MarketData({"A": a, "B": b}, {"A": Instrument("A"), "B": Instrument("B")}, "1m").view()
    # Act / Assert: before the first step nothing is known
    assert math.isnan(view.price("A"))
    assert view.ranges("A", 3) is None
    view.step = 2
    assert view.price("A") == 99.0
    assert view.price("B") == 55.0  # the latest completed B bar
    assert math.isnan(view.price("C"))
    rets = view.returns(["A", "B"], 10)
    assert rets.shape == (3, 2)
    np.testing.assert_allclose(rets[:, 0], [np.nan, 0.1, 99 / 110 - 1])
    np.testing.assert_allclose(rets[:, 1], [np.nan, 0.1, np.nan])
    high, low, close = view.ranges("A", 2)  # type: ignore[misc]
    assert high.tolist() == [111.0, 100.0]
    assert low.tolist() == [109.0, 98.0]
    assert close.tolist() == [110.0, 99.0]
    view.step = 3
    assert view.returns(["B"], 1)[:, 0].tolist() == [44 / 55 - 1]
    assert view.ts == 3 * MIN
    assert view.bar_ns == MIN
    assert view.regime is None
