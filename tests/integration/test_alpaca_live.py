"""``tradeloop live --broker alpaca`` against the local Alpaca venue, compared with
``tradeloop paper`` on the same recorded SPY minutes (the venue fills with paper's next-open
rule): the same orders, fills at the same prices and times, positions equal to the venue's."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tradeloop.engine.live_session import LiveOptions, LiveSession
from tradeloop.engine.paper import PaperConfig, PaperSession
from tradeloop.strategy.examples.sma_cross import SmaCross
from tradeloop.testing.venue.alpaca import (
    DEFAULT_KEY,
    DEFAULT_SECRET,
    AlpacaServer,
    MinuteBars,
    load_equity_minutes,
)

FIRST = "2011-01-04T14:00:00Z"  # pre-market, then the session from 14:30
BARS = 110
PARAMS = {"fast": 3, "slow": 8}


def wait_for(cond: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.005)


def _env(monkeypatch: pytest.MonkeyPatch, venue: AlpacaServer) -> None:
    monkeypatch.setenv("TRADELOOP_ALPACA_API_KEY", DEFAULT_KEY)
    monkeypatch.setenv("TRADELOOP_ALPACA_API_SECRET", DEFAULT_SECRET)
    monkeypatch.setenv("TRADELOOP_ALPACA_REQUESTS_PER_MINUTE", "100000")
    monkeypatch.setenv("TRADELOOP_ALPACA_URL", venue.url)
    monkeypatch.setenv("TRADELOOP_ALPACA_WS_URL", f"ws://127.0.0.1:{venue.port}")


def _config(tmp_path: Path, name: str, until: int) -> PaperConfig:
    return PaperConfig(
        exchange="alpaca",
        symbols=("SPY",),
        timeframe="1m",
        balance=10_000.0,
        run_id=name,
        state_url=str(tmp_path / f"{name}.db"),
        status_path=tmp_path / f"{name}.json",
        warmup_bars=30,
        calendar="XNYS",
        until_ns=until,
        heartbeat_s=3600,
    )


def _run_lockstep(
    session: PaperSession, venue: AlpacaServer, live: bool
) -> tuple[list[int], threading.Thread]:
    """Run ``session`` on a thread; publish one bar at a time, each once the session has
    finished the previous one (and, live, once the client has every fill the bar made)."""
    done: list[int] = []
    handle = session._on_kline

    def counted(kernel: Any, ev: Any) -> None:
        handle(kernel, ev)
        done.append(ev.ts)

    session._on_kline = counted  # type: ignore[method-assign]
    result: list[int] = []
    runner = threading.Thread(target=lambda: result.append(session.run()), daemon=True)
    runner.start()
    wait_for(lambda: venue.data_subscribers == 1)
    if live:
        wait_for(lambda: venue.trade_listeners == 1)
    sent = 0

    def received() -> bool:  # the client has every trade update the venue sent
        broker = session.venue_broker  # type: ignore[attr-defined]
        return bool(broker.client.stream_events >= venue.events_sent)

    def finished() -> bool:
        return len(done) >= sent or not runner.is_alive()

    while sent < BARS and runner.is_alive():
        venue.fill_next()
        if live:
            wait_for(received)
        sent += venue.publish_held()
        wait_for(finished)
    runner.join(30)
    assert result == [0]
    return done, runner


def _orders(session: PaperSession) -> list[tuple[int, str, str, str]]:
    kernel = session.kernel
    assert kernel is not None
    return [
        (o.order.ts_created, o.order.symbol, o.order.side.value, str(o.status))
        for _, o in sorted(kernel._orders.items())
    ]


def paper_then_live(
    spy: MinuteBars,
    params: dict[str, float],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[PaperSession, LiveSession, AlpacaServer, AlpacaServer]:
    """SmaCross(``params``) over the same ``BARS`` SPY minutes, in lockstep with a local
    Alpaca venue: paper first, then live on a fresh venue (both venues returned, stopped,
    with their books and request logs)."""
    start = int((spy.ts < pd.Timestamp(FIRST).value).sum())
    until = int(spy.ts[start + BARS - 1])
    with AlpacaServer([spy], start=start, cash=10_000.0) as paper_venue:
        _env(monkeypatch, paper_venue)
        paper = PaperSession(SmaCross(**params), _config(tmp_path, "paper", until))
        _run_lockstep(paper, paper_venue, live=False)
    with AlpacaServer([spy], start=start, cash=10_000.0) as venue:
        _env(monkeypatch, venue)
        live = LiveSession(
            SmaCross(**params),
            _config(tmp_path, "live", until),
            live=LiveOptions(broker="alpaca", reconcile_every_s=0),
        )
        _run_lockstep(live, venue, live=True)
    return paper, live, paper_venue, venue


def test_live_on_alpaca_places_the_orders_paper_makes(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paper, live, paper_venue, venue = paper_then_live(
        load_equity_minutes(shared_data), PARAMS, tmp_path, monkeypatch
    )
    assert paper_venue.order_count() == 0  # paper never talks to the venue's order API
    book = venue.book
    positions = {s: p.qty for s, p in book.positions.items()}
    venue_orders = [o for o in book.orders.values() if o.parent is None]
    paper_orders, live_orders = _orders(paper), _orders(live)
    assert paper_orders, "the strategy placed no order: the comparison would prove nothing"
    assert live_orders == paper_orders
    # one venue order per order of the run, each with the run's deterministic client id
    assert len(venue_orders) == len(live_orders)
    assert len({o.client_order_id for o in venue_orders}) == len(venue_orders)
    # fills: same bar, same price (the venue's next-open rule = paper's), same side
    pf = [(f.ts, f.side.value, f.price) for f in paper.kernel.broker.fills()]  # type: ignore[union-attr]
    lf = [(f.ts, f.side.value, f.price) for f in live.kernel.broker.fills()]  # type: ignore[union-attr]
    assert lf == pf
    pq = [f.quantity for f in paper.kernel.broker.fills()]  # type: ignore[union-attr]
    lq = [f.quantity for f in live.kernel.broker.fills()]  # type: ignore[union-attr]
    # sizes: paper sizes an equity fraction at the fill's open, live at the last close when
    # it sends the order; the same fraction, a hair apart
    assert all(math.isclose(a, b, rel_tol=1e-3) for a, b in zip(pq, lq, strict=True))
    # the live portfolio is the venue's account
    ours = {s: p.signed_quantity for s, p in live.kernel.portfolio.positions.items()}  # type: ignore[union-attr]
    assert ours.keys() == positions.keys()
    assert all(math.isclose(ours[s], positions[s], abs_tol=1e-9) for s in ours)


def test_tradeloop_live_cli_survives_a_lost_answer_and_a_kill_before_the_answer(
    shared_data: Path, tmp_path: Path
) -> None:
    """``tradeloop live --broker alpaca`` as a user runs it. The second order's answer is lost
    (recovered by client id); the process is killed (-9) while the third order's answer is
    pending at a venue that has accepted it, then restarted with the same arguments: never a
    second order for one intent, the run's positions equal the venue's, keys never shown."""
    import json
    import os
    import signal
    import subprocess
    import sys

    from tradeloop.core.time import to_iso
    from tradeloop.store.state import open_state_store
    from tradeloop.testing.venue.alpaca import AlpacaFault

    spy = load_equity_minutes(shared_data)
    start = int((spy.ts < pd.Timestamp(FIRST).value).sum())
    until = int(spy.ts[start + 120])
    state, status = tmp_path / "kill.db", tmp_path / "status.json"
    with AlpacaServer([spy], start=start, cash=10_000.0) as venue:
        lost = venue.add_fault(AlpacaFault("lost", path="/v2/orders", method="POST", at=2))
        hang = venue.add_fault(
            AlpacaFault("hang", path="/v2/orders", method="POST", at=3, hang_s=30.0)
        )
        env = dict(os.environ)
        env.update(
            TRADELOOP_ALPACA_API_KEY=DEFAULT_KEY,
            TRADELOOP_ALPACA_API_SECRET=DEFAULT_SECRET,
            TRADELOOP_ALPACA_URL=venue.url,
            TRADELOOP_ALPACA_WS_URL=f"ws://127.0.0.1:{venue.port}",
        )
        env.pop("TRADELOOP_DISCORD_WEBHOOK_URL", None)
        cmd = [
            sys.executable, "-m", "tradeloop", "live", "--broker", "alpaca",
            "--exchange", "alpaca", "--symbol", "SPY", "--strategy", "sma_cross",
            "-p", "fast=3", "-p", "slow=8", "--timeframe", "1m", "--calendar", "XNYS",
            "--balance", "10000", "--run-id", "live-kill", "--state", str(state),
            "--status-file", str(status), "--warmup", "30", "--until", to_iso(until),
            "--reconcile-every", "0",
        ]  # fmt: skip

        def launch() -> subprocess.Popen[bytes]:
            return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

        first = launch()
        try:
            wait_for(lambda: venue.trade_listeners == 1 or first.poll() is not None, 60)
            venue.run_timer(0.02)
            # the third order reached the venue and was accepted; its answer hangs
            wait_for(lambda: hang.fired == 1 or first.poll() is not None, 60)
            os.kill(first.pid, signal.SIGKILL)
            first.wait(10)
            venue.advance(3)  # minutes pass while the process is dead
            venue.stop_timer()
        finally:
            if first.poll() is None:
                first.kill()
        assert venue.order_count() == 3
        hung_id = max(
            (o for o in venue.book.orders.values() if o.parent is None),
            key=lambda o: o.created_at,
        ).client_order_id
        second = launch()
        try:
            wait_for(lambda: venue.trade_listeners == 1 or second.poll() is not None, 60)
            venue.run_timer(0.02)
            out, err = second.communicate(timeout=120)
        finally:
            if second.poll() is None:
                second.kill()
        text = out.decode() + err.decode()
        assert second.returncode == 0, text[-3000:]
        assert lost.fired == 1
        venue_orders = [o for o in venue.book.orders.values() if o.parent is None]
        venue_pos = {s: p.qty for s, p in venue.book.positions.items()}
    ids = [o.client_order_id for o in venue_orders]
    assert len(ids) == len(set(ids))  # never a second order for one intent
    assert ids.count(hung_id) == 1
    assert len(ids) > 3  # the restarted run went on trading
    with open_state_store(str(state)) as store:
        run = store.load_run("live-kill")
        orders = {o.order.id: o for o in store.load_orders("live-kill")}
    assert run is not None
    assert run.portfolio is not None
    ours = {s: p.signed_quantity for s, p in run.portfolio.positions.items()}
    assert ours.keys() == venue_pos.keys()
    assert all(math.isclose(ours[s], venue_pos[s], abs_tol=1e-9) for s in ours)
    sent = [o for o in orders.values() if str(o.status) != "rejected"]
    assert len(sent) == len(ids)
    assert all(str(o.status) == "filled" for o in sent)
    doc = json.loads(status.read_text())
    assert doc["mode"] == "live"
    assert doc["venue"]["name"] == "alpaca"
    assert doc["venue"]["reconciliations"] >= 1
    first_out = b"".join(x for x in (first.stdout.read(), first.stderr.read()) if x)  # type: ignore[union-attr]
    for blob in (
        text,
        first_out.decode(),
        status.read_text(),
        state.read_bytes().decode("latin-1"),
    ):
        assert DEFAULT_SECRET not in blob
