"""Fee and P&L arithmetic, in one place so every path computes them the same way."""

from __future__ import annotations

__all__ = ["fee_for", "pnl_for", "quantity_for_budget"]


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


def pnl_for(direction: int, quantity: float, entry: float, exit: float) -> float:
    """Return gross P&L of ``quantity`` units (``direction`` +1 long, -1 short), before fees.

    >>> pnl_for(-1, 2.0, 100.0, 90.0)
    20.0
    """
    return direction * quantity * (exit - entry)
