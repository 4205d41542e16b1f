"""The order state machine: every status an order can have and the moves between them.

::

    new -> submitted -> accepted -> partially_filled -> filled
      \\         \\           \\              \\-> cancelled | expired
       \\         \\           \\-> filled | cancelled | rejected | expired
        \\         \\-> accepted | partially_filled | filled | rejected | cancelled | expired
         \\-> submitted | rejected

``filled``, ``cancelled``, ``rejected`` and ``expired`` are final. A move the table does not
allow is an :class:`InvalidTransitionError`: the caller logs and alerts it and keeps the old
status (a late or duplicated venue message must never reopen a filled order).
"""

from __future__ import annotations

from enum import StrEnum

from tradeloop.core.errors import TradeloopError

__all__ = [
    "FINAL_STATUSES",
    "OPEN_STATUSES",
    "TRANSITIONS",
    "InvalidTransitionError",
    "OrderStatus",
    "check_transition",
]


class OrderStatus(StrEnum):
    """Where an order is in its life."""

    NEW = "new"
    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"


_S = OrderStatus

#: status -> the statuses it may move to (a status may always be repeated: a no-op)
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    _S.NEW: frozenset({_S.SUBMITTED, _S.REJECTED}),
    _S.SUBMITTED: frozenset(
        {_S.ACCEPTED, _S.PARTIALLY_FILLED, _S.FILLED, _S.REJECTED, _S.CANCELLED, _S.EXPIRED}
    ),
    _S.ACCEPTED: frozenset({_S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELLED, _S.REJECTED, _S.EXPIRED}),
    _S.PARTIALLY_FILLED: frozenset({_S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELLED, _S.EXPIRED}),
    _S.FILLED: frozenset(),
    _S.CANCELLED: frozenset(),
    _S.REJECTED: frozenset(),
    _S.EXPIRED: frozenset(),
}

#: statuses after which nothing can happen to the order
FINAL_STATUSES: frozenset[OrderStatus] = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)
#: statuses of an order still working at the venue
OPEN_STATUSES: frozenset[OrderStatus] = frozenset({_S.SUBMITTED, _S.ACCEPTED, _S.PARTIALLY_FILLED})


class InvalidTransitionError(TradeloopError):
    """An order status change the state machine does not allow (never applied)."""

    def __init__(self, order_id: int | str, current: str, new: str) -> None:
        super().__init__(f"order {order_id}: {current} -> {new} is not a valid status change")
        self.order_id = order_id
        self.current = current
        self.new = new


def check_transition(order_id: int | str, current: str, new: str) -> OrderStatus:
    """Return ``new`` as an :class:`OrderStatus` when ``current -> new`` is allowed.

    Raises
    ------
    InvalidTransitionError
        If either is not a status, or the table does not allow the move.

    >>> check_transition(7, "submitted", "filled")
    <OrderStatus.FILLED: 'filled'>
    >>> check_transition(7, "filled", "cancelled")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tradeloop.core.order_status.InvalidTransitionError: order 7: filled -> cancelled is not ...
    """
    try:
        before, after = OrderStatus(current), OrderStatus(new)
    except ValueError:
        raise InvalidTransitionError(order_id, current, new) from None
    if after is not before and after not in TRANSITIONS[before]:
        raise InvalidTransitionError(order_id, current, new)
    return after
