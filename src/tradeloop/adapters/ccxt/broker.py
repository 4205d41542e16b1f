"""The ccxt venue client: a :class:`~tradeloop.execution.venue.VenueClient` on unmodified ccxt.

Spot and USD-M perpetuals (``market="perp"``); market, limit, stop (``triggerPrice`` with a
market order), take-profit (``takeProfitPrice``), stop-limit, reduce-only and post-only
orders; leverage and margin mode for perpetuals. On USD-M, ccxt sends stop and take-profit
orders to Binance's Algo Service (``algoOrder``: STOP_MARKET / TAKE_PROFIT_MARKET); this client
cancels and fetches them there by client id, and follows a triggered one through the
matching-engine order it placed. A spot stop and take-profit of one position go out together
as an OCO order list (:meth:`CcxtVenueClient.place_exit_pair`). Amounts and prices are
rounded with ccxt's own ``amount_to_precision`` / ``price_to_precision`` and the market's
limits come from its ``markets`` (the venue broker checks them before anything is sent).

Every REST call goes through one rate budget per venue (:func:`install_rate_budget`: ccxt's
own endpoint costs, drawn from a budget the data side shares). Order and fill updates come
from ccxt pro's ``watch_orders`` / ``watch_my_trades``
(:class:`~tradeloop.adapters.ccxt.user_stream.UserStream`, a thread of its own); while the
stream is down, and once after it comes back (a resync),
:meth:`CcxtVenueClient.drain_updates` polls REST (the symbols' orders and trades).
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from typing import Any, TypeVar

from tradeloop.adapters.ccxt.client import create_exchange
from tradeloop.adapters.ccxt.credentials import Credentials
from tradeloop.adapters.ccxt.errors import venue_error
from tradeloop.config.settings import ExchangeSettings
from tradeloop.core.errors import ConfigError, TradeloopError, did_you_mean
from tradeloop.core.order_status import OrderStatus
from tradeloop.core.orders import OrderSide, OrderType, TimeInForce
from tradeloop.execution.protection import RateBudget, rate_budget
from tradeloop.execution.venue import (
    ExitPair,
    MarketKind,
    MarketRules,
    OrderNotFoundError,
    OrderRejectedError,
    OrderRequest,
    VenueBalance,
    VenueFill,
    VenueOrder,
    VenuePosition,
    VenueUpdate,
)

__all__ = ["CcxtVenueClient", "install_rate_budget", "order_status_of", "venue_name"]

logger = logging.getLogger(__name__)
T = TypeVar("T")

_RAW_STATUS = {
    "NEW": OrderStatus.ACCEPTED,
    "PENDING_NEW": OrderStatus.SUBMITTED,
    "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED,
    "FILLED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELLED,
    "PENDING_CANCEL": OrderStatus.ACCEPTED,
    "REJECTED": OrderStatus.REJECTED,
    "EXPIRED": OrderStatus.EXPIRED,
    "EXPIRED_IN_MATCH": OrderStatus.EXPIRED,
    # USD-M conditional orders (the Algo Service): triggered ones live on as a matching-engine
    # order with the same client id, whose own statuses tell the outcome
    "TRIGGERING": OrderStatus.ACCEPTED,
    "TRIGGERED": OrderStatus.ACCEPTED,
}
#: algo statuses that say nothing about the outcome (the matching-engine order, under the same
#: client id, does; ccxt would also take a "closed" one without an executed quantity as filled)
_ALGO_DONE = ("TRIGGERING", "TRIGGERED", "FINISHED")
_UNIFIED_STATUS = {
    "closed": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELLED,
    "cancelled": OrderStatus.CANCELLED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}
#: the request-weight budget per minute of a venue, in ccxt cost units, with a margin
_BUDGET_SHARE = 0.8


def venue_name(exchange: str, market: str) -> str:
    """The venue's name for logs, budgets and status (``binance``, ``binance-perp``)."""
    return exchange if market == "spot" else f"{exchange}-{market}"


