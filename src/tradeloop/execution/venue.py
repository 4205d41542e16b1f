"""The venue-agnostic contract between the order manager and any real venue.

A venue adapter (``adapters/ccxt``, ``adapters/alpaca``, ...) implements :class:`VenueClient`;
:class:`~tradeloop.execution.venue_broker.VenueBroker` turns any such client into the
:class:`~tradeloop.execution.broker.Broker` port the kernel step calls. Venue names, wire
formats and client libraries stay inside the adapter; what crosses this boundary is the plain
dataclasses below.

The contract, for an adapter author
-----------------------------------
* **Synchronous.** Every method blocks until the venue answered (or raised). An adapter that
  talks asyncio (a WebSocket stream) runs its loop in a thread of its own and hands results
  over through :meth:`VenueClient.drain_updates`; the kernel is single-threaded.
* **Client order ids are the identity.** :meth:`VenueClient.place_order` sends
  :attr:`OrderRequest.client_order_id` to the venue (Binance ``newClientOrderId``, Alpaca
  ``client_order_id``) unchanged. Ids match ``[A-Za-z0-9_-]{1,32}``. If the venue already has
  an order with that id (a retry after a lost response), ``place_order`` must NOT create a
  second one: it returns the existing order (fetch it by client id) — or raises
  :class:`DuplicateOrderError`, which the broker resolves with :meth:`fetch_order`.
* **Symbols** are the adapter's unified symbols (ccxt's ``BTC/USDT``, ``BTC/USDT:USDT``;
  Alpaca's ``AAPL``), the same strings the run's data uses.
* **Quantities** are positive base-asset amounts (shares, coins, contracts x multiplier);
  ``side`` gives the direction. Prices are quote-currency floats. Times are int64 ns UTC.
* **Statuses** are :class:`~tradeloop.core.order_status.OrderStatus` values: an adapter maps
  its venue's words (``NEW`` -> accepted, ``PARTIALLY_FILLED``, ``FILLED``, ``CANCELED`` ->
  cancelled, ``REJECTED``, ``EXPIRED``, Alpaca's ``pending_new`` -> submitted, ...).
  :attr:`VenueOrder.filled` is cumulative; :attr:`VenueOrder.average_price` is the average of
  the fills so far (NaN when none).
* **Errors** (raise these, never the library's own): :class:`OrderRejectedError` when the
  venue refused the request itself (insufficient balance, bad price, unknown symbol);
  :class:`OrderNotFoundError` when it does not know an order; :class:`RateLimitedError`
  (with ``retry_after`` seconds when the venue said) for 429/418;
  :class:`VenueUnavailableError` for network errors, timeouts and 5xx. The last two are
  retried (tenacity) and counted by the circuit breaker; the first two are answers, not
  failures.
* **Updates.** :meth:`drain_updates` returns, without blocking, every :class:`VenueOrder`
  and :class:`VenueFill` the venue reported since the last call, oldest first — from the
  venue's user-data stream when it is up, otherwise by polling REST (open orders and trades of
  the symbols with working orders). The same fill may be reported twice (stream + poll, or a
  resync after a reconnect): :attr:`VenueFill.trade_id` must be stable so the broker can drop
  repeats. :attr:`VenueOrder` updates may arrive out of order; the broker applies only moves
  the state machine allows.
* **Market rules.** :meth:`market_rules` returns the venue's precision and limits for a
  symbol (raise :class:`~tradeloop.core.errors.ConfigError` naming the symbol when unknown).
  The broker checks and rounds every order with :func:`check_order` *before* sending; the
  adapter may round with its library's own helpers (ccxt ``amount_to_precision``) through
  :meth:`VenueClient.round_amount` / :meth:`VenueClient.round_price`.
* **Secrets** (API keys) never appear in ``repr``, logs, errors or files.
* **Testing.** An adapter ships a local server under ``tradeloop.testing`` that speaks the
  venue's real wire format to the unmodified client library; the broker is tested against it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable

from tradeloop.core.errors import ConfigError, TemporaryError, VenueError
from tradeloop.core.order_status import OrderStatus
from tradeloop.core.orders import Order, OrderSide, OrderType, TimeInForce
from tradeloop.core.position import ExitReason

__all__ = [
    "CheckedOrder",
    "DuplicateOrderError",
    "ExitPair",
    "MarketClock",
    "MarketKind",
    "MarketRules",
    "OrderNotFoundError",
    "OrderRejectedError",
    "OrderRequest",
    "OrderValidationError",
    "RateLimitedError",
    "VenueBalance",
    "VenueClient",
    "VenueExitPairs",
    "VenueFill",
    "VenueLastPrice",
    "VenueMarketClock",
    "VenueOrder",
    "VenuePosition",
    "VenueUnavailableError",
    "VenueUpdate",
    "check_order",
    "exit_pair_ids",
    "exit_pair_of",
    "is_broker_order",
]


# -- errors ----------------------------------------------------------------------------------
class OrderRejectedError(VenueError):
    """The venue refused the request (an answer, not a failure: never retried)."""

    def __init__(self, message: str, *, code: str = "rejected") -> None:
        super().__init__(message)
        self.code = code


class DuplicateOrderError(OrderRejectedError):
    """The venue already has an order with this client order id."""

    def __init__(self, client_order_id: str, message: str = "") -> None:
        super().__init__(
            message or f"duplicate client order id {client_order_id}", code="duplicate"
        )
        self.client_order_id = client_order_id


class OrderNotFoundError(VenueError):
    """The venue does not know the order (a status transition for the broker, not a crash)."""

    def __init__(self, client_order_id: str, message: str = "") -> None:
        super().__init__(message or f"order {client_order_id} not found at the venue")
        self.client_order_id = client_order_id


class VenueUnavailableError(TemporaryError):
    """Network error, timeout or 5xx: retried, and counted by the circuit breaker."""


class RateLimitedError(VenueUnavailableError):
    """429/418 from the venue; ``retry_after`` seconds when the venue said how long."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class OrderValidationError(ConfigError):
    """An order the venue would refuse, caught before sending; names the field."""

    def __init__(self, symbol: str, field_name: str, message: str) -> None:
        super().__init__(f"order {symbol}: field '{field_name}': {message}")
        self.symbol = symbol
        self.field = field_name


