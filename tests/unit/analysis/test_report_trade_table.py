"""The report's trades table, built from the engine's trade columns, matches the table built
from each `Trade` object (the report's earlier way) on a real run with stops and targets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tradeloop.analysis.report import _table, _trades_html
from tradeloop.analysis.slippage import SlippageView
from tradeloop.core.position import Trade
from tradeloop.core.time import to_iso
from tradeloop.data import load_ohlcv
from tradeloop.engine import RunConfig
from tradeloop.engine.result import BacktestResult
from tradeloop.engine.runner import run_on_bars
from tradeloop.strategy.examples.sma_cross import SmaCross

HEADER = (
    "id", "symbol", "side", "entry time", "entry price", "exit time", "exit price", "size",
    "stop loss", "take profit", "pnl", "return", "exit reason",
)  # fmt: skip
FORMATS = [*HEADER[:11], "avg_return", ""]


@pytest.fixture(scope="module")
def stopped_run(sample_1h: Path) -> BacktestResult:
    """SMA(10/30) long and short with a 3% stop and a 6% target; on 1h bars."""
    bars = load_ohlcv(sample_1h).bars.slice(0, 8_000)
    strategy = SmaCross(fast=10, slow=30, short=True, stop_loss=0.03, take_profit=0.06)
    return run_on_bars(strategy, {bars.symbol: bars}, RunConfig(fee=0.001, timeframe="1h"))


def trade_row(t: Trade) -> tuple[Any, ...]:
    """One table row read from a `Trade` object (the reference)."""
    closed = t.exit_ts is not None
    notional = t.quantity * t.entry_price
    return (
        t.id,
        t.symbol,
        "long" if t.direction > 0 else "short",
        to_iso(t.entry_ts),
        float(t.entry_price),
        to_iso(t.exit_ts) if t.exit_ts is not None else "open",
        float(t.exit_price) if closed and t.exit_price is not None else None,
        float(t.quantity),
        float(t.stop_loss) if t.stop_loss is not None else None,
        float(t.take_profit) if t.take_profit is not None else None,
        float(t.pnl),
        t.pnl / notional if notional != 0 else 0.0,
        t.exit_reason.value if t.exit_reason is not None else "",
    )


def test_trades_table_from_columns_matches_the_per_trade_table(
    stopped_run: BacktestResult,
) -> None:
    # Arrange
    cols = stopped_run.trade_columns
    assert cols is not None
    trades = stopped_run.trades
    reasons = {t.exit_reason.value for t in trades if t.exit_reason is not None}
    assert {"stop_loss", "take_profit"} <= reasons
    expected = _table([trade_row(t) for t in trades[:200]], HEADER, cls="trades", formats=FORMATS)
    # Act
    html = _trades_html(cols, 200)
    # Assert: byte for byte, 200 rows
    assert html == expected
    assert html.count("<tr>") == 201


def test_trades_table_limit_and_slippage_columns(stopped_run: BacktestResult) -> None:
    # Arrange
    cols = stopped_run.trade_columns
    assert cols is not None
    first = str(cols.ids[0])
    view = SlippageView(fills=1, mean_bps=1.5, total_cost=0.1, by_trade={first: (1.5, -2.25)})
    # Act
    html = _trades_html(cols, 3, view)
    # Assert: three rows; the first trade's slippage shown, the others' missing
    rows = html.removesuffix("</tbody></table>").split("<tr>")[2:]
    assert len(rows) == 3
    assert rows[0].startswith(f"<td>{first}</td>")
    assert rows[0].endswith("<td>1.5</td><td>-2.25</td></tr>")
    assert all(r.endswith("<td>–</td><td>–</td></tr>") for r in rows[1:])
    assert "entry slippage (bps)" in html
