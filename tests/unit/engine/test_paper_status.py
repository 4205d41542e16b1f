"""The paper session's status file: rewritten after every step when the kernel keeps up,
throttled while a backlog of events is drained."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tradeloop.core.instrument import Instrument
from tradeloop.engine import paper
from tradeloop.engine.config import RunConfig
from tradeloop.engine.live import LiveKernel
from tradeloop.engine.paper import PaperConfig, PaperSession
from tradeloop.engine.status import write_status
from tradeloop.strategy.examples.sma_cross import SmaCross

MINUTE = 60_000_000_000
T0 = 1_747_699_200_000_000_000


def _session(tmp_path: Path) -> tuple[PaperSession, LiveKernel]:
    cfg = PaperConfig(
        exchange="binance",
        symbols=("BTC/USDT",),
        timeframe="1m",
        run_id="r",
        state_url=str(tmp_path / "state.db"),
        status_path=tmp_path / "status.json",
    )
    session = PaperSession(SmaCross(fast=2, slow=3), cfg)
    kernel = LiveKernel(
        SmaCross(fast=2, slow=3),
        {"BTC/USDT": Instrument("BTC/USDT", tick_size=0.01, lot_size=1e-5)},
        "1m",
        RunConfig(balance=10_000),
    )
    session.kernel = kernel
    return session, kernel


def _step(session: PaperSession, kernel: LiveKernel, i: int) -> None:
    price = 100.0 + i
    session._after(kernel.on_bar("BTC/USDT", T0 + i * MINUTE, price, price, price, price, 1.0))


def _steps_in_file(tmp_path: Path) -> int:
    return int(json.loads((tmp_path / "status.json").read_text())["steps"])


def test_status_is_rewritten_after_every_step_without_a_backlog(tmp_path: Path) -> None:
    # Arrange
    session, kernel = _session(tmp_path)
    # Act / Assert: each iteration (one event, empty queue) leaves the file at that step
    for i in range(5):
        _step(session, kernel, i)
        session._housekeeping(kernel, backlog=False)
        assert _steps_in_file(tmp_path) == i + 1


def test_status_waits_for_the_backlog_to_drain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange: count the real writes; a first write, then steps while events are queued
    writes: list[int] = []

    def counted(path: Path, status: dict) -> None:
        writes.append(status["steps"])
        write_status(path, status)

    monkeypatch.setattr(paper, "write_status", counted)
    session, kernel = _session(tmp_path)
    _step(session, kernel, 0)
    session._housekeeping(kernel, backlog=False)
    # Act
    started = time.monotonic()
    for i in range(1, 40):
        _step(session, kernel, i)
        session._housekeeping(kernel, backlog=True)
    elapsed = time.monotonic() - started
    queued_writes = len(writes) - 1
    session._housekeeping(kernel, backlog=False)  # the queue is empty again
    # Assert: at most one rewrite per 0.5 s while queued, and the latest step once drained
    assert queued_writes <= 1 + elapsed / 0.5
    assert queued_writes < 39
    assert writes[-1] == 40
    assert _steps_in_file(tmp_path) == 40
