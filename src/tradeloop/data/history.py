"""Fetch exchange history into the Parquet cache: only what is missing, resumable, in pages.

The venue side is the :class:`HistorySource` port (the ccxt adapter implements it in
``tradeloop.adapters.ccxt``); this module owns the pagination, the cache bookkeeping and the
resume logic, so every venue gets the same behaviour:

* the requested range minus the cache's coverage is fetched, in windows of at most one page
  (``limit`` bars for candles; the venue's window cap, e.g. one hour, for trades);
* every ``chunk_pages`` pages the rows fetched so far are persisted as a part file together
  with the interval they cover; an interruption (error, Ctrl-C, a killed process) loses at
  most one chunk, and the next run merges the parts and continues from there;
* candles are cached only once complete: the range is cut at the last bar closed by now.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pyarrow as pa

from tradeloop.core.errors import ConfigError
from tradeloop.core.timeframes import timeframe_ns
from tradeloop.data.cache import (
    CacheKey,
    ParquetCache,
    dataset_kind,
    empty_table,
    timestamps_ns,
)
from tradeloop.data.coverage import Interval, subtract, total
from tradeloop.data.orderflow import DERIVED_COLUMNS, derive_orderflow

__all__ = [
    "FetchProgress",
    "FetchReport",
    "HistoricalDataProvider",
    "HistorySource",
    "PageRequest",
]

logger = logging.getLogger(__name__)

NS_PER_MS = 1_000_000
_HOUR_NS = 3_600 * 1_000_000_000
_FUNDING_STEP_NS = 8 * _HOUR_NS  # nominal; denser schedules continue within the window


@dataclass(frozen=True, slots=True)
class PageRequest:
    """One page to fetch: rows with ``since_ms <= time <= until_ms``, at most ``limit``."""

    kind: str
    symbol: str
    dataset: str
    since_ms: int
    until_ms: int
    limit: int


class HistorySource(Protocol):
    """A venue that serves history page by page (implemented by venue adapters)."""

    exchange: str
    market: str

    def resolve_symbol(self, symbol: str) -> str:
        """Return the unified symbol of ``symbol`` on this market (e.g. add ``:USDT``)."""
        ...

    def page_limit(self, kind: str) -> int:
        """Return the most rows one request of ``kind`` may return."""
        ...

    def max_window_ns(self, kind: str) -> int | None:
        """Return the widest time window one request of ``kind`` may ask for (None: any)."""
        ...

    def fetch_page(self, request: PageRequest) -> pa.Table:
        """Return the rows of one page as a table in the cache schema of ``request.kind``."""
        ...


@dataclass(slots=True)
class FetchProgress:
    """Progress of one dataset's fetch, passed to the progress callback after each page."""

    dataset: str
    done_ns: int
    total_ns: int
    rows: int
    reached_ns: int | None


@dataclass(slots=True)
class FetchReport:
    """What one :meth:`HistoricalDataProvider.fetch` did."""

    key: CacheKey
    requested: Interval
    missing_before: list[Interval] = field(default_factory=list)
    pages: int = 0
    rows_fetched: int = 0
    rows_total: int = 0
    complete: bool = False

    @property
    def up_to_date(self) -> bool:
        """True when nothing had to be fetched."""
        return not self.missing_before


