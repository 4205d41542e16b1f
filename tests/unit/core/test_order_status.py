"""The order state machine: the table's shape, refused moves, and the paper kernel using it."""

from __future__ import annotations

import logging
from collections import deque
from pathlib import Path

import pytest

from tradeloop.core.order_status import (
    FINAL_STATUSES,
    OPEN_STATUSES,
    TRANSITIONS,
    InvalidTransitionError,
    OrderStatus,
    check_transition,
)
from tradeloop.data.loader import load_ohlcv
from tradeloop.engine.config import RunConfig
from tradeloop.engine.live import LiveKernel
from tradeloop.strategy.examples.sma_cross import SmaCross
from tradeloop.testing.kernels import bar_row, stream_bars, test_instrument


def test_every_status_has_a_row_and_every_open_status_can_end() -> None:
    assert set(TRANSITIONS) == set(OrderStatus)
    assert {
        OrderStatus.FILLED,
        OrderStatus.CANCELLED,
        OrderStatus.REJECTED,
        OrderStatus.EXPIRED,
    } == FINAL_STATUSES
    for start in OrderStatus:
        seen, todo = {start}, deque([start])
        while todo:  # breadth-first over the table
            for nxt in TRANSITIONS[todo.popleft()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        assert seen & FINAL_STATUSES, f"{start} can never end"
    assert OPEN_STATUSES.isdisjoint(FINAL_STATUSES)


@pytest.mark.parametrize(
    ("current", "new"),
    [
        ("new", "submitted"),
        ("submitted", "accepted"),
        ("accepted", "partially_filled"),
        ("partially_filled", "partially_filled"),
        ("partially_filled", "filled"),
        ("submitted", "filled"),
        ("accepted", "cancelled"),
        ("submitted", "expired"),
        ("filled", "filled"),  # a repeated report is a no-op
    ],
)
def test_allowed_moves(current: str, new: str) -> None:
    assert check_transition(1, current, new) == OrderStatus(new)


@pytest.mark.parametrize(
    ("current", "new"),
    [
        ("filled", "cancelled"),
        ("cancelled", "filled"),
        ("rejected", "submitted"),
        ("partially_filled", "accepted"),
        ("partially_filled", "rejected"),
        ("new", "filled"),
        ("submitted", "new"),
        ("submitted", "done"),  # not a status at all
    ],
)
def test_impossible_moves_are_errors_naming_the_order(current: str, new: str) -> None:
    with pytest.raises(InvalidTransitionError, match=f"order 42: {current} -> {new}"):
        check_transition(42, current, new)


def test_the_paper_kernel_refuses_an_impossible_report_and_keeps_the_status(
    shared_data: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Arrange: run until an order has filled
    bars = load_ohlcv(shared_data / "crypto_1m/binance_spot_2025/BTC_USDT-1m.feather").bars
    bars = bars.slice(0, 1_500)
    sym = bars.symbol
    kernel = LiveKernel(
        SmaCross(fast=5, slow=20),
        {sym: test_instrument(sym)},
        "1m",
        RunConfig(trade_start=int(bars.ts[300])),
    )
    kernel.warm_up({sym: [bar_row(bars, i) for i in range(300)]})
    stream_bars(kernel, {sym: bars}, 300, 1_400)
    filled = [o for o in kernel._orders.values() if o.status == OrderStatus.FILLED]
    assert filled
    victim = filled[0].order.id
    # Act: a late report says the filled order was cancelled
    assert kernel.broker.order_status is not None
    kernel.broker.order_status[victim] = OrderStatus.CANCELLED
    with caplog.at_level(logging.ERROR):
        stream_bars(kernel, {sym: bars}, 1_400, 1_401)
    # Assert
    assert kernel._orders[victim].status == OrderStatus.FILLED
    assert kernel.invalid_transitions == 1
    assert f"order {victim}: filled -> cancelled" in caplog.text


def test_flatten_cancels_waiting_orders_with_a_status(shared_data: Path) -> None:
    # Arrange: an order waits for the next open
    bars = load_ohlcv(shared_data / "crypto_1m/binance_spot_2025/BTC_USDT-1m.feather").bars
    sym = bars.symbol
    kernel = LiveKernel(
        SmaCross(fast=5, slow=20),
        {sym: test_instrument(sym)},
        "1m",
        RunConfig(trade_start=int(bars.ts[300])),
    )
    kernel.warm_up({sym: [bar_row(bars, i) for i in range(300)]})
    i = 300
    while not kernel.broker.pending:
        row = bar_row(bars, i)
        kernel.on_price(sym, row[0], row[1], row[1], row[1], row[1])
        kernel.on_bar(sym, *row)
        i += 1
    waiting = kernel.broker.pending[sym][0].id
    # Act
    kernel.broker.flatten(int(bars.ts[i]))
    stream_bars(kernel, {sym: bars}, i, i + 1)
    # Assert
    assert kernel._orders[waiting].status == OrderStatus.CANCELLED
