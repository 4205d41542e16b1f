"""The Alpaca venue client: alpaca-py's ``TradingClient`` and ``TradingStream`` behind the
:class:`~tradeloop.execution.venue.VenueClient` contract.

- Orders: market, limit, stop, stop-limit, trailing stop (``trail_percent``/``trail_price``)
  and bracket (``take_profit``/``stop_loss`` worked by Alpaca as one-cancels-other), in
  fractional shares (Alpaca requires fractional orders to be ``day`` orders: their time in
  force is set so). The request's ``client_order_id`` goes to Alpaca unchanged; when the
  answer is lost (connection dropped, timeout) the order is looked up by that id before
  anything else, and Alpaca's "client_order_id must be unique" answer to a retry returns the
  existing order: a retry never places a second order.
- Errors become the contract's: 403/422 -> :class:`OrderRejectedError`, 404 ->
  :class:`OrderNotFoundError`, 429 -> :class:`RateLimitedError` (alpaca-py's own sleeping
  retries are turned off: the broker's tenacity policy and circuit breaker decide),
  network errors, timeouts and 5xx -> :class:`VenueUnavailableError`.
- Updates: ``trade_updates`` from the trading stream (a thread of its own) while it is up;
  REST polling of the working orders every ``poll_interval_s`` while it is down, and one
  resync after it comes back. Fills are the increases of an order's cumulative filled
  quantity, whichever path saw them first, so stream and poll never count one twice; their
  ``trade_id`` is ``<alpaca order id>:<cumulative filled>``.
- Resting exits (:class:`~tradeloop.execution.venue.VenueExitPairs`): a stop alone is a
  ``stop`` order, a take-profit alone a ``limit`` order, both one ``oco`` order (Alpaca holds
  the shares once: two sells of the whole position cannot both rest). Alpaca names an oco
  order by one client id (its parent, the take-profit limit; the stop leg gets an id of
  Alpaca's): the parent is sent with the pair's list id, and the legs are reported under the
  pair's leg ids (:func:`~tradeloop.execution.venue.exit_pair_ids`), so either leg is found
  from its id alone, also after a restart. Cancelling a leg cancels the pair. Stop and oco
  orders take whole shares only (``MarketRules.resting_amount_step`` 1): the broker rests the
  whole shares and watches a fractional remainder itself.
- The market clock (``get_clock``): :meth:`AlpacaClient.market_clock`.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from decimal import ROUND_DOWN, Decimal
from typing import Any

from tradeloop.adapters.alpaca.config import AlpacaConfig, require_alpaca
from tradeloop.core.errors import ConfigError
from tradeloop.core.order_status import FINAL_STATUSES, OrderStatus
from tradeloop.core.orders import OrderSide, OrderType
from tradeloop.execution.venue import (
    ExitPair,
    MarketClock,
    MarketKind,
    MarketRules,
    OrderNotFoundError,
    OrderRejectedError,
    OrderRequest,
    RateLimitedError,
    VenueBalance,
    VenueFill,
    VenueOrder,
    VenuePosition,
    VenueUnavailableError,
    VenueUpdate,
    exit_pair_ids,
    exit_pair_of,
)

__all__ = ["STATUS_MAP", "AlpacaClient", "to_ns"]

logger = logging.getLogger(__name__)

_S = OrderStatus
STATUS_MAP: dict[str, OrderStatus] = {
    "pending_new": _S.SUBMITTED,
    "accepted_for_bidding": _S.SUBMITTED,
    "new": _S.ACCEPTED,
    "accepted": _S.ACCEPTED,
    "held": _S.ACCEPTED,
    "pending_cancel": _S.ACCEPTED,
    "pending_replace": _S.ACCEPTED,
    "replaced": _S.CANCELLED,
    "calculated": _S.ACCEPTED,
    "stopped": _S.ACCEPTED,
    "suspended": _S.ACCEPTED,
    "pending_review": _S.SUBMITTED,
    "partially_filled": _S.PARTIALLY_FILLED,
    "filled": _S.FILLED,
    "done_for_day": _S.EXPIRED,
    "canceled": _S.CANCELLED,
    "expired": _S.EXPIRED,
    "rejected": _S.REJECTED,
}
"""Alpaca order status -> the order state machine's."""

