"""Kill switches: trading states, the equity monitors that move between them, black swans.

States
------
``ACTIVE``
    Every order the limits allow.
``REDUCING``
    Only orders that reduce exposure (closes). Entered at the drawdown alert level; left by
    itself when the drawdown is back under that level.
``HALTED``
    Only orders that reduce exposure. Entered on the daily loss limit, the drawdown halt level
    or a black swan. Left only by an explicit, signed override (a daily-loss halt also lifts at
    the next UTC day when ``daily_resume_next_day`` is set, as seed 004 asks).

Every change of state is a :class:`RiskEvent` with its cause, kept in :attr:`KillSwitch.events`
and passed to every subscriber (the message bus subscribes later).
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from tradeloop.core.time import to_iso
from tradeloop.risk.config import BlackSwanConfig, KillSwitchConfig

__all__ = ["BlackSwanDetector", "KillSwitch", "RiskEvent", "TradingState"]

logger = logging.getLogger(__name__)

DAY_NS = 86_400 * 1_000_000_000


class TradingState(StrEnum):
    """What the risk engine lets through."""

    ACTIVE = "active"
    REDUCING = "reducing"
    HALTED = "halted"


_RANK = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}


@dataclass(frozen=True, slots=True)
class RiskEvent:
    """A change of trading state (or an alert), with its cause.

    Attributes
    ----------
    ts
        UTC ns time.
    cause
        ``daily_loss``, ``drawdown``, ``drawdown_recovered``, ``black_swan``, ``new_day`` or
        ``override``.
    state_from, state_to
        States before and after (equal for an alert that changes nothing).
    detail
        The numbers behind it.
    """

    ts: int
    cause: str
    state_from: TradingState
    state_to: TradingState
    detail: str = ""

    def as_dict(self) -> dict[str, str]:
        """Return the event with an ISO time, for reports."""
        return {
            "time": to_iso(self.ts),
            "cause": self.cause,
            "from": self.state_from.value,
            "to": self.state_to.value,
            "detail": self.detail,
        }


class _Rearming:
    """A :class:`KillSwitch` field whose assignment disarms the monitors' quiet band.

    The band (see :meth:`KillSwitch.update`) is derived from the state, its cause, the halt
    time, the day, the day's start and the drawdown peak; assigning any of them, from inside
    or outside the class, makes the next update take the full path, which rebuilds it. The
    descriptor defines no ``__get__``, so reading the field is a plain instance-dict lookup.
    """

    __slots__ = ("name",)

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __set__(self, obj: object, value: object) -> None:
        fields = obj.__dict__
        fields[self.name] = value
        fields["_t_hi"] = _DISARMED


#: an empty time interval: ``t_lo <= ts < t_hi`` never holds, so the full path runs
_DISARMED = -(2**63)


class KillSwitch:
    """The trading state and the daily-loss and drawdown monitors that drive it.

    Parameters
    ----------
    config
        Thresholds; a None threshold switches its monitor off.

    Per update the work is O(1): between two changes the monitors keep a *quiet band* - the
    current UTC day (shortened to the end of a ``resume_after`` cool-down) and the equity
    interval in which no threshold, recovery level or new peak can be reached - and an
    update inside it only records the equity. Any other update runs every monitor in full and
    rebuilds the band; assigning the state or a reference level disarms it.
    """

    if TYPE_CHECKING:
        state: TradingState
        cause: str | None
        #: when the current halt began (UTC ns), for ``resume_after``
        halted_at: int | None
        peak: float
        day: int
        day_start_equity: float
    else:
        state, cause, halted_at = _Rearming(), _Rearming(), _Rearming()
        peak, day, day_start_equity = _Rearming(), _Rearming(), _Rearming()

    def __init__(self, config: KillSwitchConfig) -> None:
        self.config = config
        self.state = TradingState.ACTIVE
        self.cause = None
        self.events: list[RiskEvent] = []
        self._listeners: list[Callable[[RiskEvent], None]] = []
        self.peak = math.nan
        self.day = -1
        self.day_start_equity = math.nan
        self._last_equity = math.nan
        self.halted_at = None
        # the quiet band: times [_t_lo, _t_hi), equities (_e_lo, _e_hi]
        self._t_lo = self._t_hi = _DISARMED
        self._e_lo = self._e_hi = math.nan

    @property
    def config(self) -> KillSwitchConfig:
        """The thresholds (assigning new ones disarms the quiet band)."""
        return self._config

    @config.setter
    def config(self, config: KillSwitchConfig) -> None:
        self._config = config
        #: ``resume_after`` in ns (None: a drawdown or black-swan halt waits for an override)
        self.cooldown_ns = config.resume_after_ns
        #: True when any monitor is on (else :meth:`update` need not be called)
        self.monitoring = (
            config.daily_loss_pct is not None
            or config.drawdown_reduce_pct is not None
            or config.drawdown_halt_pct is not None
            or config.resume_after is not None
        )
        self._t_hi = _DISARMED

    # -- events ---------------------------------------------------------------------------
    def subscribe(self, handler: Callable[[RiskEvent], None]) -> None:
        """Call ``handler`` with every future :class:`RiskEvent`."""
        self._listeners.append(handler)

    def _emit(self, event: RiskEvent) -> None:
        self.events.append(event)
        logger.warning(
            "risk state %s -> %s: %s %s",
            event.state_from.value,
            event.state_to.value,
            event.cause,
            event.detail,
            extra={"risk_event": event.as_dict()},
        )
        for handler in self._listeners:
            handler(event)

    def _move(self, ts: int, state: TradingState, cause: str, detail: str) -> None:
        old = self.state
        self.state = state
        self.cause = None if state is TradingState.ACTIVE else cause
        self.halted_at = ts if state is TradingState.HALTED else None
        self._emit(RiskEvent(ts, cause, old, state, detail))

    # -- transitions ----------------------------------------------------------------------
    def trip(self, ts: int, state: TradingState, cause: str, detail: str = "") -> bool:
        """Escalate to ``state`` (never de-escalates); return True when the state changed."""
        if _RANK[state] <= _RANK[self.state]:
            return False
        self._move(ts, state, cause, detail)
        return True

    def black_swan(self, ts: int, detail: str) -> bool:
        """Halt for a black swan, also when already halted for another cause.

        Returns True when this is a new black-swan halt (the caller flattens), False when the
        engine was already halted for a black swan.
        """
        if self.state is TradingState.HALTED and self.cause == "black_swan":
            return False
        if self.state is TradingState.HALTED:
            self.cause = "black_swan"  # stickier than a daily-loss halt: needs an override
            self.halted_at = ts
            self._emit(RiskEvent(ts, "black_swan", self.state, self.state, detail))
            return True
        self._move(ts, TradingState.HALTED, "black_swan", detail)
        return True

    def resume(
        self, ts: int, cause: str = "override", detail: str = "", *, equity: float | None = None
    ) -> bool:
        """Return to ACTIVE (an override); re-base the drawdown peak and the day's start.

        Returns True when the state changed.
        """
        if equity is not None and math.isfinite(equity):
            self.peak = equity
            self.day_start_equity = equity
            self._last_equity = equity
        if self.state is TradingState.ACTIVE:
            return False
        self._move(ts, TradingState.ACTIVE, cause, detail)
        return True

    # -- persistence ----------------------------------------------------------------------
    #: state changes kept in :meth:`export_state` (it is written with every step)
    EXPORTED_EVENTS = 100

    def export_state(self) -> dict[str, Any]:
        """Return the state, the monitors' reference levels and the last
        :attr:`EXPORTED_EVENTS` events, JSON-ready."""
        return {
            "state": self.state.value,
            "cause": self.cause,
            "peak": _num(self.peak),
            "day": self.day,
            "day_start_equity": _num(self.day_start_equity),
            "last_equity": _num(self._last_equity),
            "halted_at": self.halted_at,
            "events": [
                [e.ts, e.cause, e.state_from.value, e.state_to.value, e.detail]
                for e in self.events[-self.EXPORTED_EVENTS :]
            ],
        }

    def restore_state(self, data: Mapping[str, Any]) -> None:
        """Load what :meth:`export_state` returned (listeners are kept, not notified)."""
        self.state = TradingState(data.get("state", TradingState.ACTIVE.value))
        self.cause = data.get("cause")
        self.peak = _float(data.get("peak"))
        self.day = int(data.get("day", -1))
        self.day_start_equity = _float(data.get("day_start_equity"))
        self._last_equity = _float(data.get("last_equity"))
        halted_at = data.get("halted_at")
        self.halted_at = int(halted_at) if halted_at is not None else None
        self.events = [
            RiskEvent(int(ts), str(cause), TradingState(a), TradingState(b), str(detail))
            for ts, cause, a, b, detail in data.get("events", ())
        ]

    # -- monitors -------------------------------------------------------------------------
    def update(self, ts: int, equity: float) -> None:
        """Feed the equity marked at ``ts``; run the daily-loss and drawdown monitors, and lift
        a drawdown or black-swan halt whose ``resume_after`` cool-down has passed."""
        if self._t_lo <= ts < self._t_hi and self._e_lo < equity <= self._e_hi:
            self._last_equity = equity  # inside the quiet band: nothing can change
            return
        self._update(ts, equity)
        self._arm()

    def _update(self, ts: int, equity: float) -> None:
        """Every monitor in full (what an update does outside the quiet band)."""
        cfg = self.config
        cooldown = self.cooldown_ns
        if (
            cooldown is not None
            and self.state is TradingState.HALTED
            and self.cause in ("drawdown", "black_swan")
            and self.halted_at is not None
            and ts - self.halted_at >= cooldown
        ):
            self.resume(
                ts,
                "cooldown",
                f"{self.cause} halt lifted after kill_switch.resume_after = {cfg.resume_after}",
                equity=equity,
            )
        day = ts // DAY_NS
        if day != self.day:
            self.day = day
            # the day starts at the last equity of the day before (this one on the first bar)
            self.day_start_equity = equity if math.isnan(self._last_equity) else self._last_equity
            if (
                self.state is TradingState.HALTED
                and self.cause == "daily_loss"
                and cfg.daily_resume_next_day
            ):
                self._move(
                    ts,
                    TradingState.ACTIVE,
                    "new_day",
                    f"day starts at equity {self.day_start_equity:.2f}",
                )
        self._last_equity = equity
        if cfg.daily_loss_pct is not None and self.day_start_equity > 0:
            floor = self.day_start_equity * (1.0 - cfg.daily_loss_pct)
            if equity <= floor and self.state is not TradingState.HALTED:
                loss = 1.0 - equity / self.day_start_equity
                self.trip(
                    ts,
                    TradingState.HALTED,
                    "daily_loss",
                    f"equity {equity:.2f} is {loss:.2%} under the day's start "
                    f"{self.day_start_equity:.2f} (limit {cfg.daily_loss_pct:.2%})",
                )
        if cfg.drawdown_reduce_pct is None and cfg.drawdown_halt_pct is None:
            return
        if not equity <= self.peak:  # also the first update (peak NaN)
            self.peak = equity
        peak = self.peak
        # thresholds compare levels (peak * (1 - pct)), exact at round numbers
        halt, reduce = cfg.drawdown_halt_pct, cfg.drawdown_reduce_pct
        rank = _RANK[self.state]
        if halt is not None and peak > 0 and equity <= peak * (1.0 - halt):
            if rank < _RANK[TradingState.HALTED]:
                self.trip(
                    ts,
                    TradingState.HALTED,
                    "drawdown",
                    _drawdown(equity, peak) + f" (halt at {halt:.2%})",
                )
        elif reduce is not None and peak > 0 and equity <= peak * (1.0 - reduce):
            if rank < _RANK[TradingState.REDUCING]:
                self.trip(
                    ts,
                    TradingState.REDUCING,
                    "drawdown",
                    _drawdown(equity, peak) + f" (reduce at {reduce:.2%})",
                )
        elif self.state is TradingState.REDUCING and self.cause == "drawdown":
            self._move(ts, TradingState.ACTIVE, "drawdown_recovered", _drawdown(equity, peak))

    def _arm(self) -> None:
        """Rebuild the quiet band from the state the full path left.

        Each bound is the very comparison :meth:`_update` makes (the same float products), so
        an update inside the band is one the full path would have left unchanged apart from
        the last equity: the day and the cool-down stay, no threshold is reached (the daily
        floor unless halted, the halt level unless halted, the reduce level while active), no
        drawdown reduction recovers, and the equity is no new peak.
        """
        cfg, state = self.config, self.state
        day = self.day
        t_lo, t_hi = day * DAY_NS, (day + 1) * DAY_NS
        halted_at, cooldown = self.halted_at, self.cooldown_ns
        if (
            cooldown is not None
            and state is TradingState.HALTED
            and self.cause in ("drawdown", "black_swan")
            and halted_at is not None
        ):
            t_hi = min(t_hi, halted_at + cooldown)
        e_lo, e_hi = -math.inf, math.inf
        if (
            cfg.daily_loss_pct is not None
            and self.day_start_equity > 0
            and state is not TradingState.HALTED
        ):
            e_lo = self.day_start_equity * (1.0 - cfg.daily_loss_pct)
        halt, reduce = cfg.drawdown_halt_pct, cfg.drawdown_reduce_pct
        if halt is not None or reduce is not None:
            peak = self.peak
            e_hi = peak  # NaN before the first update: the band is empty
            rank = _RANK[state]
            if peak > 0:
                if halt is not None and rank < _RANK[TradingState.HALTED]:
                    e_lo = max(e_lo, peak * (1.0 - halt))
                if reduce is not None and rank < _RANK[TradingState.REDUCING]:
                    e_lo = max(e_lo, peak * (1.0 - reduce))
            if state is TradingState.REDUCING and self.cause == "drawdown":
                # recovers above the reduce level (at once when that is off or the peak <= 0)
                if reduce is not None and peak > 0:
                    e_hi = min(e_hi, peak * (1.0 - reduce))
                else:
                    e_hi = -math.inf
        self._e_lo, self._e_hi = e_lo, e_hi
        self._t_lo, self._t_hi = t_lo, t_hi


def _drawdown(equity: float, peak: float) -> str:
    """An event's detail: the drawdown from the peak."""
    drawdown = 1.0 - equity / peak if peak > 0 else 0.0
    return f"drawdown {drawdown:.2%} from peak {peak:.2f}"


