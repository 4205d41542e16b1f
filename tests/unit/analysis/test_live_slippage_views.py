"""A live run's expected-vs-actual slippage in `tradeloop runs --state` and in the HTML report
(`tradeloop live report --html`), from a real SQLite state store written as a live run writes it
(fills, trades, portfolio snapshots and the venue broker's engine state in one step)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tradeloop.cli.app import app
from tradeloop.core.orders import Fill, OrderSide
from tradeloop.core.portfolio import Portfolio
from tradeloop.core.position import ExitReason, Trade
from tradeloop.store.state import open_state_store

T0 = 1_700_000_000_000_000_000
MIN = 60_000_000_000


def _store_runs(path: Path) -> None:
    """One live run (buy 2 @ expected 100 got 100.5; sell 2 @ expected 110 got 109.89) and one
    paper run (no slippage records) in a SQLite store."""
    with open_state_store(path) as store:
        for run_id, mode in (("live-a", "live"), ("paper-b", "paper")):
            store.save_run_meta(
                run_id,
                {
                    "mode": mode,
                    "strategy": "sma_cross",
                    "exchange": "binance",
                    "symbols": ["BTC/USDT"],
                    "timeframe": "1m",
                    "balance": 1_000.0,
                },
                T0,
            )
        trade = Trade(
            "t1",
            "BTC/USDT",
            1,
            2.0,
            T0 + MIN,
            100.5,
            T0 + 3 * MIN,
            109.89,
            0.1,
            0.1,
            2 * (109.89 - 100.5) - 0.2,
            ExitReason.SIGNAL,
        )
        portfolio = Portfolio(1_000.0)
        portfolio.balance = 1_000.0 + trade.pnl
        portfolio.trades = [trade]
        records = [
            {
                "order_id": 1,
                "symbol": "BTC/USDT",
                "side": "buy",
                "quantity": 2.0,
                "expected": 100.0,
                "actual": 100.5,
                "ts": T0 + MIN,
            },
            {
                "order_id": 2,
                "symbol": "BTC/USDT",
                "side": "sell",
                "quantity": 2.0,
                "expected": 110.0,
                "actual": 109.89,
                "ts": T0 + 3 * MIN,
            },
        ]
        engine = {"steps": 4, "broker": {"slippage": records, "slippage_totals": [2, 60.0, 1.22]}}
        for k, ts in enumerate((T0, T0 + MIN, T0 + 2 * MIN)):
            p = Portfolio(1_000.0)
            p.balance = 1_000.0 + k
            store.record_step("live-a", ts=ts, portfolio=p)
        store.record_step(
            "live-a",
            ts=T0 + 3 * MIN,
            portfolio=portfolio,
            fills=[
                Fill(1, "BTC/USDT", OrderSide.BUY, 2.0, 100.5, 0.1, T0 + MIN),
                Fill(2, "BTC/USDT", OrderSide.SELL, 2.0, 109.89, 0.1, T0 + 3 * MIN),
            ],
            engine_state=engine,
        )
        store.record_step("paper-b", ts=T0, portfolio=Portfolio(1_000.0), engine_state={})


def test_runs_lists_live_runs_with_their_slippage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rich.console import Console

    monkeypatch.setattr("tradeloop.cli.runs_cmd.console", Console(width=200))
    db = tmp_path / "state.db"
    _store_runs(db)
    runner = CliRunner()
    out = runner.invoke(
        app, ["runs", "--root", str(tmp_path / "out"), "--state", str(db), "--json"]
    )
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)
    assert [r["run_id"] for r in rows] == ["live-a"]  # paper runs stay in paper-runs
    live = rows[0]
    assert live["slippage_fills"] == 2
    # (+50 bps on the buy, +10 bps on the sell) / 2; cost 0.5*2 + 0.11*2
    assert live["slippage_bps"] == pytest.approx(30.0)
    assert live["slippage_cost"] == pytest.approx(1.22)
    assert live["trades"] == 1
    table = runner.invoke(
        app, ["runs", "--root", str(tmp_path / "out"), "--state", str(db)], terminal_width=200
    )
    assert table.exit_code == 0
    assert "slip bps" in table.output
    assert "+30.00" in table.output
    assert "+1.2200" in table.output
    # without --state no slippage column appears (backtest records have none)
    assert "slip" not in runner.invoke(app, ["runs", "--root", str(tmp_path)]).output
    missing = runner.invoke(app, ["runs", "--state", str(tmp_path / "nope.db")])
    assert missing.exit_code != 0
    assert "nope.db" in missing.output


def test_live_report_html_shows_slippage_per_trade_and_in_total(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    _store_runs(db)
    html = tmp_path / "live.html"
    out = CliRunner().invoke(
        app,
        ["live", "report", "--run-id", "live-a", "--state", str(db), "--html", str(html), "--json"],
    )
    assert out.exit_code == 0, out.output
    summary = json.loads(out.output[out.output.index("{") :])["summary"]
    assert summary["fills"] == 2
    assert summary["mean_bps"] == pytest.approx(30.0)
    text = html.read_text(encoding="utf-8")
    assert "entry slippage (bps)" in text
    assert "exit slippage (bps)" in text
    row = re.search(r"<tr><td>t1</td>(.*?)</tr>", text)
    assert row is not None
    cells = re.findall(r"<td>(.*?)</td>", row.group(1))
    assert cells[-2:] == ["50", "10"]  # entry +50 bps, exit +10 bps
    assert 'id="slippage"' in text
    assert "1.22" in text
