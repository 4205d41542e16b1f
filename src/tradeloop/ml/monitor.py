"""Retrain monitor: live accuracy of the meta-model against its training baseline."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from tradeloop.core.errors import ConfigError

__all__ = ["RetrainEvent", "RetrainMonitor"]


@dataclass(frozen=True, slots=True)
class RetrainEvent:
    """A request to retrain, with the evidence.

    Attributes
    ----------
    reason
        ``"accuracy_drop"`` or ``"sample_count"``.
    baseline_accuracy, live_accuracy
        Training-time accuracy and the rolling live accuracy over ``window_samples``.
    window_samples
        Outcomes in the rolling window.
    samples_since_retrain
        Outcomes recorded since the model was (re)trained.
    drop_threshold
        The configured drop that triggers.
    """

    reason: str
    baseline_accuracy: float
    live_accuracy: float
    window_samples: int
    samples_since_retrain: int
    drop_threshold: float


class RetrainMonitor:
    """Watch live outcomes; emit one :class:`RetrainEvent` per model generation.

    A trigger is raised when the rolling accuracy over the last ``window`` outcomes (once at
    least ``min_samples`` are in) falls more than ``drop_threshold`` below the baseline, or
    after ``every_n`` outcomes when set. The drop is tested every ``min_samples`` outcomes
    (not on every one, which would multiply false alarms) and must also be ``min_z`` binomial
    standard errors below the baseline, so window noise alone rarely triggers. After a
    trigger the monitor waits for :meth:`mark_retrained` (the new model's baseline), so a
    falling stream triggers once.
    """

    def __init__(
        self,
        baseline_accuracy: float,
        *,
        drop_threshold: float = 0.05,
        min_samples: int = 100,
        window: int = 200,
        every_n: int | None = None,
        threshold: float = 0.5,
        min_z: float = 3.5,
    ) -> None:
        if not 0 < drop_threshold < 1 or min_samples < 1 or window < min_samples:
            raise ConfigError(
                "need 0 < drop_threshold < 1 and 1 <= min_samples <= window, got "
                f"{drop_threshold}, {min_samples}, {window}"
            )
        if every_n is not None and every_n < 1:
            raise ConfigError(f"every_n must be >= 1, got {every_n}")
        self.baseline = float(baseline_accuracy)
        self.drop_threshold = drop_threshold
        self.min_samples = min_samples
        self.every_n = every_n
        self.threshold = threshold
        self.min_z = min_z
        self._hits: deque[int] = deque(maxlen=window)
        self._since = 0
        self.pending = False
        self.events: list[RetrainEvent] = []

    @property
    def live_accuracy(self) -> float:
        """Rolling accuracy (NaN before any outcome)."""
        return sum(self._hits) / len(self._hits) if self._hits else float("nan")

    def record(self, probability: float, won: bool) -> RetrainEvent | None:
        """Record one outcome of a scored signal; return the event when this one triggers."""
        self._hits.append(int((probability >= self.threshold) == bool(won)))
        self._since += 1
        if self.pending:
            return None
        reason = None
        n = len(self._hits)
        due = n >= self.min_samples and self._since % self.min_samples == 0
        drop = self.baseline - self.live_accuracy if due else 0.0
        if drop > self.drop_threshold and drop > self.min_z * self._stderr(n):
            reason = "accuracy_drop"
        elif self.every_n is not None and self._since >= self.every_n:
            reason = "sample_count"
        if reason is None:
            return None
        event = RetrainEvent(
            reason, self.baseline, self.live_accuracy, n, self._since, self.drop_threshold
        )
        self.pending = True
        self.events.append(event)
        return event

    def _stderr(self, n: int) -> float:
        b = min(max(self.baseline, 0.01), 0.99)
        return float((b * (1 - b) / n) ** 0.5)

    def mark_retrained(self, baseline_accuracy: float) -> None:
        """Start watching a new model with its training baseline."""
        self.baseline = float(baseline_accuracy)
        self._hits.clear()
        self._since = 0
        self.pending = False
