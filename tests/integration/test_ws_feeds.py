"""Live kline feeds against the real local replay server (real WebSockets over 127.0.0.1).

The server replays the recorded BTC/USDT 1m candles of the shared data; a second symbol,
``ETH/USDT``, is served from the other recorded BTC series (spot <-> USD-M) so that two
different real series share one connection. Every wait is on a condition with a timeout.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from tradeloop.adapters.feeds import FeedEvent, FeedStatus, FeedThread, KlineStream, KlineUpdate
from tradeloop.testing.replay import ReplayServer
from tradeloop.testing.replay.__main__ import main as replay_main
from tradeloop.testing.venue import Candles, VenueData, recorded_venues

START_MS = 1_748_736_000_000  # 2025-06-01 00:00 UTC: inside both recorded 1m series
NS = 1_000_000
SYMBOLS = ["BTC/USDT", "ETH/USDT"]


@pytest.fixture(scope="module")
def data(shared_data: Path) -> VenueData:
    venues = recorded_venues(shared_data)
    spot = venues.candles("binance", "spot", "BTCUSDT", "1m")
    perp = venues.candles("binance", "linear", "BTCUSDT", "1m")
    assert spot is not None
    assert perp is not None
    for venue, market, other in (
        ("binance", "spot", perp),
        ("bybit", "spot", perp),
        ("bybit", "linear", spot),
    ):
        venues.add(venue, market, "ETHUSDT", "klines:1m", lambda c=other: c)
        for sid in ("BTCUSDT", "ETHUSDT"):
            assert venues.candles(venue, market, sid, "1m") is not None  # load before serving
    return venues


@pytest.fixture
def server(data: VenueData) -> Iterator[ReplayServer]:
    with ReplayServer(data, start_ms=START_MS, bar_interval_s=0.01) as replay:
        yield replay


class Feed:
    """A FeedThread and the events it has delivered so far."""

    def __init__(self, stream: KlineStream) -> None:
        self.queue: queue.Queue[FeedEvent] = queue.Queue()
        self.thread = FeedThread(stream, self.queue)
        self.events: list[FeedEvent] = []

    def wait(self, predicate: Callable[[list[FeedEvent]], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate(self.events):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                statuses = [e for e in self.events if isinstance(e, FeedStatus)]
                raise AssertionError(f"condition not met in {timeout}s; statuses: {statuses}")
            with contextlib.suppress(queue.Empty):
                self.events.append(self.queue.get(timeout=min(remaining, 0.2)))

    def statuses(self, state: str | None = None) -> list[FeedStatus]:
        return [
            e
            for e in self.events
            if isinstance(e, FeedStatus) and (state is None or e.state == state)
        ]

    def stop(self) -> float:
        began = time.monotonic()
        assert self.thread.stop(timeout=3.0)
        return time.monotonic() - began


@pytest.fixture
def feeds() -> Iterator[Callable[[KlineStream], Feed]]:
    started: list[Feed] = []

    def start(stream: KlineStream) -> Feed:
        feed = Feed(stream)
        feed.thread.start()
        started.append(feed)
        return feed

    yield start
    for feed in started:
        feed.thread.stop(timeout=3.0)


def closed(events: list[FeedEvent], symbol: str | None = None) -> list[KlineUpdate]:
    return [
        e
        for e in events
        if isinstance(e, KlineUpdate) and e.closed and (symbol is None or e.symbol == symbol)
    ]


def after(events: list[FeedEvent], marker: FeedEvent) -> list[FeedEvent]:
    return events[next(i for i, e in enumerate(events) if e is marker) + 1 :]


def assert_recorded(bars: list[KlineUpdate], candles: Candles) -> None:
    ts_ms = np.array([b.ts // NS for b in bars], dtype=np.int64)
    idx = np.searchsorted(candles.ts, ts_ms)
    assert np.array_equal(candles.ts[idx], ts_ms)
    for name in ("open", "high", "low", "close", "volume"):
        got = np.array([getattr(b, name) for b in bars])
        assert np.array_equal(got, getattr(candles, name)[idx]), name


def stream(server: ReplayServer, exchange: str = "binance", **kwargs: object) -> KlineStream:
    options: dict[str, object] = {"url": server.url, "seed": 1}
    options.update(kwargs)
    symbols = options.pop("symbols", SYMBOLS)
    return KlineStream(exchange, symbols, ["1m"], **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("exchange", "market", "venue_market"),
    [("binance", "spot", "spot"), ("bybit", "spot", "spot"), ("bybit", "perp", "linear")],
)
def test_closed_bars_equal_the_recorded_candles_for_two_symbols_on_one_connection(
    server: ReplayServer,
    data: VenueData,
    feeds: Callable[[KlineStream], Feed],
    exchange: str,
    market: str,
    venue_market: str,
) -> None:
    # Arrange
    symbols = [f"{s}:USDT" for s in SYMBOLS] if market == "perp" else SYMBOLS
    feed = feeds(stream(server, exchange, market=market, symbols=symbols))
    # Act
    feed.wait(lambda ev: all(len(closed(ev, s)) >= 50 for s in symbols))
    # Assert
    assert server.connections_accepted == 1
    assert len(server.subscriptions()[0]) == 2
    for symbol in symbols:
        bars = closed(feed.events, symbol)[:50]
        assert [b.ts for b in bars] == list(
            range(bars[0].ts, bars[0].ts + 50 * 60_000 * NS, 60_000 * NS)
        )
        sid = symbol.split(":")[0].replace("/", "")
        candles = data.candles(exchange, venue_market, sid, "1m")
        assert candles is not None
        assert_recorded(bars, candles)
    opening = [e for e in feed.events if isinstance(e, KlineUpdate) and not e.closed]
    assert opening
    assert all(e.open == e.high == e.low == e.close and e.volume == 0 for e in opening)
    assert feed.statuses("malformed") == []
    assert [s.state for s in feed.statuses()][:2] == ["connecting", "connected"]
    assert feed.stop() < 3.0


def test_drop_reconnects_and_bars_continue_without_duplicates(
    server: ReplayServer, data: VenueData, feeds: Callable[[KlineStream], Feed]
) -> None:
    # Arrange
    feed = feeds(stream(server, backoff_base_s=0.02, backoff_max_s=0.1))
    feed.wait(lambda ev: len(closed(ev, "BTC/USDT")) >= 5)
    # Act
    assert server.drop() == 1
    feed.wait(lambda ev: any(s.reconnects == 1 for s in feed.statuses("connected")))
    marker = feed.statuses("connected")[-1]
    feed.wait(lambda ev: len(closed(after(ev, marker), "BTC/USDT")) >= 5)
    # Assert
    states = [s.state for s in feed.statuses()]
    assert states[:2] == ["connecting", "connected"]
    assert states[2:5] == ["disconnected", "connecting", "connected"]
    assert "no close frame" in feed.statuses("disconnected")[0].detail  # an abrupt drop
    assert server.connections_accepted == 2
    bars = closed(feed.events, "BTC/USDT")
    assert len({b.ts for b in bars}) == len(bars)
    assert bars[-1].ts > closed(feed.events[: feed.events.index(marker)], "BTC/USDT")[-1].ts
    candles = data.candles("binance", "spot", "BTCUSDT", "1m")
    assert candles is not None
    assert_recorded(bars, candles)


def test_stall_longer_than_stale_after_marks_stale_and_reconnects(
    server: ReplayServer, feeds: Callable[[KlineStream], Feed]
) -> None:
    # Arrange: Bybit pings every 0.1s; a stalled server answers none of them
    feed = feeds(
        stream(server, "bybit", stale_after_s=0.3, ping_interval_s=0.1, backoff_base_s=0.02)
    )
    feed.wait(lambda ev: len(closed(ev)) >= 4)
    # Act
    began = time.monotonic()
    server.stall(0.8)
    feed.wait(lambda ev: bool(feed.statuses("stale")))
    went_stale = time.monotonic() - began
    feed.wait(lambda ev: any(s.reconnects >= 1 for s in feed.statuses("connected")))
    marker = feed.statuses("connected")[-1]
    feed.wait(lambda ev: len(closed(after(ev, marker))) >= 4)
    # Assert
    assert 0.25 <= went_stale < 2.0
    assert "no message for 0.3s" in feed.statuses("stale")[0].detail
    assert feed.statuses("failed") == []


@pytest.mark.parametrize("exchange", ["binance", "bybit"])
def test_malformed_frames_are_reported_and_the_feed_keeps_going(
    server: ReplayServer, feeds: Callable[[KlineStream], Feed], exchange: str
) -> None:
    # Arrange
    feed = feeds(stream(server, exchange))
    feed.wait(lambda ev: len(closed(ev)) >= 2)
    # Act
    server.send_malformed(4)
    feed.wait(lambda ev: len(feed.statuses("malformed")) >= 4)
    marker = feed.statuses("malformed")[-1]
    feed.wait(lambda ev: len(closed(after(ev, marker))) >= 4)
    # Assert
    assert all(0 < len(s.detail) <= 200 for s in feed.statuses("malformed"))
    assert len(feed.statuses("connected")) == 1  # same connection throughout


def test_refused_connections_count_attempts_alert_and_back_off(
    server: ReplayServer, feeds: Callable[[KlineStream], Feed]
) -> None:
    # Arrange
    server.refuse(6)
    began = time.monotonic()
    # Act
    feed = feeds(stream(server, backoff_base_s=0.02, backoff_max_s=0.08, alert_after_failures=3))
    feed.wait(lambda ev: bool(feed.statuses("connected")))
    waited = time.monotonic() - began
    feed.wait(lambda ev: len(closed(ev)) >= 2)
    # Assert
    assert server.connections_refused == 6
    assert [s.attempt for s in feed.statuses("disconnected")] == [1, 2, 3, 4, 5, 6]
    assert all("503" in s.detail for s in feed.statuses("disconnected"))
    assert [s.attempt for s in feed.statuses("failed")] == [3, 6]
    assert feed.statuses("connected")[0].attempt == 0
    assert feed.statuses("connected")[0].reconnects == 0
    caps = [min(0.08, 0.02 * 2 ** (k - 1)) for k in range(1, 7)]
    assert sum(caps) / 2 <= waited < sum(caps) + 2.0


def test_server_down_emits_failed_after_n_attempts_and_stop_is_bounded(
    feeds: Callable[[KlineStream], Feed],
) -> None:
    # Arrange: a port nobody listens on
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    feed = feeds(
        KlineStream(
            "bybit",
            ["BTC/USDT"],
            ["1m"],
            url=f"ws://127.0.0.1:{port}",
            backoff_base_s=0.01,
            backoff_max_s=0.05,
            alert_after_failures=4,
        )
    )
    # Act
    feed.wait(lambda ev: len(feed.statuses("failed")) >= 2)
    # Assert
    assert [s.attempt for s in feed.statuses("failed")][:2] == [4, 8]
    assert "4 consecutive failures" in feed.statuses("failed")[0].detail
    assert feed.statuses("connected") == []
    assert feed.stop() < 3.0


def test_feed_thread_stop_is_bounded_during_a_long_backoff(server: ReplayServer) -> None:
    # Arrange: refused, then a 30s backoff wait
    server.refuse(1)
    feed = Feed(stream(server, backoff_base_s=60.0, backoff_max_s=60.0))
    feed.thread.start()
    feed.wait(lambda ev: bool(feed.statuses("disconnected")))
    # Act
    took = feed.stop()
    # Assert
    assert took < 3.0
    assert not feed.thread.running


@pytest.mark.parametrize("exchange", ["binance", "bybit"])
def test_unknown_stream_is_rejected_in_the_exchange_format(
    server: ReplayServer, feeds: Callable[[KlineStream], Feed], exchange: str
) -> None:
    feed = feeds(stream(server, exchange, symbols=["DOGE/USDT"]))
    feed.wait(lambda ev: bool(feed.statuses("failed")))
    assert "DOGEUSDT" in feed.statuses("failed")[0].detail.upper()


def test_replay_clock_skip_pause_and_idle(
    data: VenueData, feeds: Callable[[KlineStream], Feed]
) -> None:
    with ReplayServer(data, start_ms=START_MS, bar_interval_s=0.01, advance_when_idle=False) as srv:
        # the clock waits for a subscriber
        assert not srv.wait_for(START_MS, timeout=0.1)
        assert srv.cursor_ms is None
        feed = feeds(stream(srv, symbols=["BTC/USDT"]))
        assert srv.wait_for(START_MS + 5 * 60_000, timeout=5.0)
        feed.wait(lambda ev: len(closed(ev)) >= 3)
        # skip: a gap of 10 bars in what the client receives (the engine backfills it)
        srv.pause()
        paused_at = srv.cursor_ms
        assert paused_at is not None
        assert not srv.wait_for(paused_at + 60_000, timeout=0.1)
        srv.skip(10)
        srv.resume()
        assert srv.wait_for(paused_at + 14 * 60_000, timeout=5.0)
        feed.wait(lambda ev: any(b.ts // NS > paused_at + 11 * 60_000 for b in closed(ev)))
        got = {b.ts // NS for b in closed(feed.events)}
        skipped = set(range(paused_at + 60_000, paused_at + 10 * 60_000, 60_000))
        assert not got & skipped
        assert srv.messages_sent > 0


def test_replay_finishes_at_end_ms(data: VenueData, feeds: Callable[[KlineStream], Feed]) -> None:
    end = START_MS + 5 * 60_000
    with ReplayServer(data, start_ms=START_MS, end_ms=end, bar_interval_s=0.01) as srv:
        feeds(stream(srv, "bybit", symbols=["BTC/USDT"]))
        assert srv.wait_until(lambda: srv.finished, timeout=5.0)
        assert srv.cursor_ms == end
        assert srv.client_count == 1  # connections stay open


def test_replay_cli_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        replay_main(["--help"])
    assert stop.value.code == 0
    assert "--bar-interval" in capsys.readouterr().out
