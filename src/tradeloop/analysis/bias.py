"""Behavioural bias checks on a trade history: FOMO, revenge trading, overconfidence, overtrading.

A systematic strategy has no emotions, but its rules can still behave like a trader who has
them, and a hand-traded or discretionary history certainly can. Each check is a pattern over
the trades (vectorized, so it is cheap on long histories) and every finding names the trades
involved. Thresholds live in :class:`BiasConfig`.

*Size* below is the entry notional as a fraction of the equity just before the entry when the
equity curve is given (so compounding a fixed fraction is not mistaken for growing size), and
the plain entry notional otherwise.

* **FOMO**: an entry after an unusually large move in the entry direction: the move of the
  ``fomo_lookback_bars`` bars before the entry, as a log return, exceeds ``fomo_zscore``
  standard deviations of all such moves in the price series (up for longs, down for shorts).
* **Revenge trading**: an entry within ``revenge_window_bars`` bars after a losing trade
  closed, with a size at least ``revenge_size_ratio`` times that loser's.
* **Overconfidence**: after ``overconfidence_streak`` or more consecutive winners, the next
  entry's size is at least ``overconfidence_size_ratio`` times the streak's average size.
* **Overtrading**: a burst of entries: a sliding window of ``overtrading_window_bars`` bars
  (starting at an entry) holding at least ``overtrading_min_trades`` entries and more than
  ``overtrading_factor`` times the run's average entries per window length; overlapping
  windows form one finding.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from tradeloop.analysis.trades import TradeColumns, equity_before, trade_columns
from tradeloop.core.bar import BarArrays
from tradeloop.core.errors import ConfigError
from tradeloop.core.position import Trade
from tradeloop.core.time import to_iso

__all__ = [
    "BiasConfig",
    "BiasFinding",
    "BiasKind",
    "BiasReport",
    "detect_biases",
    "detect_fomo",
    "detect_overconfidence",
    "detect_overtrading",
    "detect_revenge",
]


class BiasKind(StrEnum):
    """The behavioural patterns checked."""

    FOMO = "fomo"
    REVENGE = "revenge"
    OVERCONFIDENCE = "overconfidence"
    OVERTRADING = "overtrading"


@dataclass(frozen=True, slots=True)
class BiasConfig:
    """Thresholds of the bias checks (see the module docstring for each rule).

    Attributes
    ----------
    fomo_lookback_bars
        Bars of price move measured before an entry.
    fomo_zscore
        Move size, in standard deviations of all such moves, that counts as chasing.
    revenge_window_bars
        How soon after a losing exit a re-entry counts as revenge.
    revenge_size_ratio
        Minimum size of the re-entry relative to the losing trade.
    overconfidence_streak
        Consecutive winners that make a streak.
    overconfidence_size_ratio
        Minimum size of the next entry relative to the streak's average size.
    overtrading_window_bars
        Length of the windows entries are counted in.
    overtrading_factor
        A window is flagged above this multiple of the average entries per window...
    overtrading_min_trades
        ...and with at least this many entries.
    """

    fomo_lookback_bars: int = 10
    fomo_zscore: float = 2.5
    revenge_window_bars: int = 3
    revenge_size_ratio: float = 1.2
    overconfidence_streak: int = 3
    overconfidence_size_ratio: float = 1.5
    overtrading_window_bars: int = 24
    overtrading_factor: float = 3.0
    overtrading_min_trades: int = 5

    def __post_init__(self) -> None:
        for name in (
            "fomo_lookback_bars",
            "revenge_window_bars",
            "overconfidence_streak",
            "overtrading_window_bars",
            "overtrading_min_trades",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"BiasConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in (
            "fomo_zscore",
            "revenge_size_ratio",
            "overconfidence_size_ratio",
            "overtrading_factor",
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"BiasConfig.{name} must be > 0, got {value}")


@dataclass(frozen=True, slots=True)
class BiasFinding:
    """One occurrence of a pattern: its kind, time, the trades involved and why."""

    kind: BiasKind
    ts: int
    trade_ids: tuple[str, ...]
    message: str
    score: float

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict (``time`` in ISO-8601)."""
        return {
            "kind": self.kind.value,
            "time": to_iso(self.ts),
            "trade_ids": list(self.trade_ids),
            "message": self.message,
            "score": self.score,
        }