_TYPES = {
    "market": OrderType.MARKET,
    "limit": OrderType.LIMIT,
    "stop": OrderType.STOP,
    "stop_limit": OrderType.STOP_LIMIT,
    "trailing_stop": OrderType.STOP,
}
_QTY_STEP = 1e-9  # Alpaca takes fractional quantities to 9 decimals


def to_ns(value: datetime | str | None) -> int:
    """An alpaca-py datetime (or RFC 3339 text) as int ns UTC (0 for None)."""
    if value is None:
        return 0
    if isinstance(value, str):
        import pandas as pd

        return int(pd.Timestamp(value).value)
    return round(value.timestamp() * 1e6) * 1000


def _enum(value: Any) -> str:
    return str(getattr(value, "value", value) or "")


def _float(value: Any, default: float = math.nan) -> float:
    if value is None or value == "":
        return default
    return float(value)


class AlpacaClient:
    """One Alpaca account as a :class:`~tradeloop.execution.venue.VenueClient`.

    Parameters
    ----------
    config
        Keys and endpoints (:meth:`AlpacaConfig.from_settings`).
    trading
        An alpaca-py ``TradingClient`` to use instead of building one (tests).

    Raises
    ------
    ConfigError
        When alpaca-py is not installed (naming the extra).
    """

    name = "alpaca"

    def __init__(self, config: AlpacaConfig, *, trading: Any = None) -> None:
        require_alpaca()
        from alpaca.trading.client import TradingClient

        self.config = config
        self.trading = trading or TradingClient(
            config.api_key, config.api_secret, paper=config.paper, url_override=config.url
        )
        self.budget = config.budget()
        """The account's REST budget, shared with the historical bars client."""
        _harden(self.trading, config.timeout_s, self.budget)
        self._rules: dict[str, MarketRules] = {}
        self._updates: queue.Queue[VenueUpdate] = queue.Queue()
        self._lock = threading.Lock()
        #: Alpaca order id -> (client order id, symbol, side, cumulative filled, avg price)
        self._filled: dict[str, tuple[float, float]] = {}
        self._ledger: dict[str, list[VenueFill]] = {}
        self._working: dict[str, str] = {}  # client order id -> symbol, not final yet
        #: Alpaca order id of an oco pair's stop leg -> the pair's stop leg id (ours)
        self._leg_ids: dict[str, str] = {}
        self._data: Any = None  # the market data client (latest trades), built on first use
        self._stream: Any = None
        self._stream_thread: threading.Thread | None = None
        self._was_connected = False
        self._last_poll = 0.0
        self.polls = 0
        """REST resyncs of the working orders (stream down, or just back)."""
        self.stream_events = 0
        """``trade_updates`` messages received."""

    @classmethod
    def from_settings(cls, settings: Any = None, *, paper: bool = True) -> AlpacaClient:
        """A client with keys and endpoints from settings (:meth:`AlpacaConfig.from_settings`):
        Alpaca's paper account unless ``paper=False`` (real money) is asked for explicitly.

        Raises
        ------
        ConfigError
            When alpaca-py is missing (naming the extra) or no key pair is configured.
        """
        require_alpaca()
        return cls(AlpacaConfig.from_settings(settings, paper=paper))

    def __repr__(self) -> str:
        return f"AlpacaClient(paper={self.config.paper}, url={self.config.url!r})"

    # -- market rules -----------------------------------------------------------------------
    def market_rules(self, symbol: str) -> MarketRules:
        """The asset's increments (fractional: 1e-9 shares, $1 minimum notional)."""
        rules = self._rules.get(symbol)
        if rules is not None:
            return rules
        try:
            asset = self._call(self.trading.get_asset, symbol)
        except OrderNotFoundError:
            raise ConfigError(f"alpaca: unknown symbol {symbol!r} (no such asset)") from None
        except OrderRejectedError as exc:
            raise ConfigError(f"alpaca: symbol {symbol!r}: {exc}") from None
        fractionable = bool(asset.fractionable)
        step = _float(asset.min_trade_increment, _QTY_STEP) if fractionable else 1.0
        rules = MarketRules(
            symbol=symbol,
            kind=MarketKind.EQUITY,
            base=symbol,
            quote="USD",
            amount_step=step or _QTY_STEP,
            price_step=_float(asset.price_increment, 0.01) or 0.01,
            min_amount=_float(asset.min_order_size, step) if fractionable else 1.0,
            min_notional=1.0 if fractionable else 0.0,
            active=bool(asset.tradable) and _enum(asset.status) == "active",
            resting_amount_step=1.0,  # stop and oco orders: whole shares only
        )
        self._rules[symbol] = rules
        return rules

    def round_amount(self, symbol: str, amount: float) -> float:
        """Floor to the asset's quantity increment, in decimal (78.721511994 stays itself:
        a binary floor would leave a 1e-9 share when closing a fractional position)."""
        step = Decimal(repr(self.market_rules(symbol).amount_step))
        units = (Decimal(repr(amount)) / step).to_integral_value(rounding=ROUND_DOWN)
        return float(units * step)

    def round_price(self, symbol: str, price: float) -> float:
        """Alpaca's sub-penny rule: 0.01 at or above $1, 0.0001 below."""
        step = 0.01 if price >= 1.0 else 0.0001
        return round(round(price / step) * step, 4)

    # -- orders -----------------------------------------------------------------------------
    def place_order(self, request: OrderRequest) -> VenueOrder:
        """Send ``request``; idempotent on its client order id (see the module docstring)."""
        return self._submit(
            self._order_request(request), request.symbol, [request.client_order_id]
        )[0]

    def place_exit_pair(self, pair: ExitPair) -> list[VenueOrder]:
        """A stop and a take-profit of one whole-share quantity as one ``oco`` order (see the
        module docstring); returns the stop leg, then the take-profit. Idempotent on the
        pair's ids like :meth:`place_order`."""
        from alpaca.trading.enums import OrderClass
        from alpaca.trading.enums import OrderSide as ASide
        from alpaca.trading.enums import TimeInForce as ATif
        from alpaca.trading.requests import LimitOrderRequest, StopLossRequest, TakeProfitRequest

        qty = round(pair.amount, 9)
        if qty != math.floor(qty):
            raise OrderRejectedError(
                f"oco {pair.list_id}: Alpaca takes whole shares only in oco orders, got {qty}",
                code="fractional",
            )
        request = LimitOrderRequest(
            symbol=pair.symbol,
            qty=qty,
            side=ASide.BUY if pair.side is OrderSide.BUY else ASide.SELL,
            time_in_force=ATif.GTC,
            order_class=OrderClass.OCO,
            client_order_id=pair.list_id,
            take_profit=TakeProfitRequest(limit_price=pair.take_profit),
            stop_loss=StopLossRequest(stop_price=pair.stop_price),
        )
        return self._submit(request, pair.symbol, [pair.stop_id, pair.take_id])

    def _submit(self, alpaca_request: Any, symbol: str, ids: list[str]) -> list[VenueOrder]:
        """Submit; on a lost answer or a duplicate id, the orders ``ids`` as Alpaca has them."""
        with self._lock:
            for cid in ids:
                self._working[cid] = symbol

        def existing() -> list[VenueOrder]:
            return [self.fetch_order(symbol, cid) for cid in ids]

        try:
            order = self._call(self.trading.submit_order, alpaca_request)
        except VenueUnavailableError as failure:
            # the answer may be lost while the order was accepted: ask before anyone retries
            try:
                found = existing()
            except (OrderNotFoundError, VenueUnavailableError):
                raise failure from None  # not there (or unknown): the caller may retry
            logger.warning(
                "alpaca: order %s was accepted though its answer was lost; recovered by "
                "client order id",
                ids[0],
            )
            return found
        except OrderRejectedError as exc:
            if "client_order_id must be unique" in str(exc):
                return existing()
            with self._lock:
                for cid in ids:
                    self._working.pop(cid, None)
            raise
        parent = self._order(order)
        if len(ids) == 1:
            return [parent]
        return [self._order(leg) for leg in order.legs or ()] + [parent]

    def cancel_order(self, symbol: str, client_order_id: str) -> VenueOrder:
        """Cancel by client order id (an oco leg: the pair); OrderNotFoundError when unknown
        or already final."""
        current = self.fetch_order(symbol, client_order_id)
        if current.status in FINAL_STATUSES:
            raise OrderNotFoundError(
                client_order_id, f"order {client_order_id} is {current.status}"
            )
        pair = exit_pair_of(client_order_id)
        target = current.venue_order_id
        if pair is not None:  # the pair's parent: Alpaca cancels its leg with it
            target = self.fetch_order(symbol, exit_pair_ids(pair[0])[1]).venue_order_id
        try:
            self._call(self.trading.cancel_order_by_id, target)
        except OrderRejectedError as exc:  # 422: no longer cancelable (filled meanwhile)
            raise OrderNotFoundError(client_order_id, str(exc)) from None
        return self.fetch_order(symbol, client_order_id)

    def fetch_order(self, symbol: str, client_order_id: str) -> VenueOrder:
        """The order by client order id (an oco leg through its pair's parent);
        OrderNotFoundError when Alpaca does not know it."""
        pair = exit_pair_of(client_order_id)
        try:
            order = self._call(
                self.trading.get_order_by_client_id, pair[0] if pair else client_order_id
            )
        except OrderNotFoundError:
            raise OrderNotFoundError(client_order_id) from None
        if pair is None or pair[1] == "t":
            return self._order(order)
        self._order(order, track=False)  # learns the leg's Alpaca id
        legs = order.legs or ()
        if legs:
            return self._order(legs[0])
        self._learn_pairs(symbol)  # an answer without its legs: the nested listing has them
        with self._lock:
            leg_id = next((k for k, v in self._leg_ids.items() if v == client_order_id), None)
        if leg_id is None:
            raise OrderNotFoundError(client_order_id, f"{pair[0]} has no stop leg")
        return self._order(self._call(self.trading.get_order_by_id, leg_id))

    def open_orders(self, symbol: str | None = None) -> list[VenueOrder]:
        """Working orders (bracket exits included as their own orders)."""
        from alpaca.trading.enums import QueryOrderStatus
        from alpaca.trading.requests import GetOrdersRequest

        req = GetOrdersRequest(
            status=QueryOrderStatus.OPEN,
            limit=500,
            nested=True,
            symbols=[symbol] if symbol else None,
        )
        orders = self._call(self.trading.get_orders, req)
        out: list[VenueOrder] = []
        for order in orders:
            parent = self._order(order, track=False)
            if parent.status not in FINAL_STATUSES:  # a filled bracket entry: its legs only
                out.append(parent)
            for leg in order.legs or ():
                if _enum(leg.status) in ("new", "accepted", "held", "partially_filled"):
                    out.append(self._order(leg, track=False))
        return out

    def fetch_fills(self, symbol: str, since_ns: int = 0) -> list[VenueFill]:
        """Executions in ``symbol`` since ``since_ns`` (after a resync of its orders)."""
        self._resync([symbol])
        with self._lock:
            return [f for f in self._ledger.get(symbol, []) if f.ts >= since_ns]

    # -- account ----------------------------------------------------------------------------
    def balances(self) -> dict[str, VenueBalance]:
        """USD as a margin venue reports its wallet: cash plus the open positions at their
        entry price (``total``), so that ``total`` plus the positions' unrealized P&L is the
        account's equity, as for perpetuals; ``free`` is the cash (buying power of a cash
        account), ``used`` the positions' cost."""
        acct = self._call(self.trading.get_account)
        cash = _float(acct.cash, 0.0)
        at_cost = sum(p.quantity * p.entry_price for p in self.positions())
        return {"USD": VenueBalance("USD", free=cash, used=at_cost)}

    def equity(self) -> float:
        """The account's equity (cash plus positions at market)."""
        return _float(self._call(self.trading.get_account).equity, 0.0)

    def positions(self, symbols: Sequence[str] | None = None) -> list[VenuePosition]:
        """Open positions (signed: short is negative)."""
        out = []
        for pos in self._call(self.trading.get_all_positions):
            if symbols and pos.symbol not in symbols:
                continue
            qty = _float(pos.qty, 0.0)
            if _enum(pos.side) == "short" and qty > 0:
                qty = -qty
            out.append(
                VenuePosition(
                    pos.symbol,
                    qty,
                    entry_price=_float(pos.avg_entry_price),
                    unrealized_pnl=_float(pos.unrealized_pl, 0.0),
                )
            )
        return out

    def set_leverage(self, symbol: str, leverage: float, margin_mode: str | None = None) -> None:
        """No-op: equities have no per-symbol leverage."""

    def last_price(self, symbol: str) -> float:
        """The latest trade's price (``GET /v2/stocks/trades/latest``); NaN when none."""
        from alpaca.data.requests import StockLatestTradeRequest

        if self._data is None:
            from alpaca.data.historical.stock import StockHistoricalDataClient

            self._data = StockHistoricalDataClient(
                self.config.api_key, self.config.api_secret, url_override=self.config.url
            )
            _harden(self._data, self.config.timeout_s, self.budget)
        trades = self._call(
            self._data.get_stock_latest_trade, StockLatestTradeRequest(symbol_or_symbols=symbol)
        )
        trade = trades.get(symbol) if isinstance(trades, dict) else None
        return float(trade.price) if trade is not None else math.nan

    def market_clock(self) -> MarketClock:
        """Alpaca's market clock now (``GET /v2/clock``)."""
        clock = self._call(self.trading.get_clock)
        return MarketClock(
            to_ns(clock.timestamp),
            bool(clock.is_open),
            to_ns(clock.next_open),
            to_ns(clock.next_close),
        )

    def flatten(self) -> int:
        """Cancel every open order and close every position; return the positions closed."""
        self._call(self.trading.cancel_orders)
        return len(self._call(self.trading.close_all_positions, True))

    # -- updates ------------------------------------------------------------------------------
    def start_stream(self) -> None:
        """Start ``trade_updates`` on a thread of its own (idempotent)."""
        if self._stream_thread is not None:
            return
        from alpaca.trading.stream import TradingStream

        kwargs: dict[str, Any] = {"paper": self.config.paper}
        if self.config.trade_stream_url:
            kwargs["url_override"] = self.config.trade_stream_url
        stream = TradingStream(self.config.api_key, self.config.api_secret, **kwargs)
        stream._reconnect_min_backoff = 0.2  # reconnect fast; the library caps at 30 s
        stream.subscribe_trade_updates(self._on_trade_update)
        self._stream = stream
        self._stream_thread = threading.Thread(
            target=stream.run, name="alpaca-trade-updates", daemon=True
        )
        self._stream_thread.start()

    @property
    def stream_connected(self) -> bool:
        """True while the trading stream is connected and listening."""
        stream = self._stream
        return bool(stream is not None and getattr(stream, "_running", False))

    def drain_updates(self, symbols: Sequence[str] = ()) -> list[VenueUpdate]:
        """Updates since the last call; polls REST while the stream is down and once after it
        comes back (events sent while it was down are lost at Alpaca)."""
        connected = self.stream_connected
        now = time.monotonic()
        # resync when the stream comes back or just went down, then poll while it is down
        resync = connected != self._was_connected and self._stream is not None
        if resync or (not connected and now - self._last_poll >= self.config.poll_interval_s):
            self._last_poll = now
            with self._lock:
                working = set(self._working.values())
            self._resync(sorted(working | set(symbols)))
        self._was_connected = connected
        out: list[VenueUpdate] = []
        while True:
            try:
                out.append(self._updates.get_nowait())
            except queue.Empty:
                return out

    def close(self) -> None:
        """Stop the stream and close the HTTP session."""
        stream, thread = self._stream, self._stream_thread
        if stream is not None and thread is not None and thread.is_alive():
            try:
                import asyncio

                stream.stop()
                loop = getattr(stream, "_loop", None)
                if loop is not None and loop.is_running():
                    # close the socket too: the library only looks at its stop flag between
                    # 5-second receive timeouts
                    asyncio.run_coroutine_threadsafe(stream.close(), loop).result(5)
            except Exception as exc:  # the stream's loop already ended
                logger.debug("alpaca: stopping the trade stream: %s", exc)
            thread.join(5)
        self._stream = self._stream_thread = None
        session = getattr(self.trading, "_session", None)
        if session is not None:
            session.close()

    # -- internals ----------------------------------------------------------------------------
    def _order_request(self, r: OrderRequest) -> Any:
        from alpaca.trading.enums import OrderClass
        from alpaca.trading.enums import OrderSide as ASide
        from alpaca.trading.enums import TimeInForce as ATif
        from alpaca.trading.requests import (
            LimitOrderRequest,
            MarketOrderRequest,
            StopLimitOrderRequest,
            StopLossRequest,
            StopOrderRequest,
            TakeProfitRequest,
            TrailingStopOrderRequest,
        )

        qty = round(r.amount, 9)
        fractional = qty != math.floor(qty)
        tif = ATif(r.time_in_force.value)
        if fractional:
            tif = ATif.DAY  # Alpaca: fractional orders are day orders
        common: dict[str, Any] = {
            "symbol": r.symbol,
            "qty": qty,
            "side": ASide.BUY if r.side is OrderSide.BUY else ASide.SELL,
            "time_in_force": tif,
            "client_order_id": r.client_order_id,
        }
        if r.take_profit is not None or r.stop_loss is not None:
            if r.take_profit is None or r.stop_loss is None:
                raise OrderRejectedError(
                    f"order {r.client_order_id}: an Alpaca bracket needs take_profit and stop_loss"
                )
            common["order_class"] = OrderClass.BRACKET
            common["take_profit"] = TakeProfitRequest(limit_price=r.take_profit)
            common["stop_loss"] = StopLossRequest(stop_price=r.stop_loss)
        if r.type is OrderType.TAKE_PROFIT:  # a resting take-profit: a limit at its level
            return LimitOrderRequest(**common, limit_price=r.stop_price or r.price)
        if r.trail_percent is not None or r.trail_price is not None:
            return TrailingStopOrderRequest(
                **common,
                trail_percent=r.trail_percent * 100.0 if r.trail_percent is not None else None,
                trail_price=r.trail_price,
            )
        if r.type is OrderType.MARKET:
            return MarketOrderRequest(**common)
        if r.type is OrderType.LIMIT:
            return LimitOrderRequest(**common, limit_price=r.price)
        if r.type is OrderType.STOP:
            return StopOrderRequest(**common, stop_price=r.stop_price)
        return StopLimitOrderRequest(**common, stop_price=r.stop_price, limit_price=r.price)

    def _order(self, o: Any, *, track: bool = True) -> VenueOrder:
        """alpaca-py ``Order`` -> VenueOrder; records a fill for any newly filled quantity."""
        status = STATUS_MAP.get(_enum(o.status), _S.ACCEPTED)
        filled = _float(o.filled_qty, 0.0)
        avg = _float(o.filled_avg_price)
        otype = _TYPES.get(_enum(o.order_type or o.type), OrderType.MARKET)
        qty = _float(o.qty, 0.0)
        if qty == 0.0 and _float(o.notional, 0.0) > 0:
            qty = filled
        cid = o.client_order_id
        if _enum(o.order_class) == "oco":  # an exit pair: named by its leg ids (ours)
            if _enum(o.order_type or o.type) == "limit":  # the parent: the take-profit
                stop_id, cid = exit_pair_ids(cid)
                with self._lock:
                    for leg in o.legs or ():
                        self._leg_ids[str(leg.id)] = stop_id
            else:  # the stop leg
                with self._lock:
                    cid = self._leg_ids.get(str(o.id), cid)
        venue = VenueOrder(
            client_order_id=cid,
            symbol=o.symbol or "",
            side=OrderSide.BUY if _enum(o.side) == "buy" else OrderSide.SELL,
            type=otype,
            status=status,
            amount=qty,
            filled=filled,
            average_price=avg,
            price=_float(o.limit_price, 0.0) or None,
            stop_price=_float(o.stop_price, 0.0) or None,
            venue_order_id=str(o.id),
            ts=to_ns(o.updated_at),
        )
        if track:
            self._record_fill(venue, to_ns(o.filled_at or o.updated_at))
            with self._lock:
                if status in FINAL_STATUSES:
                    self._working.pop(venue.client_order_id, None)
        return venue

    def _record_fill(
        self, order: VenueOrder, ts: int, price: float | None = None, qty: float | None = None
    ) -> VenueFill | None:
        """A fill for the increase of ``order``'s cumulative filled quantity, once.

        ``price``/``qty``: the execution the stream reported; its price is used when it is
        the whole increase (else the increase's price comes from the average prices).
        """
        with self._lock:
            before, before_avg = self._filled.get(order.venue_order_id, (0.0, 0.0))
            delta = round(order.filled - before, 9)
            if delta <= 0:
                return None
            self._filled[order.venue_order_id] = (order.filled, order.average_price)
            exact = price is not None and qty is not None and abs(qty - delta) < 1e-9
            if not exact or price is None or not math.isfinite(price):
                price = (
                    order.average_price
                    if before == 0
                    else (order.average_price * order.filled - before_avg * before) / delta
                )
            fill = VenueFill(
                trade_id=f"{order.venue_order_id}:{order.filled:g}",
                client_order_id=order.client_order_id,
                symbol=order.symbol,
                side=order.side,
                amount=delta,
                price=float(price),
                fee=0.0,
                fee_currency="USD",
                ts=ts,
                venue_order_id=order.venue_order_id,
            )
            self._ledger.setdefault(order.symbol, []).append(fill)
        self._updates.put(fill)
        return fill

    async def _on_trade_update(self, update: Any) -> None:
        """``trade_updates`` handler (the stream's thread)."""
        self.stream_events += 1
        try:
            order = update.order
            if (
                _enum(order.order_class) == "oco"
                and _enum(order.order_type or order.type) != "limit"
            ):
                with self._lock:
                    known = str(order.id) in self._leg_ids
                if not known:  # a pair's stop leg this process has not seen (a restart)
                    self._learn_pairs(order.symbol)
            venue = self._order(order, track=False)
            event = _enum(update.event)
            if event in ("fill", "partial_fill"):
                self._record_fill(venue, to_ns(update.timestamp), update.price, update.qty)
            elif event == "rejected":
                reason = getattr(update, "reason", None) or "rejected by Alpaca"
                venue = VenueOrder(**{**_fields(venue), "reason": str(reason)})
            with self._lock:
                if venue.status in FINAL_STATUSES:
                    self._working.pop(venue.client_order_id, None)
            self._updates.put(venue)
        except Exception:  # never let one odd message kill the stream
            logger.exception("alpaca: cannot read a trade update")

    def _learn_pairs(self, symbol: str) -> None:
        """Learn the stop legs' ids of ``symbol``'s recent oco orders (their parents)."""
        from alpaca.trading.enums import QueryOrderStatus
        from alpaca.trading.requests import GetOrdersRequest

        req = GetOrdersRequest(
            status=QueryOrderStatus.ALL, limit=100, nested=True, symbols=[symbol]
        )
        try:
            for order in self._call(self.trading.get_orders, req):
                if order.legs:
                    self._order(order, track=False)
        except VenueUnavailableError as exc:
            logger.warning("alpaca: oco orders of %s not looked up: %s", symbol, exc)

    def _resync(self, symbols: Sequence[str]) -> None:
        """REST view of the working orders (and open orders of ``symbols``) as updates."""
        self.polls += 1
        with self._lock:
            working = dict(self._working)
        seen: set[str] = set()
        try:
            for order in self.open_orders(None) if symbols or working else []:
                seen.add(order.client_order_id)
                if order.client_order_id in working:
                    self._record_fill(order, order.ts)
                    self._updates.put(order)
            for cid, symbol in working.items():
                if cid in seen:
                    continue
                try:
                    order = self.fetch_order(symbol, cid)
                except OrderNotFoundError:
                    continue  # the broker asks itself and treats it as a transition
                self._updates.put(order)
        except VenueUnavailableError as exc:
            logger.warning("alpaca: order resync failed: %s", exc)

    def _call(self, fn: Any, *args: Any) -> Any:
        """Call alpaca-py, turning its errors into the venue contract's."""
        import requests
        from alpaca.common.exceptions import APIError

        try:
            return fn(*args)
        except APIError as exc:
            raise _api_error(exc) from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise VenueUnavailableError(f"alpaca: {type(exc).__name__}") from None


