"""``tradeloop data ...``: fetch, list and check market data."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NamedTuple

import typer

from tradeloop.cli.column_options import (
    CloseCol,
    HighCol,
    LowCol,
    OpenCol,
    TimeUnit,
    TimeZone,
    TsCol,
    VolumeCol,
)
from tradeloop.cli.console import Console, Table
from tradeloop.cli.failure import fail

if TYPE_CHECKING:
    from tradeloop.data.cache import CacheEntry, ParquetCache
    from tradeloop.data.quality import QualityReport, QualityThresholds

data_app = typer.Typer(
    help="Market data: fetch exchange history into the Parquet cache, list it, check quality.",
    no_args_is_help=True,
)
console = Console()
err_console = Console(stderr=True)


_fail = fail  # the CLI's one error report (tradeloop.cli.failure)


def _iso(ns: int | None) -> str:
    if ns is None:
        return "-"
    from tradeloop.core.time import to_iso

    return to_iso(ns).replace("+00:00", "Z")


def _short(ns: int | None) -> str:
    """Compact UTC time: ``2025-06-01 00:00``."""
    return "-" if ns is None else _iso(ns)[:16].replace("T", " ")


def _duration(ns: int) -> str:
    minutes = ns // 60_000_000_000
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else "", f"{mins}m" if mins else ""]
    return "".join(parts) or "0m"


# ---------------------------------------------------------------------- fetch


@data_app.command()
def fetch(
    exchange: Annotated[str, typer.Option(help="ccxt exchange id, e.g. binance or bybit.")],
    start: Annotated[str, typer.Option(help="First bar, UTC date or ISO time (inclusive).")],
    symbol: Annotated[
        list[str] | None,
        typer.Option("--symbol", help="Unified symbol, e.g. BTC/USDT (repeatable)."),
    ] = None,
    symbol_short: Annotated[
        list[str] | None,
        typer.Option("-s", hidden=True, help="Deprecated: --symbol (-s is --strategy elsewhere)."),
    ] = None,
    end: Annotated[
        str | None, typer.Option(help="End, UTC date or ISO time (exclusive); default: now.")
    ] = None,
    timeframe: Annotated[
        list[str] | None,
        typer.Option("--timeframe", "-t", help="Candle timeframe (repeatable); default 1m."),
    ] = None,
    market: Annotated[
        str, typer.Option(help="spot, or perp (USD-M perpetual: also funding and open interest).")
    ] = "spot",
    trades: Annotated[bool, typer.Option("--trades", help="Also cache public trades.")] = False,
    oi_period: Annotated[
        str, typer.Option(help="Open-interest history period for --market perp.")
    ] = "5m",
    fill: Annotated[
        str,
        typer.Option(help="Gap policy: 'none' reports gaps; 'forward' stores flat synthetic bars."),
    ] = "none",
    force: Annotated[
        bool, typer.Option("--force", help="Replace the cached series (also a corrupt file).")
    ] = False,
    root: Annotated[
        Path | None, typer.Option(help="Cache root (default: settings cache_root).")
    ] = None,
    testnet: Annotated[
        bool, typer.Option("--testnet", help="Use the exchange's testnet/sandbox.")
    ] = False,
    url: Annotated[
        str | None,
        typer.Option(help="Base URL for every REST host of the exchange (local server, proxy)."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log details.")] = False,
) -> None:
    """Download history through ccxt into the Parquet cache; re-runs fetch only what is missing.

    Example: tradeloop data fetch --exchange binance --symbol BTC/USDT --timeframe 1m
    --start 2024-01-01 --end 2024-06-30
    """
    from tradeloop.config.logging import setup_logging
    from tradeloop.core.errors import ConfigError, TradeloopError

    setup_logging(logging.INFO if verbose else logging.WARNING)
    if symbol_short:
        err_console.print(
            "[yellow]-s for a symbol is deprecated (removed in the next release; -s is "
            "--strategy in every other command): use --symbol[/]"
        )
    symbol = [*(symbol or []), *(symbol_short or [])]
    try:
        if not symbol:
            raise ConfigError("give at least one --symbol, e.g. --symbol BTC/USDT")
        from tradeloop.adapters.ccxt import CcxtHistorySource
        from tradeloop.config.settings import load_settings
        from tradeloop.core.time import parse_time
        from tradeloop.core.timeframes import timeframe_ns
        from tradeloop.data.cache import ParquetCache
        from tradeloop.data.history import HistoricalDataProvider

        if fill not in ("none", "forward"):
            raise ConfigError(f"--fill must be 'none' or 'forward', got {fill!r}")
        timeframes = list(timeframe or ["1m"])
        for tf in [*timeframes, oi_period]:
            timeframe_ns(tf)
        settings = load_settings()
        ex_settings = settings.exchange(exchange)
        changes: dict[str, Any] = {}
        if testnet:
            changes["testnet"] = True
        if url:
            changes["url"] = url
        if changes:
            ex_settings = ex_settings.with_changes(**changes)
        start_ns = parse_time(start, field="--start")
        end_ns = parse_time(end, field="--end") if end else time.time_ns()
        if end_ns <= start_ns:
            raise ConfigError("--end must be after --start")
        cache = ParquetCache(root or settings.resolved_cache_root())
        source = CcxtHistorySource(exchange, market, ex_settings, settings.retry)
        provider = HistoricalDataProvider(source, cache)
        datasets: list[str] = []
        if market == "perp":
            datasets += ["funding_rate", f"open_interest_{oi_period}"]
        if trades:
            datasets.append("trades")
        datasets += timeframes
        reports = []
        with _FetchProgress(source) as progress:
            for sym in symbol:
                fetched = []
                for dataset in datasets:
                    progress.begin(sym, dataset)
                    fetched.append(
                        provider.fetch(
                            sym, dataset, start_ns, end_ns, force=force, progress=progress.update
                        )
                    )
                reports += fetched
                changed = any(r.rows_fetched or not r.up_to_date for r in fetched)
                for tf in timeframes:
                    key = provider.key(sym, tf)
                    rewritten = fill == "forward" and _fill_forward(cache, key)
                    if changed or rewritten or "cvd" not in cache.columns(key):
                        provider.refresh_orderflow(sym, tf)
    except TradeloopError as exc:
        raise _fail(exc) from None
    _print_fetch_summary(reports, cache, source)


class _FetchProgress:
    """Rich progress bar: time covered, rows, date reached, retries, ETA."""

    def __init__(self, source: Any) -> None:
        from rich.progress import (
            BarColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
        )

        self.source = source
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rows]:>10,} rows"),
            TextColumn("reached {task.fields[reached]}"),
            TextColumn("[yellow]{task.fields[retries]}"),
            TimeRemainingColumn(),
            console=err_console,
            transient=False,
        )
        self.task: Any = None

    def __enter__(self) -> _FetchProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def begin(self, symbol: str, dataset: str) -> None:
        self.task = self.progress.add_task(
            f"{symbol} {dataset}", total=None, rows=0, reached="-", retries=""
        )

    def update(self, p: Any) -> None:
        stats = self.source.stats
        retries = f"{stats.retries} retries" if stats.retries else ""
        self.progress.update(
            self.task,
            total=max(p.total_ns, 1),
            completed=p.done_ns,
            rows=p.rows,
            reached=_iso(p.reached_ns) if p.reached_ns is not None else "-",
            retries=retries,
        )


def _fill_forward(cache: ParquetCache, key: Any) -> bool:
    """Store missing bars as flat synthetic bars; return True when the file was rewritten."""
    import numpy as np
    import pyarrow as pa

    from tradeloop.core.timeframes import timeframe_ns
    from tradeloop.data.cache import TS_TYPE, timestamps_ns
    from tradeloop.data.gaps import fill_forward
    from tradeloop.data.orderflow import DERIVED_COLUMNS

    table = cache.read(key)
    if table is None or table.num_rows < 2:
        return False
    table = table.drop_columns([c for c in DERIVED_COLUMNS if c in table.column_names])
    cols = {
        name: np.asarray(table.column(name).to_numpy(), dtype=np.float64)
        for name in ("open", "high", "low", "close", "volume")
    }
    if "synthetic" in table.column_names:
        cols["synthetic"] = np.asarray(table.column("synthetic").fill_null(False).to_numpy())
    before = table.num_rows
    ts, filled, synthetic = fill_forward(timestamps_ns(table), cols, timeframe_ns(key.dataset))
    if ts.shape[0] == before and "synthetic" in table.column_names:
        return False
    out = pa.table(
        {"timestamp": pa.array(ts, pa.int64()).cast(TS_TYPE), **filled, "synthetic": synthetic}
    )
    meta = {k: v for k, v in cache.metadata(key).items() if k != "coverage"}
    meta["gap_fill"] = "forward"
    cache.write(key, out, cache.coverage(key), meta)
    return True


def _print_fetch_summary(reports: list[Any], cache: ParquetCache, source: Any) -> None:
    table = Table(title=f"fetched into {cache.root}", title_justify="left")
    for name, justify in (
        ("symbol", "left"),
        ("dataset", "left"),
        ("range", "left"),
        ("pages", "right"),
        ("new rows", "right"),
        ("rows cached", "right"),
        ("status", "left"),
    ):
        table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for r in reports:
        status = "up to date" if r.up_to_date else "fetched"
        table.add_row(
            r.key.symbol,
            r.key.dataset,
            f"{_short(r.requested[0])} → {_short(r.requested[1])}",
            f"{r.pages:,}",
            f"{r.rows_fetched:,}",
            f"{r.rows_total:,}",
            status,
        )
    console.print(table)
    s = source.stats
    console.print(
        f"requests {s.calls:,} · retries {s.retries} · rate-limited (429) {s.rate_limited} · "
        f"banned (418) {s.banned} · server errors {s.server_errors} · "
        f"network errors {s.network_errors} · waited {s.waited_s:.1f}s"
        + (f" · weight used {s.last_weight}" if s.last_weight is not None else "")
    )


# ---------------------------------------------------------------------- list


@data_app.command("list")
def list_cached(
    root: Annotated[
        Path | None, typer.Option(help="Cache root (default: settings cache_root).")
    ] = None,
    exchange: Annotated[str | None, typer.Option(help="Only this exchange.")] = None,
    symbol: Annotated[str | None, typer.Option(help="Only this symbol.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List cached series: exchange, market, symbol, dataset, range, rows and gaps."""
    from tradeloop.config.settings import load_settings
    from tradeloop.core.errors import TradeloopError
    from tradeloop.data.cache import ParquetCache

    try:
        cache = ParquetCache(root or load_settings().resolved_cache_root())
        entries = _filter(cache.entries(), exchange, None, symbol)
    except TradeloopError as exc:
        raise _fail(exc) from None
    if as_json:
        import json

        print(json.dumps([_entry_json(e) for e in entries], indent=2))
        return
    if not entries:
        console.print(f"nothing cached under {cache.root}")
        return
    table = Table(title=f"cache {cache.root}", title_justify="left")
    table.add_column("exchange market symbol", overflow="fold")
    table.add_column("dataset", overflow="fold")
    table.add_column("from → to (UTC)", overflow="fold")
    for name in ("rows", "gaps", "missing", "synthetic", "MB"):
        table.add_column(name, justify="right")
    for e in entries:
        size = f"{e.path.stat().st_size / 1e6:.1f}"
        series = f"{e.key.exchange} {e.key.market} {e.key.symbol}"
        if e.error:
            table.add_row(series, e.key.dataset, "[red]corrupt file[/]", "", "", "", "", size)
            continue
        candles = e.key.kind == "candles"
        table.add_row(
            series,
            e.key.dataset,
            f"{_short(e.first_ns)} → {_short(e.last_ns)}",
            f"{e.rows:,}",
            f"{e.gaps:,}" if candles else "-",
            f"{e.missing_bars:,}" if candles else "-",
            f"{e.synthetic:,}" if candles else "-",
            size,
        )
    console.print(table)