@dataclass(frozen=True, slots=True)
class BiasReport:
    """All findings, and which checks could run (FOMO needs prices)."""

    config: BiasConfig
    findings: tuple[BiasFinding, ...]
    checked: dict[str, bool]

    def by_kind(self, kind: BiasKind | str) -> list[BiasFinding]:
        """Return the findings of one kind."""
        return [f for f in self.findings if f.kind == kind]

    def counts(self) -> dict[str, int]:
        """Return the number of findings per kind (every kind listed)."""
        return {k.value: len(self.by_kind(k)) for k in BiasKind}

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict."""
        return {
            "config": asdict(self.config),
            "checked": dict(self.checked),
            "counts": self.counts(),
            "findings": [f.to_dict() for f in self.findings],
        }


# --------------------------------------------------------------------------- helpers


def _sizes(
    cols: TradeColumns,
    equity_ts: np.ndarray | None,
    equity: np.ndarray | None,
    initial_equity: float | None,
) -> np.ndarray:
    notional = cols.notional
    if equity_ts is None or equity is None or not len(equity_ts):
        return notional
    start = float(initial_equity) if initial_equity is not None else float(equity[0])
    before = equity_before(cols.entry_ts, equity_ts, equity, start)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(before > 0, notional / before, notional)


def _ids(cols: TradeColumns, idx: np.ndarray | Sequence[int]) -> tuple[str, ...]:
    return tuple(str(cols.ids[i]) for i in idx)


# --------------------------------------------------------------------------- checks


def detect_fomo(
    cols: TradeColumns,
    prices: Mapping[str, BarArrays],
    bar_ns: int,
    config: BiasConfig,
) -> list[BiasFinding]:
    """Entries after an unusually large move in the entry direction (see module docstring)."""
    findings: list[BiasFinding] = []
    for symbol, bars in prices.items():
        mine = np.flatnonzero(cols.symbols == symbol)
        if not mine.size or len(bars) < 3:
            continue
        ts = bars.ts
        step = int(np.median(np.diff(ts[: min(len(ts), 10_000)])))
        lookback = max(1, round(config.fomo_lookback_bars * bar_ns / max(step, 1)))
        if len(bars) <= lookback + 1:
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            log_close = np.log(bars.close)
        moves = log_close[lookback:] - log_close[:-lookback]
        moves = moves[np.isfinite(moves)]
        sd = float(moves.std()) if moves.size > 1 else 0.0
        if not sd > 0:
            continue
        # the last bar that opened before the entry: its close is the latest price known
        last = np.searchsorted(ts, cols.entry_ts[mine], side="left") - 1
        ok = last - lookback >= 0
        sel, last = mine[ok], last[ok]
        move = log_close[last] - log_close[last - lookback]
        z = cols.direction[sel] * move / sd
        for k in np.flatnonzero(z > config.fomo_zscore):
            i = int(sel[k])
            side = "long" if cols.direction[i] > 0 else "short"
            findings.append(
                BiasFinding(
                    BiasKind.FOMO,
                    int(cols.entry_ts[i]),
                    _ids(cols, [i]),
                    f"{side} entry on {symbol} after a {math.expm1(move[k]):+.2%} move over "
                    f"{config.fomo_lookback_bars} bars ({z[k]:.1f} sd)",
                    float(z[k]),
                )
            )
    return findings


def detect_revenge(
    cols: TradeColumns, sizes: np.ndarray, bar_ns: int, config: BiasConfig
) -> list[BiasFinding]:
    """Bigger re-entries soon after a losing trade closed (see module docstring)."""
    losers = np.flatnonzero(cols.closed & (cols.pnl < 0))
    if not losers.size:
        return []
    losers = losers[np.argsort(cols.exit_ts[losers], kind="stable")]
    loss_exit = cols.exit_ts[losers]
    k = np.searchsorted(loss_exit, cols.entry_ts, side="right") - 1
    has = k >= 0
    j = np.flatnonzero(has)
    i = losers[k[has]]
    gap = cols.entry_ts[j] - cols.exit_ts[i]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(sizes[i] > 0, sizes[j] / sizes[i], 0.0)
    hit = (
        (j != i)
        & (gap <= config.revenge_window_bars * bar_ns)
        & (ratio >= config.revenge_size_ratio)
    )
    findings = []
    for a, b, r, g in zip(i[hit], j[hit], ratio[hit], gap[hit], strict=True):
        findings.append(
            BiasFinding(
                BiasKind.REVENGE,
                int(cols.entry_ts[b]),
                _ids(cols, [int(a), int(b)]),
                f"re-entry {g / bar_ns:.0f} bar(s) after a {cols.pnl[a]:,.2f} loss with "
                f"{r:.2f}x the size",
                float(r),
            )
        )
    return findings


def detect_overconfidence(
    cols: TradeColumns, sizes: np.ndarray, config: BiasConfig
) -> list[BiasFinding]:
    """Size jumps after a winning streak (see module docstring)."""
    closed = np.flatnonzero(cols.closed)
    if closed.size < config.overconfidence_streak:
        return []
    closed = closed[np.argsort(cols.exit_ts[closed], kind="stable")]
    wins = cols.pnl[closed] > 0
    # streak[k] = consecutive wins ending at closed[k] (in exit order)
    run_start = np.maximum.accumulate(np.where(~wins, np.arange(wins.size), -1))
    streak = np.where(wins, np.arange(wins.size) - run_start, 0)
    # the last trade closed before each entry
    k = np.searchsorted(cols.exit_ts[closed], cols.entry_ts, side="right") - 1
    cand = np.flatnonzero((k >= 0) & (streak[np.maximum(k, 0)] >= config.overconfidence_streak))
    if not cand.size:
        return []
    # only the first entry after each streak end
    order = cand[np.argsort(cols.entry_ts[cand], kind="stable")]
    _, first = np.unique(k[order], return_index=True)
    cum = np.concatenate(([0.0], np.cumsum(sizes[closed])))
    findings = []
    for j in order[first]:
        end = int(k[j])
        length = int(streak[end])
        streak_idx = closed[end - length + 1 : end + 1]
        avg = (cum[end + 1] - cum[end + 1 - length]) / length
        ratio = sizes[j] / avg if avg > 0 else 0.0
        if ratio >= config.overconfidence_size_ratio:
            findings.append(
                BiasFinding(
                    BiasKind.OVERCONFIDENCE,
                    int(cols.entry_ts[j]),
                    _ids(cols, [*streak_idx.tolist(), int(j)]),
                    f"entry with {ratio:.2f}x the size after {length} winners in a row",
                    float(ratio),
                )
            )
    return findings


def detect_overtrading(
    cols: TradeColumns,
    bar_ns: int,
    config: BiasConfig,
    *,
    start: int | None = None,
    end: int | None = None,
) -> list[BiasFinding]:
    """Bursts of entries far above the run's norm (see module docstring).

    Every entry opens a sliding window of ``overtrading_window_bars`` bars; windows that
    qualify and overlap are merged into one finding that names all their trades. The norm is
    the run's entries per window length over ``start``..``end`` (default: first to last entry).
    """
    n = len(cols)
    if not n:
        return []
    order = np.argsort(cols.entry_ts, kind="stable")
    entries = cols.entry_ts[order]
    window = config.overtrading_window_bars * bar_ns
    t0 = int(entries[0]) if start is None else min(int(start), int(entries[0]))
    t1 = int(entries[-1]) if end is None else max(int(end), int(entries[-1]))
    norm = n * window / max(t1 - t0 + bar_ns, window)
    stops = np.searchsorted(entries, entries + window, side="left")
    counts = stops - np.arange(n)
    flagged = np.flatnonzero(
        (counts >= config.overtrading_min_trades) & (counts > config.overtrading_factor * norm)
    )
    findings = []
    k = 0
    while k < flagged.size:
        first = int(flagged[k])
        stop, peak = int(stops[first]), int(counts[first])
        k += 1
        while k < flagged.size and flagged[k] < stop:  # overlapping windows: one burst
            stop = max(stop, int(stops[flagged[k]]))
            peak = max(peak, int(counts[flagged[k]]))
            k += 1
        members = order[first:stop]
        findings.append(
            BiasFinding(
                BiasKind.OVERTRADING,
                int(entries[first]),
                _ids(cols, members),
                f"{peak} entries within {config.overtrading_window_bars} bars "
                f"({len(members)} in the burst; norm {norm:.2f} per window)",
                float(peak / norm) if norm > 0 else math.inf,
            )
        )
    return findings


def detect_biases(
    trades: Sequence[Trade] | TradeColumns,
    bar_ns: int,
    *,
    config: BiasConfig | None = None,
    prices: Mapping[str, BarArrays] | None = None,
    equity_ts: np.ndarray | None = None,
    equity: np.ndarray | None = None,
    initial_equity: float | None = None,
) -> BiasReport:
    """Run every bias check on ``trades`` and return the findings in time order.

    Parameters
    ----------
    trades
        The run's trades (closed and open).
    bar_ns
        Bar length of the run, the unit of every window.
    config
        Thresholds.
    prices
        Bars per symbol for the FOMO check (skipped, and reported as not checked, without).
    equity_ts, equity, initial_equity
        The equity curve, to measure sizes as a fraction of equity.
    """
    cfg = config or BiasConfig()
    cols = trades if isinstance(trades, TradeColumns) else trade_columns(trades)
    sizes = _sizes(cols, equity_ts, equity, initial_equity)
    findings: list[BiasFinding] = []
    if prices:
        findings += detect_fomo(cols, prices, bar_ns, cfg)
    findings += detect_revenge(cols, sizes, bar_ns, cfg)
    findings += detect_overconfidence(cols, sizes, cfg)
    span = (
        (int(equity_ts[0]), int(equity_ts[-1]))
        if equity_ts is not None and len(equity_ts)
        else (None, None)
    )
    findings += detect_overtrading(cols, bar_ns, cfg, start=span[0], end=span[1])
    findings.sort(key=lambda f: (f.ts, f.kind.value))
    checked = {k.value: True for k in BiasKind}
    checked[BiasKind.FOMO.value] = bool(prices)
    return BiasReport(cfg, tuple(findings), checked)
