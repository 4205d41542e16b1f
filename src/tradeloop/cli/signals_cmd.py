"""``tradeloop signals ...``: publish liquidation-zone signals, consume P&L feedback."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tradeloop.config.settings import Settings

console = Console()

signals_app = typer.Typer(
    help="Adaptive signal loop: liquidation-zone signals out, P&L feedback in.",
    no_args_is_help=True,
)


def _settings(redis_url: str | None, store: Path | None) -> Settings:
    overrides: dict[str, object] = {}
    if redis_url:
        overrides["redis_url"] = redis_url
    if store:
        overrides["analytics_path"] = store
    return Settings(**overrides)


@signals_app.command("publish")
def publish(
    symbol: Annotated[str, typer.Option(help="Symbol, e.g. BTC/USDT.")],
    data: Annotated[Path, typer.Option(help="OHLCV file to replay (CSV/Parquet/Feather).")],
    redis_url: Annotated[str | None, typer.Option(help="Redis URL (default: settings).")] = None,
    in_process: Annotated[bool, typer.Option(help="Do not connect to Redis.")] = False,
    every: Annotated[int, typer.Option(min=1, help="Publish on every N-th bar.")] = 1,
    store: Annotated[Path | None, typer.Option(help="DuckDB analytics file.")] = None,
) -> None:
    """Replay a data file through the liquidation-zone model and publish the top-N zones."""
    from tradeloop.bus import InProcessBus, RedisBus, RedisBusConfig
    from tradeloop.data.loader import load_ohlcv
    from tradeloop.signals import SignalPublisher, SignalService, signal_codec

    settings = _settings(redis_url, store)
    loaded = load_ohlcv(data, symbol=symbol)
    delta = loaded.extras.get("volume_delta")

    async def run() -> tuple[int, SignalPublisher | None]:
        bus = (
            InProcessBus()
            if in_process
            else RedisBus(RedisBusConfig(url=settings.redis_url), signal_codec())
        )
        if isinstance(bus, RedisBus):
            await bus.start()
        service = SignalService(settings, bus=bus)
        try:
            pub = service.publisher(symbol)
            if pub is None:
                console.print("signal loop disabled (TRADELOOP_SIGNALS_ENABLED=false)")
                return 0, None
            n = pub.replay(loaded.bars, delta, publish_every=every)
            if isinstance(bus, RedisBus):
                await bus.stop()
            return n, pub
        finally:
            service.close()

    n, pub = asyncio.run(run())
    if pub is None:
        return
    table = Table(
        title=f"{pub.topic}: {n} signals from {len(loaded.bars)} bars "
        f"(flow from {pub.heatmap.flow_source}, split by {pub.heatmap.split})"
    )
    for col in ("side", "price", "distance %", "strength", "confidence", "component"):
        table.add_column(col)
    for s in pub.last:
        table.add_row(
            s.side,
            f"{s.price_level:.2f}",
            f"{100 * s.distance_pct:+.2f}",
            f"{s.strength:.1f}",
            f"{s.confidence:.3f}",
            s.component,
        )
    console.print(table)


@signals_app.command("consume")
def consume(
    symbol: Annotated[list[str], typer.Option(help="Symbols whose feedback to consume.")],
    duration: Annotated[float, typer.Option(help="Seconds to run (0: until Ctrl-C).")] = 0.0,
    redis_url: Annotated[str | None, typer.Option(help="Redis URL (default: settings).")] = None,
    group: Annotated[str, typer.Option(help="Consumer group.")] = "tradeloop-feedback",
    consumer: Annotated[str, typer.Option(help="Consumer name in the group.")] = "consumer-1",
    store: Annotated[Path | None, typer.Option(help="DuckDB analytics file.")] = None,
) -> None:
    """Consume TradeFeedback streams into DuckDB and update the adaptive weights."""
    from tradeloop.bus import RedisBus, RedisBusConfig
    from tradeloop.signals import SignalService, signal_codec

    settings = _settings(redis_url, store)

    async def run() -> SignalService:
        bus = RedisBus(RedisBusConfig(url=settings.redis_url), signal_codec())
        service = SignalService(settings, bus=bus)
        if service.consumer is None:
            return service
        await bus.start()
        stop = asyncio.Event()
        if duration > 0:
            asyncio.get_running_loop().call_later(duration, stop.set)
        try:
            await service.consumer.run(
                bus,
                symbol,
                group=group,
                consumer=consumer,
                prefix=settings.feedback_channel_prefix,
                stop=stop,
            )
        finally:
            await bus.stop()
        return service

    try:
        service = asyncio.run(run())
    except KeyboardInterrupt:
        return
    if service.consumer is None or service.adaptive is None:
        console.print("signal loop disabled (TRADELOOP_SIGNALS_ENABLED=false)")
        return
    change = service.adaptive.update(time.time_ns())
    console.print(
        f"received {service.consumer.received}, stored {service.consumer.stored}, "
        f"duplicates {service.consumer.duplicates}; weights v{service.adaptive.version}"
        + (f" ({change.reason})" if change else "")
    )
    service.close()


@signals_app.command("status")
def status(
    store: Annotated[Path | None, typer.Option(help="DuckDB analytics file.")] = None,
) -> None:
    """Show the current adaptive weights and the rolling feedback metrics."""
    from tradeloop.signals import SignalService

    service = SignalService(_settings(None, store))
    metrics = service.metrics()
    if not metrics.get("enabled"):
        console.print("signal loop disabled (TRADELOOP_SIGNALS_ENABLED=false)")
        return
    weights = Table(title=f"adaptive weights v{metrics['weights']['version']}")
    weights.add_column("component")
    weights.add_column("weight")
    for comp, w in sorted(metrics["weights"]["values"].items()):
        weights.add_row(comp, f"{w:.4f}")
    console.print(weights)
    table = Table(title="feedback")
    for col in ("window", "source", "component", "count", "hit rate", "mean pnl"):
        table.add_column(col)
    for window, rows in metrics["windows"].items():
        for r in rows:
            table.add_row(
                window,
                r["source"],
                r["component"],
                str(r["count"]),
                f"{r['hit_rate']:.3f}",
                f"{r['mean_pnl']:.4f}",
            )
    console.print(table)
    service.close()


def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
) -> None:
    """Serve the HTTP API (signal status and metrics, Prometheus /metrics)."""
    import uvicorn

    from tradeloop.api import create_app

    uvicorn.run(create_app(), host=host, port=port)


def register(app: typer.Typer) -> None:
    """Add the signal-loop commands to ``app``."""
    app.add_typer(signals_app, name="signals")
    app.command("serve")(serve)
