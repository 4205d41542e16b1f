"""Stops and targets resting at Alpaca, through the venue broker and UNMODIFIED alpaca-py
against the local Alpaca venue (recorded SPY minutes).

A long's stop and target rest as one ``oco`` order (the take-profit limit, its stop leg):
Alpaca holds the shares once, so two sells of the whole position could not both rest. The leg
that fills closes the position with paper's fill (the venue fills by the one fill rule) and
the venue cancels the other; a stop alone is a plain ``stop`` order; a bot exit cancels the
pair first. Alpaca takes stop and oco orders in whole shares only: the whole shares rest, a
fractional remainder is exited by the bot once a resting exit filled. A restarted broker finds
its pair again by the legs' deterministic ids instead of placing a second one."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tradeloop.adapters.alpaca import AlpacaClient
from tradeloop.core.instrument import AssetClass, Instrument
from tradeloop.core.order_status import OrderStatus
from tradeloop.core.orders import Bracket, Order, OrderSide, OrderType
from tradeloop.core.portfolio import Portfolio
from tradeloop.core.position import ExitReason, Trade
from tradeloop.execution.protection import RetryPolicy
from tradeloop.execution.reconcile import settle_orders
from tradeloop.execution.simulated import SimulatedBroker
from tradeloop.execution.venue_broker import VenueBroker
from tradeloop.testing.venue.alpaca import (
    AlpacaServer,
    MinuteBars,
    load_equity_minutes,
)

START = 400
SPY = Instrument("SPY", "alpaca", AssetClass.EQUITY, 0.01, 1e-9, 1.0)
Bar = tuple[int, float, float, float, float]


@pytest.fixture(scope="module")
def spy(shared_data: Path) -> MinuteBars:
    return load_equity_minutes(shared_data)


_VENUES: list[AlpacaServer] = []
_SENT_BEFORE: dict[int, int] = {}


@pytest.fixture
def venue(spy: MinuteBars) -> Iterator[AlpacaServer]:
    with AlpacaServer([spy], start=START, cash=10_000.0) as server:
        _VENUES.append(server)
        yield server
    _VENUES.remove(server)


def wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.01)


def _client(venue: AlpacaServer) -> AlpacaClient:
    client = venue.streaming_client()
    _SENT_BEFORE[id(client)] = venue.events_sent  # to the clients before this one
    return client


def _broker(client: AlpacaClient, portfolio: Portfolio | None = None) -> VenueBroker:
    return VenueBroker(
        client,
        portfolio or Portfolio(10_000.0),
        {"SPY": SPY},
        run_id="alpaca-resting",
        retry=RetryPolicy(attempts=3, backoff_base_s=0.01),
        sleep=lambda _s: None,
    )


def _bar(spy: MinuteBars, i: int) -> Bar:
    o, h, low, c, _v = (float(x) for x in spy.ohlcv[i])
    return int(spy.ts[i]), o, h, low, c


def _levels(spy: MinuteBars, lead: int = 2, within: int = 60) -> tuple[Bracket, int]:
    """A target out of reach on the entry's first ``lead`` bars and reached later, and a stop
    below every low up to then: (exits, the bar index the target is reached at)."""
    entry = START + 1
    top = max(_bar(spy, entry + k)[2] for k in range(lead))
    floor = min(_bar(spy, entry + k)[3] for k in range(lead))
    for hit in range(entry + lead, entry + within):
        if _bar(spy, hit)[2] > top + 0.02:
            low = min(floor, *(_bar(spy, k)[3] for k in range(entry, hit + 1)))
            return Bracket(stop_loss=round(low - 0.05, 2), take_profit=round(top + 0.02, 2)), hit
    raise AssertionError("the recording has no rise to put a target on")


def _entry(broker: VenueBroker | SimulatedBroker, qty: float, exits: Bracket, bar: Bar) -> None:
    """An entry sent at ``bar``'s close (live: once the venue has published it)."""
    if isinstance(broker, VenueBroker):
        venue = _VENUES[-1]
        assert venue.advance(1) == 1
        assert venue.now_ns == bar[0] + 60_000_000_000
    ts = bar[0]
    order = Order(
        broker.next_order_id(), "SPY", OrderSide.BUY, OrderType.MARKET, qty, ts, exits=exits
    )
    broker.submit_order(order, ts, bar[4])


