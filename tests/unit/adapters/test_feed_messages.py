"""The live bar feed on ccxt.pro: bar closure inferred from ccxt's unified candles (no "final"
flag), the venue clock, bars interrupted by a disconnect; hosts from the settings; backoff."""

from __future__ import annotations

import queue
import random
from pathlib import Path
from typing import Any

import pytest

from tradeloop.adapters.feeds import FeedStatus
from tradeloop.adapters.streams.ccxt_source import CcxtMarketSource, backoff_delay
from tradeloop.adapters.streams.kline_feed import KlineFeed
from tradeloop.config.settings import ExchangeSettings, load_settings
from tradeloop.core.errors import ConfigError
from tradeloop.core.market_events import StreamBar

MIN = 60_000  # ms
NS = 1_000_000
T0 = 1_748_736_000_000  # 2025-06-01 00:00 UTC (ms)


class Clock:
    """A settable wall clock (ns)."""

    def __init__(self, ms: int) -> None:
        self.ns = ms * NS

    def __call__(self) -> int:
        return self.ns

    def at(self, ms: float) -> None:
        self.ns = int(ms * NS)


def _source(clock: Clock, grace_s: float = 2.0) -> CcxtMarketSource:
    return CcxtMarketSource(
        "binance", ["BTC/USDT"], ("ohlcv",), timeframe="1m", close_grace_s=grace_s, clock_ns=clock
    )


def _candle(i: int, close: float, volume: float = 1.0) -> list[float]:
    return [T0 + i * MIN, 100.0, max(100.0, close), min(100.0, close), close, volume]


