"""Portfolio: cash, open positions, closed trades and the latest marks."""

from __future__ import annotations

from tradeloop.core.position import Position, Trade

__all__ = ["Portfolio"]


class Portfolio:
    """Account state shared by all symbols of a run.

    ``balance`` is cash. Equity is cash plus the signed market value of open positions at the
    latest marks (a short adds its sale proceeds to cash and owes the marked value back).
    Only the broker mutates a portfolio; strategies read it.
    """

    __slots__ = ("balance", "initial_balance", "marks", "positions", "trades")

    def __init__(self, balance: float) -> None:
        self.initial_balance = float(balance)
        self.balance = float(balance)
        self.positions: dict[str, Position] = {}
        self.trades: list[Trade] = []
        self.marks: dict[str, float] = {}

    def position(self, symbol: str) -> Position | None:
        """Return the open position in ``symbol`` or None."""
        return self.positions.get(symbol)

    def is_flat(self, symbol: str) -> bool:
        """True when there is no open position in ``symbol``."""
        return symbol not in self.positions

    @property
    def equity(self) -> float:
        """Cash plus open positions marked at the latest prices."""
        total = self.balance
        for sym, pos in self.positions.items():
            total += pos.market_value(self.marks.get(sym, pos.entry_price))
        return total

    @property
    def margin_used(self) -> float:
        """Gross notional of open positions at the latest marks."""
        return sum(
            pos.quantity * self.marks.get(sym, pos.entry_price)
            for sym, pos in self.positions.items()
        )

    @property
    def unrealized_pnl(self) -> float:
        """Sum of open positions' unrealized P&L at the latest marks."""
        return sum(
            pos.unrealized_pnl(self.marks.get(sym, pos.entry_price))
            for sym, pos in self.positions.items()
        )

    @property
    def closed_trades(self) -> list[Trade]:
        """Trades with an exit."""
        return [t for t in self.trades if t.is_closed]
