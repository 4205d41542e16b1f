"""The streaming pipeline against local venue servers speaking the real wire formats to the
UNMODIFIED ccxt.pro clients: every trade, book update and bar counted, a sequence gap
resynced, malformed frames survived, a dead primary replaced by its backup, and a recording
replayed into the kernel equal to the live session that recorded it."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from tradeloop.adapters.streams.ccxt_source import CcxtMarketSource
from tradeloop.adapters.streams.pipeline import MarketPipeline
from tradeloop.adapters.streams.service import MarketStream
from tradeloop.bus.base import InProcessBus
from tradeloop.core.instrument import Instrument
from tradeloop.core.market_events import (
    BookDelta,
    BookSnapshot,
    FundingRate,
    MarketEvent,
    MarketTrade,
    OpenInterest,
    StreamBar,
)
from tradeloop.data.stream.recording import ParquetRecorder, iter_replay, read_recording
from tradeloop.engine.book_input import BookInput
from tradeloop.engine.config import RunConfig
from tradeloop.engine.live import LiveKernel
from tradeloop.engine.stream_replay import KernelFeeder, ReplayResult, replay_into_kernel
from tradeloop.strategy.examples.sma_cross import SmaCross
from tradeloop.testing.streams import (
    MarketScript,
    StreamServer,
    book_after,
    ccxt_config,
    load_script,
)

SYMBOL = "BTC/USDT"


@pytest.fixture(scope="module")
def script(shared_data: Path) -> MarketScript:
    return load_script(shared_data, klines=300)


def _source(
    venue: str, server: StreamServer, channels: tuple[str, ...], name: str | None = None
) -> CcxtMarketSource:
    return CcxtMarketSource(
        venue, [SYMBOL], channels, name=name, config=ccxt_config(venue, [SYMBOL]),
        urls=server.urls(), stale_after_s=3.0, book_limit=100 if venue == "kraken" else None,
    )  # fmt: skip


def _until_all(script: MarketScript, channels: tuple[str, ...]):  # type: ignore[no-untyped-def]
    def done(events: list[MarketEvent]) -> bool:
        trades = sum(isinstance(e, MarketTrade) for e in events)
        bars = sum(isinstance(e, StreamBar) and e.closed for e in events)
        ok = True
        if "trades" in channels:
            ok &= trades >= len(script.trades)
        if "ohlcv" in channels:
            ok &= bars >= len(script.klines)
        return ok

    return done


def _book_of(events: list[MarketEvent]) -> tuple[int, tuple, tuple]:  # type: ignore[type-arg]
    from tradeloop.data.stream.book import L2Book

    book = L2Book("x", SYMBOL)
    for e in events:
        if isinstance(e, BookSnapshot):
            book.apply_snapshot(e)
        elif isinstance(e, BookDelta):
            assert book.apply_delta(e), e
    bids, asks = book.levels()
    return book.seq, bids, asks


@pytest.mark.parametrize("venue", ["binance", "bybit", "okx", "kraken"])
def test_every_trade_book_update_and_bar_through_unmodified_ccxt(
    venue: str, script: MarketScript
) -> None:
    channels = ("trades", "book", "ohlcv")
    with StreamServer(venue, script, interval_s=0.001) as server:
        bus = InProcessBus()
        seen: list[object] = []
        for topic in ("tradeloop.market.trades", "tradeloop.market.book"):
            bus.subscribe(topic, seen.append)
        pipeline = MarketPipeline("t", bus=bus)
        stream = MarketStream(_source(venue, server, channels), pipeline).start()
        try:
            events = stream.run_for(30.0, until=_until_all(script, channels))
            # the book channel ends with the last depth update; the client hands it over
            # from its cache when the channel goes quiet
            final = book_after(script, script.depth[-1].seq)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                events += stream.poll()
                book = pipeline.book(SYMBOL)
                if server.sent["depth"] == len(script.depth) and book and book.levels() == final:
                    break
            events += stream.run_for(0.3)
        finally:
            stream.stop()
    trades = [e for e in events if isinstance(e, MarketTrade)]
    assert [t.trade_id for t in trades] == [str(t.trade_id) for t in script.trades]
    assert [(t.price, t.amount) for t in trades] == [(t.price, t.amount) for t in script.trades]
    assert [t.side for t in trades] == [1 if t.side == "buy" else -1 for t in script.trades]
    assert [t.ts for t in trades] == [t.ts_ms * 1_000_000 for t in script.trades]
    bars = [e.bar for e in events if isinstance(e, StreamBar) and e.closed]
    assert [(b.ts, b.open, b.high, b.low, b.close, b.volume) for b in bars] == [
        (k.ts_ms * 1_000_000, k.open, k.high, k.low, k.close, k.volume) for k in script.klines
    ]
    # the book from the normalised snapshot + deltas equals the reference rebuilt from the
    # server's own messages after its last update
    _, bids, asks = _book_of(events)
    assert (bids, asks) == book_after(script, script.depth[-1].seq)
    book = pipeline.book(SYMBOL)
    assert book is not None
    assert book.levels() == (bids, asks)
    q = pipeline.metrics.source(venue)
    # everything that came in either passed or was a duplicate (an update ccxt delivered
    # both from its cache on an idle drain and in the next watch result)
    assert q.messages == len(events) + q.duplicates
    assert (q.gaps, q.outliers, q.malformed) == (0, 0, 0)
    assert sum(len(m.trade_id) for m in seen if hasattr(m, "trade_id")) == len(script.trades)
    assert any(getattr(m, "symbol", None) == SYMBOL and hasattr(m, "microprice") for m in seen)


@pytest.mark.parametrize("venue", ["binance", "okx"])
def test_injected_sequence_gap_forces_a_resync_and_the_book_is_right(
    venue: str, script: MarketScript
) -> None:
    # OKX resyncs by subscribing again: the server then joins its live clock, as OKX does
    join = "live" if venue == "okx" else "start"
    with StreamServer(venue, script, interval_s=0.002, join=join) as server:
        dropped = script.depth[150].seq
        server.drop_depth(dropped)
        source = _source(venue, server, ("book",))
        pipeline = MarketPipeline("t")
        stream = MarketStream(source, pipeline).start()
        try:
            events: list[MarketEvent] = []
            deadline = time.monotonic() + 20
            while server.depth_cursor < len(script.depth) - 1 and time.monotonic() < deadline:
                events += stream.poll()
            events += stream.run_for(0.5)
        finally:
            stream.stop()
    # ccxt saw the sequence break (Binance U != last u + 1, OKX prevSeqId != last seqId),
    # dropped its book and took a new snapshot (Binance: REST depth; OKX: subscribing again)
    assert source.resyncs >= 1
    if venue == "binance":
        assert sum("/api/v3/depth" in c for c in server.rest_calls) >= 2
    else:
        assert server.subscriptions.count("books") >= 2
    snaps = [e for e in events if isinstance(e, BookSnapshot)]
    assert len(snaps) >= 2
    assert snaps[-1].seq > dropped
    # right afterwards and at the end: equal to the reference at that sequence
    seq, bids, asks = _book_of(events)
    assert (bids, asks) == book_after(script, seq)
    assert seq == script.depth[-1].seq


@pytest.mark.parametrize(
    ("venue", "raw"),
    [
        ("binance", '{"broken": '),  # truncated JSON: ccxt's decoder raises
        ("bybit", "not json at all"),  # plain text: ccxt passes it on, the handler drops it
        ("okx", "<html>502 Bad Gateway</html>"),
    ],
)
def test_malformed_frames_are_counted_with_position_and_never_crash(
    script: MarketScript, caplog: pytest.LogCaptureFixture, venue: str, raw: str
) -> None:
    with StreamServer(venue, script, interval_s=0.001) as server:
        server.send_malformed(3, raw)
        source = _source(venue, server, ("trades",))
        pipeline = MarketPipeline("t")
        stream = MarketStream(source, pipeline).start()
        try:
            with caplog.at_level(logging.WARNING):
                events = stream.run_for(20.0, until=_until_all(script, ("trades",)))
        finally:
            stream.stop()
    trades = [e for e in events if isinstance(e, MarketTrade)]
    assert len(trades) == len(script.trades)
    assert source.tap.malformed_count == 3
    assert pipeline.metrics.source(venue).malformed == 3
    bad = source.tap.malformed
    assert [b.raw for b in bad] == [raw] * 3
    assert all(b.venue == venue and b.position >= 1 for b in bad)
    assert len({b.position for b in bad}) == 3
    assert "malformed frame #" in caplog.text
    assert venue in caplog.text


def test_kill_primary_backup_takes_over_and_series_equal_uninterrupted(
    script: MarketScript, caplog: pytest.LogCaptureFixture
) -> None:
    channels = ("trades", "ohlcv")
    epoch = time.time() + 1.5
    with (
        StreamServer("binance", script, interval_s=0.002, epoch=epoch, join="live") as a,
        StreamServer("binance", script, interval_s=0.002, epoch=epoch, join="live") as b,
    ):
        pipeline = MarketPipeline("t")
        stream = MarketStream(
            _source("binance", a, channels, "primary"), pipeline,
            backup=_source("binance", b, channels, "backup"), stall_s=0.5, recover_s=600.0,
        ).start()  # fmt: skip
        try:
            events = stream.run_for(
                30.0, until=lambda ev: sum(isinstance(e, MarketTrade) for e in ev) >= 200
            )
            with caplog.at_level(logging.WARNING):
                a.kill()
                done = _until_all(script, channels)
                events += stream.run_for(30.0, until=lambda new: done(events + new))
                events += stream.run_for(0.3)
        finally:
            stream.stop()
    assert 0 < a.sent["trades"] < len(script.trades)  # the primary really died mid-stream
    trades = [e for e in events if isinstance(e, MarketTrade)]
    assert [t.trade_id for t in trades] == [str(t.trade_id) for t in script.trades]
    bars = [e.bar.ts for e in events if isinstance(e, StreamBar) and e.closed]
    assert bars == [k.ts_ms * 1_000_000 for k in script.klines]
    assert {t.venue for t in trades} == {"primary", "backup"}
    router = stream.router
    assert router is not None
    assert [s.to_source for s in router.switches] == ["backup"]
    assert router.switches[0].reason.startswith("primary")
    assert pipeline.metrics.source("primary").failovers == 1
    assert "failover primary -> backup" in caplog.text


def test_replay_of_a_recording_equals_the_live_session(
    script: MarketScript, tmp_path: Path
) -> None:
    channels = ("trades", "book", "ohlcv")
    rec = tmp_path / "rec"
    with StreamServer("binance", script, interval_s=0.001) as server:
        recorder = ParquetRecorder(rec, flush_rows=700)
        pipeline = MarketPipeline("live", sinks=[recorder])
        live = ReplayResult()
        kernel = LiveKernel(
            SmaCross(fast=5, slow=20), {SYMBOL: Instrument(SYMBOL)}, "1m", RunConfig(),
            run_id="live", inputs=(BookInput(lambda s: pipeline.book(s)),),
        )  # fmt: skip
        pipeline.sinks.append(KernelFeeder(kernel, live))
        stream = MarketStream(_source("binance", server, channels), pipeline).start()
        try:
            stream.run_for(30.0, until=_until_all(script, channels))
            stream.run_for(0.5)
        finally:
            stream.stop()
            stream.poll(0.1)
            recorder.close()
    assert len(recorder.files) > 3  # several parts, partitioned by day
    assert {p.parent.name for p in recorder.files} >= {"date=2021-01-08", "date=2025-05-20"}
    recorded = read_recording(rec)
    assert len(recorded) == recorder.events == live.accepted
    replay = replay_into_kernel(iter_replay(recorded), SmaCross(fast=5, slow=20), [SYMBOL], "1m")
    assert [(t.trade_id, t.price, t.amount, t.side, t.ts) for t in replay.market_trades] == [
        (t.trade_id, t.price, t.amount, t.side, t.ts) for t in live.market_trades
    ]
    assert len(live.market_trades) == len(script.trades)
    assert live.bars == replay.bars == len(script.klines)
    assert live.orders > 0
    assert (replay.orders, replay.fills) == (live.orders, live.fills)
    assert replay.trades == list(kernel.portfolio.trades)
    again = replay_into_kernel(iter_replay(recorded), SmaCross(fast=5, slow=20), [SYMBOL], "1m")
    assert again.trades == replay.trades  # deterministic


def test_okx_funding_rates_of_the_perpetual(script: MarketScript) -> None:
    perp = "BTC/USDT:USDT"
    with StreamServer("okx", script, interval_s=0.03) as server:
        source = CcxtMarketSource(
            "okx", [perp], ("funding",), config=ccxt_config("okx", [perp]), urls=server.urls(),
            stale_after_s=3.0,
        )  # fmt: skip
        stream = MarketStream(source, MarketPipeline("t")).start()
        try:
            events: list[MarketEvent] = []
            deadline = time.monotonic() + 20
            while server.sent["funding"] < len(script.funding) and time.monotonic() < deadline:
                events += stream.poll()
            events += stream.run_for(0.8)
        finally:
            stream.stop()
    assert server.sent["funding"] == len(script.funding) == 89
    got = [e for e in events if isinstance(e, FundingRate)]
    recorded = {f.ts_ms * 1_000_000: f.rate for f in script.funding}
    # a funding rate is state, not a stream of events: ccxt keeps the latest one, so a
    # consumer slower than the venue sees fewer; every one seen is right and in order
    assert len(got) >= len(script.funding) // 2
    assert all(recorded[e.ts] == e.rate for e in got)
    assert [e.ts for e in got] == sorted({e.ts for e in got})
    assert got[-1].ts == script.funding[-1].ts_ms * 1_000_000  # the latest is never lost
    assert all(e.next_ts == e.ts + 8 * 3_600 * 10**9 for e in got)
    assert {e.symbol for e in got} == {perp}


def test_missing_bars_are_backfilled_over_rest_in_order(script: MarketScript) -> None:
    with StreamServer("binance", script, interval_s=0.002) as server:
        server.drop_klines(*range(100, 106), 200)
        pipeline = MarketPipeline("t")
        stream = MarketStream(_source("binance", server, ("ohlcv",)), pipeline).start()
        try:
            events = stream.run_for(20.0, until=_until_all(script, ("ohlcv",)))
        finally:
            stream.stop()
    bars = [e.bar for e in events if isinstance(e, StreamBar) and e.closed]
    assert [(b.ts, b.close) for b in bars] == [
        (k.ts_ms * 1_000_000, k.close) for k in script.klines
    ]
    assert pipeline.bars_backfilled == 7
    assert pipeline.metrics.source("binance").gaps == 2
    assert [
        (s // 60_000_000_000, e // 60_000_000_000) for _, _, _, s, e in pipeline.missing_bars
    ] == [
        (script.klines[100].ts_ms // 60_000, script.klines[106].ts_ms // 60_000),
        (script.klines[200].ts_ms // 60_000, script.klines[201].ts_ms // 60_000),
    ]
    assert sum("/api/v3/klines" in c for c in server.rest_calls) == 2


def test_lost_trades_are_backfilled_over_rest_by_id(script: MarketScript) -> None:
    lost = [*range(500, 510), 1500]
    with StreamServer("binance", script, interval_s=0.001) as server:
        server.drop_trades(*lost)
        pipeline = MarketPipeline("t")
        # Binance's trade lookup by id needs an API key (a read-only one; any value locally)
        source = CcxtMarketSource(
            "binance", [SYMBOL], ("trades",),
            config={**ccxt_config("binance", [SYMBOL]), "apiKey": "local-read-only"},
            urls=server.urls(), stale_after_s=3.0,
        )  # fmt: skip
        stream = MarketStream(source, pipeline).start()
        try:
            events = stream.run_for(20.0, until=_until_all(script, ("trades",)))
        finally:
            stream.stop()
    assert server.sent["trades"] == len(script.trades) - len(lost)
    trades = [e for e in events if isinstance(e, MarketTrade)]
    assert [(t.trade_id, t.price, t.amount, t.side) for t in trades] == [
        (str(t.trade_id), t.price, t.amount, 1 if t.side == "buy" else -1) for t in script.trades
    ]
    first = script.trades[0].trade_id
    assert pipeline.missing_trade_ids == [
        ("binance", SYMBOL, first + 500, first + 509),
        ("binance", SYMBOL, first + 1500, first + 1500),
    ]
    assert pipeline.trades_backfilled == len(lost)
    assert pipeline.metrics.source("binance").gaps == 2
    assert sum("/api/v3/historicalTrades" in c for c in server.rest_calls) == 2


def _open_interest_reference(script: MarketScript) -> list[tuple[int, float]]:
    """The derived open interest, computed here from the klines by hand: ``(ts ns, amount)``
    at each kline's close, 1,000 + |running sum of volume signed by the bar's direction|."""
    out, running = [], 0.0
    for k in script.klines:
        running += k.volume * (1 if k.close > k.open else -1 if k.close < k.open else 0)
        out.append(((k.ts_ms + 60_000) * 1_000_000, round(1_000.0 + abs(running), 3)))
    return out


@pytest.mark.parametrize(
    ("venue", "path", "step_ms"),
    [
        ("binance", "/fapi/v1/openInterest", 60_000),
        ("bybit", "/v5/market/open-interest", 3_600_000),
    ],
)
def test_open_interest_is_polled_over_rest_through_unmodified_ccxt(
    script: MarketScript, venue: str, path: str, step_ms: int
) -> None:
    """USD-M / linear open interest polled from the venue's REST route in its real format
    (Binance: the current value; Bybit: the newest point of its interval grid, default 1h):
    every value seen is the server's at that time, in time order, and the poll goes on."""
    perp = "BTC/USDT:USDT"
    # the server's clock: one kline per 2 ms from now (REST answers at the clock's kline)
    with StreamServer(venue, script, interval_s=0.002, join="live", epoch=time.time()) as server:
        source = CcxtMarketSource(
            venue, [perp], ("open_interest",), config=ccxt_config(venue, [perp]),
            urls=server.urls(), poll_s=0.05, stale_after_s=3.0,
        )  # fmt: skip
        stream = MarketStream(source, MarketPipeline("t")).start()
        try:
            events = stream.run_for(
                20.0, until=lambda ev: sum(isinstance(e, OpenInterest) for e in ev) >= 12
            )
        finally:
            stream.stop()
    got = [e for e in events if isinstance(e, OpenInterest)]
    reference = dict(_open_interest_reference(script))
    assert len(got) >= 12
    assert all(e.venue == venue and e.symbol == perp for e in got)
    assert all(e.ts // 1_000_000 % step_ms == 0 or e.ts == min(reference) for e in got)
    assert [e.value for e in got] == [reference[e.ts] for e in got]
    assert [e.ts for e in got] == sorted(e.ts for e in got)
    assert len({e.ts for e in got}) > 1  # the value moved with the server's clock
    calls = [c for c in server.rest_calls if c.startswith(path)]
    assert len(got) <= len(calls) <= len(got) + 1  # one poll may be in flight at the stop
    assert all("symbol=BTCUSDT" in c for c in calls)
    assert all("category=linear" in c for c in calls) or venue == "binance"