# -- plain data ------------------------------------------------------------------------------
class MarketKind(StrEnum):
    """What kind of market a symbol is."""

    SPOT = "spot"
    PERPETUAL = "perpetual"  # USD-M linear perpetual swap
    EQUITY = "equity"


@dataclass(frozen=True, slots=True)
class MarketRules:
    """A symbol's precision and limits at the venue (0 / inf = no rule).

    ``amount_step`` / ``price_step`` are the smallest increments (Binance LOT_SIZE stepSize,
    PRICE_FILTER tickSize); ``min_notional`` is amount x price.
    """

    symbol: str
    kind: MarketKind = MarketKind.SPOT
    base: str = ""
    quote: str = ""
    amount_step: float = 0.0
    price_step: float = 0.0
    min_amount: float = 0.0
    max_amount: float = math.inf
    min_price: float = 0.0
    max_price: float = math.inf
    min_notional: float = 0.0
    maker_fee: float = 0.0
    taker_fee: float = 0.0
    contract_size: float = 1.0
    active: bool = True
    #: the amount increment of resting stop and take-profit orders when coarser than
    #: ``amount_step`` (Alpaca: 1, its stop and OCO orders take whole shares only); the
    #: broker rests the whole part and watches the remainder itself. 0: ``amount_step``
    resting_amount_step: float = 0.0


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """One order to place. ``amount`` positive; ``price`` for limit types, ``stop_price`` for
    stop types; ``leverage``/``margin_mode`` (``isolated``/``cross``) for perpetuals."""

    client_order_id: str
    symbol: str
    side: OrderSide
    type: OrderType
    amount: float
    price: float | None = None
    stop_price: float | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    reduce_only: bool = False
    post_only: bool = False
    leverage: float | None = None
    margin_mode: str | None = None
    #: trailing stop (with ``type`` STOP and no ``stop_price``): the stop trails the best price
    #: by this fraction (0.01 = 1 %) or by this price distance; venues without one refuse it
    trail_percent: float | None = None
    trail_price: float | None = None
    #: bracket exits sent with the entry, worked by the venue as one-cancels-other (Alpaca);
    #: adapters whose venue has no native bracket refuse them
    take_profit: float | None = None
    stop_loss: float | None = None