def _entry_json(e: CacheEntry) -> dict[str, Any]:
    """One cached series as JSON."""
    candles = e.key.kind == "candles"
    return {
        "exchange": e.key.exchange,
        "market": e.key.market,
        "symbol": e.key.symbol,
        "dataset": e.key.dataset,
        "path": str(e.path),
        "first": _iso(e.first_ns) if not e.error else None,
        "last": _iso(e.last_ns) if not e.error else None,
        "rows": e.rows,
        "gaps": e.gaps if candles else None,
        "missing_bars": e.missing_bars if candles else None,
        "synthetic": e.synthetic if candles else None,
        "bytes": e.path.stat().st_size,
        "error": e.error or None,
    }


def _filter(
    entries: list[CacheEntry], exchange: str | None, market: str | None, symbol: str | None
) -> list[CacheEntry]:
    out = []
    for e in entries:
        if exchange and e.key.exchange != exchange.lower():
            continue
        if market and e.key.market != market:
            continue
        if symbol:
            wanted = symbol.upper()
            if e.key.symbol != wanted and e.key.symbol.split(":")[0] != wanted:
                continue
        out.append(e)
    return out


# ---------------------------------------------------------------------- check


@data_app.command()
def check(
    target: Annotated[str, typer.Argument(help="A data file, a folder, or a cached symbol.")],
    exchange: Annotated[str | None, typer.Option(help="Cached symbol: only this exchange.")] = None,
    market: Annotated[str | None, typer.Option(help="Cached symbol: only this market.")] = None,
    timeframe: Annotated[
        str | None,
        typer.Option("--timeframe", "-t", help="Timeframe (default: cache name or detected)."),
    ] = None,
    root: Annotated[
        Path | None, typer.Option(help="Cache root (default: settings cache_root).")
    ] = None,
    max_gaps: Annotated[int | None, typer.Option(help="Fail past this many gaps.")] = None,
    max_missing: Annotated[
        int | None, typer.Option(help="Fail past this many missing bars.")
    ] = None,
    max_gap_bars: Annotated[
        int | None, typer.Option(help="Fail when a gap misses more bars than this.")
    ] = None,
    max_zero_volume: Annotated[
        int | None, typer.Option(help="Fail past this many zero-volume bars.")
    ] = None,
    max_outliers: Annotated[
        int | None, typer.Option(help="Fail past this many outlier bars.")
    ] = None,
    max_stale: Annotated[int | None, typer.Option(help="Fail past this many stale bars.")] = None,
    interpolated_run: Annotated[
        int, typer.Option(help="Fail on straight-line runs of this many bars (0: off).")
    ] = 5,
    zscore: Annotated[float, typer.Option(help="Outlier z-score limit.")] = 8.0,
    iqr: Annotated[float, typer.Option(help="Outlier IQR fence multiplier.")] = 10.0,
    window: Annotated[int, typer.Option(help="Rolling window (bars) of the outlier stats.")] = 500,
    allow_off_grid: Annotated[
        bool, typer.Option("--allow-off-grid", help="Report off-grid stamps without failing.")
    ] = False,
    show_gaps: Annotated[int, typer.Option(help="List this many of the longest gaps.")] = 5,
    spike_factor: Annotated[
        float,
        typer.Option(
            help="Fail on bars this many times above/below their neighbours' median close (0: off)."
        ),
    ] = 10.0,
    show: Annotated[
        int, typer.Option(help="List where each finding is: this many rows/times per check.")
    ] = 5,
    calendar: Annotated[
        str | None,
        typer.Option(
            help="Market calendar (e.g. XNYS): intraday bars are on a grid from each "
            "session's open, and a night, weekend or holiday is no gap."
        ),
    ] = None,
    no_header: Annotated[
        bool, typer.Option("--no-header", help="The file has no header row (see --columns).")
    ] = False,
    columns: Annotated[
        str | None,
        typer.Option(help="Column names in file order, comma-separated, for --no-header files."),
    ] = None,
    skip_rows: Annotated[
        int | None, typer.Option(help="Lines to skip above the header (banner lines).")
    ] = None,
    ts_col: TsCol = None,
    open_col: OpenCol = None,
    high_col: HighCol = None,
    low_col: LowCol = None,
    close_col: CloseCol = None,
    volume_col: VolumeCol = None,
    time_unit: TimeUnit = None,
    tz: TimeZone = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the reports as JSON (same exit codes).")
    ] = False,
) -> None:
    """Print a quality report; exit 1 when a threshold is exceeded (a gate before backtests).

    Fails by default on OHLC violations, invalid values, duplicate or unsorted timestamps,
    off-grid timestamps and straight-line interpolated runs of 5+ bars; gaps, zero-volume
    bars, outliers and stale runs fail only past the --max-* limits.
    """
    from tradeloop.core.errors import ConfigError, TradeloopError
    from tradeloop.data.quality import QualityThresholds

    try:
        thresholds = QualityThresholds(
            max_gaps=max_gaps,
            max_missing_bars=max_missing,
            max_gap_bars=max_gap_bars,
            max_zero_volume=max_zero_volume,
            max_outliers=max_outliers,
            max_stale_bars=max_stale,
            interpolated_run=interpolated_run,
            fail_on_off_grid=not allow_off_grid,
            outlier_window=window,
            zscore_limit=zscore,
            iqr_multiplier=iqr,
            spike_factor=spike_factor,
        )
        for flag, value in (("--show", show), ("--show-gaps", show_gaps)):
            if value < 0:
                raise ConfigError(f"{flag} must be 0 or more, got {value}")
        from tradeloop.data.loader import ColumnMap, CsvLayout

        layout = CsvLayout.from_options(no_header, columns, skip_rows)
        names = (ts_col, open_col, high_col, low_col, close_col, volume_col)
        reading = _Reading(
            layout,
            ColumnMap(*names) if any(n is not None for n in names) else None,
            time_unit,
            tz,
        )
        targets = _check_targets(target, exchange, market, timeframe, root)
        reports = [_check_one(path, tf, thresholds, reading, calendar) for path, tf in targets]
    except TradeloopError as exc:
        raise _fail(exc) from None
    failed = [r for r in reports if not r.ok]
    if as_json:
        print(json.dumps([_report_json(r) for r in reports], indent=2))
        if failed:
            raise typer.Exit(1)
        return
    for report in reports:
        _print_report(report, thresholds, show_gaps, show)
    if failed:
        err_console.print(
            f"[bold red]{len(failed)} of {len(reports)} series failed the quality check[/]"
        )
        raise typer.Exit(1)


