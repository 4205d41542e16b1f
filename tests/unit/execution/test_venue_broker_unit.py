"""VenueBroker logic on an in-memory venue: identity of orders, the state machine, fills,
caps, protection, fees. (The wire-level behaviour is in tests/integration/test_venue_broker.py.)"""

from __future__ import annotations

import math

import pytest

from tradeloop.core.errors import TemporaryError
from tradeloop.core.instrument import Instrument
from tradeloop.core.order_status import OrderStatus
from tradeloop.core.orders import Order, OrderSide, OrderType
from tradeloop.core.portfolio import Portfolio
from tradeloop.execution.fees import SCHEDULES, FeeModel, FeeSchedule
from tradeloop.execution.protection import (
    BreakerState,
    CircuitBreaker,
    RetryPolicy,
)
from tradeloop.execution.venue import (
    MarketRules,
    OrderValidationError,
    VenueFill,
    VenueOrder,
    VenueUnavailableError,
    check_order,
)
from tradeloop.execution.venue_broker import NotionalCaps, VenueBroker, client_order_id, run_key
from tradeloop.testing.venue.instant import InstantVenue

SYM = "BTC/USDT"
INST = {SYM: Instrument(SYM, lot_size=0.00001, min_notional=5.0, taker_fee=0.001)}


def _broker(venue: InstantVenue, **kw: object) -> tuple[VenueBroker, list[tuple[str, str]]]:
    alerts: list[tuple[str, str]] = []
    broker = VenueBroker(
        venue,
        Portfolio(10_000.0),
        INST,
        run_id="run-a",
        alert=lambda t, x: alerts.append((t, x)),
        retry=RetryPolicy(attempts=3, backoff_base_s=0.0),
        sleep=lambda s: None,
        **kw,  # type: ignore[arg-type]
    )
    return broker, alerts


def _order(broker: VenueBroker, side: OrderSide, qty: float, *, reduce_only: bool = False) -> Order:
    return Order(
        broker.next_order_id(), SYM, side, OrderType.MARKET, qty, 0, reduce_only=reduce_only
    )


def test_client_ids_are_a_function_of_run_and_order() -> None:
    assert client_order_id(run_key("run-a"), 7) == client_order_id(run_key("run-a"), 7)
    assert client_order_id(run_key("run-a"), 7) != client_order_id(run_key("run-b"), 7)
    assert len(client_order_id(run_key("x" * 200), 10**9)) <= 32


def test_round_trip_books_trades_like_the_simulated_broker() -> None:
    venue = InstantVenue(price=100.0, fee_rate=0.001)
    broker, _ = _broker(venue)
    broker.submit_order(_order(broker, OrderSide.BUY, 1.0), 0, 100.0)
    broker.on_open(SYM, 1, 100.0)
    venue.price = 110.0
    broker.submit_order(_order(broker, OrderSide.SELL, 0.0, reduce_only=True), 2, 110.0)
    broker.on_open(SYM, 3, 110.0)
    [trade] = broker.portfolio.trades
    # hand computation: (110 - 100) * 1 - 0.1 entry fee - 0.11 exit fee
    assert trade.pnl == pytest.approx(10.0 - 0.1 - 0.11)
    assert broker.portfolio.balance == pytest.approx(10_000.0 + trade.pnl)
    assert broker.portfolio.positions == {}
    assert [f.reason for f in broker.fills()] == ["entry", "signal"]


def test_a_reversal_is_one_order_closing_then_opening() -> None:
    venue = InstantVenue(price=100.0, fee_rate=0.0)
    broker, _ = _broker(venue)
    broker.submit_order(_order(broker, OrderSide.BUY, 1.0), 0, 100.0)
    broker.sync()
    broker.submit_order(_order(broker, OrderSide.SELL, 2.0), 1, 100.0)
    broker.sync()
    assert [r.amount for r in venue.placed] == [1.0, 3.0]
    pos = broker.portfolio.positions[SYM]
    assert (pos.direction, pos.quantity) == (-1, 2.0)
    assert len(broker.portfolio.trades) == 1


