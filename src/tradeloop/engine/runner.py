"""Compose a backtest from files: load data, build instruments, pick timeframes, run."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tradeloop.core.bar import BarArrays
from tradeloop.core.errors import ConfigError, DataError
from tradeloop.core.instrument import Instrument
from tradeloop.core.timeframes import timeframe_minutes
from tradeloop.data.loader import ColumnMap, LoadedBars, load_ohlcv
from tradeloop.engine.config import RunConfig
from tradeloop.engine.kernel import BacktestEngine, ProgressCallback
from tradeloop.engine.market import MarketData
from tradeloop.engine.result import BacktestResult
from tradeloop.engine.step import Enrichment
from tradeloop.risk.engine import RiskEngine
from tradeloop.strategy.base import Strategy
from tradeloop.strategy.registry import load_strategy_class

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


def load_data(specs: Sequence[DataSpec | CacheSpec]) -> list[LoadedBars]:
    """Load every data file or cached series; symbols must be distinct.

    Raises
    ------
    ConfigError
        If two sources resolve to the same symbol.
    DataError
        If a file or cached series is missing or malformed.
    """
    loaded: list[LoadedBars] = []
    seen: dict[str, str] = {}
    for spec in specs:
        if isinstance(spec, CacheSpec):
            item = _load_cached(spec)
            origin = f"{spec.exchange}/{spec.market}/{spec.symbol} (cache)"
        else:
            item = load_ohlcv(
                spec.path,
                symbol=spec.symbol,
                columns=spec.columns,
                time_unit=spec.time_unit,
                repair=spec.repair,
            )
            origin = str(spec.path)
        symbol = item.bars.symbol
        if symbol in seen:
            raise ConfigError(
                f"{origin} and {seen[symbol]} are both {symbol}; name one with --symbol"
            )
        seen[symbol] = origin
        loaded.append(item)
    return loaded


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
) -> BacktestResult:
    """Run ``strategy`` on in-memory bars (one :class:`BarArrays` per symbol).

    The base timeframe is ``config.timeframe``, else the strategy's first timeframe, else the
    coarsest timeframe of the data. Signals pass through ``enrichment`` (an ML model, e.g.
    :class:`~tradeloop.engine.enrichment.ModelEnrichment`; none by default), then ``risk``
    (default: a risk engine of ``config.risk``); pass one to read its report, events and audit
    after the run.
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
    )
    engine = BacktestEngine(strategy, market, config, risk=risk, enrichment=enrichment)
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
) -> tuple[BacktestResult, list[LoadedBars]]:
    """Load files, build the strategy from ``strategy_ref`` and ``params``, and run it.

    ``risk`` and ``enrichment`` are passed to :func:`run_on_bars`.

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
    loaded = load_data(data)
    instruments = {item.bars.symbol: _instrument(item, config) for item in loaded}
    bars = {item.bars.symbol: item.bars for item in loaded}
    result = run_on_bars(
        strategy,
        bars,
        config,
        instruments=instruments,
        progress=progress,
        risk=risk,
        enrichment=enrichment,
    )
    return result, loaded