def _report_json(r: QualityReport) -> dict[str, Any]:
    """One quality report as JSON: counts, failures and every finding with its locations."""
    g = r.gaps
    return {
        "source": r.source,
        "timeframe": r.timeframe,
        "rows": r.rows,
        "first": _iso(r.first_ns) if r.first_ns is not None else None,
        "last": _iso(r.last_ns) if r.last_ns is not None else None,
        "ok": r.ok,
        "failures": list(r.failures),
        "gaps": {"count": len(g), "missing_bars": g.total_missing, "longest": g.longest},
        "duplicates": r.duplicates,
        "unsorted": r.unsorted,
        "ohlc_violations": r.ohlc_violations,
        "invalid_values": r.invalid_values,
        "zero_volume": r.zero_volume,
        "outlier_rows": r.outlier_rows,
        "stale_bars": r.stale_bars,
        "interpolated_runs": r.interpolated_runs,
        "off_grid": r.off_grid,
        "extreme_bars": r.extreme_bars,
        "findings": [f.as_dict() for f in r.findings],
    }


def _check_targets(
    target: str,
    exchange: str | None,
    market: str | None,
    timeframe: str | None,
    root: Path | None,
) -> list[tuple[Path, str | None]]:
    from tradeloop.config.settings import load_settings
    from tradeloop.core.errors import ConfigError
    from tradeloop.data.cache import ParquetCache

    path = Path(target)
    if path.is_file():
        return [(path, timeframe)]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.parquet") if _is_candle_name(p.stem))
        if not files:
            raise ConfigError(f"no candle Parquet files below {path}")
        return [(p, timeframe or p.stem) for p in files]
    if "/" not in target and not target.isalnum():
        raise ConfigError(f"{target!r} is neither a file nor a symbol like BTC/USDT")
    cache = ParquetCache(root or load_settings().resolved_cache_root())
    entries = [
        e
        for e in _filter(cache.entries(), exchange, market, target)
        if e.key.kind == "candles" and (timeframe is None or e.key.dataset == timeframe)
    ]
    if not entries:
        raise ConfigError(
            f"{target!r} is not a file, and no cached candles match it under {cache.root} "
            "(see `tradeloop data list`)"
        )
    return [(e.path, e.key.dataset) for e in entries]


