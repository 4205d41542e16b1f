"""What differs between backtest, paper and live: the clock, the broker and the bus.

Everything else (the step, the strategy contract, the risk engine, the enrichment, the
events) is the same object in every mode. The kernels and sessions ask here for the parts
that differ, so a venue broker is one more branch of :func:`make_broker`, never a new loop.

| mode | clock | broker | bus |
|---|---|---|---|
| ``backtest`` | :class:`~tradeloop.core.clock.HistoricalClock` (moved by the step) | simulated, intrabar drill-down | none, or in-process |
| ``paper`` | :class:`~tradeloop.core.clock.LiveClock` (wall time for the session) | simulated, order statuses tracked | in-process, or Redis |
| ``live`` | :class:`~tradeloop.core.clock.LiveClock` | a venue broker (not built yet) | in-process, or Redis |
"""  # noqa: E501

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from tradeloop.bus.base import InProcessBus, MessageBus
from tradeloop.core.clock import Clock, HistoricalClock, LiveClock
from tradeloop.core.errors import ConfigError
from tradeloop.core.instrument import Instrument
from tradeloop.core.portfolio import Portfolio
from tradeloop.engine.config import RunConfig
from tradeloop.execution.broker import Broker, IntrabarSource
from tradeloop.execution.config import SimulatedBrokerConfig
from tradeloop.execution.simulated import SimulatedBroker

__all__ = ["MODES", "Mode", "make_broker", "make_bus", "make_clock"]

Mode = Literal["backtest", "paper", "live"]
MODES: tuple[Mode, ...] = ("backtest", "paper", "live")


def _check(mode: str) -> Mode:
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {list(MODES)}, got {mode!r}")
    return mode  # type: ignore[return-value]


def make_clock(mode: str) -> Clock:
    """The mode's clock: simulated time in a backtest, wall time otherwise.

    >>> type(make_clock("backtest")).__name__, type(make_clock("paper")).__name__
    ('HistoricalClock', 'LiveClock')
    """
    return HistoricalClock() if _check(mode) == "backtest" else LiveClock()


def make_broker(
    mode: str,
    portfolio: Portfolio,
    instruments: Mapping[str, Instrument],
    timeframe: str,
    rules: RunConfig,
    *,
    intrabar: IntrabarSource | None = None,
) -> Broker:
    """The mode's broker behind the :class:`~tradeloop.execution.broker.Broker` port.

    Backtest and paper fill through the same simulated broker (one fill path); paper also
    tracks every order's status for the state store. Live trading needs a venue broker.

    Raises
    ------
    ConfigError
        For an unknown mode, or ``live`` (no venue broker in this version).
    """
    if _check(mode) == "live":
        raise ConfigError("live trading needs a venue broker; none is built in this version")
    broker = SimulatedBroker(
        portfolio,
        dict(instruments),
        timeframe,
        SimulatedBrokerConfig(rules.fill_price, rules.slippage_bps, rules.allow_short),
        intrabar=intrabar,
    )
    if mode == "paper":
        broker.order_status = {}
    return broker


def make_bus(url: str | None = None) -> MessageBus:
    """An in-process bus, or a Redis bus at ``url`` (start it with ``await bus.start()``)."""
    if not url:
        return InProcessBus()
    from tradeloop.bus.codec import MessageCodec
    from tradeloop.bus.events import TOPICS
    from tradeloop.bus.redis_bus import RedisBus, RedisBusConfig
    from tradeloop.signals.models import AdaptiveWeights, TradeFeedback

    codec = MessageCodec((*TOPICS.values(), AdaptiveWeights, TradeFeedback))
    return RedisBus(RedisBusConfig(url=url), codec)
