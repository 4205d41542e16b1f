"""The live bar feed (ccxt.pro, unmodified) against the real local replay server (real
WebSockets over 127.0.0.1, the venues' kline wire formats).

The server replays the recorded BTC/USDT 1m candles of the shared data; a second symbol,
``ETH/USDT``, is served from the other recorded BTC series (spot <-> USD-M) so that two
different real series stream at once. ccxt's candles carry no "final" flag: the feed infers
closure from the next bar (and a timer). Every wait is on a condition with a timeout.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tradeloop.adapters.feeds import FeedEvent, FeedStatus, KlineUpdate
from tradeloop.adapters.streams.kline_feed import KlineFeed
from tradeloop.config.settings import ExchangeSettings
from tradeloop.testing.replay import ReplayServer
from tradeloop.testing.replay.__main__ import main as replay_main
from tradeloop.testing.streams import StreamServer, ccxt_config, load_script
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
    """A KlineFeed and the events it has delivered so far."""

    def __init__(self, build: Callable[[queue.Queue[FeedEvent]], KlineFeed]) -> None:
        self.queue: queue.Queue[FeedEvent] = queue.Queue()
        self.thread = build(self.queue)
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


Build = Callable[[queue.Queue[FeedEvent]], KlineFeed]


@pytest.fixture
def feeds() -> Iterator[Callable[[Build], Feed]]:
    started: list[Feed] = []

    def start(stream: Build) -> Feed:
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


def stream(server: ReplayServer | str, exchange: str = "binance", **kwargs: Any) -> Build:
    """A feed of ``exchange`` at the server (markets preset: the replay server has no REST)."""
    symbols = kwargs.pop("symbols", SYMBOLS)
    url = server if isinstance(server, str) else server.url

    def build(events: queue.Queue[FeedEvent]) -> KlineFeed:
        return KlineFeed(
            exchange, symbols, "1m", events, settings=ExchangeSettings(ws_url=url),
            config=ccxt_config(exchange, symbols), **kwargs,
        )  # fmt: skip

    return build


@pytest.mark.parametrize(
    ("exchange", "market", "venue_market"),
    [("binance", "spot", "spot"), ("bybit", "spot", "spot"), ("bybit", "perp", "linear")],
)
def test_closed_bars_equal_the_recorded_candles_for_two_symbols(
    server: ReplayServer,
    data: VenueData,
    feeds: Callable[[Build], Feed],
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
    assert sorted(t for subs in server.subscriptions() for t in subs) == sorted(
        f"{s.split(':')[0].replace('/', '').lower()}@kline_1m"
        if exchange == "binance"
        else f"kline.1.{s.split(':')[0].replace('/', '')}"
        for s in symbols
    )
    for symbol in symbols:
        bars = closed(feed.events, symbol)[:50]
        assert [b.ts for b in bars] == list(
            range(bars[0].ts, bars[0].ts + 50 * 60_000 * NS, 60_000 * NS)
        )
        sid = symbol.split(":")[0].replace("/", "")
        candles = data.candles(exchange, venue_market, sid, "1m")
        assert candles is not None
        assert_recorded(bars, candles)
    assert feed.statuses("malformed") == []
    assert [s.state for s in feed.statuses()][:2] == ["connecting", "connected"]
    assert feed.stop() < 3.0


def test_every_bar_arrives_exactly_once_and_the_last_is_closed_by_the_timer(
    shared_data: Path, feeds: Callable[[Build], Feed]
) -> None:
    """150 recorded 1m klines at full speed, the last without a successor: count in ==
    count out, values equal, and the last is closed by the timer (its end plus the grace on
    the venue clock the feed infers from the stream), not held forever. The feed's clock runs
    100x (a minute of venue time passes in 0.6 s)."""
    script = load_script(shared_data, klines=150)
    start = time.time_ns()

    def fast_clock() -> int:
        return start + (time.time_ns() - start) * 100

    with StreamServer("binance", script, interval_s=0.002, kline_tail=False) as server:

        def build(events: queue.Queue[FeedEvent]) -> KlineFeed:
            return KlineFeed(
                "binance", ["BTC/USDT"], "1m", events,
                settings=ExchangeSettings(ws_url=server.ws_url),
                config=ccxt_config("binance", ["BTC/USDT"]), close_grace_s=5.0,
                clock_ns=fast_clock,
            )  # fmt: skip

        feed = feeds(build)
        n = len(script.klines)
        feed.wait(lambda ev: len(closed(ev)) >= n - 1 and server.sent["kline"] == n, timeout=30)
        by_successor = len(closed(feed.events))
        feed.wait(lambda ev: len(closed(ev)) == n, timeout=10)
        assert feed.stop() < 3.0
    bars = closed(feed.events)
    assert by_successor == n - 1  # the last one waited for the timer
    assert server.sent["kline"] == n  # and no message closed it
    assert [(b.ts // NS, b.open, b.high, b.low, b.close, b.volume) for b in bars] == [
        (k.ts_ms, k.open, k.high, k.low, k.close, k.volume) for k in script.klines
    ]
    assert feed.thread.metrics.source("binance").duplicates == 0


def test_drop_reconnects_and_bars_continue_without_duplicates(
    server: ReplayServer, data: VenueData, feeds: Callable[[Build], Feed]
) -> None:
    # Arrange
    feed = feeds(stream(server, backoff_base_s=0.02, backoff_max_s=0.1))
    feed.wait(lambda ev: len(closed(ev, "BTC/USDT")) >= 5)
    # Act
    assert server.drop() >= 1
    feed.wait(lambda ev: any(s.reconnects >= 1 for s in feed.statuses("connected")))
    marker = feed.statuses("connected")[-1]
    feed.wait(lambda ev: len(closed(after(ev, marker), "BTC/USDT")) >= 5)
    # Assert
    states = [s.state for s in feed.statuses()]
    assert states[:2] == ["connecting", "connected"]
    assert "disconnected" in states[2:]
    assert all(s.detail for s in feed.statuses("disconnected"))
    bars = closed(feed.events, "BTC/USDT")
    assert len({b.ts for b in bars}) == len(bars)
    assert bars[-1].ts > closed(feed.events[: feed.events.index(marker)], "BTC/USDT")[-1].ts
    candles = data.candles("binance", "spot", "BTCUSDT", "1m")
    assert candles is not None
    assert_recorded(bars, candles)  # no bar closed with what came before the drop


def test_stall_longer_than_stale_after_marks_stale_and_reconnects(
    server: ReplayServer, feeds: Callable[[Build], Feed]
) -> None:
    # Arrange
    feed = feeds(
        stream(server, "bybit", symbols=["BTC/USDT"], stale_after_s=0.3, backoff_base_s=0.02)
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
    assert 0.25 <= went_stale < 3.0
    assert "no message for 0.3s" in feed.statuses("stale")[0].detail
    assert feed.statuses("failed") == []


@pytest.mark.parametrize("exchange", ["binance", "bybit"])
def test_malformed_frames_are_reported_and_the_feed_keeps_going(
    server: ReplayServer, feeds: Callable[[Build], Feed], exchange: str
) -> None:
    # Arrange
    feed = feeds(stream(server, exchange, symbols=["BTC/USDT"]))
    feed.wait(lambda ev: len(closed(ev)) >= 2)
    # Act: cut-off JSON, not JSON, a list, a wrong-shaped kline (what the venue's ccxt handler
    # cannot read is reported; what it ignores, like the venue would, is not)
    server.send_malformed(4)
    feed.wait(lambda ev: len(feed.statuses("malformed")) >= 1)
    marker = feed.statuses("malformed")[-1]
    feed.wait(lambda ev: len(closed(after(ev, marker))) >= 4)
    # Assert
    assert all(0 < len(s.detail) <= 200 for s in feed.statuses("malformed"))
    assert feed.thread.metrics.source(exchange).malformed == len(feed.statuses("malformed"))
    assert feed.statuses("disconnected") == []  # same connection throughout


def test_refused_connections_count_attempts_alert_and_back_off(
    server: ReplayServer, feeds: Callable[[Build], Feed]
) -> None:
    # Arrange
    server.refuse(6)
    began = time.monotonic()
    # Act
    feed = feeds(
        stream(server, symbols=["BTC/USDT"], backoff_base_s=0.02, backoff_max_s=0.08,
               alert_after_failures=3)
    )  # fmt: skip
    feed.wait(lambda ev: bool(feed.statuses("connected")))
    waited = time.monotonic() - began
    feed.wait(lambda ev: len(closed(ev)) >= 2)
    # Assert
    assert server.connections_refused == 6
    assert [s.attempt for s in feed.statuses("disconnected")] == [1, 2, 3, 4, 5, 6]
    assert all("503" in s.detail for s in feed.statuses("disconnected"))
    assert [s.attempt for s in feed.statuses("failed")] == [3, 6]
    assert feed.statuses("connected")[0].attempt == 0
    caps = [min(0.08, 0.02 * 2 ** (k - 1)) for k in range(1, 7)]
    assert sum(caps) / 2 <= waited


def test_server_down_emits_failed_after_n_attempts_and_stop_is_bounded(
    feeds: Callable[[Build], Feed],
) -> None:
    # Arrange: a port nobody listens on
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    feed = feeds(
        stream(f"ws://127.0.0.1:{port}", "bybit", symbols=["BTC/USDT"], backoff_base_s=0.01,
               backoff_max_s=0.05, alert_after_failures=4)
    )  # fmt: skip
    # Act
    feed.wait(lambda ev: len(feed.statuses("failed")) >= 2)
    # Assert
    assert [s.attempt for s in feed.statuses("failed")][:2] == [4, 8]
    assert "4 consecutive failures" in feed.statuses("failed")[0].detail
    assert feed.statuses("connected") == []
    assert feed.stop() < 3.0


def test_feed_stop_is_bounded_during_a_long_backoff(server: ReplayServer) -> None:
    # Arrange: refused, then a 30-60 s backoff wait
    server.refuse(1)
    feed = Feed(stream(server, symbols=["BTC/USDT"], backoff_base_s=60.0, backoff_max_s=60.0))
    feed.thread.start()
    feed.wait(lambda ev: bool(feed.statuses("disconnected")))
    # Act
    took = feed.stop()
    # Assert
    assert took < 3.0
    assert not feed.thread.running


def test_unknown_stream_is_rejected_or_goes_stale(
    server: ReplayServer, feeds: Callable[[Build], Feed]
) -> None:
    """Bybit refuses the subscription (``failed`` naming the topic); Binance (like the real
    one) answers no data for a stream it does not have: the watchdog reports it stale."""
    bybit = feeds(stream(server, "bybit", symbols=["DOGE/USDT"]))
    bybit.wait(lambda ev: bool(bybit.statuses("failed")))
    assert "DOGEUSDT" in bybit.statuses("failed")[0].detail.upper()
    binance = feeds(stream(server, "binance", symbols=["DOGE/USDT"], stale_after_s=0.5))
    binance.wait(lambda ev: bool(binance.statuses("stale")))
    assert "DOGE/USDT: no message for 0.5s" in binance.statuses("stale")[0].detail
    assert closed(binance.events) == []


def test_replay_clock_skip_pause_and_idle(data: VenueData, feeds: Callable[[Build], Feed]) -> None:
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


def test_replay_finishes_at_end_ms(data: VenueData, feeds: Callable[[Build], Feed]) -> None:
    end = START_MS + 5 * 60_000
    with ReplayServer(data, start_ms=START_MS, end_ms=end, bar_interval_s=0.01) as srv:
        feeds(stream(srv, "bybit", symbols=["BTC/USDT"]))
        assert srv.wait_until(lambda: srv.finished, timeout=5.0)
        assert srv.cursor_ms == end
        assert srv.wait_for_clients(1, timeout=10.0)  # a client after the end is served
        assert srv.cursor_ms == end


def test_replay_cli_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        replay_main(["--help"])
    assert stop.value.code == 0
    assert "--bar-interval" in capsys.readouterr().out


class _HoldingQueue(queue.Queue[FeedEvent]):
    """The session's queue, but the first in-progress update of bar ``hold_ms`` blocks the
    feed (whose pipeline puts on it inline, on the ccxt event loop) until ``release`` is set:
    while it blocks, ccxt has no watch pending, so a drop then is seen by no watch."""

    def __init__(self, hold_ms: int) -> None:
        super().__init__()
        self.hold_ns = hold_ms * NS
        self.holding = threading.Event()
        self.release = threading.Event()

    def put_nowait(self, item: FeedEvent) -> None:
        super().put_nowait(item)
        if (
            isinstance(item, KlineUpdate)
            and not item.closed
            and item.ts == self.hold_ns
            and not self.release.is_set()
        ):
            self.holding.set()
            self.release.wait(10)


def test_drop_while_no_watch_is_pending_is_a_reconnection_and_no_stale_bar_closes(
    data: VenueData,
) -> None:
    # Arrange: the feed is held inside its handling of bar T-1's opening update, while the
    # server sends bar T-1's close and bar T's opening update and then drops the connection:
    # ccxt reads the frames and the drop in one go with no watch pending (nothing raises)
    t_ms = START_MS + 20 * 60_000
    with ReplayServer(data, start_ms=START_MS, bar_interval_s=0.01, advance_when_idle=False) as srv:
        events = _HoldingQueue(t_ms - 60_000)
        feed = KlineFeed(
            "binance", ["BTC/USDT"], "1m", events, settings=ExchangeSettings(ws_url=srv.url),
            config=ccxt_config("binance", ["BTC/USDT"]), backoff_base_s=0.02, backoff_max_s=0.1,
        )  # fmt: skip
        with feed:
            assert events.holding.wait(20)
            sent = srv.messages_sent
            # Act
            assert srv.wait_until(lambda: srv.messages_sent >= sent + 2, timeout=5)
            srv.pause()
            assert srv.drop() == 1
            srv.skip(5)  # bar T ends while the client is away
            assert srv.wait_until(lambda: srv.client_count == 0, timeout=5)
            events.release.set()
            srv.resume()
            got: list[FeedEvent] = []
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not any(
                isinstance(e, KlineUpdate) and e.closed and e.ts >= (t_ms + 10 * 60_000) * NS
                for e in got
            ):
                with contextlib.suppress(queue.Empty):
                    got.append(events.get(timeout=0.2))
    # Assert: the drop is a disconnection and a reconnection, and bar T is never closed with
    # the values of its opening update (its end passed while the client was away: the
    # consumer's backfill fetches it)
    statuses = [e for e in got if isinstance(e, FeedStatus)]
    assert "disconnected" in [s.state for s in statuses]
    assert any(s.state == "connected" and s.reconnects >= 1 for s in statuses)
    bars = [e for e in got if isinstance(e, KlineUpdate) and e.closed]
    assert bars
    assert bars[-1].ts >= (t_ms + 10 * 60_000) * NS
    assert t_ms * NS not in {b.ts for b in bars}, "bar T closed with its opening update"
    candles = data.candles("binance", "spot", "BTCUSDT", "1m")
    assert candles is not None
    assert_recorded(bars, candles)
