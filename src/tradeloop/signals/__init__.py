"""Adaptive signal loop: liquidation zones -> signals -> feedback -> weights."""

from tradeloop.signals.adaptive import WINDOWS_NS, AdaptiveConfig, AdaptiveEngine, WeightChange
from tradeloop.signals.feedback import FeedbackConsumer, feedback_topic, trades_to_feedback
from tradeloop.signals.heatmap import (
    HeatmapConfig,
    LiquidationHeatmap,
    liquidation_price,
    tier_component,
)
from tradeloop.signals.models import (
    DEFAULT_COMPONENT,
    LiquidationSignal,
    TradeFeedback,
    signal_codec,
    symbol_key,
)
from tradeloop.signals.publisher import SignalPublisher, signal_topic
from tradeloop.signals.service import SignalService

__all__ = [
    "DEFAULT_COMPONENT",
    "WINDOWS_NS",
    "AdaptiveConfig",
    "AdaptiveEngine",
    "FeedbackConsumer",
    "HeatmapConfig",
    "LiquidationHeatmap",
    "LiquidationSignal",
    "SignalPublisher",
    "SignalService",
    "TradeFeedback",
    "WeightChange",
    "feedback_topic",
    "liquidation_price",
    "signal_codec",
    "signal_topic",
    "symbol_key",
    "tier_component",
    "trades_to_feedback",
]