def _is_candle_name(name: str) -> bool:
    from tradeloop.core.errors import ConfigError
    from tradeloop.core.timeframes import timeframe_ns

    try:
        timeframe_ns(name)
    except ConfigError:
        return False
    return True


class _Reading(NamedTuple):
    """How ``data check`` reads a file: its CSV layout, column names and epoch unit."""

    layout: Any = None
    columns: Any = None
    time_unit: str | None = None
    tz: str | None = None


def _check_one(
    path: Path,
    timeframe: str | None,
    thresholds: QualityThresholds,
    reading: _Reading | None = None,
    calendar: str | None = None,
) -> QualityReport:
    import numpy as np

    from tradeloop.data.loader import infer_timeframe, read_unvalidated
    from tradeloop.data.quality import check_quality

    how = reading or _Reading()
    raw = read_unvalidated(
        path, layout=how.layout, columns=how.columns, time_unit=how.time_unit, tz=how.tz
    )
    tf = timeframe or infer_timeframe(np.unique(raw.ts), file=str(path))
    sessions = None
    if calendar and raw.ts.size:
        from tradeloop.data.sessions import sessions_for

        sessions = sessions_for(calendar, int(raw.ts.min()), int(raw.ts.max()))
    report = check_quality(raw, tf, thresholds, sessions=sessions)
    if sessions is not None:
        from tradeloop.core.timeframes import timeframe_ns
        from tradeloop.engine.runner import wall_clock_message

        bar_ns = timeframe_ns(tf)
        reading = sessions.wall_clock_reading(raw.ts, bar_ns)
        if reading is not None:  # the times as a backtest would read them: refused there
            report.failures.append(wall_clock_message(sessions, len(raw.ts), *reading))
        outside = int(len(raw.ts) - np.count_nonzero(sessions.in_session(raw.ts, bar_ns)))
        if outside:
            err_console.print(
                f"{outside:,} of {len(raw.ts):,} bars fall outside {sessions.name} sessions "
                "(a backtest with --calendar leaves them out)"
            )
    return report