def _paper(spy: MinuteBars, qty: float, exits: Bracket, last: int) -> list[Trade]:
    sim = SimulatedBroker(Portfolio(10_000.0), {"SPY": SPY}, "1m")
    _entry(sim, qty, exits, _bar(spy, START))
    for i in range(START + 1, last + 1):
        ts, o, h, low, c = _bar(spy, i)
        if sim.pending:
            sim.on_open("SPY", ts, o)
        sim.on_bar_range("SPY", ts, o, h, low, c)
    return sim.portfolio.trades


def _step(venue: AlpacaServer, broker: VenueBroker, spy: MinuteBars, i: int) -> None:
    """Publish bar ``i`` at the venue, wait for its trade updates, run the broker's step."""
    assert venue.advance(1) == 1
    client = broker.client
    assert isinstance(client, AlpacaClient)
    before = _SENT_BEFORE[id(client)]
    wait_for(lambda: client.stream_events >= venue.events_sent - before)
    ts, o, h, low, c = _bar(spy, i)
    if broker.pending:
        broker.on_open("SPY", ts, o)
    broker.on_bar_range("SPY", ts, o, h, low, c)


def _key(t: Trade) -> tuple[object, ...]:
    return (t.quantity, t.entry_ts, t.entry_price, t.exit_ts, t.exit_price, t.exit_reason)


def _ocos(venue: AlpacaServer) -> list[object]:
    return [o for o in venue.book.orders.values() if o.order_class == "oco" and o.parent is None]


def test_a_stop_and_target_rest_as_one_oco_order_and_the_target_fills_like_paper(
    venue: AlpacaServer, spy: MinuteBars
) -> None:
    # Arrange
    exits, hit = _levels(spy)
    client = _client(venue)
    try:
        broker = _broker(client)
        # Act: the entry on bar START's close fills at the next open; the exits go out then
        _entry(broker, 10, exits, _bar(spy, START))
        for i in range(START + 1, hit + 2):
            _step(venue, broker, spy, i)
            if i == START + 1:
                (pair,) = _ocos(venue)
                shape = (
                    pair.type,  # type: ignore[attr-defined]
                    pair.side,  # type: ignore[attr-defined]
                    pair.qty,  # type: ignore[attr-defined]
                    pair.limit_price,  # type: ignore[attr-defined]
                    pair.time_in_force,  # type: ignore[attr-defined]
                    [(leg.type, leg.stop_price) for leg in pair.legs],  # type: ignore[attr-defined]
                )
        # Assert: one oco order of the whole position, GTC, the stop its leg
        legs = [("stop", exits.stop_loss)]
        assert shape == ("limit", "sell", 10.0, exits.take_profit, "gtc", legs)
        paper = _paper(spy, 10, exits, hit + 1)
        assert [t.exit_reason for t in paper] == [ExitReason.TAKE_PROFIT]
        assert [_key(t) for t in broker.portfolio.trades] == [_key(t) for t in paper]
        (pair,) = _ocos(venue)
        assert (pair.status, pair.legs[0].status) == ("filled", "canceled")  # type: ignore[attr-defined]
        assert venue.book.positions == {}
        assert not broker.portfolio.positions
        assert len([o for o in venue.book.orders.values() if o.parent is None]) == 2  # no exit
        assert broker.working_orders() == []  # the cancelled stop leg is known as such
    finally:
        client.close()


def test_a_fractional_position_rests_its_whole_shares_and_the_bot_exits_the_rest(
    venue: AlpacaServer, spy: MinuteBars
) -> None:
    # Arrange: 10.5 shares; Alpaca takes stop and oco orders in whole shares only
    exits, hit = _levels(spy)
    client = _client(venue)
    try:
        broker = _broker(client)
        # Act
        _entry(broker, 10.5, exits, _bar(spy, START))
        for i in range(START + 1, hit + 3):
            _step(venue, broker, spy, i)
        # Assert: the oco held 10 shares; its target fill left 0.5, sold by the bot at the
        # next open with the target's reason
        (pair,) = _ocos(venue)
        assert (pair.qty, pair.status) == (10.0, "filled")  # type: ignore[attr-defined]
        trades = broker.portfolio.trades
        assert [(t.quantity, t.exit_reason) for t in trades] == [
            (10.0, ExitReason.TAKE_PROFIT),
            (0.5, ExitReason.TAKE_PROFIT),
        ]
        assert trades[0].exit_price == exits.take_profit
        assert trades[1].exit_ts == _bar(spy, hit + 1)[0]
        assert trades[1].exit_price == _bar(spy, hit + 1)[1]
        assert venue.book.positions == {}
        assert not broker.portfolio.positions
        assert broker.portfolio.balance == pytest.approx(venue.book.cash)
    finally:
        client.close()


