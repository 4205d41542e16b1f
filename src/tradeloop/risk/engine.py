"""RiskEngine: the pre-trade gate and portfolio guardian, the same in backtest, paper and live.

``check(intent, portfolio, market) -> Order | Rejection`` turns a strategy's
:class:`~tradeloop.core.signal.Signal` into a sized market :class:`~tradeloop.core.orders.Order`
(with its stops attached) or refuses it with a machine-readable reason. The order of the gate:

1. a close always passes (it reduces exposure); in REDUCING or HALTED an opening intent is
   refused, and a reversal is cut down to the close of the open position;
2. one position per symbol (``already_open``), a known symbol with a price, positive equity,
   ``max_open_positions``;
3. sizing (:mod:`tradeloop.risk.sizing`), then the caps in turn: ``max_position_pct``,
   ``max_risk_per_trade`` (with a stop), gross leverage (lowered by the regime), cash for a
   long; then the intent's confidence in [0, 1] scales what the caps left (``use_confidence``),
   so a confident signal gets a larger position than a doubtful one even when a cap binds, and
   never more than the caps allow; the regime's size multiplier (:meth:`RiskEngine.set_regime`,
   fed by a regime model's transition manager) scales it the same way;
4. lot size and minimum notional of the instrument;
5. correlation with every open position, then the post-trade portfolio VaR.

``on_bar(ts, closes, portfolio)`` runs the kill switches and the black-swan protocol (only
when the profile has them) and answers whether everything must be flattened. The permissive
profile is a pass-through: the order is exactly what the broker would have built from the
signal, so plain backtests stay bit-identical to runs without a risk engine (a regime size
multiplier below 1 scales the signal's size there too, and 0 refuses the entry).
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import replace
from itertools import count
from pathlib import Path
from typing import Any

import numpy as np

from tradeloop.core.instrument import Instrument
from tradeloop.core.orders import Bracket, Order, OrderSide, OrderType, order_from_signal
from tradeloop.core.portfolio import Portfolio
from tradeloop.core.rejection import Rejection
from tradeloop.core.signal import Signal, SignalAction, SizeMode
from tradeloop.core.time import to_iso
from tradeloop.risk.config import RiskConfig, duration_ns
from tradeloop.risk.correlation import correlation_clusters, correlation_matrix, correlations_with
from tradeloop.risk.killswitch import BlackSwanDetector, KillSwitch, RiskEvent, TradingState
from tradeloop.risk.limits import (
    LeverageController,
    RejectReason,
    cap_cash,
    cap_risk_per_trade,
    leverage_room,
    round_to_instrument,
)
from tradeloop.risk.market import MarketContext
from tradeloop.risk.optimizer import PortfolioOptimizer
from tradeloop.risk.overrides import (
    AuditLog,
    Override,
    OverrideManager,
    OverrideRefused,
    secret_from_env,
)
from tradeloop.risk.report import RiskReport, rejection_rows
from tradeloop.risk.sizing import (
    apply_confidence,
    atr_volatility,
    kelly_from_trades,
    periods_per_year,
    realized_volatility,
    risk_per_trade_quantity,
    vol_target_notional,
)
from tradeloop.risk.stops import plan_stops
from tradeloop.risk.var import historical_var, parametric_var, portfolio_pnl, var_estimates

__all__ = ["RiskEngine"]

logger = logging.getLogger(__name__)

_NAN = math.nan
_INF = math.inf


class _RefusedError(Exception):
    """Internal: unwinds a check with a rejection reason (never leaves the engine)."""

    def __init__(self, reason: RejectReason, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail


class RiskEngine:
    """Pre-trade checks, sizing, stops, kill switches, VaR and overrides.

    Parameters
    ----------
    config
        Risk configuration (default: the full ``default`` profile).
    instruments
        Instruments by symbol (lot size, min notional, fees); the kernel binds them.
    secret
        Override HMAC secret; default: the environment variable ``config.overrides.secret_env``.
    audit
        Override audit log; default: ``config.overrides.audit_log`` (in memory when None).
    order_ids
        Source of order ids (the broker's); default: a counter from 1.
    """

    def __init__(
        self,
        config: RiskConfig | None = None,
        instruments: Mapping[str, Instrument] | None = None,
        *,
        secret: bytes | None = None,
        audit: AuditLog | None = None,
        order_ids: Callable[[], int] | None = None,
    ) -> None:
        cfg = config or RiskConfig.default()
        self.config = cfg
        self.instruments: dict[str, Instrument] = dict(instruments or {})
        self.passthrough = cfg.is_passthrough
        #: the regime's multiplier of entry sizes (1: none; see :meth:`set_regime`)
        self.size_multiplier = 1.0
        self.needs_bar_updates = cfg.needs_bar_updates
        self.kill_switch = KillSwitch(cfg.kill_switch)
        self.black_swan = BlackSwanDetector(cfg.black_swan) if cfg.black_swan.enabled else None
        lim = cfg.limits
        self.leverage = LeverageController(
            lim.max_gross_leverage if lim.max_gross_leverage is not None else math.inf,
            lim.regime_leverage,
        )
        self.overrides = OverrideManager(
            secret if secret is not None else secret_from_env(cfg.overrides.secret_env),
            audit if audit is not None else AuditLog(cfg.overrides.audit_log),
            duration_ns(cfg.overrides.max_ttl),
        )
        self.rejections: list[Rejection] = []
        #: rejections counted before a restart (the list holds this process's only)
        self.rejected_before = 0
        self.accepted = 0
        self.adjustments: Counter[str] = Counter()
        self._next_id: Callable[[], int] = order_ids or count(1).__next__
        # accepted entry orders not yet filled: (direction, notional) by symbol, for the bar
        # at ``_inflight_ts`` (orders resolve by the next bar's open, or ``on_fill``)
        self._inflight: dict[str, tuple[int, float]] = {}
        self._inflight_ts = -1
        self._scheduled: list[tuple[int, str]] = []
        self._optimizer: PortfolioOptimizer | None = None
        self._slip = cfg.stops.expected_slippage_bps / 10_000.0
        self._bound: tuple[Portfolio, MarketContext, list[Rejection]] | None = None
        self._inbox_offset = 0
        if cfg.overrides.inbox is not None:
            self.poll_inbox()
        logger.info("risk engine", extra={"risk_profile": cfg.profile, "risk_source": cfg.source})

    # -- wiring -------------------------------------------------------------------------------
    def bind(
        self,
        instruments: Mapping[str, Instrument] | None = None,
        order_ids: Callable[[], int] | None = None,
    ) -> None:
        """Attach the run's instruments and the broker's order-id source."""
        if instruments is not None:
            self.instruments.update(instruments)
        if order_ids is not None:
            self._next_id = order_ids

    @property
    def state(self) -> TradingState:
        """The trading state."""
        return self.kill_switch.state

    @property
    def events(self) -> list[RiskEvent]:
        """Every state change so far."""
        return self.kill_switch.events

    def subscribe(self, handler: Callable[[RiskEvent], None]) -> None:
        """Call ``handler`` with every future state change."""
        self.kill_switch.subscribe(handler)

    def set_regime(self, regime: str | None, size_multiplier: float = 1.0) -> None:
        """Set the market regime (fed by a regime model through the kernel step).

        ``regime`` lowers the gross-leverage cap by ``limits.regime_leverage``;
        ``size_multiplier`` in [0, 1] scales every entry's size after the caps (the regime
        transition manager's gradual exposure); 0 refuses new entries with reason ``regime``.
        Closes are never scaled.

        Raises
        ------
        ValueError
            For a multiplier outside [0, 1].
        """
        if not 0.0 <= size_multiplier <= 1.0:
            raise ValueError(f"regime size multiplier must be in [0, 1], got {size_multiplier}")
        self.leverage.set_regime(regime)
        self.size_multiplier = float(size_multiplier)

    # -- persistence --------------------------------------------------------------------------
    def export_state(self) -> dict[str, Any]:
        """Return everything a restarted run needs to continue (JSON-ready).

        The trading state and the equity monitors' reference levels (a daily-loss halt stays
        a halt after a restart), the black-swan windows, the overrides in force and the used
        token ids, the regime, orders accepted but not filled yet, scheduled overrides and the
        inbox position, and the counters.
        """
        return {
            "kill_switch": self.kill_switch.export_state(),
            "black_swan": self.black_swan.export_state() if self.black_swan is not None else {},
            "overrides": self.overrides.export_state(),
            "regime": self.leverage.regime,
            "size_multiplier": self.size_multiplier,
            "inflight": {s: list(v) for s, v in self._inflight.items()},
            "inflight_ts": self._inflight_ts,
            "scheduled": [list(item) for item in self._scheduled],
            "inbox_offset": self._inbox_offset,
            "accepted": self.accepted,
            "rejected": self.rejected_before + len(self.rejections),
            "adjustments": dict(self.adjustments),
        }

    def restore_state(self, data: Mapping[str, Any]) -> None:
        """Load what :meth:`export_state` returned; an empty mapping changes nothing."""
        if not data:
            return
        self.kill_switch.restore_state(data.get("kill_switch", {}))
        if self.black_swan is not None:
            self.black_swan.restore_state(data.get("black_swan", {}))
        self.overrides.restore_state(data.get("overrides", {}))
        self.leverage.set_regime(data.get("regime"))
        self.size_multiplier = float(data.get("size_multiplier", 1.0))
        self._inflight = {s: (int(d), float(n)) for s, (d, n) in data.get("inflight", {}).items()}
        self._inflight_ts = int(data.get("inflight_ts", -1))
        self._scheduled = [(int(at), str(token)) for at, token in data.get("scheduled", ())]
        self._inbox_offset = int(data.get("inbox_offset", 0))
        self.poll_inbox()  # tokens an operator queued while the run was down
        self.accepted = int(data.get("accepted", 0))
        self.rejected_before = int(data.get("rejected", 0))
        self.adjustments = Counter({str(k): int(v) for k, v in data.get("adjustments", {}).items()})

    # -- overrides ----------------------------------------------------------------------------
    def apply_override(
        self, token: str, now_ns: int, portfolio: Portfolio | None = None
    ) -> Override | OverrideRefused:
        """Verify, audit and carry out an override token at ``now_ns``.

        A ``resume`` returns to ACTIVE, re-bases the drawdown peak and the day's start at the
        current equity and re-arms the black-swan windows; a ``set_limit`` changes one limit
        until the token expires. A refusal changes nothing (and is audited).
        """
        result = self.overrides.apply(token, now_ns)
        if isinstance(result, Override) and result.action == "resume":
            equity = portfolio.equity if portfolio is not None else None
            self.kill_switch.resume(
                now_ns, "override", f"{result.who}: {result.why}", equity=equity
            )
            if self.black_swan is not None:
                self.black_swan.reset()
        return result

    def schedule_override(self, token: str, at_ns: int) -> None:
        """Apply ``token`` at the first bar at or after ``at_ns`` (replays an operator's
        override in a backtest)."""
        self._scheduled.append((at_ns, token))
        self._scheduled.sort(key=lambda item: item[0])

    def poll_inbox(self) -> int:
        """Schedule the tokens appended to ``overrides.inbox`` since the last poll.

        Each line is ``{"at": <UTC ns>, "token": "..."}``; returns how many were read.
        """
        if self.config.overrides.inbox is None:
            return 0
        path = Path(self.config.overrides.inbox)
        if not path.is_file():
            return 0
        with path.open("rb") as fh:
            fh.seek(self._inbox_offset)
            data = fh.read()
        end = data.rfind(b"\n") + 1  # only whole lines
        self._inbox_offset += end
        read = 0
        for line in data[:end].splitlines():
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                self.schedule_override(str(item["token"]), int(item["at"]))
                read += 1
            except (ValueError, KeyError, TypeError):
                logger.warning("override inbox %s: unreadable line skipped", path)
        return read

    # -- per bar ------------------------------------------------------------------------------
    def on_bar(self, ts: int, closes: Mapping[str, float], portfolio: Portfolio) -> bool:
        """Run the kill switches and black-swan triggers on the closes of bar ``ts``.

        Call it after the portfolio is marked at these closes. Returns True when a black swan
        has just halted trading: the caller flattens every position and cancels waiting
        orders.

        While a black-swan halt waits for an override (no ``resume_after``), the detector is
        not fed: nothing it finds can change the state, and the override that lifts the halt
        re-arms it with empty windows anyway, so its windows are emptied at once.
        """
        if self._inflight:
            self._inflight.clear()
        scheduled = self._scheduled
        while scheduled and scheduled[0][0] <= ts:
            _, token = scheduled.pop(0)
            self.apply_override(token, ts, portfolio)
        flatten = False
        detector = self.black_swan
        ks = self.kill_switch
        if detector is not None:
            if (
                ks.cause == "black_swan"
                and ks.cooldown_ns is None
                and ks.state is TradingState.HALTED
            ):
                if detector.watching:
                    detector.reset()
            else:
                for symbol, price in closes.items():
                    cause = detector.update(symbol, ts, price)
                    if cause is not None and ks.black_swan(ts, cause):
                        flatten = True
        if ks.monitoring:
            ks.update(ts, portfolio.equity)
        return flatten

    def on_quote(self, ts: int, symbol: str, bid: float, ask: float) -> bool:
        """Check a quote for a spread shock; True when it has just halted trading (flatten)."""
        if self.black_swan is None:
            return False
        cause = self.black_swan.quote(symbol, bid, ask)
        return cause is not None and self.kill_switch.black_swan(ts, cause)

    def on_fill(self, symbol: str) -> None:
        """Forget the in-flight order of ``symbol`` (live: call on every fill)."""
        self._inflight.pop(symbol, None)

    # -- the gate -----------------------------------------------------------------------------
    def check(
        self,
        intent: Signal,
        portfolio: Portfolio,
        market: MarketContext,
        position_id: str | None = None,
        ts: int | None = None,
        reference: float | None = None,
    ) -> Order | Rejection:
        """Return the order for ``intent``, sized and with stops, or a :class:`Rejection`.

        ``position_id`` (the kernel's signal id) names the position an entry order opens when
        the signal itself carries none; the kernel passes it here instead of copying the
        signal. ``ts`` is the decision's time when the caller has it at hand (the step's),
        else ``market.ts``. A stop or target the signal gives as a distance is placed around
        the symbol's latest close: the price the full gate sizes the order at
        (``market.price``); the pass-through gate, which sizes nothing, takes ``reference``
        when the caller has that close at hand (the kernel passes this step's close, NaN when
        the symbol has no bar at this step), else ``market.price``. Without a price the entry
        is refused (``no_price``). A rejection is recorded in :attr:`rejections` (source
        ``risk``) and never raised.
        """
        if ts is None:
            ts = market.ts
        if self.passthrough:
            if intent.stop_loss_pct is None and intent.take_profit_pct is None:
                order = order_from_signal(intent, ts, portfolio, self._next_id(), position_id)
            else:
                price = reference
                if price is None or price != price:  # no close at this step: the latest
                    price = market.price(intent.symbol)
                if not (0.0 < price < _INF):  # (a close carries no distance)
                    return self._refused(
                        ts, intent.symbol, RejectReason.NO_PRICE, f"no price for {intent.symbol}"
                    )
                try:
                    order = order_from_signal(
                        intent, ts, portfolio, self._next_id(), position_id, price
                    )
                except ValueError as exc:  # a level that overflows: no price
                    return self._refused(ts, intent.symbol, RejectReason.INVALID_EXITS, str(exc))
            if self.size_multiplier != 1.0 and intent.action is not SignalAction.CLOSE:
                return self._regime_scaled(order, market)
            self.accepted += 1
            return order
        try:
            order = self._check(intent, portfolio, market, position_id, ts)
        except _RefusedError as refusal:
            return self._refused(ts, intent.symbol, refusal.reason, refusal.detail)
        self.accepted += 1
        return order

    def _refused(self, ts: int, symbol: str, reason: RejectReason, detail: str) -> Rejection:
        """A rejection, recorded in :attr:`rejections` (source ``risk``)."""
        rejection = Rejection(ts, symbol, reason.value, detail, "risk")
        self.rejections.append(rejection)
        logger.debug("risk rejected %s: %s %s", symbol, reason, detail)
        return rejection

    def _regime_scaled(self, order: Order, market: MarketContext) -> Order | Rejection:
        """A pass-through entry ``order`` with its size times the regime's multiplier (refused
        with reason ``regime`` when the multiplier is 0)."""
        mult = self.size_multiplier
        if mult <= 0.0:
            rejection = Rejection(
                market.ts,
                order.symbol,
                RejectReason.REGIME.value,
                f"regime {self.leverage.regime or '?'} allows no new exposure",
                "risk",
            )
            self.rejections.append(rejection)
            return rejection
        self.adjustments["regime"] += 1
        self.accepted += 1
        if order.equity_fraction is not None:
            return replace(order, equity_fraction=order.equity_fraction * mult)
        quantity = order.quantity * mult
        instrument = self.instruments.get(order.symbol)
        if instrument is not None:
            quantity = instrument.round_quantity(quantity)
        return replace(order, quantity=quantity)

    def _limit(self, name: str, default: float | None, ts: int) -> float | None:
        if not self.overrides.active:
            return default
        return self.overrides.limit(name, default, ts)

    def _check(
        self,
        intent: Signal,
        portfolio: Portfolio,
        market: MarketContext,
        position_id: str | None,
        ts: int,
    ) -> Order:
        symbol = intent.symbol
        if ts != self._inflight_ts:  # a new bar: the earlier orders have filled or failed
            self._inflight.clear()
            self._inflight_ts = ts
        if intent.action is SignalAction.CLOSE:
            return order_from_signal(intent, ts, portfolio, self._next_id())
        cfg = self.config
        lim = cfg.limits
        positions = portfolio.positions
        pos = positions.get(symbol)
        direction = 1 if intent.action is SignalAction.OPEN_LONG else -1
        reversing = pos is not None and pos.direction != direction
        state = self.kill_switch.state
        if state is not TradingState.ACTIVE:
            if reversing and pos is not None:
                self.adjustments["reversal_to_close"] += 1
                return Order(
                    id=self._next_id(),
                    symbol=symbol,
                    side=OrderSide.BUY if pos.direction < 0 else OrderSide.SELL,
                    type=OrderType.MARKET,
                    quantity=pos.quantity,
                    ts_created=ts,
                    reduce_only=True,
                    tag=intent.tag,
                )
            reason = (
                RejectReason.HALTED if state is TradingState.HALTED else RejectReason.REDUCING_ONLY
            )
            raise _RefusedError(reason, f"trading is {state.value} ({self.kill_switch.cause})")
        inflight = self._inflight.get(symbol)
        if (pos is not None and not reversing) or (
            inflight is not None and inflight[0] == direction
        ):
            raise _RefusedError(
                RejectReason.ALREADY_OPEN, f"a {symbol} position in this direction is open"
            )
        instrument = self.instruments.get(symbol)
        if instrument is None:
            raise _RefusedError(RejectReason.UNKNOWN_SYMBOL, f"no instrument for {symbol}")
        price = market.price(symbol)
        if not (price > 0 and math.isfinite(price)):
            raise _RefusedError(RejectReason.NO_PRICE, f"no price for {symbol}")
        equity = portfolio.equity
        if not equity > 0:
            raise _RefusedError(RejectReason.NO_EQUITY, f"equity is {equity:.2f}")

        # the book after the order: every other position plus in-flight entries
        marks = portfolio.marks
        others: list[str] = []
        signed: list[float] = []
        gross = 0.0
        for sym, other in positions.items():
            if sym == symbol:
                continue
            value = other.quantity * marks.get(sym, other.entry_price)
            others.append(sym)
            signed.append(other.direction * value)
            gross += value
        for sym, (d, notional) in self._inflight.items():
            if sym != symbol and sym not in positions:
                others.append(sym)
                signed.append(d * notional)
                gross += notional
        max_open = self._limit("max_open_positions", lim.max_open_positions, ts)
        if max_open is not None and len(others) >= max_open:
            raise _RefusedError(
                RejectReason.MAX_POSITIONS, f"{len(others)} positions open (max {max_open:g})"
            )

        try:
            stop_loss, take_profit = intent.exit_levels(price)  # distances placed at the close
        except ValueError as exc:  # a level that overflows: no price
            raise _RefusedError(RejectReason.INVALID_EXITS, str(exc)) from exc
        stops = plan_stops(
            direction,
            price,
            cfg.stops,
            stop_loss=stop_loss,
            trailing_stop=intent.trailing_stop,
        )
        notional = self._size(
            intent, symbol, price, equity, stops.stop_loss, others, portfolio, market
        )
        if not notional > 0:
            raise _RefusedError(RejectReason.ZERO_SIZE, "the sizing rule gives no position")

        max_pos = self._limit("max_position_pct", lim.max_position_pct, ts)
        if max_pos is not None and notional > max_pos * equity:
            notional = max_pos * equity
            self.adjustments["max_position_pct"] += 1
        max_risk = self._limit("max_risk_per_trade", lim.max_risk_per_trade, ts)
        if max_risk is not None and stops.stop_loss is not None:
            qty = cap_risk_per_trade(
                notional / price, price, stops.stop_loss, equity, max_risk, self._slip
            )
            if qty * price < notional:
                notional = qty * price
                self.adjustments["max_risk_per_trade"] += 1
        base_lev = self._limit("max_gross_leverage", lim.max_gross_leverage, ts)
        if base_lev is not None:
            max_lev = self.leverage.max_leverage(market.regime, base_lev)
            room = leverage_room(gross, equity, max_lev)
            if not room > 0:
                raise _RefusedError(
                    RejectReason.LEVERAGE,
                    f"gross {gross:.2f} is {gross / equity:.2f}x equity (max {max_lev:g}x)",
                )
            if notional > room:
                notional = room
                self.adjustments["max_gross_leverage"] += 1
        fee_rate = instrument.taker_fee
        if direction > 0:
            cash = portfolio.balance
            if reversing and pos is not None:
                cash -= pos.quantity * price * (1.0 + fee_rate)  # buying the short back first
            for sym, (d, value) in self._inflight.items():
                if d > 0 and sym != symbol:
                    cash -= value * (1.0 + fee_rate)
            capped = cap_cash(notional, cash, fee_rate)
            if not capped > 0:
                raise _RefusedError(RejectReason.INSUFFICIENT_CASH, f"cash {cash:.2f}")
            if capped < notional:
                notional = capped
                self.adjustments["cash"] += 1
        if cfg.sizing.use_confidence and intent.confidence is not None and intent.confidence < 1:
            # after every cap: the confidence scales the largest size the limits allow, so it
            # still matters when a cap binds, and the result never exceeds any cap
            notional = apply_confidence(notional, intent.confidence)
            if not notional > 0:
                raise _RefusedError(RejectReason.ZERO_SIZE, "the signal's confidence is 0")
            self.adjustments["confidence"] += 1
        if self.size_multiplier != 1.0:
            if self.size_multiplier <= 0.0:
                raise _RefusedError(
                    RejectReason.REGIME,
                    f"regime {self.leverage.regime or '?'} allows no new exposure",
                )
            notional *= self.size_multiplier
            self.adjustments["regime"] += 1
        quantity, why = round_to_instrument(notional / price, price, instrument)
        if why is not None:
            raise _RefusedError(
                why, f"{notional / price:.10g} units at {price:g} ({instrument.symbol})"
            )

        max_corr = self._limit("max_correlation", lim.max_correlation, ts)
        max_var = self._limit("max_var_pct", lim.max_var_pct, ts)
        if others and (max_corr is not None or max_var is not None):
            rows = max(
                lim.correlation_window if max_corr is not None else 0,
                cfg.var.window if max_var is not None else 0,
            )
            hist = market.returns([symbol, *others], rows)
            if max_corr is not None:
                self._check_correlation(hist, others, signed, direction, max_corr)
            if max_var is not None and hist.shape[0] >= cfg.var.min_periods:
                weights = np.asarray([direction * quantity * price, *signed])
                self._check_var(hist[-cfg.var.window :], weights, equity, max_var, market.bar_ns)
        elif max_var is not None:
            hist = market.returns([symbol], cfg.var.window)
            if hist.shape[0] >= cfg.var.min_periods:
                weights = np.asarray([direction * quantity * price])
                self._check_var(hist, weights, equity, max_var, market.bar_ns)

        self._inflight[symbol] = (direction, quantity * price)
        return Order(
            id=self._next_id(),
            symbol=symbol,
            side=OrderSide.BUY if direction > 0 else OrderSide.SELL,
            type=OrderType.MARKET,
            quantity=quantity,
            ts_created=ts,
            tag=intent.tag,
            exits=Bracket(
                stops.stop_loss,
                take_profit,
                stops.trailing_stop,
                stops.trailing_activation,
            ),
            position_id=intent.position_id or position_id,
        )

    def _check_correlation(
        self,
        hist: np.ndarray,
        others: list[str],
        signed: list[float],
        direction: int,
        max_corr: float,
    ) -> None:
        window = self.config.limits.correlation_window
        recent = hist[-window:]
        corr = correlations_with(
            recent[:, 0], recent[:, 1:], self.config.limits.correlation_min_periods
        )
        sides = np.sign(np.asarray(signed)) * direction
        aligned = corr * sides
        if np.any(aligned > max_corr):
            k = int(np.nanargmax(aligned))
            raise _RefusedError(
                RejectReason.CORRELATION,
                f"correlation {corr[k]:.3f} with open {others[k]} (max {max_corr:g})",
            )

    def _horizon_scale(self, bar_ns: int) -> float:
        horizon = duration_ns(self.config.var.horizon)
        return math.sqrt(horizon / bar_ns) if bar_ns > 0 else 1.0

    def _check_var(
        self, hist: np.ndarray, weights: np.ndarray, equity: float, max_var: float, bar_ns: int
    ) -> None:
        var_cfg = self.config.var
        pnl = portfolio_pnl(hist, weights)
        if pnl.size < var_cfg.min_periods:
            return
        if var_cfg.method == "historical":
            var = historical_var(pnl, var_cfg.limit_level)
        else:
            var = parametric_var(float(pnl.mean()), float(pnl.std(ddof=1)), var_cfg.limit_level)
        var *= self._horizon_scale(bar_ns)
        if var > max_var * equity:
            raise _RefusedError(
                RejectReason.VAR_LIMIT,
                f"post-trade {var_cfg.limit_level:.0%} VaR {var:.2f} is {var / equity:.2%} of "
                f"equity (max {max_var:.2%}, horizon {var_cfg.horizon})",
            )

    def _size(
        self,
        intent: Signal,
        symbol: str,
        price: float,
        equity: float,
        stop: float | None,
        others: list[str],
        portfolio: Portfolio,
        market: MarketContext,
    ) -> float:
        sizing = self.config.sizing
        method = sizing.method
        if method == "signal":
            if intent.size_mode is SizeMode.QUANTITY:
                return intent.size * price
            return intent.size * equity
        if method == "fixed_fraction":
            return sizing.fraction * equity
        if method == "risk_per_trade":
            if stop is None:
                raise _RefusedError(RejectReason.NO_STOP, "risk_per_trade sizing needs a stop")
            qty = risk_per_trade_quantity(equity, sizing.risk_per_trade, price, stop, self._slip)
            return qty * price
        periods = sizing.periods_per_year or periods_per_year(market.bar_ns)
        if method == "vol_target":
            if sizing.vol_method == "atr":
                ranges = market.ranges(symbol, sizing.vol_window + 1)
                vol = (
                    atr_volatility(*ranges, sizing.vol_window, periods)
                    if ranges is not None
                    else _NAN
                )
            else:
                vol = realized_volatility(
                    market.returns([symbol], sizing.vol_window)[:, 0], periods
                )
            if not vol > 0:
                raise _RefusedError(RejectReason.ZERO_SIZE, "no volatility history yet")
            return vol_target_notional(equity, sizing.vol_target, vol)
        if method == "kelly":
            kelly = kelly_from_trades(portfolio.trades, sizing.kelly_min_trades)
            if kelly is None:
                return sizing.fraction * equity
            return sizing.kelly_fraction * kelly * equity
        # optimizer: this symbol's weight in the optimal portfolio of it and the open ones
        if self._optimizer is None:
            self._optimizer = PortfolioOptimizer(
                sizing.optimizer_objective,
                upper=self.config.limits.max_position_pct or 1.0,
                gross=sizing.optimizer_gross,
                net=min(1.0, sizing.optimizer_gross),
            )
        hist = market.returns([symbol, *others], sizing.optimizer_window)
        complete = hist[np.isfinite(hist).all(axis=1)]
        k = len(others) + 1
        if complete.shape[0] < max(10, k + 1) or (self._optimizer.upper * k < self._optimizer.net):
            return sizing.fraction * equity
        weights = self._optimizer.solve(complete).weights
        return float(weights[0]) * equity

    # -- reporting ----------------------------------------------------------------------------
    def finish(
        self, portfolio: Portfolio, market: MarketContext, rejections: list[Rejection] | None = None
    ) -> None:
        """Remember the run's portfolio, market and every rejection for :meth:`report`."""
        self._bound = (
            portfolio,
            market,
            list(self.rejections if rejections is None else rejections),
        )

    def report(
        self,
        portfolio: Portfolio | None = None,
        market: MarketContext | None = None,
        rejections: list[Rejection] | None = None,
    ) -> RiskReport:
        """Return a :class:`RiskReport` of ``portfolio`` (default: the one given to :meth:`finish`).

        Raises
        ------
        ValueError
            Without a portfolio and market, when :meth:`finish` was not called.
        """
        if portfolio is None or market is None:
            if self._bound is None:
                raise ValueError("report() needs a portfolio and market before finish()")
            portfolio, market, bound = self._bound
            rejections = bound if rejections is None else rejections
        if rejections is None:
            rejections = self.rejections
        cfg = self.config
        equity = portfolio.equity
        exposure: list[dict[str, object]] = []
        symbols: list[str] = []
        signed: list[float] = []
        for sym, pos in portfolio.positions.items():
            mark = portfolio.marks.get(sym, pos.entry_price)
            value = pos.quantity * mark
            symbols.append(sym)
            signed.append(pos.direction * value)
            exposure.append(
                {
                    "symbol": sym,
                    "side": "long" if pos.direction > 0 else "short",
                    "quantity": pos.quantity,
                    "price": mark,
                    "notional": value,
                    "weight": value / equity if equity > 0 else _NAN,
                }
            )
        gross = float(sum(abs(v) for v in signed))
        net = float(sum(signed))
        leverage = gross / equity if equity > 0 else _NAN
        base_lev = cfg.limits.max_gross_leverage
        max_lev = (
            self.leverage.max_leverage(market.regime, base_lev) if base_lev is not None else None
        )
        var_rows: list[dict[str, float]] = []
        corr_list: list[list[float]] = []
        clusters: list[list[str]] = []
        observations = 0
        var99 = _NAN
        max_pair = _NAN
        if symbols:
            hist = market.returns(symbols, max(cfg.var.window, cfg.limits.correlation_window))
            var_hist = hist[-cfg.var.window :]
            observations = int(var_hist.shape[0])
            scale = self._horizon_scale(market.bar_ns)
            for est in var_estimates(
                portfolio_pnl(var_hist, np.asarray(signed)), cfg.var.levels, scale
            ):
                row = est.as_dict()
                for key in (
                    "historical_var",
                    "historical_cvar",
                    "parametric_var",
                    "parametric_cvar",
                ):
                    row[key + "_pct"] = row[key] / equity if equity > 0 else _NAN
                var_rows.append(row)
                if abs(est.level - cfg.var.limit_level) < 1e-12:
                    var99 = (
                        est.historical_var if cfg.var.method == "historical" else est.parametric_var
                    )
            corr = correlation_matrix(
                hist[-cfg.limits.correlation_window :], cfg.limits.correlation_min_periods
            )
            corr_list = corr.tolist()
            sides = np.sign(np.asarray(signed))
            aligned = corr * np.outer(sides, sides)
            np.fill_diagonal(aligned, np.nan)
            if len(symbols) > 1 and np.isfinite(aligned).any():
                max_pair = float(np.nanmax(aligned))
            clusters = correlation_clusters(aligned, symbols, cfg.limits.max_correlation or 0.7)
        ks = self.kill_switch
        lim = cfg.limits
        largest = max((abs(v) for v in signed), default=0.0) / equity if equity > 0 else _NAN
        drawdown = 1.0 - equity / ks.peak if ks.peak > 0 else 0.0
        day_loss = 1.0 - equity / ks.day_start_equity if ks.day_start_equity > 0 else 0.0

        def usage(name: str, value: float, limit: float | None) -> dict[str, object]:
            return {
                "name": name,
                "value": value,
                "limit": limit,
                "usage": value / limit if limit and math.isfinite(value) else None,
            }

        limits = [
            usage("max_position_pct", largest, lim.max_position_pct),
            usage("max_open_positions", float(len(symbols)), lim.max_open_positions),
            usage("max_gross_leverage", leverage, max_lev),
            usage("max_correlation", max_pair, lim.max_correlation),
            usage("max_var_pct", var99 / equity if equity > 0 else _NAN, lim.max_var_pct),
            usage("daily_loss_pct", max(day_loss, 0.0), cfg.kill_switch.daily_loss_pct),
            usage("drawdown_halt_pct", max(drawdown, 0.0), cfg.kill_switch.drawdown_halt_pct),
        ]
        return RiskReport(
            time=to_iso(market.ts),
            profile=cfg.profile,
            source=cfg.source,
            state=ks.state.value,
            state_cause=ks.cause,
            equity=equity,
            cash=portfolio.balance,
            exposure=exposure,
            gross_exposure=gross,
            net_exposure=net,
            leverage=leverage,
            max_leverage=max_lev if max_lev is None or math.isfinite(max_lev) else None,
            var=var_rows,
            var_horizon=cfg.var.horizon,
            var_observations=observations,
            correlation_symbols=symbols,
            correlation=corr_list,
            clusters=clusters,
            limits=limits,
            rejections=rejection_rows(rejections),
            rejections_by_reason=RiskReport.count_reasons(rejections),
            events=[e.as_dict() for e in ks.events],
            overrides=list(self.overrides.audit.records),
            accepted_orders=self.accepted,
            adjustments=dict(self.adjustments),
        )
