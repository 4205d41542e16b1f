"""Every pre-trade limit of the risk engine, with the expected numbers worked out by hand.

Each test switches on only the limit under test (on top of the permissive profile), so the
number it checks comes from that limit alone. Equity is 10,000 and the price 100 unless said.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from tradeloop.core.instrument import Instrument
from tradeloop.core.orders import Order, OrderSide
from tradeloop.core.portfolio import Portfolio
from tradeloop.core.position import Position
from tradeloop.core.rejection import Rejection
from tradeloop.core.signal import Signal
from tradeloop.risk.config import LimitsConfig, RiskConfig, SizingConfig, StopsConfig, VarConfig
from tradeloop.risk.engine import RiskEngine
from tradeloop.risk.limits import (
    LeverageController,
    cap_cash,
    cap_position,
    cap_risk_per_trade,
    leverage_room,
    round_to_instrument,
)
from tradeloop.risk.market import RollingMarket

HOUR = 3_600_000_000_000
T0 = 1_704_067_200_000_000_000  # 2024-01-01T00:00Z


def gate(
    stops: StopsConfig | None = None, var: VarConfig | None = None, **limits: object
) -> RiskConfig:
    """The permissive profile with only ``limits`` switched on."""
    base = RiskConfig.permissive()
    return replace(
        base,
        limits=replace(base.limits, **limits),
        sizing=SizingConfig(use_confidence=True),
        stops=stops or base.stops,
        var=var or base.var,
    )


def market(
    prices: dict[str, float], history: dict[str, list[float]] | None = None
) -> RollingMarket:
    """A market whose last closes are ``prices``, after optional close ``history``."""
    symbols = sorted(set(prices) | set(history or {}))
    m = RollingMarket(symbols, 600, HOUR)
    rows = max((len(v) for v in (history or {}).values()), default=0)
    for k in range(rows):
        m.push(T0 + k * HOUR, {s: v[k] for s, v in (history or {}).items()})
    m.push(T0 + rows * HOUR, prices)
    return m


def pos(symbol: str, direction: int, quantity: float, price: float = 100.0) -> Position:
    return Position(f"{symbol}-1", symbol, direction, quantity, price, T0, 0.0)


def book(balance: float, *positions: Position, price: float = 100.0) -> Portfolio:
    p = Portfolio(balance)
    for position in positions:
        p.positions[position.symbol] = position
        p.marks[position.symbol] = price
    return p


def instruments(*symbols: str, **kw: float) -> dict[str, Instrument]:
    return {s: Instrument(s, **kw) for s in symbols}  # type: ignore[arg-type]


def order(decision: Order | Rejection) -> Order:
    assert isinstance(decision, Order), decision
    return decision


def reason(decision: Order | Rejection) -> str:
    assert isinstance(decision, Rejection), decision
    assert decision.source == "risk"
    return decision.reason


# --------------------------------------------------------------------------- pure functions


def test_limit_functions_hand_numbers() -> None:
    # Arrange / Act / Assert: one line per rule
    assert cap_position(5_000.0, 20_000.0, 0.10) == 2_000.0
    assert cap_risk_per_trade(100.0, 100.0, 95.0, 10_000.0, 0.02) == 40.0  # 200 / 5
    assert cap_risk_per_trade(100.0, 100.0, 95.0, 10_000.0, 0.02, 0.01) == pytest.approx(
        200.0 / 5.95
    )
    assert leverage_room(25_000.0, 10_000.0, 3.0) == 5_000.0
    assert leverage_room(35_000.0, 10_000.0, 3.0) == 0.0
    assert cap_cash(5_000.0, 1_010.0, 0.01) == pytest.approx(1_000.0)
    lots = Instrument("X", lot_size=0.5, min_notional=10.0)
    assert round_to_instrument(33.3, 30.0, lots) == (33.0, None)
    assert round_to_instrument(0.3, 30.0, lots)[1] == "zero_quantity"
    assert round_to_instrument(0.5, 10.0, lots)[1] == "min_notional"  # 5 < 10


def test_leverage_controller_regime_lowers_cap() -> None:
    # Arrange
    ctl = LeverageController(3.0, LimitsConfig().regime_leverage)
    # Act / Assert
    assert ctl.max_leverage() == 3.0
    assert ctl.max_leverage("high_vol") == 1.5
    assert ctl.max_leverage("crisis") == 0.0
    assert ctl.max_leverage("unheard_of") == 3.0
    ctl.set_regime("high_vol")
    assert ctl.max_leverage() == 1.5


# --------------------------------------------------------------------------- the gate


def test_permissive_check_returns_the_order_the_broker_builds() -> None:
    # Arrange
    engine = RiskEngine(RiskConfig.permissive(), instruments("X"))
    signal = Signal.open_long("X", 0.5, stop_loss=90.0, trailing_stop=0.02)
    # Act
    o = order(engine.check(signal, book(10_000.0), market({"X": 100.0})))
    # Assert: sized at the fill from the equity fraction, stops carried as given
    assert (o.equity_fraction, o.quantity, o.side, o.reduce_only) == (
        0.5,
        0.0,
        OrderSide.BUY,
        False,
    )
    assert o.exits is not None
    assert (o.exits.stop_loss, o.exits.trailing_stop, o.exits.trailing_activation) == (
        90.0,
        0.02,
        None,
    )


def test_max_position_pct_cuts_order_to_ten_percent_of_equity() -> None:
    # Arrange: equity 10,000, all-in signal at 100
    engine = RiskEngine(gate(max_position_pct=0.10), instruments("X"))
    # Act
    o = order(engine.check(Signal.open_long("X", 1.0), book(10_000.0), market({"X": 100.0})))
    # Assert: 10% of 10,000 = 1,000 -> 10 units
    assert o.quantity == pytest.approx(10.0)
    assert o.equity_fraction is None
    assert engine.adjustments["max_position_pct"] == 1


def test_max_risk_per_trade_with_stop_cuts_quantity() -> None:
    # Arrange: risk 2% of 10,000 = 200; stop 95 -> 5 per unit
    no_slip = StopsConfig(None, None, None, expected_slippage_bps=0.0)
    engine = RiskEngine(gate(max_risk_per_trade=0.02, stops=no_slip), instruments("X"))
    signal = Signal.open_long("X", 1.0, stop_loss=95.0)
    # Act
    o = order(engine.check(signal, book(10_000.0), market({"X": 100.0})))
    # Assert: 200 / 5 = 40 units
    assert o.quantity == pytest.approx(40.0)


def test_max_risk_per_trade_includes_expected_stop_slippage() -> None:
    # Arrange: 50 bps slippage on the stop fill: 5 + 95 * 0.005 = 5.475 per unit
    engine = RiskEngine(
        gate(max_risk_per_trade=0.02, stops=StopsConfig(None, None, None, 50.0)), instruments("X")
    )
    signal = Signal.open_long("X", 1.0, stop_loss=95.0)
    # Act
    o = order(engine.check(signal, book(10_000.0), market({"X": 100.0})))
    # Assert
    assert o.quantity == pytest.approx(200.0 / 5.475)


def test_max_risk_per_trade_without_stop_does_not_apply() -> None:
    # Arrange
    engine = RiskEngine(gate(max_risk_per_trade=0.02), instruments("X"))
    # Act
    o = order(engine.check(Signal.open_long("X", 0.5), book(10_000.0), market({"X": 100.0})))
    # Assert: 50% of equity = 5,000 -> 50 units
    assert o.quantity == pytest.approx(50.0)


def test_max_open_positions_refuses_a_new_symbol_but_not_a_reversal() -> None:
    # Arrange: two positions open, max 2
    engine = RiskEngine(gate(max_open_positions=2), instruments("A", "B", "C"))
    portfolio = book(10_000.0, pos("A", 1, 1.0), pos("B", 1, 1.0))
    m = market({"A": 100.0, "B": 100.0, "C": 100.0})
    # Act
    refused = engine.check(Signal.open_long("C", 0.1), portfolio, m)
    reversal = engine.check(Signal.open_short("A", 0.1), portfolio, m)
    close = engine.check(Signal.close("B"), portfolio, m)
    # Assert
    assert reason(refused) == "max_positions"
    assert order(reversal).side is OrderSide.SELL
    assert order(close).reduce_only


def test_gross_leverage_cuts_to_remaining_room() -> None:
    # Arrange: short A 250 @ 100 (gross 25,000), cash 35,000 -> equity 10,000; max 3x = 30,000
    engine = RiskEngine(gate(max_gross_leverage=3.0), instruments("A", "X"))
    portfolio = book(35_000.0, pos("A", -1, 250.0))
    # Act
    o = order(engine.check(Signal.open_long("X", 1.0), portfolio, market({"A": 100.0, "X": 100.0})))
    # Assert: room 30,000 - 25,000 = 5,000 -> 50 units
    assert portfolio.equity == pytest.approx(10_000.0)
    assert o.quantity == pytest.approx(50.0)


def test_gross_leverage_high_vol_regime_refuses_new_exposure() -> None:
    # Arrange: same book; high_vol halves the cap to 1.5x = 15,000 < 25,000
    engine = RiskEngine(gate(max_gross_leverage=3.0), instruments("A", "X"))
    portfolio = book(35_000.0, pos("A", -1, 250.0))
    m = market({"A": 100.0, "X": 100.0})
    m.set_regime("high_vol")
    # Act
    decision = engine.check(Signal.open_long("X", 1.0), portfolio, m)
    # Assert
    assert reason(decision) == "leverage"


def test_long_is_cut_to_the_cash_with_fees() -> None:
    # Arrange: cash 1,010 and a long A worth 8,990 -> equity 10,000; fee 1%
    engine = RiskEngine(gate(max_position_pct=1.0), instruments("A", "X", taker_fee=0.01))
    portfolio = book(1_010.0, pos("A", 1, 89.9))
    # Act
    o = order(engine.check(Signal.open_long("X", 0.5), portfolio, market({"A": 100.0, "X": 100.0})))
    # Assert: 1,010 / 1.01 = 1,000 -> 10 units; no negative cash
    assert o.quantity == pytest.approx(10.0)


def test_lot_size_rounds_down_and_min_notional_refuses() -> None:
    # Arrange: price 30, 10% of 10,000 = 1,000 -> 33.33 units -> 33.0 lots of 0.5
    engine = RiskEngine(gate(max_position_pct=0.10), instruments("X", lot_size=0.5))
    tiny = RiskEngine(gate(max_position_pct=0.10), instruments("X", min_notional=2_000.0))
    # Act
    o = order(engine.check(Signal.open_long("X", 1.0), book(10_000.0), market({"X": 30.0})))
    refused = tiny.check(Signal.open_long("X", 1.0), book(10_000.0), market({"X": 30.0}))
    # Assert
    assert o.quantity == 33.0
    assert reason(refused) == "min_notional"


def test_correlation_above_limit_refuses_same_direction_but_allows_hedge() -> None:
    # Arrange: X moves exactly like A (correlation 1) over 120 bars
    rng = np.random.default_rng(7)
    a = list(100 * np.cumprod(1 + rng.normal(0, 0.01, 120)))
    engine = RiskEngine(gate(max_correlation=0.7), instruments("A", "X"))
    m = market({"A": a[-1], "X": a[-1]}, {"A": a, "X": a})
    long_a = book(10_000.0, pos("A", 1, 1.0))
    short_a = book(10_000.0, pos("A", -1, 1.0))
    # Act
    same = engine.check(Signal.open_long("X", 0.1), long_a, m)
    hedge = engine.check(Signal.open_long("X", 0.1), short_a, m)
    # Assert
    assert reason(same) == "correlation"
    assert "with open A" in same.detail  # type: ignore[union-attr]
    assert order(hedge).side is OrderSide.BUY


def test_correlation_needs_min_periods_of_history() -> None:
    # Arrange: only 10 returns, fewer than the 30 required
    a = [100.0 + k for k in range(10)]
    engine = RiskEngine(gate(max_correlation=0.7), instruments("A", "X"))
    m = market({"A": 111.0, "X": 111.0}, {"A": a, "X": a})
    # Act
    decision = engine.check(Signal.open_long("X", 0.1), book(10_000.0, pos("A", 1, 1.0)), m)
    # Assert
    assert isinstance(decision, Order)


def test_var_limit_refuses_order_whose_post_trade_var_is_too_large() -> None:
    # Arrange: 101 returns of X: two of -5%, 99 of +0.1%. 99% historical VaR of the returns is
    # -quantile(r, 0.01): position (101 - 1) * 0.01 = 1 -> the 2nd smallest, -5%.
    # A 1,000 notional (10% cap) then has VaR 50 = 0.5% of equity.
    returns = [-0.05, -0.05] + [0.001] * 99
    closes = [100.0]
    for r in returns:
        closes.append(closes[-1] * (1 + r))
    var = VarConfig(horizon="1h", min_periods=50)
    strict = RiskEngine(gate(max_position_pct=0.10, max_var_pct=0.004, var=var), instruments("X"))
    loose = RiskEngine(gate(max_position_pct=0.10, max_var_pct=0.006, var=var), instruments("X"))
    m = market({"X": closes[-1]}, {"X": closes[:-1]})
    # Act
    refused = strict.check(Signal.open_long("X", 1.0), book(10_000.0), m)
    accepted = loose.check(Signal.open_long("X", 1.0), book(10_000.0), m)
    # Assert
    assert reason(refused) == "var_limit"
    assert "0.50% of equity" in refused.detail  # type: ignore[union-attr]
    assert isinstance(accepted, Order)


def test_var_limit_scales_to_horizon_by_square_root_of_time() -> None:
    # Arrange: same series on 1h bars; a 4h horizon doubles the VaR (sqrt 4) to 1%
    returns = [-0.05, -0.05] + [0.001] * 99
    closes = [100.0]
    for r in returns:
        closes.append(closes[-1] * (1 + r))
    var = VarConfig(horizon="4h", min_periods=50)
    engine = RiskEngine(gate(max_position_pct=0.10, max_var_pct=0.009, var=var), instruments("X"))
    # Act
    decision = engine.check(
        Signal.open_long("X", 1.0), book(10_000.0), market({"X": closes[-1]}, {"X": closes[:-1]})
    )
    # Assert
    assert reason(decision) == "var_limit"
    assert "1.00% of equity" in decision.detail  # type: ignore[union-attr]


def test_same_direction_open_position_or_inflight_order_is_refused() -> None:
    # Arrange
    engine = RiskEngine(gate(max_position_pct=0.1), instruments("X", "Y"))
    m = market({"X": 100.0, "Y": 100.0})
    # Act
    open_pos = engine.check(Signal.open_long("X"), book(10_000.0, pos("X", 1, 1.0)), m)
    first = engine.check(Signal.open_long("Y"), book(10_000.0), m)
    second = engine.check(Signal.open_long("Y"), book(10_000.0), m)
    engine.on_bar(T0 + HOUR, {"Y": 100.0}, book(10_000.0))  # the bar passed: orders resolved
    third = engine.check(Signal.open_long("Y"), book(10_000.0), m)
    # Assert
    assert reason(open_pos) == "already_open"
    assert isinstance(first, Order)
    assert reason(second) == "already_open"
    assert isinstance(third, Order)


def test_unknown_symbol_and_missing_price_are_refused() -> None:
    # Arrange
    engine = RiskEngine(gate(max_position_pct=0.1), instruments("X", "Y"))
    m = market({"X": 100.0})
    # Act / Assert
    assert reason(engine.check(Signal.open_long("Z"), book(10_000.0), m)) == "unknown_symbol"
    assert reason(engine.check(Signal.open_long("Y"), book(10_000.0), m)) == "no_price"


def test_confidence_scales_the_size() -> None:
    # Arrange: fixed 20% of equity, confidence 0.5 -> 1,000 -> 10 units
    cfg = replace(gate(max_position_pct=1.0), sizing=SizingConfig("fixed_fraction", fraction=0.2))
    engine = RiskEngine(cfg, instruments("X"))
    # Act
    o = order(
        engine.check(Signal.open_long("X", confidence=0.5), book(10_000.0), market({"X": 100.0}))
    )
    # Assert
    assert o.quantity == pytest.approx(10.0)


def test_limit_override_changes_the_limit_until_expiry() -> None:
    # Arrange
    from tradeloop.risk.overrides import issue_token

    secret = b"s3cret"
    engine = RiskEngine(gate(max_position_pct=0.10), instruments("X"), secret=secret)
    token = issue_token(
        secret,
        who="ops",
        why="rebalance",
        action="set_limit",
        limit="max_position_pct",
        value=0.2,
        not_before=T0,
        expires_at=T0 + HOUR,
    )
    engine.apply_override(token, T0)
    during = market({"X": 100.0})
    after = RollingMarket(["X"], 10, HOUR)
    after.push(T0 + 2 * HOUR, {"X": 100.0})
    # Act
    bigger = order(engine.check(Signal.open_long("X"), book(10_000.0), during))
    engine.on_bar(T0 + 2 * HOUR, {"X": 100.0}, book(10_000.0))
    normal = order(engine.check(Signal.open_long("X"), book(10_000.0), after))
    # Assert: 20% while the override holds, 10% after it expired (and the expiry is audited)
    assert bigger.quantity == pytest.approx(20.0)
    assert normal.quantity == pytest.approx(10.0)
    assert [r["result"] for r in engine.overrides.audit.records] == ["accepted", "expired"]
