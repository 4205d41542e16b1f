"""Meta-labeling: features, triple-barrier labels, purged training, registry, inference, VPIN.

The meta-model answers one question for every primary signal: how likely is this trade to
make money (hit its profit barrier first)? Its confidence sizes the position.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tradeloop.core.lazy import lazy_exports

if TYPE_CHECKING:
    from tradeloop.ml.cv import purged_kfold, purged_walk_forward, spans_overlap
    from tradeloop.ml.features import DEFAULT_FEATURE_SET, FeatureSet, OnlineFeatures
    from tradeloop.ml.inference import (
        COLD_START_CONFIDENCE,
        EnrichedSignalEvent,
        InferenceLoop,
        MetaOutput,
        SignalEvent,
    )
    from tradeloop.ml.labels import BarrierLabels, meta_labels, rolling_volatility, triple_barrier
    from tradeloop.ml.model import Calibrator, MetaModel, make_estimator
    from tradeloop.ml.monitor import RetrainEvent, RetrainMonitor
    from tradeloop.ml.orchestrator import MLOrchestrator
    from tradeloop.ml.registry import ModelCatalog, ModelRef, ModelRegistry, parse_model_spec
    from tradeloop.ml.threads import bounded_threads
    from tradeloop.ml.toxicity import vpin_from_bars, vpin_from_trades
    from tradeloop.ml.training import MIN_BARS, TrainConfig, TrainResult, train_meta_model

# Exports load on first use (PEP 562), so importing one submodule does not import them all.
_EXPORTS: dict[str, tuple[str, str]] = {
    "purged_kfold": ("tradeloop.ml.cv", "purged_kfold"),
    "purged_walk_forward": ("tradeloop.ml.cv", "purged_walk_forward"),
    "spans_overlap": ("tradeloop.ml.cv", "spans_overlap"),
    "DEFAULT_FEATURE_SET": ("tradeloop.ml.features", "DEFAULT_FEATURE_SET"),
    "FeatureSet": ("tradeloop.ml.features", "FeatureSet"),
    "OnlineFeatures": ("tradeloop.ml.features", "OnlineFeatures"),
    "COLD_START_CONFIDENCE": ("tradeloop.ml.inference", "COLD_START_CONFIDENCE"),
    "EnrichedSignalEvent": ("tradeloop.ml.inference", "EnrichedSignalEvent"),
    "InferenceLoop": ("tradeloop.ml.inference", "InferenceLoop"),
    "MetaOutput": ("tradeloop.ml.inference", "MetaOutput"),
    "SignalEvent": ("tradeloop.ml.inference", "SignalEvent"),
    "BarrierLabels": ("tradeloop.ml.labels", "BarrierLabels"),
    "meta_labels": ("tradeloop.ml.labels", "meta_labels"),
    "rolling_volatility": ("tradeloop.ml.labels", "rolling_volatility"),
    "triple_barrier": ("tradeloop.ml.labels", "triple_barrier"),
    "Calibrator": ("tradeloop.ml.model", "Calibrator"),
    "MetaModel": ("tradeloop.ml.model", "MetaModel"),
    "make_estimator": ("tradeloop.ml.model", "make_estimator"),
    "RetrainEvent": ("tradeloop.ml.monitor", "RetrainEvent"),
    "RetrainMonitor": ("tradeloop.ml.monitor", "RetrainMonitor"),
    "MLOrchestrator": ("tradeloop.ml.orchestrator", "MLOrchestrator"),
    "ModelCatalog": ("tradeloop.ml.registry", "ModelCatalog"),
    "ModelRef": ("tradeloop.ml.registry", "ModelRef"),
    "ModelRegistry": ("tradeloop.ml.registry", "ModelRegistry"),
    "parse_model_spec": ("tradeloop.ml.registry", "parse_model_spec"),
    "bounded_threads": ("tradeloop.ml.threads", "bounded_threads"),
    "vpin_from_bars": ("tradeloop.ml.toxicity", "vpin_from_bars"),
    "vpin_from_trades": ("tradeloop.ml.toxicity", "vpin_from_trades"),
    "MIN_BARS": ("tradeloop.ml.training", "MIN_BARS"),
    "TrainConfig": ("tradeloop.ml.training", "TrainConfig"),
    "TrainResult": ("tradeloop.ml.training", "TrainResult"),
    "train_meta_model": ("tradeloop.ml.training", "train_meta_model"),
}


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())


__all__ = [
    "COLD_START_CONFIDENCE",
    "DEFAULT_FEATURE_SET",
    "MIN_BARS",
    "BarrierLabels",
    "Calibrator",
    "EnrichedSignalEvent",
    "FeatureSet",
    "InferenceLoop",
    "MLOrchestrator",
    "MetaModel",
    "MetaOutput",
    "ModelCatalog",
    "ModelRef",
    "ModelRegistry",
    "OnlineFeatures",
    "RetrainEvent",
    "RetrainMonitor",
    "SignalEvent",
    "TrainConfig",
    "TrainResult",
    "bounded_threads",
    "make_estimator",
    "meta_labels",
    "parse_model_spec",
    "purged_kfold",
    "purged_walk_forward",
    "rolling_volatility",
    "spans_overlap",
    "train_meta_model",
    "triple_barrier",
    "vpin_from_bars",
    "vpin_from_trades",
]
