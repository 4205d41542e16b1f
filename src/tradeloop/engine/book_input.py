"""The ``order_book`` side input: each symbol's L2 book summary as of the step.

The streaming pipeline keeps the books (:class:`~tradeloop.data.stream.book.L2Book`); this
source hands the kernel step their :class:`~tradeloop.core.market_events.BookTop` once per
step, like every other side input, so a strategy reads ``view.book(symbol)`` in ``on_bar``.
Books are looked up by symbol through ``books`` (``symbol -> L2Book | None``), so the pipeline
can resync or fail over to another source's book between steps. Without books (a backtest on
candles) the input holds nothing and ``view.book`` is None.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from tradeloop.strategy.view import MarketView

if TYPE_CHECKING:  # the book (and numba) load only when a stream provides books
    from tradeloop.data.stream.book import L2Book

__all__ = ["BookInput"]


class BookInput:
    """Side input ``order_book`` (see the module doc).

    Parameters
    ----------
    books
        ``symbol -> the symbol's book or None``; None: no books (every value None).
    levels
        Levels per side in the summary (and the imbalance depth).
    """

    name = "order_book"

    def __init__(
        self, books: Callable[[str], L2Book | None] | None = None, levels: int = 10
    ) -> None:
        self.books = books
        self.levels = levels
        #: steps that had a synced book, all symbols
        self.served = 0

    def update(self, view: MarketView) -> None:
        """Set ``view.inputs['order_book'][symbol]`` to the book summary now."""
        values = view.inputs.setdefault(self.name, {})
        for symbol in view.symbols:
            book = self.books(symbol) if self.books is not None else None
            top = book.top(self.levels) if book is not None else None
            values[symbol] = top
            if top is not None:
                self.served += 1
