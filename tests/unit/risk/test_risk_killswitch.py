"""Kill switches: one test per state transition, what each state lets through, black swans."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tradeloop.core.instrument import Instrument
from tradeloop.core.orders import Order, OrderSide
from tradeloop.core.portfolio import Portfolio
from tradeloop.core.position import Position
from tradeloop.core.rejection import Rejection
from tradeloop.core.signal import Signal
from tradeloop.risk.config import BlackSwanConfig, KillSwitchConfig, RiskConfig
from tradeloop.risk.engine import RiskEngine
from tradeloop.risk.killswitch import BlackSwanDetector, KillSwitch, RiskEvent, TradingState
from tradeloop.risk.market import RollingMarket
from tradeloop.risk.overrides import issue_token

HOUR = 3_600_000_000_000
DAY = 24 * HOUR
T0 = 1_704_067_200_000_000_000  # 2024-01-01T00:00Z
SECRET = b"kill-switch-secret"

DRAWDOWN = KillSwitchConfig(daily_loss_pct=None, drawdown_reduce_pct=0.10, drawdown_halt_pct=0.15)
DAILY = KillSwitchConfig(daily_loss_pct=0.02, drawdown_reduce_pct=None, drawdown_halt_pct=None)


def feed(ks: KillSwitch, *equities: float, start: int = T0) -> None:
    for k, equity in enumerate(equities):
        ks.update(start + k * HOUR, equity)


def states(ks: KillSwitch) -> list[tuple[str, str, str]]:
    return [(e.state_from.value, e.state_to.value, e.cause) for e in ks.events]


# --------------------------------------------------------------------------- drawdown


def test_drawdown_ten_percent_active_to_reducing() -> None:
    # Arrange
    ks = KillSwitch(DRAWDOWN)
    # Act: peak 10,000, then 9,000 = 10% down
    feed(ks, 10_000.0, 9_500.0, 9_000.0)
    # Assert
    assert ks.state is TradingState.REDUCING
    assert states(ks) == [("active", "reducing", "drawdown")]
    assert "drawdown 10.00% from peak 10000.00" in ks.events[0].detail


def test_drawdown_recovery_reducing_to_active() -> None:
    # Arrange
    ks = KillSwitch(DRAWDOWN)
    feed(ks, 10_000.0, 9_000.0)
    # Act: back to 9,100 = 9% down
    feed(ks, 9_100.0, start=T0 + 2 * HOUR)
    # Assert
    assert ks.state is TradingState.ACTIVE
    assert states(ks)[-1] == ("reducing", "active", "drawdown_recovered")


def test_drawdown_fifteen_percent_reducing_to_halted() -> None:
    # Arrange
    ks = KillSwitch(DRAWDOWN)
    feed(ks, 10_000.0, 9_000.0)
    # Act
    feed(ks, 8_500.0, start=T0 + 2 * HOUR)
    # Assert
    assert ks.state is TradingState.HALTED
    assert states(ks) == [("active", "reducing", "drawdown"), ("reducing", "halted", "drawdown")]


def test_drawdown_jump_active_to_halted() -> None:
    # Arrange
    ks = KillSwitch(DRAWDOWN)
    # Act
    feed(ks, 10_000.0, 8_400.0)
    # Assert
    assert states(ks) == [("active", "halted", "drawdown")]


def test_drawdown_halt_survives_recovery_and_new_day_until_override() -> None:
    # Arrange
    ks = KillSwitch(DRAWDOWN)
    feed(ks, 10_000.0, 8_000.0)
    # Act: equity recovers fully, a day later
    feed(ks, 10_500.0, start=T0 + 2 * DAY)
    halted_after_recovery = ks.state
    changed = ks.resume(T0 + 3 * DAY, "override", "ops: checked", equity=10_500.0)
    feed(ks, 10_000.0, start=T0 + 3 * DAY + HOUR)
    # Assert: only the override resumes; the peak is re-based at 10,500 (10,000 is -4.8%)
    assert halted_after_recovery is TradingState.HALTED
    assert changed
    assert ks.state is TradingState.ACTIVE
    assert states(ks)[-1] == ("halted", "active", "override")
    assert ks.peak == 10_500.0


# --------------------------------------------------------------------------- daily loss


def test_daily_loss_two_percent_active_to_halted() -> None:
    # Arrange: the day starts at 10,000 (the equity before the day's first bar)
    ks = KillSwitch(DAILY)
    # Act
    feed(ks, 10_000.0, 9_900.0, 9_801.0)
    not_yet = ks.state
    feed(ks, 9_800.0, start=T0 + 3 * HOUR)
    # Assert: the floor is 10,000 * 0.98 = 9,800
    assert not_yet is TradingState.ACTIVE
    assert states(ks) == [("active", "halted", "daily_loss")]
    assert "2.00% under the day's start 10000.00" in ks.events[0].detail


def test_daily_loss_halt_lifts_at_next_utc_day() -> None:
    # Arrange
    ks = KillSwitch(DAILY)
    feed(ks, 10_000.0, 9_700.0)
    # Act: first bar of the next UTC day
    ks.update(T0 + DAY, 9_750.0)
    # Assert: new day, new start (9,700, the last equity of the old day)
    assert states(ks) == [("active", "halted", "daily_loss"), ("halted", "active", "new_day")]
    assert ks.day_start_equity == 9_700.0


def test_daily_loss_halt_without_resume_next_day_needs_override() -> None:
    # Arrange
    ks = KillSwitch(replace(DAILY, daily_resume_next_day=False))
    feed(ks, 10_000.0, 9_700.0)
    # Act
    ks.update(T0 + DAY, 9_750.0)
    # Assert
    assert ks.state is TradingState.HALTED


# --------------------------------------------------------------------------- the gate by state


def engine_in(state: str) -> RiskEngine:
    cfg = replace(RiskConfig.permissive(), kill_switch=DRAWDOWN)
    engine = RiskEngine(cfg, {s: Instrument(s) for s in ("X", "Y")}, secret=SECRET)
    portfolio = Portfolio(10_000.0)
    engine.on_bar(T0, {}, portfolio)
    portfolio.balance = 9_000.0 if state == "reducing" else 8_000.0
    engine.on_bar(T0 + HOUR, {}, portfolio)
    assert engine.state.value == state
    return engine


def book_with_long_x() -> Portfolio:
    p = Portfolio(8_000.0)
    p.positions["X"] = Position("X-1", "X", 1, 5.0, 100.0, T0, 0.0)
    p.marks["X"] = 100.0
    return p


def market_xy() -> RollingMarket:
    m = RollingMarket(["X", "Y"], 10, HOUR)
    m.push(T0 + HOUR, {"X": 100.0, "Y": 50.0})
    return m


@pytest.mark.parametrize(("state", "reason"), [("halted", "halted"), ("reducing", "reducing_only")])
def test_halted_or_reducing_blocks_new_exposure(state: str, reason: str) -> None:
    # Arrange
    engine = engine_in(state)
    # Act
    decision = engine.check(Signal.open_long("Y", 0.1), book_with_long_x(), market_xy())
    # Assert
    assert isinstance(decision, Rejection)
    assert (decision.reason, decision.source) == (reason, "risk")


@pytest.mark.parametrize("state", ["halted", "reducing"])
def test_halted_or_reducing_lets_reducing_orders_through(state: str) -> None:
    # Arrange
    engine = engine_in(state)
    # Act
    close = engine.check(Signal.close("X"), book_with_long_x(), market_xy())
    reversal = engine.check(Signal.open_short("X", 1.0), book_with_long_x(), market_xy())
    # Assert: the close passes; the reversal is cut down to closing the long
    assert isinstance(close, Order)
    assert close.reduce_only
    assert close.side is OrderSide.SELL
    assert isinstance(reversal, Order)
    assert reversal.reduce_only
    assert reversal.side is OrderSide.SELL
    assert reversal.quantity == 5.0


def test_halted_resumes_only_with_a_valid_override() -> None:
    # Arrange
    engine = engine_in("halted")
    bad = issue_token(
        b"wrong-secret", who="x", why="y", action="resume", not_before=T0, expires_at=T0 + DAY
    )
    good = issue_token(
        SECRET, who="ops", why="reviewed", action="resume", not_before=T0, expires_at=T0 + DAY
    )
    # Act
    engine.apply_override(bad, T0 + 2 * HOUR)
    still = engine.state
    engine.apply_override(good, T0 + 2 * HOUR, book_with_long_x())
    decision = engine.check(Signal.open_long("Y", 0.1), book_with_long_x(), market_xy())
    # Assert
    assert still is TradingState.HALTED
    assert engine.state is TradingState.ACTIVE
    assert isinstance(decision, Order)
    assert [r["result"] for r in engine.overrides.audit.records] == ["refused", "accepted"]


def test_state_changes_reach_subscribers() -> None:
    # Arrange
    ks = KillSwitch(DRAWDOWN)
    handler: list[RiskEvent] = []
    ks.subscribe(handler.append)
    # Act
    feed(ks, 10_000.0, 8_000.0)
    # Assert
    assert len(handler) == 1
    assert type(handler[0]) is RiskEvent
    assert handler[0].cause == "drawdown"


# --------------------------------------------------------------------------- black swan


def test_black_swan_drop_within_window_triggers() -> None:
    # Arrange: 24h window, 20% drop
    bs = BlackSwanDetector(BlackSwanConfig(vol_shock_sigma=None))
    # Act: 100 -> 81 (19%) within a day: no; -> 80 (20%): yes
    first = [bs.update("X", T0 + k * HOUR, p) for k, p in enumerate([100.0, 90.0, 81.0])]
    hit = bs.update("X", T0 + 3 * HOUR, 80.0)
    # Assert
    assert first == [None, None, None]
    assert hit is not None
    assert "X fell 20.00% from 100" in hit


def test_black_swan_drop_slower_than_window_does_not_trigger() -> None:
    # Arrange: 20% over 30 hours, never 20% within 24h
    bs = BlackSwanDetector(BlackSwanConfig(vol_shock_sigma=None))
    prices = [100.0 * (1 - 0.2 * k / 30) for k in range(31)]
    # Act
    hits = [bs.update("X", T0 + k * HOUR, p) for k, p in enumerate(prices)]
    # Assert
    assert hits == [None] * 31


def test_black_swan_volatility_shock_triggers() -> None:
    # Arrange: 100 returns alternating +-0.1% (sd ~0.1%), then a -3% bar (~30 sigma)
    bs = BlackSwanDetector(BlackSwanConfig(drop_pct=None, vol_shock_sigma=10.0, vol_window=100))
    price = 100.0
    hits = []
    for k in range(101):
        price *= 1.001 if k % 2 else 0.999
        hits.append(bs.update("X", T0 + k * HOUR, price))
    # Act
    shock = bs.update("X", T0 + 101 * HOUR, price * 0.97)
    # Assert
    assert not any(hits)
    assert shock is not None
    assert "sigma" in shock


def test_black_swan_spread_shock_triggers_on_quote() -> None:
    # Arrange
    cfg = replace(RiskConfig.permissive(), black_swan=BlackSwanConfig(spread_shock_bps=100.0))
    engine = RiskEngine(cfg)
    # Act
    calm = engine.on_quote(T0, "X", 100.0, 100.5)  # ~50 bps
    shock = engine.on_quote(T0, "X", 100.0, 102.0)  # ~198 bps
    # Assert
    assert not calm
    assert shock
    assert engine.state is TradingState.HALTED
    assert engine.events[-1].cause == "black_swan"


def test_black_swan_halts_once_flattens_once_and_beats_daily_resume() -> None:
    # Arrange: daily loss halts first, then the crash
    cfg = replace(
        RiskConfig.permissive(),
        kill_switch=DAILY,
        black_swan=BlackSwanConfig(drop_pct=0.20, vol_shock_sigma=None),
    )
    engine = RiskEngine(cfg)
    portfolio = Portfolio(10_000.0)
    # Act
    engine.on_bar(T0, {"X": 100.0}, portfolio)
    portfolio.balance = 9_700.0
    engine.on_bar(T0 + HOUR, {"X": 95.0}, portfolio)  # daily loss -3%
    first = engine.on_bar(T0 + 2 * HOUR, {"X": 79.0}, portfolio)  # -21% in 2h
    again = engine.on_bar(T0 + 3 * HOUR, {"X": 70.0}, portfolio)
    engine.on_bar(T0 + DAY, {"X": 70.0}, portfolio)  # next day: no auto resume
    # Assert
    assert (first, again) == (True, False)
    assert engine.state is TradingState.HALTED
    assert engine.kill_switch.cause == "black_swan"
    assert [e.cause for e in engine.events] == ["daily_loss", "black_swan"]
