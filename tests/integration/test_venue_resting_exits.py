"""Stops and targets resting at the venue (USD-M perpetuals) through the venue broker and the
UNMODIFIED ccxt client against the local Binance venue (Algo Service conditional orders,
signed REST, recorded real prices).

A position opened with a stop-loss / take-profit gets reduce-only STOP_MARKET /
TAKE_PROFIT_MARKET orders at the venue; the one that fills closes the position with paper's
fill, and its sibling is cancelled; a trailing stop is amended by cancel/replace as the anchor
moves; a stop that fires while the bot is dead closes the position exactly once on restart,
and a restarted bot finds its resting orders by client id instead of placing them twice."""

from __future__ import annotations

from collections import Counter

import pytest

from tradeloop.adapters.ccxt.broker import CcxtVenueClient
from tradeloop.core.instrument import Instrument
from tradeloop.core.orders import Bracket, Order, OrderSide, OrderType
from tradeloop.core.portfolio import Portfolio
from tradeloop.core.position import ExitReason, Trade
from tradeloop.execution.protection import RetryPolicy
from tradeloop.execution.reconcile import reconcile
from tradeloop.execution.simulated import SimulatedBroker
from tradeloop.execution.venue_broker import VenueBroker, run_key
from tradeloop.testing.venue.trading_server import LocalBinanceExchange, TradingFault

from .test_venue_broker import PERP, T0, Clock, _client, clock, exchange  # noqa: F401

MIN_MS = 60_000
SID = "BTCUSDT"
TAKER, MAKER = 0.0005, 0.0002  # the local venue's USD-M rates
QTY = 0.01


def _instrument() -> Instrument:
    return Instrument(PERP, lot_size=0.001, min_notional=5.0, taker_fee=TAKER, maker_fee=MAKER)


def _broker(client: CcxtVenueClient, portfolio: Portfolio | None = None) -> VenueBroker:
    return VenueBroker(
        client,
        portfolio or Portfolio(10_000.0),
        {PERP: _instrument()},
        run_id="resting",
        retry=RetryPolicy(attempts=3, backoff_base_s=0.01),
        sleep=lambda _s: None,
    )


def _bars(ex: LocalBinanceExchange, n: int) -> list[tuple[int, float, float, float, float]]:
    return ex.prices.bars(SID, "linear", T0 - 1, T0 + (n - 1) * MIN_MS)


def _entry(broker: VenueBroker | SimulatedBroker, exits: Bracket, price: float) -> Order:
    order = Order(
        broker.next_order_id(),
        PERP,
        OrderSide.BUY,
        OrderType.MARKET,
        QTY,
        (T0 - MIN_MS) * 1_000_000,
        exits=exits,
    )
    broker.submit_order(order, (T0 - MIN_MS) * 1_000_000, price)
    return order


def _paper(bars: list[tuple[int, float, float, float, float]], exits: Bracket) -> list[Trade]:
    """The simulated broker (paper, backtest) on the same bars: the peer."""
    sim = SimulatedBroker(Portfolio(10_000.0), {PERP: _instrument()}, "1m")
    _entry(sim, exits, bars[0][1])
    for ms, o, h, low, c in bars:
        if sim.pending:
            sim.on_open(PERP, ms * 1_000_000, o)
        sim.on_bar_range(PERP, ms * 1_000_000, o, h, low, c)
    return sim.portfolio.trades


def _live(
    broker: VenueBroker,
    clock: Clock,  # noqa: F811 (the fixture's type)
    bars: list[tuple[int, float, float, float, float]],
    on_bar: object = None,
) -> None:
    """Drive the broker as the kernel does: each bar's range once the venue's clock is in the
    next bar."""
    for ms, o, h, low, c in bars:
        clock.ms = ms + MIN_MS
        broker.on_bar_range(PERP, ms * 1_000_000, o, h, low, c)
        if callable(on_bar):
            on_bar()


def _key(t: Trade) -> tuple[object, ...]:
    return (t.direction, t.quantity, t.entry_ts, t.entry_price, t.exit_ts, t.exit_reason)


