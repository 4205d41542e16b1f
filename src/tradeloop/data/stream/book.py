"""L2 order book per symbol: snapshot + delta sync with sequence checks, resync on a gap.

Each side is a sorted array of price keys (bids: price, asks: -price; ascending, so the best
level is the last element of both) with a parallel array of sizes. Updates near the top of the
book, which is where almost all of them land, shift only a few elements. The per-level work is
a numba kernel, so a batch of deltas costs a few tens of ns per level.

Sequence rule: a :class:`~tradeloop.core.market_events.BookDelta` applies when its
``prev_seq`` equals the book's ``seq``; one with ``seq <= book.seq`` is stale (already
contained in the snapshot; skipped and counted); anything else is a gap: the book becomes
unsynced, counts the gap and waits for a snapshot (:class:`BookSync` fetches it).

>>> from tradeloop.core.market_events import BookDelta, BookSnapshot
>>> b = L2Book("binance", "BTC/USDT")
>>> b.apply_snapshot(BookSnapshot("binance", "BTC/USDT", 0, 0, 10,
...                               ((100.0, 1.0), (99.0, 2.0)), ((101.0, 3.0),)))
>>> b.apply_delta(BookDelta("binance", "BTC/USDT", 1, 1, 11, 10, ((100.0, 0.0),), ()))
True
>>> b.best_bid(), b.best_ask(), b.spread()
((99.0, 2.0), (101.0, 3.0), 2.0)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from itertools import chain
from operator import attrgetter

import numba
import numpy as np

from tradeloop.core.market_events import BookDelta, BookLevels, BookSnapshot, BookTop

__all__ = ["BookSync", "BookTop", "DeltaColumns", "L2Book", "apply_levels", "delta_columns"]

logger = logging.getLogger(__name__)

_INITIAL = 256
_SEQ = attrgetter("seq")
_PREV = attrgetter("prev_seq")
_BIDS = attrgetter("bids")
_ASKS = attrgetter("asks")


@numba.njit(cache=True, nogil=True)
def _set_level(keys: np.ndarray, sizes: np.ndarray, n: int, key: float, size: float) -> int:
    """Set one level (size 0 removes it) in a sorted side; return the new level count."""
    lo, hi = 0, n
    while lo < hi:  # first index with keys[i] >= key
        mid = (lo + hi) >> 1
        if keys[mid] < key:
            lo = mid + 1
        else:
            hi = mid
    found = lo < n and keys[lo] == key
    if size <= 0.0:
        if found:
            for j in range(lo, n - 1):
                keys[j] = keys[j + 1]
                sizes[j] = sizes[j + 1]
            return n - 1
        return n
    if found:
        sizes[lo] = size
        return n
    for j in range(n, lo, -1):
        keys[j] = keys[j - 1]
        sizes[j] = sizes[j - 1]
    keys[lo] = key
    sizes[lo] = size
    return n + 1


@numba.njit(cache=True, nogil=True)
def apply_levels(
    bid_keys: np.ndarray,
    bid_sizes: np.ndarray,
    n_bid: int,
    ask_keys: np.ndarray,
    ask_sizes: np.ndarray,
    n_ask: int,
    is_bid: np.ndarray,
    price: np.ndarray,
    size: np.ndarray,
) -> tuple[int, int]:
    """Apply level updates (``is_bid``, ``price``, ``size``; size 0 removes) to both sides.

    The caller guarantees capacity for ``len(price)`` more levels per side.
    """
    for i in range(price.shape[0]):
        if is_bid[i]:
            n_bid = _set_level(bid_keys, bid_sizes, n_bid, price[i], size[i])
        else:
            n_ask = _set_level(ask_keys, ask_sizes, n_ask, -price[i], size[i])
    return n_bid, n_ask


@numba.njit(cache=True, nogil=True)
def _apply_messages(
    bid_keys: np.ndarray,
    bid_sizes: np.ndarray,
    n_bid: int,
    ask_keys: np.ndarray,
    ask_sizes: np.ndarray,
    n_ask: int,
    seq: int,
    msg_seq: np.ndarray,
    msg_prev: np.ndarray,
    offsets: np.ndarray,
    is_bid: np.ndarray,
    price: np.ndarray,
    size: np.ndarray,
) -> tuple[int, int, int, int, int]:
    """Apply delta messages in order with the sequence rule; stop at the first gap.

    Returns ``(n_bid, n_ask, seq, messages consumed, stale skipped)``; consumed < count
    means message ``consumed`` does not follow (a gap).
    """
    stale = 0
    m = 0
    for m in range(msg_seq.shape[0]):
        if msg_seq[m] <= seq:
            stale += 1
            continue
        if msg_prev[m] != seq:
            return n_bid, n_ask, seq, m, stale
        for i in range(offsets[m], offsets[m + 1]):
            if is_bid[i]:
                n_bid = _set_level(bid_keys, bid_sizes, n_bid, price[i], size[i])
            else:
                n_ask = _set_level(ask_keys, ask_sizes, n_ask, -price[i], size[i])
        seq = msg_seq[m]
    return n_bid, n_ask, seq, msg_seq.shape[0], stale


DeltaColumns = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]
"""``(seq, prev_seq, offsets, is_bid, price, size)`` of delta messages (see
:meth:`L2Book.apply_batch`)."""


def delta_columns(deltas: Sequence[BookDelta]) -> DeltaColumns:
    """The columns of ``deltas`` for :meth:`L2Book.apply_batch`."""
    n = len(deltas)
    seq = np.fromiter(map(_SEQ, deltas), np.int64, n)
    prev = np.fromiter(map(_PREV, deltas), np.int64, n)
    bids = list(map(_BIDS, deltas))
    asks = list(map(_ASKS, deltas))
    nb = np.fromiter(map(len, bids), np.int64, n)
    na = np.fromiter(map(len, asks), np.int64, n)
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(nb + na, out=offsets[1:])
    total = int(offsets[-1])
    flat = list(chain.from_iterable(chain.from_iterable(zip(bids, asks, strict=True))))
    levels = np.array(flat, np.float64).reshape(total, 2)
    # rows of message m: offsets[m] .. offsets[m] + nb[m] are bids, the rest asks
    row = np.arange(total, dtype=np.int64)
    owner = np.repeat(np.arange(n, dtype=np.int64), nb + na)
    is_bid = row - offsets[owner] < nb[owner]
    return (
        seq, prev, offsets, is_bid,
        np.ascontiguousarray(levels[:, 0]), np.ascontiguousarray(levels[:, 1]),
    )  # fmt: skip


class L2Book:
    """The L2 book of one venue and symbol.

    Attributes
    ----------
    seq
        Sequence of the last applied snapshot or delta (-1: never synced).
    synced
        False before the first snapshot and after a gap until the next snapshot.
    gaps, stale, updates, snapshots
        Counters: gaps detected, stale deltas skipped, deltas applied, snapshots applied.
    """

    def __init__(self, venue: str, symbol: str, capacity: int = _INITIAL) -> None:
        self.venue = venue
        self.symbol = symbol
        self._bk = np.empty(capacity, np.float64)
        self._bs = np.empty(capacity, np.float64)
        self._ak = np.empty(capacity, np.float64)
        self._as = np.empty(capacity, np.float64)
        self._nb = 0
        self._na = 0
        self.seq = -1
        self.ts = 0
        self.synced = False
        self.gaps = 0
        self.stale = 0
        self.updates = 0
        self.snapshots = 0

    # -- updates ----------------------------------------------------------------------------
    def _reserve(self, extra: int) -> None:
        need = max(self._nb, self._na) + extra
        if need <= len(self._bk):
            return
        cap = max(need, 2 * len(self._bk))
        for name in ("_bk", "_bs", "_ak", "_as"):
            old = getattr(self, name)
            new = np.empty(cap, np.float64)
            new[: len(old)] = old
            setattr(self, name, new)

    def _apply(self, bids: BookLevels, asks: BookLevels) -> None:
        n = len(bids) + len(asks)
        if n == 0:
            return
        self._reserve(n)
        levels = np.array(bids + asks, dtype=np.float64).reshape(n, 2)
        is_bid = np.zeros(n, np.bool_)
        is_bid[: len(bids)] = True
        self._nb, self._na = apply_levels(
            self._bk, self._bs, self._nb, self._ak, self._as, self._na,
            is_bid, np.ascontiguousarray(levels[:, 0]), np.ascontiguousarray(levels[:, 1]),
        )  # fmt: skip

    def clear(self) -> None:
        """Empty both sides and mark the book unsynced."""
        self._nb = self._na = 0
        self.synced = False

    def apply_snapshot(self, snap: BookSnapshot) -> None:
        """Replace the book by ``snap`` and mark it synced at ``snap.seq``."""
        self._nb = self._na = 0
        self._apply(snap.bids, snap.asks)
        self.seq = snap.seq
        self.ts = snap.ts
        self.synced = True
        self.snapshots += 1

    def apply_delta(self, delta: BookDelta) -> bool:
        """Apply ``delta`` if it follows the book's sequence.

        Returns True when applied or skipped as stale, False on a gap (the book is then
        unsynced and needs a snapshot) or while unsynced.
        """
        if not self.synced:
            return False
        if delta.seq <= self.seq:
            self.stale += 1
            return True
        if delta.prev_seq != self.seq:
            self.gaps += 1
            self.synced = False
            logger.warning(
                "%s %s book gap: at seq %d, delta follows %d (seq %d); resync",
                self.venue, self.symbol, self.seq, delta.prev_seq, delta.seq,
            )  # fmt: skip
            return False
        self._apply(delta.bids, delta.asks)
        self.seq = delta.seq
        self.ts = delta.ts
        self.updates += 1
        return True

    def apply_columns(
        self, seq: int, ts: int, is_bid: np.ndarray, price: np.ndarray, size: np.ndarray
    ) -> None:
        """Apply many level updates at once (the batched hot path; no sequence check here:
        the caller has checked the sequence of the messages they came from)."""
        self._reserve(len(price))
        self._nb, self._na = apply_levels(
            self._bk, self._bs, self._nb, self._ak, self._as, self._na, is_bid, price, size
        )
        self.seq = seq
        self.ts = ts
        self.updates += 1

    def apply_batch(
        self,
        msg_seq: np.ndarray,
        msg_prev: np.ndarray,
        offsets: np.ndarray,
        is_bid: np.ndarray,
        price: np.ndarray,
        size: np.ndarray,
        ts: int = 0,
    ) -> int:
        """Apply many delta messages in columns (the batched hot path), with the same
        sequence rule as :meth:`apply_delta`.

        Message ``m`` has sequence ``msg_seq[m]``, follows ``msg_prev[m]`` and owns the level
        rows ``offsets[m]:offsets[m+1]`` of ``is_bid``/``price``/``size``. Returns how many
        messages were consumed; fewer than given means a gap at that message (the book is
        then unsynced and needs a snapshot).
        """
        if not self.synced:
            return 0
        self._reserve(len(price))
        self._nb, self._na, seq, used, stale = _apply_messages(
            self._bk, self._bs, self._nb, self._ak, self._as, self._na, self.seq,
            msg_seq, msg_prev, offsets, is_bid, price, size,
        )  # fmt: skip
        self.stale += stale
        self.updates += used - stale
        self.seq = seq
        if used < len(msg_seq):
            self.gaps += 1
            self.synced = False
            logger.warning(
                "%s %s book gap: at seq %d, message follows %d; resync",
                self.venue, self.symbol, seq, int(msg_prev[used]),
            )  # fmt: skip
        elif ts:
            self.ts = ts
        return int(used)

    # -- reads ------------------------------------------------------------------------------
    def best_bid(self) -> tuple[float, float] | None:
        """``(price, size)`` of the best bid, or None."""
        n = self._nb
        return (float(self._bk[n - 1]), float(self._bs[n - 1])) if n else None

    def best_ask(self) -> tuple[float, float] | None:
        """``(price, size)`` of the best ask, or None."""
        n = self._na
        return (float(-self._ak[n - 1]), float(self._as[n - 1])) if n else None

    def spread(self) -> float:
        """Best ask minus best bid (NaN when a side is empty)."""
        bid, ask = self.best_bid(), self.best_ask()
        return ask[0] - bid[0] if bid and ask else float("nan")

    def mid(self) -> float:
        """Mid price (NaN when a side is empty)."""
        bid, ask = self.best_bid(), self.best_ask()
        return (ask[0] + bid[0]) / 2 if bid and ask else float("nan")

    def microprice(self) -> float:
        """Size-weighted mid of the top level (NaN when a side is empty)."""
        bid, ask = self.best_bid(), self.best_ask()
        if not bid or not ask or bid[1] + ask[1] <= 0:
            return float("nan")
        return (bid[0] * ask[1] + ask[0] * bid[1]) / (bid[1] + ask[1])

    def levels(self, n: int | None = None) -> tuple[BookLevels, BookLevels]:
        """The top ``n`` levels (all when None) of each side, best first."""
        nb = self._nb if n is None else min(n, self._nb)
        na = self._na if n is None else min(n, self._na)
        bk, bs = self._bk[self._nb - nb : self._nb][::-1], self._bs[self._nb - nb : self._nb][::-1]
        ak, as_ = self._ak[self._na - na : self._na][::-1], self._as[self._na - na : self._na][::-1]
        bids = tuple(zip(bk.tolist(), bs.tolist(), strict=True))
        asks = tuple(zip((-ak).tolist(), as_.tolist(), strict=True))
        return bids, asks

    def depth(self, n: int = 10) -> tuple[float, float]:
        """Total size of the top ``n`` bid levels and ask levels."""
        nb, na = min(n, self._nb), min(n, self._na)
        return (
            float(self._bs[self._nb - nb : self._nb].sum()),
            float(self._as[self._na - na : self._na].sum()),
        )

    def imbalance(self, n: int = 10) -> float:
        """``(bid_depth - ask_depth) / (bid_depth + ask_depth)`` over the top ``n`` levels."""
        bid, ask = self.depth(n)
        total = bid + ask
        return (bid - ask) / total if total > 0 else float("nan")

    def top(self, n: int = 10) -> BookTop | None:
        """The strategy's summary of the book (None while unsynced or one-sided)."""
        bid, ask = self.best_bid(), self.best_ask()
        if not self.synced or bid is None or ask is None:
            return None
        bids, asks = self.levels(n)
        return BookTop(
            self.symbol, self.ts, self.seq, bid[0], bid[1], ask[0], ask[1],
            ask[0] - bid[0], (ask[0] + bid[0]) / 2, self.microprice(), self.imbalance(n),
            bids, asks,
        )  # fmt: skip

    def snapshot(self, recv_ts: int = 0) -> BookSnapshot:
        """The whole book as a :class:`BookSnapshot` at its current sequence."""
        bids, asks = self.levels()
        return BookSnapshot(self.venue, self.symbol, self.ts, recv_ts, self.seq, bids, asks)

    def __len__(self) -> int:
        return self._nb + self._na


