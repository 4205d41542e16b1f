"""The venue broker: the kernel's :class:`~tradeloop.execution.broker.Broker` port on any
:class:`~tradeloop.execution.venue.VenueClient`.

The step calls it exactly as it calls the simulated broker; what differs is where fills come
from.

* :meth:`VenueBroker.submit_order` checks the order against the venue's precision and limits
  (and the notional caps) *before* sending, then places it with a client order id that is a
  pure function of the run and the order id (``tl<run key><order id>``): a retry after a lost
  response, or a restarted process re-running the same step, can never create a second order.
  Before an id the process may already have sent is used (a retry after a timeout, the first
  orders after a restore), the broker asks the venue for it and adopts what it finds.
* Every status the venue reports goes through the order state machine
  (:func:`~tradeloop.core.order_status.check_transition`); an impossible move is logged,
  alerted and counted, never applied. ``OrderNotFound`` from the venue is a move to
  ``rejected`` (never sent) or ``expired`` (gone), not a crash.
* Fills arrive through :meth:`VenueClient.drain_updates` (the user-data stream, or REST
  polling while it is down) and are applied to the portfolio only inside the kernel's step:
  at the next open of the symbol (:meth:`on_open`, like the simulated broker's next-open rule),
  on every price update and in :meth:`sync` (housekeeping). Repeated fills (stream + poll) are
  dropped by trade id. Each fill records the expected price (the price when the order was
  sent) and the actual one: :attr:`VenueBroker.slippage`.
* Stops, targets and trailing stops rest at the venue where it holds them (perpetuals:
  reduce-only stop and take-profit orders; spot and equities: a stop or take-profit order,
  or both as one order list through :class:`~tradeloop.execution.venue.VenueExitPairs`
  (Binance spot's OCO list, Alpaca's ``oco`` order), since the holding can rest in one sell
  only), so a dead bot still leaves every position protected. Levels go on the venue's
  price grid away from the market (they trigger on exactly the bars paper exits on); where
  the venue takes resting orders in coarser amounts (Alpaca: whole shares) the rest of the
  position is exited by the bot once a resting exit filled. They are
  placed when the position opens (client ids ``tl<run key>p<n>``, a pure function of the
  run's counter, looked up before they are placed again after a restart); the sibling is
  cancelled when one fills, all are cancelled when the position closes otherwise, and the
  stop is cancelled/replaced as a trailing anchor moves. A bar that reaches a resting level
  is followed up at once (the order fetched, its fills taken) so the step sees the exit paper
  would; the venue fills them by paper's rule (:mod:`tradeloop.execution.fill_rules`).
  A level the venue does not hold (refused, or placed only after the venue had matched the
  bar that reaches it: an entry filled at the bar's open) is exited by the bot with a
  reduce-only market order, as is every level with ``resting_exits=False``.
* Buy entries from flat are sized at send time at the venue's latest trade price where it
  tells one (:class:`~tradeloop.execution.venue.VenueLastPrice`) and it is above the step's
  close, and can leave ``cash_buffer_pct`` of the cash unspent (the simulated broker's
  rule), so a price that moved up does not get them refused for insufficient funds.
* A circuit breaker and tenacity retries wrap every venue call; while the breaker is open
  new entries are refused and ``on_breaker`` (the session) puts the risk engine into
  reducing-only and alerts.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from typing import Any, TypeVar, cast

from tradeloop.core.errors import TemporaryError
from tradeloop.core.instrument import Instrument
from tradeloop.core.money import affordable_quantity, pnl_for, quantity_for_budget
from tradeloop.core.order_status import (
    FINAL_STATUSES,
    InvalidTransitionError,
    OrderStatus,
    check_transition,
)
from tradeloop.core.orders import Fill, Order, OrderSide, OrderType
from tradeloop.core.portfolio import Portfolio
from tradeloop.core.position import ExitReason, Position, Trade
from tradeloop.core.rejection import Rejection
from tradeloop.execution.fees import FeeModel
from tradeloop.execution.fill_rules import TriggerKind, trigger_fill
from tradeloop.execution.protection import (
    BreakerState,
    CircuitBreaker,
    Retrier,
    RetryPolicy,
)
from tradeloop.execution.venue import (
    DuplicateOrderError,
    ExitPair,
    MarketKind,
    OrderNotFoundError,
    OrderRejectedError,
    OrderRequest,
    OrderValidationError,
    VenueClient,
    VenueExitPairs,
    VenueFill,
    VenueLastPrice,
    VenueOrder,
    check_order,
    exit_pair_ids,
    is_broker_order,
)

__all__ = [
    "NotionalCaps",
    "SlippageRecord",
    "VenueBroker",
    "client_order_id",
    "is_broker_order",
    "run_key",
]

logger = logging.getLogger(__name__)
T = TypeVar("T")
_EPS = 1e-12
_STOP = TriggerKind.STOP
_S = OrderStatus


def run_key(run_id: str) -> str:
    """A short, stable key of a run id for client order ids (8 hex digits).

    >>> run_key("paper-sma_cross-binance-BTCUSDT-1m")
    'd6ec805c'
    """
    return hashlib.sha256(run_id.encode()).hexdigest()[:8]


def client_order_id(key: str, order_id: int) -> str:
    """The client order id of order ``order_id`` of the run with ``key``.

    >>> client_order_id("a5c3b0b4", 17)
    'tla5c3b0b4x17'
    """
    return f"tl{key}x{order_id}"


@dataclass(frozen=True, slots=True)
class NotionalCaps:
    """Real-money guards: the largest notional of one order and of one UTC day (None: no cap)."""

    per_order: float | None = None
    per_day: float | None = None


@dataclass(frozen=True, slots=True)
class SlippageRecord:
    """Expected vs actual price of one fill. ``bps`` > 0 is adverse (paid more / got less)."""

    order_id: int
    symbol: str
    side: str
    quantity: float
    expected: float
    actual: float
    ts: int

    @property
    def bps(self) -> float:
        """Adverse slippage in basis points of the expected price."""
        if not self.expected > 0:
            return 0.0
        sign = 1.0 if self.side == OrderSide.BUY.value else -1.0
        return sign * (self.actual - self.expected) / self.expected * 10_000.0

    @property
    def cost(self) -> float:
        """Adverse slippage in quote currency."""
        sign = 1.0 if self.side == OrderSide.BUY.value else -1.0
        return sign * (self.actual - self.expected) * self.quantity


@dataclass(slots=True)
class _Working:
    """An order this broker sent, as the broker tracks it."""

    order: Order
    client_id: str
    status: OrderStatus
    amount: float
    expected: float
    reason: str
    filled: float = 0.0
    applied: float = 0.0
    trade_ids: list[str] = field(default_factory=list)


class VenueBroker:
    """The Broker port over a :class:`VenueClient` (see the module docstring).

    Parameters
    ----------
    client
        The venue.
    portfolio
        The account the fills go into (the kernel's).
    instruments
        The run's instruments.
    run_id
        The run (client order ids derive from it).
    fees
        The fee model (a fill's fee when the venue reports none in the quote currency).
    caps
        Per-order / per-day notional caps (real money).
    breaker, retry
        Circuit breaker and retry policy around venue calls.
    alert
        ``alert(title, text)``: something a human must know (an invalid transition, ...).
    on_breaker
        Called with ``(old, new, why)`` when the breaker changes state.
    clock
        Wall time in ns (the per-day cap's day).
    """

    def __init__(
        self,
        client: VenueClient,
        portfolio: Portfolio,
        instruments: Mapping[str, Instrument],
        *,
        run_id: str,
        fees: FeeModel | None = None,
        caps: NotionalCaps | None = None,
        breaker: CircuitBreaker | None = None,
        retry: RetryPolicy | None = None,
        alert: Callable[[str, str], None] | None = None,
        on_breaker: Callable[[BreakerState, BreakerState, str], None] | None = None,
        clock: Callable[[], int] = time.time_ns,
        sleep: Callable[[float], None] = time.sleep,
        post_only_entries: bool = False,
        resting_exits: bool = True,
        cash_buffer_pct: float = 0.0,
    ) -> None:
        self.client = client
        self._tells_price = isinstance(client, VenueLastPrice)  # (a protocol check: once)
        #: buy entries are sized at send time to leave this fraction of the cash unspent at
        #: the last price (the simulated broker's rule), room for a higher next open
        self.cash_buffer_pct = cash_buffer_pct
        #: stops and targets rest at the venue (where it holds them) instead of being watched
        self.resting_exits = resting_exits
        self._rests: dict[str, MarketKind | None] = {}
        #: protective orders' counter (their client ids) and, after a restore, the last one
        #: the stored state knows (later ones may have gone out: looked up before placing)
        self._protect_seq = 0
        self._protect_uncertain: int | None = None
        #: (symbol, type, level) of resting orders the venue refused: not sent again
        self._refused: set[tuple[str, OrderType, float]] = set()
        #: symbol -> why: a resting exit filled and left a part it could not hold (Alpaca's
        #: fractional share): the bot exits that part at the next price update
        self._leftover: dict[str, ExitReason] = {}
        #: the broker's own orders (resting exits, exits of watched levels) placed since the
        #: kernel last took them (:meth:`take_new_orders`), journaled like the step's orders
        self._new_orders: list[Order] = []
        #: entries from flat go out as post-only limits at the last price (the simulated
        #: broker's rule): the venue refuses one that would take; one the bar after the
        #: signal did not fill is cancelled at the next bar's open
        self.post_only_entries = post_only_entries
        #: post-only entries working at the venue -> [step time sent, first bar open after it]
        self._post_only_opens: dict[int, list[int]] = {}
        self.portfolio = portfolio
        self.instruments = dict(instruments)
        self.run_id = run_id
        self.key = run_key(run_id)
        self.fees = fees or FeeModel.from_instruments(instruments)
        self.caps = caps or NotionalCaps()
        self.breaker = breaker or CircuitBreaker(client.name)
        if on_breaker is not None:
            self.breaker.subscribe(on_breaker)
        self._retry = retry or RetryPolicy()
        self._retrier = Retrier(self._retry, sleep=sleep)
        self._sleep = sleep
        self._alert = alert
        self._clock = clock
        self.step = -1
        #: orders working at the venue, by symbol (the kernel calls on_open for these)
        self.pending: dict[str, list[Order]] = {}
        self.watched: set[str] = set()
        self.rejections: list[Rejection] = []
        self.order_status: dict[int, OrderStatus] | None = {}
        self.slippage: deque[SlippageRecord] = deque(maxlen=_SLIPPAGE_KEPT)
        self.invalid_transitions = 0
        self._fills: list[Fill] = []
        self._order_seq = 0
        self._position_seq = 0
        self._working: dict[int, _Working] = {}
        self._by_client: dict[str, int] = {}
        self._seen_trades: set[str] = set()
        self._seen_order: deque[str] = deque()
        #: client id -> final status of orders that left the working set (late messages)
        self._finished: dict[str, OrderStatus] = {}
        #: running slippage totals over every fill (``slippage`` keeps the recent records)
        self._slip_totals = [0, 0.0, 0.0]  # fills, sum of bps, cost
        self._received: list[VenueFill] = []
        self._day: tuple[int, float] = (0, 0.0)
        #: ids above this may have been sent by a process that died before journaling them
        self._uncertain_after: int | None = None

    # -- the Broker port -------------------------------------------------------------------
    def next_order_id(self) -> int:
        """Return a new order id (ids count up from 1, restored with the run)."""
        self._order_seq += 1
        return self._order_seq

    def fills(self) -> list[Fill]:
        """Every fill so far, oldest first."""
        return self._fills

    def restore_fills(self, fills: list[Fill]) -> None:
        """Take back the fills of a restored run."""
        self._fills.extend(fills)

    def submit_order(self, order: Order, ts_ns: int, price: float) -> None:
        """Check, then send ``order`` to the venue (``price``: the last price, expected fill)."""
        if order.id <= 0:
            order = replace(order, id=self.next_order_id())
        symbol = order.symbol
        pos = self.portfolio.positions.get(symbol)
        direction = 1 if order.side is OrderSide.BUY else -1
        if order.reduce_only:
            if pos is None or pos.direction == direction:
                self._refuse(order, ts_ns, "no_position", "nothing to reduce")
                return
            amount, reason = pos.quantity, "exit"
        else:
            amount = order.quantity
            # a buy from flat is sized at the venue's latest price where it moved up since
            # the step's close, and never above the cash at that price (the venue checks the
            # cash at its price, not the bar's: it would refuse the order)
            latest = self._latest_price(symbol) if direction > 0 and pos is None else math.nan
            size_px = latest if latest > price else price
            if order.equity_fraction is not None:
                if not size_px > 0:
                    self._refuse(order, ts_ns, "no_price", "an equity fraction needs a price")
                    return
                budget = order.equity_fraction * self.portfolio.equity
                if direction > 0:
                    budget = min(budget, self.portfolio.balance * (1.0 - self.cash_buffer_pct))
                amount = quantity_for_budget(budget, size_px, self.fees.taker(symbol))
            elif direction > 0 and (pos is None or pos.direction > 0) and math.isfinite(size_px):
                amount = affordable_quantity(
                    amount,
                    size_px,
                    self.portfolio.balance,
                    self.fees.taker(symbol),
                    self.cash_buffer_pct,
                )
                if latest > 0:  # the venue told its price: what the cash buys there
                    cash = self.portfolio.balance * (1.0 - self.cash_buffer_pct)
                    amount = min(
                        amount, quantity_for_budget(cash, size_px, self.fees.taker(symbol))
                    )
            if pos is not None and pos.direction == direction:
                self._refuse(order, ts_ns, "already_open", "position in this direction is open")
                return
            if pos is not None:  # a reversal: close and open with one order
                amount += pos.quantity
            elif self.post_only_entries and order.type is OrderType.MARKET and math.isfinite(price):
                order = replace(order, type=OrderType.LIMIT, limit_price=price)
                self._post_only_opens[order.id] = [ts_ns, -1]
            reason = "entry"
        self._send(order, ts_ns, price, amount, reason)

    def _latest_price(self, symbol: str) -> float:
        """The venue's latest trade price of ``symbol`` where it tells one, else NaN."""
        client = self.client
        if not self._tells_price:
            return math.nan
        try:
            latest = self._call(partial(cast(VenueLastPrice, client).last_price, symbol))
        except (TemporaryError, OrderRejectedError, OrderNotFoundError) as exc:
            logger.warning("latest price of %s unavailable: %s", symbol, exc)
            return math.nan
        return latest if math.isfinite(latest) and latest > 0 else math.nan

    def on_open(self, symbol: str, ts_ns: int, open_price: float) -> None:
        """A bar of ``symbol`` opened: apply what the venue reported (fills of waiting orders).

        An order the venue reported filled whose fills have still not arrived a bar later (a
        stream that dropped them, or was not subscribed yet) has them fetched over REST now,
        so the step never decides on a position the venue has already changed.
        """
        self.sync(ts_ns)
        if self._post_only_opens:
            self._expire_post_only(symbol, ts_ns)
        if any(self._behind(w) for w in self._working.values() if w.order.symbol == symbol):
            try:
                self.recover_missing_fills()
            except TemporaryError as exc:
                logger.warning("fills of %s not recovered yet: %s", symbol, exc)

    def on_bar_range(
        self, symbol: str, ts_ns: int, o: float, h: float, low: float, c: float
    ) -> None:
        """Apply reported fills, check the position's exits against the range, mark it."""
        self.sync(ts_ns)
        pos = self.portfolio.positions.get(symbol)
        if pos is None:
            return
        self.portfolio.marks[symbol] = c
        if symbol in self.watched and self._rests_exits(symbol):
            self._await_resting(symbol, pos.direction, ts_ns, o, h, low)
            pos = self.portfolio.positions.get(symbol)
            if pos is None:
                return
            left = self._leftover.pop(symbol, None)
            if left is not None and not self._has_working_exit(symbol):
                self._send_exit(pos, ts_ns, c, left)  # the part the venue could not hold
                return
            reason = _exit_hit(pos, h, low)
            if reason is not None and not self._has_working_exit(symbol):
                # a level the venue does not hold (its order was refused), or holds only since
                # this bar was matched (placed when the entry's fill of this bar arrived, as on
                # Alpaca, whose market entries fill at the open): paper exits in this bar, the
                # bot exits now (a bot exit cancels a pair holding the shares first)
                need = OrderType.TAKE_PROFIT if reason is ExitReason.TAKE_PROFIT else OrderType.STOP
                holders = [w for w in self._protective(symbol) if w.order.type is need]
                if all(w.order.ts_created >= ts_ns for w in holders):
                    self._send_exit(pos, ts_ns, c, reason)
                    return
            if pos.trail_fraction and pos.trail_anchor is not None:
                anchor = (
                    max(pos.trail_anchor, h) if pos.direction > 0 else min(pos.trail_anchor, low)
                )
                if anchor != pos.trail_anchor:
                    self.portfolio.positions[symbol] = replace(pos, trail_anchor=anchor)
            self._sync_protection(ts_ns)
            return
        if symbol in self.watched and not self._has_working_exit(symbol):
            reason = _exit_hit(pos, h, low)
            if reason is not None:
                self._send_exit(pos, ts_ns, c, reason)
            elif pos.trail_fraction and pos.trail_anchor is not None:
                anchor = (
                    max(pos.trail_anchor, h) if pos.direction > 0 else min(pos.trail_anchor, low)
                )
                if anchor != pos.trail_anchor:
                    self.portfolio.positions[symbol] = replace(pos, trail_anchor=anchor)

    def flatten(self, ts_ns: int, prices: Mapping[str, float] | None = None) -> int:
        """Cancel every working order (resting stops and targets too) and close every position
        with reduce-only market orders."""
        self.cancel_pending()
        self._cancel_protection(None)
        count = 0
        for symbol, pos in list(self.portfolio.positions.items()):
            if self._has_working_exit(symbol):
                continue
            price = (prices or {}).get(symbol, self.portfolio.marks.get(symbol, math.nan))
            self._send_exit(pos, ts_ns, price, ExitReason.RISK)
            count += 1
        return count

    def cancel_pending(self) -> int:
        """Cancel every working entry order at the venue; return how many were asked to."""
        count = 0
        for work in list(self._working.values()):
            if work.status in FINAL_STATUSES or work.reason != "entry":
                continue
            try:
                snapshot = self._call(
                    partial(self.client.cancel_order, work.order.symbol, work.client_id)
                )
            except OrderNotFoundError:
                self._update_status(work, _S.EXPIRED, "unknown at the venue when cancelled")
                continue
            except (TemporaryError, OrderRejectedError) as exc:
                logger.warning("cancel %s failed: %s", work.client_id, exc)
                continue
            self._apply_snapshot(snapshot)
            count += 1
        self.sync(self._clock())
        return count

    def close_all(self, ts_ns: int, prices: dict[str, float]) -> None:
        """Close every position (``tradeloop live flatten`` and the end of a run)."""
        self.flatten(ts_ns, prices)

    def open_trades(self) -> list[Trade]:
        """The open positions as trades without an exit."""
        marks = self.portfolio.marks
        return [
            Trade(
                p.id,
                p.symbol,
                p.direction,
                p.quantity,
                p.entry_ts,
                p.entry_price,
                None,
                None,
                p.entry_fee,
                0.0,
                pnl_for(p.direction, p.quantity, p.entry_price, marks.get(p.symbol, p.entry_price))
                - p.entry_fee,
                None,
                p.tag,
                p.stop_loss,
                p.take_profit,
            )
            for p in self.portfolio.positions.values()
        ]

    # -- fills -----------------------------------------------------------------------------
    def sync(self, ts_ns: int | None = None) -> int:
        """Take the venue's updates and apply every fill received; return how many applied."""
        symbols = sorted(
            {
                w.order.symbol
                for w in self._working.values()
                if w.status not in FINAL_STATUSES or self._behind(w)
            }
        )
        try:
            updates = self.client.drain_updates(symbols)
        except TemporaryError as exc:
            logger.warning("venue updates unavailable: %s", exc)
            updates = []
        for update in updates:
            if isinstance(update, VenueFill):
                self._receive(update)
            else:
                self._apply_snapshot(update)
        applied = 0
        received, self._received = self._received, []
        for fill in received:
            if not fill.ts and ts_ns is not None:
                fill = replace(fill, ts=ts_ns)  # a venue that does not time its fills
            applied += self._apply_fill(fill)
        self._refresh_pending()
        if self.resting_exits:
            self._sync_protection(ts_ns if ts_ns is not None else self._clock())
        return applied

    def recover_missing_fills(self) -> int:
        """Ask the venue for fills of orders whose reported filled amount is ahead of ours."""
        applied = 0
        for symbol in {w.order.symbol for w in self._working.values() if self._behind(w)}:
            for fill in self._call(partial(self.client.fetch_fills, symbol)):
                self._receive(fill)
        received, self._received = self._received, []
        for fill in received:
            applied += self._apply_fill(fill)
        self._refresh_pending()
        return applied

    def _behind(self, work: _Working) -> bool:
        return work.filled > work.applied + _EPS

    def _receive(self, fill: VenueFill) -> None:
        if fill.trade_id in self._seen_trades:
            return
        if fill.client_order_id not in self._by_client:
            logger.info("fill %s of an order not of this run ignored", fill.trade_id)
            return
        self._seen_trades.add(fill.trade_id)
        self._seen_order.append(fill.trade_id)
        if len(self._seen_order) > _TRADES_KEPT:
            self._seen_trades.discard(self._seen_order.popleft())
        self._received.append(fill)

    def _apply_fill(self, vf: VenueFill) -> int:
        order_id = self._by_client[vf.client_order_id]
        work = self._working[order_id]
        work.trade_ids.append(vf.trade_id)
        work.applied += vf.amount
        work.filled = max(work.filled, work.applied)
        symbol = vf.symbol if vf.symbol in self.instruments else work.order.symbol
        fee = self._fee_in_quote(vf, symbol)
        record = SlippageRecord(
            order_id, symbol, vf.side.value, vf.amount, work.expected, vf.price, vf.ts
        )
        self.slippage.append(record)
        if record.expected == record.expected and record.expected > 0:
            totals = self._slip_totals
            totals[0] += 1
            totals[1] += record.bps
            totals[2] += record.cost
        reason = (
            ExitReason(work.reason)
            if work.reason in ExitReason.__members__.values()
            else ExitReason.SIGNAL
        )
        self._book(work.order, symbol, vf.side, vf.amount, vf.price, fee, vf.ts, reason)
        self.fees.record_volume(vf.amount * vf.price, vf.ts)
        if order_id < 0 and work.filled >= work.amount - _EPS:
            if symbol in self.portfolio.positions:
                self._leftover[symbol] = reason
            else:
                self._leftover.pop(symbol, None)
        return 1

    def _fee_in_quote(self, vf: VenueFill, symbol: str) -> float:
        """The venue's fee in the quote currency; the fee model's when the venue gave none
        (or charged it in a third asset, e.g. a discount token)."""
        try:
            rules = self.client.market_rules(symbol)
            quote, base = rules.quote, rules.base
        except Exception:
            inst = self.instruments.get(symbol)
            quote = inst.quote_currency if inst is not None else ""
            base = symbol.split("/")[0]
        if vf.fee_currency and vf.fee_currency == quote:
            return vf.fee
        if vf.fee_currency and vf.fee_currency == base:
            return vf.fee * vf.price
        return self.fees.fee(symbol, vf.amount, vf.price, maker=bool(vf.maker))

    def _book(
        self,
        order: Order,
        symbol: str,
        side: OrderSide,
        qty: float,
        price: float,
        fee: float,
        ts: int,
        reason: ExitReason,
    ) -> None:
        """Apply one execution to the portfolio: close (part of) the opposite position, then
        open or add to one with the rest (the simulated broker's cash and P&L arithmetic)."""
        p = self.portfolio
        direction = 1 if side is OrderSide.BUY else -1
        p.balance -= direction * qty * price + fee
        remaining, fee_left = qty, fee
        pos = p.positions.get(symbol)
        if pos is not None and pos.direction != direction:
            close_qty = min(qty, pos.quantity)
            part = close_qty / pos.quantity
            fee_close = fee * close_qty / qty
            entry_fee = pos.entry_fee * part
            pnl = pnl_for(pos.direction, close_qty, pos.entry_price, price) - entry_fee - fee_close
            p.trades.append(
                Trade(
                    pos.id,
                    symbol,
                    pos.direction,
                    close_qty,
                    pos.entry_ts,
                    pos.entry_price,
                    ts,
                    price,
                    entry_fee,
                    fee_close,
                    pnl,
                    reason,
                    pos.tag,
                    pos.stop_loss,
                    pos.take_profit,
                )
            )
            if close_qty >= pos.quantity - _EPS:
                del p.positions[symbol]
                self.watched.discard(symbol)
            else:  # (the rest to 12 decimals: no binary dust below the venue's amount step)
                p.positions[symbol] = replace(
                    pos,
                    quantity=round(pos.quantity - close_qty, 12),
                    entry_fee=pos.entry_fee - entry_fee,
                )
            self._fills.append(
                Fill(order.id, symbol, side, close_qty, price, fee_close, ts, reason.value)
            )
            remaining -= close_qty
            fee_left -= fee_close
        if remaining > _EPS and not order.reduce_only:
            pos = p.positions.get(symbol)
            if pos is not None:  # a further fill of the same entry: average in
                qty_new = pos.quantity + remaining
                avg = (pos.entry_price * pos.quantity + price * remaining) / qty_new
                p.positions[symbol] = replace(
                    pos, quantity=qty_new, entry_price=avg, entry_fee=pos.entry_fee + fee_left
                )
            else:
                self._position_seq += 1
                exits = order.exits
                trail = exits.trailing_stop if exits is not None else None
                pos = Position(
                    id=order.position_id or f"{symbol}-{self._position_seq}",
                    symbol=symbol,
                    direction=direction,
                    quantity=remaining,
                    entry_price=price,
                    entry_ts=ts,
                    entry_fee=fee_left,
                    stop_loss=exits.stop_loss if exits is not None else None,
                    take_profit=exits.take_profit if exits is not None else None,
                    trail_fraction=trail,
                    trail_anchor=price if trail else None,
                    tag=order.tag,
                    trail_activation=exits.trailing_activation
                    if exits is not None and trail
                    else None,
                )
                p.positions[symbol] = pos
                if pos.stop_loss is not None or pos.take_profit is not None or trail:
                    self.watched.add(symbol)
            self._fills.append(
                Fill(order.id, symbol, side, remaining, price, fee_left, ts, "entry")
            )
        p.marks[symbol] = price

    # -- sending ---------------------------------------------------------------------------
    def _send(self, order: Order, ts_ns: int, price: float, amount: float, reason: str) -> None:
        symbol = order.symbol
        client = self.client
        try:
            rules = client.market_rules(symbol)
            limit_px = (
                order.limit_price if order.type in (OrderType.LIMIT, OrderType.STOP_LIMIT) else None
            )
            stop_px = (
                order.stop_price if order.type in (OrderType.STOP, OrderType.STOP_LIMIT) else None
            )
            checked = check_order(
                rules,
                amount,
                price=limit_px,
                stop_price=stop_px,
                reference_price=price if math.isfinite(price) else None,
                round_amount=client.round_amount(symbol, amount) if amount > 0 else None,
                round_price=client.round_price(symbol, limit_px) if limit_px else None,
                round_stop=client.round_price(symbol, stop_px) if stop_px else None,
            )
        except OrderValidationError as exc:
            self._refuse(order, ts_ns, "invalid_order", str(exc))
            return
        except Exception as exc:  # an unknown symbol: ConfigError naming it
            self._refuse(order, ts_ns, "invalid_order", str(exc))
            return
        ref = checked.price or price
        notional = checked.amount * ref if ref == ref else 0.0
        if not self._within_caps(order, ts_ns, notional, reason):
            return
        if self.breaker.state is BreakerState.OPEN and reason == "entry":
            self._refuse(order, ts_ns, "venue_unavailable", "circuit breaker open")
            return
        if reason != "entry" and self._holds_once(symbol) and self._protective(symbol):
            self._cancel_protection(symbol)  # they hold the coins (shares) this exit sells
        cid = client_order_id(self.key, order.id)
        work = _Working(order, cid, _S.NEW, checked.amount, ref if ref == ref else math.nan, reason)
        self._working[order.id] = work
        self._by_client[cid] = order.id
        self.pending.setdefault(symbol, []).append(order)
        request = OrderRequest(
            cid,
            symbol,
            order.side,
            order.type,
            checked.amount,
            checked.price,
            checked.stop_price,
            order.time_in_force,
            reduce_only=order.reduce_only and rules.kind.value == "perpetual",
            post_only=order.tag == "post_only" or order.id in self._post_only_opens,
        )
        self._update_status(work, _S.SUBMITTED)
        try:
            snapshot = self._place(request, order.id)
        except OrderRejectedError as exc:
            self._update_status(work, _S.REJECTED, str(exc))
            self.rejections.append(Rejection(ts_ns, symbol, "venue_rejected", str(exc), "venue"))
            self._refresh_pending()
            return
        except TemporaryError as exc:
            # unknown outcome: the order stays submitted; sync/reconcile find it by client id
            logger.error("order %s: venue unreachable (%s); will resolve by client id", cid, exc)
            self._notify("order outcome unknown", f"{symbol} order {cid}: {exc}")
            return
        self._apply_snapshot(snapshot)
        if reason == "entry":
            day, used = self._day
            self._day = (day, used + notional)
            if order.exits is not None and snapshot.filled > 0 and self._rests_exits(symbol):
                self._protect_at_once(order, snapshot, ts_ns)
        elif snapshot.status is _S.FILLED and self._rests_exits(symbol):
            self._cancel_protection(symbol)  # closed by the bot: nothing left to protect

    def _expire_post_only(self, symbol: str, ts_ns: int) -> None:
        """At a bar's open: a post-only entry of ``symbol`` still working after the bar it
        rested in (the first bar opening after its step) is cancelled, the simulated
        broker's expiry; that bar's fills were synced first."""
        for oid in list(self._post_only_opens):
            work = self._working.get(oid)
            if work is None or work.status in FINAL_STATUSES:
                del self._post_only_opens[oid]
                continue
            seen = self._post_only_opens[oid]
            if work.order.symbol != symbol or ts_ns <= seen[0] or ts_ns == seen[1]:
                continue
            if seen[1] < 0:
                seen[1] = ts_ns  # the bar it rests in opened
                continue
            try:
                snapshot = self._call(partial(self.client.cancel_order, symbol, work.client_id))
            except OrderNotFoundError:
                continue  # filled or gone meanwhile: the next sync tells
            except TemporaryError as exc:
                logger.warning("post-only order %s not cancelled yet: %s", work.client_id, exc)
                continue
            del self._post_only_opens[oid]
            self._apply_snapshot(snapshot)

    def _place(self, request: OrderRequest, order_id: int) -> VenueOrder:
        """Place once: before (re)sending an id that may have gone out, look it up first."""
        client = self.client
        cid = request.client_order_id
        maybe_sent = self._maybe_sent(order_id)

        def attempt() -> VenueOrder:
            nonlocal maybe_sent
            if maybe_sent:
                try:
                    found = client.fetch_order(request.symbol, cid)
                    logger.info("order %s already at the venue (%s): adopted", cid, found.status)
                    return found
                except OrderNotFoundError:
                    if self._maybe_sent(order_id):  # later ids cannot have gone out either
                        if order_id < 0:
                            self._protect_uncertain = None
                        else:
                            self._uncertain_after = None
            maybe_sent = True  # if this send's answer is lost, the retry looks first
            try:
                return client.place_order(request)
            except DuplicateOrderError:
                return client.fetch_order(request.symbol, cid)

        return self._call(attempt)

    def _send_exit(self, pos: Position, ts_ns: int, price: float, reason: ExitReason) -> None:
        order = Order(
            id=self.next_order_id(),
            symbol=pos.symbol,
            side=OrderSide.BUY if pos.direction < 0 else OrderSide.SELL,
            type=OrderType.MARKET,
            quantity=pos.quantity,
            ts_created=ts_ns,
            reduce_only=True,
            tag=reason.value,
        )
        if self.order_status is not None:
            self.order_status[order.id] = _S.NEW
        self._new_orders.append(order)  # the bot's own order: journaled like the step's
        self._send(order, ts_ns, price, pos.quantity, reason.value)

    def _has_working_exit(self, symbol: str) -> bool:
        """A market exit of ``symbol`` is working (resting stops and targets are not)."""
        return any(
            w.order.symbol == symbol
            and w.reason != "entry"
            and w.order.id > 0
            and w.status not in FINAL_STATUSES
            for w in self._working.values()
        )

    def _maybe_sent(self, order_id: int) -> bool:
        """A process that died may have sent this id (above the restored counter)."""
        if order_id < 0:
            return self._protect_uncertain is not None and -order_id > self._protect_uncertain
        return self._uncertain_after is not None and order_id > self._uncertain_after

    # -- resting exits ---------------------------------------------------------------------
    def _rests_exits(self, symbol: str) -> bool:
        """The venue holds ``symbol``'s stops and targets (perpetuals, spot and equities)."""
        return self._kind(symbol) is not None

    def _holds_once(self, symbol: str) -> bool:
        """The holding can rest in one exit order only (spot coins, shares): a stop and a
        target go out as one exit pair, and a bot exit cancels them first."""
        return self._kind(symbol) in (MarketKind.SPOT, MarketKind.EQUITY)

    def _resting_level(self, pos: Position, otype: OrderType, level: float) -> float:
        """``level`` on the venue's price grid, rounded away from the market (a long's
        target up, its stop down; a short's the other way): prices trade on the grid, so the
        venue's order triggers on exactly the bars that reach the unrounded level, the bars
        paper exits on (round-to-nearest would fill a target paper never reaches)."""
        client, symbol = self.client, pos.symbol
        price = client.round_price(symbol, level)
        up = (otype is OrderType.TAKE_PROFIT) == (pos.direction > 0)
        if (price < level - _EPS) if up else (price > level + _EPS):
            step = client.market_rules(symbol).price_step
            if step > 0:
                price = client.round_price(symbol, price + step if up else price - step)
        return price

    def _resting_amount(self, symbol: str, quantity: float) -> float:
        """``quantity`` as a resting exit order takes it: floored to the venue's resting
        increment where coarser than its amount step (Alpaca: whole shares); the rest of the
        position is sold by the bot once a resting exit filled (``_leftover``)."""
        client = self.client
        step = client.market_rules(symbol).resting_amount_step
        if step > 0:
            quantity = math.floor(quantity / step + 1e-9) * step
            if quantity <= 0:
                return 0.0
        return client.round_amount(symbol, quantity)

    def _kind(self, symbol: str) -> MarketKind | None:
        """The market kind of ``symbol`` when its exits may rest at the venue, else None."""
        if not self.resting_exits:
            return None
        if symbol not in self._rests:
            try:
                self._rests[symbol] = self.client.market_rules(symbol).kind
            except Exception:
                self._rests[symbol] = None
        return self._rests[symbol]

    def _protective(self, symbol: str | None) -> list[_Working]:
        return [
            w
            for w in self._working.values()
            if w.order.id < 0
            and w.status not in FINAL_STATUSES
            and (symbol is None or w.order.symbol == symbol)
        ]

    def _sync_protection(self, ts_ns: int) -> None:
        """Bring the resting stops and targets in line with the positions: cancel the ones
        protecting nothing (a sibling filled, the position closed or reversed), then place,
        or cancel and replace, each position's stop (the level in force: fixed or trailing)
        and target at its size."""
        positions = self.portfolio.positions
        in_flight = {
            w.order.symbol
            for w in self._working.values()
            if self._behind(w) or (w.order.id > 0 and w.status not in FINAL_STATUSES)
        }
        for work in self._protective(None):
            if work.order.symbol in in_flight:
                continue  # the position is changing (fills on their way): decided once known
            pos = positions.get(work.order.symbol)
            if pos is None or (pos.direction > 0) == (work.order.side is OrderSide.BUY):
                self._cancel_resting(work)
        for symbol, pos in list(positions.items()):
            if symbol not in self.watched or symbol in in_flight or not self._rests_exits(symbol):
                continue  # an order is working (a market exit closing it), or fills on the way
            self._protect(pos, ts_ns)

    def _protect(self, pos: Position, ts_ns: int) -> None:
        """Place, keep or replace ``pos``'s resting stop and target. On spot both go out as
        one order list (the holding can rest in one sell only); elsewhere as two orders."""
        works = self._protective(pos.symbol)
        stop, reason = pos.active_stop()
        tp = pos.take_profit
        pairs = self._holds_once(pos.symbol) and isinstance(self.client, VenueExitPairs)
        if pairs and stop is not None and tp is not None:
            self._keep_pair(pos, works, stop, reason, tp, ts_ns)
            return
        if self._keep_resting(pos, works, OrderType.STOP, stop, reason, ts_ns):
            self._keep_resting(pos, works, OrderType.TAKE_PROFIT, tp, ExitReason.TAKE_PROFIT, ts_ns)

    def _keep_pair(
        self,
        pos: Position,
        works: list[_Working],
        stop: float,
        reason: ExitReason,
        tp: float,
        ts_ns: int,
    ) -> None:
        """Keep ``pos``'s stop/target order list, or cancel it and place the new one (a
        trailing stop moved, the size changed)."""
        symbol = pos.symbol
        stop_px = self._resting_level(pos, OrderType.STOP, stop)
        tp_px = self._resting_level(pos, OrderType.TAKE_PROFIT, tp)
        amount = self._resting_amount(symbol, pos.quantity)
        stops = [w for w in works if w.order.type is OrderType.STOP]
        takes = [w for w in works if w.order.type is OrderType.TAKE_PROFIT]
        if (
            len(stops) == len(takes) == 1
            and (stops[0].order.stop_price, takes[0].order.stop_price) == (stop_px, tp_px)
            and abs(stops[0].amount - amount) <= _EPS
            and stops[0].reason == reason.value
        ):
            return
        for work in works:
            if work.status not in FINAL_STATUSES and not self._cancel_resting(work):
                return
        if amount > 0 and (symbol, OrderType.STOP, stop_px) not in self._refused:
            self._place_pair(pos, stop_px, tp_px, amount, reason, ts_ns)

    def _place_pair(
        self,
        pos: Position,
        stop_px: float,
        tp_px: float,
        amount: float,
        reason: ExitReason,
        ts_ns: int,
    ) -> None:
        client = self.client
        assert isinstance(client, VenueExitPairs)
        side = OrderSide.SELL if pos.direction > 0 else OrderSide.BUY
        list_id = f"tl{self.key}l{self._protect_seq + 1}"
        legs = []
        for otype, price, why, cid in zip(
            (OrderType.STOP, OrderType.TAKE_PROFIT),
            (stop_px, tp_px),
            (reason, ExitReason.TAKE_PROFIT),
            exit_pair_ids(list_id),
            strict=True,
        ):
            self._protect_seq += 1
            order = Order(
                id=-self._protect_seq,
                symbol=pos.symbol,
                side=side,
                type=otype,
                quantity=amount,
                ts_created=ts_ns,
                stop_price=price,
                reduce_only=True,
                tag=f"resting_{why.value}",
            )
            work = _Working(order, cid, _S.NEW, amount, price, why.value)
            self._working[order.id] = work
            self._by_client[work.client_id] = order.id
            self._new_orders.append(order)
            self._update_status(work, _S.SUBMITTED)
            legs.append(work)
        first, second = legs
        pair = ExitPair(
            pos.symbol, side, amount, stop_px, tp_px, first.client_id, second.client_id, list_id
        )
        maybe_sent = self._maybe_sent(first.order.id)

        def fetch_both() -> list[VenueOrder]:
            return [client.fetch_order(pos.symbol, w.client_id) for w in legs]

        def attempt() -> list[VenueOrder]:
            nonlocal maybe_sent
            if maybe_sent:
                try:
                    found = fetch_both()
                    logger.info("order list %s already at the venue: adopted", pair.list_id)
                    return found
                except OrderNotFoundError:
                    self._protect_uncertain = None
            maybe_sent = True
            try:
                return client.place_exit_pair(pair)
            except DuplicateOrderError:
                return fetch_both()

        try:
            snapshots = self._call(attempt)
        except OrderRejectedError as exc:
            for work in legs:
                self._update_status(work, _S.REJECTED, str(exc))
            self._refused.add((pos.symbol, OrderType.STOP, stop_px))
            logger.error("resting stop/target of %s refused: %s", pos.symbol, exc)
            self._notify(
                "protective order refused",
                f"{pos.symbol} stop {stop_px} / target {tp_px}: {exc}; the bot watches them",
            )
            return
        except TemporaryError as exc:
            logger.error("order list %s: venue unreachable (%s)", pair.list_id, exc)
            return
        for snap in snapshots:
            self._apply_snapshot(snap)

    def _protect_at_once(self, order: Order, snap: VenueOrder, ts_ns: int) -> None:
        """An entry the venue filled in its answer: its stop and target rest from this very
        bar on (as paper checks them on the entry's bar), before the fill is booked at the
        step's next open (:meth:`_sync_protection` then finds them in place)."""
        held = self.portfolio.positions.get(order.symbol)
        opened = snap.filled - (held.quantity if held is not None else 0.0)
        exits = order.exits
        if exits is None or opened <= _EPS or not snap.average_price > 0:
            return
        trail = exits.trailing_stop
        pos = Position(
            id="",
            symbol=order.symbol,
            direction=1 if order.side is OrderSide.BUY else -1,
            quantity=opened,
            entry_price=snap.average_price,
            entry_ts=ts_ns,
            entry_fee=0.0,
            stop_loss=exits.stop_loss,
            take_profit=exits.take_profit,
            trail_fraction=trail,
            trail_anchor=snap.average_price if trail else None,
            trail_activation=exits.trailing_activation if trail else None,
        )
        self._protect(pos, ts_ns)

    def _keep_resting(
        self,
        pos: Position,
        works: list[_Working],
        otype: OrderType,
        level: float | None,
        reason: ExitReason,
        ts_ns: int,
    ) -> bool:
        """Make one resting order of ``otype`` protect ``pos`` at ``level`` (none when None);
        False when a cancel could not be confirmed (it may have filled: nothing new is placed
        until the venue tells)."""
        symbol = pos.symbol
        current = [w for w in works if w.order.type is otype]
        price = amount = None
        if level is not None:
            price = self._resting_level(pos, otype, level)
            amount = self._resting_amount(symbol, pos.quantity)
        keep: _Working | None = None
        for work in current:
            same = (
                keep is None
                and price is not None
                and amount is not None
                and work.order.stop_price == price
                and abs(work.amount - amount) <= _EPS
                and work.reason == reason.value
            )
            if same:
                keep = work
            elif not self._cancel_resting(work):
                return False
        refused = (symbol, otype, price) in self._refused  # refused once: the bot watches it
        if keep is None and price is not None and amount is not None and amount > 0 and not refused:
            self._place_resting(pos, otype, price, amount, reason, ts_ns)
        return True

    def _place_resting(
        self,
        pos: Position,
        otype: OrderType,
        price: float,
        amount: float,
        reason: ExitReason,
        ts_ns: int,
    ) -> None:
        self._protect_seq += 1
        seq = self._protect_seq
        side = OrderSide.SELL if pos.direction > 0 else OrderSide.BUY
        order = Order(
            id=-seq,
            symbol=pos.symbol,
            side=side,
            type=otype,
            quantity=amount,
            ts_created=ts_ns,
            stop_price=price,
            reduce_only=True,
            tag=f"resting_{reason.value}",
        )
        cid = f"tl{self.key}p{seq}"
        work = _Working(order, cid, _S.NEW, amount, price, reason.value)
        self._working[order.id] = work
        self._by_client[cid] = order.id
        self._new_orders.append(order)
        # reduce-only where the venue has it (perpetuals); Binance spot refuses the parameter
        perp = self._kind(pos.symbol) is MarketKind.PERPETUAL
        request = OrderRequest(cid, pos.symbol, side, otype, amount, None, price, reduce_only=perp)
        self._update_status(work, _S.SUBMITTED)
        try:
            snapshot = self._place(request, order.id)
        except OrderRejectedError as exc:
            self._update_status(work, _S.REJECTED, str(exc))
            self._refused.add((pos.symbol, otype, price))
            logger.error("resting %s of %s refused: %s", reason.value, pos.symbol, exc)
            self._notify(
                "protective order refused",
                f"{pos.symbol} {reason.value} at {price}: {exc}; the bot watches it instead",
            )
            return
        except TemporaryError as exc:
            logger.error(
                "resting order %s: venue unreachable (%s); resolved by client id", cid, exc
            )
            return
        self._apply_snapshot(snapshot)

    def _cancel_resting(self, work: _Working) -> bool:
        """Cancel a resting protective order; True when the venue confirmed it is gone
        unfilled."""
        try:
            snap = self._call(partial(self.client.cancel_order, work.order.symbol, work.client_id))
        except OrderNotFoundError:
            # triggered (and filled) or gone: the venue's view decides
            try:
                snap = self._call(
                    partial(self.client.fetch_order, work.order.symbol, work.client_id)
                )
            except OrderNotFoundError:
                self._update_status(work, _S.EXPIRED, "unknown at the venue when cancelled")
                return True
            except TemporaryError as exc:
                logger.warning("resting order %s not resolved yet: %s", work.client_id, exc)
                return False
        except (TemporaryError, OrderRejectedError) as exc:
            logger.warning("cancel of resting order %s failed: %s", work.client_id, exc)
            return False
        self._apply_snapshot(snap)
        return work.status in (_S.CANCELLED, _S.EXPIRED, _S.REJECTED) and not self._behind(work)

    def _cancel_protection(self, symbol: str | None) -> int:
        """Cancel the resting stops and targets (of ``symbol``, or all); return how many."""
        return sum(self._cancel_resting(w) for w in self._protective(symbol))

    def _await_resting(
        self, symbol: str, direction: int, ts_ns: int, o: float, h: float, low: float
    ) -> None:
        """The bar reached a resting level: the venue has (or is) filling it. Ask for that
        order and its fills now, so this step sees the exit as paper does."""
        hit = False
        for work in self._protective(symbol):
            kind = TriggerKind.TAKE_PROFIT if work.order.type is OrderType.TAKE_PROFIT else _STOP
            level = float(work.order.stop_price or 0.0)
            if trigger_fill(kind, direction, level, o, h, low) is None:
                continue
            hit = True
            try:
                snap = self._call(
                    partial(self.client.fetch_order, work.order.symbol, work.client_id)
                )
            except (OrderNotFoundError, TemporaryError) as exc:
                logger.warning("resting order %s not confirmed: %s", work.client_id, exc)
                continue
            self._apply_snapshot(snap)
        if not hit:
            return
        if any(self._behind(w) for w in self._working.values()):
            try:
                self.recover_missing_fills()
            except TemporaryError as exc:
                logger.warning("fills of %s not recovered yet: %s", symbol, exc)
        self._refresh_pending()

    def _within_caps(self, order: Order, ts_ns: int, notional: float, reason: str) -> bool:
        caps = self.caps
        if reason != "entry":
            return True  # exits are never blocked by a cap
        if caps.per_order is not None and notional > caps.per_order:
            self._refuse(
                order,
                ts_ns,
                "notional_cap",
                f"{notional:.2f} above the per-order cap {caps.per_order}",
            )
            return False
        if caps.per_day is not None:
            day = self._clock() // 86_400_000_000_000
            used = self._day[1] if self._day[0] == day else 0.0
            self._day = (day, used)
            if used + notional > caps.per_day:
                self._refuse(
                    order,
                    ts_ns,
                    "notional_cap",
                    f"{used + notional:.2f} today above the per-day cap {caps.per_day}",
                )
                return False
        return True

    def _refuse(self, order: Order, ts_ns: int, reason: str, detail: str) -> None:
        self.rejections.append(Rejection(ts_ns, order.symbol, reason, detail, "venue"))
        logger.warning("order %s %s refused before sending: %s", order.id, order.symbol, detail)
        if self.order_status is not None:
            self.order_status[order.id] = _S.REJECTED

    def _call(self, fn: Callable[[], T]) -> T:
        """One venue operation: retried on transient failures, counted by the breaker."""
        retry = self._retrier
        return self.breaker.call(lambda: retry(fn))

    # -- statuses --------------------------------------------------------------------------
    def _apply_snapshot(self, snap: VenueOrder) -> None:
        order_id = self._by_client.get(snap.client_order_id)
        if order_id is None:
            final = self._finished.get(snap.client_order_id)
            if final is not None and snap.status in FINAL_STATUSES and snap.status is not final:
                exc = InvalidTransitionError(snap.client_order_id, final, snap.status)
                self.invalid_transitions += 1
                logger.error("%s; kept %s", exc, final)
                self._notify("invalid order transition", f"{exc} (kept {final.value})")
            return
        work = self._working[order_id]
        if snap.filled > work.filled:
            work.filled = snap.filled
        old, new = _RANK[work.status], _RANK[snap.status]
        if new < old or (new == old and new < _FINAL_RANK and snap.filled < work.filled):
            logger.debug(
                "stale snapshot of %s (%s) after %s", work.client_id, snap.status, work.status
            )
            return
        self._update_status(work, snap.status, snap.reason)

    def take_new_orders(self) -> list[Order]:
        """The orders the broker placed on its own since the last call (resting exits, with
        negative ids; exits of levels it watches), for the run's order journal; their
        statuses come through :attr:`order_status` like any order's."""
        out, self._new_orders = self._new_orders, []
        return out

    def apply_venue_order(self, snap: VenueOrder) -> None:
        """Take an order snapshot fetched from the venue (reconciliation)."""
        self._apply_snapshot(snap)
        self._refresh_pending()

    def order_gone(self, client_id: str) -> None:
        """The venue does not know a working order: never received (``rejected``) if it was
        never acknowledged, else gone (``expired``). A transition, not a crash."""
        order_id = self._by_client.get(client_id)
        if order_id is None:
            return
        work = self._working[order_id]
        if work.status in (_S.NEW, _S.SUBMITTED):
            self._update_status(work, _S.REJECTED, "the venue never received it")
        else:
            self._update_status(work, _S.EXPIRED, "the venue no longer knows it")
        self._refresh_pending()

    def _update_status(self, work: _Working, new: OrderStatus, why: str = "") -> None:
        if work.status is new:
            return
        try:
            check_transition(work.client_id, work.status, new)
        except InvalidTransitionError as exc:
            self.invalid_transitions += 1
            logger.error("%s; kept %s", exc, work.status)
            self._notify("invalid order transition", f"{exc} (kept {work.status.value})")
            return
        work.status = new
        if self.order_status is not None:
            self.order_status[work.order.id] = new
        if why and new in (_S.REJECTED, _S.EXPIRED, _S.CANCELLED):
            logger.info("order %s %s: %s", work.client_id, new.value, why)

    def _refresh_pending(self) -> None:
        """``pending`` holds the orders still waiting for fills (working, or final with fills
        reported but not yet received); finished orders leave the working set at once (their
        final status is remembered for late messages)."""
        pending: dict[str, list[Order]] = {}
        done: list[int] = []
        for k, work in self._working.items():
            if self._behind(work) or (work.status not in FINAL_STATUSES and k > 0):
                pending.setdefault(work.order.symbol, []).append(work.order)
            elif work.status in FINAL_STATUSES:
                done.append(k)
        for k in done:
            w = self._working.pop(k)
            self._by_client.pop(w.client_id, None)
            self._finished[w.client_id] = w.status
            if len(self._finished) > _FINISHED_KEPT:
                self._finished.pop(next(iter(self._finished)))
        self.pending = pending

    def _notify(self, title: str, text: str) -> None:
        if self._alert is not None:
            try:
                self._alert(title, text)
            except Exception:
                logger.exception("alert failed")

    # -- venue truth -----------------------------------------------------------------------
    def resolve_unknown(self) -> int:
        """Ask the venue about every order whose outcome is unknown (submitted, no answer);
        ``OrderNotFound`` moves it to ``rejected``. Returns how many were resolved."""
        resolved = 0
        for work in list(self._working.values()):
            if work.status is not _S.SUBMITTED and work.status is not _S.NEW:
                continue
            try:
                snap = self._call(
                    partial(self.client.fetch_order, work.order.symbol, work.client_id)
                )
            except OrderNotFoundError:
                self._update_status(work, _S.REJECTED, "the venue never received it")
                resolved += 1
                continue
            except TemporaryError as exc:
                logger.warning("order %s still unknown: %s", work.client_id, exc)
                continue
            self._apply_snapshot(snap)
            resolved += 1
        self._refresh_pending()
        return resolved

    def working_orders(self) -> list[dict[str, Any]]:
        """The orders not final, for status and reconciliation."""
        return [
            {
                "order_id": w.order.id,
                "client_order_id": w.client_id,
                "symbol": w.order.symbol,
                "side": w.order.side.value,
                "amount": w.amount,
                "filled": w.filled,
                "status": w.status.value,
            }
            for w in self._working.values()
            if w.status not in FINAL_STATUSES
        ]

    def telemetry(self) -> dict[str, Any]:
        """Circuit state (and why it opened), and the venue's rate budget: weight left in the
        sliding minute and its size (the API's ``BrokerTelemetry``; cheap, never raises)."""
        out: dict[str, Any] = {"circuit": self.breaker.state.value}
        if self.breaker.state is not BreakerState.CLOSED and self.breaker.last_error:
            out["circuit_reason"] = self.breaker.last_error
        budget = getattr(self.client, "budget", None)
        left = getattr(budget, "left", None)
        if callable(left):
            out["rate_budget"] = left()
            out["rate_limit"] = budget.weight_per_minute  # type: ignore[union-attr]
        return out

    def slippage_summary(self) -> dict[str, float]:
        """Fills, mean adverse slippage (bps) and total slippage cost (quote)."""
        fills, bps, cost = self._slip_totals
        return {
            "fills": float(fills),
            "mean_bps": bps / fills if fills else 0.0,
            "total_cost": cost,
        }

    # -- persistence -----------------------------------------------------------------------
    def export_state(self) -> dict[str, object]:
        """Counters, working orders, applied trade ids and slippage (JSON-serializable)."""
        return {
            "order_seq": self._order_seq,
            "position_seq": self._position_seq,
            "protect_seq": self._protect_seq,
            "working": [
                {
                    "id": w.order.id,
                    "client_id": w.client_id,
                    "status": w.status.value,
                    "amount": w.amount,
                    "expected": w.expected if w.expected == w.expected else None,
                    "reason": w.reason,
                    "filled": w.filled,
                    "applied": w.applied,
                    "trade_ids": list(w.trade_ids),
                    # resting exits are the broker's own orders (the run stores the step's)
                    **({"order": _order_row(w.order)} if w.order.id < 0 else {}),
                }
                for w in self._working.values()
                if w.status not in FINAL_STATUSES or self._behind(w)
            ],
            "seen_trades": list(self._seen_order),
            "slippage": [asdict(r) for r in self.slippage],
            "slippage_totals": list(self._slip_totals),
            "fees": self.fees.export_state(),
            "day": list(self._day),
            "leftover": {s: r.value for s, r in self._leftover.items()},
        }

    def restore_state(self, state: Mapping[str, object], orders: Mapping[int, Order]) -> None:
        """Restore :meth:`export_state`; ids above the stored counter may have been sent by
        the process that died, so they are looked up at the venue before being placed."""
        self._order_seq = int(state.get("order_seq", 0))  # type: ignore[call-overload]
        self._position_seq = int(state.get("position_seq", 0))  # type: ignore[call-overload]
        self._uncertain_after = self._order_seq
        self._protect_seq = int(state.get("protect_seq", 0))  # type: ignore[call-overload]
        self._protect_uncertain = self._protect_seq
        self._working.clear()
        self._by_client.clear()
        for row in state.get("working", []) or []:  # type: ignore[attr-defined]
            stored = row.get("order")
            order = _order_of(stored) if stored else orders.get(int(row["id"]))
            if order is None:
                continue
            expected = row.get("expected")
            work = _Working(
                order,
                str(row["client_id"]),
                OrderStatus(row["status"]),
                float(row["amount"]),
                float(expected) if expected is not None else math.nan,
                str(row["reason"]),
                float(row["filled"]),
                float(row.get("applied", 0.0)),
                list(row.get("trade_ids", [])),
            )
            self._working[order.id] = work
            self._by_client[work.client_id] = order.id
            if self.post_only_entries and work.reason == "entry" and order.type is OrderType.LIMIT:
                self._post_only_opens[order.id] = [order.ts_created, -1]
        seen = [str(t) for t in state.get("seen_trades", []) or []]  # type: ignore[attr-defined]
        self._seen_order = deque(seen[-_TRADES_KEPT:])
        self._seen_trades = set(self._seen_order)
        records = [SlippageRecord(**r) for r in state.get("slippage", []) or []]  # type: ignore[attr-defined]
        self.slippage = deque(records, maxlen=_SLIPPAGE_KEPT)
        totals = state.get("slippage_totals")
        if isinstance(totals, list) and len(totals) == 3:
            self._slip_totals = [int(totals[0]), float(totals[1]), float(totals[2])]
        else:
            valid = [r for r in records if r.expected == r.expected and r.expected > 0]
            self._slip_totals = [len(valid), sum(r.bps for r in valid), sum(r.cost for r in valid)]
        self.fees.restore_state(state.get("fees", {}) or {})  # type: ignore[arg-type]
        day = state.get("day") or [0, 0.0]
        self._day = (int(day[0]), float(day[1]))  # type: ignore[index]
        leftover = state.get("leftover") or {}
        self._leftover = {str(s): ExitReason(r) for s, r in leftover.items()}  # type: ignore[attr-defined]
        self.watched = {
            s
            for s, p in self.portfolio.positions.items()
            if p.stop_loss is not None or p.take_profit is not None or p.trail_fraction
        }
        self._refresh_pending()


#: trade ids remembered to drop repeated fills; slippage records kept; finished orders kept
_TRADES_KEPT = 5_000
_SLIPPAGE_KEPT = 1_000
_FINISHED_KEPT = 10_000
_FINAL_RANK = 4
_RANK = {
    _S.NEW: 0,
    _S.SUBMITTED: 1,
    _S.ACCEPTED: 2,
    _S.PARTIALLY_FILLED: 3,
    _S.FILLED: _FINAL_RANK,
    _S.CANCELLED: _FINAL_RANK,
    _S.REJECTED: _FINAL_RANK,
    _S.EXPIRED: _FINAL_RANK,
}


def _order_row(order: Order) -> dict[str, Any]:
    """A resting exit order as stored with the broker's state."""
    return {
        "id": order.id,
        "symbol": order.symbol,
        "side": order.side.value,
        "type": order.type.value,
        "quantity": order.quantity,
        "ts_created": order.ts_created,
        "stop_price": order.stop_price,
        "tag": order.tag,
    }


def _order_of(row: Mapping[str, Any]) -> Order:
    return Order(
        id=int(row["id"]),
        symbol=str(row["symbol"]),
        side=OrderSide(row["side"]),
        type=OrderType(row["type"]),
        quantity=float(row["quantity"]),
        ts_created=int(row["ts_created"]),
        stop_price=row.get("stop_price"),
        reduce_only=True,
        tag=str(row.get("tag") or ""),
    )


def _exit_hit(pos: Position, h: float, low: float) -> ExitReason | None:
    long = pos.direction > 0
    stop, stop_reason = pos.active_stop()
    if stop is not None and (low <= stop if long else h >= stop):
        return stop_reason
    tp = pos.take_profit
    if tp is not None and (h >= tp if long else low <= tp):
        return ExitReason.TAKE_PROFIT
    return None
