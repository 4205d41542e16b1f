"""FastAPI app: ``/signals/status``, ``/signals/metrics``, Prometheus ``/metrics``,
``POST /backtests`` and ``GET /runs/{run_id}``; with an engine (``tradeloop serve --config``)
also its health, status, positions, orders, trades, equity, risk, strategies, the ``/control``
routes (API key, audited) and the ``/dashboard`` page."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from tradeloop.api.auth import Auth, require_read
from tradeloop.api.backtests import BacktestApiConfig, backtests_router
from tradeloop.api.dashboard import dashboard_router
from tradeloop.api.engine_routes import engine_router
from tradeloop.api.metrics import EngineMetrics
from tradeloop.engine.service import LoopService
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
    #: the weights are read from the analytics file at most this often (an open costs ~0.1 s)
    WEIGHTS_TTL_S = 5.0

    def __init__(self, service: SignalService) -> None:
        self.service = service
        self._weights: tuple[float, tuple[int, dict[str, float]]] | None = None

    def weights(self) -> tuple[int, dict[str, float]]:
        now = time.monotonic()
        if self._weights is None or now - self._weights[0] > self.WEIGHTS_TTL_S:
            self._weights = (now, self.service.weights())
        return self._weights[1]

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
        version, values = self.weights()
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
    service: SignalService | None = None,
    *,
    backtests: BacktestApiConfig | None = None,
    engine: LoopService | None = None,
    api_key: str | None = None,
    auth_reads: bool = False,
) -> FastAPI:
    """Return the API app serving ``service``, the backtest routes and, when given, ``engine``.

    The default signal service is a ``"reader"`` built from settings: it opens the analytics
    file read-only per request, so the API runs next to a ``signals consume`` process (the
    writer). ``backtests`` sets the folders and the number of backtest workers (default:
    ``output``, the working folder for data, ``strategies``, ``models``, one worker); the
    worker pool is shut down with the app.

    ``engine`` is a :class:`~tradeloop.engine.service.LoopService`: the app starts it with
    itself and stops it (state saved) when it shuts down. ``api_key`` guards the ``/control``
    routes (without one they are refused); ``auth_reads`` requires it for reads too.
    """
    from tradeloop.risk.overrides import AuditLog

    settings = backtests or BacktestApiConfig()
    pool = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="backtest")

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if engine is not None and not engine.running:
            engine.start()
        try:
            yield
        finally:
            if engine is not None:
                engine.stop()
            pool.shutdown(wait=True, cancel_futures=True)

    app = FastAPI(title="tradeloop", version="0.1.0", lifespan=lifespan)
    if service is None and engine is not None:  # the engine's own analytics store
        from tradeloop.config.settings import Settings

        cfg = engine.session.loop_config
        service = SignalService(
            Settings(analytics_path=Path(cfg.path(cfg.run.analytics))),
            role="reader",
            store=engine.analytics,
        )
    app.state.signals = service or SignalService(role="reader")
    app.state.backtests = settings
    app.state.backtest_pool = pool
    app.state.engine = engine
    app.state.json_cache = {}
    audit = engine.audit if engine is not None else AuditLog(None)
    app.state.auth = Auth(api_key, auth_reads=auth_reads, audit=audit)
    registry = CollectorRegistry()
    registry.register(_SignalCollector(app.state.signals))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    app.state.engine_metrics = EngineMetrics(engine, registry) if engine is not None else None
    if engine is not None:  # the live feed's quality per source (tradeloop_stream_*)
        engine.session.stream_metrics.register(registry)
    app.state.registry = registry
    app.include_router(signals_router, dependencies=[Depends(require_read)])
    app.include_router(engine_router)
    app.include_router(backtests_router)
    app.include_router(dashboard_router)

    @app.get("/metrics", tags=["service"])
    async def prometheus_metrics() -> Response:
        """Prometheus text exposition of every series (see tradeloop.api.metrics)."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app
