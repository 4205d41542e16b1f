"""The :class:`Strategy` base class users subclass."""

from __future__ import annotations

import logging
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

    Performance: compute indicators once, vectorized, in :meth:`on_init` from
    ``view.arrays(...)`` using only causal formulas, and read them at ``view.index(...)`` in
    :meth:`on_bar`. Return :data:`NO_SIGNALS` when idle.
    """

    name: ClassVar[str] = ""
    timeframes: ClassVar[tuple[str, ...]] = ()
    symbols: ClassVar[tuple[str, ...]] = ()

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

    def on_bar(self, view: MarketView, portfolio: Portfolio) -> Sequence[Signal]:
        """Return the signals for the bar that just completed."""
        raise NotImplementedError(f"strategy '{self.strategy_name()}' must implement on_bar")

    def get_state(self) -> dict[str, Any]:
        """Return JSON-serializable state to persist (restored with :meth:`set_state`)."""
        return {}

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Restore state saved by :meth:`get_state`."""


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