def test_a_position_below_one_share_is_watched_by_the_bot(
    venue: AlpacaServer, spy: MinuteBars
) -> None:
    exits, hit = _levels(spy)
    client = _client(venue)
    try:
        broker = _broker(client)
        _entry(broker, 0.75, exits, _bar(spy, START))
        for i in range(START + 1, hit + 2):
            _step(venue, broker, spy, i)
        assert _ocos(venue) == []  # nothing Alpaca could hold
        assert [(t.quantity, t.exit_reason) for t in broker.portfolio.trades] == [
            (0.75, ExitReason.TAKE_PROFIT)
        ]
        assert venue.book.positions == {}
    finally:
        client.close()


def test_a_stop_alone_rests_as_a_stop_order_and_a_bot_exit_cancels_it_first(
    venue: AlpacaServer, spy: MinuteBars
) -> None:
    exits, _hit = _levels(spy)
    client = _client(venue)
    try:
        broker = _broker(client)
        _entry(broker, 10, Bracket(stop_loss=exits.stop_loss), _bar(spy, START))
        _step(venue, broker, spy, START + 1)
        (stop,) = [o for o in venue.book.orders.values() if o.type == "stop"]
        assert (stop.qty, stop.stop_price, stop.order_class) == (10.0, exits.stop_loss, "simple")
        # the strategy closes: the stop holds the shares, so it is cancelled before the sale
        ts = _bar(spy, START + 1)[0]
        close = Order(
            broker.next_order_id(),
            "SPY",
            OrderSide.SELL,
            OrderType.MARKET,
            0.0,
            ts,
            reduce_only=True,
        )
        broker.submit_order(close, ts, _bar(spy, START + 1)[4])
        assert stop.status == "canceled"
        assert broker.order_status[close.id] is not OrderStatus.REJECTED
        _step(venue, broker, spy, START + 2)
        assert venue.book.positions == {}
        assert [t.exit_reason for t in broker.portfolio.trades] == [ExitReason.SIGNAL]
    finally:
        client.close()


def test_a_restarted_broker_finds_the_oco_order_its_dead_process_placed(
    venue: AlpacaServer, spy: MinuteBars
) -> None:
    # Arrange: the state is stored after the entry was sent; the process places the pair
    # and dies before storing again
    exits, hit = _levels(spy)
    client = _client(venue)
    try:
        broker = _broker(client)
        _entry(broker, 10, exits, _bar(spy, START))
        state = broker.export_state()
        stored = {o.id: o for queue in broker.pending.values() for o in queue}
        _step(venue, broker, spy, START + 1)
        (placed,) = _ocos(venue)
    finally:
        client.close()
    # Act: a new client (it never saw the pair) and a broker restored from the older state
    client = _client(venue)
    try:
        restarted = _broker(client)
        restarted.restore_state(state, stored)
        # what a live session does at start: the venue's view of the working orders
        assert settle_orders(restarted, ["SPY"], _bar(spy, START + 1)[0]) == 1  # the entry
        legs = {w["client_order_id"]: w["status"] for w in restarted.working_orders()}
        for i in range(START + 2, hit + 2):
            _step(venue, restarted, spy, i)
        # Assert: the pair was looked up by its legs' ids and adopted, not placed again
        assert legs == {
            f"{placed.client_order_id}-s": "accepted",  # type: ignore[attr-defined]
            f"{placed.client_order_id}-t": "accepted",  # type: ignore[attr-defined]
        }
        assert _ocos(venue) == [placed]
        paper = _paper(spy, 10, exits, hit + 1)
        assert [_key(t) for t in restarted.portfolio.trades] == [_key(t) for t in paper]
        assert venue.book.positions == {}
        assert restarted.working_orders() == []
    finally:
        client.close()