def order_status_of(order: dict[str, Any]) -> OrderStatus:
    """The state-machine status of a ccxt order (the venue's raw status when it has one)."""
    info = order.get("info") or {}
    raw = (
        info.get("status") or info.get("X") or info.get("algoStatus")
        if isinstance(info, dict)
        else None
    )
    if raw is None and isinstance(info, dict) and isinstance(info.get("o"), dict):
        raw = info["o"].get("X")
    if isinstance(raw, str) and raw.upper() in _RAW_STATUS:
        return _RAW_STATUS[raw.upper()]
    unified = str(order.get("status") or "open").lower()
    if unified in _UNIFIED_STATUS:
        return _UNIFIED_STATUS[unified]
    filled = float(order.get("filled") or 0.0)
    return OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.ACCEPTED


def install_rate_budget(exchange: Any, budget: RateBudget) -> None:
    """Make every REST call of ccxt instance ``exchange`` draw its endpoint cost from
    ``budget`` (ccxt's throttle hook; costs are ccxt's weights of each endpoint)."""

    def throttle(cost: float | None = None) -> None:
        budget.acquire(max(1, round(10 * (1.0 if cost is None else float(cost)))))

    exchange.throttle = throttle
    exchange.enableRateLimit = True


def budget_for(exchange: Any, name: str) -> RateBudget:
    """The process's budget of venue ``name``: ccxt's rate (``60000 / rateLimit`` unit-cost
    requests a minute) with a margin, in tenths of a cost unit."""
    per_minute = 60_000.0 / max(float(getattr(exchange, "rateLimit", 50) or 50), 1.0)
    return rate_budget(name, max(10, int(per_minute * _BUDGET_SHARE * 10)))


