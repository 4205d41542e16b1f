"""The kernel step's events on the bus: one versioned schema per topic.

Every step of a run with a bus publishes, in this order: the bars it completed, the
strategy's signals, the enriched signals (when a model is used), the risk decisions, the
orders sent, the fills and closed trades it caused, and the equity after it. Each message
carries ``v`` (the schema version; a breaking change bumps it), ``run`` (the run id),
``ts`` (UTC ns of the step's bar) and ``event_id``: ``<run>:<topic>:<ts>:<n>`` (the n-th
message of the topic at that ``ts``), the same in every mode and on every delivery. A paper or
live run stores a step's messages with the step and publishes them again after a crash, so a
message can arrive more than once: consumers skip an ``event_id`` they have seen. Timestamps
are int64 ns since the epoch, UTC; prices and quantities are floats.

| topic | message | one per |
|---|---|---|
| ``tradeloop.bars`` | :class:`BarEvent` | symbol bar completed at the step |
| ``tradeloop.signals`` | :class:`SignalEvent` | signal the strategy returned |
| ``tradeloop.signals.enriched`` | :class:`EnrichedSignalEvent` | signal through the model |
| ``tradeloop.risk.decisions`` | :class:`RiskDecisionEvent` | signal at the risk gate |
| ``tradeloop.orders`` | :class:`OrderEvent` | order sent to the broker |
| ``tradeloop.fills`` | :class:`FillEvent` | fill |
| ``tradeloop.trades`` | :class:`TradeEvent` | closed trade |
| ``tradeloop.equity`` | :class:`EquityEvent` | step |
| ``tradeloop.regimes`` | :class:`RegimeEvent` | step of a run with a regime model |
| ``tradeloop.market.trades`` | :class:`MarketTradesEvent` | batch of accepted market trades |
| ``tradeloop.market.book`` | :class:`BookTopEvent` | book update batch of a symbol |
| ``tradeloop.data.quality`` | :class:`DataQualityEvent` | market-data source, periodically |

The market-data topics (published by the streaming pipeline, not the step) carry ``run`` as
the pipeline's name and ``ts`` as the venue time of the latest event they summarise.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from tradeloop.bus.codec import MessageCodec

__all__ = [
    "TOPICS",
    "BarEvent",
    "BookTopEvent",
    "DataQualityEvent",
    "EnrichedSignalEvent",
    "EquityEvent",
    "FillEvent",
    "MarketTradesEvent",
    "OrderEvent",
    "RegimeEvent",
    "RiskDecisionEvent",
    "SignalEvent",
    "TradeEvent",
    "event_codec",
]


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1] = 1
    run: str
    ts: int
    #: ``<run>:<topic>:<ts>:<n>``, stamped by the publisher ('' on messages not from a step)
    event_id: str = ""


class BarEvent(_Event):
    """A bar that completed at the step."""

    symbol: str
    timeframe: str
    open: float
    high: float
    low: float
    close: float
    volume: float | None


class SignalEvent(_Event):
    """A signal the strategy returned; ``signal_id`` is set on opening signals."""

    strategy: str
    signal_id: str | None
    symbol: str
    action: Literal["open_long", "open_short", "close"]
    size: float
    size_mode: str
    stop_loss: float | None
    take_profit: float | None
    trailing_stop: float | None
    tag: str
    confidence: float | None


class EnrichedSignalEvent(_Event):
    """A signal after the model: its confidence, or dropped below the threshold.

    ``meta_confidence``, ``toxicity`` and ``regime_weight`` are what the model found for an
    entry (None for exits, and when the enrichment keeps no record)."""

    signal_id: str | None
    symbol: str
    action: str
    confidence: float | None
    kept: bool
    meta_confidence: float | None = None
    toxicity: float | None = None
    regime_weight: float | None = None


class RiskDecisionEvent(_Event):
    """The risk gate's answer to a signal: an order id, or a rejection with its reason."""

    signal_id: str | None
    symbol: str
    accepted: bool
    order_id: int | None
    reason: str | None
    detail: str | None


class OrderEvent(_Event):
    """An order sent to the broker."""

    order_id: int
    signal_id: str | None
    symbol: str
    side: str
    type: str
    quantity: float
    equity_fraction: float | None
    reduce_only: bool
    tag: str


class FillEvent(_Event):
    """A fill (entry, exit, stop, target, trailing, risk flatten)."""

    order_id: int
    symbol: str
    side: str
    quantity: float
    price: float
    fee: float
    reason: str


class TradeEvent(_Event):
    """A closed trade; ``signal_id`` is the id of the signal that opened it."""

    signal_id: str
    strategy: str
    symbol: str
    side: Literal["long", "short"]
    quantity: float
    entry_ts: int
    entry_price: float
    exit_ts: int
    exit_price: float
    pnl: float
    pnl_pct: float
    fees: float
    exit_reason: str
    tag: str


class EquityEvent(_Event):
    """The account after the step."""

    step: int
    equity: float
    cash: float
    open_positions: int


class MarketTradesEvent(_Event):
    """Market trades the pipeline accepted, columnar (one batch of one venue and symbol).

    ``side`` is the aggressor side (+1 buy, -1 sell, 0 unknown); ``outlier`` flags trades the
    outlier filter flagged (action ``flag``); ``cvd`` is the live CVD after the batch.
    """

    venue: str
    symbol: str
    trade_ts: list[int]
    price: list[float]
    amount: list[float]
    side: list[int]
    trade_id: list[str]
    outlier: list[bool]
    cvd: float


class BookTopEvent(_Event):
    """The top of a symbol's L2 book after an update batch."""

    venue: str
    symbol: str
    seq: int
    bid: float
    bid_size: float
    ask: float
    ask_size: float
    spread: float
    microprice: float
    imbalance: float


class DataQualityEvent(_Event):
    """Quality metrics of one market-data source (counters since start)."""

    source: str
    messages: int
    msgs_per_s: float
    lag_ms: float
    lag_ms_max: float
    gaps: int
    outliers: int
    duplicates: int
    malformed: int
    resyncs: int
    failovers: int
    out_of_order: int = 0


class RegimeEvent(_Event):
    """The market regime the run acts on after the step's bar (published before the strategy
    is called, so it precedes the step's signals).

    ``regime`` is the adopted regime (None before the first), ``detected`` what the model named
    at this bar ('' in its warm-up) with its ``confidence``; ``exposure`` the size multiplier
    in force (ramping towards ``target``)."""

    symbol: str
    model: str
    regime: str | None
    detected: str
    confidence: float | None
    exposure: float
    target: float


#: topic -> message class
TOPICS: dict[str, type[_Event]] = {
    "tradeloop.bars": BarEvent,
    "tradeloop.signals": SignalEvent,
    "tradeloop.signals.enriched": EnrichedSignalEvent,
    "tradeloop.risk.decisions": RiskDecisionEvent,
    "tradeloop.orders": OrderEvent,
    "tradeloop.fills": FillEvent,
    "tradeloop.trades": TradeEvent,
    "tradeloop.equity": EquityEvent,
    "tradeloop.regimes": RegimeEvent,
    "tradeloop.market.trades": MarketTradesEvent,
    "tradeloop.market.book": BookTopEvent,
    "tradeloop.data.quality": DataQualityEvent,
}


def event_codec() -> MessageCodec:
    """A codec that knows every step event (for Redis consumers of these topics)."""
    return MessageCodec(tuple(TOPICS.values()))