def test_a_trailing_stop_is_replaced_as_it_trails_and_fires_like_paper(
    venue: AlpacaServer, spy: MinuteBars
) -> None:
    # Arrange: a trailing stop alone (Alpaca holds it as a plain stop order, moved by
    # cancel/replace at paper's anchor: its own trailing_stop would trail inside the bar)
    exits = Bracket(trailing_stop=0.0008)
    client = _client(venue)
    try:
        broker = _broker(client)
        # Act
        _entry(broker, 10, exits, _bar(spy, START))
        working: list[int] = []
        last = START + 1
        for i in range(START + 1, START + 120):
            _step(venue, broker, spy, i)
            stops = [o for o in venue.book.orders.values() if o.type == "stop"]
            working.append(sum(o.is_open for o in stops))
            last = i
            if not broker.portfolio.positions:
                break
        # Assert: one stop working at a time, moved at least once, each id used once
        stops = [o for o in venue.book.orders.values() if o.type == "stop"]
        assert len(stops) > 1
        assert max(working) == 1
        assert len({o.client_order_id for o in stops}) == len(stops)
        assert [o.status for o in stops[:-1]] == ["canceled"] * (len(stops) - 1)
        assert stops[-1].status == "filled"
        paper = _paper(spy, 10, exits, last)
        (live,) = broker.portfolio.trades
        assert [t.exit_reason for t in paper] == [live.exit_reason] == [ExitReason.TRAILING]
        assert (live.entry_ts, live.entry_price, live.exit_ts) == (
            paper[0].entry_ts,
            paper[0].entry_price,
            paper[0].exit_ts,
        )
        assert live.exit_price == pytest.approx(paper[0].exit_price, abs=0.01)  # on the grid
        assert venue.book.positions == {}
    finally:
        client.close()


def test_a_stop_leg_fill_streamed_to_a_restarted_client_is_booked(
    venue: AlpacaServer, spy: MinuteBars
) -> None:
    # Arrange: a stop out of reach on the entry's first bars and reached later, a far target
    entry = START + 1
    floor = min(_bar(spy, entry + k)[3] for k in range(2))
    hit = next(i for i in range(entry + 2, entry + 120) if _bar(spy, i)[3] < floor - 0.02)
    top = max(_bar(spy, k)[2] for k in range(entry, hit + 1))
    exits = Bracket(stop_loss=round(floor - 0.02, 2), take_profit=round(top + 0.5, 2))
    client = _client(venue)
    try:
        broker = _broker(client)
        _entry(broker, 10, exits, _bar(spy, START))
        _step(venue, broker, spy, entry)
        assert len(_ocos(venue)) == 1
        state, portfolio = broker.export_state(), broker.portfolio
    finally:
        client.close()
    # Act: a new client that never saw the pair hears the stop leg fill on its stream before
    # the restored broker asks it anything; then the broker catches up on the bars
    client = _client(venue)
    try:
        before = _SENT_BEFORE[id(client)]
        assert venue.advance(hit - entry) == hit - entry
        wait_for(lambda: client.stream_events >= venue.events_sent - before)
        restarted = _broker(client, portfolio)
        restarted.restore_state(state, {})
        for i in range(entry + 1, hit + 1):
            ts, o, h, low, c = _bar(spy, i)
            restarted.on_bar_range("SPY", ts, o, h, low, c)
        # Assert: the leg's fill reached the broker under the leg's id and closed the trade
        (pair,) = _ocos(venue)
        assert (pair.status, pair.legs[0].status) == ("canceled", "filled")  # type: ignore[attr-defined]
        assert [t.exit_reason for t in restarted.portfolio.trades] == [ExitReason.STOP_LOSS]
        assert not restarted.portfolio.positions
        assert restarted.working_orders() == []
    finally:
        client.close()


def test_a_fraction_left_by_a_resting_exit_is_sold_after_a_restart(
    venue: AlpacaServer, spy: MinuteBars
) -> None:
    # Arrange: the oco's target fills; the process takes the fill (a housekeeping sync, no
    # price update yet), stores its state and dies before selling the fraction
    exits, hit = _levels(spy)
    client = _client(venue)
    try:
        broker = _broker(client)
        _entry(broker, 10.5, exits, _bar(spy, START))
        for i in range(START + 1, hit):
            _step(venue, broker, spy, i)
        assert venue.advance(1) == 1
        wait_for(lambda: broker.sync() > 0)
        assert broker.portfolio.positions["SPY"].quantity == pytest.approx(0.5)
        state, portfolio = broker.export_state(), broker.portfolio
    finally:
        client.close()
    # Act: restored, the next price update sells the fraction
    client = _client(venue)
    try:
        restarted = _broker(client, portfolio)
        restarted.restore_state(state, {})
        after = next(i for i in range(hit + 1, hit + 60) if _bar(spy, i)[2] < exits.take_profit)  # type: ignore[operator]
        venue.advance(after - hit - 1)  # bars that reach the target again: not used
        _step(venue, restarted, spy, after)  # a bar below the target: only the fraction's rule
        _step(venue, restarted, spy, after + 1)
        # Assert
        assert [(t.quantity, t.exit_reason) for t in restarted.portfolio.trades] == [
            (10.0, ExitReason.TAKE_PROFIT),
            (0.5, ExitReason.TAKE_PROFIT),
        ]
        assert venue.book.positions == {}
    finally:
        client.close()
