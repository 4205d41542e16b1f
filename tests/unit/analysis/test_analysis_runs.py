"""Run records: trades carry their stops, files round-trip, run ids sort and resolve."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from tradeloop.analysis.bias import BiasConfig
from tradeloop.analysis.runs import find_runs, read_equity, read_trades, resolve_run
from tradeloop.analysis.validation import ValidationConfig
from tradeloop.core.errors import ConfigError, DataError
from tradeloop.data import load_ohlcv
from tradeloop.engine import RunConfig
from tradeloop.engine.output import new_run_id, run_info, write_outputs
from tradeloop.engine.result import BacktestResult
from tradeloop.engine.runner import run_on_bars
from tradeloop.strategy.examples.sma_cross import SmaCross


@pytest.fixture(scope="module")
def stopped_run(sample_1h: Path) -> BacktestResult:
    """SMA(10/30) on 4h bars with a 3% stop and a 6% target, both sides."""
    bars = load_ohlcv(sample_1h).bars.slice(0, 8_000)
    strategy = SmaCross(fast=10, slow=30, short=True, stop_loss=0.03, take_profit=0.06)
    return run_on_bars(strategy, {bars.symbol: bars}, RunConfig(fee=0.001, timeframe="4h"))


def test_runs_trades_carry_the_positions_stop_and_target(stopped_run: BacktestResult) -> None:
    # Arrange
    trades = stopped_run.trades
    # Act
    reasons = {t.exit_reason.value for t in trades if t.exit_reason is not None}
    # Assert: every trade has both levels, on the right side of its entry
    assert {"stop_loss", "take_profit"} <= reasons
    for t in trades:
        assert t.stop_loss is not None
        assert t.take_profit is not None
        assert (t.stop_loss < t.entry_price < t.take_profit) == (t.direction > 0)


def test_runs_written_files_read_back_exactly(stopped_run: BacktestResult, tmp_path: Path) -> None:
    # Arrange
    run = run_info(stopped_run, [], run_id="r1", validation=ValidationConfig(), bias=BiasConfig())
    # Act
    paths = write_outputs(stopped_run, tmp_path, report=False, run=run)
    trades = read_trades(paths["trades"])
    curve = read_equity(tmp_path)
    # Assert
    assert set(paths) >= {"trades", "equity", "summary", "metrics", "run"}
    assert paths["equity"].name == "equity.parquet"
    stored = pq.ParquetFile(paths["equity"]).metadata.schema  # required columns: no levels
    assert {stored.column(i).max_definition_level for i in range(len(stored))} == {0}
    assert "equity_csv" not in paths  # the CSV only on request
    assert not (tmp_path / "equity.csv").exists()
    assert len(trades) == len(stopped_run.trades)
    for ours, back in zip(stopped_run.trades, trades, strict=True):
        assert (back.id, back.symbol, back.direction) == (ours.id, ours.symbol, ours.direction)
        assert (back.entry_ts, back.exit_ts) == (ours.entry_ts, ours.exit_ts)
        assert (back.entry_price, back.exit_price, back.quantity) == (
            ours.entry_price,
            ours.exit_price,
            ours.quantity,
        )
        assert (back.stop_loss, back.take_profit) == (ours.stop_loss, ours.take_profit)
        assert back.exit_reason == ours.exit_reason
        assert back.fees == pytest.approx(ours.fees, rel=1e-15)
        assert back.pnl == ours.pnl  # an open trade's too, marked at the last close
    assert np.array_equal(curve.ts, stopped_run.ts)
    assert np.array_equal(curve.equity, stopped_run.equity)
    assert np.array_equal(curve.exposure, stopped_run.exposure)


def test_runs_metrics_json_holds_analysis_and_annualization(
    stopped_run: BacktestResult, tmp_path: Path
) -> None:
    # Arrange / Act
    write_outputs(stopped_run, tmp_path, report=False)
    data = json.loads((tmp_path / "metrics.json").read_text())
    # Assert
    assert data["annualization"] == {
        "periods_per_year": 2190.0,
        "basis": "2,190 periods/year (365 days a year, bars every day)",
        "bar_seconds": 14_400.0,
    }
    assert data["metrics"]["sharpe"] == pytest.approx(stopped_run.metrics.sharpe)
    assert data["metrics"]["max_drawdown_start"].endswith("+00:00")
    assert set(data["validation"]["verdict"]) == {"passed", "summary", "rules"}
    assert data["validation"]["monte_carlo"]["sims"] == 1000
    assert set(data["biases"]["counts"]) == {"fomo", "revenge", "overconfidence", "overtrading"}
    assert data["by_symbol"][0]["symbol"] == "BTC/USDT"


def test_runs_ids_sort_by_time_and_hash_their_inputs() -> None:
    # Arrange
    t1 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    t2 = datetime(2025, 1, 2, 3, 4, 6, tzinfo=UTC)
    # Act
    a = new_run_id("sma_cross", {"fast": 10}, t1)
    b = new_run_id("sma_cross", {"fast": 10}, t2)
    c = new_run_id("sma_cross", {"fast": 11}, t1)
    odd = new_run_id("my file.py:Class", {}, t1)
    # Assert
    assert a.startswith("20250102T030405Z-sma_cross-")
    assert sorted([b, a]) == [a, b]
    assert a.rsplit("-", 1)[1] == b.rsplit("-", 1)[1] != c.rsplit("-", 1)[1]
    assert odd.split("-")[1] == "my_file.py_Class"


def make_run_folder(root: Path, run_id: str, total_return: float) -> Path:
    folder = root / "runs" / run_id
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(
        json.dumps(
            {
                "run_id": run_id,
                "strategy": "s",
                "symbols": ["X"],
                "timeframe": "1h",
                "created": "2025-01-02T03:04:05+00:00",
            }
        )
    )
    metrics = {"metrics": {"total_return": total_return, "sharpe": "inf", "trade_count": 3}}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


def test_runs_find_and_resolve(tmp_path: Path) -> None:
    # Arrange
    a = make_run_folder(tmp_path, "20250101T000000Z-s-aaaaaa", 0.1)
    b = make_run_folder(tmp_path, "20250102T000000Z-s-bbbbbb", -0.2)
    (tmp_path / "latest").symlink_to(Path("runs") / b.name)
    # Act
    listed = find_runs(tmp_path)
    # Assert
    assert [r.run_id for r in listed] == [a.name, b.name]
    assert listed[0].total_return == pytest.approx(0.1)
    assert listed[1].sharpe == float("inf")
    assert resolve_run(a.name, tmp_path) == a
    assert resolve_run("20250101", tmp_path) == a
    assert resolve_run("bbbbbb", tmp_path) == b
    assert resolve_run("latest", tmp_path) == b.resolve()
    assert resolve_run(str(a), tmp_path) == a


def test_a_run_written_with_out_is_found_by_the_id_runs_shows(tmp_path: Path) -> None:
    # Arrange: a run under runs/ and one written with --out output/demo (make demo's)
    make_run_folder(tmp_path, "20250101T000000Z-s-aaaaaa", 0.1)
    demo = tmp_path / "demo"
    demo.mkdir()
    (demo / "run.json").write_text(
        json.dumps({"run_id": "20250103T000000Z-sma_cross-cccccc", "created": "2025-01-03"})
    )
    # Act
    shown = [r.run_id for r in find_runs(tmp_path)]
    # Assert: the id `tradeloop runs` shows, a prefix of it and the folder's name all resolve
    assert "20250103T000000Z-sma_cross-cccccc" in shown
    assert resolve_run("20250103T000000Z-sma_cross-cccccc", tmp_path) == demo
    assert resolve_run("cccccc", tmp_path) == demo
    assert resolve_run("demo", tmp_path) == demo


def test_runs_resolve_errors_name_the_problem(tmp_path: Path) -> None:
    # Arrange
    make_run_folder(tmp_path, "20250101T000000Z-s-aaaaaa", 0.1)
    make_run_folder(tmp_path, "20250102T000000Z-s-bbbbbb", 0.1)
    # Act / Assert
    with pytest.raises(ConfigError, match="ambiguous: 2 runs"):
        resolve_run("2025", tmp_path)
    with pytest.raises(ConfigError, match="no run 'nope'"):
        resolve_run("nope", tmp_path)
    with pytest.raises(ConfigError, match="not a run folder"):
        resolve_run(str(tmp_path), tmp_path)


def test_runs_read_trades_missing_file_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        read_trades(tmp_path / "trades.csv")
