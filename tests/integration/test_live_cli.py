"""`tradeloop live` end to end: the CLI in a subprocess, the WebSocket replay of recorded
Binance bars, and the local Binance trading venue (signed REST orders, user-data stream) whose
clock is the replay's. Live must trade exactly like paper on the same recording, and a process
killed at any moment (also between sending an order and its acknowledgement) must never
leave a duplicate order at the venue (on USD-M perpetuals, long and short)."""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tradeloop.core.position import Trade
from tradeloop.core.time import to_iso
from tradeloop.store.analytics import AnalyticsStore
from tradeloop.store.state import open_state_store
from tradeloop.testing.replay import ReplayServer, status_answered
from tradeloop.testing.venue import LocalVenueServer, VenueData
from tradeloop.testing.venue.trading_server import (
    API_KEY,
    API_SECRET,
    LocalBinanceExchange,
    TradingFault,
)

START_MS = 1_747_699_200_000 + 1_000 * 60_000  # 2025-05-20 16:40 UTC, inside the 1m recording
PERP_START_MS = 1_748_169_180_000 + 1_000 * 60_000  # inside the USD-M 1m recording
PARAMS = ["-p", "fast=5", "-p", "slow=20", "-p", "short=false"]


def _cmd(mode: str, state: Path, status: Path, until_ms: int, run_id: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "tradeloop",
        mode,
        "--strategy",
        "sma_cross",
        "--exchange",
        "binance",
        "--symbol",
        "BTC/USDT",
        "--timeframe",
        "1m",
        "--balance",
        "10000",
        *PARAMS,
        "--state",
        str(state),
        "--status-file",
        str(status),
        "--warmup",
        "60",
        "--until",
        to_iso(until_ms * 1_000_000),
        "--run-id",
        run_id,
    ]


def _env(rest_url: str, ws_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        TRADELOOP_BINANCE_URL=rest_url,
        TRADELOOP_BINANCE_WS_URL=ws_url,
        TRADELOOP_BINANCE_API_KEY=API_KEY,
        TRADELOOP_BINANCE_API_SECRET=API_SECRET,
    )
    env.pop("TRADELOOP_DISCORD_WEBHOOK_URL", None)
    return env


def _key(t: Trade) -> tuple[object, ...]:
    return (
        t.symbol,
        t.direction,
        t.quantity,
        t.entry_ts,
        t.entry_price,
        t.exit_ts,
        t.exit_price,
        round(t.entry_fee, 8),
        round(t.exit_fee, 8),
    )


