"""``trades.csv`` is written from the trades' columns (``BacktestResult.trade_columns``), not
from per-trade objects, and its bytes are those of the per-trade writer it replaced.

The reference below builds the table the old way, one Python value per trade and field
(None for what a trade does not have), with ``pa.array`` and ISO text formatted in Python;
both tables go through the same CSV writer. Real runs on the bundled hourly sample: one
long/short, one with stop-loss, take-profit and trailing exits (both end with a trade open,
whose P&L is marked at the last close).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from tradeloop.core.position import Trade
from tradeloop.data.loader import load_ohlcv
from tradeloop.engine.config import RunConfig
from tradeloop.engine.output import _write_csv, write_trades_and_equity
from tradeloop.engine.result import BacktestResult
from tradeloop.engine.runner import run_on_bars
from tradeloop.strategy.examples.sma_cross import SmaCross


def _iso(ns: int | None) -> str | None:
    if ns is None:
        return None
    assert ns % 1_000_000_000 == 0  # hourly bars: whole seconds, the writer's "s" unit
    return datetime.fromtimestamp(ns // 1_000_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _per_trade_table(trades: list[Trade]) -> pa.Table:
    """``trades.csv``'s table built from the trade objects, field by field."""
    f64, text = pa.float64(), pa.string()
    columns = {
        "entry_time": pa.array([_iso(t.entry_ts) for t in trades], text),
        "exit_time": pa.array([_iso(t.exit_ts) for t in trades], text),
        "entry_price": pa.array([t.entry_price for t in trades], f64),
        "exit_price": pa.array([t.exit_price for t in trades], f64),
        "size": pa.array([t.quantity for t in trades], f64),
        "pnl": pa.array([None if math.isnan(t.pnl) else t.pnl for t in trades], f64),
        "symbol": pa.array([t.symbol for t in trades], text),
        "side": pa.array(["long" if t.direction > 0 else "short" for t in trades], text),
        "fees": pa.array([t.fees for t in trades], f64),
        "pnl_pct": pa.array([None if math.isnan(t.pnl_pct) else t.pnl_pct for t in trades], f64),
        "exit_reason": pa.array(
            [t.exit_reason.value if t.exit_reason else None for t in trades], text
        ),
        "id": pa.array([t.id for t in trades], text),
        "stop_loss": pa.array([t.stop_loss for t in trades], f64),
        "take_profit": pa.array([t.take_profit for t in trades], f64),
    }
    return pa.Table.from_arrays(list(columns.values()), names=list(columns))


def _run(sample_1h: Path, **params: object) -> BacktestResult:
    bars = load_ohlcv(sample_1h).bars
    strategy = SmaCross(fast=10, slow=30, **params)
    return run_on_bars(strategy, {bars.symbol: bars}, RunConfig(fee=0.001))


@pytest.mark.parametrize(
    ("params", "reasons"),
    [
        ({"short": True}, 1),
        ({"stop_loss": 0.02, "take_profit": 0.04, "trailing_stop": 0.03}, 3),
    ],
    ids=["long-short", "stops"],
)
def test_trades_csv_is_byte_identical_to_the_per_trade_writer(
    sample_1h: Path, tmp_path: Path, params: dict[str, object], reasons: int
) -> None:
    # Arrange: a real run with many trades
    result = _run(sample_1h, **params)
    trades = result.trades
    assert len(trades) > 500
    assert result.trade_columns is not None
    assert len(result.trade_columns) == len(trades)
    assert not trades[-1].is_closed  # empty exit fields
    assert len({t.exit_reason for t in trades if t.is_closed}) >= reasons
    expected = tmp_path / "expected.csv"
    _write_csv(_per_trade_table(trades), expected)
    # Act
    written = write_trades_and_equity(result, tmp_path / "run")["trades"]
    # Assert: the same bytes
    assert written.read_bytes() == expected.read_bytes()


def test_trades_csv_without_the_engines_columns_is_the_same(
    sample_1h: Path, tmp_path: Path
) -> None:
    # Arrange: a result built elsewhere, without columns
    result = _run(sample_1h, short=True)
    expected = write_trades_and_equity(result, tmp_path / "a")["trades"].read_bytes()
    result.trade_columns = None
    # Act
    written = write_trades_and_equity(result, tmp_path / "b")["trades"]
    # Assert
    assert written.read_bytes() == expected


def test_total_pnl_from_the_columns_equals_the_per_trade_sum(sample_1h: Path) -> None:
    # Arrange
    result = _run(sample_1h, short=True)
    per_trade = math.fsum(t.pnl for t in result.trades if t.is_closed)
    # Act
    from_columns = result.total_pnl
    result.trade_columns = None
    without = result.total_pnl
    # Assert: the same float, bit for bit
    assert from_columns == per_trade
    assert without == per_trade
