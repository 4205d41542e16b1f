"""The read-only market view a strategy sees: completed bars only, per symbol and timeframe."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from tradeloop.core.bar import Bar, BarArrays
from tradeloop.core.errors import ConfigError, did_you_mean
from tradeloop.core.instrument import Instrument
from tradeloop.core.timeframes import timeframe_ns

if TYPE_CHECKING:  # the stream event classes load with the first book read, not every backtest
    from tradeloop.core.market_events import BookTop

__all__ = ["MarketView", "SeriesTimeline"]


class SeriesTimeline:
    """One symbol/timeframe series and, for every engine step, the index of its latest
    completed bar (-1 before the first one completes)."""

    __slots__ = ("arrays", "index_at_step")

    def __init__(self, arrays: BarArrays, index_at_step: np.ndarray) -> None:
        self.arrays = arrays
        self.index_at_step = index_at_step


class MarketView:
    """What a strategy may see at the current step: the run's one market snapshot.

    The risk engine reads the same object (it is a :class:`~tradeloop.risk.market.MarketContext`:
    :meth:`price`, :meth:`returns`, :meth:`ranges`, :attr:`ts`, :attr:`bar_ns`, :attr:`regime`).

    The engine advances :attr:`step`; :attr:`i` is the index of the latest completed bar of
    the primary symbol on the base timeframe (the common single-symbol case). Higher
    timeframes expose a bar only after it has closed.

    ``arrays()`` returns whole series for vectorized precomputation in ``on_init``; a
    strategy must only use causal formulas on them and read values at ``index()``. In
    ``on_bar`` use ``history()``/``bar()``, which never reach past the current step.
    """

    __slots__ = (
        "_close_lists",
        "_hi",
        "_instruments",
        "_lo",
        "_primary",
        "_returns",
        "_series",
        "bar_ns",
        "base_timeframe",
        "i",
        "inputs",
        "regime",
        "step",
        "step_ts",
        "symbols",
    )

    def __init__(
        self,
        symbols: Sequence[str],
        base_timeframe: str,
        series: Mapping[tuple[str, str], SeriesTimeline],
        instruments: Mapping[str, Instrument],
        step_ts: np.ndarray,
    ) -> None:
        self.symbols: tuple[str, ...] = tuple(symbols)
        self.base_timeframe = base_timeframe
        self._series = dict(series)
        #: the primary symbol's base-timeframe series (None without one)
        self._primary = self._series.get((self.symbols[0], base_timeframe)) if symbols else None
        self._instruments = dict(instruments)
        self.step_ts = step_ts
        self.step = -1
        self.i = -1
        self._lo = self._hi = 0
        #: side inputs the run provides (name -> symbol -> value as of the current step)
        self.inputs: dict[str, dict[str, object]] = {}
        #: length of one base-timeframe bar in ns
        self.bar_ns = timeframe_ns(base_timeframe)
        #: the market regime label a regime model set (None: no regime model)
        self.regime: str | None = None
        self._returns: dict[str, np.ndarray] | None = None
        #: closes as Python lists for :meth:`sma`, by symbol, with the array they came from
        self._close_lists: dict[str | None, tuple[np.ndarray, list[float]]] = {}

    # -- time ------------------------------------------------------------------------------
    @property
    def ts(self) -> int:
        """Open time (UTC ns) of the base-timeframe step that just completed."""
        return int(self.step_ts[self.step]) if self.step >= 0 else -1

    @property
    def now(self) -> int:
        """Close time (UTC ns) of the step that just completed: the current time."""
        return self.ts + timeframe_ns(self.base_timeframe) if self.step >= 0 else -1

    # -- lookup ----------------------------------------------------------------------------
    def _timeline(self, symbol: str | None, timeframe: str | None) -> SeriesTimeline:
        key = (symbol or self.symbols[0], timeframe or self.base_timeframe)
        try:
            return self._series[key]
        except KeyError:
            known = sorted({f"{s}@{tf}" for s, tf in self._series})
            raise ConfigError(
                f"no data for symbol {key[0]!r} on timeframe {key[1]!r}."
                f"{did_you_mean(f'{key[0]}@{key[1]}', known)} Available: {', '.join(known)}. "
                "Declare extra timeframes in the strategy's `timeframes`."
            ) from None

    def instrument(self, symbol: str | None = None) -> Instrument:
        """Return the instrument of ``symbol`` (default: the primary symbol)."""
        return self._instruments[symbol or self.symbols[0]]

    def timeframes(self, symbol: str | None = None) -> list[str]:
        """Return the timeframes available for ``symbol``."""
        sym = symbol or self.symbols[0]
        return [tf for s, tf in self._series if s == sym]

    def arrays(self, symbol: str | None = None, timeframe: str | None = None) -> BarArrays:
        """Return the whole series for vectorized, causal precomputation in ``on_init``."""
        return self._timeline(symbol, timeframe).arrays

    def index(self, symbol: str | None = None, timeframe: str | None = None) -> int:
        """Return the index of the latest completed bar at the current step (-1: none yet)."""
        if self.step < 0:
            return -1
        return int(self._timeline(symbol, timeframe).index_at_step[self.step])

    def index_at_steps(self, symbol: str | None = None, timeframe: str | None = None) -> np.ndarray:
        """Return, for every step, the index of the latest completed bar (for precomputation)."""
        return self._timeline(symbol, timeframe).index_at_step

    def updated(self, symbol: str | None = None, timeframe: str | None = None) -> bool:
        """Return True when a new bar of ``symbol``/``timeframe`` completed at this step."""
        if self.step < 0:
            return False
        line = self._timeline(symbol, timeframe).index_at_step
        idx = line[self.step]
        return bool(idx >= 0 and (self.step == 0 or line[self.step - 1] != idx))

    def bar(self, symbol: str | None = None, timeframe: str | None = None) -> Bar | None:
        """Return the latest completed bar, or None when none has completed yet."""
        line = self._timeline(symbol, timeframe)
        idx = int(line.index_at_step[self.step]) if self.step >= 0 else -1
        return line.arrays.bar(idx) if idx >= 0 else None

    def history(
        self, symbol: str | None = None, timeframe: str | None = None, n: int | None = None
    ) -> BarArrays:
        """Return the completed bars up to now (the last ``n`` if given) as array views."""
        line = self._timeline(symbol, timeframe)
        stop = (int(line.index_at_step[self.step]) + 1) if self.step >= 0 else 0
        start = 0 if n is None else max(0, stop - n)
        return line.arrays.slice(start, stop)

    def input(self, name: str, symbol: str | None = None) -> object:
        """Return side input ``name`` of ``symbol`` (default: the primary) as of this step.

        Side inputs are computed by the run from completed bars only (e.g.
        ``liquidation_zones``: the liquidation zones of the signal loop's model); a strategy
        declares the ones it reads in its ``inputs`` class attribute. None until the input
        has a value for the symbol.

        Raises
        ------
        ConfigError
            If the run provides no input of that name.
        """
        values = self.inputs.get(name)
        if values is None:
            known = ", ".join(sorted(self.inputs)) or "(none)"
            raise ConfigError(
                f"no side input {name!r}.{did_you_mean(name, list(self.inputs))} Available: "
                f"{known}. Declare it in the strategy's `inputs`."
            )
        return values.get(symbol or self.symbols[0])

    def book(self, symbol: str | None = None) -> BookTop | None:
        """The L2 order book of ``symbol`` (default: the primary) as of this step: best bid and
        ask, spread, mid, microprice, imbalance and the top levels.

        Live and replayed streams provide it (the ``order_book`` side input, declared in the
        strategy's ``inputs``); None when the run has no book (backtests on candles) or the
        book is not in sync.
        """
        values = self.inputs.get("order_book")
        if not values:
            return None
        from tradeloop.core.market_events import BookTop

        top = values.get(symbol or self.symbols[0])
        return top if isinstance(top, BookTop) else None

    # -- cheap history for per-bar strategies ------------------------------------------------
    def closes(self, n: int, symbol: str | None = None) -> np.ndarray:
        """The last ``n`` completed closes of ``symbol`` (default: the primary) on the base
        timeframe, oldest first: a read-only slice of the run's array (fewer than ``n`` at the
        start). Made for ``on_bar``: no object is built, unlike :meth:`history`.
        """
        return self._tail(n, symbol).close[self._lo : self._hi]

    def opens(self, n: int, symbol: str | None = None) -> np.ndarray:
        """The last ``n`` completed opens (see :meth:`closes`)."""
        return self._tail(n, symbol).open[self._lo : self._hi]

    def highs(self, n: int, symbol: str | None = None) -> np.ndarray:
        """The last ``n`` completed highs (see :meth:`closes`)."""
        return self._tail(n, symbol).high[self._lo : self._hi]

    def lows(self, n: int, symbol: str | None = None) -> np.ndarray:
        """The last ``n`` completed lows (see :meth:`closes`)."""
        return self._tail(n, symbol).low[self._lo : self._hi]

    def volumes(self, n: int, symbol: str | None = None) -> np.ndarray:
        """The last ``n`` completed volumes (see :meth:`closes`)."""
        return self._tail(n, symbol).volume[self._lo : self._hi]

    def _tail(self, n: int, symbol: str | None) -> BarArrays:
        """The base-timeframe arrays of ``symbol``; sets ``_lo:_hi`` to its last ``n`` bars."""
        if symbol is None or symbol == self.symbols[0]:
            line = self._series[(self.symbols[0], self.base_timeframe)]
            stop = int(self.i) + 1  # the primary's latest completed bar, kept by the engine
        else:
            line = self._timeline(symbol, None)
            stop = int(line.index_at_step[self.step]) + 1 if self.step >= 0 else 0
        self._hi = stop
        self._lo = stop - n if stop > n else 0
        return line.arrays

    def sma(self, n: int, symbol: str | None = None) -> float:
        """The mean of the last ``n`` completed closes of ``symbol`` (default: the primary) on
        the base timeframe, computed from them at this step: NaN until ``n`` bars have
        completed, or when one of them is not finite.

        The value is :func:`statistics.fmean` of those closes: their exactly rounded sum
        (:func:`math.fsum`) over ``n``, so it depends neither on the order of the values nor
        on earlier bars; within a few ulps of the vectorized
        :func:`~tradeloop.indicators.sma`. It costs about a microsecond for ``n`` = 30,
        against a few for ``closes(n).mean()`` (numpy's per-call cost dominates on a short
        window).

        Raises
        ------
        ConfigError
            For ``n`` below 1, or a symbol without data.
        """
        line = self._primary if symbol is None else None
        if line is not None:
            hi = self.i + 1  # the primary's latest completed bar, kept by the engine
        else:
            line = self._timeline(symbol, None)
            hi = int(line.index_at_step[self.step]) + 1 if self.step >= 0 else 0
        lo = hi - n
        if lo < 0 or n < 1:
            if n < 1:
                raise ConfigError(f"sma needs n >= 1, got {n}")
            return math.nan
        close = line.arrays.close
        held = self._close_lists.get(symbol)
        if held is None or held[0] is not close:  # first call, or new arrays (paper, live)
            held = self._close_lists[symbol] = (close, close.tolist())
        total = math.fsum(held[1][lo:hi])
        return total / n if total - total == 0.0 else math.nan  # inf - inf and NaN: NaN

    def close(self, symbol: str | None = None) -> float:
        """Return the latest completed close of ``symbol`` on the base timeframe (NaN: none)."""
        line = self._timeline(symbol, None)
        idx = int(line.index_at_step[self.step]) if self.step >= 0 else -1
        return float(line.arrays.close[idx]) if idx >= 0 else float("nan")

    # -- the risk engine's MarketContext -------------------------------------------------------
    def price(self, symbol: str) -> float:
        """The latest completed close of ``symbol`` (NaN when unknown or none yet)."""
        key = (symbol, self.base_timeframe)
        line = self._series.get(key)
        if line is None or self.step < 0:
            return float("nan")
        idx = int(line.index_at_step[self.step])
        return float(line.arrays.close[idx]) if idx >= 0 else float("nan")

    def _step_returns(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for symbol in self.symbols:
            line = self._series[(symbol, self.base_timeframe)]
            close, idx = line.arrays.close, line.index_at_step
            ret = np.full(idx.size, np.nan)
            if idx.size:
                new = np.zeros(idx.size, dtype=bool)
                new[1:] = idx[1:] != idx[:-1]
                new &= idx >= 1
                at = idx[new]
                ret[new] = close[at] / close[at - 1] - 1.0
            out[symbol] = ret
        return out

    def returns(self, symbols: Sequence[str], n: int) -> np.ndarray:
        """The last ``n`` one-bar simple returns up to this step, one column per symbol
        (rows aligned on the steps, NaN where a symbol had no new bar). Built on first use."""
        if self._returns is None:
            self._returns = self._step_returns()
        hi = self.step + 1
        lo = max(0, hi - n)
        cols = []
        for symbol in symbols:
            series = self._returns.get(symbol)
            cols.append(series[lo:hi] if series is not None else np.full(hi - lo, np.nan))
        return np.column_stack(cols) if cols else np.empty((hi - lo, 0))

    def ranges(self, symbol: str, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The last ``n`` completed bars' high, low and close of ``symbol`` (None: unknown)."""
        line = self._series.get((symbol, self.base_timeframe))
        if line is None or self.step < 0:
            return None
        i = int(line.index_at_step[self.step])
        lo = max(0, i - n + 1)
        a = line.arrays
        return a.high[lo : i + 1], a.low[lo : i + 1], a.close[lo : i + 1]
