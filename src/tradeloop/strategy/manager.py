"""Several strategies on one account: :class:`StrategyManager`.

The manager is itself a :class:`~tradeloop.strategy.base.Strategy`, so backtest, paper and live
run it through the one kernel step like any strategy. Each member gets:

* an allocation (``weight`` in (0, 1], the weights sum to at most 1): its equity-fraction
  entries are scaled by it, and its portfolio view shows equity and cash scaled by it;
* a read-only :class:`MemberPortfolio` that shows only the positions and trades it owns;
* the market view of the symbols it trades (every symbol of the run by default).

Ownership on a netting account (one position per symbol): the manager gives every opening
signal the id ``member:symbol:ts`` (:func:`~tradeloop.core.signal.signal_id`); the position
and its trade carry it, so the owner of a position is the id's prefix and survives a restart
without a separate record. A member owns a symbol from its opening signal until the position
closes. Its CLOSE is forwarded only while it owns the symbol; an OPEN while another member
holds the symbol is dropped and counted in :attr:`StrategyManager.conflicts`; a reversal by
the owner (an open in the other direction) goes through. Members are asked in the order given,
so on one step the earlier member wins a free symbol; a symbol closed by its owner is free
again from the next step.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from tradeloop.core.errors import ConfigError, StrategyError, did_you_mean
from tradeloop.core.position import Trade
from tradeloop.core.signal import Signal, SignalAction, SizeMode, signal_id
from tradeloop.core.time import to_iso
from tradeloop.strategy._members import (
    FOREIGN,
    Member,
    MemberPortfolio,
    TradeBook,
    check_name,
    check_total,
    check_weight,
    has_bar_after,
    member_error,
    member_of,
    sub_view,
    sync_view,
)
from tradeloop.strategy.base import NO_SIGNALS, Strategy
from tradeloop.strategy.view import MarketView

if TYPE_CHECKING:
    from tradeloop.core.portfolio import Portfolio

__all__ = [
    "Allocation",
    "MemberPortfolio",
    "StrategyManager",
    "StrategyPnL",
    "member_of",
    "pnl_by_strategy",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Allocation:
    """One member of a :class:`StrategyManager`.

    Attributes
    ----------
    strategy
        The strategy instance (its own parameters set).
    weight
        Its share of the account in (0, 1]: equity-fraction entries are multiplied by it.
    name
        Member name, unique in the manager (default: the strategy's registry name). Give two
        instances of one class distinct names. It prefixes the ids of the member's positions
        and trades, so keep it stable across restarts.
    symbols
        Symbols the member trades (default: the strategy's ``symbols``; empty: every symbol of
        the run). The member's view lists only these; it may still read other symbols' bars.
    """

    strategy: Strategy
    weight: float
    name: str | None = None
    symbols: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.symbols is not None and not isinstance(self.symbols, tuple):
            object.__setattr__(self, "symbols", tuple(self.symbols))

    @property
    def member_name(self) -> str:
        """The member's name: ``name`` or the strategy's registry name."""
        if self.name is not None:
            return self.name
        return self.strategy.strategy_name() if isinstance(self.strategy, Strategy) else ""


@dataclass(frozen=True, slots=True)
class StrategyPnL:
    """Closed-trade results of one member (trades grouped by their id's prefix)."""

    strategy: str
    trades: int
    wins: int
    pnl: float
    fees: float

    @property
    def losses(self) -> int:
        """Closed trades with a P&L of zero or less."""
        return self.trades - self.wins

    @property
    def win_rate(self) -> float:
        """Wins over closed trades (0.0 without trades)."""
        return self.wins / self.trades if self.trades else 0.0

    @property
    def gross_pnl(self) -> float:
        """P&L before fees."""
        return self.pnl + self.fees


def pnl_by_strategy(trades: Iterable[Trade]) -> dict[str, StrategyPnL]:
    """Group closed ``trades`` by the member named in their id and total them.

    A trade's id is the id of the signal that opened it (``member:symbol:ts``); trades without
    such an id are grouped under ``''``. Open trades (no exit) are left out. Net P&L and fees
    are summed; a win is a trade with a net P&L above zero.
    """
    totals: dict[str, list[Any]] = {}
    for trade in trades:
        if not trade.is_closed:
            continue
        row = totals.setdefault(member_of(trade.id), [0, 0, 0.0, 0.0])
        row[0] += 1
        row[1] += trade.pnl > 0
        row[2] += trade.pnl
        row[3] += trade.fees
    return {
        name: StrategyPnL(name, n, wins, pnl, fees) for name, (n, wins, pnl, fees) in totals.items()
    }


class StrategyManager(Strategy):
    """Several strategies on one account, each with an allocation, run as one strategy.

    Parameters
    ----------
    members
        One :class:`Allocation` per member; weights in (0, 1] summing to at most 1, names
        unique, and all members on the same base (first) timeframe.

    The manager's ``timeframes`` are the shared base plus every member's extra timeframes,
    its ``symbols`` the union of the members' (empty when a member trades every symbol), its
    ``inputs`` the union of theirs. In every mode each member keeps its own contract:
    ``on_init`` once (then ``remember_init``), ``on_new_bars`` in paper/live, ``on_bar`` with
    its own view and :class:`MemberPortfolio`. A member that trades only some symbols of a
    multi-symbol run is called at the steps where one of its symbols has a new bar, as it
    would be if it ran alone on them.

    Entries: an equity-fraction size is multiplied by the member's weight, a quantity size is
    kept (the member sized it from its scaled equity); the signal gets the id
    ``member:symbol:ts``. See the module docstring for ownership and conflicts.

    Hot reload: :meth:`reconfigure` changes weights and parameters between steps.

    Raises
    ------
    ConfigError
        For an empty member list, a bad weight or name, weights summing to more than 1, the
        same strategy object twice, a nested manager, or members on different base
        timeframes.
    """

    def __init__(self, members: Sequence[Allocation]) -> None:
        super().__init__()
        if not members:
            raise ConfigError("a strategy manager needs at least one member (an Allocation)")
        self._book = TradeBook()
        built: list[Member] = []
        seen_objects: dict[int, str] = {}
        base: str | None = None
        base_owner = ""
        extras: list[str] = []
        union: list[str] = []
        every_symbol = False
        inputs: list[str] = []
        for alloc in members:
            if not isinstance(alloc, Allocation):
                raise ConfigError(f"members must be Allocation(strategy, weight), got {alloc!r}")
            strategy = alloc.strategy
            if not isinstance(strategy, Strategy):
                raise ConfigError(
                    f"Allocation.strategy must be a Strategy instance, got {strategy!r}"
                )
            name = check_name(alloc.member_name)
            if isinstance(strategy, StrategyManager):
                raise ConfigError(f"member {name!r} is a strategy manager; managers do not nest")
            if any(m.name == name for m in built):
                raise ConfigError(
                    f"two members are named {name!r}; give one of them a `name` in its Allocation"
                )
            if id(strategy) in seen_objects:
                raise ConfigError(
                    f"members {seen_objects[id(strategy)]!r} and {name!r} are the same strategy "
                    "object; give each member its own instance"
                )
            seen_objects[id(strategy)] = name
            weight = check_weight(name, alloc.weight)
            declared = tuple(strategy.timeframes)
            if declared:
                if base is None:
                    base, base_owner = declared[0], name
                elif declared[0] != base:
                    raise ConfigError(
                        f"member {name!r} trades on {declared[0]!r} but member {base_owner!r} on "
                        f"{base!r}: all members share the base (first) timeframe"
                    )
                extras.extend(tf for tf in declared[1:] if tf not in extras)
            symbols = tuple(alloc.symbols if alloc.symbols is not None else strategy.symbols)
            if symbols:
                union.extend(s for s in symbols if s not in union)
            else:
                every_symbol = True
            inputs.extend(i for i in strategy.inputs if i not in inputs)
            built.append(Member(name, strategy, weight, symbols, self._book))
        check_total({m.name: m.weight for m in built})
        self._members: tuple[Member, ...] = tuple(built)
        self._by_name: dict[str, Member] = {m.name: m for m in built}
        self.timeframes = (base, *[t for t in extras if t != base]) if base else ()  # type: ignore[misc]
        self.symbols = () if every_symbol else tuple(union)  # type: ignore[misc]
        self.inputs = tuple(inputs)  # type: ignore[misc]
        #: the run's view the member views were built from
        self._view: MarketView | None = None
        #: members with a view of their own (a subset of the run's symbols)
        self._narrow: tuple[Member, ...] = ()
        self._account: Portfolio | None = None
        #: symbol -> (member, position id, step ts) of entries sent but not yet seen filled
        self._claims: dict[str, tuple[str, str, int]] = {}
        self._conflicts: dict[str, int] = {m.name: 0 for m in built}
        self._ignored_closes: dict[str, int] = {m.name: 0 for m in built}
        self._any_owned = False
        self._warned_foreign: set[str] = set()

    # -- read-only facts -------------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        """Member names, in the order the members are asked."""
        return tuple(m.name for m in self._members)

    @property
    def weights(self) -> dict[str, float]:
        """Each member's weight."""
        return {m.name: m.weight for m in self._members}

    @property
    def conflicts(self) -> dict[str, int]:
        """Per member: opening signals dropped because another member held the symbol."""
        return dict(self._conflicts)

    @property
    def ignored_closes(self) -> dict[str, int]:
        """Per member: close signals dropped because the member did not own the symbol."""
        return dict(self._ignored_closes)

    def member(self, name: str) -> Strategy:
        """Return the strategy instance of member ``name``.

        Raises
        ------
        ConfigError
            If there is no such member.
        """
        return self._member(name).strategy

    def portfolio_of(self, name: str) -> MemberPortfolio:
        """Return the portfolio view member ``name`` is given (current after each bar).

        Raises
        ------
        ConfigError
            If there is no such member.
        """
        return self._member(name).portfolio

    def ownership(self) -> dict[str, str]:
        """Symbol -> id of the position a member owns or has an entry pending for."""
        out: dict[str, str] = {}
        if self._account is not None:
            for symbol, pos in self._account.positions.items():
                if member_of(pos.id) in self._by_name:
                    out[symbol] = pos.id
        for symbol, (_, pid, _) in self._claims.items():
            out.setdefault(symbol, pid)
        return out

    def pnl_by_strategy(self, trades: Iterable[Trade]) -> dict[str, StrategyPnL]:
        """Closed-trade results per member (every member listed, in order, zeros if it has no
        trade; trades of other origins follow under their id prefix)."""
        grouped = pnl_by_strategy(trades)
        out = {
            m.name: grouped.pop(m.name, StrategyPnL(m.name, 0, 0, 0.0, 0.0)) for m in self._members
        }
        out.update(grouped)
        return out

    def _member(self, name: str) -> Member:
        member = self._by_name.get(name)
        if member is None:
            raise ConfigError(
                f"unknown member {name!r}.{did_you_mean(name, self._by_name)} "
                f"Members: {', '.join(self._by_name)}"
            )
        return member

    # -- the strategy contract -------------------------------------------------------------
    def on_init(self, view: MarketView) -> None:
        """Initialise every member on its own view (``on_init``, then ``remember_init``).

        Raises
        ------
        ConfigError
            If a member trades a symbol the run has no data for.
        """
        for m in self._members:
            missing = [s for s in m.symbols if s not in view.symbols]
            if missing:
                raise ConfigError(
                    f"member {m.name!r} trades {missing} but the run has data for "
                    f"{list(view.symbols)}"
                )
        self._bind(view)
        for m in self._members:
            self._init_member(m, view.ts)
        logger.info(
            "strategy manager start",
            extra={
                "members": [
                    {
                        "name": m.name,
                        "strategy": m.strategy.strategy_name(),
                        "weight": m.weight,
                        "params": dict(m.strategy.params),
                        "symbols": list(m.symbols) or "all",
                    }
                    for m in self._members
                ]
            },
        )

    def remember_init(self) -> None:
        """Record each member's attributes as its ``on_init`` left them (see
        :meth:`Strategy.on_new_bars`); the kernels call it after ``on_init`` and after a
        restored ``set_state``."""
        for m in self._members:
            if not m.pending_init:
                m.strategy.remember_init()

    def on_new_bars(self, view: MarketView) -> None:
        """Pass the new bars to every member's ``on_new_bars`` (a member rebuilt by
        :meth:`reconfigure` runs its ``on_init`` instead)."""
        self._bind(view)
        for m in self._members:
            if m.pending_init:
                self._init_member(m, view.ts)
                continue
            try:
                m.strategy.on_new_bars(cast(MarketView, m.view))
            except StrategyError:
                raise
            except Exception as exc:
                raise member_error(m, exc, view.ts) from exc

    def signal_bars(self, view: MarketView) -> np.ndarray | None:
        """The union of the members' hints when every member gives one, else None."""
        masks = []
        for m in self._members:
            if m.view is not view:
                return None
            mask = m.strategy.signal_bars(view)
            if mask is None:
                return None
            masks.append(np.asarray(mask, dtype=bool))
        return np.logical_or.reduce(masks) if len(masks) > 1 else masks[0]

    def on_bar(self, view: MarketView, portfolio: Portfolio) -> Sequence[Signal]:
        """Ask every member in turn and return the signals that pass the ownership rules."""
        if view is not self._view:
            self._bind(view)
        else:
            for m in self._narrow:
                sync_view(cast(MarketView, m.view), view)
        if portfolio is not self._account:
            self._account = portfolio
            for m in self._members:
                m.portfolio._account = portfolio
        ts = view.ts
        holder = self._holders(view, portfolio)
        out: list[Signal] | None = None
        repeats: dict[tuple[str, str], int] | None = None
        for m in self._members:
            if m.pending_init:
                self._init_member(m, ts)
            member_view = cast(MarketView, m.view)
            if member_view is not view and not any(member_view.updated(s) for s in m.symbols):
                continue  # none of its symbols has a new bar at this step
            try:
                signals = m.strategy.on_bar(member_view, cast("Portfolio", m.portfolio))
            except StrategyError:
                raise
            except Exception as exc:
                raise member_error(m, exc, ts) from exc
            if not signals:
                continue
            name = m.name
            for signal in signals:
                symbol = signal.symbol
                if m.symbols and symbol not in m.symbols:
                    raise StrategyError(
                        f"signal for {symbol!r}, which is not one of its symbols {list(m.symbols)}",
                        strategy=name,
                        time_iso=to_iso(ts),
                    )
                owner = holder.get(symbol)
                if signal.action is SignalAction.CLOSE:
                    if owner != name:
                        self._ignored_closes[name] += 1
                        continue
                else:
                    if owner is not None and owner != name:
                        self._conflicts[name] += 1
                        logger.debug(
                            "member %s: entry in %s dropped, held by %s", name, symbol, owner
                        )
                        continue
                    if repeats is None:
                        repeats = {}
                    k = repeats.get((name, symbol), 0)
                    repeats[(name, symbol)] = k + 1
                    pid = signal.position_id
                    if pid is None:
                        pid = signal_id(name, symbol, ts, k)
                    elif member_of(pid) != name:
                        pid = f"{name}:{pid}"
                    if signal.size_mode is SizeMode.EQUITY_FRACTION and m.weight != 1.0:
                        signal = replace(signal, size=signal.size * m.weight, position_id=pid)
                    else:
                        signal = signal.with_position_id(pid)
                    holder[symbol] = name
                    self._claims[symbol] = (name, pid, ts)
                if out is None:
                    out = [signal]
                else:
                    out.append(signal)
        return out if out is not None else NO_SIGNALS

    def get_state(self) -> dict[str, Any]:
        """Every member's state under its name, the ownership map (symbol -> position id,
        with the step time of entries not yet seen filled) and the counters."""
        members: dict[str, Any] = {}
        for m in self._members:
            if m.pending_init:
                members[m.name] = dict(m.carried or {})
                continue
            try:
                members[m.name] = m.strategy.get_state()
            except StrategyError:
                raise
            except Exception as exc:
                raise member_error(m, exc, None) from exc
        ownership: dict[str, dict[str, Any]] = {
            symbol: {"position_id": pid, "pending_since": None}
            for symbol, pid in self.ownership().items()
        }
        for symbol, (_, pid, ts) in self._claims.items():
            ownership[symbol] = {"position_id": pid, "pending_since": ts}
        return {
            "members": members,
            "ownership": ownership,
            "conflicts": dict(self._conflicts),
            "ignored_closes": dict(self._ignored_closes),
        }

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`get_state`: members' states, pending entries and counters.

        Owned positions need nothing restored: their ids name their members. State of a
        member no longer configured is ignored (logged).
        """
        for name, member_state in dict(state.get("members") or {}).items():
            m = self._by_name.get(name)
            if m is None:
                logger.warning("stored state of member %s ignored: no such member now", name)
                continue
            if m.pending_init:
                m.carried = member_state
                continue
            try:
                m.strategy.set_state(member_state)
            except StrategyError:
                raise
            except Exception as exc:
                raise member_error(m, exc, None) from exc
        self._claims = {}
        for symbol, entry in dict(state.get("ownership") or {}).items():
            since = entry.get("pending_since")
            pid = str(entry.get("position_id", ""))
            owner = member_of(pid)
            if since is not None and owner in self._by_name:
                self._claims[symbol] = (owner, pid, int(since))
        for field, counter in (
            ("conflicts", self._conflicts),
            ("ignored_closes", self._ignored_closes),
        ):
            for name, value in dict(state.get(field) or {}).items():
                if name in counter:
                    counter[name] = int(value)

    # -- hot reload ------------------------------------------------------------------------
    def reconfigure(
        self,
        weights: Mapping[str, float] | None = None,
        params: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        """Change members' weights and parameters, all or nothing (hot reload).

        ``weights`` maps member names to new weights (others keep theirs); ``params`` maps
        member names to parameter changes (others keep their values). Everything is checked
        before anything changes: unknown members (with a "did you mean"), weights out of
        (0, 1] or summing to more than 1, and parameters through the member's own
        :class:`~tradeloop.strategy.params.Param` coercion and ``validate``.

        A new weight applies to entries from the next step; open positions keep their size.
        A member whose parameters change is rebuilt (a new instance of its class with the
        merged parameters); the new instance runs ``on_init`` on the next bar (before its
        ``on_new_bars``/``on_bar`` would), then gets its predecessor's ``get_state()``
        through ``set_state``, as after a restart. Its open position stays its own (the
        position id carries the member name). Unchanged parameters rebuild nothing. Call it
        between steps, on the thread that runs the kernel.

        Raises
        ------
        ConfigError
            Naming the member and the key; the running configuration is then unchanged.
        StrategyError
            If a rebuilt member's predecessor fails in ``get_state``; nothing is changed.
        """
        weights = dict(weights or {})
        params = dict(params or {})
        for name in (*weights, *params):
            self._member(name)
        new_weights = {m.name: m.weight for m in self._members}
        for name, weight in weights.items():
            new_weights[name] = check_weight(name, weight)
        check_total(new_weights)
        rebuilt: dict[str, tuple[Strategy, Mapping[str, Any] | None]] = {}
        for name, changes in params.items():
            m = self._by_name[name]
            if not isinstance(changes, Mapping):
                raise ConfigError(
                    f"member {name!r}: parameters must be a mapping of name to value, "
                    f"got {changes!r}"
                )
            merged = {**m.strategy.params, **changes}
            try:
                fresh = type(m.strategy)(**merged)
            except ConfigError as exc:
                raise ConfigError(f"member {name!r}: {exc}") from exc
            except Exception as exc:
                raise ConfigError(f"member {name!r}: {type(exc).__name__}: {exc}") from exc
            if dict(fresh.params) == dict(m.strategy.params):
                continue
            if m.pending_init:
                carried = m.carried
            else:
                try:
                    carried = m.strategy.get_state()
                except Exception as exc:
                    raise member_error(m, exc, None) from exc
            rebuilt[name] = (fresh, carried)
        # nothing below can fail: apply it all
        for m in self._members:
            m.weight = new_weights[m.name]
            change = rebuilt.get(m.name)
            if change is not None:
                m.strategy, m.carried = change
                m.pending_init = True
        logger.info(
            "strategy manager reconfigured",
            extra={
                "weights": new_weights,
                "rebuilt": {n: dict(s.params) for n, (s, _) in rebuilt.items()},
            },
        )

    # -- internals -------------------------------------------------------------------------
    def _bind(self, view: MarketView) -> None:
        """Give every member its view of ``view`` (the run's step and bars)."""
        narrow = []
        for m in self._members:
            if not m.symbols or m.symbols == view.symbols:
                m.view = view
            else:
                m.view = sub_view(view, m.symbols)
                narrow.append(m)
        self._view = view
        self._narrow = tuple(narrow)

    def _init_member(self, m: Member, ts: int | None) -> None:
        """Run ``on_init`` on the member's view as before a run's first bar, hand over carried
        state (a rebuilt member), and record what ``on_init`` set."""
        view = cast(MarketView, m.view)
        step, i = view.step, view.i
        view.step = view.i = -1
        try:
            m.strategy.on_init(view)
            if m.carried:
                m.strategy.set_state(m.carried)
            m.strategy.remember_init()
        except StrategyError:
            raise
        except Exception as exc:
            raise member_error(m, exc, ts) from exc
        finally:
            view.step, view.i = step, i
        m.carried = None
        m.pending_init = False

    def _holders(self, view: MarketView, portfolio: Portfolio) -> dict[str, str]:
        """Symbol -> member holding it now (its position, or an entry not yet filled); fills
        each member's portfolio view with the positions it owns."""
        positions, claims = portfolio.positions, self._claims
        if not positions and not claims and not self._any_owned:
            return {}
        for m in self._members:
            if m.portfolio._positions:
                m.portfolio._positions.clear()
        holder: dict[str, str] = {}
        owned = False
        for symbol, pos in positions.items():
            owner = member_of(pos.id)
            holding = self._by_name.get(owner)
            if holding is None:
                holder[symbol] = FOREIGN
                if pos.id not in self._warned_foreign:
                    self._warned_foreign.add(pos.id)
                    logger.warning(
                        "position %s in %s belongs to no member: no member may trade %s "
                        "while it is open",
                        pos.id,
                        symbol,
                        symbol,
                    )
                continue
            holder[symbol] = owner
            holding.portfolio._positions[symbol] = pos
            owned = True
        self._any_owned = owned
        if claims:
            for symbol, (owner, pid, since) in list(claims.items()):
                held = positions.get(symbol)
                if (held is not None and held.id == pid) or has_bar_after(view, symbol, since):
                    del claims[symbol]  # filled, or its open came and went (refused)
                else:
                    holder.setdefault(symbol, owner)
        return holder