class BookSync:
    """Keeps an :class:`L2Book` in sync from a delta stream, fetching a snapshot on a gap.

    Deltas that arrive before the first snapshot, or after a gap, are buffered; when the
    snapshot comes (from ``fetch_snapshot``, called once per resync), buffered deltas newer
    than it are applied in order, as the venues' documented sync procedure says.

    Parameters
    ----------
    book
        The book to maintain.
    fetch_snapshot
        Returns a fresh snapshot (e.g. the venue's REST depth), or None when it cannot now
        (the next delta tries again).
    max_buffer
        Deltas kept while unsynced (older ones are dropped; the snapshot covers them).
    """

    def __init__(
        self,
        book: L2Book,
        fetch_snapshot: Callable[[], BookSnapshot | None],
        max_buffer: int = 10_000,
    ) -> None:
        self.book = book
        self.fetch_snapshot = fetch_snapshot
        self.max_buffer = max_buffer
        self._buffer: list[BookDelta] = []
        self.resyncs = 0

    def on_snapshot(self, snap: BookSnapshot) -> None:
        """A snapshot from the stream itself (Bybit/OKX send one on subscribe)."""
        self.book.apply_snapshot(snap)
        self._drain()

    def on_delta(self, delta: BookDelta) -> bool:
        """Apply one delta, resyncing when needed; True when the book is in sync after it."""
        if self.book.synced and self.book.apply_delta(delta):
            return True
        self._buffer.append(delta)
        if len(self._buffer) > self.max_buffer:
            del self._buffer[: len(self._buffer) - self.max_buffer]
        snap = self.fetch_snapshot()
        if snap is None:
            return False
        self.resyncs += 1
        self.book.apply_snapshot(snap)
        self._drain()
        return self.book.synced

    def _drain(self) -> None:
        pending, self._buffer = self._buffer, []
        for delta in pending:
            if delta.seq <= self.book.seq:
                continue
            if not self.book.apply_delta(delta):
                # a hole between the snapshot and the buffered deltas: the snapshot is too
                # old; keep the deltas and fetch a newer snapshot on the next one
                self._buffer = [d for d in pending if d.seq > self.book.seq]
                return
