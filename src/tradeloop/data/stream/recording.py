"""Recordings of a normalised market stream: Parquet partitioned by day, read back in order.

Layout (Hive partitions, one folder per kind and venue day)::

    <root>/<kind>/date=YYYY-MM-DD/part-<session>-<n>.parquet

with kinds ``trades``, ``book`` (one row per level; a snapshot's or delta's rows share its
``arrival``), ``bars``, ``funding``, ``open_interest`` and ``quotes``. Every row carries
``arrival``: the position of its event in the recorded stream, so :func:`read_recording`
returns the events in exactly the order the live session received them, whatever the kind.

>>> import tempfile, pathlib
>>> from tradeloop.core.market_events import MarketTrade
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> with ParquetRecorder(root) as rec:
...     rec.write([MarketTrade("binance", "BTC/USDT", 0, 1, 100.0, 1.0, 1, "1")])
>>> [(t.symbol, t.price, t.trade_id) for t in read_recording(root)]
[('BTC/USDT', 100.0, '1')]
"""

from __future__ import annotations

import logging
import os
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from tradeloop.core.bar import Bar
from tradeloop.core.errors import DataError
from tradeloop.core.market_events import (
    BookDelta,
    BookSnapshot,
    FundingRate,
    MarketEvent,
    MarketTrade,
    OpenInterest,
    Quote,
    StreamBar,
)

__all__ = ["KINDS", "ParquetRecorder", "iter_replay", "read_recording"]

logger = logging.getLogger(__name__)

_NS_PER_DAY = 86_400 * 1_000_000_000

SCHEMAS: dict[str, pa.Schema] = {
    "trades": pa.schema(
        [("arrival", pa.int64()), ("venue", pa.string()), ("symbol", pa.string()),
         ("ts", pa.int64()), ("recv_ts", pa.int64()), ("price", pa.float64()),
         ("amount", pa.float64()), ("side", pa.int8()), ("trade_id", pa.string())]
    ),
    "book": pa.schema(
        [("arrival", pa.int64()), ("venue", pa.string()), ("symbol", pa.string()),
         ("ts", pa.int64()), ("recv_ts", pa.int64()), ("seq", pa.int64()),
         ("prev_seq", pa.int64()), ("snapshot", pa.bool_()), ("side", pa.int8()),
         ("price", pa.float64()), ("size", pa.float64())]
    ),
    "bars": pa.schema(
        [("arrival", pa.int64()), ("venue", pa.string()), ("symbol", pa.string()),
         ("timeframe", pa.string()), ("ts", pa.int64()), ("recv_ts", pa.int64()),
         ("open", pa.float64()), ("high", pa.float64()), ("low", pa.float64()),
         ("close", pa.float64()), ("volume", pa.float64()), ("closed", pa.bool_())]
    ),
    "funding": pa.schema(
        [("arrival", pa.int64()), ("venue", pa.string()), ("symbol", pa.string()),
         ("ts", pa.int64()), ("recv_ts", pa.int64()), ("rate", pa.float64()),
         ("next_ts", pa.int64())]
    ),
    "open_interest": pa.schema(
        [("arrival", pa.int64()), ("venue", pa.string()), ("symbol", pa.string()),
         ("ts", pa.int64()), ("recv_ts", pa.int64()), ("value", pa.float64())]
    ),
    "quotes": pa.schema(
        [("arrival", pa.int64()), ("venue", pa.string()), ("symbol", pa.string()),
         ("ts", pa.int64()), ("recv_ts", pa.int64()), ("bid", pa.float64()),
         ("bid_size", pa.float64()), ("ask", pa.float64()), ("ask_size", pa.float64())]
    ),
}  # fmt: skip
KINDS = tuple(SCHEMAS)