def test_a_stop_and_target_rest_at_the_venue_and_the_stop_fills_like_paper(
    exchange: LocalBinanceExchange,  # noqa: F811 (the fixture)
    clock: Clock,  # noqa: F811
) -> None:
    # Arrange: a stop a little under the entry (reached a few bars later), a far target
    client = _client(exchange, "perp")
    try:
        broker = _broker(client)
        bars = _bars(exchange, 30)
        entry_px = bars[0][1]
        exits = Bracket(
            stop_loss=round(entry_px * 0.9998, 1), take_profit=round(entry_px * 1.01, 1)
        )
        # Act
        _entry(broker, exits, entry_px)
        placed = [(a.type, a.side, a.reduce_only, a.trigger, a.status) for a in exchange.book.algos]
        _live(broker, clock, bars)
        # Assert: both rested at the venue as reduce-only conditional orders
        assert placed == [
            ("STOP_MARKET", "SELL", True, exits.stop_loss, "NEW"),
            ("TAKE_PROFIT_MARKET", "SELL", True, exits.take_profit, "NEW"),
        ]
        paper = _paper(bars, exits)
        live = broker.portfolio.trades
        assert len(paper) == 1
        assert [_key(t) for t in live] == [_key(t) for t in paper]
        assert live[0].exit_reason is ExitReason.STOP_LOSS
        assert live[0].exit_price == paper[0].exit_price == exits.stop_loss
        assert live[0].exit_fee == pytest.approx(paper[0].exit_fee, rel=1e-9)
        assert broker.portfolio.positions == {}
        # the stop filled once, its sibling was cancelled, no market exit was sent
        stop, target = exchange.book.algos
        assert (stop.status, target.status) == ("FINISHED", "CANCELED")
        assert [o.orig_type or o.type for o in exchange.book.orders] == ["MARKET", "STOP_MARKET"]
        assert exchange.book.positions_json(SID)[0]["positionAmt"] in ("0", "0.0", "0.00000000")
        assert broker.portfolio.balance == pytest.approx(exchange.book.futures_wallet, rel=1e-12)
        key = run_key("resting")
        assert [a.client_id for a in exchange.book.algos] == [f"tl{key}p1", f"tl{key}p2"]
    finally:
        client.close()


def test_a_trailing_stop_is_amended_by_cancel_replace_without_duplicates(
    exchange: LocalBinanceExchange,  # noqa: F811
    clock: Clock,  # noqa: F811
) -> None:
    # Arrange: a 0.05 % trailing stop that follows the rise of the recorded bars
    client = _client(exchange, "perp")
    try:
        broker = _broker(client)
        bars = _bars(exchange, 40)
        exits = Bracket(trailing_stop=0.0005)
        working: list[int] = []

        def count_working() -> None:
            working.append(sum(1 for a in exchange.book.algos if a.is_open))

        # Act
        _entry(broker, exits, bars[0][1])
        _live(broker, clock, bars, count_working)
        # Assert: never two stops working at once, every client id used once
        algos = exchange.book.algos
        assert len(algos) >= 3, "the anchor moved: the stop was replaced"
        assert max(working) == 1
        ids = [a.client_id for a in algos]
        assert Counter(ids).most_common(1)[0][1] == 1
        assert [a.status for a in algos[:-1]] == ["CANCELED"] * (len(algos) - 1)
        triggers = [a.trigger for a in algos]
        assert triggers == sorted(triggers)  # a long's trailing stop only moves up
        paper = _paper(bars, exits)
        live = broker.portfolio.trades
        assert len(paper) == 1
        assert algos[-1].status == "FINISHED"
        assert [_key(t) for t in live] == [_key(t) for t in paper]
        assert live[0].exit_reason is ExitReason.TRAILING
        # the venue's stop sits on its price tick: within one tick of paper's level
        tick = client.market_rules(PERP).price_step
        assert live[0].exit_price == pytest.approx(paper[0].exit_price, abs=tick)
    finally:
        client.close()