class _SymbolWatch:
    __slots__ = ("last", "maxima", "n", "returns", "since_exact", "sum", "sumsq")

    def __init__(self, vol_window: int) -> None:
        self.maxima: deque[tuple[int, float]] = deque()
        self.returns: deque[float] = deque(maxlen=vol_window)
        self.sum = 0.0
        self.sumsq = 0.0
        self.last = math.nan
        self.n = vol_window
        self.since_exact = 0


class BlackSwanDetector:
    """Detects a crash in any symbol: a fall within a window, a volatility or spread shock.

    Per update the work is O(1) amortized: a monotonic deque keeps the window's highest close
    and running sums keep the return volatility. The thresholds' factors are computed once, and
    the square root behind a volatility shock is taken only when the squared deviation comes
    within a relative 1e-9 of the trigger (below that the exact comparison cannot hold).
    """

    def __init__(self, config: BlackSwanConfig) -> None:
        self.config = config
        self.window_ns = config.window_ns
        self._watch: dict[str, _SymbolWatch] = {}
        #: ``1 - drop_pct`` (None: the drop trigger is off), the same product as spelled out
        self._keep = None if config.drop_pct is None else 1.0 - config.drop_pct
        sigma = config.vol_shock_sigma
        self._sigma = sigma
        # a deviation with d*d <= var * sigma^2 * (1 - 1e-9) is under sigma * sqrt(var) even
        # after the rounding of every product (each off by a relative 2^-53 at most)
        self._near = None if sigma is None else sigma * sigma * (1.0 - 1e-9)

    @property
    def watching(self) -> bool:
        """True while any symbol's window holds data."""
        return bool(self._watch)

    def reset(self) -> None:
        """Forget every window (after a resume, so the same crash does not trigger again)."""
        self._watch.clear()

    def export_state(self) -> dict[str, Any]:
        """Return every symbol's window (highest closes, returns, running sums), JSON-ready."""
        return {
            symbol: {
                "maxima": [[ts, price] for ts, price in w.maxima],
                "returns": list(w.returns),
                "sum": w.sum,
                "sumsq": w.sumsq,
                "last": _num(w.last),
                "since_exact": w.since_exact,
            }
            for symbol, w in self._watch.items()
        }

    def restore_state(self, data: Mapping[str, Any]) -> None:
        """Load what :meth:`export_state` returned."""
        self._watch.clear()
        for symbol, item in data.items():
            watch = _SymbolWatch(self.config.vol_window)
            watch.maxima.extend((int(ts), float(price)) for ts, price in item["maxima"])
            watch.returns.extend(float(r) for r in item["returns"])
            watch.sum = float(item["sum"])
            watch.sumsq = float(item["sumsq"])
            watch.last = _float(item.get("last"))
            watch.since_exact = int(item.get("since_exact", 0))
            self._watch[symbol] = watch

    def update(self, symbol: str, ts: int, price: float) -> str | None:
        """Feed a close (or trade price); return what triggered, or None."""
        watch = self._watch.get(symbol)
        if watch is None:
            watch = self._watch[symbol] = _SymbolWatch(self.config.vol_window)
            # stagger the periodic re-sums across symbols, so no single bar does them all
            watch.since_exact = len(self._watch) % watch.n
        cause = None
        maxima = watch.maxima
        while maxima and maxima[-1][1] <= price:
            maxima.pop()
        maxima.append((ts, price))
        horizon = ts - self.window_ns
        while maxima[0][0] <= horizon:
            maxima.popleft()
        keep = self._keep
        if keep is not None:
            high = maxima[0][1]
            if price <= high * keep:
                cause = self._fell(symbol, price, high)
        last = watch.last
        watch.last = price
        if not last > 0:  # the first price (NaN) or a non-positive one: no return
            return cause
        r = price / last - 1.0
        rets, n = watch.returns, watch.n
        total, squares = watch.sum, watch.sumsq
        if len(rets) == n:
            near = self._near
            if near is not None and cause is None:
                mean = total / n
                var = (squares - n * mean * mean) / (n - 1)
                if var > 0:
                    d = r - mean
                    if d * d > var * near or var < 1e-280:  # tiny var: products may underflow
                        cause = self._shock(symbol, r, mean, var)
            old = rets[0]
            total -= old
            squares -= old * old
        rets.append(r)
        since = watch.since_exact + 1
        if since >= n:  # re-sum now and then: no drift over long runs
            watch.since_exact = 0
            watch.sum = math.fsum(rets)
            watch.sumsq = math.fsum(x * x for x in rets)
        else:
            watch.since_exact = since
            watch.sum = total + r
            watch.sumsq = squares + r * r
        return cause

    def _fell(self, symbol: str, price: float, high: float) -> str:
        cfg = self.config
        fall = 1.0 - price / high
        return (
            f"{symbol} fell {fall:.2%} from {high:g} within {cfg.window} "
            f"(trigger {cfg.drop_pct:.2%})"
        )

    def _shock(self, symbol: str, r: float, mean: float, var: float) -> str | None:
        """The exact volatility-shock comparison (a return beyond sigma standard deviations)."""
        sigma = self._sigma
        assert sigma is not None
        sd = math.sqrt(var)
        if abs(r - mean) > sigma * sd:
            return (
                f"{symbol} moved {r:.2%} in one bar, {abs(r - mean) / sd:.1f} sigma "
                f"(trigger {sigma:g})"
            )
        return None

    def quote(self, symbol: str, bid: float, ask: float) -> str | None:
        """Feed a quote; return the cause when the spread is a shock, else None."""
        limit = self.config.spread_shock_bps
        if limit is None or not (bid > 0 and ask > 0):
            return None
        spread_bps = (ask - bid) / ((ask + bid) / 2.0) * 10_000.0
        if spread_bps > limit:
            return f"{symbol} spread {spread_bps:.0f} bps (trigger {limit:g} bps)"
        return None


def _num(value: float) -> float | None:
    """NaN as None, so the state stays valid JSON."""
    return None if math.isnan(value) else value


def _float(value: float | None) -> float:
    return math.nan if value is None else float(value)
