"""The brokerage behind the local Alpaca server: account, orders, positions and fills.

A pure, synchronous model (no I/O) of an Alpaca paper account trading US equities, driven by
recorded minute bars. The server (:mod:`tradeloop.testing.venue.alpaca`) turns its dicts
into Alpaca's REST answers and ``trade_updates`` stream messages.

Fill rule (the same as ``tradeloop paper``'s ``next_open`` rule, so live and paper can be
compared order for order): every working order is checked against each bar published after
it arrived, in arrival order.

- market: fills at the bar's open;
- limit: a buy fills when the bar's low reaches the limit, at ``min(open, limit)`` (a sell:
  high, ``max(open, limit)``);
- stop: a buy triggers when the high reaches the stop and fills at ``max(open, stop)`` (a
  sell: low, ``min(open, stop)``); a stop-limit then rests as a limit at its limit price;
- trailing stop: the stop trails the best price seen (``hwm``) by ``trail_percent`` or
  ``trail_price``; it is checked before the bar moves the ``hwm``;
- bracket: the entry's two exits (take-profit limit, stop-loss stop) are ``held`` until the
  entry fills, then work as one-cancels-other; when both could fill in one bar the stop wins.
- oco (``order_class=oco``, Alpaca's exit pair for a position it holds): the order is the
  take-profit limit (``take_profit.limit_price``) with the stop (``stop_loss.stop_price``) as
  its one leg, both working at once; the leg that fills cancels the other (a ``canceled``
  event), the stop first when both are reached in one bar.

Stops and take-profit limits fill by the one fill rule of protective exits
(:func:`tradeloop.execution.fill_rules.trigger_fill`, paper's): a bar that opens through the
level fills at the open, otherwise at the level. Alpaca refuses stop, trailing-stop and
advanced-class (bracket, oco) orders for fractional quantities, and a sell of shares that
other open sell orders already hold (``insufficient qty available``), as the venue does.

Quantities may be fractional (fractional orders must be ``day`` orders, as at Alpaca);
``notional`` orders are sized at the fill price. The account is a cash account: a buy needs
the cash (``insufficient buying power`` otherwise). Commission is zero.
"""

from __future__ import annotations

import itertools
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tradeloop.execution.fill_rules import TriggerKind, trigger_fill

__all__ = ["AlpacaBook", "BookError", "VenueOrder", "iso", "wire_num"]

OPEN_STATUSES = frozenset({"new", "accepted", "partially_filled", "held", "pending_new"})
_ASSET_NAMESPACE = uuid.UUID("6ba7b811-9dad-11d1-80b4-00c04fd430c8")  # uuid.NAMESPACE_URL


def iso(ts_ns: int) -> str:
    """RFC 3339 with microseconds and ``Z``, as Alpaca writes times.

    >>> iso(1_294_065_000_000_000_000)
    '2011-01-03T14:30:00Z'
    """
    dt = datetime.fromtimestamp(ts_ns / 1e9, tz=UTC)
    text = dt.isoformat(timespec="microseconds").replace("+00:00", "Z")
    return text.replace(".000000Z", "Z")


def wire_num(x: float | None) -> str | None:
    """Alpaca's decimal strings (``"1.5"``, ``"132.35"``); None stays None."""
    if x is None:
        return None
    text = f"{x:.9f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def asset_id(symbol: str) -> str:
    """A stable asset id per symbol (Alpaca's are UUIDs)."""
    return str(uuid.uuid5(_ASSET_NAMESPACE, f"alpaca-asset:{symbol}"))