@dataclass(frozen=True, slots=True)
class VenueOrder:
    """The venue's view of one order (a snapshot: ``filled`` is cumulative)."""

    client_order_id: str
    symbol: str
    side: OrderSide
    type: OrderType
    status: OrderStatus
    amount: float
    filled: float = 0.0
    average_price: float = math.nan
    price: float | None = None
    stop_price: float | None = None
    venue_order_id: str = ""
    reduce_only: bool = False
    ts: int = 0
    reason: str = ""


@dataclass(frozen=True, slots=True)
class VenueFill:
    """One execution reported by the venue. ``trade_id`` is unique per venue and symbol."""

    trade_id: str
    client_order_id: str
    symbol: str
    side: OrderSide
    amount: float
    price: float
    fee: float = 0.0
    fee_currency: str = ""
    ts: int = 0
    maker: bool | None = None
    venue_order_id: str = ""


@dataclass(frozen=True, slots=True)
class VenueBalance:
    """One asset of the account."""

    asset: str
    free: float
    used: float = 0.0

    @property
    def total(self) -> float:
        """Free plus locked."""
        return self.free + self.used


@dataclass(frozen=True, slots=True)
class VenuePosition:
    """An open position at the venue; ``quantity`` is signed (negative = short)."""

    symbol: str
    quantity: float
    entry_price: float = math.nan
    leverage: float | None = None
    unrealized_pnl: float = 0.0


#: what :meth:`VenueClient.drain_updates` yields
VenueUpdate = VenueOrder | VenueFill


@dataclass(frozen=True, slots=True)
class MarketClock:
    """A venue's market clock at ``ts``: open now, and the next open and close (ns UTC)."""

    ts: int
    is_open: bool
    next_open: int
    next_close: int


def exit_pair_ids(list_id: str) -> tuple[str, str]:
    """The client ids of an exit pair's stop and take-profit legs: the list id with ``-s`` /
    ``-t``, so a venue that knows only one id per pair (Alpaca names an OCO order by its
    parent, the take-profit limit; the stop leg gets an id of Alpaca's) finds either leg from
    its id alone, also after a restart (:func:`exit_pair_of`).

    >>> exit_pair_ids("tlab12cd34l7")
    ('tlab12cd34l7-s', 'tlab12cd34l7-t')
    """
    return f"{list_id}-s", f"{list_id}-t"


def exit_pair_of(client_order_id: str) -> tuple[str, str] | None:
    """``(list id, leg)`` of an exit pair's leg id (``leg`` is ``s`` or ``t``), else None.

    >>> exit_pair_of("tlab12cd34l7-s"), exit_pair_of("tlab12cd34x7")
    (('tlab12cd34l7', 's'), None)
    """
    head, sep, leg = client_order_id.rpartition("-")
    if sep and head and leg in ("s", "t"):
        return head, leg
    return None


@dataclass(frozen=True, slots=True)
class ExitPair:
    """A stop and a take-profit protecting one position: one quantity, one cancels the other
    (Binance spot's OCO order list, Alpaca's ``oco`` order class). Each leg has its client id
    (:func:`exit_pair_ids` of ``list_id``); ``list_id`` names the pair where the venue names
    lists."""

    symbol: str
    side: OrderSide
    amount: float
    stop_price: float
    take_profit: float
    stop_id: str
    take_id: str
    list_id: str


