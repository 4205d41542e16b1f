"""Operator control of the paper/live kernel: a pause sends no order (bars, marks and exits go
on), is stored and survives a restart; closing one symbol or flattening everything closes the
positions through the broker with the orders stored."""

from __future__ import annotations

from pathlib import Path

import pytest

from tradeloop.core.bar import BarArrays
from tradeloop.data.loader import load_ohlcv
from tradeloop.engine.config import RunConfig
from tradeloop.engine.live import LiveKernel
from tradeloop.store.state import SqliteStateStore
from tradeloop.strategy.examples.sma_cross import SmaCross
from tradeloop.testing.kernels import bar_row, stream_bars, test_instrument

WARMUP = 100


@pytest.fixture(scope="module")
def btc_1m(shared_data: Path) -> BarArrays:
    return load_ohlcv(shared_data / "crypto_1m/binance_spot_2025/BTC_USDT-1m.feather").bars.slice(
        0, 1_500
    )


def _kernel(bars: BarArrays, store: SqliteStateStore | None = None) -> LiveKernel:
    sym = bars.symbol
    return LiveKernel(
        SmaCross(fast=5, slow=20, short=True),
        {sym: test_instrument(sym)},
        "1m",
        RunConfig(balance=10_000),
        run_id="r",
        store=store,
    )


def test_a_pause_sends_no_order_and_survives_a_restart(btc_1m: BarArrays, tmp_path: Path) -> None:
    sym = btc_1m.symbol
    # Arrange: trade a while, then pause
    with SqliteStateStore(tmp_path / "state.db") as store:
        kernel = _kernel(btc_1m, store)
        kernel.warm_up({sym: [bar_row(btc_1m, i) for i in range(WARMUP)]})
        stream_bars(kernel, {sym: btc_1m}, WARMUP, 600)
        orders_before = kernel.step.counts.orders
        assert not kernel.set_paused(True)
    # Act: restart from the store and stream on
    with SqliteStateStore(tmp_path / "state.db") as store:
        again = _kernel(btc_1m, store)
        assert again.restore()
        paused_after_restart = again.step.paused
        steps, signals = again.steps, again.step.counts.signals
        stream_bars(again, {sym: btc_1m}, 600, 1_000)
        during = (again.steps - steps, again.step.counts.signals - signals)
        orders_paused = again.step.counts.orders
        refused = again.step.counts.rejected["paused"]
        again.set_paused(False)
        stream_bars(again, {sym: btc_1m}, 1_000, 1_500)
    # Assert
    assert orders_before > 0
    assert paused_after_restart is True
    assert during[0] == 400  # every bar was a step
    assert during[1] > 0  # the strategy still signalled
    assert orders_paused == orders_before  # none became an order
    assert refused == during[1]  # each was refused with the reason "paused"
    assert again.step.counts.orders > orders_paused  # resumed


def test_close_one_symbol_and_flatten_close_the_position_at_the_next_open(
    btc_1m: BarArrays,
) -> None:
    sym = btc_1m.symbol
    kernel = _kernel(btc_1m)
    kernel.warm_up({sym: [bar_row(btc_1m, i) for i in range(WARMUP)]})
    i = WARMUP
    while not kernel.portfolio.positions:
        stream_bars(kernel, {sym: btc_1m}, i, i + 1)
        i += 1
    kernel.set_paused(True)
    # Act: close the symbol; the order fills at the next bar's open
    out = kernel.close_positions([sym])
    stream_bars(kernel, {sym: btc_1m}, i, i + 1)
    closed_at = kernel.portfolio.trades[-1]
    # Assert
    assert [o.order.tag for o in out.orders] == ["operator_close"]
    assert kernel.portfolio.positions == {}
    assert closed_at.exit_ts == int(btc_1m.ts[i])
    assert closed_at.exit_price == pytest.approx(float(btc_1m.open[i]), rel=1e-9)
    assert kernel._orders[out.orders[0].order.id].status == "filled"
    # and flatten with nothing open sends nothing
    assert kernel.close_positions(None).orders == []
