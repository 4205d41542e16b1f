"""The simulated broker: one fill and P&L path for backtest and paper trading.

Orders (built from signals, or sized by the risk engine) fill at the next bar's open (or the
signal bar's close), with fees and adverse slippage. Stop-loss, take-profit and trailing stops
are checked against every bar's high and low; a gap through a level fills at the open. When a
stop and a take-profit are both inside one bar, the bar is replayed on the next lower timeframe
(lazily, only for that bar) until one is hit first; if still ambiguous at the finest data the
stop is assumed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from tradeloop.core.instrument import Instrument
from tradeloop.core.money import affordable_quantity, fee_for, pnl_for, quantity_for_budget
from tradeloop.core.order_status import OrderStatus
from tradeloop.core.orders import Fill, Order, OrderSide, OrderType, order_from_signal
from tradeloop.core.portfolio import Portfolio
from tradeloop.core.position import ExitReason, Position, Trade
from tradeloop.core.rejection import Rejection
from tradeloop.core.signal import Signal
from tradeloop.execution.broker import IntrabarSource
from tradeloop.execution.config import FillPrice, SimulatedBrokerConfig
from tradeloop.execution.exit_scan import (
    Windows,
    check_exit_levels,
    next_exit_bar,
    next_exit_bar_of,
    range_exit_bar,
    span_clear,
)
from tradeloop.execution.fees import FeeModel
from tradeloop.execution.fill_rules import TriggerKind, trigger_fill

# ``Rejection`` lives in core (risk and execution share it); re-exported here for callers
# that imported it from this module.
__all__ = ["IntrabarStats", "Rejection", "SimulatedBroker"]

logger = logging.getLogger(__name__)

#: the exit scan's columns for :attr:`SimulatedBroker.fill_scan`: (opens or None, highs,
#: lows) as memoryviews, the same as numpy arrays, and the window extremes or None
FillScan = tuple[
    tuple[Sequence[float] | None, Sequence[float], Sequence[float]],
    tuple[np.ndarray | None, np.ndarray, np.ndarray],
    Windows | None,
]
_INF = float("inf")
_STOP = TriggerKind.STOP
_TAKE = TriggerKind.TAKE_PROFIT

# Enum members read on every order, as module constants: on Python 3.11 reading a member
# through its class costs about 130 ns, a module global about 12 ns.
_MARKET = OrderType.MARKET
_BUY = OrderSide.BUY
_SELL = OrderSide.SELL
_SIGNAL = ExitReason.SIGNAL

#: an exit reason's string for its fill (a dict read; ``.value`` is a descriptor call)
_REASON_TEXT: dict[ExitReason, str] = {r: r.value for r in ExitReason}


@dataclass(slots=True)
class IntrabarStats:
    """How bars with both stop-loss and take-profit in range were resolved."""

    drilled: int = 0
    take_profit_first: int = 0
    stop_first: int = 0
    assumed_stop: int = 0

    def as_dict(self) -> dict[str, int]:
        """Return the counts as a plain dict."""
        return {
            "drilled": self.drilled,
            "take_profit_first": self.take_profit_first,
            "stop_first": self.stop_first,
            "assumed_stop": self.assumed_stop,
        }


@dataclass(slots=True)
class _Ledger:
    """Cash and quantities after each fill, keyed by engine step (for bulk equity marking)."""

    steps: list[int] = field(default_factory=list)
    cash: list[float] = field(default_factory=list)
    qty: dict[str, tuple[list[int], list[float]]] = field(default_factory=dict)


class SimulatedBroker:
    """Fills orders against bars. The kernel calls, per symbol bar: :meth:`on_open`,
    :meth:`on_bar_range`, then the orders the risk engine made of the strategy's signals go to
    :meth:`submit_order` (:meth:`submit` takes a signal directly)."""

    def __init__(
        self,
        portfolio: Portfolio,
        instruments: dict[str, Instrument],
        timeframe: str,
        config: SimulatedBrokerConfig | None = None,
        intrabar: IntrabarSource | None = None,
        fees: FeeModel | None = None,
    ) -> None:
        self.portfolio = portfolio
        self.instruments = instruments
        #: the fee model every mode charges through (default: the instruments' own rates)
        self.fees = fees if fees is not None else FeeModel.from_instruments(instruments)
        #: taker rate per symbol of a fee model without tiers (a rate that never moves),
        #: looked up once per symbol; a tiered schedule is asked at every fill
        self._taker: dict[str, float] = {}
        self.timeframe = timeframe
        self.config = config or SimulatedBrokerConfig()
        self.intrabar = intrabar
        self.step = -1
        self.pending: dict[str, list[Order]] = {}
        self.rejections: list[Rejection] = []
        self.intrabar_stats = IntrabarStats()
        self.ledger = _Ledger()
        self._fills: list[Fill] = []
        self._order_seq = 0
        #: symbols whose open position has a stop, target or trailing stop to check each bar
        self.watched: set[str] = set()
        self._position_seq = 0
        #: exit reason of broker-made closing orders (flatten), by order id
        self._exit_reasons: dict[int, ExitReason] = {}
        self._slip = self.config.slippage_bps / 10_000.0
        self._next_open = self.config.fill_price is FillPrice.NEXT_OPEN
        self._buffer = self.config.cash_buffer_pct
        #: when not None (paper/live), ``filled`` or ``rejected`` by order id as orders execute
        self.order_status: dict[int, OrderStatus] | None = None
        #: post-only entries working during the current bar (from its open to its range)
        self.resting: dict[str, list[Order]] = {}
        #: a backtest's exit-scan columns (set once), and the end of the bars to scan, set
        #: around the fills at a bar's open whose range the backtest leaves to the exit scan
        #: (-1: no scan): a taker entry with exits is then scanned at its fill, from the
        #: bar's step to ``fill_scan_stop`` (as :meth:`skip_to_exit` would scan it right
        #: after), and its position built once with the trailing anchor already moved; the
        #: bar found goes to :attr:`fill_scan_hit`
        self.fill_scan: FillScan | None = None
        self.fill_scan_stop = -1
        #: the highest high and lowest low of the bars to scan at the fill, when the backtest
        #: has them (a span between two bars the strategy acts on): an entry whose levels
        #: they cannot reach needs no scan (:func:`span_clear`); None: scan the bars
        self.fill_span: tuple[float, float] | None = None
        #: the bar the last fill's scan found (the scan's end when none; -1: none scanned)
        self.fill_scan_hit = -1
        #: the bars the exit scans read one by one for want of window extremes (the backtest
        #: builds them once this is worth it)
        self.windowless_bars = 0

    # -- public API ------------------------------------------------------------------------
    def fills(self) -> list[Fill]:
        """Return every fill so far."""
        return self._fills

    def restore_fills(self, fills: list[Fill]) -> None:
        """Take back the fills of a restored run (paper/live restart), before any new one."""
        self._fills.extend(fills)

    def next_order_id(self) -> int:
        """Return a new order id (ids count up from 1)."""
        self._order_seq += 1
        return self._order_seq

    def submit(self, signal: Signal, ts_ns: int, price: float) -> None:
        """Turn ``signal`` into an order (:func:`order_from_signal`, its distances placed around
        ``price``) and :meth:`submit_order` it."""
        order = order_from_signal(signal, ts_ns, self.portfolio, reference=price)
        self.submit_order(order, ts_ns, price)

    def submit_order(self, order: Order, ts_ns: int, price: float) -> None:
        """Queue ``order`` for the next open, or fill it now at ``price`` (close mode).

        An order with ``id`` 0 is numbered here. Only market orders are filled; other types
        are rejected (``unsupported_order_type``).
        """
        symbol = order.symbol
        if symbol not in self.instruments:
            self._reject(ts_ns, symbol, "unknown_symbol", f"no data for {symbol}")
            return
        if order.type is not _MARKET:
            self._reject(ts_ns, symbol, "unsupported_order_type", f"{order.type.value} order")
            return
        if not order.reduce_only and order.side is _SELL and not self.config.allow_short:
            self._reject(ts_ns, symbol, "short_disabled")
            return
        if order.id <= 0:
            order = replace(order, id=self.next_order_id())
        if self._buffer and order.side is _BUY and not order.reduce_only:
            order = self._sized(order, price)
        if (
            self.config.post_only_entries
            and not order.reduce_only
            and price == price
            and symbol not in self.portfolio.positions
        ):
            # a post-only limit at the touch: it rests from the next bar's open
            order = replace(order, type=OrderType.LIMIT, limit_price=price)
            self.pending.setdefault(symbol, []).append(order)
            return
        if self._next_open or price != price:  # no price at this step: next open
            self.pending.setdefault(symbol, []).append(order)
        else:
            self._execute(order, ts_ns, price)

    def _sized(self, order: Order, price: float) -> Order:
        """A buy entry sized at ``price`` (the last price) to leave the cash buffer unspent
        (the venue broker's rule, :func:`~tradeloop.core.money.affordable_quantity`)."""
        if order.equity_fraction is not None or price != price:
            return order  # sized at the fill (with the buffer) / no price yet
        symbol = order.symbol
        held = self.portfolio.positions.get(symbol)
        if held is not None and held.direction < 0:
            return order  # a reversal: the cover is paid by the short's proceeds
        qty = affordable_quantity(
            order.quantity, price, self.portfolio.balance, self.fees.taker(symbol), self._buffer
        )
        return order if qty == order.quantity else replace(order, quantity=qty)

    def flatten(self, ts_ns: int, prices: Mapping[str, float] | None = None) -> int:
        """Cancel every waiting order and close every open position (exit reason ``risk``).

        The closes are market orders under the normal fill rule: at the next open, or at
        ``prices[symbol]`` in close mode. Returns the number of positions being closed.
        """
        for symbol, queue in self.pending.items():
            for order in queue:
                if not order.reduce_only:
                    self._reject(ts_ns, symbol, "cancelled", "flatten: entry order cancelled")
                if self.order_status is not None:
                    self.order_status[order.id] = OrderStatus.CANCELLED
        self.pending.clear()
        count = 0
        for symbol, pos in list(self.portfolio.positions.items()):
            order = Order(
                id=self.next_order_id(),
                symbol=symbol,
                side=OrderSide.BUY if pos.direction < 0 else OrderSide.SELL,
                type=OrderType.MARKET,
                quantity=pos.quantity,
                ts_created=ts_ns,
                reduce_only=True,
                tag="flatten",
            )
            self._exit_reasons[order.id] = ExitReason.RISK
            price = prices.get(symbol, float("nan")) if prices is not None else float("nan")
            self.submit_order(order, ts_ns, price)
            count += 1
        return count

    def on_open(self, symbol: str, ts_ns: int, open_price: float) -> None:
        """Fill orders waiting for this bar's open."""
        queue = self.pending.pop(symbol, None)
        if not queue:
            return
        if self.order_status is None and len(queue) == 1 and queue[0].type is _MARKET:
            self._execute_order(queue[0], ts_ns, open_price)  # the common case: one market order
            return
        for order in queue:
            if order.type is OrderType.LIMIT:
                self._rest_post_only(order, ts_ns, open_price)
            else:
                self._execute(order, ts_ns, open_price)

    def on_bar_range(
        self, symbol: str, ts_ns: int, o: float, h: float, low: float, c: float
    ) -> None:
        """Fill or expire the post-only entries resting in this bar, check stops/targets of the
        open position against it, then mark it at close."""
        if self.resting and symbol in self.resting:
            self._match_resting(symbol, ts_ns, h, low, c)
            return
        pos = self.portfolio.positions.get(symbol)
        if pos is None:
            return
        if symbol in self.watched:
            self._check_exits(pos, ts_ns, o, h, low)
        self.portfolio.marks[symbol] = c

    def skip_to_exit(
        self,
        symbol: str,
        lists: tuple[Sequence[float] | None, Sequence[float], Sequence[float]],
        arrays: tuple[np.ndarray | None, np.ndarray, np.ndarray],
        start: int,
        stop: int,
        windows: Windows | None = None,
    ) -> int:
        """Return the first bar in ``[start, stop)`` where the open position in ``symbol`` may
        exit (``stop`` when none), with its trailing anchor moved over the bars before it.

        For a backtest's market phase between strategy bars: the bars skipped are exactly the
        bars where :meth:`on_bar_range` would only have moved the anchor. ``lists`` and
        ``arrays`` are the opens, highs and lows (as lists and as numpy arrays); the opens
        may be None when every open lies inside its bar's range, and then ``windows`` may give
        the bars' window extremes (see :func:`~tradeloop.execution.exit_scan.next_exit_bar`).
        """
        pos = self.portfolio.positions[symbol]
        if windows is None:
            self.windowless_bars += stop - start
        k, anchor = next_exit_bar(pos, lists[0], lists[1], lists[2], arrays, start, stop, windows)
        # (an entry's first stretch is scanned at its fill instead: see fill_scan)
        if anchor is not None and anchor != pos.trail_anchor:
            # one new Position per skipped stretch (not per new high)
            self.portfolio.positions[symbol] = _with_anchor(pos, anchor)
        return k

    def clears_span(self, symbol: str, high: float, low: float) -> bool:
        """Whether the open position in ``symbol`` stays clear of its levels over a span of
        bars whose highest high is ``high`` and lowest low is ``low`` (opens inside their
        ranges; :func:`~tradeloop.execution.exit_scan.span_clear`); if so its trailing anchor
        is moved to the span's best price, as :meth:`skip_to_exit` over those bars would."""
        pos = self.portfolio.positions[symbol]
        clear, anchor = span_clear(
            pos.direction, pos.entry_price, pos.stop_loss, pos.take_profit, pos.trail_fraction,
            pos.trail_activation, pos.trail_anchor, high, low,
        )  # fmt: skip
        if clear and anchor is not None and anchor != pos.trail_anchor:
            self.portfolio.positions[symbol] = _with_anchor(pos, anchor)
        return clear

    def cancel_pending(self) -> int:
        """Drop orders that never reached a bar (e.g. a signal on the last bar)."""
        count = sum(len(q) for q in self.pending.values())
        if self.order_status is not None:
            for queue in self.pending.values():
                for order in queue:
                    self.order_status[order.id] = OrderStatus.CANCELLED
        self.pending.clear()
        return count

    def close_all(self, ts_ns: int, prices: dict[str, float]) -> None:
        """Close every open position at ``prices`` with exit reason ``end``.

        A market exit like any other: the slippage goes against the position and the taker
        fee is paid.
        """
        for symbol in list(self.portfolio.positions):
            pos = self.portfolio.positions[symbol]
            price = self._slipped(prices[symbol], -pos.direction)
            self._close(pos, ts_ns, price, ExitReason.END, maker=False)

    def open_trades(self) -> list[Trade]:
        """Return the open positions as trades without an exit."""
        out = []
        for pos in self.portfolio.positions.values():
            out.append(
                Trade(
                    pos.id,
                    pos.symbol,
                    pos.direction,
                    pos.quantity,
                    pos.entry_ts,
                    pos.entry_price,
                    None,
                    None,
                    pos.entry_fee,
                    0.0,
                    pnl_for(
                        pos.direction,
                        pos.quantity,
                        pos.entry_price,
                        self.portfolio.marks.get(pos.symbol, pos.entry_price),
                    )
                    - pos.entry_fee,
                    None,
                    pos.tag,
                    pos.stop_loss,
                    pos.take_profit,
                )
            )
        return out

    def export_state(self) -> dict[str, object]:
        """Return the counters and waiting-order ids a restart needs (JSON-serializable).

        The waiting orders themselves are stored as orders; :meth:`restore_state` takes them
        back with this dict.
        """
        return {
            "order_seq": self._order_seq,
            "position_seq": self._position_seq,
            "exit_reasons": {str(k): v.value for k, v in self._exit_reasons.items()},
            "pending": [o.id for queue in self.pending.values() for o in queue],
        }

    def restore_state(self, state: Mapping[str, object], orders: Mapping[int, Order]) -> None:
        """Restore what :meth:`export_state` returned; ``orders`` maps id to stored order.

        Stops are watched again for every open position of the portfolio that has one.
        """
        self._order_seq = int(state.get("order_seq", 0))  # type: ignore[call-overload]
        self._position_seq = int(state.get("position_seq", 0))  # type: ignore[call-overload]
        reasons = state.get("exit_reasons") or {}
        assert isinstance(reasons, Mapping)
        self._exit_reasons = {int(k): ExitReason(v) for k, v in reasons.items()}
        self.pending.clear()
        pending = state.get("pending") or []
        assert isinstance(pending, list)
        for order_id in pending:
            order = orders[int(order_id)]
            self.pending.setdefault(order.symbol, []).append(order)
        self.watched.clear()
        self.watched.update(
            s
            for s, p in self.portfolio.positions.items()
            if p.stop_loss is not None or p.take_profit is not None or p.trail_fraction
        )

    # -- internals -------------------------------------------------------------------------
    def _reject(self, ts_ns: int, symbol: str, reason: str, detail: str = "") -> None:
        self.rejections.append(Rejection(ts_ns, symbol, reason, detail))
        logger.debug("order rejected: %s %s %s", symbol, reason, detail)

    def _execute(self, order: Order, ts_ns: int, price: float) -> None:
        if self.order_status is None:
            self._execute_order(order, ts_ns, price)
            return
        rejected = len(self.rejections)
        self._execute_order(order, ts_ns, price)
        self.order_status[order.id] = (
            OrderStatus.REJECTED if len(self.rejections) > rejected else OrderStatus.FILLED
        )

    def _execute_order(self, order: Order, ts_ns: int, price: float) -> None:
        symbol = order.symbol
        pos = self.portfolio.positions.get(symbol)
        if order.reduce_only:
            if pos is None:
                self._reject(ts_ns, symbol, "no_position")
                return
            reason = self._exit_reasons.pop(order.id, _SIGNAL)
            self._close(pos, ts_ns, self._slipped(price, -pos.direction), reason, maker=False)
            return
        direction = 1 if order.side is _BUY else -1
        if pos is not None:
            if pos.direction == direction:
                self._reject(ts_ns, symbol, "already_open", "position in this direction is open")
                return
            self._close(pos, ts_ns, self._slipped(price, -pos.direction), _SIGNAL, maker=False)
        self._open(order, direction, ts_ns, self._slipped(price, direction))
        if symbol in self.portfolio.positions:
            self.portfolio.marks[symbol] = price  # mark at the market, not the slipped fill

    def _rest_post_only(self, order: Order, ts_ns: int, open_price: float) -> None:
        """A post-only limit reaches the market at the bar's open: one the open already
        reaches (a buy limit at or above it, a sell at or below) would take liquidity and is
        rejected (``post_only_would_take``, as Binance refuses a GTX/LIMIT_MAKER order);
        the others rest through the bar."""
        limit = float(order.limit_price or 0.0)
        if (open_price <= limit) if order.side is OrderSide.BUY else (open_price >= limit):
            self._reject(ts_ns, order.symbol, "post_only_would_take", f"open {open_price}")
            if self.order_status is not None:
                self.order_status[order.id] = OrderStatus.REJECTED
            return
        self.resting.setdefault(order.symbol, []).append(order)

    def _match_resting(self, symbol: str, ts_ns: int, h: float, low: float, c: float) -> None:
        """A post-only limit fills at its limit with the maker fee when the bar trades through
        it (low < limit for a buy, high > limit for a sell); otherwise it expires. The bar's
        stops are not checked for a position opened inside it (its fill time within the bar
        is unknown); it is marked at the close."""
        for order in self.resting.pop(symbol):
            limit = float(order.limit_price or 0.0)
            direction = 1 if order.side is OrderSide.BUY else -1
            crossed = low < limit if direction > 0 else h > limit
            filled = False
            if crossed and symbol not in self.portfolio.positions:
                rejected = len(self.rejections)
                self._open(order, direction, ts_ns, limit, maker=True)
                filled = len(self.rejections) == rejected
            elif not crossed:
                self._reject(ts_ns, symbol, "post_only_expired", f"limit {limit} not traded")
            if self.order_status is not None:
                self.order_status[order.id] = (
                    OrderStatus.FILLED
                    if filled
                    else OrderStatus.EXPIRED
                    if not crossed
                    else OrderStatus.REJECTED
                )
        if symbol in self.portfolio.positions:
            self.portfolio.marks[symbol] = c

    def _taker_rate(self, symbol: str) -> float:
        """The taker rate of a fill in ``symbol`` now (see :attr:`_taker`)."""
        fees = self.fees
        if fees.schedule is not None:
            return fees.taker(symbol)
        rate = self._taker[symbol] = fees.taker(symbol)
        return rate

    def _slipped(self, price: float, direction: int) -> float:
        return price * (1.0 + direction * self._slip) if self._slip else price

    def _open(
        self, order: Order, direction: int, ts_ns: int, price: float, *, maker: bool = False
    ) -> None:
        instrument = self.instruments[order.symbol]
        portfolio = self.portfolio
        exits = order.exits
        if exits is None:
            sl = tp = trail = act = None
        else:
            sl, tp, trail, act = exits  # (stop_loss, take_profit, trailing, activation)
            # a NaN, infinite or non-positive level would never trigger: refuse the entry
            # (check_exit_levels' test inlined for the usual valid levels, one per entry)
            if not (
                (sl is None or 0.0 < sl < _INF)
                and (tp is None or 0.0 < tp < _INF)
                and (trail is None or 0.0 < trail < 1.0)
                and act is None
            ):
                problem = check_exit_levels(sl, tp, trail, act)
                if problem is not None:
                    self._reject(ts_ns, order.symbol, "invalid_exits", problem)
                    return
        if maker:
            fee_rate = self.fees.maker(order.symbol)
        else:
            rate = self._taker.get(order.symbol)
            fee_rate = rate if rate is not None else self._taker_rate(order.symbol)
        if order.equity_fraction is not None:
            budget = order.equity_fraction * portfolio.equity
            if direction > 0:
                budget = min(budget, portfolio.balance * (1.0 - self._buffer))
            quantity = quantity_for_budget(budget, price, fee_rate) if budget > 0 else 0.0
        else:
            quantity = order.quantity
            if direction > 0 and quantity * price * (1.0 + fee_rate) > portfolio.balance:
                self._reject(
                    ts_ns,
                    order.symbol,
                    "insufficient_cash",
                    f"{quantity} at {price} needs more than {portfolio.balance:.2f}",
                )
                return
        quantity = instrument.round_quantity(quantity)
        if not quantity > 0:
            self._reject(ts_ns, order.symbol, "zero_quantity", "size rounds to zero lots")
            return
        if quantity * price < instrument.min_notional:
            self._reject(
                ts_ns,
                order.symbol,
                "min_notional",
                f"{quantity * price:.8g} < {instrument.min_notional}",
            )
            return
        fee = fee_for(quantity, price, fee_rate)
        if self.fees.schedule is not None:
            self.fees.record_volume(quantity * price, ts_ns)
        portfolio.balance -= direction * quantity * price + fee
        self._position_seq += 1
        pid = order.position_id or f"{order.symbol}-{self._position_seq}"
        anchor = None
        if exits is not None:
            if trail:
                anchor = price
            else:
                act = None
            if sl is not None or tp is not None or trail:
                self.watched.add(order.symbol)
                stop = self.fill_scan_stop
                span = self.fill_span
                if stop >= 0 and not maker and span is not None:
                    # the span's extremes reach no level: no exit before ``stop`` (the usual
                    # case), the anchor moved to the span's best price. span_clear's test,
                    # inlined with the anchor at the fill price (one per entry of a backtest;
                    # a test holds them equal)
                    high, low = span
                    if direction > 0:
                        if tp is None or high < tp:
                            level = -_INF if sl is None else sl
                            if trail:
                                best = high if high > price else price
                                if not act or best >= price * (1.0 + act):
                                    level_t = best * (1.0 - trail)
                                    if level_t > level:
                                        level = level_t
                                if low > level:
                                    self.fill_scan_hit, stop, anchor = stop, -1, best
                            elif low > level:
                                self.fill_scan_hit, stop = stop, -1
                    elif tp is None or low > tp:
                        level = _INF if sl is None else sl
                        if trail:
                            best = low if low < price else price
                            if not act or best <= price * (1.0 - act):
                                level_t = best * (1.0 + trail)
                                if level_t < level:
                                    level = level_t
                            if high < level:
                                self.fill_scan_hit, stop, anchor = stop, -1, best
                        elif high < level:
                            self.fill_scan_hit, stop = stop, -1
                if stop >= 0 and not maker and self.fill_scan is not None:
                    # the exit scan from the fill's bar, so the position is built once (the
                    # levels were checked above, before the cash moved)
                    lists, arrays, windows = self.fill_scan
                    if lists[0] is None and windows is not None:  # the range only
                        self.fill_scan_hit, moved = range_exit_bar(
                            direction, price, sl, tp, trail, act, anchor, lists[1], lists[2],
                            arrays, windows, self.step, stop,
                        )  # fmt: skip
                    else:
                        if windows is None:
                            self.windowless_bars += stop - self.step
                        self.fill_scan_hit, moved = next_exit_bar_of(
                            (direction, price, sl, tp, trail, act, anchor),
                            lists[0],
                            lists[1],
                            lists[2],
                            arrays,
                            self.step,
                            stop,
                            windows,
                            (pid, order.symbol),
                            True,
                        )
                    if moved is not None:
                        anchor = moved
        # positional: this runs for every entry of a backtest, and keywords cost more
        portfolio.positions[order.symbol] = Position(
            pid,
            order.symbol,
            direction,
            quantity,
            price,
            ts_ns,
            fee,
            sl,
            tp,
            trail,
            anchor,
            order.tag,
            act,
        )
        portfolio.marks[order.symbol] = price
        self._fills.append(
            Fill(
                order.id,
                order.symbol,
                _BUY if direction > 0 else _SELL,
                quantity,
                price,
                fee,
                ts_ns,
                "entry",
            )
        )
        self._record(order.symbol, direction * quantity)

    def _close(
        self, pos: Position, ts_ns: int, price: float, reason: ExitReason, *, maker: bool
    ) -> None:
        fees = self.fees
        if maker:
            rate = fees.maker(pos.symbol)
        else:
            taker = self._taker.get(pos.symbol)
            rate = taker if taker is not None else self._taker_rate(pos.symbol)
        fee = fee_for(pos.quantity, price, rate)
        if fees.schedule is not None:  # a tiered schedule: the 30-day volume moves the tier
            fees.record_volume(pos.quantity * price, ts_ns)
        portfolio = self.portfolio
        portfolio.balance += pos.direction * pos.quantity * price - fee
        pnl = pnl_for(pos.direction, pos.quantity, pos.entry_price, price) - pos.entry_fee - fee
        portfolio.trades.append(
            Trade(
                pos.id,
                pos.symbol,
                pos.direction,
                pos.quantity,
                pos.entry_ts,
                pos.entry_price,
                ts_ns,
                price,
                pos.entry_fee,
                fee,
                pnl,
                reason,
                pos.tag,
                pos.stop_loss,
                pos.take_profit,
            )
        )
        del portfolio.positions[pos.symbol]
        self.watched.discard(pos.symbol)
        portfolio.marks[pos.symbol] = price
        self._fills.append(
            Fill(
                0,
                pos.symbol,
                _SELL if pos.direction > 0 else _BUY,
                pos.quantity,
                price,
                fee,
                ts_ns,
                _REASON_TEXT[reason],
            )
        )
        self._record(pos.symbol, 0.0)

    def _record(self, symbol: str, signed_qty: float) -> None:
        """Cash and ``symbol``'s signed quantity after a fill, at the current step (a second
        fill at one step overwrites the first's entry)."""
        ledger, step = self.ledger, self.step
        steps = ledger.steps
        if steps and steps[-1] == step:
            ledger.cash[-1] = self.portfolio.balance
        else:
            steps.append(step)
            ledger.cash.append(self.portfolio.balance)
        held = ledger.qty.get(symbol)
        if held is None:
            ledger.qty[symbol] = ([step], [signed_qty])
            return
        q_steps, qty = held
        if q_steps[-1] == step:
            qty[-1] = signed_qty
        else:
            q_steps.append(step)
            qty.append(signed_qty)

    # -- stops -------------------------------------------------------------------------------
    def _check_exits(self, pos: Position, ts_ns: int, o: float, h: float, low: float) -> None:
        """The position's stop, trailing stop and target against one bar, by the one fill
        rule of protective exits (:func:`~tradeloop.execution.fill_rules.trigger_fill`, the
        rule the local venues fill resting stop orders with); a stop and a target both inside
        the bar are resolved on finer data (:meth:`_drill`)."""
        long = pos.direction > 0
        stop, stop_reason = pos.active_stop()
        tp = pos.take_profit
        sf = None if stop is None else trigger_fill(_STOP, pos.direction, stop, o, h, low)
        tf = None if tp is None else trigger_fill(_TAKE, pos.direction, tp, o, h, low)
        # a gap through a level fills at the open (the stop first)
        if sf is not None and sf.at_open:
            self._close(
                pos, ts_ns, self._slipped(sf.price, -pos.direction), stop_reason, maker=False
            )
            return
        if tf is not None and tf.at_open:
            self._close(pos, ts_ns, tf.price, ExitReason.TAKE_PROFIT, maker=tf.maker)
            return
        if sf is not None and tf is not None:
            assert stop is not None
            assert tp is not None
            first = self._drill(pos.symbol, self.timeframe, ts_ns, long, stop, tp, top=True)
            if first == "tp":
                sf = None
        if sf is not None:
            self._close(
                pos, ts_ns, self._slipped(sf.price, -pos.direction), stop_reason, maker=False
            )
            return
        if tf is not None:
            self._close(pos, ts_ns, tf.price, ExitReason.TAKE_PROFIT, maker=tf.maker)
            return
        if pos.trail_fraction and pos.trail_anchor is not None:
            anchor = max(pos.trail_anchor, h) if long else min(pos.trail_anchor, low)
            if anchor != pos.trail_anchor:
                self.portfolio.positions[pos.symbol] = _with_anchor(pos, anchor)

    def _drill(
        self,
        symbol: str,
        timeframe: str,
        ts_open: int,
        long: bool,
        stop: float,
        tp: float,
        *,
        top: bool = False,
    ) -> Literal["stop", "tp"]:
        if top:
            self.intrabar_stats.drilled += 1
        sub = self.intrabar.sub_bars(symbol, timeframe, ts_open) if self.intrabar else None
        if sub is not None:
            for k in range(len(sub)):
                h = float(sub.high[k])
                low = float(sub.low[k])
                stop_hit = low <= stop if long else h >= stop
                tp_hit = h >= tp if long else low <= tp
                if stop_hit and tp_hit:
                    return self._drill(symbol, sub.timeframe, int(sub.ts[k]), long, stop, tp)
                if stop_hit:
                    self.intrabar_stats.stop_first += 1
                    return "stop"
                if tp_hit:
                    self.intrabar_stats.take_profit_first += 1
                    return "tp"
        self.intrabar_stats.assumed_stop += 1
        return "stop"


def _with_anchor(pos: Position, anchor: float) -> Position:
    return Position(
        pos.id,
        pos.symbol,
        pos.direction,
        pos.quantity,
        pos.entry_price,
        pos.entry_ts,
        pos.entry_fee,
        pos.stop_loss,
        pos.take_profit,
        pos.trail_fraction,
        anchor,
        pos.tag,
        pos.trail_activation,
    )
