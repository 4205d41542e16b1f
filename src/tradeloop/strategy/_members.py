"""Private parts of the strategy manager: a member's record, its portfolio view and market
view, and the configuration checks (see :mod:`tradeloop.strategy.manager`)."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, overload

from tradeloop.core.errors import ConfigError, StrategyError
from tradeloop.core.position import Position, Trade
from tradeloop.core.time import to_iso
from tradeloop.strategy.base import Strategy
from tradeloop.strategy.view import MarketView, SeriesTimeline

if TYPE_CHECKING:
    from tradeloop.core.portfolio import Portfolio

__all__ = [
    "FOREIGN",
    "SUM_TOLERANCE",
    "Member",
    "MemberPortfolio",
    "TradeBook",
    "check_name",
    "check_total",
    "check_weight",
    "has_bar_after",
    "member_error",
    "member_of",
    "sub_view",
    "sync_view",
]

logger = logging.getLogger("tradeloop.strategy.manager")

#: Holder of a symbol whose position no member owns (opened outside the manager, or by a
#: member no longer configured). Contains a colon, so it is never a member name.
FOREIGN = ":foreign"
#: Tolerance on the sum of the weights (0.1 + 0.2 + 0.7 is 1.0000000000000002).
SUM_TOLERANCE = 1e-9


def member_of(position_id: str) -> str:
    """Return the member (strategy) name an opening-signal id starts with ('' for none).

    >>> member_of("fast:BTC/USDT:1700000000000000000")
    'fast'
    >>> member_of("BTC/USDT-3")
    ''
    """
    head, sep, _ = position_id.partition(":")
    return head if sep else ""


class _ReadOnlyTrades(Sequence[Trade]):
    """A member's closed trades, read-only, without copying the list on every access."""

    __slots__ = ("_items",)

    def __init__(self, items: list[Trade]) -> None:
        self._items = items

    @overload
    def __getitem__(self, index: int) -> Trade: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Trade]: ...

    def __getitem__(self, index: int | slice) -> Trade | Sequence[Trade]:
        if isinstance(index, slice):
            return tuple(self._items[index])
        return self._items[index]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Trade]:
        return iter(self._items)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._items!r})"


class TradeBook:
    """The account's closed trades by member, extended incrementally (the list only grows)."""

    __slots__ = ("_account", "_seen", "by_member")

    def __init__(self) -> None:
        self._account: Portfolio | None = None
        self._seen = 0
        self.by_member: dict[str, list[Trade]] = {}

    def of(self, account: Portfolio, name: str) -> list[Trade]:
        trades = account.trades
        if account is not self._account or len(trades) < self._seen:
            self._account, self._seen = account, 0
            for items in self.by_member.values():
                items.clear()
        if len(trades) > self._seen:
            for trade in trades[self._seen :]:
                self.by_member.setdefault(member_of(trade.id), []).append(trade)
            self._seen = len(trades)
        return self.by_member.setdefault(name, [])


class MemberPortfolio:
    """The account as one member of a :class:`StrategyManager` sees it (read-only).

    It has the attributes strategies read on a :class:`~tradeloop.core.portfolio.Portfolio`:
    ``positions``, ``position()``, ``is_flat()``, ``marks`` and ``trades``/``closed_trades``
    hold only what the member owns (marks: of the symbols it trades); ``equity``, ``balance``
    and ``initial_balance`` are the account's scaled by the member's weight, the base its
    equity-fraction sizes are read against. Nothing here can change the account.
    """

    __slots__ = ("_account", "_book", "_member", "_positions", "positions")

    def __init__(self, member: Member, book: TradeBook) -> None:
        self._member = member
        self._book = book
        self._account: Portfolio | None = None
        self._positions: dict[str, Position] = {}
        #: the member's open positions by symbol (a read-only live mapping)
        self.positions: Mapping[str, Position] = MappingProxyType(self._positions)

    def _real(self) -> Portfolio:
        account = self._account
        if account is None:
            raise ConfigError(f"member {self._member.name!r}: no account before the first bar")
        return account

    @property
    def name(self) -> str:
        """The member's name."""
        return self._member.name

    @property
    def weight(self) -> float:
        """The member's allocation."""
        return self._member.weight

    @property
    def balance(self) -> float:
        """The account's cash times the member's weight."""
        return self._member.weight * self._real().balance

    @property
    def initial_balance(self) -> float:
        """The account's starting cash times the member's weight."""
        return self._member.weight * self._real().initial_balance

    @property
    def equity(self) -> float:
        """The account's equity times the member's weight."""
        return self._member.weight * self._real().equity

    @property
    def marks(self) -> Mapping[str, float]:
        """Latest marks of the symbols the member trades (all of them when it trades every
        symbol)."""
        marks = self._real().marks
        symbols = self._member.symbols
        if not symbols:
            return MappingProxyType(marks)
        return MappingProxyType({s: p for s, p in marks.items() if s in symbols})

    @property
    def trades(self) -> Sequence[Trade]:
        """The member's closed trades, oldest first."""
        return _ReadOnlyTrades(self._book.of(self._real(), self._member.name))

    @property
    def closed_trades(self) -> list[Trade]:
        """The member's trades with an exit."""
        return [t for t in self.trades if t.is_closed]

    def position(self, symbol: str) -> Position | None:
        """Return the member's open position in ``symbol`` or None."""
        return self._positions.get(symbol)

    def is_flat(self, symbol: str) -> bool:
        """True when the member has no open position in ``symbol``."""
        return symbol not in self._positions

    @property
    def margin_used(self) -> float:
        """Gross notional of the member's positions at the latest marks."""
        marks = self._real().marks
        return sum(p.quantity * marks.get(s, p.entry_price) for s, p in self._positions.items())

    @property
    def unrealized_pnl(self) -> float:
        """Unrealized P&L of the member's positions at the latest marks."""
        marks = self._real().marks
        return sum(
            p.unrealized_pnl(marks.get(s, p.entry_price)) for s, p in self._positions.items()
        )

    def __repr__(self) -> str:
        return f"MemberPortfolio({self._member.name!r}, positions={list(self._positions)})"


