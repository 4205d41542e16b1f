"""Stops and targets resting at the venue on Binance spot, through the venue broker and the
UNMODIFIED ccxt client against the local Binance venue (recorded real prices).

A long's stop and target go out as one OCO order list (the coins are held once: two sell
orders of the whole holding could not both rest); the leg that fills closes the position with
paper's fill and the venue expires the other; a stop alone (a trailing stop) is a STOP_LOSS
order amended by cancel/replace; an exit the bot sends itself cancels the list first, since
the list holds the coins it sells."""

from __future__ import annotations

from collections import Counter

import pytest

from tradeloop.adapters.ccxt.broker import CcxtVenueClient
from tradeloop.core.instrument import Instrument
from tradeloop.core.orders import Bracket, Order, OrderSide, OrderType
from tradeloop.core.portfolio import Portfolio
from tradeloop.core.position import ExitReason, Trade
from tradeloop.execution.protection import RetryPolicy
from tradeloop.execution.simulated import SimulatedBroker
from tradeloop.execution.venue_broker import VenueBroker
from tradeloop.testing.venue.trading_server import LocalBinanceExchange

from .test_venue_broker import SPOT, T0, Clock, _client, clock, exchange  # noqa: F401

MIN_MS = 60_000
SID = "BTCUSDT"
FEE = 0.001  # the local venue's spot rate (maker and taker)
QTY = 0.01


def _instrument() -> Instrument:
    return Instrument(SPOT, lot_size=0.00001, min_notional=5.0, taker_fee=FEE, maker_fee=FEE)


def _broker(client: CcxtVenueClient) -> VenueBroker:
    return VenueBroker(
        client,
        Portfolio(10_000.0),
        {SPOT: _instrument()},
        run_id="resting-spot",
        retry=RetryPolicy(attempts=3, backoff_base_s=0.01),
        sleep=lambda _s: None,
    )


def _bars(ex: LocalBinanceExchange, n: int) -> list[tuple[int, float, float, float, float]]:
    return ex.prices.bars(SID, "spot", T0 - 1, T0 + (n - 1) * MIN_MS)


def _entry(broker: VenueBroker | SimulatedBroker, exits: Bracket, price: float) -> None:
    order = Order(
        broker.next_order_id(),
        SPOT,
        OrderSide.BUY,
        OrderType.MARKET,
        QTY,
        (T0 - MIN_MS) * 1_000_000,
        exits=exits,
    )
    broker.submit_order(order, (T0 - MIN_MS) * 1_000_000, price)


def _paper(bars: list[tuple[int, float, float, float, float]], exits: Bracket) -> list[Trade]:
    sim = SimulatedBroker(Portfolio(10_000.0), {SPOT: _instrument()}, "1m")
    _entry(sim, exits, bars[0][1])
    for ms, o, h, low, c in bars:
        if sim.pending:
            sim.on_open(SPOT, ms * 1_000_000, o)
        sim.on_bar_range(SPOT, ms * 1_000_000, o, h, low, c)
    return sim.portfolio.trades


def _live(
    broker: VenueBroker,
    clock: Clock,  # noqa: F811 (the fixture's type)
    bars: list[tuple[int, float, float, float, float]],
    on_bar: object = None,
) -> None:
    for ms, o, h, low, c in bars:
        clock.ms = ms + MIN_MS
        broker.on_bar_range(SPOT, ms * 1_000_000, o, h, low, c)
        if callable(on_bar):
            on_bar()


def _key(t: Trade) -> tuple[object, ...]:
    return (
        t.quantity,
        t.entry_ts,
        t.entry_price,
        t.exit_ts,
        t.exit_price,
        t.exit_reason,
        round(t.exit_fee, 8),
    )


