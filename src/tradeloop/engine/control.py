"""Operator control of a running paper/live session, and the snapshot the API reads.

A session's kernel is single-threaded (parity rule 3): nothing outside its thread may touch
it. :class:`EngineControl` is the one door between the session and everything else in the
process (the HTTP API, the metrics):

- **commands** (pause, resume, flatten, close one position, apply a risk override, reload the
  config) are queued from any thread with :meth:`EngineControl.submit` and carried out by the
  session's thread between two events (:meth:`EngineControl.run_pending`, called by the
  session's housekeeping, at least five times a second); the caller waits on a future for the
  result;
- **reads** go to a :class:`dict` snapshot the session's thread rebuilds after every command
  and otherwise every ``snapshot_interval_s`` (0.25 s); the API reads the newest
  snapshot (an immutable reference swap), never the kernel's live objects;
- **listeners** are called once with the session's message bus when the run is opened, before
  its first step, so metrics subscribe to the step's events (``subscribe_local``) without
  missing one.

A broker that can tell its circuit-breaker state and rate budget implements
:class:`BrokerTelemetry`; otherwise the state of the ``breaker`` it holds (the venue broker's
:class:`~tradeloop.execution.protection.CircuitBreaker`) is read (:func:`broker_health`); the
simulated broker has neither.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from tradeloop.core.errors import ConfigError, TradeloopError
from tradeloop.core.order_status import FINAL_STATUSES
from tradeloop.core.time import to_iso
from tradeloop.engine.output import json_safe

if TYPE_CHECKING:
    from tradeloop.bus.base import MessageBus
    from tradeloop.engine.live import LiveKernel
    from tradeloop.engine.paper import PaperSession

__all__ = [
    "ACTIONS",
    "Action",
    "BrokerTelemetry",
    "CommandResult",
    "EngineControl",
    "broker_health",
]

logger = logging.getLogger(__name__)

Action = Literal["pause", "resume", "flatten", "close", "risk_override", "reload"]
#: every command an operator may send
ACTIONS: tuple[str, ...] = ("pause", "resume", "flatten", "close", "risk_override", "reload")

#: how many recent orders and closed trades a snapshot carries
RECENT = 200


@runtime_checkable
class BrokerTelemetry(Protocol):
    """Optional: a broker that reports its circuit breaker and rate budget.

    ``telemetry()`` returns a mapping with any of ``circuit`` (``"closed"``, ``"open"`` or
    ``"half_open"``), ``rate_budget`` (requests left in the current window, a number) and
    ``rate_limit`` (the window's size). It must be cheap and must not raise.
    """

    def telemetry(self) -> Mapping[str, Any]:
        """The broker's health figures."""
        ...


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What a command did: ``ok`` (carried out) and a JSON-ready ``detail``."""

    action: str
    ok: bool
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class _Command:
    action: str
    args: dict[str, Any]
    future: Future[CommandResult]


class EngineControl:
    """Command queue and snapshot of one session (see the module docstring).

    Parameters
    ----------
    snapshot_interval_s
        Rebuild the snapshot this often (and after every command): reads are at most this
        old, and a burst of steps costs one rebuild.
    """

    def __init__(self, snapshot_interval_s: float = 0.25) -> None:
        self.snapshot_interval_s = snapshot_interval_s
        self._queue: queue.SimpleQueue[_Command] = queue.SimpleQueue()
        self._snapshot: dict[str, Any] | None = None
        self._snapshot_mono = 0.0
        self._steps_seen = -1
        self._listeners: list[Callable[[MessageBus], None]] = []
        self._lock = threading.Lock()
        #: commands carried out (by action and result)
        self.executed: Counter[str] = Counter()

    # -- any thread ----------------------------------------------------------------------------
    def submit(self, action: str, **args: Any) -> Future[CommandResult]:
        """Queue ``action`` for the session's thread; the future holds its result.

        Raises
        ------
        ConfigError
            For an unknown action.
        """
        if action not in ACTIONS:
            raise ConfigError(f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}")
        future: Future[CommandResult] = Future()
        self._queue.put(_Command(action, dict(args), future))
        return future

    def snapshot(self) -> dict[str, Any] | None:
        """The newest snapshot (None before the run is opened)."""
        return self._snapshot

    def snapshot_age_s(self) -> float | None:
        """Seconds since the snapshot was rebuilt (None before the first)."""
        if self._snapshot is None:
            return None
        return time.monotonic() - self._snapshot_mono

    def add_listener(self, listener: Callable[[MessageBus], None]) -> None:
        """Call ``listener(bus)`` when the run is opened (at once if it is already open)."""
        with self._lock:
            self._listeners.append(listener)

    # -- the session's thread ------------------------------------------------------------------
    def opened(self, session: PaperSession, kernel: LiveKernel) -> None:
        """The run is open (or restored): give the listeners the bus, take a first snapshot."""
        bus = getattr(session, "bus", None)
        with self._lock:
            listeners = list(self._listeners)
        if bus is not None:
            for listener in listeners:
                listener(bus)
        self._refresh(session, kernel)

    def run_pending(self, session: PaperSession, kernel: LiveKernel) -> None:
        """Carry out every queued command, then rebuild the snapshot when due."""
        ran = False
        while True:
            try:
                command = self._queue.get_nowait()
            except queue.Empty:
                break
            ran = True
            if not command.future.set_running_or_notify_cancel():
                continue
            try:
                result = self._execute(session, kernel, command)
            except TradeloopError as exc:
                result = CommandResult(command.action, False, {"error": str(exc)})
            except Exception as exc:  # a failed command must not stop the session
                logger.exception("control command %s failed", command.action)
                result = CommandResult(
                    command.action, False, {"error": f"{type(exc).__name__}: {exc}"}
                )
            self.executed[f"{command.action}:{'ok' if result.ok else 'refused'}"] += 1
            self._refresh(session, kernel)
            command.future.set_result(result)
        # at most every ``snapshot_interval_s`` (a burst of steps is one rebuild), and at once
        # when a command ran (its caller reads the effect next)
        due = time.monotonic() - self._snapshot_mono >= self.snapshot_interval_s
        if not ran and due:
            self._refresh(session, kernel)

    def _execute(
        self, session: PaperSession, kernel: LiveKernel, command: _Command
    ) -> CommandResult:
        action, args = command.action, command.args
        if action in ("pause", "resume"):
            before = kernel.set_paused(action == "pause")
            return CommandResult(action, True, {"paused": action == "pause", "was_paused": before})
        if action == "flatten":
            positions = len(kernel.portfolio.positions)
            out = kernel.close_positions(None)
            session._after(out)
            return CommandResult(
                action, True, {"positions": positions, "orders": [o.order.id for o in out.orders]}
            )
        if action == "close":
            symbol = str(args["symbol"])
            if symbol not in kernel.symbols:
                raise ConfigError(
                    f"{symbol!r} is not traded by this run (symbols: {', '.join(kernel.symbols)})"
                )
            had = symbol in kernel.portfolio.positions
            out = kernel.close_positions([symbol])
            session._after(out)
            return CommandResult(
                action,
                had,
                {"symbol": symbol, "orders": [o.order.id for o in out.orders]}
                if had
                else {"symbol": symbol, "error": f"no open position in {symbol}"},
            )
        if action == "risk_override":
            from tradeloop.risk.overrides import Override

            now = kernel.last_step_ts if kernel.last_step_ts is not None else time.time_ns()
            now = max(now, time.time_ns())
            result = kernel.risk.apply_override(str(args["token"]), now, kernel.portfolio)
            if isinstance(result, Override):
                return CommandResult(
                    action,
                    True,
                    {
                        "override": result.describe(),
                        "who": result.who,
                        "until": to_iso(result.expires_at),
                        "risk_state": str(kernel.risk.state),
                    },
                )
            return CommandResult(
                action, False, {"error": f"refused ({result.reason}): {result.detail}"}
            )
        # reload
        reload = getattr(session, "reload_config", None)
        if reload is None:
            raise ConfigError("this session has no config file to reload")
        applied = bool(reload())
        if applied:
            return CommandResult(action, True, {"reloads": getattr(session, "reloads", 0)})
        return CommandResult(
            action,
            False,
            {"error": getattr(session, "reload_error", None) or "reload refused"},
        )

    def _refresh(self, session: PaperSession, kernel: LiveKernel) -> None:
        """Rebuild the snapshot from the session (on its thread)."""
        try:
            snap = build_snapshot(session, kernel)
        except Exception:  # reading must never stop trading
            logger.exception("snapshot failed")
            return
        snap["control"] = dict(self.executed)
        self._steps_seen = kernel.steps
        self._snapshot = snap
        self._snapshot_mono = time.monotonic()


def build_snapshot(session: PaperSession, kernel: LiveKernel) -> dict[str, Any]:
    """Everything the API shows of a session, JSON-ready (on the session's thread)."""
    status = session.status()
    portfolio = kernel.portfolio
    orders = kernel._orders
    # by creation (the venue broker's resting stops and targets have ids of their own, < 0)
    recent_ids = sorted(orders, key=lambda k: (orders[k].order.ts_created, k))[-RECENT:]
    by_status: Counter[str] = Counter(str(st.status) for st in orders.values())
    open_orders = [_order(o, "submitted") for q in kernel.broker.pending.values() for o in q]
    open_orders += [  # resting at the venue: protecting a position, not waiting for an open
        _order(st.order, str(st.status))
        for k, st in sorted(orders.items())
        if k < 0 and st.status not in FINAL_STATUSES
    ]
    closed = [t for t in portfolio.trades if t.exit_ts is not None][-RECENT:]
    risk = kernel.risk
    manager = getattr(session, "manager", None)
    strategies: list[dict[str, Any]] = []
    if manager is not None:
        weights = manager.weights
        for name in manager.names:
            member = manager.member(name)
            strategies.append(
                {
                    "name": name,
                    "strategy": member.strategy_name(),
                    "weight": weights.get(name),
                    "params": dict(member.params),
                }
            )
    else:
        strategies.append(
            {
                "name": session.strategy.strategy_name(),
                "strategy": session.strategy.strategy_name(),
                "weight": 1.0,
                "params": dict(session.strategy.params),
            }
        )
    broker: dict[str, Any] = {
        "kind": type(kernel.broker).__name__,
        "orders_by_status": dict(by_status),
    }
    broker.update(broker_health(kernel.broker))
    enrichment = session.enrichment
    model: dict[str, Any] | None = None
    if enrichment is not None:
        model = {
            "name": enrichment.name,
            "version": enrichment.version,
            "min_confidence": enrichment.min_confidence,
            "swaps": getattr(enrichment, "swaps", 0),
            "counts": enrichment.counts.as_dict(),
        }
    counts = kernel.step.counts.as_dict()
    cfg = session.config
    snap: dict[str, Any] = {
        "status": status,
        "positions": status.get("positions", []),
        "orders": {
            "open": open_orders,
            "recent": [
                _order(orders[i].order, str(orders[i].status)) for i in reversed(recent_ids)
            ],
            "by_status": dict(by_status),
        },
        "trades": [_trade(t) for t in reversed(closed)],
        "risk": {
            "state": str(risk.state),
            "paused": kernel.step.paused,
            "profile": risk.config.profile,
            "limits": asdict(risk.config.limits),
            "kill_switch": asdict(risk.config.kill_switch),
            "overrides": {
                name: {"value": o.value, "until": to_iso(o.expires_at), "who": o.who}
                for name, o in risk.overrides.active.items()
            },
            "events": [e.as_dict() for e in risk.events[-50:]],
            "accepted": risk.accepted,
            "rejected": counts["rejected"],
        },
        "strategies": strategies,
        "broker": broker,
        "model": model,
        "stores": {
            "state": "postgresql" if cfg.state_url.startswith("postgres") else "sqlite",
        },
        "bar_received_at": getattr(session, "bar_received_at", None),
        "built_at": to_iso(time.time_ns()),
    }
    safe: dict[str, Any] = json_safe(snap)
    return safe


def broker_health(broker: Any) -> dict[str, Any]:
    """A broker's circuit state and rate budget: its :class:`BrokerTelemetry` when it has one,
    else the state of a ``breaker`` it holds (a
    :class:`~tradeloop.execution.protection.CircuitBreaker`); empty for a simulated broker."""
    if isinstance(broker, BrokerTelemetry):
        return dict(broker.telemetry())
    out: dict[str, Any] = {}
    state = getattr(getattr(broker, "breaker", None), "state", None)
    if state is not None:
        out["circuit"] = str(getattr(state, "value", state))
    limit = getattr(getattr(broker, "budget", None), "weight_per_minute", None)
    if isinstance(limit, int | float):
        out["rate_limit"] = limit
    return out


def _order(order: Any, status: str) -> dict[str, Any]:
    return {
        "id": order.id,
        "symbol": order.symbol,
        "side": order.side.value,
        "type": order.type.value,
        "quantity": order.quantity,
        "equity_fraction": order.equity_fraction,
        "reduce_only": order.reduce_only,
        "tag": order.tag,
        "created": to_iso(order.ts_created),
        "status": status,
    }


def _trade(trade: Any) -> dict[str, Any]:
    return {
        "id": trade.id,
        "symbol": trade.symbol,
        "side": "long" if trade.direction > 0 else "short",
        "quantity": trade.quantity,
        "entry_time": to_iso(trade.entry_ts),
        "entry_price": trade.entry_price,
        "exit_time": to_iso(trade.exit_ts) if trade.exit_ts is not None else None,
        "exit_price": trade.exit_price,
        "pnl": trade.pnl,
        "pnl_pct": trade.pnl_pct,
        "exit_reason": trade.exit_reason.value if trade.exit_reason is not None else None,
    }
