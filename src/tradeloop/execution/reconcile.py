"""Reconciliation: the venue is the source of truth for balances, positions and open orders.

:func:`reconcile` compares what the venue broker believes (its portfolio and working orders)
with what the venue reports and returns a :class:`ReconcileReport` listing every difference.
With the ``adopt`` policy the portfolio takes the venue's positions and cash and orders the
venue no longer works are resolved through the state machine (``fetch_order``; an order the
venue does not know is a transition to ``expired``/``rejected``, never a crash). With
``halt`` nothing is changed: the caller halts trading and alerts. While orders are in flight
(working, or fills not yet received) an ``adopt`` reconciliation is deferred: the venue's
positions already include what those fills will add.

Positions: perpetuals and equities compare the venue's signed positions; spot compares each
traded symbol's base-asset balance with the long position held. Cash: the quote asset's
balance (spot) or the account's equity (perpetuals), within ``cash_tolerance`` (fees and marks
differ a little between the venue and the model).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from tradeloop.core.errors import ConfigError, TemporaryError
from tradeloop.core.position import Position
from tradeloop.execution.venue import MarketKind, OrderNotFoundError, VenueOrder
from tradeloop.execution.venue_broker import VenueBroker

__all__ = ["Difference", "ReconcilePolicy", "ReconcileReport", "reconcile", "settle_orders"]

logger = logging.getLogger(__name__)


class ReconcilePolicy(StrEnum):
    """What to do with differences."""

    ADOPT = "adopt"
    HALT = "halt"


@dataclass(frozen=True, slots=True)
class Difference:
    """One thing the venue and tradeloop disagree on."""

    kind: str  # position | cash | order
    symbol: str
    ours: float | str | None
    venue: float | str | None
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.kind} {self.symbol}: ours {self.ours}, venue {self.venue}" + (
            f" ({self.detail})" if self.detail else ""
        )


@dataclass(slots=True)
class ReconcileReport:
    """What one reconciliation found and did."""

    ts: int
    policy: ReconcilePolicy
    differences: list[Difference] = field(default_factory=list)
    adopted: bool = False
    resolved_orders: int = 0
    recovered_fills: int = 0
    #: orders were in flight: nothing compared, try again shortly
    deferred: bool = False

    def as_dict(self) -> dict[str, Any]:
        """For the status file and alerts."""
        return {
            "ts": self.ts,
            "policy": self.policy.value,
            "differences": [str(d) for d in self.differences],
            "adopted": self.adopted,
            "resolved_orders": self.resolved_orders,
            "recovered_fills": self.recovered_fills,
            "deferred": self.deferred,
        }


def reconcile(
    broker: VenueBroker,
    symbols: list[str],
    ts_ns: int,
    *,
    policy: ReconcilePolicy | str = ReconcilePolicy.ADOPT,
    cash_tolerance: float = 0.005,
    adopt_cash: bool = True,
    prices: Mapping[str, float] | None = None,
) -> ReconcileReport:
    """Compare the broker's view with the venue's, and adopt the venue's under ``adopt``.

    ``prices`` (the last closes) value an adopted position the venue reports no entry price
    for (spot holdings).

    Raises
    ------
    TemporaryError
        When the venue cannot be reached (nothing is changed).
    """
    policy = ReconcilePolicy(policy)
    report = ReconcileReport(ts_ns, policy)
    client = broker.client
    # orders first: their fills change positions
    if policy is ReconcilePolicy.ADOPT:
        report.resolved_orders = _resolve_orders(broker, symbols)
        report.recovered_fills = broker.recover_missing_fills()
        broker.sync(ts_ns)
        if broker.pending:
            # an order still working, or fills reported but not yet received: the venue's
            # positions already hold what ours will when they arrive; adopting now would
            # count those fills twice. Compare again once nothing is in flight.
            report.deferred = True
            logger.info("reconciliation deferred: %d order(s) in flight", len(broker.pending))
            return report
    rules = {s: client.market_rules(s) for s in symbols}
    portfolio = broker.portfolio
    venue_pos: dict[str, float] = {}
    entry: dict[str, float] = {}
    balances = client.balances()
    perps = [s for s in symbols if rules[s].kind is not MarketKind.SPOT]
    if perps:
        for p in client.positions(perps):
            venue_pos[p.symbol] = p.quantity
            entry[p.symbol] = p.entry_price
    for s in symbols:
        if rules[s].kind is MarketKind.SPOT:
            bal = balances.get(rules[s].base)
            venue_pos[s] = bal.total if bal is not None else 0.0
    diffs = report.differences
    for s in symbols:
        pos = portfolio.positions.get(s)
        ours = pos.signed_quantity if pos is not None else 0.0
        theirs = venue_pos.get(s, 0.0)
        step = rules[s].amount_step or 1e-9
        if abs(ours - theirs) > step / 2:
            diffs.append(Difference("position", s, ours, theirs))
    quote = rules[symbols[0]].quote if symbols else ""
    spot = bool(symbols) and all(rules[s].kind is MarketKind.SPOT for s in symbols)
    qbal = balances.get(quote)
    venue_cash = qbal.total if qbal is not None else 0.0
    if spot:
        ours_cash = portfolio.balance
    else:
        upnl = sum(
            (portfolio.marks.get(s, entry.get(s, math.nan)) - entry.get(s, math.nan))
            * venue_pos.get(s, 0.0)
            for s in perps
            if venue_pos.get(s)
        )
        venue_cash = venue_cash + (upnl if math.isfinite(upnl) else 0.0)
        ours_cash = portfolio.equity
    if abs(ours_cash - venue_cash) > cash_tolerance * max(abs(venue_cash), 1.0):
        diffs.append(
            Difference(
                "cash",
                quote,
                round(ours_cash, 8),
                round(venue_cash, 8),
                "spot balance" if spot else "equity",
            )
        )
    working = {w["client_order_id"] for w in broker.working_orders()}
    for order in client.open_orders(None):
        if (
            order.client_order_id.startswith((f"tl{broker.key}x", f"tl{broker.key}p"))
            and order.client_order_id not in working
        ):
            diffs.append(
                Difference(
                    "order",
                    order.symbol,
                    None,
                    order.client_order_id,
                    "working at the venue, unknown here",
                )
            )
    if diffs and policy is ReconcilePolicy.ADOPT:
        _adopt(
            broker,
            symbols,
            venue_pos,
            entry,
            venue_cash if adopt_cash else None,
            spot,
            ts_ns,
            report,
        )
    for d in diffs:
        logger.warning("reconciliation: %s", d)
    return report


def settle_orders(broker: VenueBroker, symbols: list[str], ts_ns: int) -> int:
    """Bring the broker's working orders up to the venue's view (statuses, missing fills);
    returns how many orders were resolved."""
    resolved = _resolve_orders(broker, symbols)
    broker.recover_missing_fills()
    broker.sync(ts_ns)
    return resolved


def _resolve_orders(broker: VenueBroker, symbols: list[str]) -> int:
    """Working orders the venue no longer works: fetch each (a transition, or not found)."""
    client = broker.client
    try:
        open_ids = {o.client_order_id for o in client.open_orders(None)}
    except ConfigError:
        open_ids = set()
    resolved = broker.resolve_unknown()
    for w in broker.working_orders():
        cid = w["client_order_id"]
        if cid in open_ids:
            continue
        try:
            snap: VenueOrder = client.fetch_order(w["symbol"], cid)
        except OrderNotFoundError:
            broker.order_gone(cid)
            resolved += 1
            continue
        except TemporaryError:
            continue
        broker.apply_venue_order(snap)
        resolved += 1
    return resolved


def _adopt(
    broker: VenueBroker,
    symbols: list[str],
    venue_pos: Mapping[str, float],
    entry: Mapping[str, float],
    venue_cash: float | None,
    spot: bool,
    ts_ns: int,
    report: ReconcileReport,
) -> None:
    p = broker.portfolio
    for s in symbols:
        theirs = venue_pos.get(s, 0.0)
        step = broker.client.market_rules(s).amount_step or 1e-9
        pos = p.positions.get(s)
        ours = pos.signed_quantity if pos is not None else 0.0
        if abs(ours - theirs) <= step / 2:
            continue
        if abs(theirs) <= step / 2:
            p.positions.pop(s, None)
            broker.watched.discard(s)
            continue
        direction = 1 if theirs > 0 else -1
        price = entry.get(s, math.nan)
        if not math.isfinite(price) or price <= 0:
            price = pos.entry_price if pos is not None else p.marks.get(s, math.nan)
        if not (math.isfinite(price) and price > 0):
            logger.error("reconciliation: no price to value %s %s; not adopted", theirs, s)
            report.differences.append(Difference("position", s, ours, theirs, "no price: kept"))
            continue
        if pos is not None and pos.direction == direction:
            p.positions[s] = replace(pos, quantity=abs(theirs))
        else:
            p.positions[s] = Position(
                id=f"{s}-adopted-{ts_ns}",
                symbol=s,
                direction=direction,
                quantity=abs(theirs),
                entry_price=price,
                entry_ts=ts_ns,
                entry_fee=0.0,
                tag="adopted",
            )
        p.marks.setdefault(s, price)
    if venue_cash is not None:
        if spot:
            p.balance = venue_cash
        else:
            p.balance += venue_cash - p.equity
    report.adopted = True
