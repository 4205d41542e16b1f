"""`tradeloop paper` journals every signal for the learning loop, like `tradeloop run`.

The run goes against the same local servers as test_paper_session.py (Binance's kline stream
replayed over WebSocket, the local REST venue); the journal is checked against an independent
replay of the run's stored bars through a fresh kernel with the same rules: one row per signal,
the rejected ones with the risk engine's reasons, and `tradeloop learn report` reads them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from tests.integration.test_paper_session import RUN_ID, START_MS, _env, _replay, _run_paper

from tradeloop.core.time import to_iso
from tradeloop.engine.config import RunConfig
from tradeloop.engine.live import LiveKernel
from tradeloop.engine.paper import instrument_from_dict
from tradeloop.risk.config import load_risk_table
from tradeloop.store.analytics import AnalyticsStore
from tradeloop.store.state import open_state_store
from tradeloop.strategy.examples.sma_cross import SmaCross
from tradeloop.testing.venue import LocalVenueServer, VenueData

#: a daily-loss halt after the first small loss: the run has executed and rejected signals
RISK_TOML = "[kill_switch]\ndaily_loss_pct = 0.0001\n"


def _replayed(state: str, risk: Path) -> LiveKernel:
    """The run its stored bars describe, through a fresh kernel with the paper run's rules."""
    with open_state_store(state) as store:
        meta = store.load_run_meta(RUN_ID)
        assert meta is not None
        rows = store.load_bars(RUN_ID, "BTC/USDT", "1m")
    instruments = {s: instrument_from_dict(d) for s, d in meta["instruments"].items()}
    rules = RunConfig(balance=10_000, risk=load_risk_table(risk))
    kernel = LiveKernel(SmaCross(**meta["params"]), instruments, "1m", rules)
    kernel.warm_up({"BTC/USDT": [r[:6] for r in rows if not r[6]]})
    for ts, o, h, low, c, v, _live in (r for r in rows if r[6]):
        kernel.on_price("BTC/USDT", ts, o, o, o, o)
        kernel.on_bar("BTC/USDT", ts, o, h, low, c, v)
    return kernel


def test_paper_run_journals_every_signal_and_learn_report_reads_it(
    rest: LocalVenueServer, venue: VenueData, tmp_path: Path
) -> None:
    # Arrange
    end_ms = START_MS + 240 * 60_000
    state, status = str(tmp_path / "state.db"), tmp_path / "status.json"
    journal = tmp_path / "learn" / "analytics.duckdb"
    risk = tmp_path / "risk.toml"
    risk.write_text(RISK_TOML, encoding="utf-8")
    # Act
    with _replay(venue, end_ms) as ws:
        proc = _run_paper(
            rest, ws, state, status, end_ms - 60_000, "--journal", str(journal), "--risk", str(risk)
        )
    # Assert
    assert proc.returncode == 0, proc.stderr[-3000:]
    kernel = _replayed(state, risk)
    signals = kernel.step.counts.as_dict()["signals"]
    assert signals >= 10
    store = AnalyticsStore(journal, read_only=True, hold=False)
    rows = store.journal(RUN_ID)
    store.close()
    assert len(rows) == signals, "one journal row per signal the run emitted"
    assert {r["mode"] for r in rows} == {"paper"}
    assert len({r["signal_key"] for r in rows}) == len(rows)
    rejected = [r for r in rows if not r["executed"]]
    assert rejected, "the halt rejects some signals"
    assert Counter(r["reason"] for r in rejected) == Counter(
        str(r.reason) for r in kernel.risk.rejections
    )
    assert len(rejected) < len(rows), "and some were executed"
    assert all(r["reason"] is None for r in rows if r["executed"])
    closed = [t for t in kernel.portfolio.trades if t.exit_ts is not None]
    journaled_pnl = sum(r["pnl"] for r in rows if r["pnl"] is not None)
    assert abs(journaled_pnl - sum(t.pnl for t in closed)) < 1e-6
    out = tmp_path / "report.json"
    report = subprocess.run(
        [
            sys.executable,
            "-m",
            "tradeloop",
            "learn",
            "report",
            "--journal",
            str(journal),
            "--source",
            RUN_ID,
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert report.returncode == 0, report.stdout + report.stderr
    doc = json.loads(out.read_text())
    (row,) = doc["by_strategy"]
    assert (row["strategy"], row["signals"]) == ("sma_cross", signals)
    assert (row["executed"], row["rejected"]) == (len(rows) - len(rejected), len(rejected))
    assert row["rejected_by_reason"] == dict(Counter(r["reason"] for r in rejected))
    assert row["closed_trades"] == len(closed)


def test_paper_run_with_no_journal_writes_none(
    rest: LocalVenueServer, venue: VenueData, tmp_path: Path
) -> None:
    # Arrange
    end_ms = START_MS + 30 * 60_000
    state, status = str(tmp_path / "state.db"), tmp_path / "status.json"
    journal = tmp_path / "analytics.duckdb"
    # Act
    with _replay(venue, end_ms) as ws:
        proc = _run_paper(
            rest, ws, state, status, end_ms - 60_000, "--journal", str(journal), "--no-journal"
        )
    # Assert
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not journal.exists()


def test_tradeloop_run_still_journals_every_signal_through_the_shared_attachment(
    rest: LocalVenueServer, venue: VenueData, tmp_path: Path
) -> None:
    # Arrange: the loop opens its own analytics store; the paper session attaches the journal
    end_ms = START_MS + 240 * 60_000
    config = tmp_path / "loop.toml"
    config.write_text(
        f"""
[run]
id = "loop-journal"
exchange = "binance"
symbols = ["BTC/USDT"]
timeframe = "1m"
balance = 10000
state = "state.db"
analytics = "analytics.duckdb"
status = "status.json"
warmup_bars = 60
until = "{to_iso((end_ms - 60_000) * 1_000_000)}"

[[strategies]]
name = "sma_cross"
params = {{ fast = 5, slow = 20, short = true }}
""",
        encoding="utf-8",
    )
    # Act
    with _replay(venue, end_ms) as ws:
        proc = subprocess.run(
            [sys.executable, "-m", "tradeloop", "run", "--config", str(config)],
            env=_env(rest, ws),
            capture_output=True,
            text=True,
            timeout=180,
        )
    # Assert
    assert proc.returncode == 0, proc.stderr[-3000:]
    stages = json.loads((tmp_path / "status.json").read_text())["stages"]
    assert stages["signals"] >= 10
    store = AnalyticsStore(tmp_path / "analytics.duckdb", read_only=True, hold=False)
    rows = store.journal("loop-journal")
    store.close()
    assert len(rows) == stages["signals"]
    assert {r["mode"] for r in rows} == {"paper"}
    rejected = Counter(r["reason"] for r in rows if not r["executed"])
    assert dict(rejected) == stages["rejected"]
    assert len({r["signal_key"] for r in rows}) == len(rows)
