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

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from tradeloop.core.bar import BarArrays
from tradeloop.core.errors import ConfigError, DataError

__all__ = [
    "BASE_FEATURES",
    "CLASSIFIER_FEATURES",
    "FeatureSpec",
    "check_bars",
    "compute_features",
    "ensure_finite",
]

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


def _window_sum(x: np.ndarray, w: int) -> np.ndarray:
    """Sum of each length-``w`` window, added in window order (so a row's value never depends
    on how many rows the input has: numpy's reductions may change their order with shape)."""
    m = x.shape[0] - w + 1
    total = x[:m].copy()
    for j in range(1, w):
        total += x[j : j + m]
    return total


def _rolling_mean(x: np.ndarray, w: int) -> np.ndarray:
    """Mean of the last ``w`` values at each row (NaN before)."""
    out = np.full(x.shape[0], np.nan)
    if x.shape[0] >= w:
        out[w - 1 :] = _window_sum(x, w) / w
    return out


def _rolling_std(x: np.ndarray, w: int) -> np.ndarray:
    """Standard deviation (ddof=0) of the last ``w`` values at each row (NaN before)."""
    out = np.full(x.shape[0], np.nan)
    if x.shape[0] >= w:
        mean = _window_sum(x, w) / w
        win = sliding_window_view(x, w)
        out[w - 1 :] = np.sqrt(_window_sum_2d((win - mean[:, None]) ** 2) / w)
    return out


def _window_sum_2d(rows: np.ndarray) -> np.ndarray:
    """Row sums of a 2-D array, column by column in order (shape-independent rounding)."""
    total = rows[:, 0].copy()
    for j in range(1, rows.shape[1]):
        total += rows[:, j]
    return total


def compute_features(bars: BarArrays, spec: FeatureSpec) -> np.ndarray:
    """Return the ``(len(bars), len(spec.names))`` feature matrix (NaN in warm-up rows).

    Row ``t`` depends on bars ``[t - spec.lookback, t]`` only.
    """
    return feature_rows(bars.high, bars.low, bars.close, bars.volume, spec)


def feature_rows(
    high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray, spec: FeatureSpec
) -> np.ndarray:
    """:func:`compute_features` on plain arrays."""
    n = close.shape[0]
    logc = np.log(close)
    ret = np.full(n, np.nan)
    if n >= 2:
        ret[1:] = logc[1:] - logc[:-1]
    logv = np.log1p(volume)
    cols: list[np.ndarray] = []
    for name in spec.names:
        kind, w = _parse(name, spec.window)
        if kind == "ret" and w == 1:
            cols.append(ret)
        elif kind == "ret":
            col = np.full(n, np.nan)
            if n > w:
                col[w:] = logc[w:] - logc[:-w]
            cols.append(col)
        elif kind == "vol":
            col = np.full(n, np.nan)
            if n >= 2:
                col[1:] = _rolling_std(ret[1:], w)
            cols.append(col)
        elif kind == "volume":
            cols.append(logv - _rolling_mean(logv, w))
        else:  # range
            cols.append(np.log(high / low))
    return np.column_stack(cols) if cols else np.empty((n, 0))


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