def _print_report(r: QualityReport, th: QualityThresholds, show_gaps: int, show: int = 5) -> None:
    import numpy as np

    title = f"{r.source} · {r.timeframe} · {r.rows:,} rows · {_iso(r.first_ns)} → {_iso(r.last_ns)}"
    table = Table(title=title, title_justify="left")
    table.add_column("check")
    table.add_column("found", justify="right")
    table.add_column("limit", justify="right")
    table.add_column("", justify="center")

    def row(name: str, value: int, limit: int | None, detail: str = "") -> None:
        bad = limit is not None and value > limit
        mark = "[red]✗ fail[/]" if bad else ("[green]✓[/]" if value == 0 else "[yellow]report[/]")
        shown = f"{value:,}" + (f" ({detail})" if detail else "")
        table.add_row(name, shown, "-" if limit is None else f"{limit:,}", mark)

    g = r.gaps
    longest = (
        f"longest {g.longest:,} bars, {_duration(g.longest_span_ns)} between bars" if len(g) else ""
    )
    row("gaps", len(g), th.max_gaps, longest)
    row("missing bars", g.total_missing, th.max_missing_bars)
    row("longest gap (bars)", g.longest, th.max_gap_bars)
    row("duplicate timestamps", r.duplicates, 0 if th.fail_on_duplicates else None)
    row("unsorted rows", r.unsorted, 0 if th.fail_on_duplicates else None)
    row("OHLC violations", r.ohlc_violations, 0 if th.fail_on_ohlc else None)
    row("invalid values (NaN/inf)", r.invalid_values, 0 if th.fail_on_ohlc else None)
    row("zero-volume bars", r.zero_volume, th.max_zero_volume)
    detail = ", ".join(f"{k} {v}" for k, v in r.outliers.items())
    row("outlier bars", r.outlier_rows, th.max_outliers, detail)
    row("stale runs (identical bars)", r.stale_bars, th.max_stale_bars, f"{r.stale_runs} runs")
    row(
        f"interpolated runs ({th.interpolated_run}+ bars)",
        r.interpolated_runs,
        0 if th.interpolated_run > 0 else None,
        f"longest {r.longest_interpolated} bars" if r.longest_interpolated else "",
    )
    row("off-grid timestamps", r.off_grid, 0 if th.fail_on_off_grid else None)
    row(
        f"extreme values ({th.spike_factor:g}x neighbours)",
        r.extreme_bars,
        0 if th.spike_factor > 0 else None,
    )
    row("synthetic (filled) bars", r.synthetic, None)
    console.print(table)
    if len(g) and show_gaps > 0:
        top = np.argsort(-g.missing, kind="stable")[:show_gaps]
        gaps = Table(title=f"longest gaps (of {len(g):,})", title_justify="left")
        for name in ("last bar before", "first bar after", "missing bars", "span"):
            gaps.add_column(name)
        for i in top:
            gaps.add_row(
                _iso(int(g.before_ns[i])),
                _iso(int(g.after_ns[i])),
                f"{int(g.missing[i]):,}",
                _duration(int(g.after_ns[i] - g.before_ns[i])),
            )
        console.print(gaps)
    if r.zero_volume:
        shown = ", ".join(_iso(int(t)) for t in r.zero_volume_ts[:10])
        more = f" and {r.zero_volume - 10:,} more" if r.zero_volume > 10 else ""
        console.print(f"zero-volume bars: {shown}{more}")
    if show > 0:
        for finding in r.findings:
            if finding.check in ("gaps", "zero-volume bars"):
                continue  # listed above
            mark = "[red]✗[/]" if finding.fails else "[yellow]•[/]"
            console.print(f"{mark} {finding.check} ({finding.count:,}):", highlight=False)
            for place in finding.where[:show]:
                console.print(f"    {place}", highlight=False, soft_wrap=True)
            hidden = finding.count - min(show, len(finding.where))
            if hidden > 0:
                console.print(f"    ... and {hidden:,} more", highlight=False)
    verdict = "[green]PASS[/]" if r.ok else "[red]FAIL[/]: " + "; ".join(r.failures)
    console.print(verdict)


from tradeloop.cli.stream_cmd import register_stream_commands  # noqa: E402

register_stream_commands(data_app)
