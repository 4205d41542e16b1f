"""Stream quality metrics: counters per source, registrable on the caller's registry, and the
pipeline's quality message on the bus."""

from __future__ import annotations

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
