"""FastAPI app: ``/signals/status``, ``/signals/metrics``, Prometheus ``/metrics``,
``POST /backtests`` and ``GET /runs/{run_id}``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from tradeloop.api.backtests import BacktestApiConfig, backtests_router
from tradeloop.signals.service import SignalService

__all__ = ["create_app", "signals_router"]

signals_router = APIRouter(prefix="/signals", tags=["signals"])


def _service(request: Request) -> SignalService:
    service: SignalService = request.app.state.signals
    return service


@signals_router.get("/status")
def signal_status(request: Request) -> dict[str, Any]:
    """Whether the loop runs, bus state, publishers, feedback counts and current weights."""
    return _service(request).status()


@signals_router.get("/metrics")
def signal_metrics(request: Request, now_ns: int | None = None) -> dict[str, Any]:
    """Rolling hit rate / mean P&L / count per 1h, 24h and 7d window, and weight history."""
    return _service(request).metrics(now_ns)


class _SignalCollector(Collector):
    def __init__(self, service: SignalService) -> None:
        self.service = service

    def collect(self) -> Iterator[Any]:
        s = self.service
        yield GaugeMetricFamily(
            "tradeloop_signals_enabled", "1 when the signal loop runs", value=int(s.enabled)
        )
        if not s.enabled:
            return
        published = CounterMetricFamily(
            "tradeloop_signals_published", "Signals published", labels=["symbol"]
        )
        for key, pub in s.publishers.items():
            published.add_metric([key], pub.published)
        yield published
        if s.consumer is not None:
            yield CounterMetricFamily(
                "tradeloop_feedback_received",
                "Feedback messages received",
                value=s.consumer.received,
            )
            yield CounterMetricFamily(
                "tradeloop_feedback_duplicates",
                "Feedback messages already stored",
                value=s.consumer.duplicates,
            )
        version, values = s.weights()
        yield GaugeMetricFamily(
            "tradeloop_adaptive_weights_version", "Current weight version", value=version
        )
        weights = GaugeMetricFamily(
            "tradeloop_adaptive_weight", "Current component weight", labels=["component"]
        )
        for comp, w in values.items():
            weights.add_metric([comp], w)
        yield weights
        stats = getattr(s.bus, "stats", None)
        if isinstance(stats, dict):
            bus = CounterMetricFamily("tradeloop_bus_events", "Bus counters", labels=["event"])
            for name, value in stats.items():
                bus.add_metric([name], value)
            yield bus
            yield GaugeMetricFamily(
                "tradeloop_bus_connected",
                "1 when Redis is reachable",
                value=int(bool(getattr(s.bus, "connected", False))),
            )


def create_app(
    service: SignalService | None = None, *, backtests: BacktestApiConfig | None = None
) -> FastAPI:
    """Return the API app serving ``service`` and the backtest routes.

    The default signal service is a ``"reader"`` built from settings: it opens the analytics
    file read-only per request, so the API runs next to a ``signals consume`` process (the
    writer). ``backtests`` sets the folders and the number of backtest workers (default:
    ``output``, the working folder for data, ``strategies``, ``models``, one worker); the
    worker pool is shut down with the app.
    """
    settings = backtests or BacktestApiConfig()
    pool = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="backtest")

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    app = FastAPI(title="tradeloop", version="0.1.0", lifespan=lifespan)
    app.state.signals = service or SignalService(role="reader")
    app.state.backtests = settings
    app.state.backtest_pool = pool
    registry = CollectorRegistry()
    registry.register(_SignalCollector(app.state.signals))
    app.include_router(signals_router)
    app.include_router(backtests_router)

    @app.get("/metrics")
    def prometheus_metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
