"""A paper-trading session: live exchange klines through the backtest kernel, durably.

:class:`PaperSession` wires the pieces around one :class:`~tradeloop.engine.live.LiveKernel`:

- the exchange's WebSocket kline stream runs on an asyncio loop in a feed thread and puts
  events on a queue; this (main) thread drains it one event at a time;
- warm-up history and every bar missed while the stream was down (or skipped by it) come from
  the exchange's REST candles through ccxt, before the strategy sees a newer bar;
- state goes to the state store at every step (SQLite file or PostgreSQL URL), so a killed
  session restarted with the same arguments continues where it stopped;
- ``status.json`` is rewritten atomically every iteration, a heartbeat line is logged, and
  alerts go out on start, fills, errors, feed failures and shutdown;
- :meth:`PaperSession.request_stop` (SIGINT/SIGTERM in the CLI) stops intake, finishes the
  event in flight, persists, closes the feed and exits within a bounded time.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from tradeloop.adapters.ccxt.history import CcxtHistorySource
from tradeloop.adapters.ccxt.live import closed_bars, instruments_for
from tradeloop.adapters.feeds.events import FeedStatus, KlineUpdate
from tradeloop.adapters.market import BarFeed, VenueMarketData, venue_market_data
from tradeloop.adapters.streams.kline_feed import KlineFeed
from tradeloop.alerts import (
    Alerter,
    LogAlerter,
    close_alert,
    daily_summary_alert,
    error_alert,
    open_alert,
    risk_alert,
    shutdown_alert,
    start_alert,
)
from tradeloop.alerts.base import Alert
from tradeloop.bus.base import InProcessBus, MessageBus
from tradeloop.config.settings import Settings
from tradeloop.core.errors import ConfigError, StrategyError, TemporaryError, VenueError
from tradeloop.core.instrument import AssetClass, Instrument
from tradeloop.core.time import to_iso
from tradeloop.core.timeframes import timeframe_ns
from tradeloop.data.stream.metrics import StreamMetrics
from tradeloop.engine.config import RunConfig, risk_rules
from tradeloop.engine.enrichment import ModelEnrichment, ModelTimeline
from tradeloop.engine.factories import make_clock
from tradeloop.engine.live import LiveKernel, StepOutcome
from tradeloop.engine.regime import RegimeOptions, RegimeSource
from tradeloop.engine.scheduler import Scheduler, schedule_for
from tradeloop.engine.signal_journal import SignalJournal
from tradeloop.engine.status import write_status
from tradeloop.ml.registry import ModelCatalog, parse_model_spec
from tradeloop.ml.threads import DEFAULT_ML_THREADS
from tradeloop.risk.config import RiskConfig
from tradeloop.risk.killswitch import RiskEvent
from tradeloop.store.analytics import AnalyticsStore
from tradeloop.store.state import StateStore, open_state_store
from tradeloop.strategy.base import Strategy

__all__ = [
    "PaperConfig",
    "PaperSession",
    "default_run_id",
    "enrichment_of",
    "instrument_from_dict",
    "record_model_swap",
    "risk_config_of",
    "run_summaries",
    "stored_run_config",
]

logger = logging.getLogger(__name__)

#: run metadata that must match when a session restarts an existing run
_IDENTITY = (
    "strategy",
    "params",
    "exchange",
    "market",
    "symbols",
    "timeframe",
    "balance",
    "risk",
    "model",
    "regime",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class PaperConfig(RunConfig):
    """Everything a paper session needs besides the strategy object.

    A paper config *is* a :class:`~tradeloop.engine.config.RunConfig`: the trading rules
    (``balance``, ``slippage_bps``, ``fill_price``, ``allow_short``, ``risk``) are the
    run config's own fields, validated the same way, and the session's kernel and the
    ``tradeloop parity`` replay use exactly them. The fields of a fixed bar window do not
    apply to a live stream and are refused: ``fee`` (the venue's instruments carry their
    fees), ``start``/``end`` (use ``until_ns``), ``trade_start`` (the warm-up bars end at the
    first live bar) and ``close_at_end``. Every field is passed by keyword.

    Attributes
    ----------
    exchange, market
        ccxt exchange id and ``spot``/``perp``.
    symbols, timeframe
        What to stream and trade (``timeframe`` is required here).
    risk
        The risk rules: a profile name, a risk file's parsed TOML table or a
        :class:`RiskConfig` of a named profile; the attribute holds the resolved rules.
    risk_setting
        The rules as the run stores them: the profile name or the table given as ``risk``
        (pass ``risk``; this is filled from it, and :func:`dataclasses.replace` carries it).
        A restart whose rules differ is refused, and the parity replay rebuilds the rules
        from it.
    run_id
        Key of the run in the state store; the same id continues the run.
    state_url
        SQLite file path or ``postgresql://`` URL of the state store.
    status_path
        Where ``status.json`` is written.
    warmup_bars
        Closed bars fetched over REST before the first live bar (the strategy's history).
    max_bars
        Bars kept per symbol for the strategy's view.
    until_ns
        Stop (exit 0) once the bar opened at this time has been processed.
    stale_after_s
        Feed watchdog: reconnect when no message came for this long.
    heartbeat_s
        Seconds between heartbeat log lines.
    alert_after_failures
        Alert after this many failed reconnection attempts in a row.
    step_grace_s
        Multi-symbol runs: run a step after this long even if a symbol has not closed the bar.
    shutdown_timeout_s
        Bound on a graceful shutdown.
    fresh
        Delete a stored run of the same id before starting.
    calendar
        Market calendar (``XNYS``...) or None for 24/7 crypto trading.
    allow_data_issues
        Start on warm-up history that fails the data gate (extreme values, interpolated runs,
        off-grid stamps, OHLC violations), logging the findings; by default such history
        stops the session with a ``DataError`` naming the bars.
    model, model_registry, min_confidence, use_toxicity, ml_threads
        ML enrichment (:class:`~tradeloop.engine.enrichment.ModelEnrichment`): ``NAME`` or
        ``NAME:VERSION`` in the model folder ``model_registry``, the confidence threshold
        (None: the model's own), whether toxicity lowers the confidence, inference threads.
        The run stores the resolved name and version: a restart without a version keeps the
        run's version, one with another version (or threshold) is refused, and
        ``tradeloop parity`` replays with the stored model.
    regime
        A regime model (:class:`~tradeloop.engine.regime.RegimeOptions`): filtered causally at
        every step, it sets the risk engine's regime and size multiplier and the enrichment's
        regime weight, as in a backtest; the status file shows it. The run stores the model's
        name, resolved version and transition settings: a restart without a version keeps the
        run's version, one with other settings is refused. A restarted run refilters the bars
        it holds.
    journal_path
        The learning loop's analytics store (DuckDB): every signal the run emits, executed or
        rejected with the risk engine's reason, is journaled there
        (:class:`~tradeloop.engine.signal_journal.SignalJournal`). None: no journal (a session
        that opens its own store, as ``tradeloop run``, journals into that one).

    Raises
    ------
    ConfigError
        On construction, for an invalid trading rule (as :class:`RunConfig`) or a field a
        paper session cannot honour.
    """

    exchange: str
    symbols: tuple[str, ...]
    timeframe: str
    run_id: str
    state_url: str
    status_path: Path
    market: str = "spot"
    risk_setting: str | Mapping[str, Any] | None = None
    warmup_bars: int = 500
    max_bars: int = 100_000
    until_ns: int | None = None
    stale_after_s: float = 60.0
    heartbeat_s: float = 60.0
    alert_after_failures: int = 5
    step_grace_s: float = 5.0
    shutdown_timeout_s: float = 10.0
    fresh: bool = False
    calendar: str | None = None
    allow_data_issues: bool = False
    settings: Settings = field(default_factory=Settings)
    model: str | None = None
    model_registry: str | Path = "models"
    min_confidence: float | None = None
    use_toxicity: bool = False
    ml_threads: int = DEFAULT_ML_THREADS
    regime: RegimeOptions | None = None
    journal_path: Path | None = None

    def __post_init__(self) -> None:
        for name, unused in (
            ("fee", self.fee != 0.0),
            ("start", self.start is not None),
            ("end", self.end is not None),
            ("trade_start", self.trade_start is not None),
            ("close_at_end", self.close_at_end),
        ):
            if unused:
                raise ConfigError(f"a paper session takes no {name}: {_NOT_IN_PAPER[name]}")
        for name, flag, value, least in (
            ("warmup_bars", "--warmup", self.warmup_bars, 0),
            ("max_bars", "--max-bars", self.max_bars, 1),
        ):
            if value < least:
                raise ConfigError(f"{name} ({flag}) must be {least} or more, got {value}")
        for name, flag, seconds in (
            ("stale_after_s", "--stale-after", self.stale_after_s),
            ("heartbeat_s", "--heartbeat", self.heartbeat_s),
        ):
            if not seconds > 0:
                raise ConfigError(f"{name} ({flag}) must be a positive number of seconds")
        given: object = self.risk
        setting = self.risk_setting if self.risk_setting is not None else _risk_setting(given)
        rules = risk_config_of(setting)
        if isinstance(given, RiskConfig) and given != rules:
            raise ConfigError(
                f"risk ({given.profile} profile) and risk_setting ({setting!r}) differ"
            )
        object.__setattr__(self, "risk", rules)
        object.__setattr__(
            self, "risk_setting", setting if isinstance(setting, str) else dict(setting)
        )
        RunConfig.__post_init__(self)  # zero-argument super() fails in slotted dataclasses


#: why a paper session refuses a field of a fixed bar window
_NOT_IN_PAPER = {
    "fee": "the exchange's instruments carry their own fees",
    "start": "the session trades from the first live bar",
    "end": "use until_ns to stop",
    "trade_start": "the warm-up bars end at the first live bar",
    "close_at_end": "a session stops with its positions kept in the state store",
}


def _risk_setting(risk: object) -> str | Mapping[str, Any]:
    """The storable form of the ``risk`` a paper config was given."""
    if risk is None:
        return "permissive"
    if isinstance(risk, str | Mapping):
        return risk
    if isinstance(risk, RiskConfig):
        named = RiskConfig.from_profile(risk.profile)
        if risk == named:
            return risk.profile
        raise ConfigError(
            "a paper run stores its risk rules as a profile name or a risk file's table; "
            "pass risk as one of those, not a changed RiskConfig"
        )
    raise ConfigError(f"risk must be a profile name or a risk table, got {risk!r}")


class SessionControl(Protocol):
    """Operator commands for a running session (:mod:`tradeloop.engine.control`)."""

    def opened(self, session: PaperSession, kernel: LiveKernel) -> None:
        """The run is open (or restored), before its first event."""
        ...

    def run_pending(self, session: PaperSession, kernel: LiveKernel) -> None:
        """Carry out the commands queued since the last call (on the session's thread)."""
        ...


class _StampedQueue(queue.Queue[Any]):
    """The feed's event queue; :attr:`got_at` is when the event last taken was put
    (``time.perf_counter()``), so a step's latency counts the time its bar waited here.

    It also keeps what the feed itself last did, whatever the engine's backlog:
    :attr:`kline_put_at` (``time.monotonic()`` of the last kline put) and :attr:`feed_state`
    (the last connection state put)."""

    def __init__(self) -> None:
        super().__init__()
        self.got_at = 0.0
        self.kline_put_at: float | None = None
        self.feed_state = "connecting"

    def _put(self, item: Any) -> None:
        self.queue.append((time.perf_counter(), item))
        if isinstance(item, KlineUpdate):
            self.kline_put_at = time.monotonic()
        elif isinstance(item, FeedStatus) and item.state != "malformed":
            self.feed_state = item.state

    def _get(self) -> Any:
        self.got_at, item = self.queue.popleft()
        return item


class _StopRequestedError(Exception):
    """A stop was requested while the session waited to retry a REST call."""


def run_summaries(store: StateStore) -> list[dict[str, Any]]:
    """One row per run in ``store``: what it trades, how far it got and where it stands.

    Keys: ``run_id``, ``mode``, ``strategy``, ``exchange``, ``symbols``, ``timeframe``,
    ``started`` and ``last_bar`` (ISO or None), ``steps``, ``equity``, ``return_pct``,
    ``trades`` (closed), ``open_positions``, ``risk_state``, and for live runs
    ``slippage_bps`` (mean adverse slippage of the fills) and ``slippage_cost`` (total, quote
    currency; None for paper runs). Runs are ordered by start time.
    """
    rows: list[dict[str, Any]] = []
    for run_id in store.run_ids():
        meta = store.load_run_meta(run_id) or {}
        state = store.load_run(run_id)
        engine = state.engine_state if state is not None else {}
        portfolio = state.portfolio if state is not None else None
        created = store.run_created_ns(run_id)
        last = engine.get("last_step_ts")
        equity = portfolio.equity if portfolio is not None else None
        start_cash = portfolio.initial_balance if portfolio is not None else meta.get("balance")
        risk = engine.get("risk", {}).get("kill_switch", {})
        slip = (engine.get("broker") or {}).get("slippage_totals")
        fills = int(slip[0]) if isinstance(slip, list) and len(slip) == 3 else 0
        rows.append(
            {
                "run_id": run_id,
                "mode": meta.get("mode", "?"),
                "strategy": meta.get("strategy", "?"),
                "exchange": meta.get("exchange", "?"),
                "symbols": list(meta.get("symbols", [])),
                "timeframe": meta.get("timeframe", "?"),
                "started": to_iso(int(created)) if created is not None else None,
                "last_bar": to_iso(int(last)) if last is not None else None,
                "steps": int(engine.get("steps", 0)),
                "equity": equity,
                "return_pct": (equity / start_cash - 1.0) * 100.0
                if equity is not None and start_cash
                else None,
                "trades": sum(1 for t in portfolio.trades if t.exit_ts is not None)
                if portfolio is not None
                else 0,
                "open_positions": len(portfolio.positions) if portfolio is not None else 0,
                "risk_state": risk.get("state", "active"),
                "slippage_bps": float(slip[1]) / fills if fills else None,
                "slippage_cost": float(slip[2]) if fills else None,
            }
        )
    rows.sort(key=lambda r: (r["started"] or "", r["run_id"]))
    return rows


def risk_config_of(risk: str | Mapping[str, Any]) -> RiskConfig:
    """The risk rules of a paper run: a profile name, or a risk file's parsed TOML.

    The TOML content (not the file's path) is what a run stores: the parity replay uses the
    rules the run started with, and a restart whose rules differ is refused.

    Raises
    ------
    ConfigError
        For an unknown profile or an invalid setting.
    """
    return risk_rules(risk, "risk file of the run")


def _gate_warmup(
    history: Mapping[str, Sequence[tuple[int, float, float, float, float, float]]],
    cfg: PaperConfig,
) -> None:
    """Run the data gate on the warm-up bars of every symbol (see :mod:`tradeloop.data.gate`).

    Raises
    ------
    DataError
        When a symbol's warm-up bars fail and ``cfg.allow_data_issues`` is False.
    """
    import numpy as np

    from tradeloop.data.gate import enforce
    from tradeloop.data.loader import RawOhlcv
    from tradeloop.data.quality import check_quality

    reports = []
    for symbol, rows in history.items():
        if len(rows) < 3:
            continue
        cols = np.asarray(rows, dtype=np.float64).T
        raw = RawOhlcv(
            f"{cfg.exchange} {symbol} {cfg.timeframe} warm-up",
            np.asarray([r[0] for r in rows], dtype=np.int64),
            *cols[1:6],
        )
        reports.append(check_quality(raw, cfg.timeframe, outliers=False))
    enforce(reports, allow=cfg.allow_data_issues)


def stored_run_config(meta: Mapping[str, Any], *, trade_start: int | None = None) -> RunConfig:
    """The trading rules a stored paper run used, from its run metadata.

    ``trade_start`` (the first live bar) makes the earlier bars history only, as they were
    for the session; the parity replay passes it.

    Raises
    ------
    ConfigError
        For stored rules that are no longer valid (an unknown risk profile, ...).
    """
    return RunConfig(
        balance=float(meta["balance"]),
        slippage_bps=float(meta["slippage_bps"]),
        fill_price=meta["fill_price"],
        allow_short=bool(meta["allow_short"]),
        post_only_entries=bool(meta.get("post_only_entries", False)),
        cash_buffer_pct=float(meta.get("cash_buffer_pct", 0.0)),
        risk=risk_config_of(meta["risk"]),
        trade_start=trade_start,
    )


def enrichment_of(
    meta: Mapping[str, Any], registry: str | Path | None = None, threads: int = DEFAULT_ML_THREADS
) -> ModelEnrichment | ModelTimeline | None:
    """The ML enrichment a stored run used (None when it had no model).

    A run whose model was swapped while it ran (``model_history``, see
    :func:`record_model_swap`) gets a :class:`ModelTimeline` scoring each step with the
    version then in force. ``registry`` overrides the model folder stored with the run.

    Raises
    ------
    ConfigError
        When the stored model (name and version) is no longer in the model folder.
    """
    model = meta.get("model")
    if not model:
        return None
    folder = registry if registry is not None else meta.get("model_registry", "models")

    def load(version: str) -> ModelEnrichment:
        return ModelEnrichment.from_registry(
            f"{model['name']}:{version}",
            folder,
            min_confidence=float(model["min_confidence"]),
            use_toxicity=bool(model["use_toxicity"]),
            threads=threads,
        )

    history = meta.get("model_history") or []
    if len(history) < 2:
        return load(str(model["version"]))
    return ModelTimeline([(h["after_ts"], load(str(h["version"]))) for h in history])


def record_model_swap(store: StateStore, run_id: str, version: str, after_ts: int) -> None:
    """Record in ``run_id``'s metadata that ``version`` scores the steps after ``after_ts``.

    The run's model becomes ``version`` (a restart continues with it) and ``model_history``
    keeps every version with the step it took over from (parity replays each step with the
    version then in force).

    Raises
    ------
    ConfigError
        When the run is unknown or has no model.
    """
    meta = store.load_run_meta(run_id)
    if meta is None or not meta.get("model"):
        raise ConfigError(f"run {run_id!r} has no stored model to swap")
    history = meta.get("model_history") or [{"version": meta["model"]["version"], "after_ts": None}]
    history.append({"version": version, "after_ts": int(after_ts)})
    meta["model_history"] = history
    meta["model"] = {**meta["model"], "version": version}
    store.save_run_meta(run_id, meta, store.run_created_ns(run_id) or 0)


def default_run_id(strategy: str, exchange: str, symbols: tuple[str, ...], timeframe: str) -> str:
    """A stable run id from what the session trades (``paper-sma_cross-binance-BTCUSDT-1m``).

    >>> default_run_id("sma_cross", "binance", ("BTC/USDT",), "1m")
    'paper-sma_cross-binance-BTCUSDT-1m'
    """
    syms = "+".join(re.sub(r"[^A-Za-z0-9]", "", s.split(":")[0]) for s in symbols)
    return f"paper-{strategy}-{exchange}-{syms}-{timeframe}"


def instrument_from_dict(data: Mapping[str, Any]) -> Instrument:
    """Rebuild an :class:`Instrument` stored as a dict in run metadata."""
    values = dict(data)
    values["asset_class"] = AssetClass(values.get("asset_class", "crypto"))
    return Instrument(**values)


class PaperSession:
    """One paper-trading session (see the module docstring).

    ``MODE`` names the session in alerts (``live`` for the live sessions built on it).

    Parameters
    ----------
    strategy
        The strategy object.
    config
        Session settings.
    alerter
        Where alerts go (default: the log).
    source
        The exchange's REST history source (built from settings when None).
    """

    MODE = "paper"

    def __init__(
        self,
        strategy: Strategy,
        config: PaperConfig,
        *,
        alerter: Alerter | None = None,
        source: CcxtHistorySource | None = None,
    ) -> None:
        self.strategy = strategy
        self.config = config
        self.alerter: Alerter = alerter if alerter is not None else LogAlerter()
        self._source = source
        #: a venue's own market data (Alpaca) instead of ccxt's; None for ccxt exchanges
        self.venue_data: VenueMarketData | None = venue_market_data(
            config.exchange, config.settings
        )
        self._stop = threading.Event()
        self.tf_ns = timeframe_ns(config.timeframe)
        self.feed_state = "connecting"
        self.reconnects = 0
        self.failures = 0
        self.malformed = 0
        self.messages = 0
        self.backfilled = 0
        #: quality metrics of the live feed per source (lag, gaps, msgs/s...), for /metrics
        self.stream_metrics = StreamMetrics()
        self.outside_session = 0
        #: wall time (the mode's clock: the session's timestamps, not the bars')
        self.clock = make_clock("paper")
        self.started_wall = self.clock.now_ns() / 1e9
        self._last_message = time.monotonic()
        self._last_heartbeat = time.monotonic()
        self._last_status = 0.0
        #: a step ran since status.json was last written
        self._status_due = False
        #: the run could not be opened with these settings (nothing of it was touched)
        self._refused = False
        self._first_queued_wall: float | None = None
        self.kernel: LiveKernel | None = None
        self.store: StateStore | None = None
        #: operator commands run between two events (``tradeloop serve``); None: no control
        self.control: SessionControl | None = None
        #: when (``time.perf_counter()``) the feed handed over the last closed bar
        self.bar_received_at: float | None = None
        self._events: queue.Queue[Any] | None = None
        #: the run's model as stored with it, and the enrichment built from it
        self._model: dict[str, Any] | None = None
        self.enrichment: ModelEnrichment | None = None
        #: the run's regime source (None without a regime model) and its stored description
        self.regime: RegimeSource | None = None
        self._regime: dict[str, Any] | None = None
        #: the step's events (None: the kernel publishes nothing); the journal needs one
        self.bus: MessageBus | None = None
        #: the analytics store the journal writes to (a subclass may open its own first)
        self.analytics: AnalyticsStore | None = None
        self._owns_analytics = False
        #: every signal, executed or rejected, into the analytics store (the learning loop)
        self.journal: SignalJournal | None = None
        self.scheduler = Scheduler(
            schedule_for(config.calendar or config.exchange)
            if config.calendar or self.venue_data is None
            else self.venue_data.schedule(),
            on_session_open=self._session_open,
            on_session_close=self._session_close,
        )

    # -- control -------------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Ask the session to stop after the event in flight (safe from a signal handler)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """True once a stop was requested."""
        return self._stop.is_set()

    # -- run -----------------------------------------------------------------------------------
    def run(self) -> int:
        """Run until stopped or ``until_ns``; returns the process exit code (0: clean stop).

        Raises
        ------
        ConfigError
            For a stored run that does not match the arguments, an unknown symbol, ...
        StrategyError
            When strategy code raises (after an error alert; the state stays consistent).
        """
        cfg = self.config
        self.store = store = open_state_store(cfg.state_url)
        reason = "stopped"
        feed: KlineFeed | BarFeed | None = None
        try:
            try:
                kernel = self._open_run(store)
            except ConfigError:
                self._refused = True  # another run's state (maybe a live process) is untouched
                raise
            self.kernel = kernel
            events: queue.Queue[Any] = _StampedQueue()
            self._events = events
            if self.venue_data is not None:  # a venue with its own feed (Alpaca)
                feed = self.venue_data.feed(list(cfg.symbols), cfg.timeframe, events)
            else:
                feed = KlineFeed(
                    cfg.exchange,
                    list(cfg.symbols),
                    cfg.timeframe,
                    events,
                    market=cfg.market,
                    settings=cfg.settings.exchange(cfg.exchange),
                    metrics=self.stream_metrics,
                    stale_after_s=cfg.stale_after_s,
                    alert_after_failures=cfg.alert_after_failures,
                )
            feed.start()
            self.alerter.send(
                start_alert(
                    self.MODE,
                    self.strategy.strategy_name(),
                    list(cfg.symbols),
                    cfg.timeframe,
                    kernel.portfolio.equity,
                )
            )
            reason = self._loop(kernel, events)
        except _StopRequestedError:
            reason = "stopped while waiting to retry the exchange's REST API"
        except StrategyError as exc:
            reason = "strategy error"
            self.alerter.send(error_alert("strategy error", str(exc)))
            raise
        except Exception as exc:
            reason = f"error: {type(exc).__name__}"
            self.alerter.send(error_alert("session error", f"{type(exc).__name__}: {exc}"))
            raise
        finally:
            self._shutdown(feed, reason)
            self._close_journal()
        return 0

    def _open_journal(self) -> None:
        """Attach the learning loop's journal to the run's bus, once per run.

        Into the store a subclass opened (``tradeloop run``) or else ``config.journal_path``;
        nothing when neither is there. Written every 64 rows or 2 s: a killed process loses
        at most that, and the step does not pay a store write per signal.
        """
        if self.journal is not None:
            return
        if self.analytics is None:
            if self.config.journal_path is None:
                return
            path = Path(self.config.journal_path).expanduser()
            path.parent.mkdir(parents=True, exist_ok=True)
            self.analytics = AnalyticsStore(path, hold=False)
            self._owns_analytics = True
        if self.bus is None:
            self.bus = InProcessBus()
        self.journal = SignalJournal(
            self.analytics, self.bus, self.config.run_id, self.MODE, batch=64, max_delay_s=2.0
        )
        self.journal.attach()

    def _close_journal(self) -> None:
        """Write the journal's last rows and detach it (idempotent)."""
        journal, self.journal = self.journal, None
        if journal is not None:
            journal.detach()
        if self._owns_analytics and self.analytics is not None:
            self.analytics.close()
            self.analytics = None
            self._owns_analytics = False

    def _open_run(self, store: StateStore) -> LiveKernel:
        cfg = self.config
        meta = store.load_run_meta(cfg.run_id)
        if meta is not None and cfg.fresh:
            store.delete_run(cfg.run_id)
            meta = None
        self._model = self._resolve_model(meta)
        self._regime = self._resolve_regime(meta)
        wanted = self._meta(None)
        if meta is not None:
            diffs = [k for k in _IDENTITY if meta.get(k) != wanted.get(k)]
            if diffs:
                detail = ", ".join(
                    f"{k}: stored {meta.get(k)!r}, given {wanted.get(k)!r}" for k in diffs
                )
                raise ConfigError(
                    f"run {cfg.run_id!r} in {cfg.state_url} was started with other settings "
                    f"({detail}); pass --run-id for a new run or --fresh to start this one over"
                )
            instruments = {s: instrument_from_dict(d) for s, d in meta["instruments"].items()}
        else:
            instruments = (
                instruments_for(self.source, cfg.symbols)
                if self.venue_data is None
                else self.venue_data.instruments(cfg.symbols)
            )
            store.save_run_meta(cfg.run_id, self._meta(instruments), self.clock.now_ns())
        self.enrichment = enrichment_of(
            {"model": self._model, "model_registry": str(cfg.model_registry)},
            threads=cfg.ml_threads,
        )
        self._open_journal()
        options = self.kernel_options()
        if self.bus is not None:
            options.setdefault("bus", self.bus)
        if self.regime is not None:
            options["inputs"] = [*options.get("inputs", ()), self.regime]
        kernel = LiveKernel(
            self.strategy,
            instruments,
            cfg.timeframe,
            cfg.rules(),
            run_id=cfg.run_id,
            store=store,
            max_bars=cfg.max_bars,
            enrichment=self.enrichment,
            **options,
        )
        if kernel.restore():
            logger.info("continuing run %s", cfg.run_id)
        kernel.risk.subscribe(self._on_risk_event)
        self.on_kernel_open(kernel)
        if self.control is not None:
            self.control.opened(self, kernel)
        return kernel

    def feed_now(self) -> tuple[float | None, str, int]:
        """The feed as it is now, ahead of the engine's backlog: when its last kline arrived
        (``time.monotonic()``, None before the first), its connection state, and the events
        waiting for the engine."""
        events = self._events
        if not isinstance(events, _StampedQueue):
            return None, self.feed_state, 0
        return events.kline_put_at, events.feed_state, events.qsize()

    # -- extension points (``tradeloop run`` adds a bus, side inputs and feedback) -------------
    def kernel_options(self) -> dict[str, Any]:
        """Further :class:`LiveKernel` arguments (e.g. ``bus``, ``inputs``); none here."""
        return {}

    def on_kernel_open(self, kernel: LiveKernel) -> None:
        """Called once the run is opened or restored, before the first event."""

    def on_housekeeping(self, kernel: LiveKernel) -> None:
        """Called once per loop iteration, after the status file and heartbeat."""

    def _resolve_model(self, stored: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """The run's model as stored: name, resolved version, threshold, toxicity switch.

        Without a version, a run that already has this model keeps its stored version (a
        restart never picks up a newer one); a new run takes the latest.
        """
        cfg = self.config
        if cfg.model is None:
            if cfg.min_confidence is not None or cfg.use_toxicity:
                raise ConfigError("min_confidence and use_toxicity need a model")
            return None
        name, version = parse_model_spec(cfg.model)
        before = (stored or {}).get("model") or {}
        if version is None and before.get("name") == name:
            version = before.get("version")
        catalog = ModelCatalog(cfg.model_registry)
        ref = catalog.resolve(f"{name}:{version}" if version else name)
        threshold = cfg.min_confidence
        if threshold is None:
            threshold = float(catalog.registry(name).metadata(ref.version).get("threshold", 0.5))
        return {
            "name": ref.name,
            "version": ref.version,
            "min_confidence": float(threshold),
            "use_toxicity": cfg.use_toxicity,
        }

    def _resolve_regime(self, stored: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """The run's regime model as stored (name, resolved version, transition settings);
        loads it into :attr:`regime`. Without a version, a run that already has this model
        keeps its stored version; a new run takes the latest."""
        opts = self.config.regime
        self.regime = None
        if opts is None:
            return None
        name, version = parse_model_spec(opts.name)
        before = (stored or {}).get("regime") or {}
        if version is None and before.get("name") == name:
            version = before.get("version")
        source = replace(opts, name=f"{name}:{version}" if version else name).source()
        self.regime = source
        return {
            "name": source.model_name,
            "version": source.version,
            "transition": opts.transition,
            "confirm_bars": opts.confirm_bars,
            "exposures": dict(opts.exposures),
        }

    def _on_risk_event(self, event: RiskEvent) -> None:
        """Tell a human when trading halts, reduces or resumes."""
        self.alerter.send(
            risk_alert(event.cause, event.state_from.value, event.state_to.value, event.detail)
        )

    def _closed_bars(
        self, symbol: str, timeframe: str, start_ns: int, end_ns: int
    ) -> list[tuple[int, float, float, float, float, float]]:
        """Closed bars for warm-up and backfill: the venue's own REST, or ccxt's."""
        if self.venue_data is not None:
            return self.venue_data.closed_bars(symbol, timeframe, start_ns, end_ns)
        return closed_bars(self.source, symbol, timeframe, start_ns, end_ns)

    @property
    def source(self) -> CcxtHistorySource:
        """The exchange's REST history source (built on first use)."""
        if self._source is None:
            cfg = self.config
            self._source = CcxtHistorySource(
                cfg.exchange,
                cfg.market,
                cfg.settings.exchange(cfg.exchange),
                cfg.settings.retry,
                sleep=self._wait_to_retry,
            )
        return self._source

    def _wait_to_retry(self, seconds: float) -> None:
        """Sleep between REST retries; a stop request ends the wait (and the session) at once."""
        if self._stop.wait(seconds):
            raise _StopRequestedError

    def _meta(self, instruments: Mapping[str, Instrument] | None) -> dict[str, Any]:
        cfg = self.config
        cls = type(self.strategy)
        meta: dict[str, Any] = {
            "mode": "paper",
            "strategy": self.strategy.strategy_name(),
            "strategy_class": f"{cls.__module__}:{cls.__qualname__}",
            "params": dict(self.strategy.params),
            "exchange": cfg.exchange,
            "market": cfg.market,
            "symbols": list(cfg.symbols),
            "timeframe": cfg.timeframe,
            "balance": cfg.balance,
            "slippage_bps": cfg.slippage_bps,
            "fill_price": cfg.fill_price.value,
            "allow_short": cfg.allow_short,
            "post_only_entries": cfg.post_only_entries,
            "cash_buffer_pct": cfg.cash_buffer_pct,
            "risk": cfg.risk_setting,
            "model": self._model,
            "model_registry": str(Path(cfg.model_registry).resolve()),
            "regime": self._regime,
        }
        if instruments is not None:
            meta["instruments"] = {
                s: {**asdict(i), "asset_class": i.asset_class.value} for s, i in instruments.items()
            }
        return meta

    def _loop(self, kernel: LiveKernel, events: queue.Queue[Any]) -> str:
        cfg = self.config
        while not self._stop.is_set():
            try:
                event = events.get(timeout=0.2)
            except queue.Empty:
                event = None
            if isinstance(event, KlineUpdate):
                self._on_kline(kernel, event)
            elif isinstance(event, FeedStatus):
                self._on_feed_status(event)
            self._flush_quiet_symbols(kernel)
            self._housekeeping(kernel, backlog=not events.empty())
            if (
                cfg.until_ns is not None
                and kernel.last_step_ts is not None
                and kernel.last_step_ts >= cfg.until_ns
            ):
                return "until reached"
        return "stop requested"

    def _on_kline(self, kernel: LiveKernel, ev: KlineUpdate) -> None:
        cfg = self.config
        self.messages += 1
        self._last_message = time.monotonic()
        if ev.symbol not in kernel.series or ev.timeframe != cfg.timeframe:
            return
        if not self.scheduler.update(ev.ts):
            self.outside_session += 1
            return
        try:
            if not kernel.has_history and cfg.warmup_bars > 0:
                start = ev.ts - cfg.warmup_bars * self.tf_ns
                history = {
                    s: self._closed_bars(s, cfg.timeframe, start, ev.ts) for s in kernel.symbols
                }
                _gate_warmup(history, cfg)
                added = kernel.warm_up(history)
                logger.info("warm-up: %d bars before %s", added, to_iso(ev.ts))
            gap = kernel.missing_before(ev.symbol, ev.ts)
            if gap is not None:
                bars = self._closed_bars(ev.symbol, cfg.timeframe, *gap)
                self.backfilled += len(bars)
                logger.info(
                    "backfill %s: %d bar(s) %s -> %s",
                    ev.symbol,
                    len(bars),
                    to_iso(gap[0]),
                    to_iso(gap[1]),
                )
                for bar in bars:
                    self._after(kernel.on_bar(ev.symbol, *bar))
        except (TemporaryError, VenueError) as exc:
            # the next update finds the same gap and tries again
            logger.warning("REST backfill failed: %s", exc)
            self.alerter.send(error_alert("backfill failed", str(exc)))
            return
        if ev.closed:
            if isinstance(self._events, _StampedQueue):
                self.bar_received_at = self._events.got_at
            out = kernel.on_bar(ev.symbol, ev.ts, ev.open, ev.high, ev.low, ev.close, ev.volume)
        else:
            out = kernel.on_price(ev.symbol, ev.ts, ev.open, ev.high, ev.low, ev.close)
        self._after(out)

    def _after(self, out: StepOutcome) -> None:
        if not out:
            return
        for pos in out.opened:
            self.alerter.send(
                open_alert(
                    pos.symbol,
                    "long" if pos.direction > 0 else "short",
                    pos.quantity,
                    pos.entry_price,
                    pos.stop_loss,
                    pos.take_profit,
                )
            )
        for trade in out.closed:
            self.alerter.send(
                close_alert(
                    trade.symbol,
                    "long" if trade.direction > 0 else "short",
                    trade.quantity,
                    trade.entry_price,
                    trade.exit_price if trade.exit_price is not None else float("nan"),
                    trade.pnl,
                    trade.exit_reason.value if trade.exit_reason is not None else "",
                )
            )
        for day in out.days:
            logger.info(
                "daily summary %s: equity %.2f, P&L %+.2f (%+.2f%%), %d trade(s), %d win(s)",
                day.day,
                day.end_equity,
                day.pnl,
                day.return_pct,
                day.trades,
                day.wins,
                extra={"daily_summary": asdict(day)},
            )
            self.alerter.send(
                daily_summary_alert(
                    day.day,
                    day.start_equity,
                    day.end_equity,
                    day.trades,
                    day.wins,
                    day.realized_pnl,
                    day.open_positions,
                )
            )
        if out.steps:
            self._status_due = True

    def _on_feed_status(self, ev: FeedStatus) -> None:
        self._last_message = time.monotonic()
        if ev.state == "malformed":
            self.malformed += 1
            return
        self.feed_state = ev.state
        self.reconnects = ev.reconnects
        self.failures = ev.attempt
        if ev.state == "failed":
            self.alerter.send(
                Alert(
                    "warning",
                    "feed failing",
                    f"{ev.exchange}: {ev.attempt} failed connection attempts in a row",
                    {"detail": ev.detail[:200]},
                )
            )
        elif ev.state == "stale":
            self.alerter.send(
                Alert("warning", "feed stale", f"{ev.exchange}: no message, reconnecting", {})
            )

    def _flush_quiet_symbols(self, kernel: LiveKernel) -> None:
        if len(kernel.symbols) < 2:
            return
        if not kernel.has_queued:
            self._first_queued_wall = None
            return
        now = time.monotonic()
        if self._first_queued_wall is None:
            self._first_queued_wall = now
        elif now - self._first_queued_wall >= self.config.step_grace_s:
            self._after(kernel.flush())
            self._first_queued_wall = None

    def _housekeeping(self, kernel: LiveKernel, *, backlog: bool = False) -> None:
        """Status file and heartbeat, once per loop iteration.

        status.json is rewritten after every step; while events queue up (catching up after
        a restart or a burst) it is rewritten at most twice a second until the queue is
        drained, so the file never holds back the kernel.
        """
        now = time.monotonic()
        self._write_status(force=self._status_due and not backlog)
        if now - self._last_heartbeat >= self.config.heartbeat_s:
            self._last_heartbeat = now
            logger.info("heartbeat", extra=self.health())
        if self.control is not None:
            self.control.run_pending(self, kernel)
        self.on_housekeeping(kernel)

    # -- health --------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """Feed and engine health: last-bar age, message age, reconnects, failures."""
        kernel = self.kernel
        last = kernel.last_step_ts if kernel is not None else None
        return {
            "feed_state": self.feed_state,
            "reconnects": self.reconnects,
            "failed_attempts": self.failures,
            "messages": self.messages,
            "malformed": self.malformed,
            "backfilled_bars": self.backfilled,
            "last_message_age_s": round(time.monotonic() - self._last_message, 3),
            "last_bar_age_s": None
            if last is None
            else round((self.clock.now_ns() - (last + self.tf_ns)) / 1e9, 3),
        }

    def status(self) -> dict[str, Any]:
        """The document written to ``status.json``."""
        cfg = self.config
        kernel = self.kernel
        out: dict[str, Any] = {
            "mode": "paper",
            "run_id": cfg.run_id,
            "pid": os.getpid(),
            "strategy": self.strategy.strategy_name(),
            "exchange": cfg.exchange,
            "symbols": list(cfg.symbols),
            "timeframe": cfg.timeframe,
            "started_at": to_iso(int(self.started_wall * 1e9)),
            "updated_at": to_iso(self.clock.now_ns()),
            "stopping": self.stopping,
            "feed": self.health(),
        }
        if self.enrichment is not None:
            out["model"] = {
                "name": self.enrichment.name,
                "version": self.enrichment.version,
                "min_confidence": self.enrichment.min_confidence,
                "counts": self.enrichment.counts.as_dict(),
            }
        if self.regime is not None:
            out["regime"] = self.regime.describe()
        if kernel is not None:
            out.update(kernel.status())
            last = kernel.last_step_ts
            out["last_bar_time"] = None if last is None else to_iso(last)
        return out

    def _write_status(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_status < 0.5:
            return
        self._last_status = now
        self._status_due = False
        try:
            write_status(self.config.status_path, self.status())
        except OSError as exc:
            logger.warning("cannot write %s: %s", self.config.status_path, exc)

    # -- shutdown ------------------------------------------------------------------------------
    def _shutdown(self, feed: KlineFeed | BarFeed | None, reason: str) -> None:
        deadline = time.monotonic() + self.config.shutdown_timeout_s
        if feed is not None:
            feed.stop(max(0.5, deadline - time.monotonic()))
        kernel = self.kernel
        if not self._refused:  # a refused start leaves the run's status file alone
            self._write_status(force=True)
            if kernel is not None:
                p = kernel.portfolio
                self.alerter.send(shutdown_alert(reason, p.equity, len(p.positions)))
            else:
                self.alerter.send(shutdown_alert(reason, None, 0))
        self.alerter.close(max(0.5, deadline - time.monotonic()))
        if self.store is not None:
            self.store.close()
        logger.info("session stopped: %s", reason)

    def _session_open(self, ts: int) -> None:
        logger.info("market session opens at %s", to_iso(ts))

    def _session_close(self, ts: int) -> None:
        logger.info("market session closes at %s", to_iso(ts))
