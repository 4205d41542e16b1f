"""An in-memory venue behind the :class:`~tradeloop.execution.venue.VenueClient` contract, for
unit tests and the order-path benchmark (no network: what is measured is tradeloop's own work).

Market orders fill at once at :attr:`InstantVenue.price` (``fee_rate`` None: fills report no
fee, so the broker's fee model prices them; the fill is queued for
:meth:`InstantVenue.drain_updates`, as a stream would deliver it); duplicate client ids are
answered like a real venue (the existing order); ``fail_next`` raises chosen errors first.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

from tradeloop.core.order_status import OrderStatus
from tradeloop.execution.venue import (
    MarketKind,
    MarketRules,
    OrderNotFoundError,
    OrderRequest,
    VenueBalance,
    VenueFill,
    VenueOrder,
    VenuePosition,
    VenueUpdate,
)

__all__ = ["InstantVenue"]


class InstantVenue:
    """A venue in memory (see the module docstring)."""

    def __init__(
        self,
        rules: dict[str, MarketRules] | None = None,
        *,
        price: float = 100.0,
        fee_rate: float | None = 0.001,
        cash: float = 10_000.0,
    ) -> None:
        self.name = "instant"
        self.rules = rules or {
            "BTC/USDT": MarketRules(
                "BTC/USDT",
                MarketKind.SPOT,
                "BTC",
                "USDT",
                0.00001,
                0.01,
                0.00001,
                1e6,
                0.01,
                1e7,
                5.0,
            )
        }
        self.price = price
        self.fee_rate = fee_rate
        self.cash = cash
        self.orders: dict[str, VenueOrder] = {}
        self.placed: list[OrderRequest] = []
        self.fail_next: list[Exception] = []
        self.placed_at_ns: list[int] = []
        self._updates: list[VenueUpdate] = []
        self._trade = 0
        self.stream_up = True

    def market_rules(self, symbol: str) -> MarketRules:
        """The symbol's rules (KeyError -> ConfigError naming it)."""
        from tradeloop.core.errors import ConfigError

        try:
            return self.rules[symbol]
        except KeyError:
            raise ConfigError(f"field 'symbol': unknown symbol {symbol!r}") from None

    def round_amount(self, symbol: str, amount: float) -> float:
        """Truncate to the amount step."""
        step = self.market_rules(symbol).amount_step
        return round(math.floor(amount / step + 1e-9) * step, 12) if step else amount

    def round_price(self, symbol: str, price: float) -> float:
        """Round to the tick."""
        step = self.market_rules(symbol).price_step
        return round(round(price / step) * step, 12) if step else price

    def place_order(self, request: OrderRequest) -> VenueOrder:
        """Fill a market order at once (the fill is queued); limits rest."""
        self.placed_at_ns.append(time.perf_counter_ns())
        if self.fail_next:
            raise self.fail_next.pop(0)
        existing = self.orders.get(request.client_order_id)
        if existing is not None:
            return existing
        self.placed.append(request)
        filled = request.type.value == "market"
        order = VenueOrder(
            request.client_order_id,
            request.symbol,
            request.side,
            request.type,
            OrderStatus.FILLED if filled else OrderStatus.ACCEPTED,
            request.amount,
            request.amount if filled else 0.0,
            self.price if filled else math.nan,
            request.price,
            request.stop_price,
            venue_order_id=str(len(self.orders) + 1),
            reduce_only=request.reduce_only,
        )
        self.orders[request.client_order_id] = order
        if filled:
            self._trade += 1
            self._updates.append(
                VenueFill(
                    str(self._trade),
                    request.client_order_id,
                    request.symbol,
                    request.side,
                    request.amount,
                    self.price,
                    request.amount * self.price * (self.fee_rate or 0.0),
                    self.rules[request.symbol].quote if self.fee_rate is not None else "",
                    ts=1,
                )
            )
        return order

    def cancel_order(self, symbol: str, client_order_id: str) -> VenueOrder:
        """Cancel a resting order."""
        order = self.fetch_order(symbol, client_order_id)
        if order.status in (OrderStatus.FILLED, OrderStatus.CANCELLED):
            raise OrderNotFoundError(client_order_id)
        from dataclasses import replace

        order = replace(order, status=OrderStatus.CANCELLED)
        self.orders[client_order_id] = order
        return order

    def fetch_order(self, symbol: str, client_order_id: str) -> VenueOrder:
        """The order by client id."""
        try:
            return self.orders[client_order_id]
        except KeyError:
            raise OrderNotFoundError(client_order_id) from None

    def open_orders(self, symbol: str | None = None) -> list[VenueOrder]:
        """Resting orders."""
        return [
            o
            for o in self.orders.values()
            if o.status is OrderStatus.ACCEPTED and (symbol is None or o.symbol == symbol)
        ]

    def fetch_fills(self, symbol: str, since_ns: int = 0) -> list[VenueFill]:
        """Nothing beyond what the updates carried."""
        return []

    def balances(self) -> dict[str, VenueBalance]:
        """The cash."""
        return {"USDT": VenueBalance("USDT", self.cash)}

    def positions(self, symbols: Sequence[str] | None = None) -> list[VenuePosition]:
        """None (spot)."""
        return []

    def set_leverage(self, symbol: str, leverage: float, margin_mode: str | None = None) -> None:
        """No-op."""

    def start_stream(self) -> None:
        """No-op (updates are always "streamed")."""

    def drain_updates(self, symbols: Sequence[str] = ()) -> list[VenueUpdate]:
        """Queued updates."""
        out, self._updates = self._updates, []
        return out

    def push(self, update: VenueUpdate) -> None:
        """Queue an update as the venue's stream would."""
        self._updates.append(update)

    @property
    def stream_connected(self) -> bool:
        """Always up."""
        return self.stream_up

    def close(self) -> None:
        """No-op."""