def test_repeated_fills_and_stale_snapshots_are_ignored_impossible_moves_alerted() -> None:
    venue = InstantVenue(price=100.0)
    broker, alerts = _broker(venue)
    order = _order(broker, OrderSide.BUY, 1.0)
    broker.submit_order(order, 0, 100.0)
    [fill] = venue._updates
    venue.push(fill)  # the stream and the poll both report it
    broker.sync()
    assert len(broker.fills()) == 1
    cid = venue.placed[0].client_order_id
    stale = VenueOrder(cid, SYM, OrderSide.BUY, OrderType.MARKET, OrderStatus.ACCEPTED, 1.0)
    venue.push(stale)
    broker.sync()
    assert broker.invalid_transitions == 0  # late, not impossible: dropped quietly
    gone = VenueOrder(cid, SYM, OrderSide.BUY, OrderType.MARKET, OrderStatus.CANCELLED, 1.0, 1.0)
    venue.push(gone)
    broker.sync()
    assert broker.invalid_transitions == 1
    assert alerts
    assert alerts[-1][0] == "invalid order transition"
    assert broker.order_status is not None
    assert broker.order_status[order.id] is OrderStatus.FILLED


def test_an_unknown_outcome_is_looked_up_before_resending() -> None:
    venue = InstantVenue(price=100.0)
    broker, _ = _broker(venue)
    first = _order(broker, OrderSide.BUY, 1.0)
    # the venue takes the order but the answer is lost three times (retries exhausted)
    venue.fail_next = [VenueUnavailableError("timeout")] * 3
    broker.submit_order(first, 0, 100.0)
    assert broker.order_status is not None
    assert broker.order_status[first.id] is OrderStatus.SUBMITTED
    assert venue.placed == []
    broker.resolve_unknown()
    assert broker.order_status[first.id] is OrderStatus.REJECTED  # OrderNotFound: a transition


def test_after_a_restore_ids_the_dead_process_may_have_sent_are_looked_up() -> None:
    venue = InstantVenue(price=100.0)
    broker, _ = _broker(venue)
    broker.submit_order(_order(broker, OrderSide.BUY, 1.0), 0, 100.0)
    state = broker.export_state()
    orders = {1: Order(1, SYM, OrderSide.BUY, OrderType.MARKET, 1.0, 0)}
    restarted, _ = _broker(venue)
    restarted.restore_state({**state, "order_seq": 0, "working": []}, orders)
    again = Order(restarted.next_order_id(), SYM, OrderSide.BUY, OrderType.MARKET, 1.0, 0)
    restarted.submit_order(again, 0, 100.0)
    assert len(venue.placed) == 1  # found by client id, not placed twice


def test_notional_caps_refuse_entries_never_exits() -> None:
    venue = InstantVenue(price=100.0)
    broker, _ = _broker(venue, caps=NotionalCaps(per_order=150.0, per_day=250.0))
    broker.submit_order(_order(broker, OrderSide.BUY, 2.0), 0, 100.0)  # 200 > 150
    assert broker.rejections[-1].reason == "notional_cap"
    broker.submit_order(_order(broker, OrderSide.BUY, 1.0), 0, 100.0)
    broker.sync()
    broker.submit_order(_order(broker, OrderSide.SELL, 0.0, reduce_only=True), 0, 100.0)
    broker.sync()
    assert broker.portfolio.positions == {}
    broker.submit_order(_order(broker, OrderSide.BUY, 1.4), 0, 100.0)  # 100 + 140 <= 250
    broker.submit_order(_order(broker, OrderSide.BUY, 0.2), 0, 100.0)  # would pass 250
    assert [r.reason for r in broker.rejections].count("notional_cap") >= 2
    assert len(venue.placed) == 3