class Run:
    """Feeds candles to a source's ohlcv handling as ccxt's cache would hold them."""

    def __init__(self, source: CcxtMarketSource) -> None:
        self.source = source
        self.cache: list[list[float]] = []
        self.state: dict[str, Any] = {}
        self.out: list[StreamBar] = []

        class Exchange:
            def __init__(self, cache: list[list[float]]) -> None:
                self.ohlcvs = {"BTC/USDT": {"1m": cache}}

        source.exchange = Exchange(self.cache)

    def update(self, candle: list[float], *, quiet: bool = False) -> None:
        """One kline message (``quiet``: the stream then goes quiet, a drain runs)."""
        for i, c in enumerate(self.cache):
            if c[0] == candle[0]:
                self.cache[i] = candle
                break
        else:
            self.cache.append(candle)
        self.source._emit_ohlcv("BTC/USDT", list(self.cache), self.state, self.emit, partial=False)
        if quiet:
            self.drain()

    def drain(self) -> None:
        self.source._drain_ohlcv("BTC/USDT", self.state, self.emit)

    def emit(self, event: object) -> None:
        assert isinstance(event, StreamBar)
        self.out.append(event)

    def closed(self) -> list[tuple[int, float]]:
        return [((b.bar.ts // NS - T0) // MIN, b.bar.close) for b in self.out if b.closed]


def test_a_bar_closes_when_the_next_one_opens_once_with_its_final_values() -> None:
    clock = Clock(T0)
    run = Run(_source(clock))
    run.update(_candle(0, 100.0))
    clock.at(T0 + 30_000)
    run.update(_candle(0, 101.0))
    clock.at(T0 + 59_000)
    run.update(_candle(0, 102.0))  # its final values, then the next bar in the same burst
    clock.at(T0 + MIN + 50)
    run.update(_candle(1, 100.0))
    run.update(_candle(0, 99.0))  # a late update of a closed bar is dropped
    assert run.closed() == [(0, 102.0)]
    # a new bar's first update comes at once (its open); later updates of the bar in
    # progress wait for a quiet stream, so bar 0's final values never came as in-progress
    assert [(b.closed, b.bar.ts // NS, b.bar.close) for b in run.out] == [
        (False, T0, 100.0), (True, T0, 102.0), (False, T0 + MIN, 100.0),
    ]  # fmt: skip
    run.update(_candle(1, 100.5), quiet=True)
    assert [(b.closed, b.bar.close) for b in run.out[3:]] == [(False, 100.5)]
    run.drain()  # unchanged: not again
    assert len(run.out) == 4


def test_the_last_bar_is_closed_by_the_timer_after_its_end_plus_grace() -> None:
    # its first update came 100 ms after it opened: the venue clock may be that far behind
    # ours, so the timer waits that much longer (never closes before end + grace)
    clock = Clock(T0 + 100)
    run = Run(_source(clock, grace_s=2.0))
    run.update(_candle(0, 100.0))
    clock.at(T0 + 59_900)
    run.update(_candle(0, 103.0))
    for now in (T0 + MIN, T0 + MIN + 2_000, T0 + MIN + 2_099):
        clock.at(now)
        run.drain()
        assert run.closed() == []
    clock.at(T0 + MIN + 2_100)
    run.drain()
    assert run.closed() == [(0, 103.0)]
    clock.at(T0 + 10 * MIN)
    run.drain()
    assert run.closed() == [(0, 103.0)]  # exactly once


def test_the_venue_clock_comes_from_the_stream_so_old_data_is_not_closed_by_the_wall_clock() -> (
    None
):
    # a replay of 2025 bars received in 2026: bar 0 opens as it arrives (venue time)
    clock = Clock(T0 + 500 * 86_400_000)
    run = Run(_source(clock, grace_s=1.0))
    run.update(_candle(0, 100.0), quiet=True)
    assert [b.closed for b in run.out] == [False]
    clock.ns += 30_000 * NS
    run.drain()
    assert run.closed() == []
    clock.ns += 31_000 * NS  # 61 s after bar 0 opened: its end + grace in venue time
    run.drain()
    assert run.closed() == [(0, 100.0)]


def test_a_bar_left_open_by_a_disconnect_is_not_closed_with_stale_values() -> None:
    clock = Clock(T0)
    source = _source(clock)
    run = Run(source)
    run.update(_candle(0, 100.0))
    run.update(_candle(1, 100.0))  # bar 1 opens (bar 0 closed)
    run.update(_candle(2, 100.0))  # bar 2 opens; then the connection drops
    source._connection_lost("ohlcv", "BTC/USDT", run.state)
    clock.at(T0 + 5 * MIN)
    run.update(_candle(2, 104.0))  # bar 2 got an update after the reconnect: whole again
    run.update(_candle(5, 100.0))  # bars 3 and 4 were never seen
    run.update(_candle(6, 100.0))
    assert run.closed() == [(0, 100.0), (1, 100.0), (2, 104.0), (5, 100.0)]

    run2 = Run(_source(Clock(T0)))
    run2.update(_candle(0, 100.0))
    run2.update(_candle(1, 100.0))  # bar 1 in progress when the connection drops
    run2.source._connection_lost("ohlcv", "BTC/USDT", run2.state)
    run2.update(_candle(4, 100.0))  # no update of bar 1 came: left to the REST backfill
    run2.update(_candle(5, 100.0))
    assert run2.closed() == [(0, 100.0), (4, 100.0)]


def test_feed_hosts_come_from_the_settings() -> None:
    events: queue.Queue[Any] = queue.Queue()
    local = ExchangeSettings(url="http://127.0.0.1:8080", ws_url="ws://127.0.0.1:9000")
    feed = KlineFeed("bybit", ["BTC/USDT:USDT"], "1m", events, market="perp", settings=local)
    ex = feed.source._build()
    assert ex.urls["api"]["ws"]["public"]["linear"] == "ws://127.0.0.1:9000/v5/public/linear"
    assert ex.urls["api"]["public"] == "http://127.0.0.1:8080"
    assert ex.options["defaultType"] == "swap"
    testnet = KlineFeed(
        "binance", ["BTC/USDT"], "1m", events, settings=ExchangeSettings(testnet=True)
    )
    assert "testnet" in testnet.source._build().urls["api"]["ws"]["spot"]
    assert not feed.running


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"exchange": "binanse"}, "Did you mean: 'binance'"),
        ({"market": "futures"}, "market must be spot or perp"),
        ({"settings": ExchangeSettings(ws_url="ws://h:1"), "exchange": "gate"}, "no URL layout"),
        ({"stale_after_s": 0}, "stale_after_s must be > 0"),
        ({"alert_after_failures": 0}, "alert_after_failures must be >= 1"),
    ],
)
def test_bad_configuration_raises_config_error(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"exchange": "binance", "symbols": ["BTC/USDT"], "timeframe": "1m"}
    args.update(kwargs)
    with pytest.raises(ConfigError, match=message):
        KlineFeed(events=queue.Queue(), **args)


def test_backoff_doubles_up_to_the_cap_with_equal_jitter() -> None:
    rng = random.Random(7)
    for attempt, cap in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (7, 30.0), (30, 30.0)]:
        for _ in range(50):
            delay = backoff_delay(attempt, 0.5, 30.0, rng)
            assert cap / 2 <= delay <= cap
    seeded = [
        CcxtMarketSource("bybit", ["BTC/USDT"], ("ohlcv",), seed=3).backoff(2) for _ in range(2)
    ]
    assert seeded[0] == seeded[1]


def test_feed_status_defaults() -> None:
    assert FeedStatus("binance", "stale") == FeedStatus("binance", "stale", "", 0, 0)


def test_env_urls_reach_the_feed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Arrange
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TRADELOOP_CONFIG", raising=False)
    monkeypatch.setenv("TRADELOOP_BINANCE_WS_URL", "ws://127.0.0.1:9000/")
    monkeypatch.setenv("TRADELOOP_BINANCE_URL", "http://127.0.0.1:8080")
    # Act
    settings = load_settings().exchange("binance")
    feed = KlineFeed("binance", ["BTC/USDT"], "1m", queue.Queue(), settings=settings)
    # Assert
    assert settings.ws_url == "ws://127.0.0.1:9000"
    assert settings.url == "http://127.0.0.1:8080"
    ex = feed.source._build()
    assert ex.urls["api"]["ws"]["spot"] == "ws://127.0.0.1:9000/ws"
    assert ex.urls["api"]["public"] == "http://127.0.0.1:8080/api/v3"
