"""Compose a backtest from files: load data, build instruments, pick timeframes, run."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tradeloop.core.bar import BarArrays
from tradeloop.core.errors import ConfigError, DataError
from tradeloop.core.instrument import Instrument
from tradeloop.core.timeframes import timeframe_minutes
from tradeloop.data.loader import ColumnMap, CsvLayout, LoadedBars, load_ohlcv
from tradeloop.engine.config import RunConfig
from tradeloop.engine.kernel import BacktestEngine, ProgressCallback
from tradeloop.engine.market import MarketData
from tradeloop.engine.result import BacktestResult
from tradeloop.engine.step import Enrichment, InputSource
from tradeloop.risk.engine import RiskEngine
from tradeloop.strategy.base import Strategy
from tradeloop.strategy.registry import load_strategy_class

if TYPE_CHECKING:
    import numpy as np

    from tradeloop.data.gate import GateCache
    from tradeloop.data.sessions import Sessions

__all__ = ["CacheSpec", "DataSpec", "load_data", "run_backtest", "run_on_bars"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DataSpec:
    """How to read one data file."""

    path: str | Path
    symbol: str | None = None
    columns: ColumnMap | None = None
    time_unit: str | None = None
    repair: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    layout: CsvLayout | None = None
    tz: str | None = None


@dataclass(frozen=True, slots=True)
class CacheSpec:
    """One series from the Parquet cache filled by ``tradeloop data fetch``.

    The finest cached timeframe (1m when cached) is loaded so stop/target drill-down has
    data; ``timeframe`` is used when no 1m series is cached.
    """

    exchange: str
    symbol: str
    timeframe: str
    market: str = "spot"
    root: str | Path | None = None


def _load_cached(spec: CacheSpec) -> LoadedBars:
    from tradeloop.data.cached import load_cached

    try:
        return load_cached(spec.exchange, spec.symbol, "1m", market=spec.market, root=spec.root)
    except DataError:
        return load_cached(
            spec.exchange, spec.symbol, spec.timeframe, market=spec.market, root=spec.root
        )


def load_data(
    specs: Sequence[DataSpec | CacheSpec],
    *,
    gate: bool = False,
    allow_data_issues: bool = False,
    calendar: str | None = None,
    gate_cache: GateCache | None = None,
) -> list[LoadedBars]:
    """Load every data file or cached series; symbols must be distinct.

    With ``gate`` every series passes the data gate (:mod:`tradeloop.data.gate`): the checks
    ``tradeloop data check`` fails on by default (OHLC violations, off-grid stamps, extreme
    values, straight-line interpolated runs...) refuse it, naming rows and times, unless
    ``allow_data_issues``, which keeps the findings on :attr:`LoadedBars.issues`. With
    ``calendar`` (an ``exchange_calendars`` name such as ``XNYS``) the bars outside the
    market's sessions are dropped (counted in ``repaired["outside_sessions"]``) and intraday
    stamps are checked on each session's grid. With ``gate_cache`` a data file (without a
    calendar) that passed the gate before with the same content and options is not checked
    again, and a clean pass is remembered.

    Raises
    ------
    ConfigError
        If two sources resolve to the same symbol, or the calendar is unknown.
    DataError
        If a file or cached series is missing or malformed, or fails the gate.
    """
    loaded: list[LoadedBars] = []
    seen: dict[str, str] = {}
    for spec in specs:
        key = None  # the data gate cache's name for this file, when it is consulted
        if isinstance(spec, CacheSpec):
            item = _load_cached(spec)
            origin = f"{spec.exchange}/{spec.market}/{spec.symbol} (cache)"
        else:
            # the file's hash (the cache's key) is taken while the file loads
            soon = (
                gate_cache.key_soon(spec.path, _load_options(spec))
                if gate and gate_cache is not None and calendar is None
                else None
            )
            item = load_ohlcv(
                spec.path,
                symbol=spec.symbol,
                columns=spec.columns,
                time_unit=spec.time_unit,
                repair=spec.repair,
                layout=spec.layout,
                check_ohlc=not (gate and allow_data_issues),
                tz=spec.tz,
            )
            origin = str(spec.path)
            key = soon.result() if soon is not None else None
        if key is not None and gate_cache is not None and gate_cache.passed(key):
            logger.debug("%s passed the data gate before (same content and options)", origin)
        elif calendar is not None or gate:
            item = _screen(item, gate=gate, allow=allow_data_issues, calendar=calendar)
            if key is not None and gate_cache is not None and not item.issues:
                gate_cache.remember(key)
        symbol = item.bars.symbol
        if symbol in seen:
            raise ConfigError(
                f"{origin} and {seen[symbol]} are both {symbol}; name one with --symbol"
            )
        seen[symbol] = origin
        loaded.append(item)
    return loaded


def _load_options(spec: DataSpec) -> dict[str, Any]:
    """How ``spec``'s file is read (what the data gate's verdict depends on besides its bytes)."""
    from dataclasses import asdict

    return {
        "columns": asdict(spec.columns) if spec.columns is not None else None,
        "time_unit": spec.time_unit,
        "repair": spec.repair,
        "layout": asdict(spec.layout) if spec.layout is not None else None,
        "extra": spec.extra,
        "tz": spec.tz,
    }


def _screen(item: LoadedBars, *, gate: bool, allow: bool, calendar: str | None) -> LoadedBars:
    """Drop bars outside the calendar's sessions, then run the data gate on what is left."""
    from dataclasses import replace

    from tradeloop.data.gate import enforce, gate_report, keep_sessions
    from tradeloop.data.sessions import sessions_for

    sessions = None
    if calendar is not None and len(item.bars):
        ts = item.bars.ts
        sessions = sessions_for(calendar, int(ts[0]), int(ts[-1]))
        _refuse_local_time(item, sessions, allow=allow)
        total = len(item.bars)
        item, dropped = keep_sessions(item, sessions)
        if dropped:
            logger.warning(
                "%s: %d of %d bars fall outside %s sessions and are left out",
                item.source,
                dropped,
                total,
                sessions.name,
            )
            item = replace(item, repaired={**item.repaired, "outside_sessions": dropped})
    if gate:
        issues = enforce([gate_report(item, sessions=sessions)], allow=allow)
        if issues:
            item = replace(item, issues=tuple(issues))
    return item


