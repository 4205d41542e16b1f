"""``tradeloop live --broker alpaca`` with stops and targets resting at the local Alpaca venue
(oco orders through the unmodified alpaca-py), against ``tradeloop paper`` on the same SPY
minutes; every resting order is in the run's order journal with its statuses and fills."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tradeloop.core.order_status import OrderStatus
from tradeloop.core.position import ExitReason
from tradeloop.engine.control import build_snapshot
from tradeloop.execution.venue_broker import is_broker_order
from tradeloop.store.state import open_state_store
from tradeloop.testing.venue.alpaca import load_equity_minutes

from .test_alpaca_live import paper_then_live

PARAMS = {"fast": 3, "slow": 8, "stop_loss": 0.0006, "take_profit": 0.0008}


def test_live_on_alpaca_rests_stops_and_targets_and_journals_them(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paper, live, _, venue = paper_then_live(
        load_equity_minutes(shared_data), PARAMS, tmp_path, monkeypatch
    )
    book = venue.book
    ocos = [o for o in book.orders.values() if o.order_class == "oco" and o.parent is None]
    positions = {s: p.qty for s, p in book.positions.items()}
    assert paper.kernel is not None
    assert live.kernel is not None
    paper_trades = paper.kernel.portfolio.trades
    live_trades = live.kernel.portfolio.trades
    reasons = {t.exit_reason for t in paper_trades}
    assert {ExitReason.STOP_LOSS, ExitReason.SIGNAL} <= reasons  # the run proves something
    assert len(ocos) >= len(paper_trades)  # every position's exits rested as one oco order
    assert all(o.qty == math.floor(o.qty) for o in ocos)  # whole shares only
    # Assert 1: live trades like paper. A position is split in the oco's whole shares and
    # the fraction the bot sells at the next open; an exit in the entry's own bar (the venue
    # had matched that bar before the pair could rest) is the bot's, at the next open
    minute = 60_000_000_000
    assert sorted({t.entry_ts for t in live_trades}) == [t.entry_ts for t in paper_trades]
    for pt in paper_trades:
        parts = [t for t in live_trades if t.entry_ts == pt.entry_ts]
        assert {t.exit_reason for t in parts} == {pt.exit_reason}
        assert parts[0].entry_price == pt.entry_price
        assert sum(t.quantity for t in parts) == pytest.approx(pt.quantity, rel=1e-3)
        first = parts[0]
        assert pt.exit_ts is not None
        if pt.exit_ts == pt.entry_ts:
            assert first.exit_ts == pt.exit_ts + minute
        elif pt.exit_reason is ExitReason.STOP_LOSS:
            assert first.exit_ts == pt.exit_ts
            assert pt.stop_loss is not None
            assert first.exit_price == math.floor(pt.stop_loss * 100) / 100  # on the grid
        else:
            assert (first.exit_ts, first.exit_price) == (pt.exit_ts, pt.exit_price)
        for rest in parts[1:]:
            assert rest.quantity < 1.0
            assert rest.exit_ts == first.exit_ts + minute  # type: ignore[operator]
    assert positions == {s: p.signed_quantity for s, p in live.kernel.portfolio.positions.items()}
    # Assert 2: the journal holds every resting order (negative ids) and every bot exit
    # with its final status, and every fill belongs to a journaled order
    with open_state_store(str(tmp_path / "live.db")) as store:
        orders = {o.order.id: o for o in store.load_orders("live")}
        fills = store.load_fills("live")
    resting = [o for oid, o in orders.items() if oid < 0]
    assert len(resting) == 2 * len(ocos)
    assert {o.order.tag for o in resting} == {"resting_stop_loss", "resting_take_profit"}
    assert all(o.status in (OrderStatus.FILLED, OrderStatus.CANCELLED) for o in resting)
    filled_legs = {o.order.id for o in resting if o.status == OrderStatus.FILLED}
    assert filled_legs  # an oco leg closed a position
    assert filled_legs <= {f.order_id for f in fills}
    assert {f.order_id for f in fills} <= orders.keys()
    bot_exits = [o for o in orders.values() if o.order.tag in ("stop_loss", "take_profit")]
    assert bot_exits
    assert all(o.status == OrderStatus.FILLED for o in bot_exits)
    # the API shows them among the recent orders, by creation
    recent = build_snapshot(live, live.kernel)["orders"]["recent"]
    assert any(o["id"] < 0 and o["tag"].startswith("resting_") for o in recent)
    assert [o["created"] for o in recent] == sorted((o["created"] for o in recent), reverse=True)
    # without the broker's own orders, the journal is the step's orders, as paper's
    step_orders = [o.order for o in orders.values() if not is_broker_order(o.order)]
    paper_orders = [s.order for _, s in sorted(paper.kernel._orders.items())]
    assert len(step_orders) < len(orders)
    assert [(o.ts_created, o.side, o.tag) for o in step_orders] == [
        (o.ts_created, o.side, o.tag) for o in paper_orders
    ]