def _fields(order: VenueOrder) -> dict[str, Any]:
    return {name: getattr(order, name) for name in order.__dataclass_fields__}


def _api_error(exc: Any) -> Exception:
    status = exc.status_code
    try:
        message = str(exc.message)
    except (ValueError, KeyError, TypeError):
        message = str(exc)[:200]
    text = f"alpaca {status}: {message}"
    if status == 429:
        retry_after = None
        response = exc.response
        if response is not None and response.headers.get("Retry-After"):
            try:
                retry_after = float(response.headers["Retry-After"])
            except ValueError:
                retry_after = None
        return RateLimitedError(text, retry_after=retry_after)
    if status == 404:
        return OrderNotFoundError("", text)
    if status is None or status >= 500 or status in (408, 401):
        if status == 401:
            return ConfigError("alpaca refused the API keys (401 unauthorized)")
        return VenueUnavailableError(text)
    return OrderRejectedError(text, code=str(status))


def _harden(client: Any, timeout_s: float, budget: Any = None) -> None:
    """A timeout on every request (alpaca-py sets none), every request drawn from the
    account's rate ``budget``, and no sleeping 429 retries inside the library (the broker's
    policy retries)."""
    from requests.adapters import HTTPAdapter

    class _TimeoutAdapter(HTTPAdapter):
        def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
            if kwargs.get("timeout") is None:
                kwargs["timeout"] = timeout_s
            if budget is not None:
                budget.acquire(1)
            return super().send(request, *args, **kwargs)

    session = getattr(client, "_session", None)
    if session is not None:
        adapter = _TimeoutAdapter()
        session.mount("http://", adapter)
        session.mount("https://", adapter)
    if hasattr(client, "_retry"):
        client._retry = 0