class Member:
    """A member's runtime record (mutable: weights and instances change on a reconfigure)."""

    __slots__ = (
        "carried",
        "name",
        "pending_init",
        "portfolio",
        "strategy",
        "symbols",
        "view",
        "weight",
    )

    def __init__(
        self,
        name: str,
        strategy: Strategy,
        weight: float,
        symbols: tuple[str, ...],
        book: TradeBook,
    ) -> None:
        self.name = name
        self.strategy = strategy
        self.weight = weight
        #: the symbols it trades; empty: every symbol of the run
        self.symbols = symbols
        self.portfolio = MemberPortfolio(self, book)
        #: the view the member sees (the run's own, or one listing only its symbols)
        self.view: MarketView | None = None
        #: True for a rebuilt instance whose on_init has not run yet
        self.pending_init = False
        #: state to hand to a rebuilt instance after its on_init (its predecessor's)
        self.carried: Mapping[str, Any] | None = None


def check_name(name: object) -> str:
    if not isinstance(name, str) or not name or ":" in name:
        raise ConfigError(
            f"member name {name!r} is not usable: it must be a non-empty text without ':' "
            "(it prefixes the ids of the member's positions)"
        )
    return name


def check_weight(name: str, weight: object) -> float:
    try:
        value = float(weight)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"member {name!r}: weight {weight!r} is not a number") from None
    if not (math.isfinite(value) and 0.0 < value <= 1.0):
        raise ConfigError(f"member {name!r}: weight must be in (0, 1], got {weight!r}")
    return value


def check_total(weights: Mapping[str, float]) -> None:
    total = sum(weights.values())
    if total > 1.0 + SUM_TOLERANCE:
        listed = ", ".join(f"{n}={w:g}" for n, w in weights.items())
        raise ConfigError(f"member weights sum to {total:g}, more than 1 ({listed})")


def sub_view(parent: MarketView, symbols: tuple[str, ...]) -> MarketView:
    """A view over the parent's bars (shared, not copied) whose traded symbols are
    ``symbols``."""
    series: dict[tuple[str, str], SeriesTimeline] = {}
    for symbol in parent.symbols:
        for tf in parent.timeframes(symbol):
            series[(symbol, tf)] = SeriesTimeline(
                parent.arrays(symbol, tf), parent.index_at_steps(symbol, tf)
            )
    instruments = {s: parent.instrument(s) for s in parent.symbols}
    view = MarketView(symbols, parent.base_timeframe, series, instruments, parent.step_ts)
    sync_view(view, parent)
    return view


def sync_view(view: MarketView, parent: MarketView) -> None:
    """Move a member's own view to the parent's step (``i`` follows its primary symbol)."""
    view.step = parent.step
    view.i = parent.index(view.symbols[0]) if parent.step >= 0 else -1
    view.inputs = parent.inputs


def has_bar_after(view: MarketView, symbol: str, ts: int) -> bool:
    """True when ``symbol`` has completed a base bar that opened after ``ts`` (so an order
    sent at ``ts`` has had its open)."""
    idx = view.index(symbol)
    return idx >= 0 and int(view.arrays(symbol).ts[idx]) > ts


def member_error(m: Member, exc: BaseException, ts: int | None) -> Exception:
    """Wrap an exception from member code into a :class:`StrategyError` naming the member."""
    if isinstance(exc, ConfigError | StrategyError):
        return exc
    when = to_iso(ts) if ts is not None and ts >= 0 else None
    logger.error(
        "member %s failed at %s: %r",
        m.name,
        when,
        exc,
        extra={"strategy": m.name, "bar_time": when},
    )
    err = StrategyError(f"{type(exc).__name__}: {exc}", strategy=m.name, time_iso=when)
    err.__cause__ = exc
    return err