def _day(ts: int) -> str:
    return str(np.datetime64(ts // _NS_PER_DAY * _NS_PER_DAY, "ns").astype("datetime64[D]"))


class ParquetRecorder:
    """Writes normalised events to day-partitioned Parquet (a pipeline sink).

    Parameters
    ----------
    root
        The recording folder (created).
    flush_rows
        Rows buffered per kind before a part file is written.
    """

    def __init__(self, root: str | Path, flush_rows: int = 50_000) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.flush_rows = flush_rows
        self.session = f"{time.time_ns():x}-{os.getpid()}"
        self._rows: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        self._arrival = self._next_arrival()
        self._parts = 0
        self.events = 0
        self.rows_written = 0
        self.files: list[Path] = []

    def _next_arrival(self) -> int:
        """Continue after the largest arrival already recorded (a recording may be extended)."""
        best = -1
        for kind in KINDS:
            if not (self.root / kind).exists():
                continue
            table = ds.dataset(self.root / kind, format="parquet", partitioning="hive").to_table(
                columns=["arrival"]
            )
            if table.num_rows:
                best = max(best, int(np.max(table.column("arrival").to_numpy())))
        return best + 1

    def write(self, events: Sequence[MarketEvent]) -> None:
        """Buffer ``events`` (in order); flush kinds that reached ``flush_rows``."""
        rows = self._rows
        for ev in events:
            a = self._arrival
            self._arrival += 1
            self.events += 1
            if isinstance(ev, MarketTrade):
                rows["trades"].append(
                    (a, ev.venue, ev.symbol, ev.ts, ev.recv_ts, ev.price, ev.amount, ev.side,
                     ev.trade_id)
                )  # fmt: skip
            elif isinstance(ev, BookSnapshot | BookDelta):
                snap = isinstance(ev, BookSnapshot)
                prev = ev.seq if isinstance(ev, BookSnapshot) else ev.prev_seq
                head = (a, ev.venue, ev.symbol, ev.ts, ev.recv_ts, ev.seq, prev, snap)
                levels = [(1, p, s) for p, s in ev.bids] + [(-1, p, s) for p, s in ev.asks]
                for side, p, s in levels or [(0, 0.0, 0.0)]:
                    rows["book"].append((*head, side, p, s))
            elif isinstance(ev, StreamBar):
                b = ev.bar
                rows["bars"].append(
                    (a, ev.venue, b.symbol, b.timeframe, b.ts, ev.recv_ts, b.open, b.high, b.low,
                     b.close, b.volume, ev.closed)
                )  # fmt: skip
            elif isinstance(ev, FundingRate):
                rows["funding"].append(
                    (a, ev.venue, ev.symbol, ev.ts, ev.recv_ts, ev.rate, ev.next_ts)
                )
            elif isinstance(ev, OpenInterest):
                rows["open_interest"].append((a, ev.venue, ev.symbol, ev.ts, ev.recv_ts, ev.value))
            elif isinstance(ev, Quote):
                rows["quotes"].append(
                    (a, ev.venue, ev.symbol, ev.ts, ev.recv_ts, ev.bid, ev.bid_size, ev.ask,
                     ev.ask_size)
                )  # fmt: skip
        for kind, buf in rows.items():
            if len(buf) >= self.flush_rows:
                self._flush(kind)

    def flush(self) -> None:
        """Write every buffered row."""
        for kind in list(self._rows):
            self._flush(kind)

    def close(self) -> None:
        """Flush and finish."""
        self.flush()

    def __enter__(self) -> ParquetRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _flush(self, kind: str) -> None:
        buf = self._rows.get(kind)
        if not buf:
            return
        self._rows[kind] = []
        schema = SCHEMAS[kind]
        cols = list(zip(*buf, strict=True))
        table = pa.Table.from_arrays(
            [pa.array(c, type=f.type) for c, f in zip(cols, schema, strict=True)], schema=schema
        )
        ts = table.column("ts").to_numpy()
        days = ts // _NS_PER_DAY
        for day in np.unique(days):
            part = table.filter(pa.array(days == day))
            folder = self.root / kind / f"date={_day(int(day) * _NS_PER_DAY)}"
            folder.mkdir(parents=True, exist_ok=True)
            self._parts += 1
            path = folder / f"part-{self.session}-{self._parts:06d}.parquet"
            tmp = path.with_suffix(".tmp")
            pq.write_table(part, tmp)
            os.replace(tmp, path)  # readers never see a half-written part
            self.files.append(path)
            self.rows_written += part.num_rows


def _read_kind(root: Path, kind: str, symbols: set[str] | None) -> pa.Table | None:
    folder = root / kind
    if not folder.exists():
        return None
    try:
        dataset = ds.dataset(folder, format="parquet", partitioning="hive")
        filt = ds.field("symbol").isin(sorted(symbols)) if symbols else None
        table = dataset.to_table(filter=filt)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"unreadable recording part: {exc}", file=str(folder)) from None
    if "date" in table.column_names:
        table = table.drop_columns(["date"])
    return table


def read_recording(root: str | Path, symbols: Sequence[str] | None = None) -> list[MarketEvent]:
    """Every event of a recording, in the order it was received.

    Raises
    ------
    DataError
        If ``root`` holds no recording or a part cannot be read.
    """
    root = Path(root)
    wanted = set(symbols) if symbols else None
    keyed: list[tuple[int, MarketEvent]] = []
    found = False
    for kind in KINDS:
        table = _read_kind(root, kind, wanted)
        if table is None:
            continue
        found = True
        cols = {name: table.column(name).to_pylist() for name in table.column_names}
        n = table.num_rows
        if kind == "book":
            groups: dict[int, list[int]] = defaultdict(list)
            for i, a in enumerate(cols["arrival"]):
                groups[a].append(i)
            for a, idx in groups.items():
                i0 = idx[0]
                bids = tuple(
                    (cols["price"][i], cols["size"][i]) for i in idx if cols["side"][i] == 1
                )
                asks = tuple(
                    (cols["price"][i], cols["size"][i]) for i in idx if cols["side"][i] == -1
                )
                head = (cols["venue"][i0], cols["symbol"][i0], cols["ts"][i0], cols["recv_ts"][i0])
                ev: MarketEvent
                if cols["snapshot"][i0]:
                    ev = BookSnapshot(*head, cols["seq"][i0], bids, asks)
                else:
                    ev = BookDelta(*head, cols["seq"][i0], cols["prev_seq"][i0], bids, asks)
                keyed.append((a, ev))
            continue
        for i in range(n):
            c = {k: v[i] for k, v in cols.items()}
            head = (c["venue"], c["symbol"], c["ts"], c["recv_ts"])
            if kind == "trades":
                ev = MarketTrade(*head, c["price"], c["amount"], c["side"], c["trade_id"])
            elif kind == "bars":
                bar = Bar(
                    c["symbol"], c["timeframe"], c["ts"], c["open"], c["high"], c["low"],
                    c["close"], c["volume"],
                )  # fmt: skip
                ev = StreamBar(c["venue"], c["recv_ts"], bar, c["closed"])
            elif kind == "funding":
                ev = FundingRate(*head, c["rate"], c["next_ts"])
            elif kind == "open_interest":
                ev = OpenInterest(*head, c["value"])
            else:
                ev = Quote(*head, c["bid"], c["bid_size"], c["ask"], c["ask_size"])
            keyed.append((c["arrival"], ev))
    if not found:
        raise DataError("no recording here (no trades/book/bars/... folders)", file=str(root))
    keyed.sort(key=lambda item: item[0])
    return [ev for _, ev in keyed]


def _recv(ev: MarketEvent) -> int:
    return ev.recv_ts


def iter_replay(
    events: Sequence[MarketEvent],
    speed: float | None = None,
    sleep: Any = time.sleep,
    clock: Any = time.monotonic,
) -> Iterator[MarketEvent]:
    """Yield ``events`` in order, paced by their receive times divided by ``speed``
    (1.0: as recorded; 10: ten times faster; None or inf: as fast as possible)."""
    if speed is not None and speed <= 0:
        raise ValueError(f"replay speed must be > 0, got {speed}")
    paced = speed is not None and np.isfinite(speed)
    start_wall = clock()
    start_recv: int | None = None
    for ev in events:
        if paced:
            recv = _recv(ev)
            if start_recv is None:
                start_recv = recv
            due = start_wall + (recv - start_recv) / 1e9 / float(speed)  # type: ignore[arg-type]
            delay = due - clock()
            if delay > 0:
                sleep(delay)
        yield ev
