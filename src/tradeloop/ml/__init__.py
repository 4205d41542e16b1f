"""Meta-labeling: features, triple-barrier labels, purged training, registry, inference, VPIN.

The meta-model answers one question for every primary signal: how likely is this trade to
make money (hit its profit barrier first)? Its confidence sizes the position.
"""

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
