"""Sizing at send time with a cash buffer, through the venue broker and the UNMODIFIED ccxt
client against the local Binance spot venue: an all-cash buy sized at the last close is
refused by the venue when the next open is higher; with the buffer it fills, with the size
and fill the simulated broker (paper, backtest) gives on the same bars."""

from __future__ import annotations

import pytest

from tradeloop.core.instrument import Instrument
from tradeloop.core.orders import Order, OrderSide, OrderType
from tradeloop.core.portfolio import Portfolio
from tradeloop.execution.config import SimulatedBrokerConfig
from tradeloop.execution.protection import RetryPolicy
from tradeloop.execution.simulated import SimulatedBroker
from tradeloop.execution.venue_broker import VenueBroker
from tradeloop.testing.venue.trading_server import LocalBinanceExchange

from .test_venue_broker import SPOT, T0, Clock, _client, clock, exchange  # noqa: F401

MIN_MS = 60_000
FEE = 0.001  # the local venue's spot rate
BUFFER = 0.005


def _instrument() -> Instrument:
    return Instrument(SPOT, lot_size=0.00001, min_notional=5.0, taker_fee=FEE, maker_fee=FEE)


def _gap_up(ex: LocalBinanceExchange) -> tuple[int, float, float]:
    """A bar of the recording opening above a recent close by more than the amount's rounding
    and less than half the buffer (the price moved between the signal and the fill):
    (bar ms, that close, the bar's open)."""
    bars = ex.prices.bars("BTCUSDT", "spot", T0 - MIN_MS - 1, T0 + 120 * MIN_MS)
    for i, signal in enumerate(bars):
        for bar in bars[i + 1 : i + 10]:
            if 5e-4 < bar[1] / signal[4] - 1 < BUFFER / 2:
                return bar[0], signal[4], bar[1]
    raise AssertionError("the recording has no such move")


def _all_cash(broker: VenueBroker | SimulatedBroker, ms: int, close: float) -> Order:
    qty = broker.portfolio.balance / (close * (1 + FEE))  # the risk engine's all-in size
    order = Order(
        broker.next_order_id(), SPOT, OrderSide.BUY, OrderType.MARKET, qty, ms * 1_000_000
    )
    broker.submit_order(order, (ms - MIN_MS) * 1_000_000, close)
    return order


@pytest.mark.parametrize("buffer", [0.0, BUFFER])
def test_an_all_cash_buy_sized_at_the_close_and_the_cash_buffer(
    exchange: LocalBinanceExchange,  # noqa: F811 (the fixture)
    clock: Clock,  # noqa: F811
    buffer: float,
) -> None:
    # Arrange: the venue's clock in a bar that opened above the signal bar's close
    bar_ms, close, open_ = _gap_up(exchange)
    clock.ms = bar_ms
    client = _client(exchange)
    try:
        broker = VenueBroker(
            client,
            Portfolio(10_000.0),
            {SPOT: _instrument()},
            run_id="cash-buffer",
            retry=RetryPolicy(attempts=2, backoff_base_s=0.01),
            sleep=lambda _s: None,
            cash_buffer_pct=buffer,
        )
        paper = SimulatedBroker(
            Portfolio(10_000.0),
            {SPOT: _instrument()},
            "1m",
            SimulatedBrokerConfig(cash_buffer_pct=buffer),
        )
        # Act
        _all_cash(broker, bar_ms, close)
        broker.sync(bar_ms * 1_000_000)
        _all_cash(paper, bar_ms, close)
        paper.on_open(SPOT, bar_ms * 1_000_000, open_)
        # Assert
        if buffer == 0.0:  # the venue refuses what the cash cannot pay at the open
            assert [r.reason for r in broker.rejections] == ["venue_rejected"]
            assert "insufficient balance" in broker.rejections[0].detail
            assert [r.reason for r in paper.rejections] == ["insufficient_cash"]
            assert broker.portfolio.positions == paper.portfolio.positions == {}
            return
        ours, theirs = broker.portfolio.positions[SPOT], paper.portfolio.positions[SPOT]
        assert (ours.quantity, ours.entry_price) == (theirs.quantity, theirs.entry_price)
        assert ours.entry_price == open_
        assert ours.quantity == pytest.approx(
            10_000.0 * (1 - buffer) / (close * (1 + FEE)), abs=1e-5
        )
        assert broker.portfolio.balance == pytest.approx(exchange.book.balances["USDT"])
        assert broker.portfolio.balance == pytest.approx(paper.portfolio.balance, rel=1e-12)
    finally:
        client.close()
