"""The :class:`Strategy` base class users subclass."""

from __future__ import annotations

import copy
import logging
from collections import deque
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from tradeloop.core.errors import ConfigError, StrategyError, TradeloopError, did_you_mean
from tradeloop.core.time import to_iso
from tradeloop.strategy.params import Param

if TYPE_CHECKING:
    from tradeloop.core.portfolio import Portfolio
    from tradeloop.core.signal import Signal
    from tradeloop.strategy.view import MarketView

__all__ = ["NO_SIGNALS", "Strategy", "strategy_error"]

logger = logging.getLogger(__name__)

#: Return this from ``on_bar`` when there is nothing to do (no allocation per bar).
NO_SIGNALS: tuple[Signal, ...] = ()


class Strategy:
    """Base class of every strategy.

    Subclasses declare parameters as :class:`Param` class attributes and implement
    :meth:`on_bar`. A strategy returns intents (:class:`~tradeloop.core.signal.Signal`) and
    never calls a broker, so the same object runs in backtest, paper and live.

    Class attributes
    ----------------
    name
        Registry name (``sma_cross``); defaults to the class name in snake case.
    timeframes
        Timeframes the strategy reads. The first is its trading (base) timeframe and may be
        overridden by the run (``--timeframe``); the others are higher "informative"
        timeframes whose bars become visible only once complete. Empty: the data's own.
    symbols
        Symbols it trades; empty means every symbol of the run.
    inputs
        Side inputs it reads with ``view.input(name)`` (e.g. ``liquidation_zones``); the run
        attaches a source for each and refuses to start when it has none.

    The contract is the same in backtest, paper and live: :meth:`on_init` runs once, before
    the first bar; :meth:`on_bar` runs on every completed step; the instance (counters, flags,
    anything set in ``on_bar``) lives on between bars. In paper and live, new bars reach the
    strategy through :meth:`on_new_bars` before ``on_bar`` (the default refreshes what
    ``on_init`` precomputed); :meth:`get_state`/:meth:`set_state` carry state across a
    restart of the process.

    Performance: compute indicators once, vectorized, in :meth:`on_init` from
    ``view.arrays(...)`` using only causal formulas, and read them at ``view.index(...)`` in
    :meth:`on_bar`. Return :data:`NO_SIGNALS` when idle. For paper/live at a large window,
    override :meth:`on_new_bars` to extend the precomputed values in O(1) per bar.
    """

    name: ClassVar[str] = ""
    timeframes: ClassVar[tuple[str, ...]] = ()
    symbols: ClassVar[tuple[str, ...]] = ()
    inputs: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **params: Any) -> None:
        declared = self.parameters()
        for key in params:
            if key not in declared:
                raise ConfigError(
                    f"strategy '{self.strategy_name()}' has no parameter {key!r}."
                    f"{did_you_mean(key, declared)}"
                    f" Parameters: {', '.join(declared) or '(none)'}"
                )
        values: dict[str, Any] = {}
        for key, param in declared.items():
            values[key] = param.coerce(params[key]) if key in params else param.default
            setattr(self, key, values[key])
        self.params: Mapping[str, Any] = values
        self.validate()

    # -- declaration helpers -------------------------------------------------------------
    @classmethod
    def strategy_name(cls) -> str:
        """Return the registry name of the strategy."""
        if cls.name:
            return cls.name
        out = []
        for i, ch in enumerate(cls.__name__):
            if ch.isupper() and i:
                out.append("_")
            out.append(ch.lower())
        return "".join(out)

    @classmethod
    def parameters(cls) -> dict[str, Param]:
        """Return the declared parameters, base classes first."""
        found: dict[str, Param] = {}
        for klass in reversed(cls.__mro__):
            for key, value in vars(klass).items():
                if isinstance(value, Param):
                    found[key] = value
        return found

    @classmethod
    def describe(cls) -> str:
        """Return the first paragraph of the class docstring as one line."""
        doc = (cls.__doc__ or "").strip()
        return " ".join(doc.split("\n\n")[0].split()) if doc else ""

    # -- hooks ---------------------------------------------------------------------------
    def validate(self) -> None:
        """Check parameter combinations; raise :class:`ConfigError` when they make no sense."""

    def on_init(self, view: MarketView) -> None:
        """Prepare before the first bar (precompute causal indicators here)."""

    def on_new_bars(self, view: MarketView) -> None:
        """Paper and live: bars were added to the end of ``view``'s series (and, once the held
        window is full, the oldest left it). Bring what :meth:`on_init` precomputed up to date.

        Called before :meth:`on_bar` of every step after the first. The default runs
        ``on_init`` on a shallow copy of the strategy over the new view and takes over the
        attributes it sets, except those :meth:`on_bar` changed since (rebound, or a list,
        dict, set or deque whose length changed): precomputed indicators are refreshed and
        state kept in ``on_bar`` survives, exactly as between two bars of a backtest. It costs
        one ``on_init`` per bar; override it (e.g. append the new bars' indicator values) to
        make a paper step independent of the window size.
        """
        snapshot: dict[str, tuple[Any, int]] | None = self.__dict__.get(_AFTER_INIT)
        fresh = copy.copy(self)
        step, i = view.step, view.i
        view.step = view.i = -1  # on_init sees the view as before a run's first bar
        try:
            fresh.on_init(view)
        finally:
            view.step, view.i = step, i
        current = self.__dict__
        record: dict[str, tuple[Any, int]] = {}
        for key, value in fresh.__dict__.items():
            if key == _AFTER_INIT:
                continue
            record[key] = (value, _size(value))
            if snapshot is not None and key in current and key in snapshot:
                seen, size = snapshot[key]
                now = current[key]
                if now is not seen or _size(now) != size:
                    continue  # changed by on_bar since on_init produced it: state, keep it
            current[key] = value
        current[_AFTER_INIT] = record

    def remember_init(self) -> None:
        """Record the attributes as :meth:`on_init` left them (see :meth:`on_new_bars`).

        The kernels call it right after ``on_init``.
        """
        self.__dict__[_AFTER_INIT] = {
            k: (v, _size(v)) for k, v in self.__dict__.items() if k != _AFTER_INIT
        }

    def signal_bars(self, view: MarketView) -> np.ndarray | None:
        """Optional speed hint: where :meth:`on_bar` can return signals.

        Return a boolean array over the primary symbol's base-timeframe bars that is True
        wherever ``on_bar`` may return a signal (computed causally in :meth:`on_init`), or
        None (the default) to be called on every bar. With a mask, a single-symbol backtest
        calls ``on_bar`` only on those bars (fills, stops and marks still happen on every bar
        they are due), which makes sparse strategies several times faster. Only return one
        when ``on_bar`` keeps no per-bar state of its own. Live and paper runs ignore it.
        """
        return None

    def plot(self) -> Mapping[str, tuple[np.ndarray, np.ndarray]]:
        """Optional: indicators to draw over the report's price chart of the first symbol.

        Return ``{name: (bar_open_times_ns, values)}`` (NaN where undefined), e.g. the moving
        averages computed in :meth:`on_init`; called once after a backtest. The default draws
        nothing.
        """
        return {}

    def on_bar(self, view: MarketView, portfolio: Portfolio) -> Sequence[Signal]:
        """Return the signals for the bar that just completed."""
        raise NotImplementedError(f"strategy '{self.strategy_name()}' must implement on_bar")

    def get_state(self) -> dict[str, Any]:
        """Return JSON-serializable state to persist (restored with :meth:`set_state`)."""
        return {}

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Restore state saved by :meth:`get_state`."""


_AFTER_INIT = "_tradeloop_after_init"
_CONTAINERS = (list, dict, set, deque)


def _size(value: object) -> int:
    """Length of a mutable container (-1 for anything else): how ``on_bar`` grows state."""
    return len(value) if isinstance(value, _CONTAINERS) else -1


def strategy_error(strategy: Strategy, exc: BaseException, ts_ns: int | None) -> TradeloopError:
    """Wrap an exception raised by user strategy code into :class:`StrategyError`.

    Tradeloop's own configuration errors pass through unchanged.
    """
    if isinstance(exc, ConfigError | StrategyError):
        return exc
    when = to_iso(ts_ns) if ts_ns is not None else None
    logger.error(
        "strategy %s failed at %s: %r",
        strategy.strategy_name(),
        when,
        exc,
        extra={"strategy": strategy.strategy_name(), "bar_time": when},
    )
    err = StrategyError(
        f"{type(exc).__name__}: {exc}", strategy=strategy.strategy_name(), time_iso=when
    )
    err.__cause__ = exc
    return err
