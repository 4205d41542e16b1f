"""The simulated broker's fill path: the taker rate per symbol (fixed rates looked up once,
a tiered schedule asked at every fill) and the fill ledger the equity curve is built from.
Every expected number is worked out by hand below."""

from __future__ import annotations

import pytest

from tradeloop.core.instrument import Instrument
from tradeloop.core.orders import Order, OrderSide, OrderType
from tradeloop.core.portfolio import Portfolio
from tradeloop.core.signal import Signal
from tradeloop.execution.config import FillPrice, SimulatedBrokerConfig
from tradeloop.execution.fees import FeeModel, FeeSchedule
from tradeloop.execution.simulated import SimulatedBroker

T = 1_700_000_000_000_000_000


def _broker(fees: FeeModel | None = None, **instruments: Instrument) -> SimulatedBroker:
    """A broker filling at the price it is given (close mode), 10,000 cash."""
    return SimulatedBroker(
        Portfolio(10_000.0),
        dict(instruments),
        "1h",
        SimulatedBrokerConfig(fill_price=FillPrice.CLOSE),
        fees=fees,
    )


def _buy(broker: SimulatedBroker, symbol: str, quantity: float, price: float) -> None:
    order = Order(0, symbol, OrderSide.BUY, OrderType.MARKET, quantity, T)
    broker.submit_order(order, T, price)


def _sell_all(broker: SimulatedBroker, symbol: str, price: float) -> None:
    broker.submit(Signal.close(symbol), T, price)


def test_fixed_taker_rates_charged_per_symbol() -> None:
    # Arrange: two symbols with their own taker rates (no schedule)
    broker = _broker(
        A=Instrument("A", taker_fee=0.001, maker_fee=0.0),
        B=Instrument("B", taker_fee=0.004, maker_fee=0.0),
    )
    # Act: 2 A at 100, 1 B at 50, then each again (the rate now comes from the lookup)
    broker.step = 0
    _buy(broker, "A", 2.0, 100.0)
    _buy(broker, "B", 1.0, 50.0)
    _sell_all(broker, "A", 100.0)
    _sell_all(broker, "B", 50.0)
    _buy(broker, "A", 1.0, 200.0)
    _buy(broker, "B", 4.0, 25.0)
    # Assert: fee = rate * quantity * price
    fees = [f.fee for f in broker.fills()]
    assert fees == pytest.approx([0.2, 0.2, 0.2, 0.2, 0.2, 0.4], rel=1e-12)
    assert [f.reason for f in broker.fills()] == ["entry", "entry", "signal", "signal"] + [
        "entry"
    ] * 2


def test_tiered_schedule_rate_follows_the_volume_at_each_fill() -> None:
    # Arrange: taker 0.2% below 1,000 of 30-day volume, 0.1% from 1,000 on
    schedule = FeeSchedule("demo", ((0.0, 0.001, 0.002), (1_000.0, 0.0005, 0.001)))
    inst = {"A": Instrument("A")}
    broker = _broker(FeeModel(schedule, inst), **inst)
    broker.step = 0
    # Act: a 600 buy (tier 0), a 600 sell (volume 600 before it: tier 0), a 100 buy (1,200)
    _buy(broker, "A", 6.0, 100.0)
    _sell_all(broker, "A", 100.0)
    _buy(broker, "A", 1.0, 100.0)
    # Assert: 1.2, 1.2, then the lower tier's 0.1
    assert [f.fee for f in broker.fills()] == pytest.approx([1.2, 1.2, 0.1], rel=1e-12)


def test_ledger_one_entry_per_step_last_fill_wins_per_symbol() -> None:
    # Arrange: no fees, so cash moves by the notional only
    broker = _broker(A=Instrument("A"), B=Instrument("B"))
    # Act: step 3 buys 2 A at 100; step 5 sells A at 110 and buys 1 A at 110 again (two
    # fills in one step) and buys 3 B at 10; step 9 sells B at 20
    broker.step = 3
    _buy(broker, "A", 2.0, 100.0)
    broker.step = 5
    _sell_all(broker, "A", 110.0)
    _buy(broker, "A", 1.0, 110.0)
    _buy(broker, "B", 3.0, 10.0)
    broker.step = 9
    _sell_all(broker, "B", 20.0)
    # Assert: cash 10,000 - 200 = 9,800; + 220 - 110 - 30 = 9,880; + 60 = 9,940
    ledger = broker.ledger
    assert ledger.steps == [3, 5, 9]
    assert ledger.cash == pytest.approx([9_800.0, 9_880.0, 9_940.0], rel=1e-15)
    assert ledger.qty == {"A": ([3, 5], [2.0, 1.0]), "B": ([5, 9], [3.0, 0.0])}
