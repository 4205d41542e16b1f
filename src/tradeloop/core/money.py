"""Fee and P&L arithmetic, in one place so every path computes them the same way."""

from __future__ import annotations

__all__ = ["affordable_quantity", "fee_for", "pnl_for", "quantity_for_budget"]


def fee_for(quantity: float, price: float, fee_rate: float) -> float:
    """Return the commission on a fill: ``fee_rate * |quantity| * price``.

    >>> fee_for(2.0, 100.0, 0.001)
    0.2
    """
    return fee_rate * abs(quantity) * price


def quantity_for_budget(budget: float, price: float, fee_rate: float) -> float:
    """Return the quantity that spends ``budget`` at ``price`` with the fee included.

    ``quantity * price * (1 + fee_rate) == budget``.

    >>> quantity_for_budget(10_100.0, 100.0, 0.01)
    100.0
    """
    return budget / (price * (1.0 + fee_rate))


def affordable_quantity(
    quantity: float, price: float, balance: float, fee_rate: float, buffer: float
) -> float:
    """Return ``quantity`` capped so that a buy of it at ``price`` (fee included) keeps
    ``buffer`` (a fraction) of ``balance`` unspent; ``buffer`` 0 returns ``quantity``.

    Sizing happens at the last close while a market buy fills at the next open: the buffer is
    the room for an open above that close (a venue refuses a buy the cash cannot pay).

    >>> affordable_quantity(100.0, 100.0, 10_000.0, 0.0, 0.01)
    99.0
    >>> affordable_quantity(50.0, 100.0, 10_000.0, 0.0, 0.01)
    50.0
    """
    if not buffer > 0 or not price > 0:
        return quantity
    return min(quantity, quantity_for_budget(balance * (1.0 - buffer), price, fee_rate))


def pnl_for(direction: int, quantity: float, entry: float, exit: float) -> float:
    """Return gross P&L of ``quantity`` units (``direction`` +1 long, -1 short), before fees.

    >>> pnl_for(-1, 2.0, 100.0, 90.0)
    20.0
    """
    return direction * quantity * (exit - entry)