class BookError(Exception):
    """A request the venue refuses: HTTP ``status`` and Alpaca's error ``code``."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass
class VenueOrder:
    """One order as the venue holds it."""

    id: str
    client_order_id: str
    symbol: str
    side: str
    type: str
    time_in_force: str
    created_at: int
    qty: float | None = None
    notional: float | None = None
    limit_price: float | None = None
    stop_price: float | None = None
    trail_percent: float | None = None
    trail_price: float | None = None
    hwm: float | None = None
    order_class: str = "simple"
    status: str = "new"
    filled_qty: float = 0.0
    filled_avg_price: float | None = None
    updated_at: int = 0
    filled_at: int | None = None
    canceled_at: int | None = None
    expired_at: int | None = None
    failed_at: int | None = None
    extended_hours: bool = False
    legs: list[VenueOrder] = field(default_factory=list)
    parent: VenueOrder | None = None
    triggered: bool = False
    """A stop-limit whose stop was reached (it now rests as a limit)."""

    @property
    def is_open(self) -> bool:
        """Still working (or held) at the venue."""
        return self.status in OPEN_STATUSES

    @property
    def remaining(self) -> float:
        """Quantity left to fill (a notional order's is known once it fills)."""
        return max((self.qty or 0.0) - self.filled_qty, 0.0)

    def wire(self) -> dict[str, Any]:
        """The order in Alpaca's JSON shape."""
        tso = self.time_in_force
        return {
            "id": self.id,
            "client_order_id": self.client_order_id,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at or self.created_at),
            "submitted_at": iso(self.created_at),
            "filled_at": iso(self.filled_at) if self.filled_at else None,
            "expired_at": iso(self.expired_at) if self.expired_at else None,
            "canceled_at": iso(self.canceled_at) if self.canceled_at else None,
            "failed_at": iso(self.failed_at) if self.failed_at else None,
            "replaced_at": None,
            "replaced_by": None,
            "replaces": None,
            "asset_id": asset_id(self.symbol),
            "symbol": self.symbol,
            "asset_class": "us_equity",
            "notional": wire_num(self.notional),
            "qty": wire_num(self.qty),
            "filled_qty": wire_num(self.filled_qty),
            "filled_avg_price": wire_num(self.filled_avg_price),
            "order_class": self.order_class if self.order_class != "simple" else "",
            "order_type": self.type,
            "type": self.type,
            "side": self.side,
            "position_intent": None,
            "time_in_force": tso,
            "limit_price": wire_num(self.limit_price),
            "stop_price": wire_num(self.stop_price),
            "status": self.status,
            "extended_hours": self.extended_hours,
            "legs": [leg.wire() for leg in self.legs] if self.legs else None,
            "trail_percent": wire_num(self.trail_percent),
            "trail_price": wire_num(self.trail_price),
            "hwm": wire_num(self.hwm),
            "subtag": None,
            "source": None,
            "expires_at": None,
        }


@dataclass
class Position:
    """A signed position (negative: short) and its average entry price."""

    qty: float
    avg_entry_price: float


Event = dict[str, Any]
"""A ``trade_updates`` payload (the ``data`` of the stream message)."""


