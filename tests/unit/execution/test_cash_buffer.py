"""The cash buffer: buy entries sized at the last price to leave a fraction of the cash
unspent, so a higher next open still pays for them (paper and backtest; the venue broker's
rule is checked against the local venue in tests/integration/test_venue_resting_exits_spot.py).
Every number is worked out by hand."""

from __future__ import annotations

import pytest

from tradeloop.core.errors import ConfigError
from tradeloop.core.instrument import Instrument
from tradeloop.core.orders import Order, OrderSide, OrderType
from tradeloop.core.portfolio import Portfolio
from tradeloop.execution.config import SimulatedBrokerConfig
from tradeloop.execution.simulated import SimulatedBroker

SYM = "BTC/USDT"
T = 1_700_000_000_000_000_000


def _buy_all_cash(buffer: float, close: float, next_open: float) -> SimulatedBroker:
    broker = SimulatedBroker(
        Portfolio(10_000.0),
        {SYM: Instrument(SYM, taker_fee=0.0)},
        "1m",
        SimulatedBrokerConfig(cash_buffer_pct=buffer),
    )
    broker.order_status = {}
    qty = 10_000.0 / close  # the risk engine's size: all the cash at the signal bar's close
    order = Order(broker.next_order_id(), SYM, OrderSide.BUY, OrderType.MARKET, qty, T)
    broker.submit_order(order, T, close)
    broker.on_open(SYM, T + 60_000_000_000, next_open)
    return broker


def test_without_a_buffer_an_all_cash_buy_is_refused_when_the_next_open_is_higher() -> None:
    broker = _buy_all_cash(0.0, 100.0, 100.2)
    assert broker.portfolio.positions == {}
    assert [r.reason for r in broker.rejections] == ["insufficient_cash"]


def test_a_buffer_sizes_the_buy_at_the_close_so_the_higher_open_pays_for_it() -> None:
    # 10 000 * (1 - 0.005) / 100 = 99.5 units; at the open 100.2 they cost 9 969.9
    broker = _buy_all_cash(0.005, 100.0, 100.2)
    pos = broker.portfolio.positions[SYM]
    assert pos.quantity == pytest.approx(99.5)
    assert pos.entry_price == 100.2
    assert broker.portfolio.balance == pytest.approx(10_000.0 - 99.5 * 100.2)
    assert broker.rejections == []


def test_a_buy_the_buffer_already_leaves_room_for_keeps_its_size() -> None:
    broker = SimulatedBroker(
        Portfolio(10_000.0),
        {SYM: Instrument(SYM)},
        "1m",
        SimulatedBrokerConfig(cash_buffer_pct=0.005),
    )
    order = Order(broker.next_order_id(), SYM, OrderSide.BUY, OrderType.MARKET, 10.0, T)
    broker.submit_order(order, T, 100.0)
    broker.on_open(SYM, T + 60_000_000_000, 101.0)
    assert broker.portfolio.positions[SYM].quantity == 10.0


def test_a_buffer_out_of_range_is_refused_naming_the_setting() -> None:
    with pytest.raises(ConfigError, match="cash_buffer_pct"):
        SimulatedBrokerConfig(cash_buffer_pct=0.7)
