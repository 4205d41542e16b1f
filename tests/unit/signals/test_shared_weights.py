"""Weights follow the adapting process: SharedWeights, AdaptClock, service roles."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from pydantic import BaseModel

from tradeloop.bus import InProcessBus
from tradeloop.config.settings import Settings
from tradeloop.core.errors import ConfigError
from tradeloop.signals import (
    AdaptClock,
    AdaptiveWeights,
    AdaptSchedule,
    SharedWeights,
    SignalService,
    TradeFeedback,
    store_weights,
)
from tradeloop.store import AnalyticsStore

DEFAULTS = {"lev_10x": 1.0, "lev_25x": 1.0}


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _Source:
    """What the consumer last broadcast (a plain value; each read is counted)."""

    def __init__(self) -> None:
        self.latest: AdaptiveWeights | None = None
        self.fail = False
        self.reads = 0

    def __call__(self) -> AdaptiveWeights | None:
        self.reads += 1
        if self.fail:
            raise ConnectionError("server gone")
        return self.latest


def test_shared_weights_rereads_at_most_every_refresh_interval() -> None:
    # Arrange
    source, clock = _Source(), _Clock()
    shared = SharedWeights(source, DEFAULTS, refresh_s=2.0, clock=clock)
    # Act / Assert: nothing broadcast yet -> defaults, read once
    assert shared() == DEFAULTS
    source.latest = AdaptiveWeights(version=3, weights={"lev_10x": 1.4}, reason="ema")
    clock.now = 1.9
    assert shared() == DEFAULTS  # within the refresh interval: no read
    assert source.reads == 1
    clock.now = 2.0
    assert shared() == {"lev_10x": 1.4, "lev_25x": 1.0}  # missing component keeps its default
    assert (shared.version, shared.changes, source.reads) == (3, 1, 2)


def test_shared_weights_keep_last_version_while_source_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = _Source()
    source.latest = AdaptiveWeights(version=2, weights={"lev_10x": 0.5, "lev_25x": 2.0})
    shared = SharedWeights(source, DEFAULTS, refresh_s=0.0)
    assert shared()["lev_25x"] == 2.0
    source.fail = True
    with caplog.at_level(logging.WARNING, logger="tradeloop.signals.weights"):
        for _ in range(5):
            assert shared() == {"lev_10x": 0.5, "lev_25x": 2.0}
    assert shared.version == 2
    assert sum("cannot read shared weights" in r.getMessage() for r in caplog.records) == 1


def test_adapt_clock_every_n_outcomes_counted_over_the_run() -> None:
    clock = _Clock()
    adapt = AdaptClock(AdaptSchedule(every_outcomes=10, every_s=30.0), clock=clock)
    # the multiples of 10 are the adaptation points: 9 not due, 10 due
    assert not adapt.due(9)
    assert adapt.due(10)
    adapt.mark(12)
    assert adapt.pending(12) == 0
    # after an update at 12 the next one is at 20 (the next multiple), not at 22
    assert not adapt.due(19)
    assert adapt.due(20)
    assert adapt.pending(20) == 8
    with pytest.raises(ValueError, match="every_outcomes"):
        AdaptSchedule(every_outcomes=0)


def test_adapt_clock_every_t_seconds_without_outcomes() -> None:
    clock = _Clock()
    adapt = AdaptClock(AdaptSchedule(every_outcomes=10, every_s=30.0), clock=clock)
    clock.now += 29.9
    assert not adapt.due(0)
    clock.now += 0.1
    assert adapt.due(0)
    adapt.mark(3)  # a timed update; the count still adapts at the next multiple (10)
    clock.now += 29.0
    assert not adapt.due(9)
    assert adapt.due(10)
    # a new schedule keeps the last update's time and count
    faster = adapt.with_schedule(AdaptSchedule(every_outcomes=2, every_s=30.0))
    assert not faster.due(3)
    assert faster.due(4)
    clock.now += 1.0
    assert faster.due(3)


def test_adapt_clock_restart_adapts_at_the_same_outcomes_as_an_uninterrupted_run() -> None:
    schedule = AdaptSchedule(every_outcomes=10, every_s=1e9)
    clock = _Clock()
    through = AdaptClock(schedule, clock=clock)
    at_through: list[int] = []
    for n in range(1, 36):
        if through.due(n):
            through.mark(n)
            at_through.append(n)
    # a run stopped after 14 outcomes (its update at 10 done) and started again from the store
    first = AdaptClock(schedule, clock=clock)
    at_restarted: list[int] = []
    for n in range(1, 15):
        if first.due(n):
            first.mark(n)
            at_restarted.append(n)
    second = AdaptClock(schedule, stored=14, clock=clock)
    assert second.pending(14) == 0
    for n in range(15, 36):
        if second.due(n):
            second.mark(n)
            at_restarted.append(n)
    assert at_through == at_restarted == [10, 20, 30]


def _fb(i: int, component: str, win: bool, now_ns: int) -> TradeFeedback:
    return TradeFeedback(
        signal_id=f"s{i}",
        symbol="BTCUSDT",
        side="long",
        entry_price=100.0,
        exit_price=101.0 if win else 99.0,
        entry_ts=now_ns - 1_000,
        exit_ts=now_ns,
        pnl=1.0 if win else -1.0,
        pnl_pct=0.01 if win else -0.01,
        source="ext",
        component=component,
    )


def test_consumer_role_adapts_every_n_outcomes_and_broadcasts(tmp_path: Path) -> None:
    # Arrange: a consumer service on an in-process bus, listening to its own broadcasts
    bus = InProcessBus()
    settings = Settings(analytics_path=tmp_path / "a.duckdb", weights_channel="w")
    service = SignalService(settings, bus=bus, role="consumer")
    assert service.consumer is not None
    assert service.adaptive is not None
    seen: list[BaseModel] = []
    bus.subscribe("w", seen.append)
    schedule = AdaptSchedule(every_outcomes=10, every_s=3600.0)
    now = time.time_ns()
    # Act: 9 outcomes -> not due; the 10th -> an update with a new version
    for i in range(9):
        service.consumer.handle(_fb(i, "lev_10x", True, now))
    service.consumer.flush()
    before = service.adapt_if_due(schedule)
    service.consumer.handle(_fb(9, "lev_10x", True, now))
    service.consumer.flush()
    change = service.adapt_if_due(schedule)
    # Assert
    assert before is None
    assert change is not None
    assert service.adaptive.version == 2
    assert service.adaptive.weights["lev_10x"] > 1.0
    assert [m.version for m in seen if isinstance(m, AdaptiveWeights)] == [2]
    assert seen[-1].weights == service.adaptive.current()  # type: ignore[attr-defined]
    # the writer released the file between operations: a reader sees the same version
    reader = AnalyticsStore(settings.analytics_path, read_only=True, hold=False)
    read = store_weights(reader)()
    assert read is not None
    assert read.version == 2
    service.close()


def test_restarted_consumer_role_counts_the_stored_outcomes(tmp_path: Path) -> None:
    # Arrange: a consumer stores 14 outcomes (adapting at 10) and stops
    settings = Settings(analytics_path=tmp_path / "a.duckdb", weights_channel="w")
    schedule = AdaptSchedule(every_outcomes=10, every_s=3600.0)
    now = time.time_ns()
    first = SignalService(settings, bus=InProcessBus(), role="consumer")
    assert first.consumer is not None
    updates: list[int] = []
    for i in range(14):
        first.consumer.handle(_fb(i, "lev_10x", True, now))
        first.consumer.flush()
        before = first.adaptations
        first.adapt_if_due(schedule)
        if first.adaptations > before:
            updates.append(i + 1)
    first.close()
    # Act: started again on the same file, it adapts at the 20th outcome of the run
    second = SignalService(settings, bus=InProcessBus(), role="consumer")
    assert second.consumer is not None
    for i in range(14, 25):
        second.consumer.handle(_fb(i, "lev_10x", True, now))
        second.consumer.flush()
        before = second.adaptations
        second.adapt_if_due(schedule)
        if second.adaptations > before:
            updates.append(i + 1)
    second.close()
    # Assert: the same points as one uninterrupted consumer
    assert updates == [10, 20]


def test_reader_role_reports_the_writers_weights_and_never_writes(tmp_path: Path) -> None:
    path = tmp_path / "r.duckdb"
    settings = Settings(analytics_path=path)
    reader = SignalService(settings, role="reader")
    assert reader.status()["weights"]["version"] == 0  # nothing written yet: empty, no error
    assert not path.exists()
    writer = SignalService(settings, role="consumer")
    assert writer.consumer is not None
    writer.consumer.handle(_fb(1, "lev_10x", True, time.time_ns()))
    writer.consumer.flush()
    status = reader.status()
    assert status["weights"]["version"] == 1
    assert status["feedback"]["stored_total"] == 1
    assert reader.metrics()["weight_history"][0]["reason"] == "initial defaults"
    assert reader.store is not None
    with pytest.raises(ConfigError, match="read-only"):
        reader.store.save_weights({"x": 1.0}, 0, "no")
    writer.close()


def test_publisher_role_opens_no_store_and_uses_its_weight_source(tmp_path: Path) -> None:
    path = tmp_path / "p.duckdb"
    source = _Source()
    shared = SharedWeights(source, {"lev_5x": 1.0}, refresh_s=0.0)
    service = SignalService(
        Settings(analytics_path=path), bus=InProcessBus(), role="publisher", weights=shared
    )
    pub = service.publisher("BTC/USDT")
    assert pub is not None
    pub.on_bar(0, 100, 101, 99, 100.5, 50.0)
    source.latest = AdaptiveWeights(version=4, weights={"lev_5x": 2.0})
    pub.on_bar(1, 100, 101, 99, 100.5, 50.0)
    assert source.reads == 2  # re-read on every bar with refresh_s=0
    assert pub.last == pub.heatmap.top_signals(5, {"lev_5x": 2.0})
    assert service.store is None
    assert not path.exists()
    assert service.weights() == (4, {"lev_5x": 2.0})
