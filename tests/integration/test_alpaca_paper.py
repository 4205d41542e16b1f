"""``tradeloop paper`` on Alpaca's data: recorded SPY minute bars from the local Alpaca venue's
data stream (msgpack, as alpaca-py reads it) through the one paper loop, with the XNYS
calendar deciding which bars are traded. Every bar sent is counted on arrival; bars sent while
the data stream was down come back over REST (backfill) once alpaca-py has reconnected."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tradeloop.engine.paper import PaperConfig, PaperSession
from tradeloop.strategy.examples.sma_cross import SmaCross
from tradeloop.testing.venue.alpaca import (
    DEFAULT_KEY,
    DEFAULT_SECRET,
    AlpacaServer,
    load_equity_minutes,
)

# 2011-01-04: pre-market bars, the 14:30 UTC open, then the regular session
FIRST = "2011-01-04T13:50:00Z"
BARS = 120
DROP_AT, LOST = 70, 5  # in the session: 5 bars sent while the data stream is down


def wait_for(cond: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.01)


@pytest.mark.parametrize("calendar", ["XNYS", None], ids=["calendar", "alpaca-clock"])
def test_minute_bars_from_the_alpaca_stream_drive_a_paper_session(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, calendar: str | None
) -> None:
    """With ``--calendar XNYS`` the exchange calendar decides the session; without it,
    Alpaca's market clock (``/v2/clock``) does: the same bars are traded."""
    import pandas as pd

    spy = load_equity_minutes(shared_data)
    start = int((spy.ts < pd.Timestamp(FIRST).value).sum())
    with AlpacaServer([spy], start=start) as venue:
        monkeypatch.setenv("TRADELOOP_ALPACA_API_KEY", DEFAULT_KEY)
        monkeypatch.setenv("TRADELOOP_ALPACA_API_SECRET", DEFAULT_SECRET)
        monkeypatch.setenv("TRADELOOP_ALPACA_REQUESTS_PER_MINUTE", "100000")
        monkeypatch.setenv("TRADELOOP_ALPACA_URL", venue.url)
        monkeypatch.setenv("TRADELOOP_ALPACA_WS_URL", f"ws://127.0.0.1:{venue.port}")
        last_ts = int(venue.timeline[start + BARS - 1][0])
        config = PaperConfig(
            exchange="alpaca",
            symbols=("SPY",),
            timeframe="1m",
            run_id="alpaca-paper",
            state_url=str(tmp_path / "state.db"),
            status_path=tmp_path / "status.json",
            warmup_bars=30,
            calendar=calendar,
            until_ns=last_ts,
            heartbeat_s=3600,
        )
        session = PaperSession(SmaCross(fast=3, slow=8), config)
        result: list[int] = []
        runner = threading.Thread(target=lambda: result.append(session.run()), daemon=True)
        runner.start()
        wait_for(lambda: venue.data_subscribers == 1)
        sent = 0

        def taken() -> bool:
            return session.messages >= sent - lost or not runner.is_alive()

        lost = 0
        while sent < BARS and runner.is_alive():
            if sent == DROP_AT:  # the data stream drops; bars published meanwhile are lost
                venue.drop_streams(trade=False, data=True)
                wait_for(lambda: venue.data_subscribers == 0)
                lost = venue.advance(LOST)
                sent += lost
                wait_for(lambda: venue.data_subscribers == 1)  # alpaca-py reconnected
            sent += venue.advance(1)
            wait_for(taken)  # lockstep: the session took the bar before the next one is sent
        runner.join(20)
        assert not runner.is_alive()
        assert result == [0]
        kernel = session.kernel
        assert kernel is not None
        # every bar in is accounted for: traded in-session, or outside the session
        published = [ts for _, ts in venue.published]
        assert len(published) == BARS
        assert venue.bars_sent == session.messages == BARS - LOST
        assert session.backfilled == LOST  # the missed minutes came from REST bars
        assert session.reconnects == 1
        in_session = [ts for ts in published if ts >= pd.Timestamp("2011-01-04T14:30Z").value]
        assert session.outside_session == BARS - len(in_session)
        live = [bar[0] for bar, is_live in kernel.series["SPY"].rows() if is_live]
        assert live == in_session
        assert kernel.steps == len(in_session)
        # warm-up came from Alpaca's REST bars: the pre-market bars before the open
        history = [bar[0] for bar, is_live in kernel.series["SPY"].rows() if not is_live]
        assert history
        assert all(ts < in_session[0] for ts in history)
        assert set(history) <= {int(t) for t in spy.ts}
        # the strategy traded on these bars through the simulated broker (paper)
        assert kernel.signals > 0
        assert venue.auth_failures == 0


def test_tradeloop_paper_cli_on_alpaca_equals_its_backtest_replay(
    shared_data: Path, tmp_path: Path
) -> None:
    import os
    import subprocess
    import sys

    import pandas as pd

    from tradeloop.core.time import to_iso
    from tradeloop.engine.parity import parity_report
    from tradeloop.store.state import open_state_store

    spy = load_equity_minutes(shared_data)
    start = int((spy.ts < pd.Timestamp(FIRST).value).sum())
    n = 150
    with AlpacaServer([spy], start=start) as venue:
        last_ts = int(venue.timeline[start + n - 1][0])
        state, status = str(tmp_path / "state.db"), tmp_path / "status.json"
        env = dict(os.environ)
        env.update(
            TRADELOOP_ALPACA_API_KEY=DEFAULT_KEY,
            TRADELOOP_ALPACA_API_SECRET=DEFAULT_SECRET,
            TRADELOOP_ALPACA_URL=venue.url,
            TRADELOOP_ALPACA_WS_URL=f"ws://127.0.0.1:{venue.port}",
        )
        env.pop("TRADELOOP_DISCORD_WEBHOOK_URL", None)
        cmd = [
            sys.executable, "-m", "tradeloop", "paper", "--strategy", "sma_cross",
            "--exchange", "alpaca", "--symbol", "SPY", "--timeframe", "1m",
            "--calendar", "XNYS", "-p", "fast=3", "-p", "slow=8", "--run-id", "spy-cli",
            "--state", state, "--status-file", str(status), "--warmup", "30",
            "--until", to_iso(last_ts),
        ]  # fmt: skip
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            wait_for(lambda: venue.data_subscribers == 1 or proc.poll() is not None, 60)
            venue.run_timer(0.005)
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, err.decode()[-2000:]
        assert DEFAULT_SECRET not in out.decode() + err.decode()
    in_session = [
        ts for _, ts in venue.published if pd.Timestamp("2011-01-04T14:30Z").value <= ts <= last_ts
    ]
    with open_state_store(state) as store:
        report = parity_report(store, "spy-cli")
    assert report.live_bars == len(in_session)
    assert report.orders > 0
    assert report.differences == []