def test_live_trades_exactly_like_paper_on_the_same_recording(
    venue: VenueData, tmp_path: Path
) -> None:
    # Arrange
    bars = 120
    end_ms = START_MS + bars * 60_000
    until = end_ms - 60_000
    live_dir, paper_dir = tmp_path / "live", tmp_path / "paper"
    live_dir.mkdir()
    paper_dir.mkdir()
    # Act: live against the trading venue (its clock is the replay's, which waits until live
    # has acted on a bar before the next one opens), then paper
    with (
        ReplayServer(
            venue,
            start_ms=START_MS,
            end_ms=end_ms,
            bar_interval_s=0.01,
            advance_when_idle=False,
            client_ready=status_answered(live_dir / "status.json"),
        ) as ws,
        LocalBinanceExchange(venue, lambda: ws.cursor_ms) as ex,
    ):
        live = subprocess.run(
            [
                *_cmd("live", live_dir / "state.db", live_dir / "status.json", until, "live-1"),
                "--journal",
                str(live_dir / "journal.duckdb"),
            ],
            env=_env(ex.url, ws.url),
            capture_output=True,
            text=True,
            timeout=240,
        )
        venue_orders = [(o.client_id, o.side, o.status, o.qty) for o in ex.book.orders]
        venue_btc = ex.book.balances.get("BTC", 0.0)
        venue_usdt = ex.book.balances["USDT"]
        unanswered = ws.client_timeouts
    with (
        ReplayServer(
            venue, start_ms=START_MS, end_ms=end_ms, bar_interval_s=0.02, advance_when_idle=False
        ) as ws,
        LocalVenueServer(venue) as rest,
    ):
        paper = subprocess.run(
            [
                *_cmd("paper", paper_dir / "state.db", paper_dir / "status.json", until, "paper-1"),
                "--journal",
                str(paper_dir / "journal.duckdb"),
            ],
            env=_env(rest.url, ws.url),
            capture_output=True,
            text=True,
            timeout=240,
        )
    # Assert
    assert live.returncode == 0, live.stderr[-3000:]
    assert paper.returncode == 0, paper.stderr[-3000:]
    assert unanswered == 0  # the venue's clock never left a bar live had not answered
    with open_state_store(str(live_dir / "state.db")) as store:
        live_trades = store.load_trades("live-1")
        live_orders = store.load_orders("live-1")
        live_state = store.load_run("live-1")
    with open_state_store(str(paper_dir / "state.db")) as store:
        paper_trades = store.load_trades("paper-1")
        paper_orders = store.load_orders("paper-1")
    assert len(paper_trades) >= 4
    assert [_key(t) for t in live_trades] == [_key(t) for t in paper_trades]
    assert [(o.order.id, o.order.side, o.order.ts_created, o.status) for o in live_orders] == [
        (o.order.id, o.order.side, o.order.ts_created, o.status) for o in paper_orders
    ]
    # every stored order went to the venue exactly once, and the venue filled them all
    assert len(venue_orders) == len(live_orders)
    assert len({cid for cid, *_ in venue_orders}) == len(venue_orders)
    assert {status for _c, _s, status, _q in venue_orders} == {"FILLED"}
    assert live_state is not None
    assert live_state.portfolio is not None
    held = sum(p.quantity for p in live_state.portfolio.positions.values())
    assert held == pytest.approx(venue_btc, abs=1e-12)
    assert live_state.portfolio.balance == pytest.approx(venue_usdt, rel=1e-12)
    # the learning loop journals every signal live exactly as in paper
    journals = {}
    for name, folder, run in (("live", live_dir, "live-1"), ("paper", paper_dir, "paper-1")):
        store = AnalyticsStore(folder / "journal.duckdb", read_only=True, hold=False)
        journals[name] = store.journal(run)
        store.close()
    assert journals["live"], "the live run journaled its signals"
    assert {r["mode"] for r in journals["live"]} == {"live"}
    assert sorted((r["signal_key"], r["executed"]) for r in journals["live"]) == sorted(
        (r["signal_key"], r["executed"]) for r in journals["paper"]
    )
    doc = json.loads((live_dir / "status.json").read_text())
    assert doc["mode"] == "live"
    assert doc["venue"]["circuit_breaker"]["state"] == "closed"
    assert doc["venue"]["last_reconciliation"]["differences"] == []
    assert doc["venue"]["slippage"]["fills"] == len(ex.book.trades)
    assert API_SECRET not in live.stdout + live.stderr
    assert API_SECRET not in (live_dir / "status.json").read_text()
    # slippage per fill and in total, in the CLI
    from typer.testing import CliRunner

    from tradeloop.cli.app import app

    runner = CliRunner()
    shown = runner.invoke(
        app,
        ["live", "report", "--run-id", "live-1", "--state", str(live_dir / "state.db"), "--json"],
    )
    assert shown.exit_code == 0, shown.output
    body = json.loads(shown.output)
    assert body["summary"]["fills"] == len(ex.book.trades) == len(body["fills"])
    for fill, trade in zip(body["fills"], ex.book.trades, strict=True):
        assert fill["actual"] == trade.price
    listed = runner.invoke(app, ["paper-runs", "--state", str(live_dir / "state.db"), "--json"])
    [row] = json.loads(listed.output)
    assert row["mode"] == "live"
    assert row["slippage_cost"] == pytest.approx(body["summary"]["total_cost"])


def _caught_up(status: Path, since: float) -> bool:
    """The restarted session re-ran what the killed one left and reconciled with the venue
    (its status file, written after ``since``, says so)."""
    try:
        if status.stat().st_mtime <= since:
            return False
        doc = json.loads(status.read_text())
    except (OSError, ValueError):
        return False
    return int((doc.get("venue") or {}).get("reconciliations", 0)) >= 1