@runtime_checkable
class VenueExitPairs(Protocol):
    """Optional: a venue that holds a stop and a target of one quantity as one order list.

    Where the quantity would otherwise be held twice (spot: two sell orders of the whole
    holding cannot both rest), the venue broker places a position's stop and target this way;
    a cancel of either leg cancels both."""

    def place_exit_pair(self, pair: ExitPair) -> list[VenueOrder]:
        """Place both legs; return their snapshots (the stop leg first). Idempotent on the
        legs' client ids like :meth:`VenueClient.place_order`."""
        ...


@runtime_checkable
class VenueLastPrice(Protocol):
    """Optional: a venue that tells its latest trade price. Buy entries are sized at send
    time from it (with the step's price as the floor): a price that moved up since the bar
    closed would otherwise make the venue refuse the buy for insufficient funds."""

    def last_price(self, symbol: str) -> float:
        """The latest trade price of ``symbol`` (NaN when the venue has none)."""
        ...


@runtime_checkable
class VenueMarketClock(Protocol):
    """Optional: a venue that knows its market hours (Alpaca's clock); 24/7 venues have none."""

    def market_clock(self) -> MarketClock:
        """The venue's clock now."""
        ...


# -- the port --------------------------------------------------------------------------------
@runtime_checkable
class VenueClient(Protocol):
    """One account at one venue, as the order manager needs it. See the module docstring."""

    #: short venue name for logs, alerts and status (``binance``, ``binanceusdm``, ``alpaca``)
    name: str

    def market_rules(self, symbol: str) -> MarketRules:
        """Precision and limits of ``symbol``; ConfigError naming it when unknown."""
        ...

    def round_amount(self, symbol: str, amount: float) -> float:
        """``amount`` rounded (down) to the venue's amount precision."""
        ...

    def round_price(self, symbol: str, price: float) -> float:
        """``price`` rounded to the venue's price precision."""
        ...

    def place_order(self, request: OrderRequest) -> VenueOrder:
        """Place ``request``; idempotent on ``client_order_id`` (see the module docstring)."""
        ...

    def cancel_order(self, symbol: str, client_order_id: str) -> VenueOrder:
        """Cancel; OrderNotFoundError when the venue does not know it (or it is final)."""
        ...

    def fetch_order(self, symbol: str, client_order_id: str) -> VenueOrder:
        """The order's current state; OrderNotFoundError when unknown."""
        ...

    def open_orders(self, symbol: str | None = None) -> list[VenueOrder]:
        """Every working order (of ``symbol``, or of the whole account)."""
        ...

    def fetch_fills(self, symbol: str, since_ns: int = 0) -> list[VenueFill]:
        """The account's executions in ``symbol`` since ``since_ns``, oldest first."""
        ...

    def balances(self) -> dict[str, VenueBalance]:
        """Assets with a non-zero total, by asset."""
        ...

    def positions(self, symbols: Sequence[str] | None = None) -> list[VenuePosition]:
        """Open positions (perpetuals, equities); spot holdings are balances instead."""
        ...

    def set_leverage(self, symbol: str, leverage: float, margin_mode: str | None = None) -> None:
        """Set a perpetual's leverage (and margin mode); no-op where meaningless."""
        ...

    def start_stream(self) -> None:
        """Start the user-data stream (order and fill updates); idempotent."""
        ...

    def drain_updates(self, symbols: Sequence[str] = ()) -> list[VenueUpdate]:
        """Order and fill updates since the last call, oldest first, without blocking long.

        ``symbols``: the symbols with working orders, for the REST-poll fallback when the
        stream is down.
        """
        ...

    @property
    def stream_connected(self) -> bool:
        """True while the user-data stream is up (False: updates come from polling)."""
        ...

    def close(self) -> None:
        """Stop the stream and release connections."""
        ...


#: the tags of the exits the venue broker sends for the levels it watches (a flatten's
#: ``risk`` exits are the kernel's, tracked like the step's orders)
_EXIT_TAGS = frozenset(
    r.value for r in (ExitReason.STOP_LOSS, ExitReason.TAKE_PROFIT, ExitReason.TRAILING)
)


