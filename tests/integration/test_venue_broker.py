"""The venue broker and the ccxt venue client against the local Binance trading venue: the
UNMODIFIED ccxt client (REST + ccxt pro user-data streams) over loopback, signed requests,
recorded real prices, and injected faults."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from tradeloop.adapters.ccxt.broker import CcxtVenueClient
from tradeloop.adapters.ccxt.credentials import Credentials
from tradeloop.config.settings import ExchangeSettings
from tradeloop.core.errors import ConfigError
from tradeloop.core.instrument import Instrument
from tradeloop.core.order_status import OrderStatus
from tradeloop.core.orders import Order, OrderSide, OrderType
from tradeloop.core.portfolio import Portfolio
from tradeloop.execution.protection import BreakerState, CircuitBreaker, RetryPolicy
from tradeloop.execution.reconcile import reconcile
from tradeloop.execution.venue import OrderRequest
from tradeloop.execution.venue_broker import VenueBroker, client_order_id, run_key
from tradeloop.testing.venue import VenueData
from tradeloop.testing.venue.trading_server import (
    API_KEY,
    API_SECRET,
    LocalBinanceExchange,
    TradingFault,
)

SPOT = "BTC/USDT"
PERP = "BTC/USDT:USDT"
T0 = 1_748_169_180_000 + 1_000 * 60_000  # inside both the spot and the USD-M 1m recordings
CREDS = Credentials(SecretStr(API_KEY), SecretStr(API_SECRET))


class Clock:
    """The venue's bar clock, moved by the test."""

    def __init__(self) -> None:
        self.ms = T0

    def __call__(self) -> int:
        return self.ms


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def exchange(venue: VenueData, clock: Clock) -> Iterator[LocalBinanceExchange]:
    with LocalBinanceExchange(venue, clock) as ex:
        yield ex


def _client(
    ex: LocalBinanceExchange, market: str = "spot", *, stream: bool = False
) -> CcxtVenueClient:
    settings = ExchangeSettings(url=ex.url, timeout_ms=1_500)
    client = CcxtVenueClient("binance", market, settings, CREDS, stream=stream, poll_interval_s=0.0)
    if stream:
        client.start_stream()
        deadline = time.monotonic() + 5
        while not client.stream_connected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.stream_connected
    return client


def _broker(
    client: CcxtVenueClient, symbol: str = SPOT, *, breaker: CircuitBreaker | None = None
) -> tuple[VenueBroker, list[float]]:
    waits: list[float] = []
    inst = Instrument(symbol, lot_size=0.00001, min_notional=5.0, taker_fee=0.001)
    broker = VenueBroker(
        client,
        Portfolio(10_000.0),
        {symbol: inst},
        run_id="test-run",
        breaker=breaker,
        retry=RetryPolicy(attempts=4, backoff_base_s=0.01),
        sleep=waits.append,
    )
    return broker, waits


def _buy(broker: VenueBroker, qty: float, symbol: str = SPOT, *, price: float = 109_000.0) -> Order:
    order = Order(
        broker.next_order_id(), symbol, OrderSide.BUY, OrderType.MARKET, qty, T0 * 1_000_000
    )
    broker.submit_order(order, T0 * 1_000_000, price)
    return order


