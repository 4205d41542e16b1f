"""`tradeloop paper` end to end: a real WebSocket replay server speaking Binance's kline stream,
the local REST venue for warm-up and backfill, the real state store, and real faults
(SIGKILL, dropped connections with skipped bars, a failing Discord webhook, SIGTERM)."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tradeloop.alerts import DiscordAlerter
from tradeloop.config.settings import ExchangeSettings, Settings
from tradeloop.core.time import to_iso
from tradeloop.engine.config import RunConfig
from tradeloop.engine.live import LiveKernel
from tradeloop.engine.paper import PaperConfig, PaperSession, instrument_from_dict
from tradeloop.engine.parity import parity_report, trade_key
from tradeloop.store.state import StateStore, open_state_store
from tradeloop.strategy.examples.sma_cross import SmaCross
from tradeloop.testing.replay import ReplayServer, status_answered
from tradeloop.testing.venue import LocalVenueServer, VenueData
from tradeloop.testing.webhook import WebhookServer

START_MS = 1_747_699_200_000 + 1_000 * 60_000  # 2025-05-20 16:40 UTC, inside the 1m recording
RUN_ID = "paper-sma_cross-binance-BTCUSDT-1m"
PARAMS = ["-p", "fast=5", "-p", "slow=20", "-p", "short=true", "-p", "stop_loss=0.004"]


def _paper_cmd(state: str, status: Path, until_ms: int, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "tradeloop",
        "paper",
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
        state,
        "--status-file",
        str(status),
        "--warmup",
        "60",
        "--until",
        to_iso(until_ms * 1_000_000),
        *extra,
    ]


def _env(rest: LocalVenueServer, ws: ReplayServer) -> dict[str, str]:
    env = dict(os.environ)
    env.update(TRADELOOP_BINANCE_URL=rest.url, TRADELOOP_BINANCE_WS_URL=ws.url)
    env.pop("TRADELOOP_DISCORD_WEBHOOK_URL", None)
    return env


def _replay(
    venue: VenueData, end_ms: int, start_ms: int = START_MS, interval_s: float = 0.01
) -> ReplayServer:
    """A replay of the recorded 1m bars that waits while no client is connected."""
    return ReplayServer(
        venue, start_ms=start_ms, end_ms=end_ms, bar_interval_s=interval_s, advance_when_idle=False
    )


def _run_paper(
    rest: LocalVenueServer, ws: ReplayServer, state: str, status: Path, until_ms: int, *extra: str
) -> subprocess.CompletedProcess[str]:
    """`tradeloop paper` as a subprocess against the local servers, to completion."""
    return subprocess.run(
        _paper_cmd(state, status, until_ms, *extra),
        env=_env(rest, ws),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _config(tmp_path: Path, settings: Settings, **kw: Any) -> PaperConfig:
    """The BTC/USDT 1m paper config of these tests, state and status in ``tmp_path``."""
    return PaperConfig(
        exchange="binance",
        symbols=("BTC/USDT",),
        timeframe="1m",
        run_id=RUN_ID,
        state_url=str(tmp_path / "state.db"),
        status_path=tmp_path / "status.json",
        settings=settings,
        **kw,
    )


def _uninterrupted(store: StateStore) -> LiveKernel:
    """The run the stored bars describe, replayed in one go through a fresh kernel."""
    meta = store.load_run_meta(RUN_ID)
    assert meta is not None
    instruments = {s: instrument_from_dict(d) for s, d in meta["instruments"].items()}
    kernel = LiveKernel(SmaCross(**meta["params"]), instruments, "1m", RunConfig(balance=10_000))
    rows = store.load_bars(RUN_ID, "BTC/USDT", "1m")
    kernel.warm_up({"BTC/USDT": [r[:6] for r in rows if not r[6]]})
    for ts, o, h, low, c, v, _live in (r for r in rows if r[6]):
        kernel.on_price("BTC/USDT", ts, o, o, o, o)
        kernel.on_bar("BTC/USDT", ts, o, h, low, c, v)
    return kernel


def _trade_keys(trades) -> list[tuple]:
    return [trade_key(t) for t in trades]


def _assert_bars_are_the_recording(store: StateStore, venue: VenueData, first_ms: int) -> None:
    rows = store.load_bars(RUN_ID, "BTC/USDT", "1m")
    ts_ms = [r[0] // 1_000_000 for r in rows]
    assert ts_ms[0] == first_ms
    assert ts_ms == list(range(ts_ms[0], ts_ms[-1] + 1, 60_000)), "no bar lost or doubled"
    candles = venue.candles("binance", "spot", "BTCUSDT", "1m")
    assert candles is not None
    i = int((candles.ts == ts_ms[0]).nonzero()[0][0])
    assert [r[4] for r in rows] == candles.close[i : i + len(rows)].tolist()


def test_paper_cli_trades_and_parity_reports_zero_differences(
    rest: LocalVenueServer, venue: VenueData, tmp_path: Path
) -> None:
    # Arrange
    end_ms = START_MS + 300 * 60_000
    with _replay(venue, end_ms) as ws:
        state, status = str(tmp_path / "state.db"), tmp_path / "status.json"
        # Act
        proc = _run_paper(rest, ws, state, status, end_ms - 60_000)
    # Assert
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(status.read_text())
    assert doc["mode"] == "paper"
    assert doc["steps"] == 300
    assert doc["last_bar_time"].startswith(to_iso((end_ms - 60_000) * 1_000_000)[:16])
    assert doc["feed"]["feed_state"] == "connected"
    with open_state_store(state) as store:
        _assert_bars_are_the_recording(store, venue, START_MS - 60 * 60_000)
        trades = store.load_trades(RUN_ID)
        assert len(trades) >= 5
        report = parity_report(store, RUN_ID)
    assert report.live_bars == 300
    assert report.orders >= 5
    assert report.differences == []
    parity = subprocess.run(
        [sys.executable, "-m", "tradeloop", "parity", RUN_ID, "--state", state],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert parity.returncode == 0, parity.stdout + parity.stderr
    assert "identical" in parity.stdout


def test_sigkill_at_random_points_and_restart_continues_exactly(
    rest: LocalVenueServer, venue: VenueData, tmp_path: Path
) -> None:
    # Arrange: the market moves on once the session has acted on a bar (not on a wall clock
    # that a loaded machine lets run out before the last process is up)
    end_ms = START_MS + 1_000 * 60_000
    until = end_ms - 60_000
    state, status = str(tmp_path / "state.db"), tmp_path / "status.json"
    rng = random.Random(7)
    with ReplayServer(
        venue,
        start_ms=START_MS,
        end_ms=end_ms,
        bar_interval_s=0.005,
        advance_when_idle=False,
        client_ready=status_answered(status),
    ) as ws:
        env = _env(rest, ws)
        cmd = _paper_cmd(state, status, until)
        # Act: kill -9 five times after a random number of bars (within a bar's step), the
        # market running on for a random stretch while the engine is dead (a gap the restart
        # backfills over REST)
        for _ in range(5):
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            assert ws.wait_for_clients(1, timeout=120), "paper did not subscribe"
            assert ws.wait_for((ws.cursor_ms or START_MS) + rng.randint(20, 80) * 60_000, 120)
            time.sleep(rng.uniform(0.0, 0.05))
            if proc.poll() is not None:
                pytest.fail(f"paper exited early: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            ws.skip(rng.randint(20, 60))
        final = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
        unanswered = ws.client_timeouts
    # Assert
    assert final.returncode == 0, final.stderr[-3000:]
    assert unanswered == 0  # the market never left a bar the session had not answered
    with open_state_store(state) as store:
        rows = store.load_bars(RUN_ID, "BTC/USDT", "1m")
        assert rows[-1][0] == until * 1_000_000
        first_live = next(r[0] for r in rows if r[6])
        _assert_bars_are_the_recording(store, venue, rows[0][0] // 1_000_000)
        reference = _uninterrupted(store)
        state_after = store.load_run(RUN_ID)
        assert state_after is not None
        assert state_after.portfolio is not None
        stored = state_after.portfolio
        closed = [t for t in stored.trades if t.exit_ts is not None]
        assert len({t.id for t in stored.trades}) == len(stored.trades), "a trade is duplicated"
        assert _trade_keys(closed) == _trade_keys(reference.portfolio.trades)
        assert stored.positions == reference.portfolio.positions
        assert stored.balance == reference.portfolio.balance
        assert len(closed) >= 10
        report = parity_report(store, RUN_ID)
    assert report.differences == []
    assert first_live < until * 1_000_000


def _session(
    rest: LocalVenueServer, ws: ReplayServer, tmp_path: Path, until_ms: int, **kw
) -> PaperSession:
    settings = Settings(exchanges={"binance": ExchangeSettings(url=rest.url, ws_url=ws.url)})
    cfg = _config(tmp_path, settings, warmup_bars=60, until_ns=until_ms * 1_000_000, **kw)
    return PaperSession(SmaCross(fast=5, slow=20, short=True, stop_loss=0.004), cfg)


def test_dropped_connection_with_skipped_bars_is_backfilled(
    rest: LocalVenueServer, venue: VenueData, tmp_path: Path
) -> None:
    # Arrange
    end_ms = START_MS + 400 * 60_000
    with _replay(venue, end_ms) as ws:
        session = _session(rest, ws, tmp_path, end_ms - 60_000)
        runner = threading.Thread(target=session.run)
        runner.start()
        # Act: twice, drop every connection and skip bars while the client is away
        for at in (START_MS + 100 * 60_000, START_MS + 250 * 60_000):
            assert ws.wait_for(at, timeout=30)
            ws.pause()
            ws.drop()
            ws.skip(25)
            ws.resume()
        runner.join(timeout=60)
    # Assert
    assert not runner.is_alive()
    # every drop is a reconnection, also one that lands while no watch is pending; the 50
    # skipped bars never went out on the stream: the stored series equalling the recording
    # (below) proves they were backfilled, and that the bar open at each drop was not stored
    # with the values it had when the connection went
    assert session.reconnects >= 2
    with open_state_store(tmp_path / "state.db") as store:
        _assert_bars_are_the_recording(store, venue, START_MS - 60 * 60_000)
        reference = _uninterrupted(store)
        trades = [t for t in store.load_trades(RUN_ID) if t.exit_ts is not None]
        assert _trade_keys(trades) == _trade_keys(reference.portfolio.trades)
        assert parity_report(store, RUN_ID).differences == []


def test_failing_discord_webhook_never_blocks_the_engine(
    rest: LocalVenueServer, venue: VenueData, tmp_path: Path
) -> None:
    # Arrange: the webhook answers 429 (retry after 0.2 s), then 500, then works
    end_ms = START_MS + 200 * 60_000
    with (
        WebhookServer() as hook,
        _replay(venue, end_ms) as ws,
    ):
        hook.script(
            [
                (429, {"Retry-After": "0.2"}, {"retry_after": 0.2, "global": False}),
                (500, {}, None),
            ]
        )
        state, status = str(tmp_path / "state.db"), tmp_path / "status.json"
        # Act
        proc = _run_paper(rest, ws, state, status, end_ms - 60_000, "--discord-webhook", hook.url)
        posts = hook.posts
    # Assert: the run completed, and start, trade and shutdown embeds were delivered
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(status.read_text())["steps"] == 200
    assert [p.status for p in posts[:3]] == [429, 500, 204]
    delivered = [p.body for p in posts if p.status == 204]
    titles = [b["embeds"][0]["title"] for b in delivered]
    assert titles[0].startswith("tradeloop started (paper)")
    assert titles[-1] == "tradeloop stopped"
    assert any(t.startswith("Opened") for t in titles)
    assert any(t.startswith("Closed") for t in titles)
    for body in delivered:
        assert body["username"] == "tradeloop"
        embed = body["embeds"][0]
        assert isinstance(embed["color"], int)
        assert all(f["inline"] is True for f in embed.get("fields", []))


def test_sigterm_stops_cleanly_within_a_bound_with_state_saved(
    rest: LocalVenueServer, venue: VenueData, tmp_path: Path
) -> None:
    # Arrange
    end_ms = START_MS + 3_000 * 60_000
    with _replay(venue, end_ms, interval_s=0.05) as ws:
        state, status = str(tmp_path / "state.db"), tmp_path / "status.json"
        cmd = _paper_cmd(state, status, end_ms - 60_000, "-v")
        proc = subprocess.Popen(
            cmd, env=_env(rest, ws), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert ws.wait_for(START_MS + 60 * 60_000, timeout=60)
        # Act
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
        took = time.monotonic() - started
    # Assert
    assert proc.returncode == 0, err[-3000:]
    assert took < 15
    assert "tradeloop stopped" in err
    doc = json.loads(status.read_text())
    assert doc["stopping"] is True
    assert doc["steps"] >= 50
    with open_state_store(state) as store:
        assert store.load_engine_state(RUN_ID)["steps"] == doc["steps"]


def test_restart_with_other_settings_is_refused(
    rest: LocalVenueServer, venue: VenueData, tmp_path: Path
) -> None:
    end_ms = START_MS + 30 * 60_000
    with _replay(venue, end_ms) as ws:
        state, status = str(tmp_path / "state.db"), tmp_path / "status.json"
        first = _run_paper(rest, ws, state, status, end_ms - 60_000)
        assert first.returncode == 0, first.stderr[-2000:]
        written = status.read_text()
        again = _run_paper(rest, ws, state, status, end_ms - 60_000, "--balance", "5000")
    assert again.returncode == 2
    assert "balance" in again.stderr
    assert "--fresh" in again.stderr
    assert status.read_text() == written  # the run's status file is left alone


def test_paper_session_on_postgresql(
    rest: LocalVenueServer, venue: VenueData, tmp_path: Path, pg_url: str
) -> None:
    # Arrange: a clean schema of its own on the real server
    import psycopg

    schema = f"paper_{os.getpid()}"
    with psycopg.connect(pg_url, autocommit=True) as con:
        con.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    end_ms = START_MS + 200 * 60_000
    sep = "&" if "?" in pg_url else "?"
    url = f"{pg_url}{sep}options=-csearch_path%3D{schema}"
    with psycopg.connect(pg_url, autocommit=True) as con:
        con.execute(f"CREATE SCHEMA {schema}")
    try:
        with _replay(venue, end_ms) as ws:
            # Act
            session = _session(rest, ws, tmp_path, end_ms - 60_000)
            object.__setattr__(session.config, "state_url", url)
            assert session.run() == 0
        # Assert
        with open_state_store(url) as store:
            assert store.backend == "postgresql"
            _assert_bars_are_the_recording(store, venue, START_MS - 60 * 60_000)
            assert parity_report(store, RUN_ID).differences == []
            assert store.load_engine_state(RUN_ID)["steps"] == 200
    finally:
        with psycopg.connect(pg_url, autocommit=True) as con:
            con.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def test_risk_file_halt_is_alerted_and_survives_a_restart(
    rest: LocalVenueServer, venue: VenueData, tmp_path: Path
) -> None:
    # Arrange: a risk file with a 0.2% daily loss limit (the strategy loses more than that
    # within the first hours), a webhook, and a run stopped and restarted mid-halt
    risk = tmp_path / "risk.toml"
    risk.write_text('profile = "permissive"\n[kill_switch]\ndaily_loss_pct = 0.002\n')
    end_ms = START_MS + 300 * 60_000
    state, status = str(tmp_path / "state.db"), tmp_path / "status.json"
    with (
        WebhookServer() as hook,
        _replay(venue, end_ms) as ws,
    ):
        extra = ("--risk", str(risk), "--discord-webhook", hook.url)
        # Act
        runs = [
            _run_paper(rest, ws, state, status, until, *extra)
            for until in (START_MS + 150 * 60_000, end_ms - 60_000)
        ]
        titles = [p.body["embeds"][0]["title"] for p in hook.posts if p.status == 204]
        # a restart after the file was loosened is refused: the run keeps its rules
        risk.write_text('profile = "permissive"\n[kill_switch]\ndaily_loss_pct = 0.05\n')
        loosened = _run_paper(rest, ws, state, status, end_ms - 60_000, *extra)
    # Assert: the halt was alerted once, is in the status file, and held after the restart
    for proc in runs:
        assert proc.returncode == 0, proc.stderr[-3000:]
    assert loosened.returncode == 2
    assert "risk: stored" in loosened.stderr
    assert titles.count("Trading halted: daily_loss") == 1
    assert json.loads(status.read_text())["risk_state"] == "halted"
    with open_state_store(state) as store:
        engine = store.load_engine_state(RUN_ID)
        events = engine["risk"]["kill_switch"]["events"]
        assert [e[1] for e in events] == ["daily_loss"]
        halted_at = events[0][0]
        assert halted_at < (START_MS + 150 * 60_000) * 1_000_000  # before the restart
        trades = store.load_trades(RUN_ID)
        assert trades
        assert all(t.entry_ts <= halted_at for t in trades)
        assert store.load_run_meta(RUN_ID)["risk"]["kill_switch"] == {"daily_loss_pct": 0.002}
        assert parity_report(store, RUN_ID).differences == []
        closed = sum(1 for t in trades if t.exit_ts is not None)
        steps = store.load_engine_state(RUN_ID)["steps"]
    listing = subprocess.run(
        [sys.executable, "-m", "tradeloop", "paper-runs", "--state", state, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listing.returncode == 0, listing.stderr[-2000:]
    (row,) = json.loads(listing.stdout)
    assert (row["run_id"], row["risk_state"], row["trades"]) == (RUN_ID, "halted", closed)
    assert row["steps"] == steps
    assert row["steps"] > 0
    assert row["last_bar"] == to_iso((end_ms - 60_000) * 1_000_000)
    assert row["return_pct"] == pytest.approx((row["equity"] / 10_000 - 1) * 100)


def test_a_stop_request_ends_rest_retries_at_once(tmp_path: Path) -> None:
    # Arrange: the exchange's REST host refuses connections, so the session is in the retry
    # back-off of its first call (up to minutes with the default policy)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: connections are refused
    settings = Settings(
        exchanges={
            "binance": ExchangeSettings(
                url=f"http://127.0.0.1:{port}", ws_url=f"ws://127.0.0.1:{port}"
            )
        }
    )
    cfg = _config(tmp_path, settings)
    with WebhookServer() as hook:
        session = PaperSession(SmaCross(), cfg, alerter=DiscordAlerter(hook.url))
        codes: list[int] = []
        runner = threading.Thread(target=lambda: codes.append(session.run()))
        runner.start()
        time.sleep(1.0)  # inside the retries
        # Act
        asked = time.monotonic()
        session.request_stop()
        runner.join(timeout=10)
        titles = [p.body["embeds"][0]["title"] for p in hook.posts if p.status == 204]
    # Assert: a clean stop, well before the retries would have run out, and said so
    assert not runner.is_alive()
    assert codes == [0]
    assert time.monotonic() - asked < 5.0
    assert session.source.stats.retries >= 1
    assert json.loads((tmp_path / "status.json").read_text())["stopping"] is True
    assert titles == ["tradeloop stopped"]


def test_the_day_that_ends_is_summarised_in_an_alert(
    rest: LocalVenueServer, venue: VenueData, tmp_path: Path
) -> None:
    # Arrange: 23:30 -> 00:30 UTC, so one UTC day ends during the session
    start_ms = 1_747_699_200_000 + 1_410 * 60_000
    end_ms = start_ms + 60 * 60_000
    with (
        WebhookServer() as hook,
        _replay(venue, end_ms, start_ms) as ws,
    ):
        settings = Settings(exchanges={"binance": ExchangeSettings(url=rest.url, ws_url=ws.url)})
        cfg = _config(tmp_path, settings, warmup_bars=60, until_ns=(end_ms - 60_000) * 1_000_000)
        strategy = SmaCross(fast=3, slow=8, short=True)
        session = PaperSession(strategy, cfg, alerter=DiscordAlerter(hook.url))
        # Act
        assert session.run() == 0
        bodies = [p.body for p in hook.posts if p.status == 204]
    # Assert: one summary of 2025-05-20 whose numbers match the stored run
    summaries = [b["embeds"][0] for b in bodies if b["embeds"][0]["title"].startswith("Daily")]
    assert len(summaries) == 1
    fields = {f["name"]: f["value"] for f in summaries[0]["fields"]}
    assert fields["day"] == "2025-05-20"
    with open_state_store(tmp_path / "state.db") as store:
        midnight = 1_747_785_600_000_000_000
        closed = [t for t in store.load_trades(RUN_ID) if t.exit_ts is not None]
        on_day = [t for t in closed if t.exit_ts < midnight]
    assert on_day
    assert fields["trades"] == str(len(on_day))
    assert fields["wins"] == str(sum(1 for t in on_day if t.pnl > 0))


STATEFUL = '''
"""The backtesting.py idiom: a counter kept in on_bar, nothing precomputed."""
from tradeloop.core.signal import Signal
from tradeloop.strategy import NO_SIGNALS, Strategy


class EveryNth(Strategy):
    name = "every_nth"

    def on_init(self, view):
        self.count = 0

    def on_bar(self, view, portfolio):
        self.count += 1
        sym = view.symbols[0]
        if portfolio.is_flat(sym):
            if self.count % 20 == 0:
                return [Signal.open_long(sym, 0.5)]
        elif self.count % 20 == 10:
            return [Signal.close(sym)]
        return NO_SIGNALS

    def get_state(self):
        return {"count": self.count}

    def set_state(self, state):
        self.count = state["count"]
'''


def test_a_stateful_strategy_trades_over_the_websocket_and_parity_is_clean(
    rest: LocalVenueServer, venue: VenueData, tmp_path: Path
) -> None:
    # Arrange: a user strategy keeping a counter in on_bar (it gave 0 orders in paper before)
    (tmp_path / "strategies").mkdir()
    (tmp_path / "strategies" / "every_nth.py").write_text(STATEFUL, encoding="utf-8")
    end_ms = START_MS + 200 * 60_000
    state, status = str(tmp_path / "state.db"), tmp_path / "status.json"
    cmd = _paper_cmd(state, status, end_ms - 60_000)
    at = cmd.index("sma_cross")
    cmd[at] = "every_nth"
    cmd = [c for c in cmd if c not in PARAMS]
    run_id = "paper-every_nth-binance-BTCUSDT-1m"
    # Act
    with _replay(venue, end_ms) as ws:
        proc = subprocess.run(
            cmd, env=_env(rest, ws), capture_output=True, text=True, timeout=120, cwd=tmp_path
        )
    parity = subprocess.run(
        [sys.executable, "-m", "tradeloop", "parity", run_id, "--state", state,
         "--strategies-dir", str(tmp_path / "strategies")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    # Assert: 200 live bars -> an entry on every 20th (10), an exit 10 bars after each (9)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open_state_store(state) as store:
        orders = store.load_orders(run_id)
        report = parity_report(store, run_id, strategies_dir=str(tmp_path / "strategies"))
    assert len(orders) == 19
    assert report.orders == 19
    assert report.differences == []
    assert parity.returncode == 0, parity.stdout + parity.stderr
    assert "identical" in parity.stdout
