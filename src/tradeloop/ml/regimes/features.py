"""Causal features of regime detectors: every row is computed from its own bar and the bars
before it, never a later one.

Each row function below reads a fixed window ending at the row, with the same operations for
every row, so the features of bars ``[0, t]`` are the same numbers whether the input ends at
``t`` or continues past it (the lookahead tests hold detections on truncated data equal to the
full run's). :func:`check_bars` refuses input a detector cannot use, naming the problem.

Feature columns
---------------
``ret``
    One-bar log return ``log(c_t / c_{t-1})``.
``vol``
    Standard deviation of the last ``window`` one-bar log returns.
``volume``
    ``log1p(volume)`` minus its mean over the last ``window`` bars (relative volume).
``ret_<w>``
    ``log(c_t / c_{t-w})`` for each ``w`` of ``horizons`` (the trend over ``w`` bars).
``vol_<w>``
    Standard deviation of the last ``w`` one-bar log returns.
``range``
    ``log(high / low)`` of the bar.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numba import njit

from tradeloop.core.bar import BarArrays
from tradeloop.core.errors import ConfigError, DataError

__all__ = [
    "BASE_FEATURES",
    "CLASSIFIER_FEATURES",
    "FeatureSpec",
    "check_bars",
    "compute_features",
    "ensure_finite",
    "feature_range",
]

_CODES: dict[FeatureSpec, tuple[np.ndarray, np.ndarray]] = {}

#: the HMM's emission features (seed 003: returns, volatility, volume)
BASE_FEATURES = ("ret", "vol", "volume")
#: the boosted-tree and LSTM classifiers' features: trends and volatilities over several
#: horizons, relative volume and the bar's range
CLASSIFIER_FEATURES = (
    "ret", "ret_5", "ret_20", "ret_60", "vol_5", "vol", "vol_60", "volume", "range",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """Which causal features a detector reads.

    Attributes
    ----------
    names
        Feature columns in order (see the module doc); ``ret_<w>`` and ``vol_<w>`` take any
        whole ``w >= 2``.
    window
        The window of ``vol`` and ``volume``.
    """

    names: tuple[str, ...] = BASE_FEATURES
    window: int = 20

    def __post_init__(self) -> None:
        if self.window < 2:
            raise ConfigError(f"feature window must be >= 2 bars, got {self.window}")
        if not self.names:
            raise ConfigError("a regime detector needs at least one feature")
        for name in self.names:
            _parse(name)  # raises for an unknown name

    @property
    def lookback(self) -> int:
        """Bars before a row that its features read (the warm-up: earlier rows are NaN)."""
        need = 1
        for name in self.names:
            kind, w = _parse(name, self.window)
            if kind in ("vol", "volume", "ret"):
                need = max(need, w)
        return need

    def to_dict(self) -> dict[str, object]:
        """Plain values (registry metadata)."""
        return {"names": list(self.names), "window": self.window}

    def codes(self) -> tuple[np.ndarray, np.ndarray]:
        """Kind codes and windows of the columns, for the compiled kernel (cached)."""
        cached = _CODES.get(self)
        if cached is None:
            cached = _CODES[self] = _codes(self)
        return cached


def _parse(name: str, window: int | None = None) -> tuple[str, int]:
    """``(kind, window)`` of a feature name; ``window`` for the names without a suffix."""
    if name == "ret":
        return "ret", 1
    if name == "range":
        return "range", 0
    if name in ("vol", "volume"):
        return name, window if window is not None else 20
    head, _, tail = name.partition("_")
    if head in ("ret", "vol") and tail.isdigit() and int(tail) >= 2:
        return head, int(tail)
    raise ConfigError(
        f"unknown regime feature {name!r}; use ret, vol, volume, range, ret_<w> or vol_<w>"
    )


def check_bars(bars: BarArrays, *, min_bars: int = 2, what: str = "regime detection") -> None:
    """Refuse bars a regime detector cannot use.

    Raises
    ------
    DataError
        For too few bars, a NaN or non-positive price, a NaN or negative volume (naming the
        row and field) or constant prices.
    """
    n = len(bars)
    if n < min_bars:
        raise DataError(
            f"too little data for {what}: {n} bars, need at least {min_bars}",
            file=bars.symbol,
        )
    for field, values in (("high", bars.high), ("low", bars.low), ("close", bars.close)):
        bad = ~(np.isfinite(values) & (values > 0))
        if bad.any():
            row = int(np.argmax(bad))
            raise DataError(
                f"{field} must be a positive number, got {values[row]!r}",
                file=bars.symbol,
                row=row,
                field=field,
            )
    bad = ~(np.isfinite(bars.volume) & (bars.volume >= 0))
    if bad.any():
        row = int(np.argmax(bad))
        raise DataError(
            f"volume must be a number >= 0, got {bars.volume[row]!r}",
            file=bars.symbol,
            row=row,
            field="volume",
        )
    if n >= 2 and float(np.ptp(bars.close)) == 0.0:
        raise DataError(
            f"constant prices: every close is {bars.close[0]!r}, so returns and volatility "
            "carry no regime information",
            file=bars.symbol,
            field="close",
        )


_KINDS = {"ret": 0, "ret_w": 1, "vol": 2, "volume": 3, "range": 4}


def _codes(spec: FeatureSpec) -> tuple[np.ndarray, np.ndarray]:
    """Per column: the kind code and window (compiled kernels take plain arrays)."""
    kinds, wins = [], []
    for name in spec.names:
        kind, w = _parse(name, spec.window)
        code = _KINDS["ret_w" if kind == "ret" and w > 1 else kind]
        kinds.append(code)
        wins.append(w)
    return np.asarray(kinds, dtype=np.int64), np.asarray(wins, dtype=np.int64)


@njit(cache=True)
def _rows(
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
    kinds: np.ndarray,
    wins: np.ndarray,
    start: int,
    stop: int,
) -> np.ndarray:  # pragma: no cover - compiled
    """Feature rows ``[start, stop)``; each row reads only its own window of bars, with the
    same operations in the same order whatever ``start`` and ``stop`` are."""
    m = kinds.shape[0]
    out = np.empty((stop - start, m))
    for t in range(start, stop):
        r = t - start
        for c in range(m):
            kind = kinds[c]
            w = wins[c]
            v = np.nan
            if kind == 0:
                if t >= 1:
                    v = math.log(close[t]) - math.log(close[t - 1])
            elif kind == 1:
                if t >= w:
                    v = math.log(close[t]) - math.log(close[t - w])
            elif kind == 2:
                if t >= w:
                    total = 0.0
                    for j in range(t - w + 1, t + 1):
                        total += math.log(close[j]) - math.log(close[j - 1])
                    mean = total / w
                    sq = 0.0
                    for j in range(t - w + 1, t + 1):
                        d = math.log(close[j]) - math.log(close[j - 1]) - mean
                        sq += d * d
                    v = math.sqrt(sq / w)
            elif kind == 3:
                if t >= w - 1:
                    total = 0.0
                    for j in range(t - w + 1, t + 1):
                        total += math.log1p(volume[j])
                    v = math.log1p(volume[t]) - total / w
            else:
                v = math.log(high[t] / low[t])
            out[r, c] = v
    return out


def compute_features(bars: BarArrays, spec: FeatureSpec) -> np.ndarray:
    """Return the ``(len(bars), len(spec.names))`` feature matrix (NaN in warm-up rows).

    Row ``t`` depends on bars ``[t - spec.lookback, t]`` only.
    """
    return feature_range(bars, spec, 0, len(bars))


def feature_range(bars: BarArrays, spec: FeatureSpec, start: int, stop: int) -> np.ndarray:
    """Feature rows ``[start, stop)`` of ``bars`` (equal to those rows of
    :func:`compute_features`, computed without touching the other rows)."""
    kinds, wins = spec.codes()
    return _rows(bars.high, bars.low, bars.close, bars.volume, kinds, wins, start, stop)


def valid_from(spec: FeatureSpec) -> int:
    """The first row whose features are all defined."""
    return spec.lookback


def ensure_finite(rows: np.ndarray, names: Sequence[str], first_row: int, symbol: str) -> None:
    """Raise for a NaN/inf feature after the warm-up, naming the row and feature."""
    bad = ~np.isfinite(rows)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise DataError(
            f"feature {names[int(c)]!r} is not a finite number ({rows[r, c]!r}); check the "
            "bars around this row",
            file=symbol,
            row=int(first_row + r),
            field=names[int(c)],
        )