def test_breaker_half_open_trial_closes_or_reopens() -> None:
    now = [0.0]
    breaker = CircuitBreaker("v", failure_threshold=3, reset_after_s=10, clock=lambda: now[0])

    def fail() -> None:
        raise TemporaryError("503")

    for _ in range(3):
        with pytest.raises(TemporaryError):
            breaker.call(fail)
    assert breaker.state is BreakerState.OPEN
    now[0] = 10.0
    assert breaker.state is BreakerState.HALF_OPEN
    with pytest.raises(TemporaryError):
        breaker.call(fail)  # the trial fails: open again at once
    assert breaker.state is BreakerState.OPEN
    now[0] = 20.0
    assert breaker.call(lambda: 1) == 1
    assert breaker.state is BreakerState.CLOSED
    assert breaker.as_dict()["opened"] == 2


def test_fee_tiers_follow_the_30_day_volume() -> None:
    model = FeeModel(SCHEDULES["binanceusdm"])
    assert (model.maker(SYM), model.taker(SYM)) == (0.0002, 0.0005)
    day = 86_400_000_000_000
    model.record_volume(16_000_000.0, 0)
    assert model.tier == 1
    assert model.fee(SYM, 1.0, 1_000.0) == pytest.approx(0.4)  # 1000 * 0.0004
    model.record_volume(1.0, 31 * day)  # the old volume left the window
    assert model.tier == 0
    restored = FeeModel(SCHEDULES["binanceusdm"])
    restored.restore_state(model.export_state())
    assert restored.volume_30d == pytest.approx(model.volume_30d)
    with pytest.raises(Exception, match="first tier"):
        FeeSchedule("x", ((1.0, 0.001, 0.001),))


@pytest.mark.parametrize(
    ("amount", "price", "field"),
    [
        (0.0, None, "amount"),
        (1e-7, None, "amount"),
        (1.0, -1.0, "price"),
        (0.01, 100.0, "notional"),
    ],
)
def test_check_order_names_the_field(amount: float, price: float | None, field: str) -> None:
    rules = MarketRules(SYM, amount_step=0.00001, price_step=0.01, min_notional=5.0)
    with pytest.raises(OrderValidationError, match=f"field '{field}'"):
        check_order(rules, amount, price=price)


def test_a_fill_in_another_fee_currency_is_priced_in_quote() -> None:
    venue = InstantVenue(price=100.0, fee_rate=0.0)
    broker, _ = _broker(venue)
    order = _order(broker, OrderSide.BUY, 1.0)
    broker.submit_order(order, 0, 100.0)
    venue._updates = [
        VenueFill(
            "t1", venue.placed[0].client_order_id, SYM, OrderSide.BUY, 1.0, 100.0, 0.001, "BTC", 5
        )
    ]
    broker.sync()
    assert broker.portfolio.positions[SYM].entry_fee == pytest.approx(0.1)  # 0.001 BTC at 100
    assert not math.isnan(broker.portfolio.equity)


def test_simulated_and_venue_brokers_charge_through_the_same_fee_model() -> None:
    from tradeloop.execution.simulated import SimulatedBroker

    schedule = FeeSchedule("demo", ((0.0, 0.002, 0.004), (50.0, 0.001, 0.003)))
    sim = SimulatedBroker(Portfolio(10_000.0), dict(INST), "1m", fees=FeeModel(schedule))
    venue = InstantVenue(price=100.0, fee_rate=None)  # the venue reports no fee
    live, _ = _broker(venue, fees=FeeModel(schedule))
    venue._updates = []
    for broker in (sim, live):
        broker.submit_order(_order(broker, OrderSide.BUY, 1.0), 0, 100.0)
        broker.on_open(SYM, 1, 100.0)
        broker.submit_order(_order(broker, OrderSide.SELL, 0.0, reduce_only=True), 2, 100.0)
        broker.on_open(SYM, 3, 100.0)
    # entry at tier 0 (taker 0.4%), exit after the entry's 100 of volume at tier 1 (taker 0.3%)
    for broker in (sim, live):
        [trade] = broker.portfolio.trades
        assert (trade.entry_fee, trade.exit_fee) == pytest.approx((0.4, 0.3))