class HistoricalDataProvider:
    """Fill the cache from a :class:`HistorySource`.

    Parameters
    ----------
    source
        The venue.
    cache
        Where the series live.
    chunk_pages
        Pages fetched between two persisted part files.
    now_ns
        Clock for "now" (UTC ns); bars that have not closed by then are not cached.
    """

    def __init__(
        self,
        source: HistorySource,
        cache: ParquetCache,
        *,
        chunk_pages: int = 10,
        now_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        if chunk_pages < 1:
            raise ConfigError("chunk_pages must be at least 1")
        self.source = source
        self.cache = cache
        self.chunk_pages = chunk_pages
        self.now_ns = now_ns

    def key(self, symbol: str, dataset: str) -> CacheKey:
        """Return the cache key of ``symbol``'s ``dataset`` on this provider's venue."""
        return CacheKey(
            self.source.exchange,
            self.source.market,
            self.source.resolve_symbol(symbol),
            dataset,
        )

    def fetch(
        self,
        symbol: str,
        dataset: str,
        start_ns: int,
        end_ns: int,
        *,
        force: bool = False,
        progress: Callable[[FetchProgress], None] | None = None,
    ) -> FetchReport:
        """Fetch what the cache lacks of ``[start_ns, end_ns)`` and merge it in.

        Parameters
        ----------
        symbol
            Symbol as the user gives it (``BTC/USDT``); resolved by the source.
        dataset
            A timeframe (candles), ``funding_rate``, ``open_interest_<period>`` or ``trades``.
        start_ns, end_ns
            Range, UTC ns, end exclusive.
        force
            Discard the cached series (also a corrupt one) and fetch the range anew.
        progress
            Called after every page.

        Raises
        ------
        DataError
            If the cached file is corrupt and ``force`` is False (it is left untouched).
        TemporaryError
            If the venue kept failing after the source's retries; pages fetched so far are
            kept and the next call resumes after them.
        VenueError
            If the venue refused a request.
        """
        if end_ns <= start_ns:
            raise ConfigError("the end of the range must be after its start")
        key = self.key(symbol, dataset)
        kind = dataset_kind(dataset)
        with self.cache.lock(key):
            self.cache.remove_temporary(key)
            if force:
                self.cache.replace_corrupt(key)
            self._consolidate(key)
            end_ns = min(end_ns, self._complete_before(kind, dataset))
            report = FetchReport(key, (start_ns, end_ns))
            if end_ns <= start_ns:
                report.complete = True
                return report
            missing = subtract((start_ns, end_ns), self.cache.coverage(key))
            report.missing_before = missing
            self._fetch_missing(key, kind, missing, report, progress)
            table = self._consolidate(key)
            report.rows_total = 0 if table is None else table.num_rows
            report.complete = True
            return report

    def refresh_orderflow(self, symbol: str, timeframe: str) -> pa.Table | None:
        """Recompute the derived order-flow columns of a cached candle series.

        Uses the cached funding rates, open interest (the finest cached period) and trades of
        the same symbol. Returns the table written, or None when the candles are not cached.

        Raises
        ------
        DataError
            If a cached file is corrupt.
        """
        key = self.key(symbol, timeframe)
        return refresh_orderflow(self.cache, key)

    # ------------------------------------------------------------------ internals

    def _complete_before(self, kind: str, dataset: str) -> int:
        now = int(self.now_ns())
        if kind == "candles":
            step = timeframe_ns(dataset)
            return (now // step) * step  # open of the bar in progress: earlier bars are closed
        return now

    def _consolidate(self, key: CacheKey) -> pa.Table | None:
        strip = _strip_derived if key.kind == "candles" else None
        if self.cache.pending_parts(key) == 0:
            return self.cache.read(key)
        return self.cache.consolidate(key, transform=strip)

    def _window_ns(self, kind: str, dataset: str, limit: int) -> int:
        if kind == "candles":
            span = limit * timeframe_ns(dataset)
        elif kind == "open_interest":
            span = limit * timeframe_ns(dataset.removeprefix("open_interest_"))
        elif kind == "funding_rate":
            span = limit * _FUNDING_STEP_NS
        else:
            span = _HOUR_NS
        cap = self.source.max_window_ns(kind)
        return span if cap is None else min(span, cap)

    def _fetch_missing(
        self,
        key: CacheKey,
        kind: str,
        missing: list[Interval],
        report: FetchReport,
        progress: Callable[[FetchProgress], None] | None,
    ) -> None:
        limit = self.source.page_limit(kind)
        window = self._window_ns(kind, key.dataset, limit)
        step = timeframe_ns(key.dataset) if kind == "candles" else 0
        total_ns = total(missing)
        done_before = 0
        buffer: list[pa.Table] = []
        pages_in_chunk = 0
        for range_start, range_end in missing:
            cursor = chunk_start = range_start
            try:
                while cursor < range_end:
                    window_end = min(range_end, cursor + window)
                    request = PageRequest(
                        kind,
                        key.symbol,
                        key.dataset,
                        _ceil_ms(cursor),
                        _ceil_ms(window_end) - 1,
                        limit,
                    )
                    raw = self.source.fetch_page(request)
                    ts = timestamps_ns(raw) if raw.num_rows else np.empty(0, np.int64)
                    keep = (ts >= cursor) & (ts < window_end)
                    rows = raw.filter(pa.array(keep)) if not keep.all() else raw
                    report.pages += 1
                    report.rows_fetched += rows.num_rows
                    if rows.num_rows:
                        buffer.append(rows)
                    cursor = _next_cursor(kind, cursor, window_end, raw.num_rows, limit, ts, step)
                    pages_in_chunk += 1
                    if pages_in_chunk >= self.chunk_pages:
                        self._flush(key, kind, buffer, (chunk_start, cursor))
                        buffer, pages_in_chunk, chunk_start = [], 0, cursor
                    if progress is not None:
                        progress(
                            FetchProgress(
                                key.dataset,
                                done_before + cursor - range_start,
                                total_ns,
                                report.rows_fetched,
                                int(ts.max()) if ts.size else None,
                            )
                        )
            finally:
                # Persist what this range fetched, also when the fetch fails or is interrupted.
                if cursor > chunk_start:
                    self._flush(key, kind, buffer, (chunk_start, cursor))
                buffer, pages_in_chunk = [], 0
            done_before += range_end - range_start

    def _flush(self, key: CacheKey, kind: str, buffer: list[pa.Table], interval: Interval) -> None:
        table = pa.concat_tables(buffer) if buffer else empty_table(kind)
        self.cache.write_part(key, table, interval)
        logger.debug(
            "persisted %d rows of %s covering %s",
            table.num_rows,
            key.relative_path(),
            interval,
            extra={"rows": table.num_rows, "dataset": key.dataset},
        )


def _ceil_ms(ns: int) -> int:
    return -(-ns // NS_PER_MS)


def _next_cursor(
    kind: str,
    cursor: int,
    window_end: int,
    raw_rows: int,
    limit: int,
    ts: np.ndarray,
    step: int,
) -> int:
    # A short page means the window is exhausted; a full page continues after its last row.
    if raw_rows < limit or ts.size == 0:
        return window_end
    last = int(ts.max())
    if kind == "candles":
        nxt = last + step
    elif kind == "trades":
        # more trades may share the last millisecond: ask again from it (ids de-duplicate)
        nxt = last
        if nxt <= cursor:
            logger.warning(
                "more than %d trades share one millisecond at %d; some may be missed",
                limit,
                last,
            )
            nxt = last + NS_PER_MS
    else:
        nxt = last + 1
    return min(max(nxt, cursor + 1), window_end) if nxt < window_end else window_end


def _strip_derived(table: pa.Table) -> pa.Table:
    return table.drop_columns([c for c in DERIVED_COLUMNS if c in table.column_names])


def refresh_orderflow(cache: ParquetCache, key: CacheKey) -> pa.Table | None:
    """Rewrite candle series ``key`` with order-flow columns derived from the cache.

    Raises
    ------
    DataError
        If a cached file is corrupt.
    """
    if key.kind != "candles":
        raise ConfigError(f"order flow is derived for candle datasets, not {key.dataset!r}")
    candles = cache.read(key)
    if candles is None:
        return None
    funding = cache.read(key.with_dataset("funding_rate"))
    oi_key = _finest_open_interest(cache, key)
    open_interest = None if oi_key is None else cache.read(oi_key)
    trades_key = key.with_dataset("trades")
    trades = cache.read(trades_key)
    derived = derive_orderflow(
        candles,
        timeframe_ns(key.dataset),
        funding=funding,
        open_interest=open_interest,
        trades=trades,
        trades_coverage=cache.coverage(trades_key) if trades is not None else None,
    )
    meta = {k: v for k, v in cache.metadata(key).items() if k != "coverage"}
    meta["cvd_method"] = (derived.schema.metadata or {}).get(b"tradeloop.cvd_method", b"").decode()
    cache.write(key, derived, cache.coverage(key), meta)
    return derived


def _finest_open_interest(cache: ParquetCache, key: CacheKey) -> CacheKey | None:
    folder = cache.path(key).parent
    best: tuple[int, CacheKey] | None = None
    for path in folder.glob("open_interest_*.parquet"):
        try:
            candidate = key.with_dataset(path.stem)
            step = timeframe_ns(path.stem.removeprefix("open_interest_"))
        except ConfigError:
            continue
        if best is None or step < best[0]:
            best = (step, candidate)
    return None if best is None else best[1]
