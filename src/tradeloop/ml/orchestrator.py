"""``MLOrchestrator``: one facade over features, inference, training, registry and retraining."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from tradeloop.core.bar import Bar, BarArrays
from tradeloop.core.errors import ConfigError
from tradeloop.ml.features import DEFAULT_FEATURE_SET, FeatureSet
from tradeloop.ml.inference import EnrichedSignalEvent, InferenceLoop, SignalEvent
from tradeloop.ml.model import MetaModel
from tradeloop.ml.monitor import RetrainEvent, RetrainMonitor
from tradeloop.ml.registry import ModelRegistry
from tradeloop.ml.training import TrainConfig, TrainResult, train_meta_model

__all__ = ["MLOrchestrator"]

logger = logging.getLogger(__name__)

#: Scored signals kept while waiting for their outcome.
_MAX_PENDING = 100_000


class MLOrchestrator:
    """Start/stop, score signals, record outcomes, train, save and hot-swap models.

    Parameters
    ----------
    feature_set
        Features every model must use.
    registry
        Folder of the model registry (none: models are not saved).
    threshold
        Trading threshold on the meta-confidence.
    monitor_kwargs
        Passed to :class:`RetrainMonitor`.
    """

    def __init__(
        self,
        feature_set: FeatureSet = DEFAULT_FEATURE_SET,
        *,
        registry: str | Path | None = None,
        threshold: float = 0.5,
        monitor_kwargs: dict[str, float | int | None] | None = None,
    ) -> None:
        self.feature_set = feature_set
        self.threshold = threshold
        self.registry = ModelRegistry(registry) if registry is not None else None
        self.inference = InferenceLoop(feature_set, threshold=threshold)
        self._monitor_kwargs = dict(monitor_kwargs or {})
        self.monitor: RetrainMonitor | None = None
        self._pending: dict[str, float] = {}
        self.running = False

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, *, load_latest: bool = True) -> None:
        """Start serving; load the latest registry model when there is one."""
        if load_latest and self.registry is not None and self.registry.versions():
            self.hot_swap_model(self.registry.load(feature_set=self.feature_set))
        self.running = True
        logger.info("ml orchestrator started", extra={"model": self.inference.model_version})

    def stop(self) -> None:
        """Stop serving (later signals raise)."""
        self.running = False

    # -- serving ---------------------------------------------------------------------------
    def on_bar(self, bar: Bar) -> None:
        """Feed a completed bar."""
        self.inference.on_bar(bar)

    def process_signal(self, event: SignalEvent) -> EnrichedSignalEvent:
        """Enrich one signal and remember its confidence for :meth:`record_outcome`.

        Raises
        ------
        ConfigError
            When the orchestrator is not started.
        """
        if not self.running:
            raise ConfigError("ML orchestrator is not started; call start() first")
        enriched = self.inference.process(event)
        pending = self._pending
        pending[event.signal_id] = enriched.meta_confidence
        if len(pending) > _MAX_PENDING:  # outcomes never reported: forget the oldest
            del pending[next(iter(pending))]
        return enriched

    def record_outcome(self, signal_id: str, won: bool) -> RetrainEvent | None:
        """Record whether a scored signal's trade made money; return a retrain event if due."""
        prob = self._pending.pop(signal_id, None)
        if prob is None or self.monitor is None:
            return None
        return self.monitor.record(prob, won)

    # -- models ----------------------------------------------------------------------------
    def hot_swap_model(self, model: MetaModel) -> int:
        """Install ``model`` atomically; reset the retrain monitor to its baseline."""
        gen = self.inference.hot_swap_model(model)
        if self.monitor is None:
            self.monitor = RetrainMonitor(
                model.baseline_accuracy,
                threshold=self.threshold,
                **self._monitor_kwargs,  # type: ignore[arg-type]
            )
        else:
            self.monitor.mark_retrained(model.baseline_accuracy)
        return gen

    def train(
        self,
        bars: BarArrays,
        events: np.ndarray,
        sides: np.ndarray,
        config: TrainConfig | None = None,
        *,
        swap: bool = True,
    ) -> TrainResult:
        """Train a model, save it to the registry (when set) and hot-swap it in."""
        result = train_meta_model(bars, events, sides, config, self.feature_set)
        if self.registry is not None:
            self.registry.save(
                result.model,
                params={"config": repr(result.config)},
                metrics={"overall": result.overall, "importance": result.importance},
                bars=bars,
            )
        if swap:
            self.hot_swap_model(result.model)
        return result
