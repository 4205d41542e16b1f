"""What differs between backtest, paper and live: the clock, the broker and the bus.

Everything else (the step, the strategy contract, the risk engine, the enrichment, the
events) is the same object in every mode. The kernels and sessions ask here for the parts
that differ, so a venue broker is one more branch of :func:`make_broker`, never a new loop.

| mode | clock | broker | bus |
|---|---|---|---|
| ``backtest`` | :class:`~tradeloop.core.clock.HistoricalClock` (moved by the step) | simulated, intrabar drill-down | none, or in-process |
| ``paper`` | :class:`~tradeloop.core.clock.LiveClock` (wall time for the session) | simulated, order statuses tracked | in-process, or Redis |
| ``live`` | :class:`~tradeloop.core.clock.LiveClock` | :class:`~tradeloop.execution.venue_broker.VenueBroker` on the venue's client (``ccxt`` or ``alpaca``, :class:`VenueSpec`) | in-process, or Redis |
"""  # noqa: E501

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from tradeloop.core.clock import Clock, HistoricalClock, LiveClock
from tradeloop.core.errors import ConfigError
from tradeloop.core.extras import needs_extra
from tradeloop.core.instrument import Instrument
from tradeloop.core.portfolio import Portfolio
from tradeloop.engine.config import RunConfig
from tradeloop.execution.broker import Broker, IntrabarSource
from tradeloop.execution.config import SimulatedBrokerConfig
from tradeloop.execution.simulated import SimulatedBroker

if TYPE_CHECKING:  # a backtest never loads the bus or the venue broker (and their libraries)
    from tradeloop.bus.base import MessageBus
    from tradeloop.execution.venue import VenueClient
    from tradeloop.execution.venue_broker import NotionalCaps


def _default_caps() -> NotionalCaps:
    from tradeloop.execution.venue_broker import NotionalCaps

    return NotionalCaps()


__all__ = [
    "BROKERS",
    "MODES",
    "Mode",
    "VenueSpec",
    "make_broker",
    "make_bus",
    "make_clock",
    "make_venue_client",
]

Mode = Literal["backtest", "paper", "live"]
MODES: tuple[Mode, ...] = ("backtest", "paper", "live")
#: venue brokers of live mode
BROKERS: tuple[str, ...] = ("ccxt", "alpaca")


@dataclass(frozen=True, slots=True)
class VenueSpec:
    """Which venue a live run trades on, and its guards.

    Attributes
    ----------
    broker
        ``ccxt`` (crypto exchanges) or ``alpaca`` (US equities).
    exchange, market
        The ccxt exchange id and ``spot``/``perp`` (``alpaca`` for Alpaca).
    run_id
        The run (client order ids derive from it).
    settings
        The process settings (endpoints, keys); None loads them.
    real_money
        False (default): the venue's testnet/sandbox/paper endpoints; True: real money.
    caps
        Per-order and per-day notional caps.
    stream
        Use the venue's user-data stream (False: REST polling only).
    alert, on_breaker
        ``alert(title, text)`` and the circuit breaker's state-change listener.
    client
        A ready client (tests, benchmarks) instead of one built from the fields above.
    """

    broker: str
    exchange: str
    run_id: str
    market: str = "spot"
    settings: Any = None
    real_money: bool = False
    caps: NotionalCaps = field(default_factory=_default_caps)
    stream: bool = True
    alert: Callable[[str, str], None] | None = None
    on_breaker: Callable[[Any, Any, str], None] | None = None
    client: VenueClient | None = None


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
    venue: VenueSpec | None = None,
) -> Broker:
    """The mode's broker behind the :class:`~tradeloop.execution.broker.Broker` port.

    Backtest and paper fill through the same simulated broker (one fill path); paper also
    tracks every order's status for the state store. Live trades through a
    :class:`~tradeloop.execution.venue_broker.VenueBroker` on the client of ``venue``
    (:func:`make_venue_client`); its user-data stream is started here.

    Raises
    ------
    ConfigError
        For an unknown mode, ``live`` without ``venue``, an unknown broker, or a broker whose
        package is not installed.
    """
    if _check(mode) == "live":
        if venue is None:
            raise ConfigError("live trading needs a venue (broker, exchange)")
        from tradeloop.execution.fees import FeeModel
        from tradeloop.execution.venue_broker import VenueBroker

        client = venue.client if venue.client is not None else make_venue_client(venue)
        broker_ = VenueBroker(
            client,
            portfolio,
            instruments,
            run_id=venue.run_id,
            fees=FeeModel.for_venue(venue.exchange, instruments),
            caps=venue.caps,
            alert=venue.alert,
            on_breaker=venue.on_breaker,
            post_only_entries=rules.post_only_entries,
            cash_buffer_pct=rules.cash_buffer_pct,
        )
        client.start_stream()
        return broker_
    broker = SimulatedBroker(
        portfolio,
        dict(instruments),
        timeframe,
        SimulatedBrokerConfig(
            rules.fill_price,
            rules.slippage_bps,
            rules.allow_short,
            rules.post_only_entries,
            rules.cash_buffer_pct,
        ),
        intrabar=intrabar,
    )
    if mode == "paper":
        broker.order_status = {}
    return broker


def make_venue_client(venue: VenueSpec) -> VenueClient:
    """The venue client of ``venue.broker``: ccxt's, or Alpaca's (imported only when asked).

    Without ``real_money`` the ccxt client uses the exchange's testnet unless an endpoint
    ``url`` is configured (a local venue), and Alpaca its paper endpoints.

    Raises
    ------
    ConfigError
        Unknown broker, missing keys, or the Alpaca extra not installed.
    """
    name = venue.broker.lower()
    if name not in BROKERS:
        raise ConfigError(f"broker must be one of {list(BROKERS)}, got {venue.broker!r}")
    settings = venue.settings
    if settings is None:
        from tradeloop.config.settings import load_settings

        settings = load_settings()
    if name == "alpaca":
        with needs_extra("alpaca", "the alpaca broker"):
            from tradeloop.adapters.alpaca import AlpacaClient, AlpacaConfig
        return AlpacaClient(AlpacaConfig.from_settings(settings, paper=not venue.real_money))  # type: ignore[no-any-return]
    from tradeloop.adapters.ccxt.broker import CcxtVenueClient
    from tradeloop.adapters.ccxt.credentials import load_credentials

    ex_settings = settings.exchange(venue.exchange)
    if not venue.real_money and not ex_settings.url and not ex_settings.testnet:
        ex_settings = ex_settings.model_copy(update={"testnet": True})
    return CcxtVenueClient(
        venue.exchange,
        venue.market,
        ex_settings,
        load_credentials(venue.exchange, settings),
        stream=venue.stream,
    )


def make_bus(url: str | None = None) -> MessageBus:
    """An in-process bus, or a Redis bus at ``url`` (start it with ``await bus.start()``)."""
    from tradeloop.bus.base import InProcessBus

    if not url:
        return InProcessBus()
    from tradeloop.bus.codec import MessageCodec
    from tradeloop.bus.events import TOPICS
    from tradeloop.bus.redis_bus import RedisBus, RedisBusConfig
    from tradeloop.signals.models import AdaptiveWeights, TradeFeedback

    codec = MessageCodec((*TOPICS.values(), AdaptiveWeights, TradeFeedback))
    return RedisBus(RedisBusConfig(url=url), codec)
