"""The matching engine and accounts behind the local Binance trading server.

:class:`BinanceBook` keeps one spot account (balances) and one USD-M account (wallet, positions,
leverage, margin type), the orders of both and their executions, and renders them in Binance's
JSON shapes (REST order/trade/account objects, ``executionReport`` and ``ORDER_TRADE_UPDATE``
user-data events). It is thread-safe; the HTTP/WebSocket server
(:mod:`tradeloop.testing.venue.trading_server`) calls it.

Fill rule (the paper broker's, so live and paper on the same recording trade alike):

* a MARKET order fills at once at the current price: the open of the bar the replay clock is
  in (``prices(symbol_id, market) -> (bar_ms, price)``), timestamped with that bar's time;
* LIMIT / STOP / TAKE_PROFIT orders rest and are matched bar by bar as the clock moves
  (:meth:`BinanceBook.advance`): a limit buy fills when the bar's low reaches it (at the limit,
  or at the open when the bar opens through it), a stop triggers when the high (buy) / low
  (sell) reaches it and fills at the stop (or the open on a gap); a post-only order
  (``LIMIT_MAKER``, ``GTX``) that would trade at once is rejected, and one that rests fills
  at its limit with the maker fee when a bar trades through it (low < limit for a buy), the
  simulated broker's post-only rule.
* ``partial_fills=n`` splits each fill into ``n`` executions (separate trade ids).
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tradeloop.execution.fill_rules import TriggerKind, trigger_fill
from tradeloop.testing._wire import binance_num as num

__all__ = ["BinanceBook", "BookOrder", "BookTrade", "RefusedError"]

PriceSource = Callable[[str, str], "tuple[int, float] | None"]
BarSource = Callable[[str, str, int, int], "list[tuple[int, float, float, float, float]]"]


class RefusedError(Exception):
    """A request Binance answers with an error ``code`` and ``msg`` (HTTP ``status``)."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.status = status


@dataclass
class BookOrder:
    """One order at the venue."""

    market: str  # "spot" | "linear"
    symbol: str
    order_id: int
    client_id: str
    side: str  # BUY | SELL
    type: str  # MARKET LIMIT STOP_LOSS STOP_LOSS_LIMIT TAKE_PROFIT LIMIT_MAKER STOP STOP_MARKET ...
    qty: float
    price: float
    stop_price: float
    tif: str
    reduce_only: bool
    time_ms: int
    status: str = "NEW"
    executed: float = 0.0
    quote: float = 0.0
    update_ms: int = 0
    triggered: bool = False
    #: the type the client sent when a conditional (algo) order placed this one on triggering
    orig_type: str = ""
    #: the spot order list (OCO) it belongs to, or -1
    list_id: int = -1

    @property
    def avg(self) -> float:
        """Average fill price (0 when nothing filled)."""
        return self.quote / self.executed if self.executed > 0 else 0.0

    @property
    def is_open(self) -> bool:
        """Still working."""
        return self.status in ("NEW", "PARTIALLY_FILLED")


@dataclass
class BookTrade:
    """One execution."""

    market: str
    symbol: str
    trade_id: int
    order_id: int
    side: str
    price: float
    qty: float
    commission: float
    commission_asset: str
    time_ms: int
    maker: bool
    realized_pnl: float = 0.0


@dataclass
class BookAlgo:
    """One USD-M conditional order held by the Algo Service (``/fapi/v1/algoOrder``) until it
    triggers and places an order in the matching engine (``actual_order_id``)."""

    symbol: str
    algo_id: int
    client_id: str
    side: str
    type: str  # STOP_MARKET TAKE_PROFIT_MARKET
    qty: float
    trigger: float
    reduce_only: bool
    tif: str
    create_ms: int
    #: the last bar matched against it (bars after it, up to the one the clock is in, next)
    checked_ms: int
    status: str = "NEW"  # NEW CANCELED TRIGGERED FINISHED REJECTED EXPIRED
    update_ms: int = 0
    trigger_ms: int = 0
    actual_order_id: int = 0

    @property
    def is_open(self) -> bool:
        """Waiting for its trigger."""
        return self.status == "NEW"


@dataclass
class _Position:
    qty: float = 0.0  # signed
    entry: float = 0.0
    leverage: int = 20
    margin_type: str = "cross"


