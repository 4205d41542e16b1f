"""``tradeloop data record`` and ``tradeloop data replay``: live market streams to Parquet
(and PostgreSQL), and recordings back through the pipeline and the kernel."""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tradeloop.cli.console import Console, Table
from tradeloop.cli.failure import fail

if TYPE_CHECKING:
    from tradeloop.adapters.streams.pipeline import MarketPipeline

__all__ = ["register_stream_commands"]

console = Console()
err_console = Console(stderr=True)


_fail = fail  # the CLI's one error report (tradeloop.cli.failure)


def _quality_table(pipeline: MarketPipeline) -> Table:
    table = Table(title="stream quality per source")
    for col in ("source", "msgs", "gaps", "outliers", "dups", "malformed", "resyncs",
                "failovers", "max lag ms"):  # fmt: skip
        table.add_column(col, justify="right" if col != "source" else "left")
    for name, q in pipeline.metrics.sources.items():
        table.add_row(
            name, f"{q.messages:,}", str(q.gaps), str(q.outliers), str(q.duplicates),
            str(q.malformed), str(q.resyncs), str(q.failovers), f"{q.lag_ms_max:,.1f}",
        )  # fmt: skip
    return table


def record(
    exchange: Annotated[
        str | None,
        typer.Option("--exchange", help="ccxt exchange id: binance, bybit, okx, kraken."),
    ] = None,
    symbol: Annotated[
        list[str] | None, typer.Option("--symbol", help="Unified symbol (repeatable).")
    ] = None,
    venue_old: Annotated[
        str | None, typer.Option("--venue", "-e", hidden=True, help="Deprecated: --exchange.")
    ] = None,
    symbol_short: Annotated[
        list[str] | None,
        typer.Option("-s", hidden=True, help="Deprecated: --symbol (-s is --strategy elsewhere)."),
    ] = None,
    *,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Recording folder (Parquet, partitioned by day).")
    ],
    channel: Annotated[
        list[str] | None,
        typer.Option(
            "--channel",
            "-c",
            help="trades, book, ohlcv, funding, open_interest (repeatable; default: "
            "trades, book, ohlcv).",
        ),
    ] = None,
    timeframe: Annotated[
        str, typer.Option("--timeframe", "-t", help="Bar timeframe of the ohlcv channel.")
    ] = "1m",
    market: Annotated[str, typer.Option(help="spot or perp (USDT-margined swaps).")] = "spot",
    duration: Annotated[float, typer.Option(help="Seconds to record (0: until Ctrl-C).")] = 0.0,
    ws_url: Annotated[
        str | None, typer.Option(help="Replace the venue's WebSocket host (ws://host:port).")
    ] = None,
    rest_url: Annotated[
        str | None, typer.Option(help="Replace the venue's REST host (http://host:port).")
    ] = None,
    backup_exchange: Annotated[
        str | None, typer.Option(help="Hot-standby source: exchange id (default: --exchange).")
    ] = None,
    backup_venue_old: Annotated[
        str | None,
        typer.Option("--backup-venue", hidden=True, help="Deprecated: --backup-exchange."),
    ] = None,
    backup_ws_url: Annotated[
        str | None, typer.Option(help="Hot-standby source's WebSocket host.")
    ] = None,
    backup_rest_url: Annotated[
        str | None, typer.Option(help="Hot-standby source's REST host.")
    ] = None,
    stall_ms: Annotated[
        float, typer.Option(help="Fail over when the active source is silent this long.")
    ] = 1000.0,
    outliers: Annotated[str, typer.Option(help="Outlier action: flag, drop or halt.")] = "flag",
    postgres: Annotated[
        str | None,
        typer.Option(
            envvar="TRADELOOP_RECORD_POSTGRES_URL",
            help="Also write batches to this PostgreSQL (TimescaleDB hypertables when available).",
        ),
    ] = None,
    stale_after: Annotated[
        float, typer.Option(help="Resubscribe a channel silent this many seconds.")
    ] = 30.0,
    stale_after_s_old: Annotated[
        float | None,
        typer.Option("--stale-after-s", hidden=True, help="Deprecated: --stale-after."),
    ] = None,
    table_prefix: Annotated[str, typer.Option(help="PostgreSQL table name prefix.")] = "market_",
    metrics_port: Annotated[
        int | None,
        typer.Option(
            help="Serve the stream quality metrics (Prometheus text) on "
            "http://HOST:PORT/metrics while recording (0: a free port, printed).",
        ),
    ] = None,
    metrics_host: Annotated[
        str, typer.Option(help="Address the --metrics-port endpoint listens on.")
    ] = "127.0.0.1",
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Record live market data to Parquet (and PostgreSQL), through the quality pipeline.

    Streams trades, the L2 order book and bars of every --symbol from the exchange's
    WebSocket (ccxt), drops duplicates, flags/drops/halts on outliers, keeps the book in sync (a
    sequence gap triggers a resync), and writes the accepted stream to OUT/<kind>/date=DAY/.
    With --backup-ws-url (and/or --backup-exchange) a second source runs as hot standby and
    takes over when the primary stalls or disconnects; nothing is recorded twice.
    Ctrl-C (or --duration) stops and flushes. `tradeloop data replay OUT` plays it back.
    With --metrics-port the quality metrics per source (messages, msgs/s, lag, gaps,
    outliers, duplicates, malformed frames, resyncs, failovers) are served for Prometheus.
    Hosts default to the settings (TRADELOOP_<EXCHANGE>_URL, TRADELOOP_<EXCHANGE>_WS_URL);
    a read-only TRADELOOP_<EXCHANGE>_API_KEY lets Binance refill lost trades by id.
    (--venue, -e, -s, --backup-venue and --stale-after-s are the deprecated spellings of
    --exchange, --symbol, --backup-exchange and --stale-after.)
    """
    from tradeloop.adapters.streams.ccxt_source import CcxtMarketSource
    from tradeloop.adapters.streams.pipeline import MarketPipeline
    from tradeloop.adapters.streams.service import MarketStream
    from tradeloop.adapters.streams.urls import venue_urls
    from tradeloop.config.logging import setup_logging
    from tradeloop.config.settings import load_settings
    from tradeloop.core.errors import ConfigError
    from tradeloop.data.stream.metrics import StreamMetrics
    from tradeloop.data.stream.quality import OutlierConfig
    from tradeloop.data.stream.recording import ParquetRecorder

    setup_logging(logging.INFO if verbose else logging.WARNING, None)
    for old_name, new_name, given in (
        ("--venue/-e", "--exchange", venue_old),
        ("-s", "--symbol", symbol_short),
        ("--backup-venue", "--backup-exchange", backup_venue_old),
        ("--stale-after-s", "--stale-after", stale_after_s_old),
    ):
        if given:
            err_console.print(
                f"[yellow]{old_name} is deprecated (removed in the next release): use {new_name}[/]"
            )
    venue = exchange or venue_old
    symbol = [*(symbol or []), *(symbol_short or [])]
    backup_venue = backup_exchange or backup_venue_old
    stale_after_s = stale_after_s_old if stale_after_s_old is not None else stale_after
    try:
        if not venue:
            raise ConfigError("give --exchange, e.g. --exchange binance")
        if not symbol:
            raise ConfigError("give at least one --symbol, e.g. --symbol BTC/USDT")
        channels = tuple(channel or ("trades", "book", "ohlcv"))
        if market not in ("spot", "perp"):
            raise ConfigError(f"--market must be spot or perp, got {market!r}")
        if outliers not in ("flag", "drop", "halt"):
            raise ConfigError(f"--outliers must be flag, drop or halt, got {outliers!r}")
        symbols = [s.strip().upper() for s in symbol]
        options = {"fetchMarkets": {"types": ["spot" if market == "spot" else "linear"]},
                   "defaultType": "spot" if market == "spot" else "swap"}  # fmt: skip

        settings = load_settings()

        def source(name: str, v: str, ws: str | None, rest: str | None) -> CcxtMarketSource:
            # hosts and a read-only API key (Binance's trade lookup by id needs one) come
            # from the settings (TRADELOOP_<VENUE>_URL / _WS_URL / _API_KEY) unless given
            venue_settings = settings.exchange(v)
            ws = ws or venue_settings.ws_url
            rest = rest or venue_settings.url
            urls = venue_urls(v, ws, rest) if (ws or rest) else None
            config: dict[str, Any] = {"options": options}
            if venue_settings.api_key is not None:
                config["apiKey"] = venue_settings.api_key.get_secret_value()
            return CcxtMarketSource(
                v, symbols, channels, timeframe=timeframe, name=name, config=config,
                urls=urls, stale_after_s=stale_after_s,
            )  # fmt: skip

        primary = source(venue.lower(), venue.lower(), ws_url, rest_url)
        backup = None
        if backup_venue or backup_ws_url or backup_rest_url:
            bv = (backup_venue or venue).lower()
            backup = source(f"{bv}-backup", bv, backup_ws_url, backup_rest_url)
        recorder = ParquetRecorder(out)
        sinks: list[Any] = [recorder]
        pg = None
        if postgres:
            from tradeloop.data.stream.pg_store import PostgresRecorder

            pg = PostgresRecorder(postgres, prefix=table_prefix)
            sinks.append(pg)
        metrics = StreamMetrics()
        pipeline = MarketPipeline(
            "record",
            metrics=metrics,
            outliers=OutlierConfig(action=outliers),  # type: ignore[arg-type]
            sinks=sinks,
        )
        endpoint = None
        if metrics_port is not None:
            from prometheus_client import CollectorRegistry, start_http_server

            try:
                endpoint, _ = start_http_server(
                    metrics_port, addr=metrics_host, registry=metrics.register(CollectorRegistry())
                )
            except OSError as exc:
                raise ConfigError(
                    f"--metrics-port: cannot listen on {metrics_host}:{metrics_port}: {exc}"
                ) from None
            err_console.print(
                f"metrics on http://{metrics_host}:{endpoint.server_port}/metrics", highlight=False
            )
        stream = MarketStream(primary, pipeline, backup=backup, stall_s=stall_ms / 1000.0)
    except Exception as exc:
        raise _fail(exc) from None

    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    end = time.monotonic() + duration if duration > 0 else float("inf")
    accepted = 0
    try:
        stream.start()
        with console.status("recording...") as status:
            last_shown = 0.0
            while not stop.is_set() and time.monotonic() < end:
                accepted += len(stream.poll(timeout=0.1))
                now = time.monotonic()
                if now - last_shown > 0.5:
                    last_shown = now
                    status.update(
                        f"recording {venue} {', '.join(symbols)}: {accepted:,} events, "
                        f"{pipeline.trades_out:,} trades, {pipeline.bars_out:,} bars"
                    )
        stream.stop()
        accepted += len(stream.poll(timeout=0.2))
    finally:
        signal.signal(signal.SIGINT, previous)
        recorder.close()
        if pg is not None:
            pg.close()
        if endpoint is not None:
            endpoint.shutdown()
            endpoint.server_close()
    if stream.error is not None:
        raise _fail(stream.error)  # type: ignore[arg-type]
    console.print(_quality_table(pipeline))
    if stream.router is not None:
        for sw in stream.router.switches:
            console.print(
                f"failover {sw.from_source} -> {sw.to_source} ({sw.reason}): "
                f"{sw.replayed} buffered event(s), {sw.switch_ms:.2f} ms"
            )
    console.print(
        f"recorded {recorder.events:,} events ({recorder.rows_written:,} rows, "
        f"{len(recorder.files)} files) to {out}"
        + (f"; {pg.rows_written:,} rows to PostgreSQL {pg.target}" if pg is not None else "")
    )


def replay(
    recording: Annotated[Path, typer.Argument(help="Folder written by `tradeloop data record`.")],
    speed: Annotated[str, typer.Option(help="1 (as recorded), N (N times faster) or max.")] = "max",
    strategy: Annotated[
        str | None,
        typer.Option(
            help="Strategy to run on the replayed stream (registry name or module:Class)."
        ),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="Strategy parameter key=value (repeatable)."),
    ] = None,
    symbol: Annotated[
        list[str] | None, typer.Option("--symbol", help="Only these symbols.")
    ] = None,
    symbol_short: Annotated[
        list[str] | None,
        typer.Option("-s", hidden=True, help="Deprecated: --symbol (-s is --strategy elsewhere)."),
    ] = None,
    timeframe: Annotated[
        str,
        typer.Option(
            "--timeframe",
            "-t",
            help="Trading timeframe (closed bars of it are the kernel's steps).",
        ),
    ] = "1m",
    balance: Annotated[float, typer.Option(help="Starting balance.")] = 10_000.0,
    strategies_dir: Annotated[Path, typer.Option(help="Folder of user strategies.")] = Path(
        "strategies"
    ),
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Play a recording through the quality pipeline (and a strategy, via the kernel).

    Events come back in exactly the order they were recorded, paced by their receive times
    (--speed 1), N times faster (--speed N) or as fast as possible (--speed max): the same
    recording always gives the same books, bars, orders and trades. (-s is the deprecated
    spelling of --symbol.)
    """
    from tradeloop.adapters.streams.pipeline import MarketPipeline
    from tradeloop.core.errors import ConfigError
    from tradeloop.data.stream.recording import iter_replay, read_recording
    from tradeloop.engine.config import RunConfig
    from tradeloop.engine.stream_replay import replay_into_kernel

    if symbol_short:
        err_console.print(
            "[yellow]-s for a symbol is deprecated (removed in the next release; -s is "
            "--strategy in every other command): use --symbol[/]"
        )
    symbol = [*(symbol or []), *(symbol_short or [])]
    try:
        pace: float | None
        if speed.strip().lower() in ("max", "inf", "0"):
            pace = None
        else:
            try:
                pace = float(speed)
            except ValueError:
                raise ConfigError(f"--speed must be a number or max, got {speed!r}") from None
            if pace <= 0:
                raise ConfigError(f"--speed must be > 0, got {speed!r}")
        events = read_recording(recording, symbol or None)
        symbols = sorted({e.symbol for e in events})
        pipeline = MarketPipeline("replay")
        if strategy is not None:
            from tradeloop.cli.app import _parse_params
            from tradeloop.strategy.registry import load_strategy_class

            cls = load_strategy_class(strategy, strategies_dir)
            strat = cls(**_parse_params(param or []))
            result = replay_into_kernel(
                iter_replay(events, pace), strat, symbols, timeframe,
                RunConfig(balance=balance), pipeline=pipeline,
            )  # fmt: skip
        else:
            from tradeloop.engine.stream_replay import ReplayResult

            result = ReplayResult()
            for ev in iter_replay(events, pace):
                result.events += 1
                out = pipeline.process((ev,))
                result.accepted += len(out)
            result.bars = pipeline.bars_out
    except Exception as exc:
        raise _fail(exc) from None
    closed = [t for t in result.trades if t.is_closed]
    summary = {
        "events": result.events,
        "accepted": result.accepted,
        "market_trades": pipeline.trades_out,
        "bars": result.bars,
        "orders": result.orders,
        "fills": result.fills,
        "closed_trades": len(closed),
        "equity": result.equity if strategy is not None else None,
        "trades": [
            {"symbol": t.symbol, "direction": t.direction,
             "entry_ts": t.entry_ts, "entry_price": t.entry_price, "exit_ts": t.exit_ts,
             "exit_price": t.exit_price, "pnl": t.pnl}
            for t in closed
        ],
        "sources": pipeline.summary()["sources"],
    }  # fmt: skip
    if as_json:
        console.print_json(json.dumps(summary))
        return
    table = Table(title=f"replay of {recording}")
    table.add_column("what")
    table.add_column("count", justify="right")
    for key in ("events", "accepted", "market_trades", "bars", "orders", "fills", "closed_trades"):
        table.add_row(key.replace("_", " "), f"{summary[key]:,}")
    if strategy is not None:
        table.add_row("final equity", f"{result.equity:,.2f}")
    console.print(table)
    console.print(_quality_table(pipeline))


def register_stream_commands(app: typer.Typer) -> None:
    """Add ``record`` and ``replay`` to the ``data`` command group."""
    app.command("record")(record)
    app.command("replay")(replay)
