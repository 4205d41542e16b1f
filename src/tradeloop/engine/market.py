"""Market data of a run: per-symbol series on every timeframe the strategy reads, one global
step timeline, and the intrabar source for stop/target drill-down."""

from __future__ import annotations

import numpy as np

from tradeloop.core.bar import BarArrays
from tradeloop.core.errors import ConfigError, DataError
from tradeloop.core.instrument import Instrument
from tradeloop.core.timeframes import next_lower_timeframe, timeframe_minutes, timeframe_ns
from tradeloop.data.resample import resample
from tradeloop.strategy.view import MarketView, SeriesTimeline

__all__ = ["MarketData"]


_COUNTING = np.arange(0, dtype=np.intp)


def _counting(n: int) -> np.ndarray:
    """``arange(n)`` as a read-only view of one shared array (O(1) after it has grown): a
    paper step builds its market data anew over a held window of many bars."""
    global _COUNTING
    if _COUNTING.size < n:
        _COUNTING = np.arange(max(n, 2 * _COUNTING.size), dtype=np.intp)
        _COUNTING.flags.writeable = False
    return _COUNTING[:n]


class MarketData:
    """Series for each symbol on the base timeframe and informative timeframes.

    Parameters
    ----------
    sources
        The finest bars loaded for each symbol (all on one timeframe per symbol).
    instruments
        Instrument of each symbol.
    base_timeframe
        The trading timeframe; sources are resampled to it when finer.
    extra_timeframes
        Further timeframes the strategy reads (built by resampling the sources).
    start, end
        Optional UTC ns bounds of the run: base bars with ``start <= open < end`` are stepped
        through. Series are built from the whole source first, so an informative bar that
        completed before ``start`` is visible as history.
    session_closes
        A market calendar's session closes (``--calendar``): the last coarser bar built from
        the data is complete once its last session has closed (see ``resample``).

    Raises
    ------
    ConfigError
        If a timeframe is finer than a symbol's data or not a multiple of it.
    """

    def __init__(
        self,
        sources: dict[str, BarArrays],
        instruments: dict[str, Instrument],
        base_timeframe: str,
        extra_timeframes: tuple[str, ...] = (),
        *,
        start: int | None = None,
        end: int | None = None,
        session_closes: np.ndarray | None = None,
    ) -> None:
        if not sources:
            raise ConfigError("no data given")
        self.sources = sources
        self.instruments = instruments
        self.base_timeframe = base_timeframe
        self.base_ns = timeframe_ns(base_timeframe)
        self.series: dict[tuple[str, str], BarArrays] = {}
        timeframes = (base_timeframe, *[tf for tf in extra_timeframes if tf != base_timeframe])
        for symbol, src in sources.items():
            if len(src) == 0:
                raise DataError("no bars", file=symbol)
            for tf in timeframes:
                built = self._build(symbol, src, tf, session_closes)
                lo = (
                    0
                    if start is None or tf != base_timeframe
                    else int(np.searchsorted(built.ts, start, side="left"))
                )
                hi = len(built) if end is None else int(np.searchsorted(built.ts, end, "left"))
                if hi <= lo:
                    raise DataError(
                        f"no {tf} bars in the selected range: the data runs "
                        f"{_day(int(built.ts[0])) if len(built) else '-'} to "
                        f"{_day(int(built.ts[-1])) if len(built) else '-'}, the run "
                        f"{_day(start) if start is not None else 'its start'} to "
                        f"{_day(end) if end is not None else 'its end'} (--start/--end)",
                        file=symbol,
                    )
                self.series[(symbol, tf)] = (
                    built if (lo, hi) == (0, len(built)) else built.slice(lo, hi)
                )
        self.symbols: tuple[str, ...] = tuple(sources)
        base_ts = [self.series[(s, base_timeframe)].ts for s in self.symbols]
        # bar times are validated sorted and unique per symbol, so one symbol needs no merge
        self.step_ts: np.ndarray = (
            base_ts[0] if len(base_ts) == 1 else np.unique(np.concatenate(base_ts))
        )
        self._index_cache: dict[tuple[str, str], np.ndarray] = {}

    @staticmethod
    def _build(
        symbol: str, src: BarArrays, tf: str, session_closes: np.ndarray | None = None
    ) -> BarArrays:
        src_min = timeframe_minutes(src.timeframe)
        tf_min = timeframe_minutes(tf)
        if tf_min == src_min:
            return src
        if tf_min < src_min or tf_min % src_min:
            raise ConfigError(
                f"{symbol}: cannot build {tf} bars from {src.timeframe} data "
                f"(need a whole multiple of {src.timeframe})"
            )
        return resample(src, tf, session_closes=session_closes)

    def index_at_step(self, symbol: str, timeframe: str) -> np.ndarray:
        """For every step, the index of the latest ``timeframe`` bar complete at its close."""
        key = (symbol, timeframe)
        cached = self._index_cache.get(key)
        if cached is None:
            arrays = self.series[key]
            if arrays.ts is self.step_ts:  # the steps are this series' own bars
                cached = _counting(len(arrays))
            else:
                close_times = arrays.ts + timeframe_ns(timeframe)
                cached = np.searchsorted(close_times, self.step_ts + self.base_ns, side="right") - 1
            cached.flags.writeable = False
            self._index_cache[key] = cached
        return cached

    def view(self) -> MarketView:
        """Return a fresh :class:`MarketView` over this data."""
        timelines = {
            key: SeriesTimeline(arrays, self.index_at_step(*key))
            for key, arrays in self.series.items()
        }
        return MarketView(
            self.symbols, self.base_timeframe, timelines, self.instruments, self.step_ts
        )

    # -- IntrabarSource --------------------------------------------------------------------
    def sub_bars(self, symbol: str, timeframe: str, ts_open: int) -> BarArrays | None:
        """Return the next-lower-timeframe bars inside one ``timeframe`` bar, or None."""
        src = self.sources[symbol]
        src_min = timeframe_minutes(src.timeframe)
        tf_min = timeframe_minutes(timeframe)
        if tf_min <= src_min:
            return None
        lower = next_lower_timeframe(timeframe)
        while lower is not None and timeframe_minutes(lower) % src_min:
            lower = next_lower_timeframe(lower)
        if lower is None or timeframe_minutes(lower) < src_min:
            lower = src.timeframe
        start = int(np.searchsorted(src.ts, ts_open, side="left"))
        stop = int(np.searchsorted(src.ts, ts_open + timeframe_ns(timeframe), side="left"))
        if stop <= start:
            return None
        segment = src.slice(start, stop)
        if timeframe_minutes(lower) == src_min:
            return segment
        return resample(segment, lower, drop_partial=False)


def _day(ns: int) -> str:
    """``2024-04-21 14:00`` (UTC) for a time in ns, in an error message."""
    import datetime as dt

    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).strftime("%Y-%m-%d %H:%M")
