"""Stream quality on trade batches: outliers, duplicates, trade-id gaps and live CVD.

* :class:`OutlierFilter` - rolling-window z-score and IQR test of each trade price against the
  accepted prices before it (flagged prices never enter the window, so a spike cannot widen
  the band that judges the next one). Action ``flag`` keeps every trade and returns the mask,
  ``drop`` removes flagged trades, ``halt`` stops the symbol at the first outlier until
  :meth:`OutlierFilter.resume`.
* :class:`Deduplicator` - drops trades whose (venue, symbol, trade id) was already seen
  (bounded memory): a reconnect or a failover that replays the last trades counts nothing twice.
* :class:`TradeIdGaps` - numeric, consecutive trade ids (Binance, OKX) reveal lost trades;
  each gap is reported as an id range for a REST backfill.
* :class:`LiveCVD` - cumulative volume delta from the aggressor side of every trade.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numba
import numpy as np

from tradeloop.core.errors import ConfigError
from tradeloop.core.market_events import TradeBatch

__all__ = [
    "Deduplicator",
    "LiveCVD",
    "OutlierAction",
    "OutlierConfig",
    "OutlierFilter",
    "SymbolHaltedError",
    "TradeIdGaps",
]

logger = logging.getLogger(__name__)

OutlierAction = Literal["flag", "drop", "halt"]


class SymbolHaltedError(Exception):
    """Raised by ``halt`` filtering when a symbol's stream stopped at an outlier."""


@dataclass(frozen=True, slots=True)
class OutlierConfig:
    """Outlier test settings.

    Attributes
    ----------
    window
        Accepted prices the statistics are computed over.
    z
        A price is an outlier when ``|p - mean| > z * std`` of the window ...
    iqr_k
        ... or outside ``[Q1 - k*IQR, Q3 + k*IQR]`` of the window (``method`` picks which).
    method
        ``zscore``, ``iqr`` or ``both`` (either test flags).
    min_count
        Prices needed in the window before anything is flagged (warm-up).
    min_rel
        ... and only when the price is also more than this fraction away from the window
        mean (a quiet window's tiny spread must not turn every ordinary tick into an outlier).
    refresh
        The quartiles are recomputed every ``refresh`` accepted prices (the z-score every
        price).
    action
        ``flag``, ``drop`` or ``halt``.
    """

    window: int = 500
    z: float = 8.0
    iqr_k: float = 6.0
    method: Literal["zscore", "iqr", "both"] = "both"
    min_count: int = 50
    min_rel: float = 0.002
    refresh: int = 32
    action: OutlierAction = "flag"

    def __post_init__(self) -> None:
        if self.window < 4 or self.min_count < 2 or self.min_count > self.window:
            raise ConfigError(
                f"outlier window must be >= 4 and min_count in [2, window], got "
                f"window={self.window}, min_count={self.min_count}"
            )
        if self.z <= 0 or self.iqr_k <= 0 or self.refresh < 1 or self.min_rel < 0:
            raise ConfigError("outlier z, iqr_k must be > 0, refresh >= 1 and min_rel >= 0")
        if self.method not in ("zscore", "iqr", "both"):
            raise ConfigError(f"outlier method {self.method!r} is not zscore, iqr or both")
        if self.action not in ("flag", "drop", "halt"):
            raise ConfigError(f"outlier action {self.action!r} is not flag, drop or halt")


