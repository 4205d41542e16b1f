"""Failover router: the backup takes over at once, nothing twice, nothing lost, switch back."""

from __future__ import annotations

import logging

import pytest

from tradeloop.core.bar import Bar
from tradeloop.core.errors import ConfigError
from tradeloop.core.market_events import BookSnapshot, MarketTrade, StreamBar
from tradeloop.data.stream.failover import FailoverRouter


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def trade(src: str, i: int) -> MarketTrade:
    return MarketTrade(src, "BTC/USDT", i, i, 100.0 + i, 1.0, 1, str(i))


def bar(src: str, i: int, closed: bool = True) -> StreamBar:
    return StreamBar(src, 0, Bar("BTC/USDT", "1m", i * 60, 1.0, 2.0, 0.5, 1.5, 3.0), closed)


def test_stall_switches_to_backup_with_every_trade_once(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    r = FailoverRouter("a", "b", stall_s=0.5, recover_s=10.0, clock=clock)
    out = []
    for i in range(100):
        clock.t += 0.01
        if i < 60:  # the primary dies after trade 59
            out += r.offer("a", trade("a", i))
            out += r.offer("a", bar("a", i)) if i % 10 == 0 else []
        out += r.offer("b", trade("b", i))
        out += r.offer("b", bar("b", i)) if i % 10 == 0 else []
    assert r.active == "a"  # not stalled yet: 0.4 s of silence
    clock.t += 0.2
    with caplog.at_level(logging.WARNING):
        out += r.check()
    assert r.active == "b"
    for i in range(100, 120):
        clock.t += 0.01
        out += r.offer("b", trade("b", i))
    trades = [e for e in out if isinstance(e, MarketTrade)]
    assert [t.trade_id for t in trades] == [str(i) for i in range(120)]
    assert [t.venue for t in trades[:60]] == ["a"] * 60
    bars = [e.bar.ts for e in out if isinstance(e, StreamBar)]
    assert bars == [i * 60 for i in range(0, 100, 10)]
    (switch,) = r.switches
    assert switch.replayed == 40 + 4  # trades 60..99 and bars 60..90 from the buffer
    assert "failover a -> b" in caplog.text


def test_disconnect_switches_at_once_and_primary_recovery_switches_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    r = FailoverRouter("a", "b", stall_s=5.0, recover_s=2.0, clock=clock)
    r.offer("a", BookSnapshot("a", "BTC/USDT", 0, 0, 1, ((1.0, 1.0),), ((2.0, 1.0),)))
    r.offer("b", BookSnapshot("b", "BTC/USDT", 0, 0, 7, ((1.5, 1.0),), ((2.0, 2.0),)))
    out = r.on_status("a", "disconnected")
    assert r.active == "b"
    # the backup's own book comes first
    assert isinstance(out[0], BookSnapshot)
    assert out[0].venue == "b"
    assert out[0].seq == 7
    assert r.offer("a", trade("a", 1)) == []  # the old primary's events are standby now
    forwarded = [t.trade_id for t in r.offer("b", trade("b", 1)) if isinstance(t, MarketTrade)]
    # events from a source that went down do not make it healthy again; reconnecting does
    clock.t += 3.0
    r.check()
    assert r.active == "b"
    r.on_status("a", "connected")
    snapshots = 0
    with caplog.at_level(logging.INFO, logger="tradeloop.data.stream.failover"):
        for i in range(2, 40):
            clock.t += 0.1
            for e in r.offer("a", trade("a", i)) + r.offer("b", trade("b", i)):
                if isinstance(e, MarketTrade):
                    forwarded.append(e.trade_id)
                else:  # switching back hands over the primary's own book
                    assert isinstance(e, BookSnapshot)
                    assert e.venue == "a"
                    snapshots += 1
        r.check()
    for i in range(40, 45):
        forwarded += [e.trade_id for e in r.offer("a", trade("a", i)) if isinstance(e, MarketTrade)]
        forwarded += [e.trade_id for e in r.offer("b", trade("b", i)) if isinstance(e, MarketTrade)]
    assert forwarded == [str(i) for i in range(1, 45)]  # each once, in order
    assert snapshots == 1
    assert r.active == "a"
    assert [s.reason for s in r.switches] == ["a disconnected", "primary recovered"]
    assert "primary recovered" in caplog.text


def test_no_switch_to_a_backup_that_is_down() -> None:
    r = FailoverRouter("a", "b", clock=Clock())
    r.on_status("b", "disconnected")
    assert r.on_status("a", "disconnected") == []
    assert r.active == "a"
    assert r.switches == []


def test_same_source_twice_is_refused() -> None:
    with pytest.raises(ConfigError):
        FailoverRouter("a", "a")
