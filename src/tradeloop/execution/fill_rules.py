"""The one fill rule of protective exits (stop-loss, trailing stop, take-profit).

Backtest and paper (:class:`~tradeloop.execution.simulated.SimulatedBroker`) check a position's
levels against every bar with :func:`trigger_fill`; the local venues under
``tradeloop.testing.venue`` fill their resting stop and take-profit orders with the same
function, so a live run whose exits rest at the venue trades like paper on the same bars:

* a stop triggers when the bar reaches its level (a long's low at or below it, a short's high
  at or above it) and fills at the level, as a taker; a bar that *opens* through the level
  (a gap) fills at the open;
* a take-profit triggers when the bar reaches its level from the other side and fills at the
  level as a maker (a resting limit); a gap through it fills at the open (still the maker fee,
  the simulated broker's long-standing rule).

Slippage is the caller's (the simulated broker moves stop fills by ``slippage_bps``; a venue
has its own market).

>>> trigger_fill(TriggerKind.STOP, 1, 95.0, 100.0, 101.0, 94.0)
TriggerFill(price=95.0, maker=False, at_open=False)
>>> trigger_fill(TriggerKind.STOP, 1, 95.0, 93.0, 96.0, 92.0)
TriggerFill(price=93.0, maker=False, at_open=True)
>>> trigger_fill(TriggerKind.TAKE_PROFIT, -1, 90.0, 100.0, 101.0, 89.5)
TriggerFill(price=90.0, maker=True, at_open=False)
>>> trigger_fill(TriggerKind.STOP, 1, 95.0, 100.0, 101.0, 96.0) is None
True
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

__all__ = ["TriggerFill", "TriggerKind", "trigger_fill"]


class TriggerKind(StrEnum):
    """What a protective level does for its position."""

    STOP = "stop"  # a stop-loss or trailing stop: exits on an adverse move
    TAKE_PROFIT = "take_profit"  # exits on a favourable move


class TriggerFill(NamedTuple):
    """Where a triggered level fills: ``price``, with the maker fee or not, and whether the
    bar opened through the level (a gap)."""

    price: float
    maker: bool
    at_open: bool


def trigger_fill(
    kind: TriggerKind, direction: int, level: float, o: float, h: float, low: float
) -> TriggerFill | None:
    """Return the fill of a ``kind`` level protecting a ``direction`` position (1 long,
    -1 short) in a bar with open ``o``, high ``h`` and low ``low``; None when the bar does not
    reach it (see the module docstring)."""
    long = direction > 0
    if kind is TriggerKind.STOP:
        if o <= level if long else o >= level:
            return TriggerFill(o, False, True)
        if low <= level if long else h >= level:
            return TriggerFill(level, False, False)
        return None
    if o >= level if long else o <= level:
        return TriggerFill(o, True, True)
    if h >= level if long else low <= level:
        return TriggerFill(level, True, False)
    return None
