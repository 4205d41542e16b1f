"""AlpacaClient (unmodified alpaca-py) against the local Alpaca venue replaying real SPY bars.

Every expected fill price is computed here from the recorded bars and the venue's documented
fill rule; every order sent is counted at the venue (no duplicate ever).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from tradeloop.adapters.alpaca import AlpacaClient, AlpacaClockSchedule, AlpacaConfig
from tradeloop.core.errors import ConfigError
from tradeloop.core.order_status import OrderStatus
from tradeloop.core.orders import OrderSide, OrderType, TimeInForce
from tradeloop.execution.venue import (
    OrderNotFoundError,
    OrderRejectedError,
    OrderRequest,
    RateLimitedError,
    VenueClient,
    VenueFill,
    VenueOrder,
    VenueUnavailableError,
)
from tradeloop.testing.venue.alpaca import (
    DEFAULT_KEY,
    DEFAULT_SECRET,
    AlpacaFault,
    AlpacaServer,
    MinuteBars,
    load_equity_minutes,
)

START = 400  # a bar inside the 2011-01-03 regular session
DAY_NS = 86_400 * 10**9
CLOSE_NS = 21 * 3_600 * 10**9  # XNYS closes 21:00 UTC in January


@pytest.fixture(scope="module")
def spy(shared_data: Path) -> MinuteBars:
    return load_equity_minutes(shared_data)


@pytest.fixture
def venue(spy: MinuteBars) -> Iterator[AlpacaServer]:
    with AlpacaServer([spy], start=START) as server:
        yield server


def make_client(server: AlpacaServer, **kw: object) -> AlpacaClient:
    cfg = AlpacaConfig(
        api_key=DEFAULT_KEY,
        api_secret=DEFAULT_SECRET,
        url=server.url,
        ws_url=f"ws://127.0.0.1:{server.port}",
        timeout_s=1.0,
        poll_interval_s=0.0,
        requests_per_minute=100_000,
        **kw,  # type: ignore[arg-type]
    )
    return AlpacaClient(cfg)


def wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.02)


def bar(spy: MinuteBars, i: int) -> tuple[float, float, float, float]:
    o, h, low, c, _ = (float(x) for x in spy.ohlcv[i])
    return o, h, low, c


def req(cid: str, side: OrderSide, otype: OrderType, qty: float, **kw: object) -> OrderRequest:
    return OrderRequest(cid, "SPY", side, otype, qty, **kw)  # type: ignore[arg-type]


def fills_of(updates: Sequence[object]) -> list[VenueFill]:
    return [u for u in updates if isinstance(u, VenueFill)]


def test_order_types_fill_at_the_recorded_prices(venue: AlpacaServer, spy: MinuteBars) -> None:
    client = make_client(venue)
    assert isinstance(client, VenueClient)
    venue.advance(1)  # the venue knows a price
    _o, _h, _low, c = bar(spy, START)
    # market, fractional: fills at the next bar's open
    client.place_order(req("m1", OrderSide.BUY, OrderType.MARKET, 1.5))
    # limit below the market, stop above, trailing 0.1 %, bracket entry
    lim = round(c - 0.30, 2)
    stop = round(c + 0.30, 2)
    client.place_order(req("l1", OrderSide.BUY, OrderType.LIMIT, 2, price=lim))
    client.place_order(req("s1", OrderSide.BUY, OrderType.STOP, 1, stop_price=stop))
    client.place_order(req("t1", OrderSide.SELL, OrderType.STOP, 1, trail_percent=0.001))
    br = client.place_order(
        req("b1", OrderSide.BUY, OrderType.MARKET, 3, take_profit=c + 0.5, stop_loss=c - 0.5)
    )
    assert br.status is OrderStatus.ACCEPTED
    assert venue.order_count() == 5
    # to the session's close: orders without extended hours fill only in the session
    end = int(np.searchsorted(spy.ts, spy.ts[START] // DAY_NS * DAY_NS + CLOSE_NS))
    assert end - START > 100
    venue.advance(end - START - 1)
    nxt = START + 1
    m1 = client.fetch_order("SPY", "m1")
    assert m1.status is OrderStatus.FILLED
    assert m1.filled == 1.5
    assert m1.average_price == bar(spy, nxt)[0]
    # the limit: first later bar whose low reaches it, at min(open, limit)
    expected = None
    for i in range(nxt, end):
        bo, _, bl, _ = bar(spy, i)
        if bl <= lim:
            expected = min(bo, lim)
            break
    l1 = client.fetch_order("SPY", "l1")
    if expected is None:
        assert l1.status is OrderStatus.ACCEPTED
        assert l1.filled == 0
    else:
        assert l1.status is OrderStatus.FILLED
        assert math.isclose(l1.average_price, expected)
    expected = None
    for i in range(nxt, end):
        bo, bh, _, _ = bar(spy, i)
        if bh >= stop:
            expected = max(bo, stop)
            break
    s1 = client.fetch_order("SPY", "s1")
    assert (s1.status is OrderStatus.FILLED) == (expected is not None)
    if expected is not None:
        assert math.isclose(s1.average_price, expected)
    # the bracket's entry filled at the next open; its exits are orders of their own
    b1 = client.fetch_order("SPY", "b1")
    assert b1.status is OrderStatus.FILLED
    assert b1.average_price == bar(spy, nxt)[0]
    book = venue.book
    legs = book.by_client_id["b1"].legs
    assert len(legs) == 2
    assert {leg.type for leg in legs} == {"limit", "stop"}
    assert sum(1 for leg in legs if leg.status == "filled") <= 1  # one cancels the other
    # the exits work from the bar after the entry's; a bar reaching both: the stop first
    tp, sl = c + 0.5, c - 0.5
    exit_fill = None
    for i in range(nxt + 1, end):
        bo, bh, bl, _ = bar(spy, i)
        if bl <= sl:
            exit_fill = ("stop", min(bo, sl))
            break
        if bh >= tp:
            exit_fill = ("limit", max(bo, tp))
            break
    filled_legs = [(leg.type, leg.filled_avg_price) for leg in legs if leg.status == "filled"]
    if exit_fill is None:
        assert filled_legs == []
    else:
        assert len(filled_legs) == 1
        assert filled_legs[0][0] == exit_fill[0]
        assert math.isclose(float(filled_legs[0][1] or 0.0), exit_fill[1])
    # the trailing stop: 0.1 % under the best price since it was placed, checked before
    # each bar moves that best price
    hwm, trail_fill = c, None
    for i in range(nxt, end):
        bo, bh, bl, _ = bar(spy, i)
        stop_px = hwm * (1 - 0.001)
        if bl <= stop_px:
            trail_fill = min(bo, stop_px)
            break
        hwm = max(hwm, bh)
    t1 = client.fetch_order("SPY", "t1")
    assert trail_fill is not None
    assert t1.status is OrderStatus.FILLED
    assert math.isclose(t1.average_price, trail_fill)
    # positions at the venue equal the sum of the fills it reported
    signed = sum(q if side == "buy" else -q for _, side, q, _ in book.fills)
    pos = client.positions()
    assert math.isclose(sum(p.quantity for p in pos), signed, abs_tol=1e-9)
    client.close()


def test_lost_answer_is_recovered_by_client_id_without_a_second_order(
    venue: AlpacaServer,
) -> None:
    client = make_client(venue)
    venue.advance(1)
    lost = venue.add_fault(AlpacaFault("lost", path="/v2/orders", method="POST"))
    order = client.place_order(req("tlLost1", OrderSide.BUY, OrderType.MARKET, 2))
    assert lost.fired == 1
    assert order.client_order_id == "tlLost1"
    # the broker's retry with the same id: the venue refuses a duplicate, the order comes back
    again = client.place_order(req("tlLost1", OrderSide.BUY, OrderType.MARKET, 2))
    assert again.venue_order_id == order.venue_order_id
    hang = venue.add_fault(AlpacaFault("hang", path="/v2/orders", method="POST", hang_s=1.5))
    slow = client.place_order(req("tlHang1", OrderSide.SELL, OrderType.MARKET, 1))
    assert hang.fired == 1
    assert slow.status is OrderStatus.ACCEPTED
    assert venue.order_count("tlLost1") == 1
    assert venue.order_count("tlHang1") == 1
    assert venue.order_count() == 2
    venue.advance(1)
    assert client.fetch_order("SPY", "tlLost1").status is OrderStatus.FILLED
    client.close()


def test_errors_map_to_the_venue_contract(venue: AlpacaServer) -> None:
    client = make_client(venue)
    venue.advance(1)
    venue.add_fault(AlpacaFault("status", path="/v2/account", status=503))
    with pytest.raises(VenueUnavailableError):
        client.balances()
    venue.add_fault(AlpacaFault("status", path="/v2/positions", status=429, retry_after=7))
    with pytest.raises(RateLimitedError) as info:
        client.positions()
    assert info.value.retry_after == 7.0
    assert venue.count("GET", "/v2/positions") == 1  # the library did not sleep and retry
    venue.add_fault(AlpacaFault("drop", path="/v2/clock"))
    with pytest.raises(VenueUnavailableError):
        client.market_clock()
    with pytest.raises(OrderNotFoundError):
        client.fetch_order("SPY", "never-sent")
    with pytest.raises(OrderRejectedError, match="insufficient buying power"):
        client.place_order(req("big", OrderSide.BUY, OrderType.MARKET, 100_000))
    with pytest.raises(OrderRejectedError, match="fractional"):
        client.place_order(req("fr", OrderSide.SELL, OrderType.MARKET, 0.5))
    with pytest.raises(ConfigError, match="NOPE"):
        client.market_rules("NOPE")
    bad = AlpacaClient(
        AlpacaConfig(
            api_key=DEFAULT_KEY, api_secret="wrong", url=venue.url, requests_per_minute=100_000
        )
    )
    with pytest.raises(ConfigError, match="401") as err:
        bad.balances()
    assert "wrong" not in str(err.value)
    assert "wrong" not in repr(bad.config)
    assert venue.order_count() == 0
    client.close()


def test_partial_fills_and_async_reject_through_the_stream(spy: MinuteBars) -> None:
    with AlpacaServer([spy], start=START, fill_parts=3) as venue:
        client = make_client(venue)
        client.start_stream()
        wait_for(lambda: client.stream_connected and venue.trade_listeners == 1)
        venue.advance(1)
        client.place_order(req("p1", OrderSide.BUY, OrderType.MARKET, 3.3))
        venue.reject_next("symbol halted")
        client.place_order(req("r1", OrderSide.BUY, OrderType.MARKET, 1))
        venue.advance(1)
        updates: list[object] = []

        def p1_filled() -> bool:
            updates.extend(client.drain_updates())
            return any(
                isinstance(u, VenueOrder) and u.status is OrderStatus.FILLED for u in updates
            )

        wait_for(p1_filled)
        fills = fills_of(updates)
        assert len(fills) == 3
        assert len({f.trade_id for f in fills}) == 3
        assert math.isclose(sum(f.amount for f in fills), 3.3)
        assert all(f.price == bar(spy, START + 1)[0] for f in fills)
        statuses = [
            u.status for u in updates if isinstance(u, VenueOrder) and u.client_order_id == "p1"
        ]
        assert statuses[-1] is OrderStatus.FILLED
        assert OrderStatus.PARTIALLY_FILLED in statuses
        rejected = [u for u in updates if isinstance(u, VenueOrder) and u.client_order_id == "r1"]
        assert rejected[-1].status is OrderStatus.REJECTED
        assert rejected[-1].reason  # alpaca-py keeps no reason text: a generic one
        assert venue.events_lost == 0
        client.close()


def test_stream_drop_falls_back_to_rest_and_counts_each_fill_once(
    venue: AlpacaServer, spy: MinuteBars
) -> None:
    client = make_client(venue)
    client.start_stream()
    wait_for(lambda: client.stream_connected and venue.trade_listeners == 1)
    venue.advance(1)
    client.drain_updates()
    venue.drop_streams(trade=True, refuse=1000)  # down for the rest of the test
    wait_for(lambda: not client.stream_connected)
    client.drain_updates()
    for k in range(5):
        client.place_order(req(f"d{k}", OrderSide.BUY, OrderType.MARKET, 1 + k / 4))
        venue.advance(1)
    assert venue.events_lost > 0  # nobody listened: lost, as at Alpaca
    fills = fills_of(client.drain_updates(["SPY"])) + fills_of(client.drain_updates(["SPY"]))
    assert client.polls >= 1
    assert sorted(f.client_order_id for f in fills) == [f"d{k}" for k in range(5)]
    assert math.isclose(sum(f.amount for f in fills), sum(1 + k / 4 for k in range(5)))
    for k, f in enumerate(sorted(fills, key=lambda f: f.client_order_id)):
        assert math.isclose(f.price, bar(spy, START + 1 + k)[0])
    # a position changed outside the bot shows in the venue's positions
    venue.adjust_position("SPY", -1.0)
    pos = {p.symbol: p.quantity for p in client.positions()}
    assert math.isclose(pos["SPY"], sum(1 + k / 4 for k in range(5)) - 1.0)
    client.close()


def test_market_clock_opens_and_closes_the_session(venue: AlpacaServer) -> None:
    client = make_client(venue)
    schedule = AlpacaClockSchedule(client, min_refresh_s=0.0)
    states: list[bool] = []
    for _ in range(700):  # past the 2011-01-03 close, into the next session
        if not venue.advance(1):
            break
        states.append(schedule.is_open(venue.published[-1][1]))
    changes = [i for i in range(1, len(states)) if states[i] != states[i - 1]]
    assert states[0] is True
    assert len(changes) == 2  # closes on Jan 3, opens again on Jan 4
    close_ts = venue.published[changes[0]][1]
    open_ts = venue.published[changes[1]][1]
    assert time.strftime("%d %H:%M", time.gmtime(close_ts / 1e9)) == "03 21:00"  # XNYS
    assert time.strftime("%d %H:%M", time.gmtime(open_ts / 1e9)) == "04 14:30"
    assert not any(states[changes[0] : changes[1]])  # extended hours are outside
    assert schedule.next_open(close_ts) > close_ts
    assert schedule.refreshes < len(states) / 10  # asks the clock only at boundaries
    client.close()


def test_missing_keys_are_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="TRADELOOP_ALPACA_API_KEY"):
        AlpacaConfig(api_key="", api_secret="")
    assert TimeInForce.DAY.value == "day"


def test_day_orders_expire_at_the_close_and_late_orders_wait_for_the_open(
    spy: MinuteBars,
) -> None:
    import pandas as pd

    close = pd.Timestamp("2011-01-03T21:00Z").value
    reopen = pd.Timestamp("2011-01-04T14:30Z").value
    start = int((spy.ts < close - 5 * 60_000_000_000).sum())  # the 20:55 bar
    with AlpacaServer([spy], start=start) as venue:
        client = make_client(venue)
        venue.advance(1)
        low_bid = round(float(spy.ohlcv[start][3]) - 5.0, 2)
        client.place_order(
            req("dayLimit", OrderSide.BUY, OrderType.LIMIT, 1, price=low_bid,
                time_in_force=TimeInForce.DAY)
        )  # fmt: skip
        while venue.now_ns < close:  # publish up to and including the 20:59 bar
            venue.advance(1)
        assert client.fetch_order("SPY", "dayLimit").status is OrderStatus.ACCEPTED
        client.place_order(req("late", OrderSide.BUY, OrderType.MARKET, 0.5))  # a day order
        after_hours = 0
        while venue.published[-1][1] < reopen:
            venue.advance(1)
            after_hours += 1
        assert after_hours > 1  # post- and pre-market bars went by without filling it
        assert client.fetch_order("SPY", "dayLimit").status is OrderStatus.EXPIRED
        late = client.fetch_order("SPY", "late")
        assert late.status is OrderStatus.FILLED
        first_bar = int(np.searchsorted(spy.ts, reopen))
        assert late.average_price == float(spy.ohlcv[first_bar][0])
        client.close()


def test_historical_bars_page_through_and_never_show_the_future(spy: MinuteBars) -> None:
    from tradeloop.adapters.alpaca import AlpacaMarketData

    start = 3_000
    with AlpacaServer([spy], start=start, max_page=700) as venue:
        cfg = AlpacaConfig(
            api_key=DEFAULT_KEY,
            api_secret=DEFAULT_SECRET,
            url=venue.url,
            requests_per_minute=50_000,
        )
        data = AlpacaMarketData(cfg)
        lo, hi = int(spy.ts[500]), int(spy.ts[start + 50])
        bars = data.closed_bars("SPY", "1m", lo, hi)
        # every recorded bar of the range that the venue has published, in order, once
        assert [b[0] for b in bars] == [int(t) for t in spy.ts[500:start]]
        assert bars[0][1:5] == tuple(float(x) for x in spy.ohlcv[500][:4])
        assert venue.count("GET", "/v2/stocks/bars") == math.ceil((start - 500) / 700)
        venue.advance(10)
        more = data.closed_bars("SPY", "1m", lo, hi)
        assert len(more) == len(bars) + 10
        instruments = data.instruments(["SPY"])
        assert instruments["SPY"].lot_size == 1e-9
        assert instruments["SPY"].min_notional == 1.0
        with pytest.raises(ConfigError, match="1m"):
            data.closed_bars("SPY", "5m", lo, hi)
        # one REST budget per account: orders, account calls and bars all draw from it
        budget = cfg.budget()
        assert data.client.budget is budget
        assert budget.used == venue.count("GET", "") + venue.count("POST", "")


def test_flatten_cancels_the_bracket_exits_and_closes_the_position(
    venue: AlpacaServer, spy: MinuteBars
) -> None:
    from tradeloop.execution.flatten import flatten_account

    client = make_client(venue)
    venue.advance(1)
    c = bar(spy, START)[3]
    client.place_order(
        req("bk", OrderSide.BUY, OrderType.MARKET, 4, take_profit=c + 5, stop_loss=c - 5)
    )
    venue.advance(1)  # the entry fills; its two exits now work at the venue
    exits = client.open_orders("SPY")
    assert sorted(o.type.value for o in exits) == ["limit", "stop"]
    assert all(o.side is OrderSide.SELL and o.amount == 4 for o in exits)
    result = flatten_account(client, ["SPY"], tag="t1")
    assert (result.cancelled, result.closing, result.errors) == (2, 1, [])
    venue.advance(1)
    assert client.positions() == []
    assert client.open_orders() == []
    assert client.fetch_order("SPY", "tlflatt1x1").status is OrderStatus.FILLED
    client.close()