def _refuse_local_time(item: LoadedBars, sessions: Sessions, *, allow: bool) -> None:
    """Refuse intraday bars whose UTC times look like the exchange's wall-clock time.

    Times written in New York time but read as UTC put a 09:30 open at 09:30 UTC, hours
    before the session: most bars would be left out without a word. When reading the stamps
    as the exchange's local time would keep a fifth more bars (and a tenth of all), the data
    is refused (with ``allow``, logged) and the message says how to fix it.
    """
    from tradeloop.core.timeframes import timeframe_ns

    bars = item.bars
    reading = sessions.wall_clock_reading(bars.ts, timeframe_ns(bars.timeframe))
    if reading is None:
        return
    message = wall_clock_message(sessions, len(bars), *reading)
    if not allow:
        raise DataError(
            message + ", or pass --allow-data-issues to run on the bars inside sessions as read",
            file=item.source,
        )
    logger.warning("%s: %s", item.source, message)


def wall_clock_message(sessions: Sessions, bars: int, as_utc: int, as_local: int) -> str:
    """What to say of times that look like ``sessions``' wall-clock time read as UTC."""
    return (
        f"the times look like {sessions.tz} wall-clock time, not UTC: read as UTC, {as_utc:,} "
        f"of {bars:,} bars fall inside {sessions.name} sessions; read as {sessions.tz} time, "
        f"{as_local:,}. Write the times in UTC or with their offset "
        f"(2011-01-03T09:30:00-05:00), or read times written without one with --tz {sessions.tz}"
    )