def is_broker_order(order: Order) -> bool:
    """An order the venue broker placed on its own, not the step: a resting stop or target
    (negative id) or a reduce-only exit of a level it watches (tagged with the exit reason).
    A backtest has no counterpart: its exits are fills without orders.

    >>> from tradeloop.core.orders import Order
    >>> is_broker_order(Order(-3, "SPY", OrderSide.SELL, OrderType.STOP, 10.0, 0))
    True
    """
    return order.id < 0 or (order.reduce_only and order.tag in _EXIT_TAGS)


# -- pre-trade checks ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CheckedOrder:
    """An order after rounding: what will be sent."""

    amount: float
    price: float | None
    stop_price: float | None
    notes: tuple[str, ...] = field(default_factory=tuple)


def check_order(
    rules: MarketRules,
    amount: float,
    *,
    price: float | None = None,
    stop_price: float | None = None,
    reference_price: float | None = None,
    round_amount: float | None = None,
    round_price: float | None = None,
    round_stop: float | None = None,
) -> CheckedOrder:
    """Check an order against ``rules`` before sending; raise naming the field.

    ``round_*`` are the venue-rounded values (the adapter's precision helpers) when the caller
    has them; otherwise the rules' steps are used. ``reference_price`` (last price) is used for
    the notional check of market orders.

    Raises
    ------
    OrderValidationError
        Naming ``symbol``, ``amount``, ``price``, ``stop_price`` or ``notional``.

    >>> r = MarketRules("BTC/USDT", amount_step=0.001, price_step=0.01, min_notional=5.0)
    >>> check_order(r, 0.0523, price=100.004).amount
    0.052
    >>> check_order(r, 0.01, price=100.0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tradeloop.execution.venue.OrderValidationError: order BTC/USDT: field 'notional': ...
    """
    sym = rules.symbol
    if not rules.active:
        raise OrderValidationError(sym, "symbol", "market is not active at the venue")
    if not (math.isfinite(amount) and amount > 0):
        raise OrderValidationError(sym, "amount", f"must be a positive number, got {amount}")
    amt = round_amount if round_amount is not None else _floor_step(amount, rules.amount_step)
    if not amt > 0:
        raise OrderValidationError(
            sym, "amount", f"{amount} rounds to 0 at precision {rules.amount_step}"
        )
    if amt < rules.min_amount:
        raise OrderValidationError(sym, "amount", f"{amt} below the minimum {rules.min_amount}")
    if amt > rules.max_amount:
        raise OrderValidationError(sym, "amount", f"{amt} above the maximum {rules.max_amount}")
    px = _checked_price(rules, "price", price, round_price)
    stop = _checked_price(rules, "stop_price", stop_price, round_stop)
    ref = px if px is not None else (stop if stop is not None else reference_price)
    if ref is not None and math.isfinite(ref) and rules.min_notional > 0:
        notional = amt * ref * rules.contract_size
        if notional < rules.min_notional:
            raise OrderValidationError(
                sym, "notional", f"{notional:.8g} below the minimum {rules.min_notional}"
            )
    return CheckedOrder(amt, px, stop)


def _checked_price(
    rules: MarketRules, name: str, price: float | None, rounded: float | None
) -> float | None:
    if price is None:
        return None
    sym = rules.symbol
    if not (math.isfinite(price) and price > 0):
        raise OrderValidationError(sym, name, f"must be a positive number, got {price}")
    px = rounded if rounded is not None else _round_step(price, rules.price_step)
    if not px > 0:
        raise OrderValidationError(sym, name, f"{price} rounds to 0 at tick {rules.price_step}")
    if px < rules.min_price:
        raise OrderValidationError(sym, name, f"{px} below the minimum {rules.min_price}")
    if px > rules.max_price:
        raise OrderValidationError(sym, name, f"{px} above the maximum {rules.max_price}")
    return px


def _floor_step(value: float, step: float) -> float:
    if step <= 0:
        return value
    return round(math.floor(value / step + 1e-9) * step, 12)


def _round_step(value: float, step: float) -> float:
    if step <= 0:
        return value
    return round(round(value / step) * step, 12)
