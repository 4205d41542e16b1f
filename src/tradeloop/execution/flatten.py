"""Flatten an account at a venue: cancel open orders, close positions (``tradeloop live flatten``).

Works on the venue's own view (what it reports now), so it also closes what a dead process or
a human left behind. Perpetuals/equities: a reduce-only market order per position. Spot: the
base asset held in each traded symbol is sold (rounded down to the venue's step; a remainder
below the minimum notional is left and reported).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

from tradeloop.core.errors import TradeloopError
from tradeloop.core.orders import OrderSide, OrderType
from tradeloop.execution.venue import MarketKind, OrderRequest, VenueClient

__all__ = ["FlattenResult", "flatten_account"]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class FlattenResult:
    """What a flatten did."""

    cancelled: int = 0
    closing: int = 0
    errors: list[str] = field(default_factory=list)


def flatten_account(client: VenueClient, symbols: list[str], *, tag: str) -> FlattenResult:
    """Cancel every open order of ``symbols`` and close their positions; ``tag`` makes the
    closing orders' client ids unique per call (``tlflat<tag>x<n>``)."""
    result = FlattenResult()
    wanted = set(symbols)
    for order in client.open_orders(None):
        if order.symbol not in wanted:
            continue
        try:
            client.cancel_order(order.symbol, order.client_order_id)
            result.cancelled += 1
        except TradeloopError as exc:
            result.errors.append(f"cancel {order.client_order_id}: {exc}")
    n = 0
    rules = {s: client.market_rules(s) for s in symbols}
    perps = [s for s in symbols if rules[s].kind is not MarketKind.SPOT]
    closes: list[tuple[str, float]] = (
        [(p.symbol, p.quantity) for p in client.positions(perps)] if perps else []
    )
    spot = [s for s in symbols if rules[s].kind is MarketKind.SPOT]
    if spot:
        balances = client.balances()
        for s in spot:
            held = balances.get(rules[s].base)
            if held is not None and held.free > 0:
                closes.append((s, held.free))
    for symbol, signed in closes:
        amount = client.round_amount(symbol, abs(signed))
        if not amount > 0 or not math.isfinite(amount):
            result.errors.append(f"{symbol}: {abs(signed)} is below one step; left open")
            continue
        n += 1
        request = OrderRequest(
            f"tlflat{tag}x{n}",
            symbol,
            OrderSide.SELL if signed > 0 else OrderSide.BUY,
            OrderType.MARKET,
            amount,
            reduce_only=rules[symbol].kind is not MarketKind.SPOT,
        )
        try:
            client.place_order(request)
            result.closing += 1
        except TradeloopError as exc:
            result.errors.append(f"close {symbol}: {exc}")
    return result