def strategy_plot(strategy: Strategy) -> dict[str, tuple[Any, Any]]:
    """What the strategy asks to plot (:meth:`Strategy.plot`), as float arrays; a failing or
    malformed ``plot()`` is logged and drawn as nothing (it never fails the run)."""
    import numpy as np

    try:
        series = dict(strategy.plot())
        out = {}
        for name, (ts, values) in series.items():
            t = np.asarray(ts, dtype=np.int64)
            v = np.asarray(values, dtype=np.float64)
            if t.shape == v.shape and t.ndim == 1:
                out[str(name)] = (t, v)
        return out
    except Exception as exc:  # user code: report, do not fail the finished run
        logger.warning("strategy plot() failed: %s: %s", type(exc).__name__, exc)
        return {}


def calendar_periods_per_year(
    calendar: str, loaded: Sequence[LoadedBars], bar_ns: int
) -> tuple[float, str]:
    """Periods per year of bars ``bar_ns`` long traded in ``calendar``'s sessions, and the
    basis in words (shown with the metrics).

    Daily bars: the calendar's sessions per year over the data's range (about 252 for XNYS);
    longer bars: one a span of calendar days (52.18 weekly bars a year, each holding its
    week's sessions); intraday bars: sessions per year times the bars of a regular
    (median-length) session, e.g. 252 x 390 for XNYS minutes.
    """
    import numpy as np

    from tradeloop.data.sessions import sessions_for

    first = min(int(item.bars.ts[0]) for item in loaded if len(item.bars))
    last = max(int(item.bars.ts[-1]) for item in loaded if len(item.bars))
    sessions = sessions_for(calendar, first, last)
    per_year = sessions.sessions_per_year()
    day = 86_400 * 10**9
    basis = f"{sessions.name} sessions: {per_year:.4g} a year"
    if bar_ns > day:  # weekly bars: one a calendar week, whatever the sessions in it
        per_year_bars = 365.25 * day / bar_ns
        return (
            per_year_bars,
            f"{sessions.name}: {per_year_bars:.4g} bars of {bar_ns // day} days a year",
        )
    if bar_ns == day:
        return float(per_year), basis
    length = float(np.median(sessions.closes - sessions.opens))
    bars = max(1.0, float(np.ceil(length / bar_ns)))
    return float(per_year * bars), f"{basis} x {bars:g} bars a session"


def _instrument(item: LoadedBars, config: RunConfig) -> Instrument:
    return Instrument(
        symbol=item.bars.symbol,
        tick_size=item.tick_size,
        maker_fee=config.fee,
        taker_fee=config.fee,
        quote_currency=item.bars.symbol.split("/")[-1].split(":")[0]
        if "/" in item.bars.symbol
        else "USD",
    )


def run_on_bars(
    strategy: Strategy,
    bars: Mapping[str, BarArrays],
    config: RunConfig,
    *,
    instruments: Mapping[str, Instrument] | None = None,
    progress: ProgressCallback | None = None,
    risk: RiskEngine | None = None,
    enrichment: Enrichment | None = None,
    inputs: Sequence[InputSource] = (),
    session_closes: np.ndarray | None = None,
) -> BacktestResult:
    """Run ``strategy`` on in-memory bars (one :class:`BarArrays` per symbol).

    The base timeframe is ``config.timeframe``, else the strategy's first timeframe, else the
    coarsest timeframe of the data. Signals pass through ``enrichment`` (an ML model, e.g.
    :class:`~tradeloop.engine.enrichment.ModelEnrichment`; none by default), then ``risk``
    (default: a risk engine of ``config.risk``); pass one to read its report, events and audit
    after the run. ``inputs`` are side-input sources (e.g. a
    :class:`~tradeloop.engine.regime.RegimeSource`) updated at every step.
    ``session_closes`` (a calendar's, UTC ns) let a last coarser bar built from the data
    count as complete when its last session has closed.
    """
    instruments = dict(instruments or {})
    for symbol in bars:
        instruments.setdefault(
            symbol, Instrument(symbol, maker_fee=config.fee, taker_fee=config.fee)
        )
    data_tf = max((b.timeframe for b in bars.values()), key=timeframe_minutes)
    declared = tuple(strategy.timeframes)
    base = config.timeframe or (declared[0] if declared else data_tf)
    extra = tuple(tf for tf in declared[1:] if tf != base)
    symbols = tuple(strategy.symbols) or tuple(bars)
    missing = [s for s in symbols if s not in bars]
    if missing:
        raise ConfigError(
            f"strategy '{strategy.strategy_name()}' trades {missing} but the data holds "
            f"{list(bars)}; pass a --data file for each (or --symbol to name one)"
        )
    market = MarketData(
        {s: bars[s] for s in symbols},
        {s: instruments[s] for s in symbols},
        base,
        extra,
        start=config.start,
        end=config.end,
        session_closes=session_closes,
    )
    engine = BacktestEngine(
        strategy, market, config, risk=risk, enrichment=enrichment, inputs=inputs
    )
    return engine.run(progress)


