"""Stream quality metrics: counters per source, registrable on the caller's registry, and the
pipeline's quality message on the bus."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from tradeloop.adapters.streams.pipeline import MarketPipeline
from tradeloop.bus.base import InProcessBus
from tradeloop.bus.events import TOPICS, DataQualityEvent, event_codec
from tradeloop.core.market_events import MarketTrade
from tradeloop.data.stream.metrics import StreamMetrics


def test_metrics_land_in_the_given_registry_per_source() -> None:
    registry = CollectorRegistry()
    metrics = StreamMetrics(registry)
    metrics.count("binance", "messages", 5)
    metrics.count("binance", "gaps")
    metrics.count("bybit", "messages", 2)
    metrics.lag("binance", 12_500_000)
    text = generate_latest(registry).decode()
    assert 'tradeloop_stream_messages_total{source="binance"} 5.0' in text
    assert 'tradeloop_stream_messages_total{source="bybit"} 2.0' in text
    assert 'tradeloop_stream_gaps_total{source="binance"} 1.0' in text
    assert 'tradeloop_stream_lag_ms{source="binance"} 12.5' in text
    # two pipelines in one process do not collide (each has its own default registry)
    StreamMetrics().count("binance", "messages")


def test_pipeline_publishes_versioned_quality_events() -> None:
    bus = InProcessBus()
    got: list[object] = []
    bus.subscribe("tradeloop.data.quality", got.append)
    pipe = MarketPipeline("p", bus=bus, quality_every_s=3600)
    trades = [MarketTrade("binance", "BTC/USDT", i, i + 2_000_000, 100.0, 1.0, 1, str(i))
              for i in range(10)]  # fmt: skip
    pipe.process(trades + trades[:3])  # three duplicates
    pipe.maybe_publish_quality(force=True)
    (event,) = got
    assert isinstance(event, DataQualityEvent)
    assert (event.v, event.source, event.messages, event.duplicates) == (1, "binance", 13, 3)
    assert event.lag_ms == 2.0
    assert TOPICS["tradeloop.data.quality"] is DataQualityEvent
    codec = event_codec()
    assert codec.decode(codec.encode(event)).message == event


def test_out_of_order_trades_and_bars_are_counted_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from tradeloop.core.bar import Bar
    from tradeloop.core.market_events import StreamBar

    pipe = MarketPipeline("p")
    ts = [10, 20, 15, 30, 25, 40]  # two trades stamped before one already seen
    trades = [MarketTrade("binance", "S", t, t, 1.0, 1.0, 1, str(i)) for i, t in enumerate(ts)]
    with caplog.at_level("WARNING"):
        out = pipe.process(trades[:3])
        out += pipe.process(trades[3:])

        def bar(minute: int) -> StreamBar:
            return StreamBar("binance", 0, Bar("S", "1m", minute * 60 * 10**9, 1, 1, 1, 1, 1), True)

        out += pipe.process([bar(1), bar(2), bar(1), bar(2)])
    q = pipe.metrics.source("binance")
    assert len([e for e in out if isinstance(e, MarketTrade)]) == 6  # late trades are kept
    assert q.out_of_order == 2 + 1  # trades 15 and 25, bar 1 after bar 2
    assert q.duplicates == 1  # bar 2 twice
    assert "out of order, first id 2 (position 2 of its batch)" in caplog.text
    assert "binance S" in caplog.text
