"""Orders and fills."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, NamedTuple

from tradeloop.core.signal import Signal, SignalAction, SizeMode
from tradeloop.core.slots_init import slots_init

if TYPE_CHECKING:
    from tradeloop.core.portfolio import Portfolio

__all__ = ["Bracket", "Fill", "Order", "OrderSide", "OrderType", "TimeInForce", "order_from_signal"]


class OrderSide(StrEnum):
    """Buy or sell."""

    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    """Order types the brokers understand."""

    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"
    #: a market order triggered when the price reaches ``stop_price`` from the favourable
    #: side (a resting take-profit at the venue)
    TAKE_PROFIT = "take_profit"


class TimeInForce(StrEnum):
    """How long an order stays working."""

    GTC = "gtc"
    IOC = "ioc"
    FOK = "fok"
    DAY = "day"


class Bracket(NamedTuple):
    """Exits attached to an entry order; they become the position's stops when it fills.

    ``stop_loss`` and ``take_profit`` are absolute prices; ``trailing_stop`` is a fraction that
    trails the best price, armed once the price has moved ``trailing_activation`` (a fraction of
    the entry; None = at once) in the position's favour.

    A named tuple, in that order: an entry with exits builds one on a backtest's hot path,
    and a tuple is made in a third of the time a frozen dataclass takes (the broker unpacks
    it in one step).
    """

    stop_loss: float | None = None
    take_profit: float | None = None
    trailing_stop: float | None = None
    trailing_activation: float | None = None


@slots_init
@dataclass(frozen=True, slots=True)
class Order:
    """An order to a broker. ``quantity`` is positive; the side gives the direction.

    For equity-fraction sizing the broker resolves ``quantity`` at fill time from
    ``equity_fraction`` (then ``quantity`` is 0 until filled). ``reduce_only`` closes the
    open position in ``symbol`` and never opens one.

    An entry order may carry its exits (``exits``, a :class:`Bracket`) and the id of the
    position it opens. ``id`` 0 means "not yet assigned": the broker numbers the order when it
    accepts it.
    """

    id: int
    symbol: str
    side: OrderSide
    type: OrderType
    quantity: float
    ts_created: int
    limit_price: float | None = None
    stop_price: float | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    equity_fraction: float | None = None
    reduce_only: bool = False
    tag: str = ""
    exits: Bracket | None = None
    position_id: str | None = None


@slots_init
@dataclass(frozen=True, slots=True)
class Fill:
    """An execution of (part of) an order."""

    order_id: int
    symbol: str
    side: OrderSide
    quantity: float
    price: float
    fee: float
    ts: int
    reason: str = "signal"


# Enum members read on every order, as module constants: on Python 3.11 reading a member
# through its class costs about 130 ns, a module global about 12 ns.
_CLOSE = SignalAction.CLOSE
_OPEN_LONG = SignalAction.OPEN_LONG
_BY_FRACTION = SizeMode.EQUITY_FRACTION
_BUY = OrderSide.BUY
_SELL = OrderSide.SELL
_MARKET = OrderType.MARKET
_GTC = TimeInForce.GTC
_INF = math.inf
#: builds a :class:`Bracket` from its four values without the generated ``__new__``'s call
_new_tuple = tuple.__new__


def order_from_signal(
    signal: Signal,
    ts_ns: int,
    portfolio: Portfolio,
    order_id: int = 0,
    position_id: str | None = None,
    reference: float = math.nan,
) -> Order:
    """Return the market order a signal asks for, sized as the signal says.

    An equity-fraction signal gives an order with ``equity_fraction`` (resolved at the fill);
    a close gives a ``reduce_only`` order on the side opposite to the open position. The
    signal's stops travel with the order, and so does its position id (else ``position_id``).
    A stop or target given as a distance is placed around ``reference``, the close the order
    is made at (:meth:`Signal.exit_levels`).

    Raises:
        ValueError: the signal gives a distance and ``reference`` is not a price.
    """
    symbol = signal.symbol
    action = signal.action
    closing = action is _CLOSE
    if closing:
        pos = portfolio.positions.get(symbol)
        side = _BUY if pos is not None and pos.direction < 0 else _SELL
    else:
        side = _BUY if action is _OPEN_LONG else _SELL
    by_fraction = signal.size_mode is _BY_FRACTION
    stop_loss = signal.stop_loss
    take_profit = signal.take_profit
    sl, tp = signal.stop_loss_pct, signal.take_profit_pct
    if sl is not None or tp is not None:  # distances (not a close): placed around the close
        # Signal.exit_levels' products, inlined (one per entry of a backtest; a test holds
        # them equal); it raises, naming the problem, for a reference or a level not a price
        if not (0.0 < reference < _INF):
            signal.exit_levels(reference)
        long = action is _OPEN_LONG
        if sl is not None:
            stop_loss = reference * ((1.0 - sl) if long else (1.0 + sl))
        if tp is not None:
            take_profit = reference * ((1.0 + tp) if long else (1.0 - tp))
        if not (
            (stop_loss is None or stop_loss < _INF) and (take_profit is None or take_profit < _INF)
        ):
            signal.exit_levels(reference)
    trailing_stop = signal.trailing_stop
    exits = (
        _new_tuple(Bracket, (stop_loss, take_profit, trailing_stop, None))
        if stop_loss is not None or take_profit is not None or trailing_stop is not None
        else None
    )
    size = signal.size
    # positional: this runs for every signal of a backtest, and keywords cost more
    return Order(
        order_id,
        symbol,
        side,
        _MARKET,
        0.0 if by_fraction else size,
        ts_ns,
        None,
        None,
        _GTC,
        size if by_fraction else None,
        closing,
        signal.tag,
        exits,
        signal.position_id or position_id,
    )