def run_backtest(
    strategy_ref: str,
    data: Sequence[DataSpec | CacheSpec],
    config: RunConfig,
    params: Mapping[str, Any] | None = None,
    *,
    strategies_dir: str | Path | None = "strategies",
    progress: ProgressCallback | None = None,
    risk: RiskEngine | None = None,
    enrichment: Enrichment | None = None,
    allow_data_issues: bool = False,
    calendar: str | None = None,
    inputs: Sequence[InputSource] = (),
    gate_cache: GateCache | None = None,
) -> tuple[BacktestResult, list[LoadedBars]]:
    """Load files, build the strategy from ``strategy_ref`` and ``params``, and run it.

    ``risk``, ``enrichment`` and ``inputs`` (side-input sources, e.g. the regime) are passed
    to :func:`run_on_bars`. The data passes the data gate (see :func:`load_data`;
    ``allow_data_issues`` records the findings instead of refusing). With ``calendar`` only
    in-session bars are traded and, unless ``config.periods_per_year`` is set, metrics are
    annualized by the calendar's sessions. ``gate_cache`` remembers data files that passed
    the data gate (see :func:`load_data`).

    Raises
    ------
    ConfigError
        For an unknown strategy or parameter, or inconsistent data.
    DataError
        For malformed data files.
    """
    if not data:
        raise ConfigError("give at least one --data file")
    strategy_cls = load_strategy_class(strategy_ref, strategies_dir)
    strategy = strategy_cls(**dict(params or {}))
    loaded = load_data(
        data,
        gate=True,
        allow_data_issues=allow_data_issues,
        calendar=calendar,
        gate_cache=gate_cache,
    )
    if calendar is not None and config.periods_per_year is None:
        from dataclasses import replace

        from tradeloop.core.timeframes import timeframe_ns

        tf = config.timeframe or (
            strategy.timeframes[0]
            if strategy.timeframes
            else max((i.timeframe for i in loaded), key=timeframe_minutes)
        )
        periods, basis = calendar_periods_per_year(calendar, loaded, timeframe_ns(tf))
        config = replace(config, periods_per_year=periods, periods_basis=basis)
    instruments = {item.bars.symbol: _instrument(item, config) for item in loaded}
    bars = {item.bars.symbol: item.bars for item in loaded}
    closes = None
    if calendar is not None:
        from tradeloop.data.sessions import sessions_for

        first = min(int(b.ts[0]) for b in bars.values())
        last = max(int(b.ts[-1]) for b in bars.values())
        closes = sessions_for(calendar, first, last).closes
    result = run_on_bars(
        strategy,
        bars,
        config,
        instruments=instruments,
        progress=progress,
        risk=risk,
        enrichment=enrichment,
        inputs=inputs,
        session_closes=closes,
    )
    result.indicators = strategy_plot(strategy)
    return result, loaded