@numba.njit(cache=True, nogil=True)
def _outlier_kernel(
    price: np.ndarray,
    ring: np.ndarray,
    state: np.ndarray,
    quart: np.ndarray,
    z: float,
    iqr_k: float,
    use_z: bool,
    use_iqr: bool,
    min_count: int,
    refresh: int,
    min_rel: float,
) -> np.ndarray:
    """Flag outliers in ``price``; ``ring``/``state``/``quart`` carry the window across calls.

    state = [count, head, sum, sumsq, since_refresh]; quart = [q1, q3].
    """
    w = ring.shape[0]
    out = np.zeros(price.shape[0], np.bool_)
    count = int(state[0])
    head = int(state[1])
    s = state[2]
    ss = state[3]
    since = int(state[4])
    for i in range(price.shape[0]):
        p = price[i]
        if not np.isfinite(p) or p <= 0.0:
            out[i] = True
            continue
        if count >= min_count and abs(p - s / count) > min_rel * abs(s / count):
            bad = False
            if use_z:
                mean = s / count
                var = ss / count - mean * mean
                std = np.sqrt(var) if var > 0.0 else 0.0
                # a flat window (std 0) judges by a relative floor instead of flagging all moves
                floor = 1e-6 * abs(mean)
                if abs(p - mean) > z * max(std, floor):
                    bad = True
            if use_iqr and not bad:
                if since >= refresh or quart[0] == 0.0:
                    buf = ring[:count].copy()
                    quart[0] = np.percentile(buf, 25.0)
                    quart[1] = np.percentile(buf, 75.0)
                    since = 0
                iqr = max(quart[1] - quart[0], 1e-6 * abs(quart[1]))
                if p < quart[0] - iqr_k * iqr or p > quart[1] + iqr_k * iqr:
                    bad = True
            if bad:
                out[i] = True
                continue
        # accept: into the window
        if count < w:
            ring[count] = p
            count += 1
        else:
            old = ring[head]
            s -= old
            ss -= old * old
            ring[head] = p
            head = (head + 1) % w
        s += p
        ss += p * p
        since += 1
    state[0] = count
    state[1] = head
    state[2] = s
    state[3] = ss
    state[4] = since
    return out


class _Window:
    __slots__ = ("quart", "ring", "state")

    def __init__(self, size: int) -> None:
        self.ring = np.zeros(size, np.float64)
        self.state = np.zeros(5, np.float64)
        self.quart = np.zeros(2, np.float64)


class OutlierFilter:
    """Rolling z-score / IQR outlier test per (venue, symbol); see the module doc.

    Attributes
    ----------
    flagged
        Outliers seen per ``(venue, symbol)``.
    halted
        Symbols stopped by the ``halt`` action.
    """

    def __init__(self, config: OutlierConfig | None = None) -> None:
        self.config = config or OutlierConfig()
        self._windows: dict[tuple[str, str], _Window] = {}
        self.flagged: dict[tuple[str, str], int] = {}
        self.halted: set[tuple[str, str]] = set()

    def mask(self, batch: TradeBatch) -> np.ndarray:
        """The outlier mask of ``batch`` (True: outlier); updates the window."""
        key = (batch.venue, batch.symbol)
        win = self._windows.get(key)
        if win is None:
            win = self._windows[key] = _Window(self.config.window)
        c = self.config
        out: np.ndarray = _outlier_kernel(
            batch.price, win.ring, win.state, win.quart, c.z, c.iqr_k,
            c.method != "iqr", c.method != "zscore", c.min_count, c.refresh, c.min_rel,
        )  # fmt: skip
        n = int(out.sum())
        if n:
            self.flagged[key] = self.flagged.get(key, 0) + n
            first = int(np.argmax(out))
            logger.warning(
                "%s %s: %d outlier trade(s), first id %s price %r",
                batch.venue, batch.symbol, n, batch.trade_id[first], float(batch.price[first]),
            )  # fmt: skip
        return out

    def apply(self, batch: TradeBatch) -> tuple[TradeBatch, np.ndarray]:
        """Run the test and the configured action: ``(batch to pass on, outlier mask of the
        input)``. ``flag`` passes everything; ``drop`` the clean rows; ``halt`` the rows
        before the first outlier, then nothing for that symbol.
        """
        key = (batch.venue, batch.symbol)
        if key in self.halted:
            return batch.take(np.zeros(len(batch), np.bool_)), np.zeros(len(batch), np.bool_)
        out = self.mask(batch)
        action = self.config.action
        if action == "flag" or not out.any():
            return batch, out
        if action == "drop":
            return batch.take(~out), out
        first = int(np.argmax(out))
        self.halted.add(key)
        logger.error("%s %s halted at an outlier (trade %s)", *key, batch.trade_id[first])
        return batch.take(np.arange(first)), out

    def resume(self, venue: str, symbol: str) -> None:
        """Let a halted symbol through again."""
        self.halted.discard((venue, symbol))


