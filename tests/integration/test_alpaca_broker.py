"""The venue broker on the Alpaca client against the local Alpaca venue: what the kernel's
broker port sees of Alpaca (fills once, orders the venue no longer knows, a position changed
outside the bot reconciled), with the unmodified alpaca-py underneath."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tradeloop.adapters.alpaca import AlpacaClient
from tradeloop.core.instrument import AssetClass, Instrument
from tradeloop.core.order_status import OrderStatus
from tradeloop.core.orders import Order, OrderSide, OrderType
from tradeloop.core.portfolio import Portfolio
from tradeloop.execution.protection import RetryPolicy
from tradeloop.execution.reconcile import reconcile
from tradeloop.execution.venue import OrderNotFoundError
from tradeloop.execution.venue_broker import VenueBroker
from tradeloop.testing.venue.alpaca import (
    AlpacaServer,
    MinuteBars,
    load_equity_minutes,
)

START = 400
SPY = Instrument("SPY", "alpaca", AssetClass.EQUITY, 0.01, 1e-9, 1.0)


@pytest.fixture(scope="module")
def spy(shared_data: Path) -> MinuteBars:
    return load_equity_minutes(shared_data)


@pytest.fixture
def venue(spy: MinuteBars) -> Iterator[AlpacaServer]:
    with AlpacaServer([spy], start=START, cash=10_000.0) as server:
        yield server


def wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.02)


def _broker(venue: AlpacaServer) -> tuple[VenueBroker, AlpacaClient]:
    client = venue.streaming_client(timeout_s=1.0)
    broker = VenueBroker(
        client,
        Portfolio(10_000.0),
        {"SPY": SPY},
        run_id="alpaca-broker",
        retry=RetryPolicy(attempts=3, backoff_base_s=0.01),
        sleep=lambda _s: None,
    )
    return broker, client


def _market(
    broker: VenueBroker, side: OrderSide, qty: float, ts: int, *, close: bool = False
) -> Order:
    order = Order(broker.next_order_id(), "SPY", side, OrderType.MARKET, qty, ts, reduce_only=close)
    broker.submit_order(order, ts, 127.0)
    return order


def test_fills_apply_once_and_the_portfolio_is_the_account(
    venue: AlpacaServer, spy: MinuteBars
) -> None:
    broker, client = _broker(venue)
    try:
        venue.advance(1)
        ts = venue.now_ns
        buy = _market(broker, OrderSide.BUY, 12.345678912, ts)
        venue.advance(1)
        wait_for(lambda: broker.sync(ts) > 0 or bool(broker.fills()))
        broker.sync(ts)
        assert broker.order_status == {buy.id: OrderStatus.FILLED}
        pos = broker.portfolio.positions["SPY"]
        open_next = float(spy.ohlcv[START + 1][0])
        assert (pos.quantity, pos.entry_price) == (12.345678912, open_next)
        # the answer, the stream and a REST resync all report it: applied once
        client._resync(["SPY"])
        broker.sync(ts)
        assert len(broker.fills()) == 1
        assert broker.portfolio.balance == pytest.approx(venue.book.cash)
        sell = _market(broker, OrderSide.SELL, 0.0, ts, close=True)
        venue.advance(1)
        wait_for(lambda: broker.sync(ts) > 0 or "SPY" not in broker.portfolio.positions)
        assert "SPY" not in broker.portfolio.positions
        assert venue.book.positions == {}  # closed to the last 1e-9 share
        assert broker.order_status[sell.id] is OrderStatus.FILLED
        assert broker.portfolio.balance == pytest.approx(venue.book.cash)
    finally:
        client.close()


def test_cancelling_a_filled_order_is_not_found_and_outside_trades_reconcile(
    venue: AlpacaServer,
) -> None:
    broker, client = _broker(venue)
    try:
        venue.advance(1)
        ts = venue.now_ns
        _market(broker, OrderSide.BUY, 5, ts)
        venue.advance(1)
        wait_for(lambda: broker.sync(ts) > 0 or bool(broker.fills()))
        filled = next(iter(venue.book.orders.values()))
        assert filled.status == "filled"
        with pytest.raises(OrderNotFoundError):
            client.cancel_order("SPY", filled.client_order_id)
        # someone sells 2 shares on the web site
        venue.adjust_position("SPY", -2.0)
        halted = reconcile(broker, ["SPY"], ts, policy="halt")
        kinds = {d.kind for d in halted.differences}
        assert "position" in kinds
        assert broker.portfolio.positions["SPY"].quantity == 5  # halt changes nothing
        adopted = reconcile(broker, ["SPY"], ts, policy="adopt")
        assert adopted.adopted
        assert broker.portfolio.positions["SPY"].signed_quantity == pytest.approx(3.0)
        again = reconcile(broker, ["SPY"], ts, policy="halt")
        assert again.differences == []  # cash and positions now agree with the account
        assert broker.portfolio.equity == pytest.approx(client.equity(), rel=1e-6)
        assert not math.isnan(broker.portfolio.equity)
    finally:
        client.close()


def test_a_5xx_on_submit_is_retried_to_exactly_one_order(venue: AlpacaServer) -> None:
    from tradeloop.testing.venue.alpaca import AlpacaFault

    broker, client = _broker(venue)
    try:
        venue.advance(1)
        ts = venue.now_ns
        fault = venue.add_fault(
            AlpacaFault("status", path="/v2/orders", method="POST", status=503, times=2)
        )
        order = _market(broker, OrderSide.BUY, 2, ts)
        assert fault.fired == 2  # two refusals, then the broker's third attempt went through
        assert venue.order_count() == 1
        assert venue.count("POST", "/v2/orders") == 3
        venue.advance(1)
        wait_for(lambda: broker.sync(ts) > 0 or bool(broker.fills()))
        assert broker.order_status == {order.id: OrderStatus.FILLED}
        assert broker.breaker.state.value == "closed"
    finally:
        client.close()


def test_a_buy_is_sized_at_the_venues_latest_price_not_refused_for_buying_power(
    venue: AlpacaServer,
) -> None:
    from tradeloop.core.money import quantity_for_budget
    from tradeloop.execution.venue import OrderRejectedError, OrderRequest

    broker, client = _broker(venue)
    try:
        venue.advance(1)
        ts = venue.now_ns
        latest = venue.book.marks["SPY"]
        stale = latest - 0.5  # the step's close; the price has moved up since
        assert client.last_price("SPY") == latest
        # the all-cash size at the stale price is more than the cash buys at the venue's
        at_stale = client.round_amount("SPY", quantity_for_budget(10_000.0, stale, 0.0))
        with pytest.raises(OrderRejectedError, match="insufficient buying power"):
            client.place_order(
                OrderRequest("probe", "SPY", OrderSide.BUY, OrderType.MARKET, at_stale)
            )
        # Act: an all-cash buy sent with the stale price
        order = Order(broker.next_order_id(), "SPY", OrderSide.BUY, OrderType.MARKET, 1e9, ts)
        broker.submit_order(order, ts, stale)
        # Assert: sized at the latest price, accepted, then filled
        assert broker.rejections == []
        (sent,) = [o for o in venue.book.orders.values() if o.client_order_id != "probe"]
        assert sent.qty == client.round_amount("SPY", quantity_for_budget(10_000.0, latest, 0.0))
        assert sent.qty < at_stale
        venue.advance(1)
        wait_for(lambda: broker.sync(ts) > 0 or bool(broker.fills()))
        assert broker.order_status[order.id] is OrderStatus.FILLED
    finally:
        client.close()
