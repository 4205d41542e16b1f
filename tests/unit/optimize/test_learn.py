"""The learning loop: every signal journaled with its decision and outcome; reports add up;
proposals are written, never applied, and applied through the loop's hot reload with an audit."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pytest

from tradeloop.core.errors import ConfigError
from tradeloop.engine.config import RunConfig
from tradeloop.engine.loop import LoopSession
from tradeloop.engine.loop_config import load_loop_config
from tradeloop.engine.runner import DataSpec, _instrument, load_data, run_on_bars
from tradeloop.optimize.learn import apply_proposal, learn_report, propose, record_backtest
from tradeloop.risk.engine import RiskEngine
from tradeloop.store.analytics import AnalyticsStore
from tradeloop.strategy.examples.sma_cross import SmaCross

SMALL = "crypto_1m/freqtrade/UNITTEST_BTC-1m.feather"

LOOP = """# the loop under test
[run]
id = "learn"
symbols = ["BTC/USDT"]
timeframe = "1m"
state = "state.db"

[[strategies]]
name = "sma_cross"
weight = 0.5
params = { fast = 7, slow = 45 }  # tuned by hand

[[strategies]]
name = "zone_magnet"
weight = 0.3

[zones]
top = 5
"""


def test_journal_records_every_signal_decision_and_outcome(shared_data: Path) -> None:
    # Arrange: the same backtest without a bus, for the reference counts
    data = DataSpec(shared_data / SMALL)
    (loaded,) = load_data([data])
    config = RunConfig(fee=0.001, risk="default")
    params = {"fast": 5, "slow": 20}
    symbol = loaded.bars.symbol
    risk = RiskEngine(config.risk)
    plain = run_on_bars(
        SmaCross(**params),
        {symbol: loaded.bars},
        config,
        instruments={symbol: _instrument(loaded, config)},
        risk=risk,
    )
    store = AnalyticsStore(":memory:")
    # Act
    counts = record_backtest(
        "sma_cross", data, store, params=params, config=config, source="bt-1", strategies_dir=None
    )
    rows = store.journal("bt-1")
    # Assert: one row per signal, none lost; decisions and reasons as the risk engine made them
    assert len(rows) == len(plain.signals) == counts["journal_rows"] > 100
    rejected = [r for r in rows if not r["executed"]]
    assert rejected, "the default risk profile rejects some signals"
    assert Counter(r["reason"] for r in rejected) == Counter(str(r.reason) for r in risk.rejections)
    assert all(r["strategy"] == "sma_cross" and r["mode"] == "backtest" for r in rows)
    # every closed trade's P&L lands on the entry that opened it
    closed = plain.closed_trades
    with_pnl = [r for r in rows if r["pnl"] is not None]
    assert len(with_pnl) == len(closed)
    assert math.fsum(r["pnl"] for r in with_pnl) == pytest.approx(math.fsum(t.pnl for t in closed))
    # Act: the report
    report = learn_report(store, source="bt-1", bars=loaded.bars)
    # Assert: breakdowns add up to the strategy's totals
    (top,) = report["by_strategy"]
    assert top["signals"] == len(rows)
    assert top["closed_trades"] == len(closed)
    assert top["hit_rate"] == pytest.approx(sum(t.pnl > 0 for t in closed) / len(closed))
    for key in ("by_regime", "by_hour", "by_symbol"):
        assert sum(g["signals"] for g in report[key]) == len(rows)
        assert math.fsum(g["pnl"] for g in report[key]) == pytest.approx(top["pnl"])
    assert {g["regime"] for g in report["by_regime"]} <= {"low", "mid", "high", "warmup"}
    assert len(report["by_hour"]) == 24


def test_propose_then_apply_through_hot_reload_with_audit(
    shared_data: Path, tmp_path: Path
) -> None:
    # Arrange
    config = tmp_path / "loop.toml"
    config.write_text(LOOP, encoding="utf-8")
    loop = LoopSession(load_loop_config(config), alerter=None, config_path=config)  # type: ignore[arg-type]
    # Act: a proposal on recent data
    path, proposal = propose(
        config,
        "sma_cross",
        DataSpec(shared_data / SMALL),
        ["fast=5:15:5", "slow=30:60:30"],
        tmp_path / "proposals",
        folds=2,
        ratio=2.0,
        fee=0.001,
        strategies_dir=None,
    )
    # Assert: written, never applied
    assert config.read_text(encoding="utf-8") == LOOP
    assert proposal["status"] == "proposed"
    assert proposal["current"]["fast"] == 7
    assert proposal["diff"]
    assert proposal["proposed"]["fast"] in (5, 10, 15)
    assert proposal["deflated_sharpe"]["n_trials"] == 2 * 6
    assert "sharpe" in proposal["expected_oos"]
    assert "sharpe" in proposal["current_oos"]
    # Act: apply it, then let the running loop notice the file
    record = apply_proposal(path, user="tester")
    reloaded = loop.reload_config()
    # Assert
    assert reloaded
    assert loop.reloads == 1
    live = dict(loop.manager.member("sma_cross").params)
    assert (live["fast"], live["slow"]) == (
        proposal["proposed"]["fast"],
        proposal["proposed"]["slow"],
    )
    text = config.read_text(encoding="utf-8")
    assert "# the loop under test" in text
    assert "zone_magnet" in text
    audit = [json.loads(x) for x in (tmp_path / "loop.audit.jsonl").read_text().splitlines()]
    assert audit == [record]
    assert record["user"] == "tester"
    assert record["proposal"] == proposal["id"]
    assert json.loads(path.read_text())["status"] == "applied"
    with pytest.raises(ConfigError, match="applied already"):
        apply_proposal(path)


def test_stale_proposal_is_refused_and_the_file_untouched(
    shared_data: Path, tmp_path: Path
) -> None:
    config = tmp_path / "loop.toml"
    config.write_text(LOOP, encoding="utf-8")
    path, _ = propose(
        config,
        "sma_cross",
        DataSpec(shared_data / SMALL),
        ["fast=5:15:5", "slow=30:60:30"],
        tmp_path / "proposals",
        folds=2,
        ratio=2.0,
        strategies_dir=None,
    )
    edited = LOOP.replace("fast = 7", "fast = 8")
    config.write_text(edited, encoding="utf-8")
    with pytest.raises(ConfigError, match="changed since proposal"):
        apply_proposal(path)
    assert config.read_text(encoding="utf-8") == edited
    with pytest.raises(ConfigError, match="no strategy 'nope'"):
        propose(config, "nope", DataSpec(shared_data / SMALL), ["fast=5:15:5"], tmp_path)
