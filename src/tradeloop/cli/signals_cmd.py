"""``tradeloop signals ...``: publish liquidation-zone signals, consume P&L feedback."""

from __future__ import annotations

import contextlib
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tradeloop.cli.console import Console, Table

if TYPE_CHECKING:
    from tradeloop.config.settings import Settings

if TYPE_CHECKING:
    from tradeloop.bus import RedisBusConfig

console = Console()

signals_app = typer.Typer(
    help="Adaptive signal loop: liquidation-zone signals out, P&L feedback in.",
    no_args_is_help=True,
)


def _settings(redis_url: str | None, store: Path | None) -> Settings:
    from tradeloop.config.settings import Settings

    overrides: dict[str, Any] = {}
    if redis_url:
        overrides["redis_url"] = redis_url
    if store:
        overrides["analytics_path"] = store
    return Settings(**overrides)


def _bus_config(settings: Settings) -> RedisBusConfig:
    from tradeloop.bus import RedisBusConfig

    return RedisBusConfig(
        url=settings.redis_url,
        stream_prefixes=(settings.feedback_channel_prefix,),
        retained_prefixes=(settings.weights_channel,),
    )


@signals_app.command("publish")
def publish(
    symbol: Annotated[str, typer.Option(help="Symbol, e.g. BTC/USDT.")],
    data: Annotated[
        Path, typer.Option("--data", "-d", help="OHLCV file to replay (CSV/Parquet/Feather).")
    ],
    redis_url: Annotated[str | None, typer.Option(help="Redis URL (default: settings).")] = None,
    in_process: Annotated[bool, typer.Option(help="Do not connect to Redis.")] = False,
    every: Annotated[int, typer.Option(min=1, help="Publish on every N-th bar.")] = 1,
    store: Annotated[
        Path | None,
        typer.Option(help="DuckDB analytics file (read-only; only with --in-process)."),
    ] = None,
    weights_refresh: Annotated[
        float,
        typer.Option(min=0.0, help="Re-read the consumer's weights at most every S seconds."),
    ] = 2.0,
    flush_timeout: Annotated[
        float, typer.Option(min=0.0, help="Seconds to wait for queued signals at the end.")
    ] = 60.0,
) -> None:
    """Replay a data file through the liquidation-zone model and publish the top-N zones.

    Publishing waits for Redis instead of dropping (back-pressure). The weights are the ones the
    running `signals consume` broadcasts (re-read every --weights-refresh seconds). Exits with
    status 1 when none of the signals reached Redis.
    """
    import asyncio  # here, not at the top: every tradeloop command would pay its import

    from tradeloop.bus import InProcessBus, RedisBus, redacted_url
    from tradeloop.config.logging import setup_logging
    from tradeloop.data.loader import load_ohlcv
    from tradeloop.signals import (
        HeatmapConfig,
        SharedWeights,
        SignalPublisher,
        SignalService,
        bus_weights,
        signal_codec,
        store_weights,
    )
    from tradeloop.store import AnalyticsStore

    setup_logging()
    settings = _settings(redis_url, store)
    loaded = load_ohlcv(data, symbol=symbol)
    delta = loaded.extras.get("volume_delta")
    defaults = {c: 1.0 for c in HeatmapConfig().components}

    async def run() -> tuple[int, SignalPublisher | None, SharedWeights, dict[str, int] | None]:
        bus: InProcessBus | RedisBus
        if in_process:
            bus = InProcessBus()
            reader = store_weights(
                AnalyticsStore(settings.analytics_path, read_only=True, hold=False)
            )
        else:
            bus = RedisBus(_bus_config(settings), signal_codec())
            await bus.start()
            reader = bus_weights(bus, settings.weights_channel)
        shared = SharedWeights(reader, defaults, refresh_s=weights_refresh)
        service = SignalService(settings, bus=bus, role="publisher", weights=shared)
        try:
            pub = service.publisher(symbol)
            n = 0 if pub is None else pub.replay(loaded.bars, delta, publish_every=every)
            if isinstance(bus, RedisBus):
                await bus.flush(flush_timeout)  # back-pressure left at most buffer_max queued
        finally:
            if isinstance(bus, RedisBus):
                await bus.stop(flush_timeout_s=0.0)  # what is still queued counts as unsent
            service.close()
        return n, pub, shared, dict(bus.stats) if isinstance(bus, RedisBus) else None

    n, pub, shared, stats = asyncio.run(run())
    if pub is None:
        console.print("signal loop disabled (TRADELOOP_SIGNALS_ENABLED=false)")
        return
    table = Table(
        title=f"{pub.topic}: {n} signals from {len(loaded.bars)} bars "
        f"(flow from {pub.heatmap.flow_source}, split by {pub.heatmap.split}; "
        f"weights v{shared.version})"
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
    if stats is None:
        console.print(f"published {n} signals in-process (no Redis)")
        return
    reached, fallback = stats["mirrored"], stats["fallback"]
    lost = stats["dropped_pubsub"] + stats["unsent"]
    console.print(
        f"delivered to Redis: {reached} of {n} signals; in-process fallback: {fallback}; "
        f"lost: {lost}; back-pressure waits: {stats['backpressure_waits']}"
    )
    if n and reached == 0:
        console.print(
            f"[red]Redis unreachable at {redacted_url(settings.redis_url)}: none of the {n} "
            f"signals reached Redis ({fallback} went to the in-process fallback only)[/red]"
        )
        raise typer.Exit(1)
    if reached < n:
        console.print(f"[yellow]{n - reached} of {n} signals did not reach Redis[/yellow]")


@signals_app.command("consume")
def consume(
    symbol: Annotated[list[str], typer.Option(help="Symbols whose feedback to consume.")],
    duration: Annotated[float, typer.Option(help="Seconds to run (0: until Ctrl-C).")] = 0.0,
    redis_url: Annotated[str | None, typer.Option(help="Redis URL (default: settings).")] = None,
    group: Annotated[str, typer.Option(help="Consumer group.")] = "tradeloop-feedback",
    consumer: Annotated[str, typer.Option(help="Consumer name in the group.")] = "consumer-1",
    store: Annotated[Path | None, typer.Option(help="DuckDB analytics file.")] = None,
    adapt_every: Annotated[
        int, typer.Option(min=1, help="Update the weights after every N stored outcomes.")
    ] = 50,
    adapt_interval: Annotated[
        float, typer.Option(min=0.001, help="... and at least every S seconds.")
    ] = 60.0,
) -> None:
    """Consume TradeFeedback (Streams and PUBLISH) into DuckDB and adapt the weights as it runs.

    This process is the only writer of the analytics file; `serve` and `signals status` read it
    next to it. Every weight version is broadcast for running publishers.
    """
    import asyncio  # here, not at the top: every tradeloop command would pay its import

    from tradeloop.bus import RedisBus
    from tradeloop.config.logging import setup_logging
    from tradeloop.signals import AdaptSchedule, SignalService, signal_codec

    setup_logging()
    settings = _settings(redis_url, store)
    schedule = AdaptSchedule(every_outcomes=adapt_every, every_s=adapt_interval)

    async def run() -> tuple[SignalService, dict[str, int]]:
        bus = RedisBus(_bus_config(settings), signal_codec())
        service = SignalService(settings, bus=bus, role="consumer")
        if service.consumer is None:
            return service, {}
        await bus.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows
                loop.add_signal_handler(sig, stop.set)
        if duration > 0:
            loop.call_later(duration, stop.set)
        try:
            await service.run_consumer(
                bus, symbol, schedule=schedule, group=group, consumer=consumer, stop=stop
            )
        finally:
            await bus.stop()
        return service, dict(bus.stats)

    try:
        service, stats = asyncio.run(run())
    except KeyboardInterrupt:
        return
    if service.consumer is None or service.adaptive is None:
        console.print("signal loop disabled (TRADELOOP_SIGNALS_ENABLED=false)")
        return
    console.print(
        f"received {service.consumer.received}, stored {service.consumer.stored}, "
        f"duplicates {service.consumer.duplicates}, refused {stats.get('dead_letters', 0)}; "
        f"weights v{service.adaptive.version} after {service.adaptations} updates"
    )
    service.close()


@signals_app.command("status")
def status(
    store: Annotated[Path | None, typer.Option(help="DuckDB analytics file.")] = None,
) -> None:
    """Show the current adaptive weights and the rolling feedback metrics."""
    from tradeloop.signals import SignalService

    service = SignalService(_settings(None, store), role="reader")
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


def register(app: typer.Typer) -> None:
    """Add the signal-loop commands to ``app``."""
    app.add_typer(signals_app, name="signals")