def _drain(broker: VenueBroker, want_fills: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while len(broker.fills()) < want_fills and time.monotonic() < deadline:
        broker.sync(T0 * 1_000_000)
        time.sleep(0.02)


def _cid(order_id: int) -> str:
    return client_order_id(run_key("test-run"), order_id)


# -- the happy path through the unmodified client --


def test_spot_order_fills_through_the_stream_once(exchange: LocalBinanceExchange) -> None:
    client = _client(exchange, stream=True)
    try:
        broker, _ = _broker(client)
        order = _buy(broker, 0.01)
        _drain(broker, 1)
        venue_orders = exchange.book.orders
        assert [o.client_id for o in venue_orders] == [_cid(order.id)]
        assert broker.order_status == {order.id: OrderStatus.FILLED}
        pos = broker.portfolio.positions[SPOT]
        venue_trade = exchange.book.trades[0]
        assert (pos.quantity, pos.entry_price) == (0.01, venue_trade.price)
        assert pos.entry_fee == pytest.approx(venue_trade.commission)
        # the answer's fill and the stream's fill are one execution: applied once
        time.sleep(0.3)
        broker.sync()
        assert len(broker.fills()) == 1
        assert broker.portfolio.balance == pytest.approx(exchange.book.balances["USDT"])
        assert broker.slippage[0].actual == venue_trade.price
        assert broker.slippage[0].expected == 109_000.0
    finally:
        client.close()


def test_signatures_are_checked(exchange: LocalBinanceExchange) -> None:
    bad = CcxtVenueClient(
        "binance",
        "spot",
        ExchangeSettings(url=exchange.url),
        Credentials(SecretStr(API_KEY), SecretStr("wrong-secret")),
        stream=False,
    )
    with pytest.raises(ConfigError, match="API key and secret"):
        bad.balances()
    assert "wrong-secret" not in repr(bad)
    assert "wrong-secret" not in repr(bad._credentials)
    assert exchange.count("/api/v3/account") == 1


def test_perp_leverage_margin_mode_reduce_only_and_positions(
    exchange: LocalBinanceExchange,
) -> None:
    client = _client(exchange, "perp")
    client.set_leverage(PERP, 3, "isolated")
    placed = client.place_order(OrderRequest("tlp1", PERP, OrderSide.SELL, OrderType.MARKET, 0.01))
    assert placed.status is OrderStatus.FILLED
    [pos] = client.positions([PERP])
    assert (pos.symbol, pos.quantity, pos.leverage) == (PERP, -0.01, 3.0)
    closing = client.place_order(
        OrderRequest("tlp2", PERP, OrderSide.BUY, OrderType.MARKET, 0.02, reduce_only=True)
    )
    assert closing.filled == 0.01  # reduce-only never opens the other side
    assert client.positions([PERP]) == []
    assert exchange.book._positions["BTCUSDT"].margin_type == "isolated"


def test_limit_and_post_only_orders(exchange: LocalBinanceExchange, clock: Clock) -> None:
    client = _client(exchange)
    last = exchange.prices.price("BTCUSDT", "spot")
    assert last is not None
    below = round(last[1] * 0.99, 2)
    rested = client.place_order(
        OrderRequest("tll1", SPOT, OrderSide.BUY, OrderType.LIMIT, 0.01, price=below)
    )
    assert rested.status is OrderStatus.ACCEPTED
    assert [o.client_order_id for o in client.open_orders(SPOT)] == ["tll1"]
    from tradeloop.execution.venue import OrderRejectedError

    with pytest.raises(OrderRejectedError, match="immediately match"):
        client.place_order(
            OrderRequest(
                "tll2",
                SPOT,
                OrderSide.BUY,
                OrderType.LIMIT,
                0.01,
                price=last[1] * 1.01,
                post_only=True,
            )
        )
    cancelled = client.cancel_order(SPOT, "tll1")
    assert cancelled.status is OrderStatus.CANCELLED
    assert client.open_orders(SPOT) == []


# -- faults --


def test_5xx_and_429_with_retry_after_are_retried_one_order_placed(
    exchange: LocalBinanceExchange,
) -> None:
    client = _client(exchange)
    broker, waits = _broker(client)
    exchange.add_fault(TradingFault("status", "/api/v3/order", "POST", status=503))
    exchange.add_fault(
        TradingFault("status", "/api/v3/order", "POST", status=429, at=1, retry_after=2)
    )
    order = _buy(broker, 0.01)
    _drain(broker, 1)
    assert [o.client_id for o in exchange.book.orders] == [_cid(order.id)]
    assert exchange.count("/api/v3/order", "POST") == 3
    assert max(waits) >= 2.0  # the Retry-After was honoured (never less than asked)
    assert broker.portfolio.positions[SPOT].quantity == 0.01
    assert broker.breaker.state is BreakerState.CLOSED


def test_lost_answer_after_the_venue_accepted_is_recovered_by_client_id(
    exchange: LocalBinanceExchange,
) -> None:
    client = _client(exchange)
    broker, _ = _broker(client)
    fault = exchange.add_fault(TradingFault("lost", "/api/v3/order", "POST"))
    order = _buy(broker, 0.01)
    _drain(broker, 1)
    assert fault.fired == 1
    assert [o.client_id for o in exchange.book.orders] == [_cid(order.id)]  # no second order
    assert exchange.count("/api/v3/order", "POST") == 1
    assert exchange.count("/api/v3/order", "GET") >= 1  # looked up by client id
    assert broker.order_status == {order.id: OrderStatus.FILLED}
    assert broker.portfolio.positions[SPOT].quantity == 0.01


def test_partial_fills_become_one_position(exchange: LocalBinanceExchange) -> None:
    exchange.book.partial_fills = 3
    client = _client(exchange, stream=True)
    try:
        broker, _ = _broker(client)
        _buy(broker, 0.03)
        _drain(broker, 3)
        assert len(exchange.book.trades) == 3
        assert len(broker.fills()) == 3
        assert broker._seen_trades == {str(t.trade_id) for t in exchange.book.trades}
        pos = broker.portfolio.positions[SPOT]
        assert pos.quantity == pytest.approx(0.03)
        assert pos.entry_fee == pytest.approx(sum(t.commission for t in exchange.book.trades))
    finally:
        client.close()


def test_a_venue_reject_is_a_transition_not_a_position(exchange: LocalBinanceExchange) -> None:
    client = _client(exchange)
    broker, _ = _broker(client)
    exchange.add_fault(TradingFault("reject", "/api/v3/order", "POST", message="Market is closed."))
    order = _buy(broker, 0.01)
    assert broker.order_status == {order.id: OrderStatus.REJECTED}
    assert broker.rejections[-1].reason == "venue_rejected"
    assert broker.portfolio.positions == {}
    assert broker.pending == {}


def test_stream_down_falls_back_to_rest_then_resyncs(exchange: LocalBinanceExchange) -> None:
    client = _client(exchange, stream=True)
    try:
        broker, _ = _broker(client)
        assert exchange.drop_streams() >= 1
        deadline = time.monotonic() + 3
        while client.stream_connected and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not client.stream_connected
        polls = client.polls
        exchange.book.partial_fills = 2
        _buy(broker, 0.02)
        _drain(broker, 2)
        assert client.polls > polls  # the fills came by REST polling
        assert broker.portfolio.positions[SPOT].quantity == pytest.approx(0.02)
        deadline = time.monotonic() + 5
        while not client.stream_connected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.stream_connected  # reconnected, then one resync
        broker.sync()
        assert len(broker.fills()) == 2  # nothing applied twice
    finally:
        client.close()


def test_breaker_opens_after_three_failed_operations_and_refuses_entries(
    exchange: LocalBinanceExchange,
) -> None:
    client = _client(exchange)
    events: list[tuple[BreakerState, BreakerState]] = []
    breaker = CircuitBreaker("binance", failure_threshold=3, reset_after_s=3600)
    breaker.subscribe(lambda old, new, why: events.append((old, new)))
    broker, _ = _broker(client, breaker=breaker)
    exchange.add_fault(TradingFault("status", "/api/v3/order", status=502, times=-1))
    for _ in range(3):
        _buy(broker, 0.01)
    assert breaker.state is BreakerState.OPEN
    assert events == [(BreakerState.CLOSED, BreakerState.OPEN)]
    sent = exchange.count("/api/v3/order")
    order = _buy(broker, 0.01)
    assert exchange.count("/api/v3/order") == sent  # refused before sending
    assert broker.order_status is not None
    assert broker.order_status[order.id] is OrderStatus.REJECTED
    assert broker.rejections[-1].reason == "venue_unavailable"


# -- refused before sending --


@pytest.mark.parametrize(
    ("symbol", "qty", "field"),
    [
        (SPOT, 0.00002, "notional"),  # 0.00002 BTC is ~2 USDT: below the 5 USDT minimum
        (SPOT, 0.000001, "amount"),  # below one 0.00001 step
        ("DOGE/NOPE", 1.0, "symbol"),
    ],
)
def test_bad_orders_are_refused_before_sending_naming_the_field(
    exchange: LocalBinanceExchange, symbol: str, qty: float, field: str
) -> None:
    client = _client(exchange)
    broker, _ = _broker(client)
    order = _buy(broker, qty, symbol)
    assert exchange.count("/api/v3/order") == 0
    assert broker.order_status == {order.id: OrderStatus.REJECTED}
    rejection = broker.rejections[-1]
    assert rejection.reason == "invalid_order"
    assert f"'{field}'" in rejection.detail


# -- reconciliation --


def test_a_position_changed_outside_the_bot_is_adopted_or_halts(
    exchange: LocalBinanceExchange,
) -> None:
    client = _client(exchange, "perp")
    broker, _ = _broker(client, PERP)
    order = Order(
        broker.next_order_id(), PERP, OrderSide.BUY, OrderType.MARKET, 0.01, T0 * 1_000_000
    )
    broker.submit_order(order, T0 * 1_000_000, 109_000.0)
    _drain(broker, 1)
    assert broker.portfolio.positions[PERP].quantity == 0.01
    exchange.book.set_position("BTCUSDT", -0.05, 108_000.0)  # a human traded on the website
    halted = reconcile(broker, [PERP], T0 * 1_000_000, policy="halt")
    assert [d.kind for d in halted.differences][:1] == ["position"]
    assert halted.differences[0].venue == -0.05
    assert broker.portfolio.positions[PERP].quantity == 0.01  # halt changes nothing
    adopted = reconcile(broker, [PERP], T0 * 1_000_000, policy="adopt")
    assert adopted.adopted
    pos = broker.portfolio.positions[PERP]
    assert (pos.direction, pos.quantity, pos.entry_price) == (-1, 0.05, 108_000.0)
    again = reconcile(broker, [PERP], T0 * 1_000_000, policy="halt")
    assert [d for d in again.differences if d.kind == "position"] == []


def test_an_order_the_venue_does_not_know_is_a_transition(exchange: LocalBinanceExchange) -> None:
    client = _client(exchange)
    broker, _ = _broker(client)
    exchange.add_fault(TradingFault("drop", "/api/v3/order", times=-1))  # never reaches it
    order = _buy(broker, 0.01)
    assert broker.order_status is not None
    assert broker.order_status[order.id] is OrderStatus.SUBMITTED  # outcome unknown
    exchange.faults.clear()
    report = reconcile(broker, [SPOT], T0 * 1_000_000, policy="adopt")
    assert report.resolved_orders == 1
    assert broker.order_status[order.id] is OrderStatus.REJECTED
    assert broker.pending == {}
    assert exchange.book.orders == []