@dataclass
class BinanceBook:
    """Accounts, orders and executions of one API key (see the module docstring).

    Parameters
    ----------
    prices
        ``(symbol_id, market) -> (bar_ms, price)`` of the bar the clock is in, or None.
    bars
        ``(symbol_id, market, from_ms, to_ms) -> [(bar_ms, o, h, l, c)]``: the bars that
        opened in ``(from_ms, to_ms]``, for resting orders.
    symbols
        ``(market, symbol_id) -> (base, quote)`` of the listed markets.
    balances
        Initial spot balances; ``futures_wallet``: the USD-M wallet (USDT).
    """

    prices: PriceSource
    bars: BarSource
    symbols: dict[tuple[str, str], tuple[str, str]]
    balances: dict[str, float] = field(default_factory=lambda: {"USDT": 10_000.0})
    futures_wallet: float = 10_000.0
    spot_fee: float = 0.001
    futures_taker: float = 0.0005
    futures_maker: float = 0.0002
    partial_fills: int = 1
    #: Binance's default: a buy pays its commission in the base asset received; False: in
    #: the quote asset (as an account paying fees from its quote balance)
    spot_fee_in_received: bool = False
    orders: list[BookOrder] = field(default_factory=list)
    algos: list[BookAlgo] = field(default_factory=list)
    _list_cids: dict[int, str] = field(default_factory=dict)
    trades: list[BookTrade] = field(default_factory=list)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    reject_next: list[str] = field(default_factory=list)
    _positions: dict[str, _Position] = field(default_factory=dict)
    _ids: Any = field(default_factory=lambda: itertools.count(1000))
    _trade_ids: Any = field(default_factory=lambda: itertools.count(5000))
    _clock_ms: dict[tuple[str, str], int] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _listeners: list[Callable[[str, dict[str, Any]], None]] = field(default_factory=list)

    # -- listeners (the user-data streams) ---------------------------------------------------
    def subscribe(self, listener: Callable[[str, dict[str, Any]], None]) -> None:
        """``listener(market, event)`` for every user-data event."""
        self._listeners.append(listener)

    def _emit(self, market: str, event: dict[str, Any]) -> None:
        self.events.append((market, event))
        for listener in list(self._listeners):
            listener(market, event)

    # -- requests --------------------------------------------------------------------------
    def place(self, market: str, q: dict[str, str], *, list_id: int = -1) -> BookOrder:
        """``POST order``: validate, store, fill a market order at once (``list_id``: a leg
        of an order list)."""
        with self._lock:
            symbol = q.get("symbol", "")
            if (market, symbol) not in self.symbols:
                raise RefusedError(-1121, "Invalid symbol.")
            client_id = q.get("newClientOrderId") or f"x-local-{next(self._ids)}"
            if any(o.client_id == client_id and o.is_open for o in self.orders):
                raise RefusedError(-2010, "Duplicate order sent.")
            if self.reject_next:
                raise RefusedError(-2010, self.reject_next.pop(0))
            side = q.get("side", "").upper()
            otype = q.get("type", "").upper()
            if side not in ("BUY", "SELL"):
                raise RefusedError(
                    -1102, "Mandatory parameter 'side' was not sent, was empty/null, or malformed."
                )
            try:
                qty = float(q.get("quantity", "nan"))
            except ValueError:
                raise RefusedError(
                    -1100, "Illegal characters found in parameter 'quantity'."
                ) from None
            if not qty > 0:
                raise RefusedError(-1013, "Invalid quantity.")
            price = float(q.get("price", 0) or 0)
            stop = float(q.get("stopPrice", 0) or 0)
            tif = q.get("timeInForce", "GTC")
            if market == "spot" and "reduceOnly" in q:  # a futures parameter spot does not read
                raise RefusedError(
                    -1104, "Not all sent parameters were read; read a parameter spot does not have."
                )
            reduce_only = q.get("reduceOnly", "false").lower() == "true"
            now = self._now(market, symbol)
            if now is None:
                raise RefusedError(-1013, "Market is closed.")
            bar_ms, last = now
            self._clock_ms.setdefault((market, symbol), bar_ms)
            if (
                otype
                in (
                    "LIMIT",
                    "STOP_LOSS_LIMIT",
                    "TAKE_PROFIT_LIMIT",
                    "LIMIT_MAKER",
                    "STOP",
                )
                or (otype == "TAKE_PROFIT" and market == "linear")
            ) and not price > 0:
                raise RefusedError(
                    -1102, "Mandatory parameter 'price' was not sent, was empty/null, or malformed."
                )
            if otype in _TRIGGERED and not stop > 0:
                raise RefusedError(
                    -1102,
                    "Mandatory parameter 'stopPrice' was not sent, was empty/null, or malformed.",
                )
            if market == "spot" and otype in _TRIGGERED and stop > 0:
                # a stop sells below the market (buys above); a take-profit the other way
                above = (side == "BUY") != otype.startswith("TAKE_PROFIT")
                if (stop <= last) if above else (stop >= last):
                    raise RefusedError(-2010, "Stop price would trigger immediately.")
            ref = price if price > 0 else (stop if stop > 0 else last)
            if market == "spot" and qty * ref < 5.0:
                raise RefusedError(-1013, "Filter failure: NOTIONAL")
            if market == "linear" and qty * ref < 5.0 and not reduce_only:
                raise RefusedError(
                    -4164,
                    "Order's notional must be no smaller than 5 (unless you choose reduce only).",
                )
            order = BookOrder(
                market,
                symbol,
                next(self._ids),
                client_id,
                side,
                otype,
                qty,
                price,
                stop,
                tif,
                reduce_only,
                bar_ms,
                update_ms=bar_ms,
                list_id=list_id,
            )
            post_only = otype == "LIMIT_MAKER" or tif == "GTX"
            if post_only and _crosses(side, price, last):
                if market == "linear":
                    order.status = "EXPIRED"
                    self.orders.append(order)
                    self._emit_order(order, "EXPIRED", None)
                    return order
                raise RefusedError(-2010, "Order would immediately match and take.")
            self._check_funds(order, ref)
            if market == "linear" and reduce_only:
                pos = self._positions.get(symbol, _Position())
                if pos.qty == 0 or (pos.qty > 0) == (side == "BUY"):
                    raise RefusedError(-2022, "ReduceOnly Order is rejected.")
            self.orders.append(order)
            self._emit_order(order, "NEW", None)
            if otype == "MARKET" or (
                otype in ("LIMIT", "LIMIT_MAKER") and _crosses(side, price, last)
            ):
                self._fill(order, last, bar_ms, maker=False)
            return order

    def find(self, market: str, q: dict[str, str]) -> BookOrder:
        """The order named by ``orderId`` or ``origClientOrderId``."""
        with self._lock:
            symbol = q.get("symbol", "")
            oid = q.get("orderId")
            cid = q.get("origClientOrderId")
            for order in reversed(self.orders):
                if order.market != market or order.symbol != symbol:
                    continue
                if (oid is not None and str(order.order_id) == oid) or (
                    cid is not None and order.client_id == cid
                ):
                    return order
            raise RefusedError(-2013, "Order does not exist.")

    def cancel(self, market: str, q: dict[str, str]) -> BookOrder:
        """``DELETE order``."""
        with self._lock:
            try:
                order = self.find(market, q)
            except RefusedError:
                raise RefusedError(-2011, "Unknown order sent.") from None
            if not order.is_open:
                raise RefusedError(-2011, "Unknown order sent.")
            if order.list_id >= 0:  # a leg of an order list: the whole list is cancelled
                self._end_list(order.list_id, order.update_ms, "CANCELED")
                return order
            order.status = "CANCELED"
            self._emit_order(order, "CANCELED", None)
            return order

    def open_orders(self, market: str, symbol: str | None) -> list[BookOrder]:
        """Working orders."""
        with self._lock:
            return [
                o
                for o in self.orders
                if o.market == market and o.is_open and (symbol is None or o.symbol == symbol)
            ]

    def all_orders(self, market: str, symbol: str) -> list[BookOrder]:
        """Every order of a symbol."""
        with self._lock:
            return [o for o in self.orders if o.market == market and o.symbol == symbol]

    def my_trades(self, market: str, symbol: str, q: dict[str, str]) -> list[BookTrade]:
        """Executions of a symbol (``startTime``, ``fromId``, ``orderId``, ``limit``)."""
        with self._lock:
            out = [t for t in self.trades if t.market == market and t.symbol == symbol]
        if "orderId" in q:
            out = [t for t in out if str(t.order_id) == q["orderId"]]
        if "fromId" in q:
            out = [t for t in out if t.trade_id >= int(q["fromId"])]
        if "startTime" in q:
            out = [t for t in out if t.time_ms >= int(q["startTime"])]
        limit = int(q.get("limit", 500))
        return out[:limit]

    # -- USD-M conditional orders (the Algo Service) ----------------------------------------
    def place_algo(self, q: dict[str, str]) -> BookAlgo:
        """``POST /fapi/v1/algoOrder`` (``algoType=CONDITIONAL``): a STOP_MARKET or
        TAKE_PROFIT_MARKET order waiting for its ``triggerPrice``."""
        with self._lock:
            symbol = q.get("symbol", "")
            if ("linear", symbol) not in self.symbols:
                raise RefusedError(-1121, "Invalid symbol.")
            if q.get("algoType", "") != "CONDITIONAL":
                raise RefusedError(-1116, "Invalid algoType.")
            client_id = q.get("clientAlgoId") or f"x-local-{next(self._ids)}"
            if any(a.client_id == client_id and a.is_open for a in self.algos):
                raise RefusedError(-4116, "ClientOrderId is duplicated.")
            if self.reject_next:
                raise RefusedError(-2010, self.reject_next.pop(0))
            side = q.get("side", "").upper()
            otype = q.get("type", "").upper()
            if side not in ("BUY", "SELL"):
                raise RefusedError(
                    -1102, "Mandatory parameter 'side' was not sent, was empty/null, or malformed."
                )
            if otype not in ("STOP_MARKET", "TAKE_PROFIT_MARKET"):
                raise RefusedError(-1116, "Invalid orderType.")
            try:
                qty = float(q.get("quantity", "nan"))
                trigger = float(q.get("triggerPrice", "nan"))
            except ValueError:
                raise RefusedError(-1100, "Illegal characters found in a parameter.") from None
            if not qty > 0:
                raise RefusedError(-1013, "Invalid quantity.")
            if not trigger > 0:
                raise RefusedError(
                    -1102,
                    "Mandatory parameter 'triggerPrice' was not sent, was empty/null, or "
                    "malformed.",
                )
            reduce_only = q.get("reduceOnly", "false").lower() == "true"
            now = self._now("linear", symbol)
            if now is None:
                raise RefusedError(-1013, "Market is closed.")
            bar_ms, _last = now
            if qty * trigger < 5.0 and not reduce_only:
                raise RefusedError(
                    -4164,
                    "Order's notional must be no smaller than 5 (unless you choose reduce only).",
                )
            algo = BookAlgo(
                symbol,
                next(self._ids),
                client_id,
                side,
                otype,
                qty,
                trigger,
                reduce_only,
                q.get("timeInForce", "GTC"),
                bar_ms,
                bar_ms - 1,  # it rests from the bar the clock is in
                update_ms=bar_ms,
            )
            self.algos.append(algo)
            self._emit_algo(algo)
            return algo

    def find_algo(self, q: dict[str, str]) -> BookAlgo:
        """The conditional order named by ``algoId`` or ``clientAlgoId``."""
        with self._lock:
            aid = q.get("algoId")
            cid = q.get("clientAlgoId")
            for algo in reversed(self.algos):
                if (aid is not None and str(algo.algo_id) == aid) or (
                    cid is not None and algo.client_id == cid
                ):
                    return algo
            raise RefusedError(-2013, "Order does not exist.")

    def cancel_algo(self, q: dict[str, str]) -> BookAlgo:
        """``DELETE /fapi/v1/algoOrder``: only an untriggered order can be cancelled."""
        with self._lock:
            try:
                algo = self.find_algo(q)
            except RefusedError:
                raise RefusedError(-2011, "Unknown order sent.") from None
            if not algo.is_open:
                raise RefusedError(-2011, "Unknown order sent.")
            algo.status = "CANCELED"
            self._emit_algo(algo)
            return algo

    def open_algos(self, symbol: str | None) -> list[BookAlgo]:
        """Conditional orders waiting for their trigger."""
        with self._lock:
            return [a for a in self.algos if a.is_open and (symbol is None or a.symbol == symbol)]

    def _match_algos(self) -> int:
        """Match waiting conditional orders against the bars that completed since their last
        check (the bar the clock is in is not over yet), by the simulated broker's rule of
        protective exits; a triggered one places a MARKET order with its client id in the
        matching engine and fills it at the rule's price (a reduce-only one with nothing left
        to reduce expires)."""
        triggered = 0
        for algo in [a for a in self.algos if a.is_open]:
            now = self._now("linear", algo.symbol)
            if now is None or now[0] - 1 <= algo.checked_ms:
                continue
            kind = (
                TriggerKind.TAKE_PROFIT if algo.type.startswith("TAKE_PROFIT") else TriggerKind.STOP
            )
            direction = -1 if algo.side == "BUY" else 1  # the position it protects
            for bar_ms, o, h, low, _c in self.bars(
                algo.symbol, "linear", algo.checked_ms, now[0] - 1
            ):
                algo.checked_ms = bar_ms
                fill = trigger_fill(kind, direction, algo.trigger, o, h, low)
                if fill is not None:
                    self._trigger(algo, bar_ms, fill.price, fill.maker)
                    triggered += 1
                    break
            else:
                algo.checked_ms = now[0] - 1
        return triggered

    def _trigger(self, algo: BookAlgo, bar_ms: int, price: float, maker: bool) -> None:
        order = BookOrder(
            "linear",
            algo.symbol,
            next(self._ids),
            algo.client_id,
            algo.side,
            "MARKET",
            algo.qty,
            0.0,
            algo.trigger,
            "GTC",
            algo.reduce_only,
            bar_ms,
            update_ms=bar_ms,
            orig_type=algo.type,
        )
        algo.status, algo.trigger_ms, algo.update_ms = "TRIGGERED", bar_ms, bar_ms
        algo.actual_order_id = order.order_id
        self._emit_algo(algo)
        self.orders.append(order)
        self._emit_order(order, "NEW", None)
        self._fill(order, price, bar_ms, maker=maker)
        algo.status = "FINISHED"
        self._emit_algo(algo)

    def algo_json(self, algo: BookAlgo) -> dict[str, Any]:
        """The REST object of a conditional order (``algoOrder``, ``openAlgoOrders``)."""
        actual = next((o for o in self.orders if o.order_id == algo.actual_order_id), None)
        return {
            "algoId": algo.algo_id,
            "clientAlgoId": algo.client_id,
            "algoType": "CONDITIONAL",
            "orderType": algo.type,
            "symbol": algo.symbol,
            "side": algo.side,
            "positionSide": "BOTH",
            "timeInForce": algo.tif,
            "quantity": num(algo.qty),
            "algoStatus": algo.status,
            "actualOrderId": str(algo.actual_order_id) if algo.actual_order_id else "",
            "actualPrice": num(actual.avg) if actual is not None else "0",
            "triggerPrice": num(algo.trigger),
            "price": "0",
            "icebergQuantity": None,
            "selfTradePreventionMode": "EXPIRE_MAKER",
            "workingType": "CONTRACT_PRICE",
            "priceMatch": "NONE",
            "closePosition": False,
            "priceProtect": False,
            "reduceOnly": algo.reduce_only,
            "activatePrice": "",
            "callbackRate": "",
            "createTime": algo.create_ms,
            "updateTime": algo.update_ms,
            "triggerTime": algo.trigger_ms,
            "goodTillDate": 0,
        }

    def _emit_algo(self, algo: BookAlgo) -> None:
        actual = next((o for o in self.orders if o.order_id == algo.actual_order_id), None)
        self._emit(
            "linear",
            {
                "e": "ALGO_UPDATE",
                "T": algo.update_ms,
                "E": algo.update_ms,
                "o": {
                    "caid": algo.client_id,
                    "aid": algo.algo_id,
                    "at": "CONDITIONAL",
                    "o": algo.type,
                    "s": algo.symbol,
                    "S": algo.side,
                    "ps": "BOTH",
                    "f": algo.tif,
                    "q": num(algo.qty),
                    "X": algo.status,
                    "ai": str(algo.actual_order_id) if algo.actual_order_id else "",
                    "ap": num(actual.avg) if actual is not None else "0",
                    "aq": num(actual.executed) if actual is not None else "0",
                    "act": "MARKET" if actual is not None else "0",
                    "tp": num(algo.trigger),
                    "p": "0",
                    "V": "EXPIRE_MAKER",
                    "wt": "CONTRACT_PRICE",
                    "pm": "NONE",
                    "cp": False,
                    "pP": False,
                    "R": algo.reduce_only,
                    "tt": algo.trigger_ms,
                    "gtd": 0,
                    "rm": "",
                },
            },
        )

    def set_leverage(self, symbol: str, leverage: int) -> None:
        """``POST leverage``."""
        if not 1 <= leverage <= 125:
            raise RefusedError(-4028, "Leverage is not valid")
        with self._lock:
            self._positions.setdefault(symbol, _Position()).leverage = leverage

    def set_margin_type(self, symbol: str, margin_type: str) -> None:
        """``POST marginType``."""
        with self._lock:
            pos = self._positions.setdefault(symbol, _Position())
            wanted = margin_type.lower().replace("crossed", "cross")
            if pos.margin_type == wanted:
                raise RefusedError(-4046, "No need to change margin type.")
            pos.margin_type = wanted

    # -- outside the bot -------------------------------------------------------------------
    def set_position(self, symbol: str, qty: float, entry: float) -> None:
        """Change a USD-M position as if a human traded on the venue's website."""
        with self._lock:
            pos = self._positions.setdefault(symbol, _Position())
            pos.qty, pos.entry = qty, entry

    def set_balance(self, asset: str, amount: float) -> None:
        """Change a spot balance from outside the bot."""
        with self._lock:
            self.balances[asset] = amount

    # -- the clock -------------------------------------------------------------------------
    def advance(self) -> int:
        """Match resting orders against the bars that opened since the last call."""
        filled = 0
        with self._lock:
            for order in [o for o in self.orders if o.is_open]:
                key = (order.market, order.symbol)
                now = self._now(order.market, order.symbol)
                if now is None:
                    continue
                last = self._clock_ms.get(key, now[0])
                if now[0] <= last:
                    continue
                # a resting maker order placed while the clock was in a bar rests through that
                # bar (the simulated broker's post-only rule): bars opened in [last, now)
                # so does a resting stop or take-profit (paper checks them from the bar the
                # position opened in): both match the bars that completed
                maker = order.type == "LIMIT_MAKER" or order.tif == "GTX"
                completed = maker or order.type in _TRIGGERED
                span = (last - 1, now[0] - 1) if completed else (last, now[0])
                for bar_ms, o, h, low, _c in self.bars(order.symbol, order.market, *span):
                    if not order.is_open:
                        break
                    if self._match(order, bar_ms, o, h, low):
                        filled += 1
            for order in self.orders:
                now = self._now(order.market, order.symbol)
                if now is not None:
                    self._clock_ms[(order.market, order.symbol)] = now[0]
            if self.algos:
                filled += self._match_algos()
        return filled

    def _match(self, order: BookOrder, bar_ms: int, o: float, h: float, low: float) -> bool:
        filled = self._match_one(order, bar_ms, o, h, low)
        if filled and order.list_id >= 0:
            self._end_list(order.list_id, bar_ms, "EXPIRED")
        return filled

    def _match_one(self, order: BookOrder, bar_ms: int, o: float, h: float, low: float) -> bool:
        buy = order.side == "BUY"
        t = order.type
        if (
            t
            in (
                "STOP_LOSS",
                "STOP_LOSS_LIMIT",
                "STOP",
                "STOP_MARKET",
                "TAKE_PROFIT",
                "TAKE_PROFIT_MARKET",
                "TAKE_PROFIT_LIMIT",
            )
            and not order.triggered
        ):
            stop = order.stop_price
            take = t.startswith("TAKE_PROFIT")
            above = buy != take  # a buy stop triggers above, a buy take-profit below
            hit = (h >= stop) if above else (low <= stop)
            if not hit:
                return False
            order.triggered = True
            if (
                t in ("STOP_LOSS", "STOP_MARKET", "TAKE_PROFIT_MARKET", "TAKE_PROFIT")
                and order.price <= 0
            ):
                # a stop (market) order: the simulated broker's rule of protective exits
                kind = TriggerKind.TAKE_PROFIT if take else TriggerKind.STOP
                fill = trigger_fill(kind, -1 if buy else 1, stop, o, h, low)
                assert fill is not None
                self._fill(order, fill.price, bar_ms, maker=fill.maker)
                return True
        if order.price > 0 and order.type != "MARKET":
            limit = order.price
            if order.type == "LIMIT_MAKER" or order.tif == "GTX":
                # a resting maker order: filled at its limit when the bar trades through it
                # (a touch is not enough: the queue ahead of it), with the maker fee
                if (low < limit) if buy else (h > limit):
                    self._fill(order, limit, bar_ms, maker=True)
                    return True
                return False
            hit = (low <= limit) if buy else (h >= limit)
            if not hit:
                return False
            through = (o <= limit) if buy else (o >= limit)
            self._fill(order, o if through else limit, bar_ms, maker=not through)
            return True
        self._fill(order, o, bar_ms, maker=False)
        return True

    # -- fills -----------------------------------------------------------------------------
    def _check_funds(self, order: BookOrder, price: float) -> None:
        if order.market == "spot":
            base, quote = self.symbols[("spot", order.symbol)]
            if (
                order.side == "BUY"
                and order.qty * price * (1 + self.spot_fee) > self.balances.get(quote, 0.0) + 1e-9
            ):
                raise RefusedError(-2010, "Account has insufficient balance for requested action.")
            free = self.balances.get(base, 0.0) - self._locked_base(order.symbol, order.list_id)
            if order.side == "SELL" and order.qty > free + 1e-12:
                raise RefusedError(-2010, "Account has insufficient balance for requested action.")
        elif not order.reduce_only:
            pos = self._positions.get(order.symbol, _Position())
            needed = order.qty * price / max(pos.leverage, 1)
            if needed > self.futures_wallet + 1e-9:
                raise RefusedError(-2019, "Margin is insufficient.")

    def _locked_base(self, symbol: str, own_list: int = -1) -> float:
        """Base asset held by the open spot sell orders of ``symbol`` (an order list's legs
        hold it once, as Binance locks an OCO's quantity once)."""
        locked, lists = 0.0, set()
        for o in self.orders:
            if o.market != "spot" or o.symbol != symbol or not o.is_open or o.side != "SELL":
                continue
            if o.list_id >= 0:
                if o.list_id in lists or o.list_id == own_list:
                    continue
                lists.add(o.list_id)
            locked += o.qty - o.executed
        return locked

    # -- spot order lists (OCO) ----------------------------------------------------------
    def place_oco(self, q: dict[str, str]) -> list[BookOrder]:
        """``POST /api/v3/orderList/oco``: two legs of one quantity (above the market and below
        it), one cancelling the other; the quantity is locked once."""
        with self._lock:
            symbol = q.get("symbol", "")
            if ("spot", symbol) not in self.symbols:
                raise RefusedError(-1121, "Invalid symbol.")
            if self.reject_next:
                raise RefusedError(-2010, self.reject_next.pop(0))
            list_cid = q.get("listClientOrderId") or f"x-local-list-{next(self._ids)}"
            legs = []
            for where in ("above", "below"):
                otype = q.get(f"{where}Type", "").upper()
                if otype not in ("STOP_LOSS", "TAKE_PROFIT", "LIMIT_MAKER"):
                    raise RefusedError(-1102, f"Invalid {where}Type.")
                legs.append(
                    {
                        "symbol": symbol,
                        "side": q.get("side", ""),
                        "type": otype,
                        "quantity": q.get("quantity", ""),
                        "price": q.get(f"{where}Price", "0"),
                        "stopPrice": q.get(f"{where}StopPrice", "0"),
                        "newClientOrderId": q.get(f"{where}ClientOrderId", ""),
                    }
                )
            if any(
                o.client_id in (legs[0]["newClientOrderId"], legs[1]["newClientOrderId"])
                and o.is_open
                for o in self.orders
            ):
                raise RefusedError(-2010, "Duplicate order sent.")
            list_id = next(self._ids)
            placed: list[BookOrder] = []
            try:
                for leg in legs:
                    placed.append(self.place("spot", leg, list_id=list_id))
            except RefusedError:
                for order in placed:  # the list is placed whole or not at all
                    self.orders.remove(order)
                raise
            self._emit_list(placed, "EXEC_STARTED", "EXECUTING", list_cid)
            self._list_cids[list_id] = list_cid
            return placed

    def cancel_list(self, q: dict[str, str]) -> list[BookOrder]:
        """``DELETE /api/v3/orderList``: cancel every leg of a working order list."""
        with self._lock:
            lid = q.get("orderListId")
            cid = q.get("listClientOrderId")
            ids = [
                k
                for k, c in self._list_cids.items()
                if (lid is not None and str(k) == lid) or (cid is not None and c == cid)
            ]
            legs = [o for o in self.orders if ids and o.list_id == ids[0]]
            if not legs or not any(o.is_open for o in legs):
                raise RefusedError(-2011, "Unknown order sent.")
            self._end_list(ids[0], legs[0].update_ms, "CANCELED")
            return legs

    def list_json(self, legs: list[BookOrder]) -> dict[str, Any]:
        """The REST answer of an order list request."""
        list_id = legs[0].list_id
        done = not any(o.is_open for o in legs)
        return {
            "orderListId": list_id,
            "contingencyType": "OCO",
            "listStatusType": "ALL_DONE" if done else "EXEC_STARTED",
            "listOrderStatus": "ALL_DONE" if done else "EXECUTING",
            "listClientOrderId": self._list_cids.get(list_id, ""),
            "transactionTime": max(o.update_ms for o in legs),
            "symbol": legs[0].symbol,
            "orders": [
                {"symbol": o.symbol, "orderId": o.order_id, "clientOrderId": o.client_id}
                for o in legs
            ],
            "orderReports": [self.order_json(o) for o in legs],
        }

    def _end_list(self, list_id: int, ts_ms: int, status: str) -> None:
        """The list is over: its legs still working are ``status`` (EXPIRED after a fill,
        CANCELED on a cancel)."""
        legs = [o for o in self.orders if o.list_id == list_id]
        for o in legs:
            if o.is_open:
                o.status = status
                o.update_ms = max(o.update_ms, ts_ms)
                self._emit_order(o, status, None)
        self._emit_list(legs, "ALL_DONE", "ALL_DONE", self._list_cids.get(list_id, ""))

    def _emit_list(self, legs: list[BookOrder], kind: str, status: str, list_cid: str) -> None:
        self._emit(
            "spot",
            {
                "e": "listStatus",
                "E": legs[0].update_ms,
                "s": legs[0].symbol,
                "g": legs[0].list_id,
                "c": "OCO",
                "l": kind,
                "L": status,
                "r": "NONE",
                "C": list_cid,
                "T": legs[0].update_ms,
                "O": [{"s": o.symbol, "i": o.order_id, "c": o.client_id} for o in legs],
            },
        )

    def _fill(self, order: BookOrder, price: float, ts_ms: int, *, maker: bool) -> None:
        remaining = order.qty - order.executed
        if order.market == "linear" and order.reduce_only:
            pos = self._positions.get(order.symbol, _Position())
            # reduce-only: only against the position (never opens or adds to one)
            against = pos.qty != 0 and (pos.qty > 0) != (order.side == "BUY")
            remaining = min(remaining, abs(pos.qty)) if against else 0.0
            if remaining <= 0:
                order.status = "EXPIRED"
                self._emit_order(order, "EXPIRED", None)
                return
        n = max(1, self.partial_fills)
        parts = [remaining / n] * n if n > 1 else [remaining]
        for k, qty in enumerate(parts):
            qty = float(f"{qty:.8f}") if k < n - 1 else float(f"{remaining - sum(parts[:-1]):.8f}")
            trade = self._execute(order, qty, price, ts_ms, maker)
            order.executed = float(f"{order.executed + qty:.8f}")
            order.quote += qty * price
            order.update_ms = ts_ms
            order.status = (
                "FILLED"
                if order.executed >= order.qty - 1e-12 or (order.reduce_only and k == n - 1)
                else "PARTIALLY_FILLED"
            )
            self._emit_order(order, "TRADE", trade)

    def _execute(
        self, order: BookOrder, qty: float, price: float, ts_ms: int, maker: bool
    ) -> BookTrade:
        buy = order.side == "BUY"
        realized = 0.0
        if order.market == "spot":
            base, quote = self.symbols[("spot", order.symbol)]
            fee_rate = self.spot_fee
            if buy and self.spot_fee_in_received:
                commission, asset = qty * fee_rate, base
                self.balances[quote] = self.balances.get(quote, 0.0) - qty * price
                self.balances[base] = self.balances.get(base, 0.0) + qty - commission
            elif buy:
                commission, asset = qty * price * fee_rate, quote
                self.balances[quote] = self.balances.get(quote, 0.0) - qty * price - commission
                self.balances[base] = self.balances.get(base, 0.0) + qty
            else:
                commission, asset = qty * price * fee_rate, quote
                self.balances[base] = self.balances.get(base, 0.0) - qty
                self.balances[quote] = self.balances.get(quote, 0.0) + qty * price - commission
        else:
            fee_rate = self.futures_maker if maker else self.futures_taker
            commission, asset = qty * price * fee_rate, "USDT"
            pos = self._positions.setdefault(order.symbol, _Position())
            signed = qty if buy else -qty
            if pos.qty == 0 or (pos.qty > 0) == (signed > 0):
                total = abs(pos.qty) + qty
                pos.entry = (pos.entry * abs(pos.qty) + price * qty) / total
                pos.qty += signed
            else:
                closing = min(qty, abs(pos.qty))
                realized = closing * (price - pos.entry) * (1 if pos.qty > 0 else -1)
                pos.qty += signed
                if abs(pos.qty) < 1e-12:
                    pos.qty, pos.entry = 0.0, 0.0
                elif (pos.qty > 0) == (signed > 0):  # flipped
                    pos.entry = price
            self.futures_wallet += realized - commission
        trade = BookTrade(
            order.market,
            order.symbol,
            next(self._trade_ids),
            order.order_id,
            order.side,
            price,
            qty,
            commission,
            asset,
            ts_ms,
            maker,
            realized,
        )
        self.trades.append(trade)
        return trade

    def _now(self, market: str, symbol: str) -> tuple[int, float] | None:
        return self.prices(symbol, market)

    # -- wire shapes -----------------------------------------------------------------------
    def order_json(self, order: BookOrder, *, fills: bool = False) -> dict[str, Any]:
        """The REST order object of ``order``'s market."""
        if order.market == "spot":
            out: dict[str, Any] = {
                "symbol": order.symbol,
                "orderId": order.order_id,
                "orderListId": order.list_id,
                "clientOrderId": order.client_id,
                "price": num(order.price),
                "origQty": num(order.qty),
                "executedQty": num(order.executed),
                "cummulativeQuoteQty": num(order.quote),
                "status": order.status,
                "timeInForce": order.tif,
                "type": order.type,
                "side": order.side,
                "stopPrice": num(order.stop_price),
                "icebergQty": "0.00000000",
                "time": order.time_ms,
                "updateTime": order.update_ms,
                "isWorking": order.is_open,
                "workingTime": order.time_ms,
                "origQuoteOrderQty": "0.00000000",
                "selfTradePreventionMode": "EXPIRE_MAKER",
            }
            if fills:
                out["transactTime"] = order.update_ms
                out["fills"] = [
                    {
                        "price": num(t.price),
                        "qty": num(t.qty),
                        "commission": num(t.commission),
                        "commissionAsset": t.commission_asset,
                        "tradeId": t.trade_id,
                    }
                    for t in self.trades
                    if t.market == "spot" and t.order_id == order.order_id
                ]
            return out
        return {
            "orderId": order.order_id,
            "symbol": order.symbol,
            "status": order.status,
            "clientOrderId": order.client_id,
            "price": num(order.price),
            "avgPrice": num(order.avg),
            "origQty": num(order.qty),
            "executedQty": num(order.executed),
            "cumQty": num(order.executed),
            "cumQuote": num(order.quote),
            "timeInForce": order.tif,
            "type": order.type,
            "reduceOnly": order.reduce_only,
            "closePosition": False,
            "side": order.side,
            "positionSide": "BOTH",
            "stopPrice": num(order.stop_price),
            "workingType": "CONTRACT_PRICE",
            "priceProtect": False,
            "origType": order.orig_type or order.type,
            "priceMatch": "NONE",
            "selfTradePreventionMode": "EXPIRE_MAKER",
            "goodTillDate": 0,
            "time": order.time_ms,
            "updateTime": order.update_ms,
        }

    def trade_json(self, t: BookTrade) -> dict[str, Any]:
        """The REST trade object (``myTrades`` / ``userTrades``)."""
        order = next(o for o in self.orders if o.order_id == t.order_id)
        if t.market == "spot":
            return {
                "symbol": t.symbol,
                "id": t.trade_id,
                "orderId": t.order_id,
                "orderListId": -1,
                "price": num(t.price),
                "qty": num(t.qty),
                "quoteQty": num(t.qty * t.price),
                "commission": num(t.commission),
                "commissionAsset": t.commission_asset,
                "time": t.time_ms,
                "isBuyer": order.side == "BUY",
                "isMaker": t.maker,
                "isBestMatch": True,
            }
        return {
            "buyer": order.side == "BUY",
            "commission": num(t.commission),
            "commissionAsset": t.commission_asset,
            "id": t.trade_id,
            "maker": t.maker,
            "orderId": t.order_id,
            "price": num(t.price),
            "qty": num(t.qty),
            "quoteQty": num(t.qty * t.price),
            "realizedPnl": num(t.realized_pnl),
            "side": order.side,
            "positionSide": "BOTH",
            "symbol": t.symbol,
            "time": t.time_ms,
        }

    def spot_account(self) -> dict[str, Any]:
        """``GET /api/v3/account``."""
        with self._lock:
            locked: dict[str, float] = {}
            sold: set[str] = set()
            for o in self.orders:
                if o.market == "spot" and o.is_open:
                    base, quote = self.symbols[("spot", o.symbol)]
                    if o.side == "BUY":
                        locked[quote] = locked.get(quote, 0.0) + (o.qty - o.executed) * (
                            o.price or 0
                        )
                    elif o.symbol not in sold:  # an order list holds its quantity once
                        sold.add(o.symbol)
                        locked[base] = locked.get(base, 0.0) + self._locked_base(o.symbol)
            assets = sorted(set(self.balances) | set(locked))
            return {
                "makerCommission": 10,
                "takerCommission": 10,
                "buyerCommission": 0,
                "sellerCommission": 0,
                "commissionRates": {
                    "maker": "0.00100000",
                    "taker": "0.00100000",
                    "buyer": "0.00000000",
                    "seller": "0.00000000",
                },
                "canTrade": True,
                "canWithdraw": True,
                "canDeposit": True,
                "brokered": False,
                "requireSelfTradePrevention": False,
                "preventSor": False,
                "updateTime": 0,
                "accountType": "SPOT",
                "balances": [
                    {
                        "asset": a,
                        "free": num(self.balances.get(a, 0.0) - locked.get(a, 0.0)),
                        "locked": num(locked.get(a, 0.0)),
                    }
                    for a in assets
                ],
                "permissions": ["SPOT"],
                "uid": 1,
            }

    def positions_json(self, symbol: str | None = None) -> list[dict[str, Any]]:
        """``GET /fapi/v2|v3/positionRisk``."""
        with self._lock:
            out = []
            for sym, pos in sorted(self._positions.items()):
                if symbol is not None and sym != symbol:
                    continue
                now = self._now("linear", sym)
                mark = now[1] if now is not None else pos.entry
                upnl = pos.qty * (mark - pos.entry) if pos.qty else 0.0
                out.append(
                    {
                        "symbol": sym,
                        "positionSide": "BOTH",
                        "positionAmt": num(pos.qty),
                        "entryPrice": num(pos.entry),
                        "breakEvenPrice": num(pos.entry),
                        "markPrice": num(mark),
                        "unRealizedProfit": num(upnl),
                        "unrealizedProfit": num(upnl),
                        "liquidationPrice": "0",
                        "isolatedMargin": "0",
                        "notional": num(pos.qty * mark),
                        "marginAsset": "USDT",
                        "isolatedWallet": "0",
                        "initialMargin": num(abs(pos.qty * mark) / pos.leverage),
                        "maintMargin": "0",
                        "positionInitialMargin": num(abs(pos.qty * mark) / pos.leverage),
                        "openOrderInitialMargin": "0",
                        "adl": 0,
                        "bidNotional": "0",
                        "askNotional": "0",
                        "leverage": str(pos.leverage),
                        "maxNotionalValue": "1000000",
                        "marginType": pos.margin_type,
                        "isAutoAddMargin": "false",
                        "updateTime": 0,
                    }
                )
            return out

    def futures_account(self) -> dict[str, Any]:
        """``GET /fapi/v2|v3/account``."""
        with self._lock:
            upnl = sum(float(p["unRealizedProfit"]) for p in self.positions_json())
            wallet = self.futures_wallet
            asset = {
                "asset": "USDT",
                "walletBalance": num(wallet),
                "unrealizedProfit": num(upnl),
                "marginBalance": num(wallet + upnl),
                "maintMargin": "0",
                "initialMargin": "0",
                "positionInitialMargin": "0",
                "openOrderInitialMargin": "0",
                "crossWalletBalance": num(wallet),
                "crossUnPnl": num(upnl),
                "availableBalance": num(wallet + upnl),
                "maxWithdrawAmount": num(wallet),
                "updateTime": int(time.time() * 1000),
            }
            return {
                "totalInitialMargin": "0",
                "totalMaintMargin": "0",
                "totalWalletBalance": num(wallet),
                "totalUnrealizedProfit": num(upnl),
                "totalMarginBalance": num(wallet + upnl),
                "totalCrossWalletBalance": num(wallet),
                "totalCrossUnPnl": num(upnl),
                "availableBalance": num(wallet + upnl),
                "maxWithdrawAmount": num(wallet),
                "assets": [asset],
                "positions": self.positions_json(),
            }

    def _emit_order(self, order: BookOrder, exec_type: str, trade: BookTrade | None) -> None:
        now = order.update_ms
        if order.market == "spot":
            event = {
                "e": "executionReport",
                "E": now,
                "s": order.symbol,
                "c": order.client_id,
                "S": order.side,
                "o": order.type,
                "f": order.tif,
                "q": num(order.qty),
                "p": num(order.price),
                "P": num(order.stop_price),
                "F": "0.00000000",
                "g": order.list_id,
                "C": "",
                "x": exec_type,
                "X": order.status,
                "r": "NONE",
                "i": order.order_id,
                "l": num(trade.qty if trade else 0.0),
                "z": num(order.executed),
                "L": num(trade.price if trade else 0.0),
                "n": num(trade.commission if trade else 0.0),
                "N": trade.commission_asset if trade else None,
                "T": trade.time_ms if trade else now,
                "t": trade.trade_id if trade else -1,
                "v": 0,
                "I": next(self._ids),
                "w": order.is_open,
                "m": bool(trade.maker) if trade else False,
                "M": False,
                "O": order.time_ms,
                "Z": num(order.quote),
                "Y": num(trade.qty * trade.price if trade else 0.0),
                "Q": "0.00000000",
                "W": order.time_ms,
                "V": "EXPIRE_MAKER",
            }
        else:
            event = {
                "e": "ORDER_TRADE_UPDATE",
                "E": now,
                "T": now,
                "o": {
                    "s": order.symbol,
                    "c": order.client_id,
                    "S": order.side,
                    "o": order.type,
                    "f": order.tif,
                    "q": num(order.qty),
                    "p": num(order.price),
                    "ap": num(order.avg),
                    "sp": num(order.stop_price),
                    "x": exec_type,
                    "X": order.status,
                    "i": order.order_id,
                    "l": num(trade.qty if trade else 0.0),
                    "z": num(order.executed),
                    "L": num(trade.price if trade else 0.0),
                    "N": trade.commission_asset if trade else "USDT",
                    "n": num(trade.commission if trade else 0.0),
                    "T": trade.time_ms if trade else now,
                    "t": trade.trade_id if trade else 0,
                    "b": "0",
                    "a": "0",
                    "m": bool(trade.maker) if trade else False,
                    "R": order.reduce_only,
                    "wt": "CONTRACT_PRICE",
                    "ot": order.orig_type or order.type,
                    "ps": "BOTH",
                    "cp": False,
                    "rp": num(trade.realized_pnl if trade else 0.0),
                    "pP": False,
                    "si": 0,
                    "ss": 0,
                    "V": "EXPIRE_MAKER",
                    "pm": "NONE",
                    "gtd": 0,
                },
            }
        self._emit(order.market, event)


#: order types that rest until the price reaches their ``stopPrice``
_TRIGGERED = (
    "STOP_LOSS",
    "STOP_LOSS_LIMIT",
    "TAKE_PROFIT",
    "TAKE_PROFIT_LIMIT",
    "STOP",
    "STOP_MARKET",
    "TAKE_PROFIT_MARKET",
)


def _crosses(side: str, limit: float, last: float) -> bool:
    """A limit order at ``limit`` would trade at once against ``last``."""
    if not (limit > 0 and math.isfinite(last)):
        return False
    return limit >= last if side == "BUY" else limit <= last
