"""Prometheus series of a running loop engine, fed by the step's bus events.

:class:`EngineMetrics` subscribes (``subscribe_local``) to the events every step publishes
(:mod:`tradeloop.bus.events`) and counts them as they arrive; what no event carries (the
feed's connection, the risk state, the broker's circuit, the model in force) is read from the
engine service's snapshot when Prometheus scrapes. It never touches the kernel.

Families (``_total`` for counters):

- engine: ``tradeloop_engine_steps``, ``tradeloop_engine_bar_to_order_seconds`` (histogram:
  the closed bar taken from the feed's queue -> its order committed and published),
  ``tradeloop_engine_equity``, ``_cash``, ``_drawdown_ratio``, ``_open_positions``,
  ``_paused``, ``_up``, ``_queue_depth``; ``tradeloop_bars``, ``tradeloop_engine_signals``,
  ``_orders``, ``_fills``, ``_trades``;
- feed: ``tradeloop_feed_lag_seconds``, ``_connected``, ``_messages``, ``_reconnects``,
  ``_gaps_backfilled``, ``_malformed``;
- bus: ``tradeloop_bus_published``, ``_delivered``, ``_dropped``, ``_consumer_lag`` (per topic);
- risk: ``tradeloop_risk_checks``, ``_rejections`` (by reason), ``_state`` (1 for the current);
- ML: ``tradeloop_ml_inference_seconds`` and ``_confidence`` (histograms), ``_model_info``,
  ``_model_swaps``, ``_signals`` (kept or dropped);
- stream quality of the live feed per source (registered by the app from the session's
  :class:`~tradeloop.data.stream.metrics.StreamMetrics`): ``tradeloop_stream_messages``,
  ``_gaps``, ``_outliers``, ``_duplicates``, ``_out_of_order``, ``_malformed``, ``_resyncs``,
  ``_failovers``, ``_lag_ms``, ``_lag_ms_max``, ``_messages_per_second``;
- broker: ``tradeloop_broker_orders`` (by status), ``_circuit_state``, ``_rate_budget`` (left
  in the sliding minute), ``_rate_limit`` (when the broker reports them, see
  :class:`~tradeloop.engine.control.BrokerTelemetry`);
- process: ``process_*`` and ``python_*`` (prometheus_client's collectors).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from pydantic import BaseModel

from tradeloop.bus.base import MessageBus
from tradeloop.bus.events import (
    BarEvent,
    EnrichedSignalEvent,
    EquityEvent,
    FillEvent,
    OrderEvent,
    RiskDecisionEvent,
    SignalEvent,
    TradeEvent,
)
from tradeloop.engine.service import LoopService

__all__ = ["EngineMetrics"]

#: latency buckets (seconds) from 100 us to 10 s
_LATENCY = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
)  # fmt: skip
_RISK_STATES = ("active", "reducing", "halted")
_CIRCUIT_STATES = ("closed", "half_open", "open")


class EngineMetrics(Collector):
    """Metrics of one :class:`~tradeloop.engine.service.LoopService` (see the module table).

    Parameters
    ----------
    service
        The engine service (its snapshot and its bus, handed over when the run opens).
    registry
        Where the series are registered.
    equity_points
        How many equity points :meth:`equity_curve` keeps.
    """

    def __init__(
        self, service: LoopService, registry: CollectorRegistry, equity_points: int = 5000
    ) -> None:
        self.service = service
        r = registry
        self.steps = Counter("tradeloop_engine_steps", "Kernel steps run", registry=r)
        self.bar_to_order = Histogram(
            "tradeloop_engine_bar_to_order_seconds",
            "Closed bar taken from the feed's queue -> its order committed and published",
            buckets=_LATENCY,
            registry=r,
        )
        self.equity = Gauge("tradeloop_engine_equity", "Account equity", registry=r)
        self.cash = Gauge("tradeloop_engine_cash", "Account cash", registry=r)
        self.drawdown = Gauge(
            "tradeloop_engine_drawdown_ratio", "Drawdown from the equity peak (0..1)", registry=r
        )
        self.open_positions = Gauge("tradeloop_engine_open_positions", "Open positions", registry=r)
        self.bars = Counter("tradeloop_bars", "Bars completed", ["symbol"], registry=r)
        self.signals = Counter(
            "tradeloop_engine_signals", "Signals from the strategies", ["strategy"], registry=r
        )
        self.orders = Counter(
            "tradeloop_engine_orders", "Orders sent to the broker", ["side"], registry=r
        )
        self.fills = Counter("tradeloop_engine_fills", "Fills", ["reason"], registry=r)
        self.trades = Counter(
            "tradeloop_engine_trades", "Closed trades", ["exit_reason"], registry=r
        )
        self.risk_checks = Counter("tradeloop_risk_checks", "Signals at the risk gate", registry=r)
        self.risk_rejections = Counter(
            "tradeloop_risk_rejections", "Signals refused at the gate", ["reason"], registry=r
        )
        self.inference = Histogram(
            "tradeloop_ml_inference_seconds",
            "Model scoring of one step's entries",
            buckets=_LATENCY,
            registry=r,
        )
        self.confidence = Histogram(
            "tradeloop_ml_confidence",
            "Meta-model confidence of scored entries",
            buckets=tuple(i / 10 for i in range(1, 11)),
            registry=r,
        )
        self.ml_signals = Counter(
            "tradeloop_ml_signals", "Signals through the model", ["kept"], registry=r
        )
        self.delivered = Counter(
            "tradeloop_bus_delivered", "Step events delivered to the metrics", ["topic"], registry=r
        )
        self._delivered: dict[str, int] = {}
        #: the latest signals with the risk gate's answer, newest last (``/signals/recent``)
        self.recent_signals: deque[dict[str, Any]] = deque(maxlen=200)
        self._by_signal: dict[str, dict[str, Any]] = {}
        self._peak = 0.0
        #: ``(bar time ns, equity)`` of recent steps, oldest first
        self.curve: deque[tuple[int, float]] = deque(maxlen=equity_points)
        registry.register(self)
        service.add_listener(self.attach)

    # -- bus ----------------------------------------------------------------------------------
    def attach(self, bus: MessageBus) -> None:
        """Subscribe to the step's events on ``bus`` (called when the run opens)."""
        handlers: dict[str, Callable[[BaseModel], None]] = {
            "tradeloop.bars": self._bar,
            "tradeloop.signals": self._signal,
            "tradeloop.signals.enriched": self._enriched,
            "tradeloop.risk.decisions": self._decision,
            "tradeloop.orders": self._order,
            "tradeloop.fills": self._fill,
            "tradeloop.trades": self._trade,
            "tradeloop.equity": self._equity,
        }
        for topic, handler in handlers.items():
            bus.subscribe_local(topic, self._counted(topic, handler))

    def _counted(
        self, topic: str, handler: Callable[[BaseModel], None]
    ) -> Callable[[BaseModel], None]:
        counter = self.delivered.labels(topic)
        delivered = self._delivered
        delivered[topic] = 0

        def on_message(message: BaseModel) -> None:
            delivered[topic] += 1
            counter.inc()
            handler(message)

        return on_message

    def _bar(self, m: BaseModel) -> None:
        assert isinstance(m, BarEvent)
        self.bars.labels(m.symbol).inc()

    def _signal(self, m: BaseModel) -> None:
        assert isinstance(m, SignalEvent)
        self.signals.labels(m.strategy).inc()
        row: dict[str, Any] = {
            "ts": m.ts,
            "strategy": m.strategy,
            "symbol": m.symbol,
            "action": m.action,
            "signal_id": m.signal_id,
            "confidence": m.confidence,
            "decision": None,
        }
        if len(self.recent_signals) == self.recent_signals.maxlen:
            old = self.recent_signals[0].get("signal_id")
            if old is not None:
                self._by_signal.pop(old, None)
        self.recent_signals.append(row)
        if m.signal_id is not None:
            self._by_signal[m.signal_id] = row

    def _enriched(self, m: BaseModel) -> None:
        assert isinstance(m, EnrichedSignalEvent)
        self.ml_signals.labels("true" if m.kept else "false").inc()
        if m.meta_confidence is not None:
            self.confidence.observe(m.meta_confidence)
        for seconds in self.service.drain_inference_latencies():
            self.inference.observe(seconds)

    def _decision(self, m: BaseModel) -> None:
        assert isinstance(m, RiskDecisionEvent)
        self.risk_checks.inc()
        if not m.accepted:
            self.risk_rejections.labels(m.reason or "unknown").inc()
        row = self._by_signal.get(m.signal_id) if m.signal_id is not None else None
        if row is not None:
            row["decision"] = "accepted" if m.accepted else f"rejected: {m.reason}"

    def _order(self, m: BaseModel) -> None:
        assert isinstance(m, OrderEvent)
        self.orders.labels(m.side).inc()
        received = self.service.bar_received_at()
        if received is not None:
            self.bar_to_order.observe(time.perf_counter() - received)

    def _fill(self, m: BaseModel) -> None:
        assert isinstance(m, FillEvent)
        self.fills.labels(m.reason).inc()

    def _trade(self, m: BaseModel) -> None:
        assert isinstance(m, TradeEvent)
        self.trades.labels(m.exit_reason).inc()

    def _equity(self, m: BaseModel) -> None:
        assert isinstance(m, EquityEvent)
        self.steps.inc()
        self.equity.set(m.equity)
        self.cash.set(m.cash)
        self.open_positions.set(m.open_positions)
        self._peak = max(self._peak, m.equity)
        self.drawdown.set(1.0 - m.equity / self._peak if self._peak > 0 else 0.0)
        self.curve.append((m.ts, m.equity))

    def signals_recent(self, limit: int = 50) -> list[dict[str, Any]]:
        """The latest signals with the gate's decision, newest first."""
        rows = list(self.recent_signals)[-limit:]
        return [dict(r) for r in reversed(rows)]

    def equity_curve(self, limit: int | None = None) -> list[tuple[int, float]]:
        """Recent ``(bar time ns, equity)`` points, oldest first."""
        points = list(self.curve)
        return points[-limit:] if limit else points

    # -- scrape -------------------------------------------------------------------------------
    def collect(self) -> Iterator[Any]:
        """The series read from the engine's snapshot at scrape time."""
        service = self.service
        snap = service.snapshot()
        yield GaugeMetricFamily(
            "tradeloop_engine_up", "1 while the engine runs", value=int(service.running)
        )
        if snap is None:
            return
        status = snap["status"]
        feed = status.get("feed", {})
        last, state, waiting = service.session.feed_now()
        yield GaugeMetricFamily(
            "tradeloop_feed_lag_seconds",
            "Seconds since the last kline from the feed",
            value=time.monotonic() - last if last is not None else float("nan"),
        )
        yield GaugeMetricFamily(
            "tradeloop_feed_connected",
            "1 while the feed is connected",
            value=int(state == "connected"),
        )
        yield GaugeMetricFamily(
            "tradeloop_engine_queue_depth", "Feed events waiting for the engine", value=waiting
        )
        for name, key, doc in (
            ("tradeloop_feed_messages", "messages", "Kline messages from the feed"),
            ("tradeloop_feed_reconnects", "reconnects", "Feed reconnections"),
            ("tradeloop_feed_gaps_backfilled", "backfilled_bars", "Missed bars backfilled"),
            ("tradeloop_feed_malformed", "malformed", "Malformed feed messages"),
        ):
            yield CounterMetricFamily(name, doc, value=float(feed.get(key, 0) or 0))
        yield GaugeMetricFamily(
            "tradeloop_engine_paused", "1 while paused", value=int(bool(snap["risk"]["paused"]))
        )
        # bus: published (the step's count per topic) against delivered here
        published = (status.get("stages") or {}).get("events_published", {})
        pub = CounterMetricFamily(
            "tradeloop_bus_published", "Step events published", labels=["topic"]
        )
        lag = GaugeMetricFamily(
            "tradeloop_bus_consumer_lag",
            "Events published and not yet delivered to the metrics consumer",
            labels=["topic"],
        )
        for topic, n in sorted(published.items()):
            pub.add_metric([topic], float(n))
            lag.add_metric([topic], float(max(0, int(n) - self._delivered.get(topic, 0))))
        yield pub
        yield lag
        yield CounterMetricFamily(
            "tradeloop_bus_dropped", "Bus messages dropped", value=float(service.bus_dropped())
        )
        state = snap["risk"]["state"]
        risk = GaugeMetricFamily(
            "tradeloop_risk_state", "1 for the current trading state", labels=["state"]
        )
        for s in _RISK_STATES:
            risk.add_metric([s], float(s == state))
        yield risk
        model = snap.get("model")
        if model is not None:
            info = GaugeMetricFamily(
                "tradeloop_ml_model_info", "The model in force", labels=["name", "version"]
            )
            info.add_metric([str(model["name"]), str(model["version"])], 1.0)
            yield info
            yield CounterMetricFamily(
                "tradeloop_ml_model_swaps", "Models swapped in", value=float(model["swaps"])
            )
        broker = snap["broker"]
        orders = GaugeMetricFamily(
            "tradeloop_broker_orders", "Orders of the run by status", labels=["status"]
        )
        for st, n in sorted(broker.get("orders_by_status", {}).items()):
            orders.add_metric([st], float(n))
        yield orders
        circuit = broker.get("circuit")
        if circuit is not None:
            cs = GaugeMetricFamily(
                "tradeloop_broker_circuit_state", "1 for the circuit's state", labels=["state"]
            )
            for s in _CIRCUIT_STATES:
                cs.add_metric([s], float(s == circuit))
            yield cs
        budget = broker.get("rate_budget")
        if budget is not None:
            yield GaugeMetricFamily(
                "tradeloop_broker_rate_budget", "Requests left in the rate window", value=budget
            )
        limit = broker.get("rate_limit")
        if limit is not None:
            yield GaugeMetricFamily(
                "tradeloop_broker_rate_limit", "Size of the rate window (requests)", value=limit
            )
