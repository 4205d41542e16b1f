"""Live trading sessions: the paper session (or the loop) with a venue broker.

:class:`LiveTrading` is what live adds to a :class:`~tradeloop.engine.paper.PaperSession` (and
to ``tradeloop run``'s :class:`~tradeloop.engine.loop.LoopSession`): the kernel is built in
``live`` mode on the venue of :class:`LiveOptions` (same step, strategy, risk engine and
journal), and around it:

* **reconciliation** at start (working orders at once; balances and positions after the
  kernel's first step, so the steps a killed process left are re-run and its orders found by
  client id first) and every ``reconcile_every_s``: the venue is the truth for balances,
  positions and open orders; differences go to the log, an alert and the status file
  and are resolved by the policy (``adopt`` the venue's state, or ``halt`` trading);
* the **circuit breaker**: open -> the risk engine goes to reducing-only with an alert saying
  why; closed again -> trading resumes (only if the breaker was the cause);
* one **rate budget** per venue shared by the order client and the session's market-data REST
  client;
* a ``venue`` section in ``status.json`` (breaker, stream, working orders, last
  reconciliation, slippage, fee tier);
* on stop (SIGTERM/SIGINT) the event in flight finishes and is stored; working orders stay at
  the venue and are reconciled at the next start.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tradeloop.alerts import Alert
from tradeloop.core.errors import ConfigError, TemporaryError
from tradeloop.core.instrument import Instrument
from tradeloop.engine.factories import VenueSpec
from tradeloop.engine.live import LiveKernel
from tradeloop.engine.loop import LoopSession
from tradeloop.engine.paper import PaperSession
from tradeloop.execution.protection import BreakerState
from tradeloop.execution.reconcile import ReconcilePolicy, ReconcileReport, reconcile
from tradeloop.execution.venue_broker import NotionalCaps, VenueBroker
from tradeloop.risk.killswitch import TradingState

__all__ = ["LiveLoopSession", "LiveOptions", "LiveSession", "LiveTrading"]

logger = logging.getLogger(__name__)

VENUE_CAUSE = "venue_unavailable"


@dataclass(frozen=True, slots=True)
class LiveOptions:
    """What a live session adds to a paper config.

    Attributes
    ----------
    broker
        ``ccxt`` or ``alpaca``.
    real_money
        False: testnet/sandbox/paper endpoints. True: real money (the CLI asks first).
    caps
        Per-order / per-day notional caps (required with real money).
    reconcile_every_s
        Seconds between reconciliations (0: only at start).
    reconcile_policy
        ``adopt`` or ``halt``.
    stream
        Use the user-data stream (False: REST polling only).
    """

    broker: str = "ccxt"
    real_money: bool = False
    caps: NotionalCaps = field(default_factory=NotionalCaps)
    reconcile_every_s: float = 300.0
    reconcile_policy: ReconcilePolicy = ReconcilePolicy.ADOPT
    stream: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "reconcile_policy", ReconcilePolicy(self.reconcile_policy))
        if self.real_money and (self.caps.per_order is None or self.caps.per_day is None):
            raise ConfigError(
                "real-money trading needs both --max-order-notional and --max-daily-notional"
            )
        if self.reconcile_every_s < 0:
            raise ConfigError(f"reconcile_every_s must be >= 0, got {self.reconcile_every_s}")


class LiveTrading:
    """The live part of a session (a mixin before a :class:`PaperSession` subclass)."""

    config: Any
    kernel: LiveKernel | None
    alerter: Any

    MODE = "live"
    #: a reconciliation deferred by orders in flight is tried again after this long
    DEFERRED_RETRY_S = 1.0
    #: at a stop, wait at most this long for the fills of orders still working
    SHUTDOWN_FILL_WAIT_S = 2.0
    #: the start reconciliation waits at most this long for the kernel's first step
    START_RECONCILE_WAIT_S = 60.0

    def __init__(self, *args: Any, live: LiveOptions, **kwargs: Any) -> None:
        self.live = live
        self._steps_at_open = 0
        self._opened_at = time.monotonic()
        self.reconciliations = 0
        self.last_reconcile: ReconcileReport | None = None
        self._next_reconcile = 0.0
        super().__init__(*args, **kwargs)

    # -- the kernel ------------------------------------------------------------------------
    def kernel_options(self) -> dict[str, Any]:
        """The paper options plus the live mode and its venue."""
        opts: dict[str, Any] = super().kernel_options()  # type: ignore[misc]
        cfg = self.config
        opts["mode"] = "live"
        opts["venue"] = VenueSpec(
            broker=self.live.broker,
            exchange=cfg.exchange,
            run_id=cfg.run_id,
            market=cfg.market,
            settings=cfg.settings,
            real_money=self.live.real_money,
            caps=self.live.caps,
            stream=self.live.stream,
            alert=self._venue_alert,
            on_breaker=self._on_breaker,
        )
        return opts

    @property
    def venue_broker(self) -> VenueBroker | None:
        """The kernel's venue broker (None before the run is open)."""
        kernel = self.kernel
        broker = kernel.broker if kernel is not None else None
        return broker if isinstance(broker, VenueBroker) else None

    def on_kernel_open(self, kernel: LiveKernel) -> None:
        """Share the venue's rate budget with the market-data client; settle the stored
        working orders with the venue at once, and reconcile balances and positions once
        the kernel has caught up (the steps a killed process left are re-run first: an order
        it sent is then found by its client id instead of being adopted as a stranger's)."""
        super().on_kernel_open(kernel)  # type: ignore[misc]
        broker = kernel.broker  # (the session's ``kernel`` is set after this hook)
        if not isinstance(broker, VenueBroker):
            return
        budget = getattr(broker.client, "budget", None)
        source = getattr(self, "_source", None)
        if budget is not None and source is not None:
            from tradeloop.adapters.ccxt.broker import install_rate_budget

            install_rate_budget(source.client, budget)
        from tradeloop.execution.reconcile import settle_orders

        settle_orders(broker, list(kernel.symbols), time.time_ns())
        if kernel.last_step_ts is not None:  # a restored run: store what the venue settled
            kernel.record_now(kernel.last_step_ts)
        self._steps_at_open = kernel.steps
        self._opened_at = time.monotonic()

    def on_housekeeping(self, kernel: LiveKernel) -> None:
        """The start reconciliation once caught up, then one every ``reconcile_every_s``."""
        super().on_housekeeping(kernel)  # type: ignore[misc]
        every = self.live.reconcile_every_s
        now = time.monotonic()
        if self.reconciliations == 0:
            caught_up = kernel.steps > self._steps_at_open and not kernel.has_queued
            waited = now - self._opened_at >= self.START_RECONCILE_WAIT_S
            if (caught_up or waited) and now >= self._next_reconcile:
                try:
                    self.reconcile_now()
                except TemporaryError as exc:
                    self._next_reconcile = now + self.DEFERRED_RETRY_S
                    logger.warning("start reconciliation failed, retrying: %s", exc)
            return
        if every > 0 and now >= self._next_reconcile:
            try:
                self.reconcile_now()
            except TemporaryError as exc:
                logger.warning("reconciliation skipped: %s", exc)

    def reconcile_now(self) -> ReconcileReport | None:
        """Reconcile with the venue now, store the result, alert on differences."""
        kernel, broker = self.kernel, self.venue_broker
        if kernel is None or broker is None:
            return None
        self._next_reconcile = time.monotonic() + max(self.live.reconcile_every_s, 1.0)
        now = time.time_ns()
        prices = {}
        for symbol in kernel.symbols:
            series = kernel.series[symbol]
            if len(series):
                prices[symbol] = float(series.arrays(symbol, kernel.timeframe).close[-1])
        report = reconcile(
            broker, list(kernel.symbols), now, policy=self.live.reconcile_policy, prices=prices
        )
        if report.deferred:
            self._next_reconcile = time.monotonic() + self.DEFERRED_RETRY_S
            return report
        self.reconciliations += 1
        self.last_reconcile = report
        if kernel.last_step_ts is not None:  # else the first step stores the adopted state
            kernel.record_now(kernel.last_step_ts)
        if report.differences:
            text = "; ".join(str(d) for d in report.differences[:10])
            action = (
                "adopted the venue's state"
                if report.policy is ReconcilePolicy.ADOPT
                else "trading halted"
            )
            self.alerter.send(
                Alert(
                    "warning",
                    "reconciliation differences",
                    f"{broker.client.name}: {len(report.differences)} difference(s), "
                    f"{action}: {text}",
                    {"differences": len(report.differences)},
                )
            )
            if report.policy is ReconcilePolicy.HALT:
                kernel.risk.kill_switch.trip(now, TradingState.HALTED, "reconciliation", text[:200])
        return report

    # -- protection ------------------------------------------------------------------------
    def _on_breaker(self, old: BreakerState, new: BreakerState, why: str) -> None:
        kernel = self.kernel
        now = time.time_ns()
        if new is BreakerState.OPEN:
            if kernel is not None:
                kernel.risk.kill_switch.trip(now, TradingState.REDUCING, VENUE_CAUSE, why[:200])
            self.alerter.send(
                Alert(
                    "error",
                    "venue circuit breaker open",
                    f"{self.config.exchange}: {why}; risk engine set to reducing-only",
                    {},
                )
            )
        elif new is BreakerState.CLOSED and kernel is not None:
            ks = kernel.risk.kill_switch
            if ks.cause == VENUE_CAUSE:
                ks.resume(now, "venue_recovered", why)
                self.alerter.send(
                    Alert(
                        "info", "venue circuit breaker closed", f"{self.config.exchange}: {why}", {}
                    )
                )

    def _venue_alert(self, title: str, text: str) -> None:
        self.alerter.send(Alert("warning", title, text, {}))

    # -- identity and status ---------------------------------------------------------------
    def _meta(self, instruments: Mapping[str, Instrument] | None) -> dict[str, Any]:
        meta: dict[str, Any] = super()._meta(instruments)  # type: ignore[misc]
        meta["mode"] = "live"
        meta["broker"] = self.live.broker
        meta["real_money"] = self.live.real_money
        return meta

    def status(self) -> dict[str, Any]:
        """The paper status plus the venue's."""
        out: dict[str, Any] = super().status()  # type: ignore[misc]
        out["mode"] = "live"
        broker = self.venue_broker
        if broker is not None:
            out["venue"] = {
                "name": broker.client.name,
                "real_money": self.live.real_money,
                "circuit_breaker": broker.breaker.as_dict(),
                "stream_connected": broker.client.stream_connected,
                "working_orders": broker.working_orders(),
                "invalid_transitions": broker.invalid_transitions,
                "slippage": broker.slippage_summary(),
                "fee_tier": broker.fees.tier,
                "volume_30d": broker.fees.volume_30d,
                "reconciliations": self.reconciliations,
                "last_reconciliation": self.last_reconcile.as_dict()
                if self.last_reconcile
                else None,
            }
        return out

    def _shutdown(self, feed: Any, reason: str) -> None:
        """Before the paper shutdown (status, alert, store closed): take the fills of orders
        still working (up to ``SHUTDOWN_FILL_WAIT_S``) and store them with the run. A run
        that ends before its start reconciliation could run (it was deferred while an order
        of the previous process was still working, and the run was short) reconciles here,
        once its orders are settled: no run ends unchecked against the venue."""
        kernel, broker = self.kernel, self.venue_broker
        if kernel is not None and broker is not None and kernel.last_step_ts is not None:
            try:
                deadline = time.monotonic() + self.SHUTDOWN_FILL_WAIT_S
                broker.sync()
                while broker.pending and time.monotonic() < deadline:
                    time.sleep(0.05)
                    broker.sync()
                kernel.record_now(kernel.last_step_ts)
                if self.reconciliations == 0:
                    self.reconcile_now()
            except Exception:  # the shutdown itself must go on
                logger.exception("final venue sync failed")
        super()._shutdown(feed, reason)  # type: ignore[misc]

    def run(self) -> int:
        """Run the session; the venue client's stream is closed at the end."""
        try:
            return int(super().run())  # type: ignore[misc]
        finally:
            broker = self.venue_broker
            if broker is not None:
                broker.client.close()


class LiveSession(LiveTrading, PaperSession):
    """``tradeloop live``: a paper session's options on a real venue."""


class LiveLoopSession(LiveTrading, LoopSession):
    """``tradeloop live --config loop.toml``: the feedback loop on a real venue."""