class AlpacaBook:
    """Account, orders and positions of one Alpaca paper account (see the module doc).

    Parameters
    ----------
    cash
        Starting cash.
    symbols
        Tradable symbols (others are refused with Alpaca's 422 ``asset not found``).
    fill_parts
        Split every fill into this many executions (``partial_fill`` events, then ``fill``),
        all at the fill price. 1: one ``fill``.
    emit
        Called with every ``trade_updates`` event.
    """

    def __init__(
        self,
        cash: float,
        symbols: set[str],
        *,
        fill_parts: int = 1,
        emit: Callable[[Event], None] | None = None,
    ) -> None:
        self.cash = float(cash)
        self.symbols = set(symbols)
        self.fill_parts = fill_parts
        self.emit = emit or (lambda _e: None)
        self.orders: dict[str, VenueOrder] = {}
        self.by_client_id: dict[str, VenueOrder] = {}
        self.positions: dict[str, Position] = {}
        self.marks: dict[str, float] = {}
        self.now_ns = 0
        self.reject_next: list[str] = []
        """Reasons: each next accepted order is then rejected by the venue (async)."""
        self.fills: list[tuple[str, str, float, float]] = []
        """Every execution: (order id, side, qty, price)."""
        self._exec_ids = itertools.count(1)

    # -- account --------------------------------------------------------------------------
    def equity(self) -> float:
        """Cash plus positions at their marks."""
        return self.cash + sum(
            p.qty * self.marks.get(s, p.avg_entry_price) for s, p in self.positions.items()
        )

    def account(self) -> dict[str, Any]:
        """``GET /v2/account``."""
        long_value = sum(
            p.qty * self.marks.get(s, p.avg_entry_price)
            for s, p in self.positions.items()
            if p.qty > 0
        )
        short_value = sum(
            p.qty * self.marks.get(s, p.avg_entry_price)
            for s, p in self.positions.items()
            if p.qty < 0
        )
        equity = self.equity()
        return {
            "id": "5c5a7bd7-2f4d-4c77-9c2f-3a1f0f1b6b1e",
            "account_number": "PA3LOCALVENUE",
            "status": "ACTIVE",
            "crypto_status": "INACTIVE",
            "currency": "USD",
            "buying_power": wire_num(max(self.cash, 0.0)),
            "regt_buying_power": wire_num(max(self.cash, 0.0)),
            "daytrading_buying_power": "0",
            "non_marginable_buying_power": wire_num(max(self.cash, 0.0)),
            "cash": wire_num(self.cash),
            "accrued_fees": "0",
            "pending_transfer_in": "0",
            "portfolio_value": wire_num(equity),
            "pattern_day_trader": False,
            "trading_blocked": False,
            "transfers_blocked": False,
            "account_blocked": False,
            "created_at": "2020-01-01T00:00:00Z",
            "trade_suspended_by_user": False,
            "multiplier": "1",
            "shorting_enabled": True,
            "equity": wire_num(equity),
            "last_equity": wire_num(equity),
            "long_market_value": wire_num(long_value),
            "short_market_value": wire_num(short_value),
            "initial_margin": "0",
            "maintenance_margin": "0",
            "last_maintenance_margin": "0",
            "sma": "0",
            "daytrade_count": 0,
        }

    def position_wire(self, symbol: str) -> dict[str, Any]:
        """``GET /v2/positions/{symbol}``."""
        pos = self.positions[symbol]
        price = self.marks.get(symbol, pos.avg_entry_price)
        cost = abs(pos.qty) * pos.avg_entry_price
        value = pos.qty * price
        upl = (price - pos.avg_entry_price) * pos.qty
        return {
            "asset_id": asset_id(symbol),
            "symbol": symbol,
            "exchange": "ARCA",
            "asset_class": "us_equity",
            "asset_marginable": True,
            "avg_entry_price": wire_num(pos.avg_entry_price),
            "qty": wire_num(pos.qty),
            "qty_available": wire_num(pos.qty),
            "side": "long" if pos.qty > 0 else "short",
            "market_value": wire_num(value),
            "cost_basis": wire_num(cost),
            "unrealized_pl": wire_num(upl),
            "unrealized_plpc": wire_num(upl / cost if cost else 0.0),
            "unrealized_intraday_pl": wire_num(upl),
            "unrealized_intraday_plpc": wire_num(upl / cost if cost else 0.0),
            "current_price": wire_num(price),
            "lastday_price": wire_num(price),
            "change_today": "0",
        }

    # -- orders ---------------------------------------------------------------------------
    def submit(self, body: dict[str, Any]) -> VenueOrder:
        """``POST /v2/orders``: validate and accept an order (``new`` event).

        Raises
        ------
        BookError
            With Alpaca's status and code for what the venue refuses.
        """
        symbol = str(body.get("symbol") or "").upper()
        if symbol not in self.symbols:
            raise BookError(422, 40010001, f'asset "{symbol}" not found')
        side = body.get("side")
        if side not in ("buy", "sell"):
            raise BookError(422, 40010001, "side is required and must be buy or sell")
        otype = body.get("type") or body.get("order_type") or "market"
        if otype not in ("market", "limit", "stop", "stop_limit", "trailing_stop"):
            raise BookError(422, 40010001, f"invalid order type {otype!r}")
        tif = body.get("time_in_force") or "day"
        if tif not in ("day", "gtc", "opg", "cls", "ioc", "fok"):
            raise BookError(422, 40010001, f"invalid time_in_force {tif!r}")
        qty = _num(body.get("qty"), "qty")
        notional = _num(body.get("notional"), "notional")
        if (qty is None) == (notional is None):
            raise BookError(422, 40010001, "qty or notional is required (not both)")
        if qty is not None and qty <= 0:
            raise BookError(422, 40010001, "qty must be > 0")
        if notional is not None and notional < 1.0:
            raise BookError(403, 40310000, "notional amount must be >= 1.00")
        fractional = notional is not None or (qty is not None and qty != math.floor(qty))
        if fractional and (tif != "day" or otype not in ("market", "limit")):
            raise BookError(422, 42210000, "fractional orders must be DAY market or limit orders")
        order_class = body.get("order_class") or "simple"
        if fractional and order_class not in ("simple", ""):
            raise BookError(422, 42210000, "fractional orders must be simple orders")
        client_id = str(body.get("client_order_id") or uuid.uuid4())
        if len(client_id) > 128:
            raise BookError(422, 40010001, "client_order_id must be at most 128 characters")
        if client_id in self.by_client_id:
            raise BookError(422, 40010001, "client_order_id must be unique")
        limit = _num(body.get("limit_price"), "limit_price")
        stop = _num(body.get("stop_price"), "stop_price")
        if otype in ("limit", "stop_limit") and limit is None and order_class != "oco":
            raise BookError(422, 40010001, "limit_price is required")
        if otype in ("stop", "stop_limit") and stop is None:
            raise BookError(422, 40010001, "stop_price is required")
        trail_pct = _num(body.get("trail_percent"), "trail_percent")
        trail_px = _num(body.get("trail_price"), "trail_price")
        if otype == "trailing_stop" and (trail_pct is None) == (trail_px is None):
            raise BookError(422, 40010001, "trail_percent or trail_price is required")
        if order_class not in ("simple", "bracket", "oto", "oco"):
            raise BookError(422, 40010001, f"invalid order_class {order_class!r}")
        held = self.positions.get(symbol)
        if side == "sell" and fractional and (held is None or held.qty + 1e-12 < (qty or 0.0)):
            raise BookError(403, 40310000, "fractional orders cannot be sold short")
        self._check_available(symbol, side, qty or 0.0)
        oco_legs: tuple[float, float] | None = None
        if order_class == "oco":
            tp_px = _num(
                (body.get("take_profit") or {}).get("limit_price"), "take_profit.limit_price"
            )
            sl_px = _num((body.get("stop_loss") or {}).get("stop_price"), "stop_loss.stop_price")
            if otype != "limit" or tp_px is None or sl_px is None:
                raise BookError(
                    422,
                    40010001,
                    "oco orders must be limit orders with take_profit.limit_price and "
                    "stop_loss.stop_price",
                )
            if (sl_px >= tp_px) if side == "sell" else (sl_px <= tp_px):
                raise BookError(422, 40010001, "stop_loss.stop_price must be on the other side")
            limit, oco_legs = tp_px, (tp_px, sl_px)
        price = self.marks.get(symbol)
        if side == "buy" and price is not None:
            cost = notional if notional is not None else (qty or 0.0) * (limit or price)
            reserved = self._reserved()
            if cost > self.cash - reserved + 1e-9:
                raise BookError(403, 40310000, "insufficient buying power")
        order = VenueOrder(
            id=str(uuid.uuid4()),
            client_order_id=client_id,
            symbol=symbol,
            side=side,
            type=otype,
            time_in_force=tif,
            created_at=self.now_ns,
            updated_at=self.now_ns,
            qty=qty,
            notional=notional,
            limit_price=limit,
            stop_price=stop,
            trail_percent=trail_pct,
            trail_price=trail_px,
            order_class=order_class,
            extended_hours=bool(body.get("extended_hours")),
        )
        if otype == "trailing_stop" and price is not None:
            order.hwm = price
            order.stop_price = self._trail_stop(order)
        if order_class == "bracket":
            tp = (body.get("take_profit") or {}).get("limit_price")
            sl = body.get("stop_loss") or {}
            if tp is None or sl.get("stop_price") is None:
                raise BookError(
                    422,
                    40010001,
                    "bracket orders need take_profit.limit_price and stop_loss.stop_price",
                )
            exit_side = "sell" if side == "buy" else "buy"
            for leg_type, leg_limit, leg_stop in (
                ("limit", float(tp), None),
                (
                    "stop_limit" if sl.get("limit_price") is not None else "stop",
                    _num(sl.get("limit_price"), "stop_loss.limit_price"),
                    float(sl["stop_price"]),
                ),
            ):
                leg = VenueOrder(
                    id=str(uuid.uuid4()),
                    client_order_id=str(uuid.uuid4()),
                    symbol=symbol,
                    side=exit_side,
                    type=leg_type,
                    time_in_force=tif,
                    created_at=self.now_ns,
                    updated_at=self.now_ns,
                    qty=qty,
                    limit_price=leg_limit,
                    stop_price=leg_stop,
                    order_class="bracket",
                    status="held",
                    parent=order,
                )
                order.legs.append(leg)
                self.orders[leg.id] = leg
                self.by_client_id[leg.client_order_id] = leg
        if oco_legs is not None:  # the stop leg, working along with its parent
            leg = VenueOrder(
                id=str(uuid.uuid4()),
                client_order_id=str(uuid.uuid4()),
                symbol=symbol,
                side=side,
                type="stop",
                time_in_force=tif,
                created_at=self.now_ns,
                updated_at=self.now_ns,
                qty=qty,
                stop_price=oco_legs[1],
                order_class="oco",
                parent=order,
            )
            order.legs.append(leg)
            self.orders[leg.id] = leg
            self.by_client_id[leg.client_order_id] = leg
        self.orders[order.id] = order
        self.by_client_id[client_id] = order
        self._event("new", order)
        if self.reject_next:
            reason = self.reject_next.pop(0)
            order.status = "rejected"
            order.failed_at = self.now_ns
            for leg in order.legs:
                leg.status = "canceled"
                leg.canceled_at = self.now_ns
            self._event("rejected", order, reason=reason)
        return order

    def cancel(self, order_id: str) -> VenueOrder:
        """``DELETE /v2/orders/{id}`` (``canceled`` event; a bracket cancels its legs).

        Raises
        ------
        BookError
            404 for an unknown order, 422 for one no longer cancelable.
        """
        order = self.orders.get(order_id)
        if order is None:
            raise BookError(404, 40410000, "order not found")
        if not order.is_open:
            raise BookError(422, 42210000, f'order is already in "{order.status}" state')
        parent = order.parent
        if parent is not None and parent.order_class == "oco" and parent.is_open:
            self._cancel(parent)  # an oco leg: the pair is cancelled
        else:
            self._cancel(order)
        return order

    def cancel_all(self) -> list[VenueOrder]:
        """``DELETE /v2/orders``: cancel every open order; return them."""
        out = [o for o in self.orders.values() if o.is_open and o.parent is None]
        for order in out:
            self._cancel(order)
        return out

    def open_orders(self) -> list[VenueOrder]:
        """Open orders (not held legs' parents' legs), oldest first."""
        return [o for o in self.orders.values() if o.is_open and o.parent is None]

    def close_position(self, symbol: str, qty: float | None = None) -> VenueOrder:
        """``DELETE /v2/positions/{symbol}``: a market order for the position (or ``qty``).

        Raises
        ------
        BookError
            404 when there is no position.
        """
        pos = self.positions.get(symbol)
        if pos is None:
            raise BookError(404, 40410000, "position does not exist")
        amount = abs(pos.qty) if qty is None else min(qty, abs(pos.qty))
        body = {
            "symbol": symbol,
            "side": "sell" if pos.qty > 0 else "buy",
            "type": "market",
            "time_in_force": "day",
            "qty": amount,
        }
        return self.submit(body)

    def adjust_position(self, symbol: str, qty: float, price: float) -> None:
        """A trade made outside the bot (e.g. on the web site): a filled market order of
        signed ``qty`` at ``price``, with its events on the stream."""
        order = VenueOrder(
            id=str(uuid.uuid4()),
            client_order_id=f"web-{uuid.uuid4()}",
            symbol=symbol,
            side="buy" if qty > 0 else "sell",
            type="market",
            time_in_force="day",
            created_at=self.now_ns,
            updated_at=self.now_ns,
            qty=abs(qty),
        )
        self.orders[order.id] = order
        self.by_client_id[order.client_order_id] = order
        self._event("new", order)
        self._execute(order, abs(qty), price)

    # -- bars -----------------------------------------------------------------------------
    def on_bar(
        self,
        symbol: str,
        ts_ns: int,
        o: float,
        h: float,
        low: float,
        c: float,
        end_ns: int,
        *,
        in_session: bool = True,
    ) -> None:
        """The bar of ``symbol`` opened at ``ts_ns`` closed at ``end_ns`` and is published:
        every order working before it fills at the prices it reached (stamped ``ts_ns``);
        the venue's time is then ``end_ns``. Outside the regular session only
        ``extended_hours`` orders can fill (the others wait for the open, as at Alpaca)."""
        self.now_ns = ts_ns
        for order in list(self.orders.values()):
            works = in_session or order.extended_hours
            if works and order.symbol == symbol and order.is_open and order.status != "held":
                if order.order_class == "oco":
                    if order.parent is None:  # the pair is matched through its parent
                        self._match_oco(order, o, h, low)
                    continue
                self._match(order, o, h, low)
        self.marks[symbol] = c
        self.now_ns = end_ns

    def expire_day_orders(self, ts_ns: int) -> int:
        """The session closed at ``ts_ns``: ``day`` orders placed before it expire (those
        placed after the close wait for the next session); return how many."""
        self.now_ns = ts_ns
        count = 0
        for order in list(self.orders.values()):
            if (
                order.is_open
                and order.time_in_force == "day"
                and order.parent is None
                and order.created_at < ts_ns
            ):
                order.status = "expired"
                order.expired_at = ts_ns
                order.updated_at = ts_ns
                for leg in order.legs:
                    if leg.is_open:
                        leg.status = "expired"
                        leg.expired_at = ts_ns
                self._event("expired", order)
                count += 1
        return count

    # -- internals ------------------------------------------------------------------------
    def _reserved(self) -> float:
        total = 0.0
        for o in self.orders.values():
            if o.is_open and o.side == "buy" and o.parent is None:
                px = o.limit_price or self.marks.get(o.symbol, 0.0)
                total += o.notional if o.notional is not None else o.remaining * px
        return total

    def _trail_stop(self, order: VenueOrder) -> float:
        hwm = float(order.hwm or 0.0)
        sign = -1.0 if order.side == "sell" else 1.0
        if order.trail_percent is not None:
            return hwm * (1.0 + sign * order.trail_percent / 100.0)
        return hwm + sign * float(order.trail_price or 0.0)

    def _check_available(self, symbol: str, side: str, qty: float) -> None:
        """Shares (of a short: the cover) that open orders already hold cannot be held
        again: Alpaca refuses ``insufficient qty available for order``."""
        pos = self.positions.get(symbol)
        if pos is None or (pos.qty > 0) != (side == "sell"):
            return
        held = sum(
            o.remaining
            for o in self.orders.values()
            if o.is_open and o.symbol == symbol and o.side == side and o.parent is None
        )
        available = abs(pos.qty) - held
        if held > 0 and qty > available + 1e-9:
            raise BookError(
                403,
                40310000,
                f"insufficient qty available for order (requested: {wire_num(qty)}, "
                f"available: {wire_num(max(available, 0.0))})",
            )

    def _match_oco(self, parent: VenueOrder, o: float, h: float, low: float) -> None:
        """An oco pair against one bar, by the one fill rule: the leg reached fills, the other
        is cancelled; a bar opening through a level fills that leg at the open; both reached
        inside the bar: the stop (no finer data to tell which came first)."""
        stop_leg = parent.legs[0]
        direction = 1 if parent.side == "sell" else -1  # the position the pair protects
        tp = float(parent.limit_price or 0.0)
        stop = float(stop_leg.stop_price or 0.0)
        sf = trigger_fill(TriggerKind.STOP, direction, stop, o, h, low)
        tf = trigger_fill(TriggerKind.TAKE_PROFIT, direction, tp, o, h, low)
        if sf is not None and (sf.at_open or tf is None or not tf.at_open):
            leg, price, other = stop_leg, sf.price, parent
        elif tf is not None:
            leg, price, other = parent, tf.price, stop_leg
        else:
            return
        self._execute(leg, leg.remaining, price)
        if leg.status == "filled" and other.is_open:
            other.status = "canceled"
            other.canceled_at = self.now_ns
            other.updated_at = self.now_ns
            self._event("canceled", other)

    def _match(self, order: VenueOrder, o: float, h: float, low: float) -> None:
        buy = order.side == "buy"
        price: float | None = None
        if order.type == "market":
            price = o
        elif order.type == "limit" or (order.type == "stop_limit" and order.triggered):
            # a resting limit: fills like a take-profit level (the one fill rule)
            lim = float(order.limit_price or 0.0)
            fill = trigger_fill(TriggerKind.TAKE_PROFIT, -1 if buy else 1, lim, o, h, low)
            price = fill.price if fill is not None else None
        elif order.type in ("stop", "stop_limit"):
            stop = float(order.stop_price or 0.0)
            hit = h >= stop if buy else low <= stop
            if hit and order.type == "stop":
                fill = trigger_fill(TriggerKind.STOP, -1 if buy else 1, stop, o, h, low)
                price = fill.price if fill is not None else None
            elif hit:
                order.triggered = True
                lim = float(order.limit_price or 0.0)
                trigger = max(o, stop) if buy else min(o, stop)
                if (buy and trigger <= lim) or (not buy and trigger >= lim):
                    price = trigger
        elif order.type == "trailing_stop":
            if order.hwm is None:
                order.hwm = o
                order.stop_price = self._trail_stop(order)
            stop = float(order.stop_price or 0.0)
            if (buy and h >= stop) or (not buy and low <= stop):
                price = max(o, stop) if buy else min(o, stop)
            else:
                order.hwm = min(order.hwm, low) if buy else max(order.hwm, h)
                order.stop_price = self._trail_stop(order)
        if price is None:
            return
        if order.parent is not None:
            sibling = next(leg for leg in order.parent.legs if leg is not order)
            if sibling.is_open and sibling.type != "limit" and order.type == "limit":
                # both exits reachable in one bar: the stop is assumed to come first
                s_stop = float(sibling.stop_price or 0.0)
                if (low <= s_stop) if not buy else (h >= s_stop):
                    return
        if order.notional is not None and order.qty is None:
            order.qty = round(order.notional / price, 9)
        self._execute(order, order.remaining, price)
        if order.status == "filled":
            self._after_fill(order)

    def _after_fill(self, order: VenueOrder) -> None:
        for leg in order.legs:  # the entry filled: its exits start working
            if leg.status == "held":
                leg.qty = order.filled_qty
                leg.status = "new"
                leg.updated_at = self.now_ns
                if leg.type == "trailing_stop":
                    leg.hwm = order.filled_avg_price
        if order.parent is not None:  # one exit filled: the other is cancelled
            for leg in order.parent.legs:
                if leg is not order and leg.is_open:
                    self._cancel(leg)

    def _execute(self, order: VenueOrder, qty: float, price: float) -> None:
        parts = max(1, self.fill_parts)
        chunk = qty / parts
        for i in range(parts):
            part = qty - chunk * (parts - 1) if i == parts - 1 else chunk
            part = round(part, 9)
            if part <= 0:
                continue
            prev = order.filled_qty
            order.filled_qty = round(prev + part, 9)
            avg = order.filled_avg_price or 0.0
            order.filled_avg_price = (avg * prev + price * part) / order.filled_qty
            order.updated_at = self.now_ns
            done = order.filled_qty + 1e-12 >= (order.qty or 0.0)
            order.status = "filled" if done else "partially_filled"
            if done:
                order.filled_at = self.now_ns
            signed = part if order.side == "buy" else -part
            self._move_position(order.symbol, signed, price)
            self.fills.append((order.id, order.side, part, price))
            self._event(
                "fill" if done else "partial_fill",
                order,
                price=price,
                qty=part,
                position_qty=self.positions[order.symbol].qty
                if order.symbol in self.positions
                else 0.0,
            )

    def _move_position(self, symbol: str, signed: float, price: float) -> None:
        self.cash -= signed * price
        pos = self.positions.get(symbol)
        if pos is None:
            self.positions[symbol] = Position(signed, price)
            return
        new_qty = round(pos.qty + signed, 9)
        if abs(new_qty) < 1e-9:
            del self.positions[symbol]
        elif (pos.qty > 0) == (signed > 0):  # adding to the position
            pos.avg_entry_price = (pos.avg_entry_price * pos.qty + price * signed) / new_qty
            pos.qty = new_qty
        elif (pos.qty > 0) == (new_qty > 0):  # reducing it
            pos.qty = new_qty
        else:  # reversed through zero
            self.positions[symbol] = Position(new_qty, price)

    def _cancel(self, order: VenueOrder) -> None:
        order.status = "canceled"
        order.canceled_at = self.now_ns
        order.updated_at = self.now_ns
        for leg in order.legs:
            if leg.is_open:
                leg.status = "canceled"
                leg.canceled_at = self.now_ns
        self._event("canceled", order)

    def _event(self, event: str, order: VenueOrder, **extra: Any) -> None:
        payload: Event = {
            "event": event,
            "order": order.wire(),
            "timestamp": iso(self.now_ns),
        }
        if "price" in extra:
            exec_id = uuid.uuid5(_ASSET_NAMESPACE, f"exec:{next(self._exec_ids)}")
            payload["execution_id"] = str(exec_id)
            payload["price"] = wire_num(extra["price"])
            payload["qty"] = wire_num(extra["qty"])
            payload["position_qty"] = wire_num(extra["position_qty"])
        if "reason" in extra:
            payload["reason"] = extra["reason"]
        self.emit(payload)


def _num(value: Any, name: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise BookError(422, 40010001, f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise BookError(422, 40010001, f"{name} must be finite")
    return out
