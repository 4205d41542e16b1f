"""Streaming market-data events: trades, quotes, order-book snapshots and deltas, funding,
open interest and live bars, each with the venue's timestamp and our receive timestamp.

Every event carries ``venue`` (ccxt id), ``symbol`` (unified, ``BTC/USDT``), ``ts`` (the
venue's event time, UTC ns) and ``recv_ts`` (when our process received it, UTC ns). The
difference ``recv_ts - ts`` is the feed lag the quality metrics report.

:class:`TradeBatch` is the columnar form of many trades of one venue and symbol (numpy
arrays), which the pipeline's hot path works on.

>>> t = MarketTrade("binance", "BTC/USDT", 1_000, 1_500, 100.0, 2.0, 1, "7")
>>> t.notional, t.signed_amount
(200.0, 2.0)
>>> TradeBatch.from_trades([t]).to_trades() == [t]
True
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from tradeloop.core.bar import Bar

__all__ = [
    "BUY",
    "SELL",
    "UNKNOWN_SIDE",
    "BookDelta",
    "BookLevels",
    "BookSnapshot",
    "BookTop",
    "FundingRate",
    "MarketEvent",
    "MarketTrade",
    "OpenInterest",
    "Quote",
    "StreamBar",
    "TradeBatch",
]

BUY = 1
"""Aggressor (taker) side of a trade: the buyer lifted the offer."""
SELL = -1
"""Aggressor side: the seller hit the bid."""
UNKNOWN_SIDE = 0
"""The venue did not say who the aggressor was."""

BookLevels = tuple[tuple[float, float], ...]
"""Price levels as ``((price, size), ...)``; best first."""


@dataclass(frozen=True, slots=True)
class MarketTrade:
    """One executed trade on a venue.

    ``side`` is the aggressor side: :data:`BUY` (+1), :data:`SELL` (-1) or
    :data:`UNKNOWN_SIDE` (0). ``trade_id`` is the venue's id (string; unique per venue and
    symbol), used to suppress duplicates.
    """

    venue: str
    symbol: str
    ts: int
    recv_ts: int
    price: float
    amount: float
    side: int
    trade_id: str

    @property
    def notional(self) -> float:
        """Price times amount (quote currency)."""
        return self.price * self.amount

    @property
    def signed_amount(self) -> float:
        """Amount signed by the aggressor side (the trade's volume delta)."""
        return self.amount * self.side


@dataclass(frozen=True, slots=True)
class Quote:
    """Best bid and offer (top of book)."""

    venue: str
    symbol: str
    ts: int
    recv_ts: int
    bid: float
    bid_size: float
    ask: float
    ask_size: float


@dataclass(frozen=True, slots=True)
class BookSnapshot:
    """A full (or top-N) L2 order book: ``bids`` descending, ``asks`` ascending.

    ``seq`` is the venue's book sequence (update id / nonce) the snapshot is valid at; deltas
    with a later sequence apply on top of it.
    """

    venue: str
    symbol: str
    ts: int
    recv_ts: int
    seq: int
    bids: BookLevels
    asks: BookLevels


@dataclass(frozen=True, slots=True)
class BookDelta:
    """Changed L2 levels: a level's new total size, 0 meaning the level is gone.

    ``prev_seq`` is the sequence the delta follows and ``seq`` the one it ends at; a book
    whose last sequence is not ``prev_seq`` has missed an update (a gap) and must resync.
    """

    venue: str
    symbol: str
    ts: int
    recv_ts: int
    seq: int
    prev_seq: int
    bids: BookLevels
    asks: BookLevels


@dataclass(frozen=True, slots=True)
class FundingRate:
    """A perpetual swap's funding rate; ``next_ts`` is the next funding time (0: unknown)."""

    venue: str
    symbol: str
    ts: int
    recv_ts: int
    rate: float
    next_ts: int = 0


@dataclass(frozen=True, slots=True)
class OpenInterest:
    """Open interest of a derivative, in contracts / base units."""

    venue: str
    symbol: str
    ts: int
    recv_ts: int
    value: float


@dataclass(frozen=True, slots=True)
class StreamBar:
    """A kline from a live stream: the bar so far, final when ``closed``."""

    venue: str
    recv_ts: int
    bar: Bar
    closed: bool

    @property
    def symbol(self) -> str:
        """The bar's symbol."""
        return self.bar.symbol

    @property
    def ts(self) -> int:
        """The bar's open time (UTC ns)."""
        return self.bar.ts


@dataclass(frozen=True, slots=True)
class BookTop:
    """What a strategy reads from the book at a step (``view.book(symbol)``).

    ``bids`` / ``asks`` are the top levels, best first. ``imbalance`` is
    ``(bid_depth - ask_depth) / (bid_depth + ask_depth)`` over those levels (in [-1, 1]);
    ``microprice`` is the size-weighted mid ``(bid*ask_size + ask*bid_size)/(bid_size+ask_size)``.
    """

    symbol: str
    ts: int
    seq: int
    bid: float
    bid_size: float
    ask: float
    ask_size: float
    spread: float
    mid: float
    microprice: float
    imbalance: float
    bids: BookLevels
    asks: BookLevels


MarketEvent = (
    MarketTrade | Quote | BookSnapshot | BookDelta | FundingRate | OpenInterest | StreamBar
)
"""Any normalised market-data event."""


class TradeBatch:
    """Columnar trades of one venue and symbol.

    Attributes
    ----------
    ts, recv_ts
        int64 UTC ns.
    price, amount
        float64.
    side
        int8 aggressor side (+1 buy, -1 sell, 0 unknown).
    trade_id
        object array of the venue's trade ids (strings).
    """

    __slots__ = ("amount", "price", "recv_ts", "side", "symbol", "trade_id", "ts", "venue")

    def __init__(
        self,
        venue: str,
        symbol: str,
        ts: np.ndarray,
        recv_ts: np.ndarray,
        price: np.ndarray,
        amount: np.ndarray,
        side: np.ndarray,
        trade_id: np.ndarray,
    ) -> None:
        n = len(ts)
        for name, col in (
            ("recv_ts", recv_ts),
            ("price", price),
            ("amount", amount),
            ("side", side),
            ("trade_id", trade_id),
        ):
            if len(col) != n:
                raise ValueError(f"TradeBatch column {name} has {len(col)} rows, ts has {n}")
        self.venue = venue
        self.symbol = symbol
        self.ts = np.asarray(ts, dtype=np.int64)
        self.recv_ts = np.asarray(recv_ts, dtype=np.int64)
        self.price = np.asarray(price, dtype=np.float64)
        self.amount = np.asarray(amount, dtype=np.float64)
        self.side = np.asarray(side, dtype=np.int8)
        self.trade_id = np.asarray(trade_id, dtype=object)

    def __len__(self) -> int:
        return len(self.ts)

    @classmethod
    def from_trades(cls, trades: Sequence[MarketTrade]) -> TradeBatch:
        """Columns of ``trades`` (all of one venue and symbol).

        Raises
        ------
        ValueError
            If the trades are empty or mix venues or symbols.
        """
        if not trades:
            raise ValueError("TradeBatch.from_trades needs at least one trade")
        venue, symbol = trades[0].venue, trades[0].symbol
        if any(t.venue != venue or t.symbol != symbol for t in trades):
            raise ValueError("a TradeBatch holds one venue and one symbol")
        return cls(
            venue,
            symbol,
            np.fromiter((t.ts for t in trades), np.int64, len(trades)),
            np.fromiter((t.recv_ts for t in trades), np.int64, len(trades)),
            np.fromiter((t.price for t in trades), np.float64, len(trades)),
            np.fromiter((t.amount for t in trades), np.float64, len(trades)),
            np.fromiter((t.side for t in trades), np.int8, len(trades)),
            np.array([t.trade_id for t in trades], dtype=object),
        )

    def take(self, mask_or_index: np.ndarray) -> TradeBatch:
        """The rows selected by a boolean mask or an index array."""
        return TradeBatch(
            self.venue,
            self.symbol,
            self.ts[mask_or_index],
            self.recv_ts[mask_or_index],
            self.price[mask_or_index],
            self.amount[mask_or_index],
            self.side[mask_or_index],
            self.trade_id[mask_or_index],
        )

    def to_trades(self) -> list[MarketTrade]:
        """The rows as :class:`MarketTrade` objects."""
        return [
            MarketTrade(self.venue, self.symbol, int(a), int(b), float(c), float(d), int(e), str(f))
            for a, b, c, d, e, f in zip(
                self.ts.tolist(),
                self.recv_ts.tolist(),
                self.price.tolist(),
                self.amount.tolist(),
                self.side.tolist(),
                self.trade_id.tolist(),
                strict=True,
            )
        ]

    @staticmethod
    def concat(batches: Iterable[TradeBatch]) -> TradeBatch:
        """One batch of the rows of ``batches`` (same venue and symbol) in order."""
        items = list(batches)
        if not items:
            raise ValueError("TradeBatch.concat needs at least one batch")
        return TradeBatch(
            items[0].venue,
            items[0].symbol,
            np.concatenate([b.ts for b in items]),
            np.concatenate([b.recv_ts for b in items]),
            np.concatenate([b.price for b in items]),
            np.concatenate([b.amount for b in items]),
            np.concatenate([b.side for b in items]),
            np.concatenate([b.trade_id for b in items]),
        )
