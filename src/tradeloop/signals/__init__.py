"""Adaptive signal loop: liquidation zones -> signals -> feedback -> weights."""

from tradeloop.signals.adaptive import (
    WINDOWS_NS,
    AdaptClock,
    AdaptiveConfig,
    AdaptiveEngine,
    AdaptSchedule,
    WeightChange,
    rolling_windows,
)
from tradeloop.signals.feedback import (
    FeedbackConsumer,
    feedback_topic,
    trade_signal_id,
    trades_to_feedback,
)
from tradeloop.signals.heatmap import (
    HeatmapConfig,
    LiquidationHeatmap,
    liquidation_price,
    tier_component,
)
from tradeloop.signals.models import (
    DEFAULT_COMPONENT,
    AdaptiveWeights,
    LiquidationSignal,
    TradeFeedback,
    signal_codec,
    symbol_key,
)
from tradeloop.signals.publisher import SignalPublisher, signal_topic
from tradeloop.signals.service import Role, SignalService
from tradeloop.signals.weights import SharedWeights, bus_weights, store_weights

__all__ = [
    "DEFAULT_COMPONENT",
    "WINDOWS_NS",
    "AdaptClock",
    "AdaptSchedule",
    "AdaptiveConfig",
    "AdaptiveEngine",
    "AdaptiveWeights",
    "FeedbackConsumer",
    "HeatmapConfig",
    "LiquidationHeatmap",
    "LiquidationSignal",
    "Role",
    "SharedWeights",
    "SignalPublisher",
    "SignalService",
    "TradeFeedback",
    "WeightChange",
    "bus_weights",
    "feedback_topic",
    "liquidation_price",
    "rolling_windows",
    "signal_codec",
    "signal_topic",
    "store_weights",
    "symbol_key",
    "tier_component",
    "trade_signal_id",
    "trades_to_feedback",
]
