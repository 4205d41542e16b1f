"""``AdaptiveEngine``: component weights that follow recent realized performance.

Every :meth:`AdaptiveEngine.update` reads the rolling metrics from the analytics store:

1. **Rollback.** When the 24h hit rate (of ``source``, or of all sources) is below
   ``rollback_hit_rate`` over at least ``min_samples`` trades, the weights return to the
   defaults.
2. **EMA.** Otherwise each component with at least ``min_component_samples`` trades in the last
   24h moves toward ``target = default * 2 * hit_rate`` (capped at the default when its mean
   P&L is not positive): ``w <- (1 - alpha) * w + alpha * target``, clipped to
   ``[min_weight, max_weight]``.

Every change is stored as a new version in ``adaptive_weights`` with its reason; on start the
latest version is restored. A long-running consumer calls :meth:`AdaptiveEngine.update`
continuously, as :class:`AdaptSchedule` says: each time the stored outcomes reach a new
multiple of N, or T seconds after the last update, whichever comes first. :class:`AdaptClock`
applies that schedule for every caller (the signal service's consumer and the engine's
feedback loop): it counts outcomes over the whole run, so a restarted consumer adapts at the
same outcomes as an uninterrupted one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tradeloop.store.analytics import AnalyticsStore

__all__ = [
    "WINDOWS_NS",
    "AdaptClock",
    "AdaptSchedule",
    "AdaptiveConfig",
    "AdaptiveEngine",
    "WeightChange",
    "rolling_windows",
]

log = logging.getLogger(__name__)

_HOUR = 3_600_000_000_000
WINDOWS_NS: dict[str, int] = {"1h": _HOUR, "24h": 24 * _HOUR, "7d": 7 * 24 * _HOUR}


@dataclass(frozen=True, slots=True)
class AdaptiveConfig:
    """Settings of :class:`AdaptiveEngine` (see the module docstring)."""

    alpha: float = 0.2
    min_weight: float = 0.1
    max_weight: float = 3.0
    rollback_hit_rate: float = 0.5
    min_samples: int = 20
    min_component_samples: int = 5
    source: str | None = None
    #: judge the rollback on the weighted components' outcomes only (a running loop whose
    #: account also trades other strategies: their outcomes must not roll the weights back)
    own_components_only: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {self.alpha}")
        if not 0 < self.min_weight <= self.max_weight:
            raise ValueError("need 0 < min_weight <= max_weight")


@dataclass(frozen=True, slots=True)
class AdaptSchedule:
    """When a running consumer re-runs :meth:`AdaptiveEngine.update` (applied by
    :class:`AdaptClock`).

    Each time the stored outcomes reach a new multiple of ``every_outcomes``, or when
    ``every_s`` seconds have passed since the last update (the rolling windows move with time
    even without new outcomes), whichever comes first.
    """

    every_outcomes: int = 50
    every_s: float = 60.0

    def __post_init__(self) -> None:
        if self.every_outcomes < 1:
            raise ValueError(f"every_outcomes must be >= 1, got {self.every_outcomes}")
        if not self.every_s > 0:
            raise ValueError(f"every_s must be > 0, got {self.every_s}")


class AdaptClock:
    """The one place that decides when weights adapt (see :class:`AdaptSchedule`).

    The caller reports ``stored``: the outcomes stored so far over the whole run (on a restart,
    the count already in the store plus the new ones). An update is due when ``stored`` has
    reached a multiple of ``every_outcomes`` beyond the one of the last update, or when
    ``every_s`` seconds of ``clock`` have passed since it; :meth:`mark` records an update.
    Because the multiples are counted over the whole run, a consumer restarted after k
    outcomes adapts at the same outcomes as one that never stopped.

    Parameters
    ----------
    schedule
        Every N outcomes or T seconds.
    stored
        Outcomes already stored when the consumer starts.
    clock
        Seconds, monotonic (default :func:`time.monotonic`).

    >>> c = AdaptClock(AdaptSchedule(10, 30.0), stored=7)
    >>> c.due(9), c.due(10), c.pending(10)
    (False, True, 3)
    """

    def __init__(
        self,
        schedule: AdaptSchedule,
        stored: int = 0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.schedule = schedule
        self._clock = clock
        self._multiple = stored // schedule.every_outcomes
        self._stored = stored
        self._at = clock()

    def due(self, stored: int) -> bool:
        """True when an update is due with ``stored`` outcomes stored over the run."""
        s = self.schedule
        waited = self._clock() - self._at
        return stored // s.every_outcomes > self._multiple or waited >= s.every_s

    def pending(self, stored: int) -> int:
        """Outcomes stored since the last update (or since the start)."""
        return stored - self._stored

    def with_schedule(self, schedule: AdaptSchedule) -> AdaptClock:
        """This clock under another schedule (same last update: its outcomes and time)."""
        if schedule == self.schedule:
            return self
        other = AdaptClock(schedule, self._stored, clock=self._clock)
        other._at = self._at
        return other

    def mark(self, stored: int) -> None:
        """Record an update made with ``stored`` outcomes stored."""
        self._multiple = stored // self.schedule.every_outcomes
        self._stored = stored
        self._at = self._clock()


def rolling_windows(store: AnalyticsStore, now_ns: int) -> dict[str, list[dict[str, Any]]]:
    """Return hit rate, mean P&L and count per source and component for each window."""
    with store.session():
        return {
            name: store.rolling_metrics(now_ns - span, now_ns) for name, span in WINDOWS_NS.items()
        }


@dataclass(frozen=True, slots=True)
class WeightChange:
    """A stored weight version."""

    version: int
    weights: dict[str, float]
    reason: str
    rollback: bool = False
    previous: dict[str, float] = field(default_factory=dict)


class AdaptiveEngine:
    """Adapt component weights from feedback in ``store``.

    Parameters
    ----------
    store
        Analytics store holding ``signal_feedback`` and ``adaptive_weights``.
    defaults
        Default weight of every component (also the rollback target).
    config
        Adaptation settings.
    """

    def __init__(
        self,
        store: AnalyticsStore,
        defaults: Mapping[str, float],
        config: AdaptiveConfig | None = None,
        *,
        now_ns: int = 0,
    ) -> None:
        self.store = store
        self.defaults = {k: float(v) for k, v in defaults.items()}
        self.config = config or AdaptiveConfig()
        with store.session():
            latest = store.weights()
            if latest is None:
                self.version = store.save_weights(self.defaults, now_ns, "initial defaults")
        if latest is None:
            self.weights = dict(self.defaults)
        else:
            self.version = int(latest["version"])
            self.weights = {**self.defaults, **latest["weights"]}
            log.info("restored adaptive weights", extra={"version": self.version})

    def current(self) -> dict[str, float]:
        """Return a copy of the current weights."""
        return dict(self.weights)

    def metrics(self, now_ns: int) -> dict[str, list[dict[str, Any]]]:
        """Return hit rate, mean P&L and count per source and component for each window."""
        return rolling_windows(self.store, now_ns)

    def _rows(self, now_ns: int) -> tuple[dict[str, Any] | None, dict[str, dict[str, Any]]]:
        src = self.config.source or "*"
        rows = self.store.rolling_metrics(now_ns - WINDOWS_NS["24h"], now_ns)
        total = next((r for r in rows if r["source"] == src and r["component"] == "*"), None)
        per = {r["component"]: r for r in rows if r["source"] == src and r["component"] != "*"}
        if self.config.own_components_only:
            own = [r for c, r in per.items() if c in self.defaults]
            n = sum(r["count"] for r in own)
            total = (
                {
                    "count": n,
                    "hit_rate": sum(r["hit_rate"] * r["count"] for r in own) / n,
                    "mean_pnl": sum(r["mean_pnl"] * r["count"] for r in own) / n,
                }
                if n
                else None
            )
        return total, per

    def update(self, now_ns: int) -> WeightChange | None:
        """Recompute the weights at ``now_ns``; store and return a change, or None."""
        with self.store.session():  # one open of the file for the read and the write
            return self._update(now_ns)

    def _update(self, now_ns: int) -> WeightChange | None:
        cfg = self.config
        total, per = self._rows(now_ns)
        if (
            total is not None
            and total["count"] >= cfg.min_samples
            and total["hit_rate"] < cfg.rollback_hit_rate
        ):
            if self.weights == self.defaults:
                return None
            reason = (
                f"rollback: 24h hit rate {total['hit_rate']:.3f} < {cfg.rollback_hit_rate:.2f} "
                f"over {total['count']} trades"
            )
            return self._store(dict(self.defaults), now_ns, reason, rollback=True)
        new = dict(self.weights)
        notes = []
        for comp, w in self.weights.items():
            row = per.get(comp)
            if row is None or row["count"] < cfg.min_component_samples:
                continue
            default = self.defaults.get(comp, 1.0)
            target = default * 2.0 * row["hit_rate"]
            if row["mean_pnl"] <= 0:
                target = min(target, default)
            target = min(cfg.max_weight, max(cfg.min_weight, target))
            value = min(
                cfg.max_weight, max(cfg.min_weight, (1 - cfg.alpha) * w + cfg.alpha * target)
            )
            if abs(value - w) > 1e-12:
                new[comp] = value
                notes.append(
                    f"{comp} {w:.4f}->{value:.4f} (hit {row['hit_rate']:.2f}, n={row['count']})"
                )
        if not notes:
            return None
        return self._store(new, now_ns, "ema: " + "; ".join(notes))

    def restore(self, version: int, now_ns: int) -> WeightChange:
        """Make stored ``version`` current again (as a new version).

        Raises
        ------
        KeyError
            If the version does not exist.
        """
        old = self.store.weights(version)
        if old is None:
            raise KeyError(f"no adaptive weight version {version}")
        return self._store(dict(old["weights"]), now_ns, f"restore version {version}")

    def _store(
        self, weights: dict[str, float], now_ns: int, reason: str, *, rollback: bool = False
    ) -> WeightChange:
        previous = self.weights
        self.version = self.store.save_weights(weights, now_ns, reason)
        self.weights = weights
        log.info("adaptive weights v%d: %s", self.version, reason)
        return WeightChange(self.version, dict(weights), reason, rollback, previous)