def test_a_stop_that_fires_while_the_bot_is_dead_is_adopted_once_on_restart(
    exchange: LocalBinanceExchange,  # noqa: F811
    clock: Clock,  # noqa: F811
) -> None:
    # Arrange: a protected position, its state stored; then the bot dies
    bars = _bars(exchange, 30)
    exits = Bracket(
        stop_loss=round(bars[0][1] * 0.9998, 1), take_profit=round(bars[0][1] * 1.01, 1)
    )
    client = _client(exchange, "perp")
    broker = _broker(client)
    _entry(broker, exits, bars[0][1])
    broker.sync(T0 * 1_000_000)  # the step's open books the entry fill; the state is stored
    state = broker.export_state()
    positions = dict(broker.portfolio.positions)
    balance = broker.portfolio.balance
    assert positions
    client.close()
    # Act 1: the price moves through the stop at the venue while nobody is watching
    clock.ms = bars[-1][0]
    exchange.book.advance()
    fired = exchange.book.algos[0]
    assert fired.status == "FINISHED"
    orders_before = len(exchange.book.orders)
    # Act 2: restart from the stored state, reconcile with the venue, then replay the bars
    client = _client(exchange, "perp")
    try:
        portfolio = Portfolio(10_000.0)
        portfolio.balance = balance
        portfolio.positions.update(positions)
        restarted = _broker(client, portfolio)
        restarted.restore_state(state, {})
        report = reconcile(restarted, [PERP], clock.ms * 1_000_000)
        _live(restarted, clock, bars[-3:])
        # Assert: closed once by the venue's stop, recorded with its trade; nothing re-sent
        assert report.differences == []
        assert portfolio.positions == {}
        (trade,) = portfolio.trades
        venue_fill = next(t for t in exchange.book.trades if t.order_id == fired.actual_order_id)
        assert (trade.exit_reason, trade.exit_price) == (ExitReason.STOP_LOSS, venue_fill.price)
        assert trade.exit_ts == venue_fill.time_ms * 1_000_000
        assert len(exchange.book.orders) == orders_before  # no duplicate exit
        assert [a.status for a in exchange.book.algos] == ["FINISHED", "CANCELED"]
        assert len(exchange.book.algos) == 2  # no protection placed again
        assert portfolio.balance == pytest.approx(exchange.book.futures_wallet, rel=1e-12)
    finally:
        client.close()


def test_a_restart_finds_resting_orders_by_client_id_instead_of_placing_them_twice(
    exchange: LocalBinanceExchange,  # noqa: F811
    clock: Clock,  # noqa: F811
) -> None:
    # Arrange: the bot placed its protection, then died before storing that it did
    bars = _bars(exchange, 3)
    exits = Bracket(stop_loss=round(bars[0][1] * 0.99, 1), take_profit=round(bars[0][1] * 1.01, 1))
    client = _client(exchange, "perp")
    broker = _broker(client)
    _entry(broker, exits, bars[0][1])
    broker.sync(T0 * 1_000_000)
    state = broker.export_state()
    client.close()
    assert len(exchange.book.algos) == 2
    lost = {
        **state,
        "protect_seq": 0,
        "working": [w for w in state["working"] if "order" not in w],  # type: ignore[attr-defined]
    }
    positions = dict(broker.portfolio.positions)
    # Act: restart from the state without them
    client = _client(exchange, "perp")
    try:
        portfolio = Portfolio(10_000.0)
        portfolio.positions.update(positions)
        restarted = _broker(client, portfolio)
        restarted.restore_state(lost, {})
        restarted.sync(clock.ms * 1_000_000)
        # Assert: the same two orders, found by client id and tracked again
        assert len(exchange.book.algos) == 2
        assert [a.status for a in exchange.book.algos] == ["NEW", "NEW"]
        tracked = {w["client_order_id"] for w in restarted.working_orders()}
        assert tracked == {a.client_id for a in exchange.book.algos}
        assert exchange.count("/fapi/v1/algoOrder", "POST") == 2
    finally:
        client.close()