class Deduplicator:
    """Drops trades already seen, by (venue, symbol, trade id).

    Memory is bounded: ids live in two generations of ``capacity // 2`` each (the older one
    is forgotten when the newer fills), so at least the last ``capacity // 2`` ids per symbol
    are always remembered. The common case, a batch of new distinct ids, is pure set algebra.
    """

    def __init__(self, capacity: int = 200_000) -> None:
        self.capacity = capacity
        self._current: dict[tuple[str, str], set[str]] = {}
        self._previous: dict[tuple[str, str], set[str]] = {}
        self.duplicates: dict[tuple[str, str], int] = {}

    def fresh_mask(self, batch: TradeBatch) -> np.ndarray:
        """True for rows not seen before (also within the batch); remembers them."""
        key = (batch.venue, batch.symbol)
        current = self._current.setdefault(key, set())
        previous = self._previous.setdefault(key, set())
        ids = batch.trade_id.tolist()
        unique = set(ids)
        if len(unique) == len(ids) and unique.isdisjoint(current) and unique.isdisjoint(previous):
            mask = np.ones(len(ids), np.bool_)
        else:
            mask = np.empty(len(ids), np.bool_)
            seen_now: set[str] = set()
            for i, tid in enumerate(ids):
                fresh = tid not in current and tid not in previous and tid not in seen_now
                mask[i] = fresh
                seen_now.add(tid)
        current |= unique
        if len(current) >= self.capacity // 2:
            self._previous[key] = current
            self._current[key] = set()
        dup = len(ids) - int(mask.sum())
        if dup:
            self.duplicates[key] = self.duplicates.get(key, 0) + dup
        return mask

    def apply(self, batch: TradeBatch) -> TradeBatch:
        """``batch`` without the trades seen before."""
        mask = self.fresh_mask(batch)
        return batch if mask.all() else batch.take(mask)


class TradeIdGaps:
    """Detects lost trades from numeric consecutive trade ids (per venue and symbol).

    :meth:`check` returns the missing id ranges ``[(first_missing, last_missing), ...]``; ids
    that are not integers (Bybit's) are skipped.
    """

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], int] = {}
        self.missing: dict[tuple[str, str], int] = {}

    def check(self, batch: TradeBatch) -> list[tuple[int, int]]:
        """Missing id ranges before and inside ``batch``."""
        if len(batch) == 0:
            return []
        try:
            ids = np.fromiter(map(int, batch.trade_id.tolist()), np.int64, len(batch))
        except (ValueError, OverflowError):
            return []
        key = (batch.venue, batch.symbol)
        last = self._last.get(key)
        prev = np.empty_like(ids)
        prev[0] = ids[0] - 1 if last is None else last
        prev[1:] = ids[:-1]
        jumps = np.nonzero(ids > prev + 1)[0]
        gaps = [(int(prev[j] + 1), int(ids[j] - 1)) for j in jumps]
        self._last[key] = max(int(ids.max()), last if last is not None else int(ids.max()))
        if gaps:
            self.missing[key] = self.missing.get(key, 0) + sum(b - a + 1 for a, b in gaps)
        return gaps


class LiveCVD:
    """Cumulative volume delta per (venue, symbol): the sum of ``amount * side``."""

    def __init__(self) -> None:
        self.cvd: dict[tuple[str, str], float] = {}
        self.unknown_side: dict[tuple[str, str], int] = {}

    def update(self, batch: TradeBatch) -> np.ndarray:
        """Add ``batch``; return the CVD after each of its trades."""
        key = (batch.venue, batch.symbol)
        path = np.cumsum(batch.amount * batch.side) + self.cvd.get(key, 0.0)
        if len(path):
            self.cvd[key] = float(path[-1])
        unknown = int((batch.side == 0).sum())
        if unknown:
            self.unknown_side[key] = self.unknown_side.get(key, 0) + unknown
        return path

    def value(self, venue: str, symbol: str) -> float:
        """The CVD so far (0 before any trade)."""
        return self.cvd.get((venue, symbol), 0.0)
