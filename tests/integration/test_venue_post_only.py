"""Post-only entries through the venue broker and unmodified ccxt against the local Binance
venue: an entry goes out as LIMIT_MAKER at the last price; the venue refuses one that would
take; one that rests fills at its limit with the maker fee when its bar trades through it, or
is cancelled at the next bar's open (the simulated broker's rule)."""

from __future__ import annotations

import pytest

from tradeloop.core.instrument import Instrument
from tradeloop.core.order_status import OrderStatus
from tradeloop.core.orders import Order, OrderSide, OrderType
from tradeloop.core.portfolio import Portfolio
from tradeloop.execution.protection import RetryPolicy
from tradeloop.execution.venue_broker import VenueBroker
from tradeloop.testing.venue.trading_server import LocalBinanceExchange

from .test_venue_broker import SPOT, T0, Clock, _client, clock, exchange  # noqa: F401

MIN_MS = 60_000


def _broker(client: object) -> VenueBroker:
    inst = Instrument(SPOT, lot_size=0.00001, min_notional=5.0, taker_fee=0.001)
    return VenueBroker(
        client,  # type: ignore[arg-type]
        Portfolio(10_000.0),
        {SPOT: inst},
        run_id="post-only",
        retry=RetryPolicy(attempts=2, backoff_base_s=0.01),
        sleep=lambda _s: None,
        post_only_entries=True,
    )


def _entry(broker: VenueBroker, price: float) -> Order:
    order = Order(
        broker.next_order_id(), SPOT, OrderSide.BUY, OrderType.MARKET, 0.01, T0 * 1_000_000
    )
    broker.submit_order(order, (T0 - MIN_MS) * 1_000_000, price)
    return order


def _bar(ex: LocalBinanceExchange, ms: int) -> tuple[int, float, float, float, float]:
    (bar,) = ex.prices.bars("BTCUSDT", "spot", ms - 1, ms)
    return bar


def test_a_post_only_entry_that_would_take_is_refused_by_the_venue(
    exchange: LocalBinanceExchange,  # noqa: F811 (the fixture)
) -> None:
    client = _client(exchange)
    try:
        broker = _broker(client)
        _bar_ms, open_, *_ = _bar(exchange, T0)
        order = _entry(broker, open_ * 1.001)  # a buy limit above the market would take
        assert broker.order_status[order.id] is OrderStatus.REJECTED
        assert broker.portfolio.positions == {}
        assert exchange.book.orders == []  # refused: nothing rests, nothing filled
        assert [r.reason for r in broker.rejections] == ["venue_rejected"]
    finally:
        client.close()


def test_a_resting_post_only_entry_fills_at_its_limit_as_maker_or_is_cancelled(
    exchange: LocalBinanceExchange,  # noqa: F811 (the fixture)
    clock: Clock,  # noqa: F811 (the fixture)
) -> None:
    client = _client(exchange)
    try:
        broker = _broker(client)
        _ms, open_, _high, low, _c = _bar(exchange, T0)
        assert low < open_
        through = round((low + open_) / 2, 2)  # below the open, traded through in this bar
        away = round(low - 50.0, 2)  # below the bar's low: never reached in this bar
        filled = _entry(broker, through)
        missed = _entry(broker, away)
        venue = {o.client_id: o for o in exchange.book.orders}
        assert len(venue) == 2
        assert {o.type for o in venue.values()} == {"LIMIT_MAKER"}
        assert {o.status for o in venue.values()} == {"NEW"}
        # the venue's clock moves to the next bar: its open applies the bar just traded
        clock.ms = T0 + MIN_MS
        broker.on_open(SPOT, T0 * 1_000_000, open_)  # the bar the orders rest in opened
        broker.on_open(SPOT, (T0 + MIN_MS) * 1_000_000, _bar(exchange, T0 + MIN_MS)[1])
        broker.sync()
        assert broker.order_status[filled.id] is OrderStatus.FILLED
        assert broker.order_status[missed.id] is OrderStatus.CANCELLED
        pos = broker.portfolio.positions[SPOT]
        (trade,) = exchange.book.trades
        assert trade.maker is True
        assert (pos.quantity, pos.entry_price) == (0.01, through)
        # spot: one rate for makers and takers on the venue's regular tier
        assert trade.commission == pytest.approx(0.01 * through * exchange.book.spot_fee)
        assert pos.entry_fee == pytest.approx(trade.commission)
        assert broker.slippage[-1].expected == through
        assert broker.slippage[-1].actual == through
        assert exchange.book.orders[-1].status == "CANCELED"
        assert [o.client_order_id for o in client.open_orders(SPOT)] == []
    finally:
        client.close()
