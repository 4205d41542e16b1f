"""The journal writes one transaction per event that changed anything and reads back the run."""

from __future__ import annotations

from pathlib import Path

from tradeloop.data.loader import load_ohlcv
from tradeloop.engine.config import RunConfig
from tradeloop.engine.journal import Journal
from tradeloop.engine.live import LiveKernel
from tradeloop.store.state import SqliteStateStore
from tradeloop.strategy.examples.sma_cross import SmaCross
from tradeloop.testing.kernels import bar_row, stream_bars, test_instrument


def test_the_journal_records_each_event_and_loads_the_run_back(
    shared_data: Path, tmp_path: Path
) -> None:
    # Arrange
    bars = load_ohlcv(shared_data / "crypto_1m/binance_spot_2025/BTC_USDT-1m.feather").bars
    bars = bars.slice(0, 900)
    sym = bars.symbol
    store = SqliteStateStore(tmp_path / "state.db")
    kernel = LiveKernel(
        SmaCross(fast=5, slow=20), {sym: test_instrument(sym)}, "1m",
        RunConfig(trade_start=int(bars.ts[300])), run_id="j", store=store,
    )  # fmt: skip
    kernel.warm_up({sym: [bar_row(bars, i) for i in range(300)]})
    # Act
    stream_bars(kernel, {sym: bars}, 300, 900)
    entry = Journal(store, "j").load([sym], "1m")
    # Assert: every closed bar is a step (a transaction); opens that filled one more each
    journal = kernel.journal
    assert journal is not None
    entries = [o for o in kernel._orders.values() if o.status == "filled"]
    assert journal.records >= 600
    assert journal.records <= 600 + len(entries) + 1
    assert entry is not None
    assert len(entry.bars[sym]) == 900
    assert sum(1 for r in entry.bars[sym] if r[6]) == 600
    assert entry.orders == kernel._orders
    assert entry.fills == kernel.broker.fills()
    assert entry.engine_state["steps"] == 600
    assert Journal(store, "other").load([sym], "1m") is None
    store.close()