def test_a_spot_stop_and_target_rest_as_one_oco_list_and_the_target_fills_like_paper(
    exchange: LocalBinanceExchange,  # noqa: F811 (the fixture)
    clock: Clock,  # noqa: F811
) -> None:
    # Arrange: a stop out of reach, a target a few bars away
    client = _client(exchange)
    try:
        broker = _broker(client)
        bars = _bars(exchange, 20)
        entry = bars[0][1]
        exits = Bracket(stop_loss=round(entry * 0.999, 2), take_profit=round(entry * 1.002, 2))
        # Act
        _entry(broker, exits, entry)
        legs = [(o.type, o.side, o.stop_price, o.list_id) for o in exchange.book.orders[1:]]
        locked = {b["asset"]: float(b["locked"]) for b in exchange.book.spot_account()["balances"]}
        _live(broker, clock, bars)
        # Assert: one list of two legs holding the coins once
        assert sorted(legs) == [
            ("STOP_LOSS", "SELL", exits.stop_loss, legs[0][3]),
            ("TAKE_PROFIT", "SELL", exits.take_profit, legs[0][3]),
        ]
        assert legs[0][3] >= 0
        assert locked["BTC"] == pytest.approx(QTY)
        paper = _paper(bars, exits)
        assert len(paper) == 1
        assert paper[0].exit_reason is ExitReason.TAKE_PROFIT
        assert [_key(t) for t in broker.portfolio.trades] == [_key(t) for t in paper]
        status = {o.type: o.status for o in exchange.book.orders[1:3]}
        assert status == {"STOP_LOSS": "EXPIRED", "TAKE_PROFIT": "FILLED"}
        assert len(exchange.book.orders) == 3  # no market exit
        assert broker.portfolio.positions == {}
        assert broker.portfolio.balance == pytest.approx(exchange.book.balances["USDT"], rel=1e-12)
        assert broker.working_orders() == []
    finally:
        client.close()


def test_a_spot_trailing_stop_is_one_stop_loss_order_replaced_as_it_moves(
    exchange: LocalBinanceExchange,  # noqa: F811
    clock: Clock,  # noqa: F811
) -> None:
    client = _client(exchange)
    try:
        broker = _broker(client)
        bars = _bars(exchange, 40)
        exits = Bracket(trailing_stop=0.0005)
        working: list[int] = []
        # Act
        _entry(broker, exits, bars[0][1])
        _live(
            broker,
            clock,
            bars,
            lambda: working.append(sum(1 for o in exchange.book.orders if o.is_open)),
        )
        # Assert
        stops = [o for o in exchange.book.orders if o.type == "STOP_LOSS"]
        assert len(stops) >= 3
        assert max(working) == 1
        assert Counter(o.client_id for o in stops).most_common(1)[0][1] == 1
        assert [o.status for o in stops[:-1]] == ["CANCELED"] * (len(stops) - 1)
        assert stops[-1].status == "FILLED"
        paper = _paper(bars, exits)
        (trade,) = broker.portfolio.trades
        assert trade.exit_reason is ExitReason.TRAILING
        assert (trade.entry_ts, trade.exit_ts) == (paper[0].entry_ts, paper[0].exit_ts)
        tick = client.market_rules(SPOT).price_step
        assert trade.exit_price == pytest.approx(paper[0].exit_price, abs=tick)
    finally:
        client.close()


def test_a_bot_exit_on_spot_cancels_the_oco_list_that_holds_the_coins_first(
    exchange: LocalBinanceExchange,  # noqa: F811
    clock: Clock,  # noqa: F811
) -> None:
    client = _client(exchange)
    try:
        broker = _broker(client)
        bars = _bars(exchange, 3)
        entry = bars[0][1]
        exits = Bracket(stop_loss=round(entry * 0.99, 2), take_profit=round(entry * 1.01, 2))
        _entry(broker, exits, entry)
        _live(broker, clock, bars[:2])
        # Act: the strategy closes the position with a market sell
        ts = bars[1][0] * 1_000_000
        close = Order(
            broker.next_order_id(),
            SPOT,
            OrderSide.SELL,
            OrderType.MARKET,
            QTY,
            ts,
            reduce_only=True,
        )
        broker.submit_order(close, ts, bars[1][4])
        broker.sync(ts)
        # Assert: the list was cancelled, then the sell filled (not refused for held coins)
        *legs, sell = exchange.book.orders[1:]
        assert [o.status for o in legs] == ["CANCELED", "CANCELED"]
        assert (sell.type, sell.status) == ("MARKET", "FILLED")
        assert broker.rejections == []
        (trade,) = broker.portfolio.trades
        assert trade.exit_reason is ExitReason.SIGNAL
        assert broker.portfolio.positions == {}
        assert exchange.book.balances.get("BTC", 0.0) == pytest.approx(0.0, abs=1e-12)
    finally:
        client.close()
