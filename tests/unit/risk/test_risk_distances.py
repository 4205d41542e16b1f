"""The risk gate places a signal's stop and target distances around the symbol's close, in
the pass-through gate and the full one (where the stop then sizes the position)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tradeloop.core.instrument import Instrument
from tradeloop.core.orders import Order
from tradeloop.core.portfolio import Portfolio
from tradeloop.core.rejection import Rejection
from tradeloop.core.signal import Signal
from tradeloop.risk.config import LimitsConfig, RiskConfig
from tradeloop.risk.engine import RiskEngine
from tradeloop.risk.market import RollingMarket

HOUR = 3_600_000_000_000
T0 = 1_704_067_200_000_000_000


def _market(price: float | None) -> RollingMarket:
    market = RollingMarket(["X"], 10, HOUR)
    if price is not None:
        market.push(T0, {"X": price})
    return market


def test_the_pass_through_gate_places_distances_at_the_close_it_is_given() -> None:
    # Arrange
    engine = RiskEngine(RiskConfig.permissive(), {"X": Instrument("X")})
    assert engine.passthrough
    signal = Signal.open_long("X", 0.5, stop_loss_pct=0.01, take_profit_pct=0.03)
    # Act: the kernel hands its close; without one, the market's latest close
    given = engine.check(signal, Portfolio(10_000.0), _market(100.0), "p", T0, 250.0)
    looked_up = engine.check(signal, Portfolio(10_000.0), _market(100.0), "p", T0)
    # Assert
    assert isinstance(given, Order)
    assert given.exits is not None
    assert (given.exits.stop_loss, given.exits.take_profit) == (250.0 * 0.99, 250.0 * 1.03)
    assert isinstance(looked_up, Order)
    assert looked_up.exits is not None
    assert (looked_up.exits.stop_loss, looked_up.exits.take_profit) == (99.0, 100.0 * 1.03)
    assert given.position_id == "p"
    assert engine.accepted == 2


def test_the_pass_through_gate_refuses_a_distance_without_a_close() -> None:
    # Arrange
    engine = RiskEngine(RiskConfig.permissive(), {"X": Instrument("X")})
    signal = Signal.open_short("X", stop_loss_pct=0.01)
    # Act
    decision = engine.check(signal, Portfolio(10_000.0), _market(None), None, T0)
    # Assert: a recorded rejection, not an exception, and no order
    assert isinstance(decision, Rejection)
    assert (decision.reason, decision.source) == ("no_price", "risk")
    assert engine.rejections == [decision]
    assert engine.accepted == 0
    # a close needs no price
    closing = engine.check(Signal.close("X"), Portfolio(10_000.0), _market(None), None, T0)
    assert isinstance(closing, Order)
    assert closing.reduce_only


def test_the_full_gate_sizes_by_a_distance_stop_as_by_the_same_price() -> None:
    # Arrange: 2% of equity at risk per trade; the stop 5% below a close of 100
    cfg = replace(
        RiskConfig.default(),
        limits=LimitsConfig(max_risk_per_trade=0.02, max_var_pct=None, max_position_pct=None),
    )
    by_distance = RiskEngine(cfg, {"X": Instrument("X")})
    by_price = RiskEngine(cfg, {"X": Instrument("X")})
    assert not by_distance.passthrough
    # Act
    a = by_distance.check(
        Signal.open_long("X", stop_loss_pct=0.05, take_profit_pct=0.1),
        Portfolio(10_000.0),
        _market(100.0),
    )
    b = by_price.check(
        Signal.open_long("X", stop_loss=100.0 * (1 - 0.05), take_profit=100.0 * (1 + 0.1)),
        Portfolio(10_000.0),
        _market(100.0),
    )
    # Assert: the same order, the quantity cut to 2% of equity over the stop's distance
    assert isinstance(a, Order)
    assert isinstance(b, Order)
    assert a.exits == b.exits
    assert a.exits is not None
    assert a.exits.stop_loss == pytest.approx(95.0)
    assert a.quantity == b.quantity
    assert a.quantity == pytest.approx(0.02 * 10_000.0 / 5.0, rel=0.01)
    assert by_distance.adjustments["max_risk_per_trade"] == 1


@pytest.mark.parametrize("permissive", [True, False])
def test_a_distance_that_overflows_is_refused_as_invalid_exits(permissive: bool) -> None:
    # Arrange: a target distance whose price around the close is infinite
    cfg = (
        RiskConfig.permissive()
        if permissive
        else replace(RiskConfig.default(), limits=LimitsConfig(max_var_pct=None))
    )
    engine = RiskEngine(cfg, {"X": Instrument("X")})
    # Act
    decision = engine.check(
        Signal.open_long("X", take_profit_pct=1e308), Portfolio(10_000.0), _market(100.0)
    )
    # Assert: a recorded rejection naming the reason, no order with an infinite level
    assert isinstance(decision, Rejection)
    assert decision.reason == "invalid_exits"
    assert "not a price" in decision.detail
    assert engine.rejections == [decision]