def test_a_refused_resting_stop_is_watched_by_the_bot_and_alerted(
    exchange: LocalBinanceExchange,  # noqa: F811
    clock: Clock,  # noqa: F811
) -> None:
    # Arrange: the venue refuses every conditional order
    exchange.add_fault(TradingFault("reject", "/fapi/v1/algoOrder", "POST", times=-1))
    client = _client(exchange, "perp")
    alerts: list[tuple[str, str]] = []
    try:
        broker = _broker(client)
        broker._alert = lambda title, text: alerts.append((title, text))
        bars = _bars(exchange, 30)
        exits = Bracket(stop_loss=round(bars[0][1] * 0.9998, 1))
        # Act
        _entry(broker, exits, bars[0][1])
        _live(broker, clock, bars)
        # Assert: refused once (not re-sent every bar), alerted, and the bot closed the position
        # with a reduce-only market order when a bar reached the stop
        assert exchange.book.algos == []
        assert exchange.count("/fapi/v1/algoOrder", "POST") == 1
        assert [title for title, _ in alerts] == ["protective order refused"]
        (trade,) = broker.portfolio.trades
        assert trade.exit_reason is ExitReason.STOP_LOSS
        paper = _paper(bars, exits)
        assert trade.exit_ts > paper[0].exit_ts  # the next bar's open: later than the venue's
        exit_order = exchange.book.orders[-1]
        assert (exit_order.type, exit_order.side, exit_order.reduce_only) == (
            "MARKET",
            "SELL",
            True,
        )
        assert broker.portfolio.positions == {}
    finally:
        client.close()


@pytest.mark.parametrize(
    ("kind", "fee_rate"), [("take_profit", MAKER), ("stop_loss", TAKER)], ids=["target", "stop"]
)
def test_a_level_the_price_gaps_through_fills_at_the_open_with_paper_s_fee(
    exchange: LocalBinanceExchange,  # noqa: F811 (the fixture)
    clock: Clock,  # noqa: F811
    kind: str,
    fee_rate: float,
) -> None:
    """A bar opening through a resting level fills it at the open in backtest, paper and live
    alike; a target is a resting limit (the maker fee), a stop a market order once triggered
    (the taker fee)."""
    # Arrange: the first bar of the recording opening beyond the previous bar's range (up for
    # a long's target, down for its stop) by more than a tick; the level inside that gap
    bars = exchange.prices.bars(SID, "linear", T0 - 1, T0 + 1_000 * MIN_MS)
    up = kind == "take_profit"
    i = next(
        k
        for k in range(1, len(bars))
        if (bars[k][1] > bars[k - 1][2] + 0.15 if up else bars[k][1] < bars[k - 1][3] - 0.15)
    )
    window = bars[i - 1 : i + 2]
    entry_px = window[0][1]
    level = round(window[0][2] + 0.1, 1) if up else round(window[0][3] - 0.1, 1)
    far = round(entry_px * (0.99 if up else 1.01), 1)
    exits = (
        Bracket(stop_loss=far, take_profit=level)
        if up
        else Bracket(stop_loss=level, take_profit=far)
    )
    gap_open = window[1][1]
    client = _client(exchange, "perp")
    try:
        broker = _broker(client)
        clock.ms = window[0][0]
        ts = (window[0][0] - MIN_MS) * 1_000_000
        order = Order(
            broker.next_order_id(), PERP, OrderSide.BUY, OrderType.MARKET, QTY, ts, exits=exits
        )
        # Act
        broker.submit_order(order, ts, entry_px)
        _live(broker, clock, window)
        sim = SimulatedBroker(Portfolio(10_000.0), {PERP: _instrument()}, "1m")
        sim.submit_order(
            Order(sim.next_order_id(), PERP, OrderSide.BUY, OrderType.MARKET, QTY, ts, exits=exits),
            ts,
            entry_px,
        )
        for ms, o, h, low, c in window:
            if sim.pending:
                sim.on_open(PERP, ms * 1_000_000, o)
            sim.on_bar_range(PERP, ms * 1_000_000, o, h, low, c)
        # Assert: filled at the gap's open, not the level; the fee by the order's kind
        (live,) = broker.portfolio.trades
        (paper,) = sim.portfolio.trades
        assert live.exit_reason == paper.exit_reason == ExitReason(kind)
        assert live.exit_ts == paper.exit_ts == window[1][0] * 1_000_000
        assert live.exit_price == paper.exit_price == gap_open
        assert gap_open != level
        assert paper.exit_fee == pytest.approx(QTY * gap_open * fee_rate, rel=1e-9)
        assert live.exit_fee == pytest.approx(paper.exit_fee, rel=1e-9)
    finally:
        client.close()
