"""Sizing rules and the portfolio optimizer, with hand-computed or closed-form numbers."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from tradeloop.core.errors import ConfigError
from tradeloop.core.instrument import Instrument
from tradeloop.core.orders import Order
from tradeloop.core.portfolio import Portfolio
from tradeloop.core.position import ExitReason, Trade
from tradeloop.core.signal import Signal
from tradeloop.risk.config import RiskConfig, SizingConfig, StopsConfig
from tradeloop.risk.engine import RiskEngine
from tradeloop.risk.market import RollingMarket
from tradeloop.risk.optimizer import PortfolioOptimizer, max_sharpe_weights, min_variance_weights
from tradeloop.risk.sizing import (
    apply_confidence,
    atr_volatility,
    fixed_fraction_notional,
    kelly_fraction,
    kelly_from_trades,
    periods_per_year,
    realized_volatility,
    risk_per_trade_quantity,
    vol_target_notional,
)

HOUR = 3_600_000_000_000
DAY = 24 * HOUR
T0 = 1_704_067_200_000_000_000


def trade(pnl: float, notional: float = 1_000.0) -> Trade:
    return Trade("t", "X", 1, 10.0, 0, notional / 10.0, 1, 0.0, 0.0, 0.0, pnl, ExitReason.SIGNAL)


# --------------------------------------------------------------------------- rules


def test_fixed_fraction_and_risk_per_trade_by_hand() -> None:
    # Arrange / Act / Assert
    assert fixed_fraction_notional(10_000.0, 0.1) == 1_000.0
    # 1% of 10,000 = 100 at 2 per unit -> 50 units
    assert risk_per_trade_quantity(10_000.0, 0.01, 100.0, 98.0) == 50.0
    # short with the stop above; 10 bps slippage on 102: 2 + 0.102 per unit
    assert risk_per_trade_quantity(10_000.0, 0.01, 100.0, 102.0, 0.001) == pytest.approx(
        100.0 / 2.102
    )
    with pytest.raises(ConfigError):
        risk_per_trade_quantity(10_000.0, 0.01, 100.0, 100.0)


def test_vol_target_from_realized_and_atr_volatility() -> None:
    # Arrange: daily returns +-1% alternating -> sd (ddof=1) of n values
    r = np.array([0.01, -0.01] * 10)
    sd = float(np.std(r, ddof=1))
    periods = periods_per_year(DAY)
    # ATR: constant true range 2 on a close of 100 -> 2% per bar
    high = np.full(30, 101.0)
    low = np.full(30, 99.0)
    close = np.full(30, 100.0)
    # Act
    realized = realized_volatility(r, periods)
    atr = atr_volatility(high, low, close, 14, periods)
    # Assert
    assert periods == 365.0
    assert realized == pytest.approx(sd * math.sqrt(365.0))
    assert atr == pytest.approx(0.02 * math.sqrt(365.0))
    assert vol_target_notional(10_000.0, 0.2, 0.8) == 2_500.0
    assert vol_target_notional(10_000.0, 0.2, math.nan) == 0.0


def test_kelly_fraction_and_from_trades() -> None:
    # Arrange: 12 wins of +2%, 8 losses of -1% -> p = 0.6, b = 2 -> 0.6 - 0.4 / 2 = 0.4
    trades = [trade(20.0)] * 12 + [trade(-10.0)] * 8
    # Act / Assert
    assert kelly_fraction(0.6, 2.0) == pytest.approx(0.4)
    assert kelly_fraction(0.3, 1.0) == 0.0  # no edge: no bet
    assert kelly_from_trades(trades, 20) == pytest.approx(0.4)
    assert kelly_from_trades(trades[:19], 20) is None


def test_confidence_multiplier() -> None:
    # Arrange / Act / Assert
    assert apply_confidence(1_000.0, 0.25) == 250.0
    assert apply_confidence(1_000.0, None) == 1_000.0
    with pytest.raises(ConfigError):
        apply_confidence(1_000.0, 1.5)


# --------------------------------------------------------------------------- via the engine


def sized(
    sizing: SizingConfig,
    signal: Signal,
    market: RollingMarket,
    portfolio: Portfolio | None = None,
    stops: StopsConfig | None = None,
) -> float:
    base = RiskConfig.permissive()
    cfg = replace(base, sizing=sizing, stops=stops or StopsConfig(None, None, None, 0.0))
    engine = RiskEngine(cfg, {"X": Instrument("X"), "Y": Instrument("Y")})
    decision = engine.check(signal, portfolio or Portfolio(10_000.0), market)
    assert isinstance(decision, Order), decision
    return decision.quantity


def flat_market(price: float = 100.0) -> RollingMarket:
    m = RollingMarket(["X"], 300, DAY)
    m.push(T0, {"X": price})
    return m


def test_engine_risk_per_trade_sizing_uses_the_stop() -> None:
    # Arrange / Act
    q = sized(
        SizingConfig("risk_per_trade", risk_per_trade=0.01),
        Signal.open_long("X", stop_loss=98.0),
        flat_market(),
    )
    # Assert: 100 / 2
    assert q == pytest.approx(50.0)


def test_engine_risk_per_trade_sizing_with_default_stop() -> None:
    # Arrange: no stop on the signal; the profile's 5% stop -> 95
    q = sized(
        SizingConfig("risk_per_trade", risk_per_trade=0.01),
        Signal.open_long("X"),
        flat_market(),
        stops=StopsConfig(stop_loss_pct=0.05, trailing_pct=None, expected_slippage_bps=0.0),
    )
    # Assert: 100 / 5
    assert q == pytest.approx(20.0)


def test_engine_vol_target_sizing_from_realized_volatility() -> None:
    # Arrange: 20 daily returns alternating +-1%
    m = RollingMarket(["X"], 300, DAY)
    price = 100.0
    m.push(T0, {"X": price})
    for k in range(20):
        price *= 1.01 if k % 2 == 0 else 0.99
        m.push(T0 + (k + 1) * DAY, {"X": price})
    r = m.returns(["X"], 20)[:, 0]
    vol = float(np.std(r, ddof=1)) * math.sqrt(365.0)
    # Act
    q = sized(SizingConfig("vol_target", vol_target=0.1, vol_window=20), Signal.open_long("X"), m)
    # Assert
    assert q == pytest.approx(10_000.0 * 0.1 / vol / price)


def test_engine_kelly_sizing_from_closed_trades() -> None:
    # Arrange: Kelly 0.4 (see above), half Kelly -> 20% of 10,000 = 2,000 -> 20 units
    portfolio = Portfolio(10_000.0)
    portfolio.trades.extend([trade(20.0)] * 12 + [trade(-10.0)] * 8)
    # Act
    q = sized(
        SizingConfig("kelly", kelly_fraction=0.5), Signal.open_long("X"), flat_market(), portfolio
    )
    # Assert
    assert q == pytest.approx(20.0)


def test_engine_kelly_sizing_falls_back_to_fraction_without_history() -> None:
    # Arrange / Act
    q = sized(SizingConfig("kelly", fraction=0.05), Signal.open_long("X"), flat_market())
    # Assert
    assert q == pytest.approx(5.0)


def test_engine_signal_sizing_in_quantity_mode() -> None:
    # Arrange / Act
    q = sized(SizingConfig("signal"), Signal.open_long("X", 3.0, quantity=True), flat_market())
    # Assert
    assert q == 3.0


# --------------------------------------------------------------------------- optimizer


def test_min_variance_two_uncorrelated_assets_closed_form() -> None:
    # Arrange: w proportional to 1/variance: 1/0.04 : 1/0.01 = 1 : 4
    cov = np.diag([0.04, 0.01])
    # Act
    result = min_variance_weights(cov)
    # Assert
    assert result.success
    assert result.weights == pytest.approx([0.2, 0.8], abs=1e-7)


def test_max_sharpe_matches_tangency_portfolio() -> None:
    # Arrange: w proportional to inverse(cov) @ mu = [2.5, 5] -> [1/3, 2/3]
    mu = np.array([0.1, 0.05])
    cov = np.diag([0.04, 0.01])
    # Act
    result = max_sharpe_weights(mu, cov)
    # Assert
    assert result.weights == pytest.approx([1 / 3, 2 / 3], abs=1e-5)
    assert result.sharpe == pytest.approx(math.sqrt(0.1**2 / 0.04 + 0.05**2 / 0.01), rel=1e-6)


def test_optimizer_respects_bounds_and_gross_cap_with_shorts() -> None:
    # Arrange: 30 assets, weights in [-0.1, 0.1], gross at most 1.5, net 1
    rng = np.random.default_rng(3)
    returns = rng.normal(0.0005, 0.02, size=(250, 30))
    optimizer = PortfolioOptimizer("max_sharpe", lower=-0.1, upper=0.1, gross=1.5, net=1.0)
    # Act
    result = optimizer.solve(returns)
    again = optimizer.solve(returns)
    # Assert
    w = result.weights
    assert result.success
    assert w.sum() == pytest.approx(1.0, abs=1e-8)
    assert w.min() >= -0.1 - 1e-9
    assert w.max() <= 0.1 + 1e-9
    assert np.abs(w).sum() <= 1.5 + 1e-8
    assert again is result  # cached


def test_min_variance_with_shorts_matches_the_unconstrained_closed_form() -> None:
    # Arrange: strongly correlated pair; w = inv(C) 1 / (1' inv(C) 1) shorts the riskier one
    cov = np.array([[0.04, 0.018], [0.018, 0.01]])
    inv = np.linalg.inv(cov) @ np.ones(2)
    expected = inv / inv.sum()
    assert expected[0] < 0
    # Act
    result = min_variance_weights(cov, lower=-1.0, upper=2.0, gross=3.0)
    # Assert
    assert result.success
    assert result.weights == pytest.approx(expected, abs=1e-6)


def test_gross_cap_equal_to_net_forbids_shorts() -> None:
    # Arrange: same pair; a gross cap of 1 with net 1 leaves no room for a short
    cov = np.array([[0.04, 0.018], [0.018, 0.01]])
    # Act
    capped = min_variance_weights(cov, lower=-1.0, upper=2.0, gross=1.0)
    long_only = min_variance_weights(cov)
    # Assert: the long-only corner (all in the calmer asset) in both
    assert capped.weights == pytest.approx([0.0, 1.0], abs=1e-7)
    assert capped.weights == pytest.approx(long_only.weights, abs=1e-9)


def test_optimizer_infeasible_bounds_raise() -> None:
    # Arrange / Act / Assert
    with pytest.raises(ConfigError, match="cannot sum"):
        min_variance_weights(np.eye(3), upper=0.2)


def test_engine_optimizer_sizing_uses_the_symbols_optimal_weight() -> None:
    # Arrange: Y is open; X and Y have 120 bars of returns
    rng = np.random.default_rng(11)
    m = RollingMarket(["X", "Y"], 300, DAY)
    px, py = 100.0, 50.0
    m.push(T0, {"X": px, "Y": py})
    for k in range(120):
        px *= 1 + rng.normal(0, 0.01)
        py *= 1 + rng.normal(0, 0.02)
        m.push(T0 + (k + 1) * DAY, {"X": px, "Y": py})
    portfolio = Portfolio(10_000.0)
    from tradeloop.core.position import Position

    portfolio.positions["Y"] = Position("Y-1", "Y", 1, 1.0, py, T0, 0.0)
    portfolio.marks["Y"] = py
    hist = m.returns(["X", "Y"], 250)
    hist = hist[np.isfinite(hist).all(axis=1)]
    expected = min_variance_weights(np.cov(hist, rowvar=False)).weights[0]
    # Act
    q = sized(SizingConfig("optimizer"), Signal.open_long("X"), m, portfolio)
    # Assert: about 0.8 of equity in the calmer asset
    assert q == pytest.approx(expected * portfolio.equity / px, rel=1e-6)
    assert 0.7 < expected < 0.9


# --------------------------------------------------------------------------- confidence


def default_engine() -> RiskEngine:
    """The full default profile (10% position cap, 2% risk per trade, stops, VaR...)."""
    return RiskEngine(RiskConfig.default(), {"X": Instrument("X")})


def test_default_profile_higher_confidence_larger_position_never_above_the_cap() -> None:
    # Arrange: equity 10,000, price 100; the signal asks for all the equity, the 10% cap cuts
    # it to 1,000 (10 units), then the confidence scales what the cap left:
    # 0.3 -> 300 (3 units), 0.6 -> 600 (6), 0.9 -> 900 (9), 1.0 and None -> the cap (10)
    confidences = [0.3, 0.6, 0.9, 1.0, None]
    # Act
    quantities = []
    for c in confidences:
        decision = default_engine().check(
            Signal.open_long("X", confidence=c), Portfolio(10_000.0), flat_market()
        )
        assert isinstance(decision, Order), decision
        quantities.append(decision.quantity)
    # Assert
    assert quantities == pytest.approx([3.0, 6.0, 9.0, 10.0, 10.0], rel=1e-12)
    assert quantities[0] < quantities[1] < quantities[2] < quantities[3]
    assert max(quantities) * 100.0 <= 0.10 * 10_000.0 + 1e-9


def test_confidence_scales_after_the_risk_per_trade_cap() -> None:
    # Arrange: a stop at 80 -> loss per unit 20 + 5 bps slippage on 80 = 20.04; 2% of 10,000
    # at risk -> 200 / 20.04 = 9.98 units, below the 10-unit position cap, so it binds;
    # confidence 0.5 halves what it left
    engine = default_engine()
    # Act
    full = engine.check(Signal.open_long("X", stop_loss=80.0), Portfolio(10_000.0), flat_market())
    half = default_engine().check(
        Signal.open_long("X", stop_loss=80.0, confidence=0.5), Portfolio(10_000.0), flat_market()
    )
    # Assert
    assert isinstance(full, Order)
    assert isinstance(half, Order)
    assert full.quantity == pytest.approx(200.0 / 20.04, rel=1e-12)
    assert half.quantity == pytest.approx(0.5 * 200.0 / 20.04, rel=1e-12)
    assert engine.adjustments["max_risk_per_trade"] == 1


def test_confidence_zero_is_refused_and_counted_as_an_adjustment_otherwise() -> None:
    # Arrange
    engine = default_engine()
    # Act
    zero = engine.check(Signal.open_long("X", confidence=0.0), Portfolio(10_000.0), flat_market())
    kept = engine.check(Signal.open_long("X", confidence=0.5), Portfolio(10_000.0), flat_market())
    # Assert
    assert not isinstance(zero, Order)
    assert zero.reason == "zero_size"
    assert isinstance(kept, Order)
    assert kept.quantity == pytest.approx(5.0, rel=1e-12)
    assert engine.adjustments["confidence"] == 1


def test_permissive_profile_ignores_confidence() -> None:
    # Arrange: the plain backtest profile is a pass-through (oracle runs stay bit-identical)
    engine = RiskEngine(RiskConfig.permissive(), {"X": Instrument("X")})
    # Act
    book = Portfolio(10_000.0)
    low = engine.check(Signal.open_long("X", 0.5, confidence=0.2), book, flat_market())
    none = engine.check(Signal.open_long("X", 0.5), book, flat_market())
    # Assert: the same order but for its id
    assert isinstance(low, Order)
    assert isinstance(none, Order)
    assert replace(low, id=none.id) == none
    assert engine.adjustments["confidence"] == 0
