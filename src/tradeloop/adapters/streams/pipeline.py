"""The streaming pipeline: normalised events -> quality -> book -> bus (and sinks).

:class:`MarketPipeline` takes events in chunks (a drained queue, a replayed file, a bench
batch). Runs of consecutive trades of one venue and symbol become a columnar
:class:`~tradeloop.core.market_events.TradeBatch` and go through duplicate suppression, the
outlier filter (flag/drop/halt), trade-id gap detection and live CVD; book snapshots and
deltas keep one :class:`~tradeloop.data.stream.book.L2Book` per symbol in sync (a gap asks
``fetch_snapshot`` for a resync); closed bars are de-duplicated by open time, and a bar that
skips some is preceded by the missing ones from ``backfill_bars`` (REST). Every chunk
publishes one ``tradeloop.market.trades`` message per trade batch and one
``tradeloop.market.book`` per touched book, and quality metrics go to
``tradeloop.data.quality`` every ``quality_every_s``.

What passes goes to each sink's ``write(events)`` in arrival order (a recorder, the kernel
feeder, a test's list).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from tradeloop.bus.base import MessageBus
from tradeloop.bus.events import BookTopEvent, DataQualityEvent, MarketTradesEvent
from tradeloop.core.market_events import (
    BookDelta,
    BookSnapshot,
    MarketEvent,
    MarketTrade,
    StreamBar,
    TradeBatch,
)
from tradeloop.core.timeframes import timeframe_ns
from tradeloop.data.stream.book import BookSync, L2Book, delta_columns
from tradeloop.data.stream.metrics import StreamMetrics
from tradeloop.data.stream.quality import (
    Deduplicator,
    LiveCVD,
    OutlierConfig,
    OutlierFilter,
    TradeIdGaps,
)

__all__ = ["MarketPipeline", "Sink"]

logger = logging.getLogger(__name__)

SnapshotFetcher = Callable[[str, str], BookSnapshot | None]
BarFetcher = Callable[[str, str, str, int, int], Sequence[StreamBar]]
"""``(venue, symbol, timeframe, start_ns, end_ns) -> closed bars`` in ``[start, end)``."""
TradeFetcher = Callable[[str, str, int, int], TradeBatch | None]
"""``(venue, symbol, first_id, last_id) -> the trades with those ids`` (None: cannot)."""


class Sink(Protocol):
    """Receives the events the pipeline passed, in order."""

    def write(self, events: Sequence[MarketEvent]) -> None:
        """Take a chunk of accepted events."""
        ...


def _nan_free(x: float) -> float:
    return x if math.isfinite(x) else 0.0


class MarketPipeline:
    """Quality, books and publishing for normalised market events (see the module doc).

    Parameters
    ----------
    name
        The pipeline's name (the bus messages' ``run``).
    bus
        Where to publish (None: nothing is published).
    metrics
        Quality metrics (a private registry when None).
    outliers
        Outlier test settings.
    fetch_snapshot
        ``(venue, symbol) -> BookSnapshot | None`` used to resync a book after a gap.
    backfill_bars
        ``(venue, symbol, timeframe, start, end) -> closed bars`` (REST) for a bar gap: the
        missing bars are passed on before the bar that revealed the gap.
    backfill_trades
        ``(venue, symbol, first_id, last_id) -> TradeBatch`` (REST) for lost trades found from
        consecutive trade ids: they go through quality in their place, in id order.
    book_levels
        Levels a book summary reports (imbalance depth).
    quality_every_s
        Seconds between quality publications.
    """

    def __init__(
        self,
        name: str = "stream",
        *,
        bus: MessageBus | None = None,
        metrics: StreamMetrics | None = None,
        outliers: OutlierConfig | None = None,
        fetch_snapshot: SnapshotFetcher | None = None,
        backfill_bars: BarFetcher | None = None,
        backfill_trades: TradeFetcher | None = None,
        book_levels: int = 10,
        quality_every_s: float = 5.0,
        sinks: Sequence[Sink] = (),
    ) -> None:
        self.name = name
        self.bus = bus
        self.metrics = metrics or StreamMetrics()
        self.outliers = OutlierFilter(outliers)
        self.dedup = Deduplicator()
        self.trade_gaps = TradeIdGaps()
        self.cvd = LiveCVD()
        self.fetch_snapshot = fetch_snapshot
        self.backfill_bars = backfill_bars
        self.backfill_trades = backfill_trades
        self.trades_backfilled = 0
        self.missing_bars: list[tuple[str, str, str, int, int]] = []
        """(venue, symbol, timeframe, start, end) of bar gaps seen (UTC ns, end exclusive)."""
        self.bars_backfilled = 0
        self.book_levels = book_levels
        self.quality_every_s = quality_every_s
        self.sinks: list[Sink] = list(sinks)
        self.books: dict[tuple[str, str], BookSync] = {}
        self._bars: dict[tuple[str, str, str], int] = {}
        self._last_trade_ts: dict[tuple[str, str], int] = {}
        self._last_quality = time.monotonic()
        self.trades_in = 0
        self.trades_out = 0
        self.bars_out = 0
        self.missing_trade_ids: list[tuple[str, str, int, int]] = []
        """(venue, symbol, first, last) id ranges of lost trades, for a REST backfill."""

    # -- books ------------------------------------------------------------------------------
    def book(self, symbol: str, venue: str | None = None) -> L2Book | None:
        """The L2 book of ``symbol`` (of ``venue``, or the first venue that has one)."""
        for (v, s), sync in self.books.items():
            if s == symbol and (venue is None or v == venue):
                return sync.book
        return None

    def _sync(self, venue: str, symbol: str) -> BookSync:
        sync = self.books.get((venue, symbol))
        if sync is None:
            fetch = self.fetch_snapshot
            sync = BookSync(
                L2Book(venue, symbol),
                (lambda: fetch(venue, symbol)) if fetch is not None else (lambda: None),
            )
            self.books[(venue, symbol)] = sync
        return sync

    # -- processing -------------------------------------------------------------------------
    def process(self, events: Sequence[MarketEvent]) -> list[MarketEvent]:
        """Run a chunk through quality and books; return (and sink) what passed."""
        out: list[MarketEvent] = []
        touched: set[tuple[str, str]] = set()
        run: list[MarketTrade] = []
        deltas: list[BookDelta] = []
        for ev in events:
            if isinstance(ev, MarketTrade):
                if deltas:
                    out += self._deltas(deltas, touched)
                    deltas = []
                if run and (run[0].venue != ev.venue or run[0].symbol != ev.symbol):
                    out += self._trades(TradeBatch.from_trades(run))
                    run = []
                run.append(ev)
                continue
            if run:
                out += self._trades(TradeBatch.from_trades(run))
                run = []
            if isinstance(ev, BookDelta):
                if deltas and (deltas[0].venue != ev.venue or deltas[0].symbol != ev.symbol):
                    out += self._deltas(deltas, touched)
                    deltas = []
                deltas.append(ev)
                continue
            if deltas:
                out += self._deltas(deltas, touched)
                deltas = []
            out += self._other(ev, touched)
        if run:
            out += self._trades(TradeBatch.from_trades(run))
        if deltas:
            out += self._deltas(deltas, touched)
        self._publish_books(touched)
        for sink in self.sinks:
            sink.write(out)
        self.maybe_publish_quality()
        return out

    def process_batch(self, batch: TradeBatch) -> tuple[TradeBatch, np.ndarray]:
        """The columnar trade path: ``(accepted trades, outlier mask of the accepted)``."""
        venue = batch.venue
        self.trades_in += len(batch)
        self.metrics.count(venue, "messages", len(batch))
        if len(batch):
            self.metrics.lag(venue, int(batch.recv_ts[-1] - batch.ts[-1]))
        self._check_order(batch)
        fresh = self.dedup.fresh_mask(batch)
        dup = len(batch) - int(fresh.sum())
        if dup:
            self.metrics.count(venue, "duplicates", dup)
            batch = batch.take(fresh)
        # lost trades (a jump in consecutive ids): before the outlier filter, which may drop
        gaps = self.trade_gaps.check(batch)
        if gaps:
            batch = self._fill_trades(batch, gaps)
        before = self.outliers.flagged.get((venue, batch.symbol), 0)
        passed, mask = self.outliers.apply(batch)
        flagged = self.outliers.flagged.get((venue, batch.symbol), 0) - before
        self.metrics.count(venue, "outliers", flagged)
        if self.outliers.config.action == "flag":
            kept_mask = mask
        else:
            kept_mask = np.zeros(len(passed), np.bool_)
        clean = passed.take(~kept_mask) if kept_mask.any() else passed
        self.cvd.update(clean)
        self.trades_out += len(passed)
        if self.bus is not None and len(passed):
            self.bus.publish(
                "tradeloop.market.trades",
                MarketTradesEvent.model_construct(
                    v=1, run=self.name, ts=int(passed.ts[-1]), venue=venue, symbol=passed.symbol,
                    trade_ts=passed.ts.tolist(), price=passed.price.tolist(),
                    amount=passed.amount.tolist(), side=passed.side.tolist(),
                    trade_id=passed.trade_id.tolist(), outlier=kept_mask.tolist(),
                    cvd=self.cvd.value(venue, passed.symbol),
                ),
            )  # fmt: skip
        return passed, kept_mask

    def _check_order(self, batch: TradeBatch) -> None:
        """Count (and log) trades stamped earlier than one already seen; they are kept."""
        if not len(batch):
            return
        key = (batch.venue, batch.symbol)
        before = self._last_trade_ts.get(key, np.iinfo(np.int64).min)
        running = np.maximum.accumulate(np.concatenate([[before], batch.ts]))
        late = batch.ts < running[:-1]
        self._last_trade_ts[key] = int(running[-1])
        n = int(late.sum())
        if n:
            i = int(np.argmax(late))
            self.metrics.count(batch.venue, "out_of_order", n)
            logger.warning(
                "%s %s: %d trade(s) out of order, first id %s (position %d of its batch)",
                batch.venue, batch.symbol, n, batch.trade_id[i], i,
            )  # fmt: skip

    def _fill_trades(self, batch: TradeBatch, gaps: list[tuple[int, int]]) -> TradeBatch:
        """Count the id gaps and put the backfilled trades (REST) in their place."""
        venue, symbol = batch.venue, batch.symbol
        found: list[TradeBatch] = []
        for lo, hi in gaps:
            self.missing_trade_ids.append((venue, symbol, lo, hi))
            self.metrics.count(venue, "gaps")
            logger.warning("%s %s: trades %d..%d missing", venue, symbol, lo, hi)
            if self.backfill_trades is None:
                continue
            try:
                got = self.backfill_trades(venue, symbol, lo, hi)
            except Exception as exc:  # a failed backfill must not stop the stream
                logger.warning("%s %s trade backfill failed: %s", venue, symbol, exc)
                continue
            if got is not None and len(got):
                ids = np.fromiter(map(int, got.trade_id.tolist()), np.int64, len(got))
                got = got.take((ids >= lo) & (ids <= hi))
                got = got.take(self.dedup.fresh_mask(got))
                self.trades_backfilled += len(got)
                found.append(got)
        if not found:
            return batch
        merged = TradeBatch.concat([*found, batch])
        order = np.argsort(
            np.fromiter(map(int, merged.trade_id.tolist()), np.int64, len(merged)),
            kind="stable",
        )
        return merged.take(order)

    def _trades(self, batch: TradeBatch) -> list[MarketEvent]:
        passed, _ = self.process_batch(batch)
        return list(passed.to_trades()) if len(passed) else []

    def _deltas(self, deltas: list[BookDelta], touched: set[tuple[str, str]]) -> list[MarketEvent]:
        """A run of deltas of one book: applied in one batch while they follow each other;
        from a gap on, one by one through the resync path."""
        venue, symbol = deltas[0].venue, deltas[0].symbol
        self.metrics.count(venue, "messages", len(deltas))
        self.metrics.lag(venue, deltas[-1].recv_ts - deltas[-1].ts)
        touched.add((venue, symbol))
        sync = self._sync(venue, symbol)
        used = 0
        if sync.book.synced and len(deltas) > 1:
            before = sync.book.gaps
            used = sync.book.apply_batch(*delta_columns(deltas), ts=deltas[-1].ts)
            if used < len(deltas):
                sync.book.gaps = before  # counted once, below, by the resync path
                sync.book.synced = True
        out: list[MarketEvent] = list(deltas[:used])
        for d in deltas[used:]:
            gaps, resyncs = sync.book.gaps, sync.resyncs
            if sync.on_delta(d):
                out.append(d)
            self.metrics.count(venue, "gaps", sync.book.gaps - gaps)
            self.metrics.count(venue, "resyncs", sync.resyncs - resyncs)
        return out

    def _fill_bars(
        self, venue: str, symbol: str, timeframe: str, start: int, end: int
    ) -> list[MarketEvent]:
        """Bars ``[start, end)`` never arrived: count the gap and backfill them (REST)."""
        self.metrics.count(venue, "gaps")
        self.missing_bars.append((venue, symbol, timeframe, start, end))
        logger.warning(
            "%s %s %s: bars missing from %d to %d; backfilling", venue, symbol, timeframe,
            start, end,
        )  # fmt: skip
        if self.backfill_bars is None:
            return []
        try:
            fetched = self.backfill_bars(venue, symbol, timeframe, start, end)
        except Exception as exc:  # a failed backfill must not stop the stream
            logger.warning("%s %s backfill failed: %s", venue, symbol, exc)
            return []
        got = sorted(
            (b for b in fetched if b.closed and start <= b.bar.ts < end), key=lambda b: b.bar.ts
        )
        unique = list({b.bar.ts: b for b in got}.values())
        self.bars_backfilled += len(unique)
        self.bars_out += len(unique)
        return list(unique)

    def _other(self, ev: MarketEvent, touched: set[tuple[str, str]]) -> list[MarketEvent]:
        venue = ev.venue
        self.metrics.count(venue, "messages")
        if isinstance(ev, StreamBar):
            self.metrics.lag(venue, ev.recv_ts - ev.bar.ts - timeframe_ns(ev.bar.timeframe))
            if not ev.closed:
                return [ev]
            bar = ev.bar
            key = (venue, bar.symbol, bar.timeframe)
            last = self._bars.get(key)
            if last is not None and bar.ts <= last:
                if bar.ts < last:
                    self.metrics.count(venue, "out_of_order")
                    logger.warning(
                        "%s %s %s: bar %d arrived after bar %d; dropped", venue, bar.symbol,
                        bar.timeframe, bar.ts, last,
                    )  # fmt: skip
                else:
                    self.metrics.count(venue, "duplicates")
                return []
            out: list[MarketEvent] = []
            step = timeframe_ns(bar.timeframe)
            if last is not None and bar.ts > last + step:
                out += self._fill_bars(venue, bar.symbol, bar.timeframe, last + step, bar.ts)
            self._bars[key] = bar.ts
            self.bars_out += 1
            out.append(ev)
            return out
        self.metrics.lag(venue, ev.recv_ts - ev.ts)
        if isinstance(ev, BookSnapshot):
            self._sync(venue, ev.symbol).on_snapshot(ev)
            touched.add((venue, ev.symbol))
            return [ev]
        if isinstance(ev, BookDelta):
            sync = self._sync(venue, ev.symbol)
            gaps, resyncs = sync.book.gaps, sync.resyncs
            ok = sync.on_delta(ev)
            self.metrics.count(venue, "gaps", sync.book.gaps - gaps)
            self.metrics.count(venue, "resyncs", sync.resyncs - resyncs)
            touched.add((venue, ev.symbol))
            return [ev] if ok else []
        return [ev]

    # -- publishing -------------------------------------------------------------------------
    def _publish_books(self, touched: set[tuple[str, str]]) -> None:
        if self.bus is None:
            return
        for venue, symbol in sorted(touched):
            top = self.books[(venue, symbol)].book.top(self.book_levels)
            if top is None:
                continue
            self.bus.publish(
                "tradeloop.market.book",
                BookTopEvent(
                    run=self.name, ts=top.ts, venue=venue, symbol=symbol, seq=top.seq,
                    bid=top.bid, bid_size=top.bid_size, ask=top.ask, ask_size=top.ask_size,
                    spread=top.spread, microprice=_nan_free(top.microprice),
                    imbalance=_nan_free(top.imbalance),
                ),
            )  # fmt: skip

    def maybe_publish_quality(self, force: bool = False) -> None:
        """Publish every source's quality when ``quality_every_s`` has passed (or ``force``)."""
        now = time.monotonic()
        if not force and now - self._last_quality < self.quality_every_s:
            return
        self._last_quality = now
        if self.bus is None:
            return
        for q in self.metrics.sources.values():
            self.bus.publish("tradeloop.data.quality", self.quality_event(q.source))

    def quality_event(self, source: str) -> DataQualityEvent:
        """The quality message of ``source`` now."""
        q = self.metrics.source(source)
        return DataQualityEvent(
            run=self.name, ts=time.time_ns(), source=source, messages=q.messages,
            msgs_per_s=q.msgs_per_s, lag_ms=q.lag_ms_last, lag_ms_max=q.lag_ms_max,
            gaps=q.gaps, outliers=q.outliers, duplicates=q.duplicates,
            out_of_order=q.out_of_order, malformed=q.malformed,
            resyncs=q.resyncs, failovers=q.failovers,
        )  # fmt: skip

    def summary(self) -> dict[str, Any]:
        """Counts for a CLI summary or a status file."""
        return {
            "trades_in": self.trades_in,
            "trades_out": self.trades_out,
            "bars": self.bars_out,
            "books": {f"{v}:{s}": len(b.book) for (v, s), b in self.books.items()},
            "sources": {
                name: {
                    "messages": q.messages, "gaps": q.gaps, "outliers": q.outliers,
                    "duplicates": q.duplicates, "out_of_order": q.out_of_order,
                    "malformed": q.malformed, "resyncs": q.resyncs,
                    "failovers": q.failovers, "lag_ms_max": round(q.lag_ms_max, 3),
                }
                for name, q in self.metrics.sources.items()
            },
        }  # fmt: skip
