"""Signal: a strategy's intent. Strategies return signals and never call a broker."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from tradeloop.core.errors import ConfigError
from tradeloop.core.slots_init import slots_init

__all__ = ["Signal", "SignalAction", "SizeMode", "signal_id"]


def signal_id(strategy: str, symbol: str, ts_ns: int, k: int = 0) -> str:
    """Return the id of an opening signal: ``strategy:symbol:ts_ns`` (``:k`` for the k-th
    repeat of the same symbol at the same step, k > 0).

    The id is deterministic per run and intent, so a restarted run gives the same id to the
    same intent. It becomes the id of the position the signal opens and of its trade; the
    part before the first colon names the strategy (a strategy manager's member) that owns it.

    >>> signal_id("sma_cross", "BTC/USDT", 1_700_000_000_000_000_000)
    'sma_cross:BTC/USDT:1700000000000000000'
    >>> signal_id("fast", "ETH/USDT", 5, k=1)
    'fast:ETH/USDT:5:1'
    """
    base = f"{strategy}:{symbol}:{ts_ns}"
    return base if k == 0 else f"{base}:{k}"


class SignalAction(StrEnum):
    """What a signal asks for."""

    OPEN_LONG = "open_long"
    OPEN_SHORT = "open_short"
    CLOSE = "close"


class SizeMode(StrEnum):
    """How :attr:`Signal.size` is read."""

    EQUITY_FRACTION = "equity_fraction"
    QUANTITY = "quantity"


# module constants: reading an enum member through its class costs ~10x a global on
# Python 3.11, and every signal's check reads two
_CLOSE = SignalAction.CLOSE
_OPEN_LONG = SignalAction.OPEN_LONG
_BY_FRACTION = SizeMode.EQUITY_FRACTION
_INF = math.inf


@slots_init
@dataclass(frozen=True, slots=True)
class Signal:
    """A trading intent produced by a strategy on a completed bar.

    Use the factories :meth:`open_long`, :meth:`open_short` and :meth:`close`.

    ``stop_loss`` and ``take_profit`` are absolute prices; ``trailing_stop`` is a fraction
    (0.01 trails the best price by 1%). ``confidence`` in [0, 1] may scale the size later.

    ``stop_loss_pct`` and ``take_profit_pct`` give the stop and the target as distances
    instead: fractions of the reference price, the close of the bar the signal is made on
    (the price the order is sized at), resolved where the order is made
    (:meth:`exit_levels`). ``stop_loss_pct=0.01`` on a long puts the stop 1% below that close,
    exactly ``close * (1 - 0.01)``, as a strategy computing it itself would; such a signal does
    not depend on the bar, so a strategy can build it once. A level is given one way or the
    other, not both; a close takes neither.
    """

    symbol: str
    action: SignalAction
    size: float = 1.0
    size_mode: SizeMode = SizeMode.EQUITY_FRACTION
    stop_loss: float | None = None
    take_profit: float | None = None
    trailing_stop: float | None = None
    position_id: str | None = None
    tag: str = ""
    confidence: float | None = None
    stop_loss_pct: float | None = None
    take_profit_pct: float | None = None

    def __post_init__(self) -> None:
        if self.action is not _CLOSE:
            if not (0.0 < self.size < _INF):  # finite and > 0 (NaN fails every comparison)
                raise ConfigError(f"signal for {self.symbol}: size must be > 0, got {self.size}")
            if self.size_mode is _BY_FRACTION and self.size > 100:
                raise ConfigError(
                    f"signal for {self.symbol}: equity fraction {self.size} is not plausible"
                )
        if self.trailing_stop is not None and not (0 < self.trailing_stop < 1):
            raise ConfigError(
                f"signal for {self.symbol}: trailing_stop is a fraction in (0, 1), "
                f"got {self.trailing_stop}"
            )
        if self.confidence is not None and not (0.0 <= self.confidence <= 1.0):
            raise ConfigError(
                f"signal for {self.symbol}: confidence must be in [0, 1], got {self.confidence}"
            )
        # each level on its own (no tuple of pairs built per signal: one per entry of a run)
        level = self.stop_loss
        if level is not None and not (0.0 < level < _INF):  # finite and > 0
            raise ConfigError(f"signal for {self.symbol}: stop_loss must be > 0, got {level}")
        level = self.take_profit
        if level is not None and not (0.0 < level < _INF):
            raise ConfigError(f"signal for {self.symbol}: take_profit must be > 0, got {level}")
        if self.stop_loss_pct is not None or self.take_profit_pct is not None:
            self._check_distances()

    def _check_distances(self) -> None:
        """The distances: a stop within (0, 1) of the price, a target above 0 (below 1 for a
        short, whose target must stay above 0), each level given one way only."""
        sl, tp = self.stop_loss_pct, self.take_profit_pct
        if self.action is _CLOSE:
            raise ConfigError(f"signal for {self.symbol}: a close takes no stop or target distance")
        if sl is not None:
            if not (0.0 < sl < 1.0):
                raise ConfigError(
                    f"signal for {self.symbol}: stop_loss_pct is a fraction in (0, 1), got {sl}"
                )
            if self.stop_loss is not None:
                raise ConfigError(
                    f"signal for {self.symbol}: give stop_loss or stop_loss_pct, not both"
                )
        if tp is not None:
            upper = 1.0 if self.action is SignalAction.OPEN_SHORT else _INF
            if not (0.0 < tp < upper):
                raise ConfigError(
                    f"signal for {self.symbol}: take_profit_pct must be in (0, {upper:g}) "
                    f"for {self.action.value}, got {tp}"
                )
            if self.take_profit is not None:
                raise ConfigError(
                    f"signal for {self.symbol}: give take_profit or take_profit_pct, not both"
                )

    def exit_levels(self, reference: float) -> tuple[float | None, float | None]:
        """Return ``(stop_loss, take_profit)`` as prices: the absolute levels as given, a
        distance placed around ``reference`` (the close the order is made at).

        >>> Signal.open_long("X", stop_loss_pct=0.01, take_profit_pct=0.02).exit_levels(200.0)
        (198.0, 204.0)
        >>> Signal.open_short("X", stop_loss_pct=0.01, take_profit=150.0).exit_levels(200.0)
        (202.0, 150.0)

        Raises:
            ValueError: a distance is given and ``reference`` is not a price (NaN, not above 0
                or infinite), or a level placed around it is not one (it overflows).
        """
        sl, tp = self.stop_loss_pct, self.take_profit_pct
        if sl is None and tp is None:
            return self.stop_loss, self.take_profit
        if not (0.0 < reference < _INF):
            raise ValueError(
                f"signal for {self.symbol}: no price ({reference}) to place its stop and target "
                "distances around"
            )
        long = self.action is _OPEN_LONG
        # the same products a strategy placing its levels itself computes
        stop, target = self.stop_loss, self.take_profit
        if sl is not None:
            stop = reference * ((1.0 - sl) if long else (1.0 + sl))
        if tp is not None:
            target = reference * ((1.0 + tp) if long else (1.0 - tp))
        if (stop is not None and not stop < _INF) or (target is not None and not target < _INF):
            raise ValueError(
                f"signal for {self.symbol}: its stop or target distance from {reference} is "
                "not a price (it overflows)"
            )
        return stop, target

    @classmethod
    def open_long(
        cls,
        symbol: str,
        size: float = 1.0,
        *,
        quantity: bool = False,
        stop_loss: float | None = None,
        take_profit: float | None = None,
        trailing_stop: float | None = None,
        position_id: str | None = None,
        tag: str = "",
        confidence: float | None = None,
        stop_loss_pct: float | None = None,
        take_profit_pct: float | None = None,
    ) -> Signal:
        """Open a long position; ``size`` is an equity fraction unless ``quantity``."""
        mode = SizeMode.QUANTITY if quantity else SizeMode.EQUITY_FRACTION
        # positional: strategies build one signal per trade side, and keywords cost more
        return cls(
            symbol,
            SignalAction.OPEN_LONG,
            size,
            mode,
            stop_loss,
            take_profit,
            trailing_stop,
            position_id,
            tag,
            confidence,
            stop_loss_pct,
            take_profit_pct,
        )

    @classmethod
    def open_short(
        cls,
        symbol: str,
        size: float = 1.0,
        *,
        quantity: bool = False,
        stop_loss: float | None = None,
        take_profit: float | None = None,
        trailing_stop: float | None = None,
        position_id: str | None = None,
        tag: str = "",
        confidence: float | None = None,
        stop_loss_pct: float | None = None,
        take_profit_pct: float | None = None,
    ) -> Signal:
        """Open a short position; ``size`` is an equity fraction unless ``quantity``."""
        mode = SizeMode.QUANTITY if quantity else SizeMode.EQUITY_FRACTION
        # positional: strategies build one signal per trade side, and keywords cost more
        return cls(
            symbol,
            SignalAction.OPEN_SHORT,
            size,
            mode,
            stop_loss,
            take_profit,
            trailing_stop,
            position_id,
            tag,
            confidence,
            stop_loss_pct,
            take_profit_pct,
        )

    @classmethod
    def close(cls, symbol: str, *, position_id: str | None = None, tag: str = "") -> Signal:
        """Close the whole position in ``symbol``."""
        # positional, as the opening factories
        return cls(
            symbol,
            SignalAction.CLOSE,
            1.0,
            SizeMode.EQUITY_FRACTION,
            None,
            None,
            None,
            position_id,
            tag,
            None,
        )

    def with_position_id(self, position_id: str) -> Signal:
        """Return a copy naming the position it opens (the kernel's signal id).

        The copy skips re-validation (every field is already checked), so the step can give
        every opening signal an id without a measurable cost.
        """
        copy = object.__new__(Signal)
        put = object.__setattr__
        put(copy, "symbol", self.symbol)
        put(copy, "action", self.action)
        put(copy, "size", self.size)
        put(copy, "size_mode", self.size_mode)
        put(copy, "stop_loss", self.stop_loss)
        put(copy, "take_profit", self.take_profit)
        put(copy, "trailing_stop", self.trailing_stop)
        put(copy, "position_id", position_id)
        put(copy, "tag", self.tag)
        put(copy, "confidence", self.confidence)
        put(copy, "stop_loss_pct", self.stop_loss_pct)
        put(copy, "take_profit_pct", self.take_profit_pct)
        return copy
