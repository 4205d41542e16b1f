"""Named, versioned feature sets computed by one code path for training and inference.

:meth:`FeatureSet.compute` turns OHLCV arrays into a bar-feature matrix; training calls it on
the whole history, and :class:`OnlineFeatures` calls the very same function on a rolling
buffer of the last ``lookback`` bars and takes the last row. Every feature depends on a finite
window, or (EMA-based RSI/MACD) on a geometrically decaying past whose weight after
``lookback`` bars is below float precision, so a bar's batch and online rows agree.
Signal attributes (side, strength) are appended per event by :meth:`FeatureSet.with_signal`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from tradeloop.core.bar import Bar, BarArrays
from tradeloop.core.errors import ConfigError
from tradeloop.indicators import atr, bollinger, macd, rolling_zscore, rsi
from tradeloop.ml.labels import rolling_volatility
from tradeloop.ml.toxicity import windowed_imbalance

__all__ = ["DEFAULT_FEATURE_SET", "FeatureSet", "OnlineFeatures", "feature_set_by_name"]

_NS_HOUR = 3_600_000_000_000
_NS_DAY = 24 * _NS_HOUR

_BAR_FEATURES = (
    "ret_1",
    "ret_4",
    "ret_16",
    "ret_64",
    "vol_20",
    "vol_100",
    "volume_z_50",
    "range_atr_14",
    "rsi_14",
    "macd_hist",
    "bb_pos_20",
    "hour_sin",
    "hour_cos",
    "dow_sin",
    "dow_cos",
    "vpin_50",
)
_SIGNAL_FEATURES = ("side", "strength")


def _ret(close: np.ndarray, h: int) -> np.ndarray:
    out = np.full(close.shape[0], np.nan)
    out[h:] = close[h:] / close[:-h] - 1.0
    return out


@dataclass(frozen=True, slots=True)
class FeatureSet:
    """A named, versioned list of features.

    Attributes
    ----------
    name, version
        Identity stored with every model; a model refuses a different feature set.
    bar_features
        Columns computed from bars by :meth:`compute`.
    signal_features
        Columns taken from the primary signal (``side``, ``strength``).
    lookback
        Bars the online buffer keeps.
    """

    name: str = "meta_v1"
    version: int = 1
    bar_features: tuple[str, ...] = _BAR_FEATURES
    signal_features: tuple[str, ...] = _SIGNAL_FEATURES
    lookback: int = 320

    @property
    def key(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"

    @property
    def columns(self) -> tuple[str, ...]:
        """Every model input column, bar features first."""
        return self.bar_features + self.signal_features

    @property
    def warmup(self) -> int:
        """Bars before every feature is defined."""
        return 100

    def compute(
        self,
        ts: np.ndarray,
        high: np.ndarray,
        low: np.ndarray,
        close: np.ndarray,
        volume: np.ndarray,
    ) -> np.ndarray:
        """Return the bar-feature matrix, shape ``(n_bars, len(bar_features))`` (NaN in warm-up).

        Every value at bar ``i`` uses bars up to ``i`` only.
        """
        close = np.asarray(close, dtype=np.float64)
        high = np.asarray(high, dtype=np.float64)
        low = np.asarray(low, dtype=np.float64)
        volume = np.asarray(volume, dtype=np.float64)
        ts = np.asarray(ts, dtype=np.int64)
        cols: dict[str, np.ndarray] = {}
        for h in (1, 4, 16, 64):
            cols[f"ret_{h}"] = _ret(close, h)
        cols["vol_20"] = rolling_volatility(close, 20)
        cols["vol_100"] = rolling_volatility(close, 100)
        cols["volume_z_50"] = rolling_zscore(volume, 50)
        a = atr(high, low, close, 14)
        with np.errstate(divide="ignore", invalid="ignore"):
            cols["range_atr_14"] = np.where(a > 0, (high - low) / a, 0.0)
            cols["rsi_14"] = rsi(close, 14) / 100.0
            cols["macd_hist"] = macd(close)[2] / close
            mid, upper, lower = bollinger(close, 20)
            width = upper - lower
            cols["bb_pos_20"] = np.where(width > 0, (close - mid) / width, 0.0)
        hour = (ts % _NS_DAY) / _NS_HOUR
        dow = ((ts // _NS_DAY) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
        cols["hour_sin"] = np.sin(2 * np.pi * hour / 24)
        cols["hour_cos"] = np.cos(2 * np.pi * hour / 24)
        cols["dow_sin"] = np.sin(2 * np.pi * dow / 7)
        cols["dow_cos"] = np.cos(2 * np.pi * dow / 7)
        cols["vpin_50"] = windowed_imbalance(close, volume, 50)
        out = np.empty((close.shape[0], len(self.bar_features)))
        for k, name in enumerate(self.bar_features):
            if name not in cols:
                raise ConfigError(f"feature set {self.key}: unknown feature {name!r}")
            out[:, k] = cols[name]
        return out

    def compute_bars(self, bars: BarArrays) -> np.ndarray:
        """Return :meth:`compute` of a :class:`BarArrays`."""
        return self.compute(bars.ts, bars.high, bars.low, bars.close, bars.volume)

    def with_signal(
        self, bar_rows: np.ndarray, side: np.ndarray | float, strength: np.ndarray | float = 1.0
    ) -> np.ndarray:
        """Append the signal columns to bar-feature rows (1-D row or 2-D matrix)."""
        rows = np.atleast_2d(bar_rows)
        n = rows.shape[0]
        extra = np.empty((n, 2))
        extra[:, 0] = side
        extra[:, 1] = strength
        return np.hstack([rows, extra])

    def to_dict(self) -> dict[str, object]:
        """Return a JSON-able description."""
        return {
            "name": self.name,
            "version": self.version,
            "bar_features": list(self.bar_features),
            "signal_features": list(self.signal_features),
            "lookback": self.lookback,
        }


DEFAULT_FEATURE_SET = FeatureSet()
_SETS: Mapping[str, FeatureSet] = {DEFAULT_FEATURE_SET.key: DEFAULT_FEATURE_SET}


def feature_set_by_name(key: str) -> FeatureSet:
    """Return a registered feature set by ``name@version`` (or bare name, newest version).

    Raises
    ------
    ConfigError
        For an unknown feature set.
    """
    if key in _SETS:
        return _SETS[key]
    found = sorted((fs for fs in _SETS.values() if fs.name == key), key=lambda f: f.version)
    if not found:
        raise ConfigError(f"unknown feature set {key!r}; known: {', '.join(_SETS)}")
    return found[-1]


class OnlineFeatures:
    """Rolling buffer of recent bars; the latest bar's features via :meth:`FeatureSet.compute`.

    The row is cached per bar, so many signals on one bar pay for the computation once.
    """

    __slots__ = ("_cache_n", "_cache_row", "_n", "_seen", "_size", "_store", "_ts", "feature_set")

    def __init__(self, feature_set: FeatureSet = DEFAULT_FEATURE_SET) -> None:
        self.feature_set = feature_set
        self._size = feature_set.lookback
        # rows high, low, close, volume; twice the size so appends rarely shift
        self._store = np.zeros((4, 2 * self._size))
        self._ts = np.zeros(2 * self._size, np.int64)
        self._n = 0
        self._seen = 0  # bars ever added: the cache key (``_n`` drops when the buffer shifts)
        self._cache_n = -1
        self._cache_row = np.full(len(feature_set.bar_features), np.nan)

    def __len__(self) -> int:
        return min(self._n, self._size)

    def update(self, bar: Bar) -> None:
        """Append one completed bar."""
        pos = self._n if self._n < 2 * self._size else None
        if pos is None:
            self._store[:, : self._size - 1] = self._store[:, -(self._size - 1) :]
            self._ts[: self._size - 1] = self._ts[-(self._size - 1) :]
            self._n = self._size - 1
            pos = self._n
        self._store[:, pos] = (bar.high, bar.low, bar.close, bar.volume)
        self._ts[pos] = bar.ts
        self._n += 1
        self._seen += 1

    def latest(self) -> np.ndarray:
        """Return the bar features of the latest bar (NaN row before any bar)."""
        if self._n == 0:
            return self._cache_row
        if self._cache_n != self._seen:
            lo = max(0, self._n - self._size)
            s = self._store[:, lo : self._n]
            ts = self._ts[lo : self._n]
            self._cache_row = self.feature_set.compute(ts, s[0], s[1], s[2], s[3])[-1]
            self._cache_n = self._seen
        return self._cache_row
