"""Slippage of a live run: every fill's expected price (the last price when its order was sent)
against the venue's actual price, per fill, per trade and in total.

The venue broker keeps its records in the run's engine state (``broker.slippage``: the recent
fills as ``{order_id, symbol, side, quantity, expected, actual, ts}``; ``broker.slippage_totals``:
``[fills, sum of bps, total cost]`` over every fill). ``tradeloop live report``,
``tradeloop runs --state`` and the HTML report read them through this module. Positive numbers
are adverse: paid more on a buy, got less on a sell.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tradeloop.core.orders import Fill
from tradeloop.core.position import Trade

__all__ = ["SlippageView", "fill_rows", "slippage_view", "totals"]


def _signed(side: str, expected: float, actual: float) -> tuple[float, float]:
    """(bps, price difference), both positive when adverse."""
    sign = 1.0 if side == "buy" else -1.0
    bps = sign * (actual - expected) / expected * 10_000.0 if expected > 0 else 0.0
    return bps, sign * (actual - expected)


def fill_rows(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The records with ``bps`` (adverse, basis points of the expected price) and ``cost``
    (adverse, quote currency) added."""
    rows = []
    for r in records:
        bps, diff = _signed(str(r["side"]), float(r["expected"]), float(r["actual"]))
        rows.append({**r, "bps": bps, "cost": diff * float(r["quantity"])})
    return rows


def totals(broker_state: Mapping[str, Any]) -> dict[str, float]:
    """``fills``, ``mean_bps`` and ``total_cost`` over every fill of the run (the broker's
    running totals, which outlive the recent records it keeps)."""
    raw = broker_state.get("slippage_totals")
    if isinstance(raw, list) and len(raw) == 3:
        fills, bps_sum, cost = int(raw[0]), float(raw[1]), float(raw[2])
    else:
        rows = [r for r in fill_rows(broker_state.get("slippage") or []) if r["expected"] > 0]
        fills, bps_sum, cost = len(rows), sum(r["bps"] for r in rows), sum(r["cost"] for r in rows)
    return {"fills": fills, "mean_bps": bps_sum / fills if fills else 0.0, "total_cost": cost}


@dataclass(frozen=True, slots=True)
class SlippageView:
    """What the HTML report shows of a run's slippage.

    Attributes
    ----------
    fills, mean_bps, total_cost
        Totals over every fill (see :func:`totals`).
    by_trade
        Trade id → (entry bps, exit bps); None where the fill has no record (older than the
        records kept, or no expected price).
    """

    fills: int
    mean_bps: float
    total_cost: float
    by_trade: Mapping[str, tuple[float | None, float | None]]


def _order_bps(records: Iterable[Mapping[str, Any]]) -> dict[int, float]:
    """Quantity-weighted adverse bps per order id (partial fills average in)."""
    weighted: dict[int, list[float]] = {}
    for r in fill_rows(records):
        if not float(r["expected"]) > 0:
            continue
        acc = weighted.setdefault(int(r["order_id"]), [0.0, 0.0])
        acc[0] += r["bps"] * float(r["quantity"])
        acc[1] += float(r["quantity"])
    return {oid: s / q for oid, (s, q) in weighted.items() if q > 0}


def slippage_view(
    broker_state: Mapping[str, Any], trades: Sequence[Trade], fills: Iterable[Fill]
) -> SlippageView | None:
    """The per-trade and total slippage of a run, or None when it has no fill with an expected
    price (a backtest or paper run).

    A trade's entry (exit) is the stored fill of its symbol at its entry (exit) time; that
    fill's order gives the venue records' quantity-weighted slippage.
    """
    total = totals(broker_state)
    if not total["fills"]:
        return None
    per_order = _order_bps(broker_state.get("slippage") or [])
    at: dict[tuple[str, int], int] = {}
    for f in fills:
        at.setdefault((f.symbol, f.ts), f.order_id)

    def bps(symbol: str, ts: int | None) -> float | None:
        oid = at.get((symbol, ts)) if ts is not None else None
        return per_order.get(oid) if oid is not None else None

    by_trade = {t.id: (bps(t.symbol, t.entry_ts), bps(t.symbol, t.exit_ts)) for t in trades}
    return SlippageView(
        fills=int(total["fills"]),
        mean_bps=total["mean_bps"],
        total_cost=total["total_cost"],
        by_trade=by_trade,
    )
