"""Bar (candle) and the columnar :class:`BarArrays` the engine runs on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tradeloop.core.time import to_iso

__all__ = ["Bar", "BarArrays"]


@dataclass(frozen=True, slots=True)
class Bar:
    """One OHLCV bar, stamped by its open time ``ts`` (UTC ns).

    ``open_interest`` and ``cvd`` (cumulative volume delta) are optional order-flow fields.
    """

    symbol: str
    timeframe: str
    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    open_interest: float | None = None
    cvd: float | None = None

    @property
    def is_bullish(self) -> bool:
        """True when the bar closed above its open."""
        return self.close > self.open

    @property
    def is_bearish(self) -> bool:
        """True when the bar closed below its open."""
        return self.close < self.open

    @property
    def range(self) -> float:
        """High minus low."""
        return self.high - self.low

    @property
    def body(self) -> float:
        """Absolute distance between open and close."""
        return abs(self.close - self.open)

    @property
    def time_iso(self) -> str:
        """Open time as ISO-8601 UTC."""
        return to_iso(self.ts)


class BarArrays:
    """Columnar OHLCV for one symbol and timeframe: int64 ns open times and float64 columns.

    Arrays are read-only numpy arrays; slicing returns views, never copies.
    """

    __slots__ = (
        "close",
        "cvd",
        "high",
        "low",
        "open",
        "open_interest",
        "symbol",
        "timeframe",
        "ts",
        "volume",
    )

    def __init__(
        self,
        symbol: str,
        timeframe: str,
        ts: np.ndarray,
        open: np.ndarray,
        high: np.ndarray,
        low: np.ndarray,
        close: np.ndarray,
        volume: np.ndarray,
        open_interest: np.ndarray | None = None,
        cvd: np.ndarray | None = None,
    ) -> None:
        self.symbol = symbol
        self.timeframe = timeframe
        self.ts = _readonly(ts, np.int64)
        self.open = _readonly(open, np.float64)
        self.high = _readonly(high, np.float64)
        self.low = _readonly(low, np.float64)
        self.close = _readonly(close, np.float64)
        self.volume = _readonly(volume, np.float64)
        self.open_interest = None if open_interest is None else _readonly(open_interest, np.float64)
        self.cvd = None if cvd is None else _readonly(cvd, np.float64)

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def __repr__(self) -> str:
        span = f"{to_iso(int(self.ts[0]))} -> {to_iso(int(self.ts[-1]))}" if len(self) else "empty"
        return f"BarArrays({self.symbol} {self.timeframe}, {len(self)} bars, {span})"

    def slice(self, start: int, stop: int) -> BarArrays:
        """Return bars ``[start, stop)`` as views on the same memory."""
        return BarArrays(
            self.symbol,
            self.timeframe,
            self.ts[start:stop],
            self.open[start:stop],
            self.high[start:stop],
            self.low[start:stop],
            self.close[start:stop],
            self.volume[start:stop],
            None if self.open_interest is None else self.open_interest[start:stop],
            None if self.cvd is None else self.cvd[start:stop],
        )

    def bar(self, i: int) -> Bar:
        """Return bar ``i`` as a :class:`Bar`."""
        return Bar(
            self.symbol,
            self.timeframe,
            int(self.ts[i]),
            float(self.open[i]),
            float(self.high[i]),
            float(self.low[i]),
            float(self.close[i]),
            float(self.volume[i]),
            None if self.open_interest is None else float(self.open_interest[i]),
            None if self.cvd is None else float(self.cvd[i]),
        )


def _readonly(values: np.ndarray, dtype: type) -> np.ndarray:
    arr: np.ndarray = np.asarray(values, dtype=dtype)
    if arr.flags.writeable and arr.base is None:
        arr.flags.writeable = False
    elif arr.flags.writeable:
        arr = arr.view()
        arr.flags.writeable = False
    return arr