def test_kill_9_at_random_moments_and_sigterm_never_duplicate_an_order(
    venue: VenueData, tmp_path: Path
) -> None:
    # Arrange: USD-M perpetual, long and short (reversals are one order); the replay waits
    # while the engine is dead and a restart backfills over REST
    bars = 300
    end_ms = PERP_START_MS + bars * 60_000
    until = end_ms - 60_000
    state, status = tmp_path / "state.db", tmp_path / "status.json"
    rng = random.Random(11)
    cmd = [
        *_cmd("live", state, status, until, "live-kill"),
        *("--market", "perp", "-p", "short=true"),
    ]
    with (
        ReplayServer(
            venue,
            start_ms=PERP_START_MS,
            end_ms=end_ms,
            bar_interval_s=0.04,
            advance_when_idle=False,
            binance_market="linear",
        ) as ws,
        LocalBinanceExchange(venue, lambda: ws.cursor_ms) as ex,
    ):
        env = _env(ex.url, ws.url)
        kills = 0
        # Act 1: killed between the venue accepting an order and its acknowledgement
        ex.add_fault(TradingFault("slow", "/fapi/v1/order", "POST", times=-1, delay_s=5.0))
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while not ex.book.orders and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        assert ex.book.orders, "no order was sent"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        kills += 1
        in_flight = ex.book.orders[0].client_id
        ex.faults.clear()
        # Act 2: four more kills at random moments
        while kills < 5:
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            time.sleep(rng.uniform(1.5, 3.0))
            if proc.poll() is not None:
                pytest.fail(f"live exited early: {proc.stderr.read().decode()[-2000:]}")
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            kills += 1
        # Act 3: once caught up, SIGTERM stops cleanly with the state equal to the venue's
        started = time.time()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _caught_up(status, started):
            time.sleep(0.05)
        time.sleep(rng.uniform(0.2, 1.0))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, proc.stderr.read().decode()[-2000:]
        at_stop = {p["symbol"]: float(p["positionAmt"]) for p in ex.book.positions_json()}
        with open_state_store(str(state)) as store:
            stopped = store.load_run("live-kill")
        assert stopped is not None
        assert stopped.portfolio is not None
        at_venue = [(o.client_id, o.side, o.qty, o.status) for o in ex.book.orders]
        assert sum(p.signed_quantity for p in stopped.portfolio.positions.values()) == (
            pytest.approx(at_stop.get("BTCUSDT", 0.0), abs=1e-9)
        ), at_venue
        assert not [o for o in ex.book.orders if o.is_open]  # no order left working
        final = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
        venue_ids = [o.client_id for o in ex.book.orders]
        venue_sides = [o.side for o in ex.book.orders]
        venue_position = {p["symbol"]: float(p["positionAmt"]) for p in ex.book.positions_json()}
    # Assert
    assert final.returncode == 0, final.stderr[-3000:]
    duplicates = [cid for cid, n in Counter(venue_ids).items() if n > 1]
    assert duplicates == []
    # the strategy only ever reverses: a second order on the same side would mean an intent
    # placed twice under two ids, or sized on a position the venue had already changed
    assert all(a != b for a, b in itertools.pairwise(venue_sides)), venue_sides
    assert len(venue_ids) >= 3
    with open_state_store(str(state)) as store:
        stored = store.load_orders("live-kill")
        run = store.load_run("live-kill")
        trades = store.load_trades("live-kill")
    assert any(t.direction < 0 for t in trades)  # shorts too, not only longs
    stored_ids = {o.order.id for o in stored}
    # the order in flight at the first kill is the run's own (found by client id, not adopted)
    assert int(in_flight.rsplit("x", 1)[1]) in stored_ids
    assert run is not None
    assert run.portfolio is not None
    held = sum(p.signed_quantity for p in run.portfolio.positions.values())
    assert held == pytest.approx(venue_position.get("BTCUSDT", 0.0), abs=1e-9), (
        venue_ids,
        [(o.order.id, o.order.side, o.status) for o in stored],
    )
    assert all(p.tag != "adopted" for p in run.portfolio.positions.values())