class CcxtVenueClient:
    """One account at one ccxt exchange (see the module docstring).

    Parameters
    ----------
    exchange
        ccxt exchange id (``binance``, ``bybit``...).
    market
        ``spot`` or ``perp`` (USD-M linear perpetuals).
    settings
        Endpoint settings (``url`` points every REST host at a local server; the user-data
        stream then goes to the same host over ``ws://``; ``testnet`` for the sandbox).
    credentials
        The API key pair.
    stream
        Use the user-data WebSocket (False: REST polling only).
    poll_interval_s
        Seconds between REST polls while the stream is down.
    """

    #: orders and trades per symbol read by one REST poll
    POLL_LIMIT = 100

    def __init__(
        self,
        exchange: str,
        market: str,
        settings: ExchangeSettings,
        credentials: Credentials,
        *,
        stream: bool = True,
        poll_interval_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.exchange_id = exchange.lower()
        self.market = market
        self.name = venue_name(self.exchange_id, market)
        self.settings = settings
        self._credentials = credentials
        ex = create_exchange(self.exchange_id, market, settings)
        ex.apiKey = credentials.api_key.get_secret_value()
        ex.secret = credentials.api_secret.get_secret_value()
        ex.options["fetchCurrencies"] = False  # needs wallet endpoints a trading key may lack
        ex.options["fetchMargins"] = False
        ex.options["warnOnFetchOpenOrdersWithoutSymbol"] = False
        self.ex = ex
        self.budget = budget_for(ex, self.name)
        install_rate_budget(ex, self.budget)
        self._use_stream = stream
        self._stream: Any = None
        self._updates: queue.Queue[VenueUpdate] = queue.Queue()
        self._poll_interval = poll_interval_s
        self._clock = clock
        self._last_poll = 0.0
        self._resync = True
        self._cid_by_oid: dict[str, str] = {}
        #: client ids of USD-M conditional orders (held by the Algo Service until triggered)
        self._conditional: set[str] = set()
        #: matching-engine order id of a triggered conditional order -> its client algo id
        self._algo_cid: dict[str, str] = {}
        self._leverage: dict[str, tuple[float, str | None]] = {}
        self._lock = threading.Lock()
        self.polls = 0

    def __repr__(self) -> str:
        return f"CcxtVenueClient({self.name})"

    # -- markets ---------------------------------------------------------------------------
    def _markets(self) -> dict[str, Any]:
        if not self.ex.markets:
            self._call(self.ex.load_markets, what="load markets")
        return self.ex.markets  # type: ignore[no-any-return]

    def _market(self, symbol: str) -> dict[str, Any]:
        markets = self._markets()
        m = markets.get(symbol)
        if m is None and self.market == "perp" and ":" not in symbol:
            quote = symbol.split("/")[-1]
            m = markets.get(f"{symbol}:{quote}")
        if m is None:
            raise ConfigError(
                f"field 'symbol': {self.name} has no market {symbol!r}."
                + did_you_mean(symbol, list(markets))
            )
        return m  # type: ignore[no-any-return]

    def _sym(self, symbol: str) -> str:
        return str(self._market(symbol)["symbol"])

    def market_rules(self, symbol: str) -> MarketRules:
        """The market's precision and limits from ccxt's market structure."""
        m = self._market(symbol)
        precision = m.get("precision") or {}
        limits = m.get("limits") or {}
        mode = int(getattr(self.ex, "precisionMode", 4))

        def step(value: Any) -> float:
            if value is None:
                return 0.0
            return float(value) if mode == 4 else 10.0 ** (-float(value))

        def lim(kind: str, side: str, default: float) -> float:
            value = (limits.get(kind) or {}).get(side)
            return float(value) if value is not None else default

        perp = bool(m.get("swap") or m.get("future"))
        return MarketRules(
            symbol=symbol,
            kind=MarketKind.PERPETUAL if perp else MarketKind.SPOT,
            base=str(m.get("base") or ""),
            quote=str(m.get("quote") or ""),
            amount_step=step(precision.get("amount")),
            price_step=step(precision.get("price")),
            min_amount=lim("amount", "min", 0.0),
            max_amount=lim("amount", "max", math.inf),
            min_price=lim("price", "min", 0.0),
            max_price=lim("price", "max", math.inf),
            min_notional=lim("cost", "min", 0.0),
            maker_fee=float(m.get("maker") or 0.0),
            taker_fee=float(m.get("taker") or 0.0),
            contract_size=float(m.get("contractSize") or 1.0),
            active=m.get("active") is not False,
        )

    def round_amount(self, symbol: str, amount: float) -> float:
        """``amount`` truncated to the market's amount precision (ccxt's helper); 0 when it
        rounds below one step."""
        import ccxt

        try:
            return float(self.ex.amount_to_precision(self._sym(symbol), amount))
        except (ccxt.InvalidOrder, ccxt.ArgumentsRequired):
            return 0.0

    def round_price(self, symbol: str, price: float) -> float:
        """``price`` rounded to the market's tick (ccxt's helper)."""
        return float(self.ex.price_to_precision(self._sym(symbol), price))

    # -- orders ----------------------------------------------------------------------------
    def place_order(self, request: OrderRequest) -> VenueOrder:
        """Place ``request`` with its client order id; fills in the answer are queued."""
        sym = self._sym(request.symbol)
        params: dict[str, Any] = {"newClientOrderId": request.client_order_id}
        if self.exchange_id != "binance" and not self.exchange_id.startswith("binance"):
            params = {"clientOrderId": request.client_order_id}
        otype = "market"
        price: float | None = None
        if request.type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
            otype, price = "limit", request.price
        if request.type in (OrderType.STOP, OrderType.STOP_LIMIT):
            params["triggerPrice"] = request.stop_price
        if request.type is OrderType.TAKE_PROFIT:
            params["takeProfitPrice"] = request.stop_price
        conditional = request.type in (OrderType.STOP, OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT)
        if conditional and self.market == "perp":
            with self._lock:  # USD-M: held by the Algo Service until triggered
                self._conditional.add(request.client_order_id)
        if request.reduce_only:
            params["reduceOnly"] = True
        if request.post_only:
            params["postOnly"] = True
        if (
            request.time_in_force is not TimeInForce.GTC
            and otype == "limit"
            and not request.post_only
        ):
            params["timeInForce"] = request.time_in_force.value.upper()
        if self.market == "perp" and request.leverage is not None:
            self.set_leverage(request.symbol, request.leverage, request.margin_mode)
        order = self._call(
            lambda: self.ex.create_order(
                sym, otype, request.side.value, request.amount, price, params
            ),
            what=f"place {request.client_order_id}",
            cid=request.client_order_id,
        )
        snapshot = self._order(order, request.symbol, fallback_cid=request.client_order_id)
        for trade in order.get("trades") or []:
            fill = self._fill(trade, request.symbol, snapshot)
            if not fill.ts:  # fills inside an order answer carry the order's time only
                fill = replace(fill, ts=snapshot.ts)
            self._updates.put(fill)
        return snapshot

    def place_exit_pair(self, pair: ExitPair) -> list[VenueOrder]:
        """A stop and a take-profit of one quantity as a Binance spot OCO order list
        (``orderList/oco`` through ccxt's implicit API: ccxt has no unified call for it): the
        take-profit rests above a long's price and the stop below (a short's the other way);
        the quantity is held once, and either leg's fill or cancel ends the other."""
        if self.market != "spot" or not self.exchange_id.startswith("binance"):
            raise OrderRejectedError(f"{self.name} has no OCO order lists", code="unsupported")
        sym = self._sym(pair.symbol)
        market = self._market(pair.symbol)
        stop = {
            "Type": "STOP_LOSS",
            "StopPrice": self.ex.price_to_precision(sym, pair.stop_price),
            "ClientOrderId": pair.stop_id,
        }
        take = {
            "Type": "TAKE_PROFIT",
            "StopPrice": self.ex.price_to_precision(sym, pair.take_profit),
            "ClientOrderId": pair.take_id,
        }
        above, below = (take, stop) if pair.side is OrderSide.SELL else (stop, take)
        request: dict[str, Any] = {
            "symbol": market["id"],
            "side": pair.side.value.upper(),
            "quantity": self.ex.amount_to_precision(sym, pair.amount),
            "listClientOrderId": pair.list_id,
            "newOrderRespType": "FULL",
        }
        for prefix, leg in (("above", above), ("below", below)):
            request.update({prefix + k: v for k, v in leg.items()})
        answer = self._call(
            lambda: self.ex.privatePostOrderListOco(request),
            what=f"place {pair.list_id}",
            cid=pair.stop_id,
        )
        legs = {
            str(r.get("clientOrderId")): self._order(self.ex.parse_order(r, market), pair.symbol)
            for r in answer.get("orderReports") or []
        }
        return [legs[pair.stop_id], legs[pair.take_id]]

    def cancel_order(self, symbol: str, client_order_id: str) -> VenueOrder:
        """Cancel by client order id (a USD-M conditional order at the Algo Service; a spot
        order list's leg: the whole list)."""
        sym = self._sym(symbol)
        if self.market == "perp" and self._is_conditional(client_order_id):
            return self._cancel_algo(sym, symbol, client_order_id)
        try:
            order = self._call(
                lambda: self.ex.cancel_order(None, sym, {"origClientOrderId": client_order_id}),
                what=f"cancel {client_order_id}",
                cid=client_order_id,
            )
        except OrderNotFoundError:
            if self.market != "perp":
                raise
            return self._cancel_algo(sym, symbol, client_order_id)
        return self._order(order, symbol, fallback_cid=client_order_id)

    def _cancel_algo(self, sym: str, symbol: str, client_order_id: str) -> VenueOrder:
        order = self._call(
            lambda: self.ex.cancel_order(
                None, sym, {"clientAlgoId": client_order_id, "trigger": True}
            ),
            what=f"cancel {client_order_id}",
            cid=client_order_id,
        )
        # the Algo Service answers a cancel with ids and a code only
        snap = self._order(order, symbol, fallback_cid=client_order_id)
        return replace(snap, status=OrderStatus.CANCELLED)

    def fetch_order(self, symbol: str, client_order_id: str) -> VenueOrder:
        """The order by client order id; OrderNotFoundError when the venue does not know it.

        On USD-M an untriggered conditional order is at the Algo Service; once triggered, the
        matching-engine order with the same client id tells its outcome."""
        sym = self._sym(symbol)
        try:
            order = self._call(
                lambda: self.ex.fetch_order(None, sym, {"origClientOrderId": client_order_id}),
                what=f"fetch {client_order_id}",
                cid=client_order_id,
            )
        except OrderNotFoundError:
            if self.market != "perp":
                raise
            algo = self._call(
                lambda: self.ex.fetch_order(
                    None, sym, {"clientAlgoId": client_order_id, "trigger": True}
                ),
                what=f"fetch {client_order_id}",
                cid=client_order_id,
            )
            with self._lock:
                self._conditional.add(client_order_id)
            info = algo.get("info") or {}
            actual = str(info.get("actualOrderId") or "")
            if not actual:
                return self._order(algo, symbol, fallback_cid=client_order_id)
            with self._lock:
                self._algo_cid[actual] = client_order_id
            order = self._call(
                lambda: self.ex.fetch_order(actual, sym),
                what=f"fetch {client_order_id}",
                cid=client_order_id,
            )
        return self._order(order, symbol, fallback_cid=client_order_id)

    def _is_conditional(self, client_order_id: str) -> bool:
        with self._lock:
            return client_order_id in self._conditional

    def open_orders(self, symbol: str | None = None) -> list[VenueOrder]:
        """Working orders of ``symbol`` (or every symbol)."""
        sym = self._sym(symbol) if symbol else None
        orders = self._call(lambda: self.ex.fetch_open_orders(sym), what="open orders")
        if self.market == "perp":  # and the conditional ones waiting at the Algo Service
            algos = self._call(
                lambda: self.ex.fetch_open_orders(sym, None, None, {"trigger": True}),
                what="open conditional orders",
            )
            with self._lock:
                self._conditional.update(str(o.get("clientOrderId") or "") for o in algos)
            orders = [*orders, *algos]
        return [self._order(o, self._ours(o.get("symbol"), symbol)) for o in orders]

    def fetch_fills(self, symbol: str, since_ns: int = 0) -> list[VenueFill]:
        """The account's executions in ``symbol`` since ``since_ns``."""
        sym = self._sym(symbol)
        since = since_ns // 1_000_000 if since_ns else None
        trades = self._call(lambda: self.ex.fetch_my_trades(sym, since), what="my trades")
        with self._lock:
            unknown = any(str(t.get("order") or "") not in self._cid_by_oid for t in trades)
        if unknown:  # the venue's trades carry order ids only: learn their client ids
            for o in self._call(
                partial(self.ex.fetch_orders, sym, None, self.POLL_LIMIT), what="orders"
            ):
                self._order(o, symbol)
        return [f for f in (self._fill(t, symbol, None) for t in trades) if f.client_order_id]

    def balances(self) -> dict[str, VenueBalance]:
        """Assets with a non-zero total."""
        bal = self._call(self.ex.fetch_balance, what="balance")
        out: dict[str, VenueBalance] = {}
        for asset, total in (bal.get("total") or {}).items():
            if total:
                free = float((bal.get("free") or {}).get(asset) or 0.0)
                used = float((bal.get("used") or {}).get(asset) or 0.0)
                if not free and not used:
                    free = float(total)
                out[asset] = VenueBalance(asset, free, used)
        return out

    def positions(self, symbols: Sequence[str] | None = None) -> list[VenuePosition]:
        """Open perpetual positions (spot: none)."""
        if self.market != "perp":
            return []
        given = {self._sym(s): s for s in symbols} if symbols else {}
        syms = list(given) if given else None
        rows = self._call(lambda: self.ex.fetch_positions(syms), what="positions")
        out = []
        for p in rows:
            contracts = float(p.get("contracts") or 0.0)
            if not contracts:
                continue
            size = contracts * float(p.get("contractSize") or 1.0)
            signed = -size if p.get("side") == "short" else size
            out.append(
                VenuePosition(
                    given.get(str(p.get("symbol")), self._ours(p.get("symbol"), None)),
                    signed,
                    float(p.get("entryPrice") or math.nan),
                    float(p["leverage"]) if p.get("leverage") else None,
                    float(p.get("unrealizedPnl") or 0.0),
                )
            )
        return out

    def set_leverage(self, symbol: str, leverage: float, margin_mode: str | None = None) -> None:
        """Set a perpetual's leverage and margin mode (once per value)."""
        import ccxt

        if self.market != "perp":
            return
        if self._leverage.get(symbol) == (leverage, margin_mode):
            return
        sym = self._sym(symbol)
        if margin_mode:
            try:
                self._call(lambda: self.ex.set_margin_mode(margin_mode, sym), what="margin mode")
            except TradeloopError as exc:
                if not isinstance(
                    exc.__cause__, ccxt.MarginModeAlreadySet
                ) and "No need to change" not in str(exc):
                    raise
        self._call(lambda: self.ex.set_leverage(int(leverage), sym), what="leverage")
        self._leverage[symbol] = (leverage, margin_mode)

    # -- updates ---------------------------------------------------------------------------
    def start_stream(self) -> None:
        """Start the user-data stream thread (idempotent)."""
        if not self._use_stream or self._stream is not None:
            return
        from tradeloop.adapters.ccxt.user_stream import UserStream

        self._markets()
        self._stream = UserStream(
            self,
            self._credentials,
            on_update=self._on_stream_update,
            on_reconnect=self._on_reconnect,
        )
        self._stream.start()

    @property
    def stream_connected(self) -> bool:
        """True while the user-data stream is up."""
        return self._stream is not None and bool(self._stream.connected)

    def _on_stream_update(self, kind: str, item: dict[str, Any]) -> None:
        symbol = self._ours(item.get("symbol"), None)
        info = item.get("info")
        if kind == "order" and isinstance(info, dict) and "aid" in info:
            # ALGO_UPDATE: the conditional order's own life; once triggered, the
            # matching-engine order ("ai") reports the fills under the same client id
            actual, cid = str(info.get("ai") or ""), str(info.get("caid") or "")
            with self._lock:
                if cid:
                    self._conditional.add(cid)
                if actual and cid:
                    self._algo_cid[actual] = cid
            if str(info.get("X") or "") in _ALGO_DONE:
                return
        if kind == "order":
            snap = self._order(item, symbol)
            if snap.client_order_id:
                self._updates.put(snap)
        else:
            fill = self._fill(item, symbol, None)
            if fill.client_order_id:
                self._updates.put(fill)

    def _on_reconnect(self) -> None:
        self._resync = True

    def drain_updates(self, symbols: Sequence[str] = ()) -> list[VenueUpdate]:
        """Updates since the last call; REST-polled while the stream is down and once after
        it reconnects."""
        if symbols and (self._resync or not self.stream_connected):
            now = self._clock()
            if self._resync or now - self._last_poll >= self._poll_interval:
                self._poll(symbols)
        out: list[VenueUpdate] = []
        while True:
            try:
                out.append(self._updates.get_nowait())
            except queue.Empty:
                return out

    def _poll(self, symbols: Sequence[str]) -> None:
        """The symbols' most recent orders and trades over REST (the venue's newest first
        pages, so no clock of ours decides what is recent)."""
        for symbol in symbols:
            sym = self._sym(symbol)
            orders = self._call(
                partial(self.ex.fetch_orders, sym, None, self.POLL_LIMIT), what="poll orders"
            )
            for o in orders:
                snap = self._order(o, symbol)
                if snap.client_order_id:
                    self._updates.put(snap)
            trades = self._call(
                partial(self.ex.fetch_my_trades, sym, None, self.POLL_LIMIT), what="poll trades"
            )
            for t in trades:
                fill = self._fill(t, symbol, None)
                if fill.client_order_id:
                    self._updates.put(fill)
        self.polls += 1
        self._last_poll = self._clock()
        self._resync = False

    def close(self) -> None:
        """Stop the stream."""
        if self._stream is not None:
            self._stream.stop()
            self._stream = None

    # -- parsing ---------------------------------------------------------------------------
    def _ours(self, ccxt_symbol: Any, given: str | None) -> str:
        if given:
            return given
        sym = str(ccxt_symbol or "")
        if self.market == "perp" and sym.endswith(":USDT"):
            return sym
        return sym

    def _order(self, o: dict[str, Any], symbol: str, *, fallback_cid: str = "") -> VenueOrder:
        info = o.get("info") or {}
        cid = str(
            o.get("clientOrderId")
            or (info.get("c") if isinstance(info, dict) else "")
            or fallback_cid
            or ""
        )
        oid = str(o.get("id") or "")
        with self._lock:
            cid = self._algo_cid.get(oid, cid)
        if oid and cid:
            with self._lock:
                self._cid_by_oid[oid] = cid
        side = OrderSide(str(o.get("side") or "buy").lower())
        raw_type = str(o.get("type") or "market").lower()
        trigger = o.get("triggerPrice") or o.get("stopPrice")
        otype = {
            "market": OrderType.MARKET,
            "limit": OrderType.LIMIT,
        }.get(raw_type, OrderType.STOP_LIMIT if o.get("price") else OrderType.STOP)
        if trigger and otype is OrderType.MARKET:
            otype = OrderType.TAKE_PROFIT if o.get("takeProfitPrice") else OrderType.STOP
        ts = int(
            o.get("lastTradeTimestamp") or o.get("lastUpdateTimestamp") or o.get("timestamp") or 0
        )
        avg = o.get("average")
        return VenueOrder(
            client_order_id=cid,
            symbol=symbol,
            side=side,
            type=otype,
            status=order_status_of(o),
            amount=float(o.get("amount") or 0.0),
            filled=float(o.get("filled") or 0.0),
            average_price=float(avg) if avg else math.nan,
            price=float(o["price"]) if o.get("price") else None,
            stop_price=float(trigger) if trigger else None,
            venue_order_id=oid,
            reduce_only=bool(o.get("reduceOnly")),
            ts=ts * 1_000_000,
        )

    def _fill(self, t: dict[str, Any], symbol: str, order: VenueOrder | None) -> VenueFill:
        info = t.get("info") or {}
        oid = str(t.get("order") or (order.venue_order_id if order else "") or "")
        cid = ""
        if isinstance(info, dict):
            cid = (
                str(info.get("c") or (info.get("o") or {}).get("c") or "")
                if isinstance(info.get("o", {}), dict)
                else str(info.get("c") or "")
            )
        if not cid and order is not None:
            cid = order.client_order_id
        with self._lock:
            cid = self._algo_cid.get(oid) or cid or self._cid_by_oid.get(oid, "")
        fee = t.get("fee") or {}
        taker = t.get("takerOrMaker")
        return VenueFill(
            trade_id=str(t.get("id") or ""),
            client_order_id=cid,
            symbol=symbol,
            side=OrderSide(str(t.get("side") or (order.side.value if order else "buy")).lower()),
            amount=float(t.get("amount") or 0.0),
            price=float(t.get("price") or 0.0),
            fee=float(fee.get("cost") or 0.0),
            fee_currency=str(fee.get("currency") or ""),
            ts=int(t.get("timestamp") or 0) * 1_000_000,
            maker=None if taker is None else taker == "maker",
            venue_order_id=oid,
        )

    # -- calls -----------------------------------------------------------------------------
    def _call(self, fn: Callable[[], T], *, what: str, cid: str = "") -> T:
        import ccxt

        try:
            return fn()
        except ccxt.BaseError as exc:
            raise venue_error(
                exc, self.ex, client_order_id=cid, what=f"{self.name} {what}"
            ) from None
