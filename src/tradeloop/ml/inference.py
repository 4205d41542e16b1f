"""Inference loop: enrich each primary signal with the meta-model's confidence.

``process`` reads the current model reference once, so one call is served by exactly one
model even while :meth:`InferenceLoop.hot_swap_model` replaces it from another thread
(rebinding an attribute is atomic in CPython); versions only increase.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

import numpy as np

from tradeloop.core.bar import Bar
from tradeloop.core.errors import ConfigError
from tradeloop.ml.features import DEFAULT_FEATURE_SET, FeatureSet, OnlineFeatures
from tradeloop.ml.model import MetaModel

__all__ = [
    "COLD_START_CONFIDENCE",
    "EnrichedSignalEvent",
    "InferenceLoop",
    "MetaOutput",
    "SignalEvent",
]

#: Confidence returned before a model is loaded or while features warm up (seed FR-004).
COLD_START_CONFIDENCE = 0.5
_NO_MODEL = "none"


@dataclass(frozen=True, slots=True)
class SignalEvent:
    """A primary strategy's entry signal as the ML layer sees it.

    Attributes
    ----------
    signal_id
        Unique id.
    symbol
        Instrument.
    ts
        Bar time (UTC ns) the signal was produced on.
    side
        +1 long, -1 short.
    strength
        The primary signal's own strength (1.0 when it has none).
    strategy
        Name of the primary strategy.
    """

    signal_id: str
    symbol: str
    ts: int
    side: int
    strength: float = 1.0
    strategy: str = ""


@dataclass(frozen=True, slots=True)
class MetaOutput:
    """What the risk engine's sizing needs: ``confidence`` in [0, 1] and whether to trade."""

    signal_id: str
    confidence: float
    take: bool
    model_version: str
    toxicity: float


@dataclass(frozen=True, slots=True)
class EnrichedSignalEvent:
    """A signal with meta-confidence, regime weight, toxicity, model version and latency (ns)."""

    signal: SignalEvent
    meta_confidence: float
    regime_weight: float
    toxicity: float
    model_version: str
    features_ns: int
    predict_ns: int
    total_ns: int
    threshold: float = 0.5

    def to_meta_output(self) -> MetaOutput:
        """Return the sizing input: confidence = meta_confidence x regime_weight, clipped."""
        conf = min(1.0, max(0.0, self.meta_confidence * self.regime_weight))
        return MetaOutput(
            self.signal.signal_id,
            conf,
            self.meta_confidence >= self.threshold,
            self.model_version,
            self.toxicity,
        )


class InferenceLoop:
    """Score signals against the latest bar features of their symbol."""

    def __init__(
        self,
        feature_set: FeatureSet = DEFAULT_FEATURE_SET,
        model: MetaModel | None = None,
        *,
        threshold: float = 0.5,
    ) -> None:
        self.feature_set = feature_set
        self.threshold = threshold
        self._features: dict[str, OnlineFeatures] = {}
        self._swap_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._processed = 0
        self._current: tuple[MetaModel | None, str, int] = (None, _NO_MODEL, 0)
        self._vpin_col = (
            feature_set.bar_features.index("vpin_50")
            if "vpin_50" in feature_set.bar_features
            else -1
        )
        if model is not None:
            self.hot_swap_model(model)

    @property
    def model_version(self) -> str:
        """Version of the model currently serving."""
        return self._current[1]

    @property
    def generation(self) -> int:
        """How many models have been installed (monotonic)."""
        return self._current[2]

    @property
    def processed(self) -> int:
        """Signals processed so far."""
        with self._count_lock:
            return self._processed

    def on_bar(self, bar: Bar) -> None:
        """Feed one completed bar of ``bar.symbol``."""
        buf = self._features.get(bar.symbol)
        if buf is None:
            buf = self._features[bar.symbol] = OnlineFeatures(self.feature_set)
        buf.update(bar)

    def hot_swap_model(self, model: MetaModel) -> int:
        """Install ``model`` atomically and return its generation number.

        Raises
        ------
        ConfigError
            If the model was trained on another feature set.
        """
        if model.feature_set.to_dict() != self.feature_set.to_dict():
            raise ConfigError(
                f"model feature set {model.feature_set.key} does not match {self.feature_set.key}"
            )
        with self._swap_lock:
            gen = self._current[2] + 1
            version = model.version or f"gen{gen}"
            self._current = (model, version, gen)
        return gen

    def process(self, event: SignalEvent) -> EnrichedSignalEvent:
        """Return ``event`` enriched; 0.5 confidence at cold start or during feature warm-up."""
        t0 = time.perf_counter_ns()
        model, version, _gen = self._current
        buf = self._features.get(event.symbol)
        row = buf.latest() if buf is not None else None
        t1 = time.perf_counter_ns()
        toxicity = float("nan")
        conf = COLD_START_CONFIDENCE
        if row is not None:
            if self._vpin_col >= 0:
                toxicity = float(row[self._vpin_col])
            if model is not None and not np.isnan(row).any():
                x = self.feature_set.with_signal(row, float(event.side), event.strength)
                conf = model.predict_one(x[0])
                if not math.isfinite(conf):
                    conf = COLD_START_CONFIDENCE
        t2 = time.perf_counter_ns()
        with self._count_lock:
            self._processed += 1
        return EnrichedSignalEvent(
            event, conf, 1.0, toxicity, version, t1 - t0, t2 - t1, t2 - t0, self.threshold
        )
