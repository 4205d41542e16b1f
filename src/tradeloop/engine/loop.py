"""``tradeloop run``: the whole loop in one running process.

:class:`LoopSession` is a paper session (:class:`~tradeloop.engine.paper.PaperSession`: the
exchange's WebSocket klines or a replay of them, REST warm-up and backfill, the state store
written at every step, restarts that continue exactly, alerts, ``status.json``) whose one
kernel step additionally

- runs the strategies of ``loop.toml`` on one account (a strategy manager with a weight per
  strategy; one strategy runs alone),
- gives them the liquidation-zone side input,
- enriches their signals with the configured model,
- publishes every stage on the bus (in-process, or Redis when ``[bus] url`` is set), and
- closes the loop: every closed trade becomes a feedback row keyed by its signal id
  (:class:`~tradeloop.engine.feedback.FeedbackLoop`), the weights adapt while the run goes
  on, and the zone source uses each new version at once.

On stop the count at every stage goes to the log, to ``status.json`` (``stages``) and is
returned by :meth:`LoopSession.stages` for the CLI. A run killed at any moment and started
again with the same file continues from its state store; feedback missing for trades closed
just before the kill is re-derived from the stored trades (the analytics store ignores a
signal id it has), so nothing is lost or counted twice.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from tradeloop.adapters.ccxt.history import CcxtHistorySource
from tradeloop.alerts import Alerter
from tradeloop.alerts.base import Alert
from tradeloop.bus.base import InProcessBus, MessageBus
from tradeloop.config.settings import Settings
from tradeloop.core.errors import ConfigError
from tradeloop.core.time import parse_time
from tradeloop.engine.factories import make_bus
from tradeloop.engine.feedback import FeedbackLoop
from tradeloop.engine.inputs import ZoneSource
from tradeloop.engine.live import LiveKernel
from tradeloop.engine.loop_config import LoopConfig, load_loop_config
from tradeloop.engine.paper import (
    PaperConfig,
    PaperSession,
    record_model_swap,
    risk_config_of,
)
from tradeloop.engine.regime import RegimeOptions
from tradeloop.engine.retrain import ModelRetrainer, retrainer_for
from tradeloop.risk.config import RiskConfig
from tradeloop.risk.engine import RiskEngine
from tradeloop.signals.adaptive import AdaptiveConfig, AdaptSchedule
from tradeloop.signals.heatmap import HeatmapConfig
from tradeloop.store.analytics import AnalyticsStore
from tradeloop.strategy.base import Strategy
from tradeloop.strategy.manager import Allocation, StrategyManager
from tradeloop.strategy.registry import load_strategy_class

__all__ = ["LoopSession", "build_strategy", "feedback_loop_for"]

logger = logging.getLogger(__name__)


def build_strategy(config: LoopConfig) -> StrategyManager:
    """The strategy of a loop: a manager of its strategies with their weights (also for one
    strategy, so weights and parameters can be reloaded while it runs).

    Raises
    ------
    ConfigError
        For an unknown strategy or parameter (naming the ``[[strategies]]`` entry).
    """
    built: list[tuple[Strategy, float, str]] = []
    for n, section in enumerate(config.strategies):
        where = f"strategies[{n}] ({section.label or section.name})"
        try:
            cls = load_strategy_class(section.name)
            strategy = cls(**section.params)
        except ConfigError as exc:
            raise ConfigError(f"loop config {where}: {exc}") from None
        built.append((strategy, section.weight, section.label or section.name))
    return StrategyManager([Allocation(s, w, name=label) for s, w, label in built])


def feedback_loop_for(
    config: LoopConfig, store: AnalyticsStore, bus: MessageBus, zones: ZoneSource
) -> FeedbackLoop:
    """The feedback loop ``loop.toml`` describes (the zone model's tiers are the weights)."""
    fb = config.feedback
    return FeedbackLoop(
        store,
        bus,
        config.run.id,
        {c: 1.0 for c in HeatmapConfig().components},
        schedule=AdaptSchedule(fb.adapt_every, fb.adapt_interval_s),
        zones=zones,
        weights_topic=fb.weights_topic,
        config=AdaptiveConfig(
            alpha=fb.alpha,
            min_component_samples=fb.min_component_samples,
            own_components_only=True,
        ),
    )


class _RedisBusThread:
    """A :class:`~tradeloop.bus.redis_bus.RedisBus` started on its own asyncio loop thread
    (the session's thread publishes; the bus's writer thread sends)."""

    def __init__(self, url: str) -> None:
        from tradeloop.bus.redis_bus import RedisBus

        bus = make_bus(url)
        assert isinstance(bus, RedisBus)
        self.bus = bus
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="loop-redis-bus", daemon=True
        )

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.bus.start(), self._loop).result(timeout=30)

    def stop(self) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self.bus.stop(), self._loop).result(timeout=30)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)


class LoopSession(PaperSession):
    """The loop of ``loop.toml`` on live or replayed data (see the module docstring).

    Parameters
    ----------
    config
        The checked ``loop.toml``.
    settings
        Exchange endpoints and keys (``TRADELOOP_*`` environment, ``.env``).
    alerter
        Where alerts go.
    source
        The exchange's REST history (built from settings when None).
    config_path
        The file ``config`` was read from: watched while running, and a change of the
        strategies' weights or parameters or of ``[zones] top`` is applied between two
        events (:meth:`reload_config`); an invalid file, or a change that needs a restart,
        is refused with the reason logged and alerted, and the running config kept.
    """

    def __init__(
        self,
        config: LoopConfig,
        *,
        settings: Settings | None = None,
        alerter: Alerter | None = None,
        source: CcxtHistorySource | None = None,
        config_path: Path | None = None,
    ) -> None:
        run = config.run
        model = config.model
        paper = PaperConfig(
            exchange=run.exchange,
            symbols=run.symbols,
            timeframe=run.timeframe,
            run_id=run.id,
            state_url=config.path(run.state),
            status_path=Path(config.path(run.status)),
            market=run.market,
            balance=run.balance,
            slippage_bps=run.slippage_bps,
            fill_price=run.fill_price,
            allow_short=run.allow_short,
            post_only_entries=run.post_only_entries,
            risk=config.risk_setting(),
            warmup_bars=run.warmup_bars,
            max_bars=run.max_bars,
            until_ns=parse_time(run.until, field="run.until") if run.until else None,
            calendar=run.calendar,
            settings=settings or Settings(),
            model=model.name if model is not None else None,
            model_registry=config.path(model.registry) if model is not None else "models",
            min_confidence=model.min_confidence if model is not None else None,
            use_toxicity=model.use_toxicity if model is not None else False,
            ml_threads=model.threads if model is not None else 1,
            regime=(
                RegimeOptions(
                    config.regime.name,
                    Path(config.path(config.regime.registry)),
                    transition=config.regime.transition,
                    confirm_bars=config.regime.confirm_bars,
                    exposures=config.regime.exposures,
                )
                if config.regime is not None
                else None
            ),
        )
        super().__init__(build_strategy(config), paper, alerter=alerter, source=source)
        self.loop_config = config
        self.zones = ZoneSource(top=config.zones.top)
        self._redis: _RedisBusThread | None = None
        self.bus: MessageBus = InProcessBus()
        self.analytics = None
        self.feedback: FeedbackLoop | None = None
        self._rows: int | None = None
        self.manager: StrategyManager = self.strategy  # type: ignore[assignment]
        self.config_path = config_path
        self._config_stamp = _stamp(config_path)
        self._config_checked = time.monotonic()
        self.reloads = 0
        self.reloads_refused = 0
        #: why the last reload was refused (None after an applied one)
        self.reload_error: str | None = None
        self.retrainer: ModelRetrainer | None = None

    # -- hooks into the paper session ----------------------------------------------------------
    def kernel_options(self) -> dict[str, Any]:
        """The kernel's bus and side inputs."""
        return {"bus": self.bus, "inputs": [self.zones]}

    def on_kernel_open(self, kernel: LiveKernel) -> None:
        """After the run is opened (or restored): feedback for every stored closed trade."""
        if self.feedback is not None:
            self.feedback.reconcile(kernel.portfolio.trades, self.strategy.strategy_name())
        self.retrainer = retrainer_for(self.loop_config, self.enrichment, self.bus)

    def on_housekeeping(self, kernel: LiveKernel) -> None:
        """Once per loop iteration: adapt when the interval has passed without outcomes, and
        look for a changed config file (at most once a second). A finished retrain's model is
        swapped in here, between two events, and a requested one is started."""
        if (
            self.retrainer is not None
            and self.retrainer.apply_pending(kernel)
            and self.enrichment is not None
            and self.store is not None
            and kernel.last_step_ts is not None
        ):
            # the new version scores the steps after this one: a restart continues with it
            # and parity replays each step with the version then in force
            record_model_swap(
                self.store, self.config.run_id, self.enrichment.version, kernel.last_step_ts
            )
            if self._model is not None:
                self._model["version"] = self.enrichment.version
        if self.feedback is not None and kernel.last_step_ts is not None:
            self.feedback.maybe_adapt(kernel.last_step_ts)
        now = time.monotonic()
        if self.config_path is not None and now - self._config_checked >= 1.0:
            self._config_checked = now
            stamp = _stamp(self.config_path)
            if stamp != self._config_stamp:
                self._config_stamp = stamp
                self.reload_config()

    def reload_config(self) -> bool:
        """Read the config file again and apply what can change while running.

        Returns True when the new file was applied. The strategies' weights and parameters
        (through the manager's all-or-nothing ``reconfigure``) and ``[zones] top`` change
        live; any other difference, or an invalid file, is refused: logged, alerted, counted,
        and the running config kept.
        """
        if self.config_path is None:
            return False
        try:
            new = load_loop_config(self.config_path)
            self._apply(new)
        except ConfigError as exc:
            self.reloads_refused += 1
            self.reload_error = str(exc)
            logger.error("config reload refused, the running config is kept: %s", exc)
            self.alerter.send(
                Alert(
                    "warning",
                    "config reload refused",
                    str(exc)[:1500],
                    {"file": str(self.config_path)},
                )
            )
            return False
        self.reloads += 1
        self.reload_error = None
        logger.info("config reloaded from %s", self.config_path)
        return True

    def _apply(self, new: LoopConfig) -> None:
        old = self.loop_config
        fixed = [
            k
            for k in ("run", "bus", "model", "regime", "retrain")
            if getattr(new, k) != getattr(old, k)
        ]
        if fixed:
            raise ConfigError(
                f"{self.config_path}: [{'], ['.join(fixed)}] changed; that needs a restart"
            )
        old_names = [s.label or s.name for s in old.strategies]
        new_names = [s.label or s.name for s in new.strategies]
        if old_names != new_names:
            raise ConfigError(
                f"{self.config_path}: the strategies changed ({old_names} -> {new_names}); "
                "adding or removing one needs a restart"
            )
        for a, b in zip(old.strategies, new.strategies, strict=True):
            if a.name != b.name:
                raise ConfigError(
                    f"{self.config_path}: strategy {a.label or a.name!r} is now {b.name!r}; "
                    "that needs a restart"
                )
        risk = self._new_risk(new) if new.risk != old.risk else None
        try:
            self.manager.reconfigure(
                {s.label or s.name: s.weight for s in new.strategies},
                {s.label or s.name: s.params for s in new.strategies},
            )
        except ConfigError as exc:
            raise ConfigError(f"{self.config_path}: {exc}") from None
        self.zones.top = new.zones.top
        if risk is not None:
            self._swap_risk(*risk)
        self.loop_config = new

    def _new_risk(self, new: LoopConfig) -> tuple[str | dict[str, Any], RiskConfig]:
        """The new ``[risk]`` rules, checked (an invalid one raises naming the file)."""
        try:
            setting = new.risk_setting()
            return setting, risk_config_of(setting)
        except ConfigError as exc:
            raise ConfigError(f"{self.config_path}: [risk]: {exc}") from None

    def _swap_risk(self, setting: str | dict[str, Any], rules: RiskConfig) -> None:
        """Put the new risk rules in force between two events: a new risk engine carrying the
        running one's state (trading state, equity peaks, overrides, counters), and the run's
        stored rules updated so a restart with this file continues the run."""
        kernel = self.kernel
        if kernel is None:
            raise ConfigError(f"{self.config_path}: [risk] cannot change before the run opens")
        engine = RiskEngine(rules)
        engine.bind(kernel.instruments, kernel.broker.next_order_id)
        engine.restore_state(kernel.risk.export_state())
        engine.subscribe(self._on_risk_event)
        kernel.risk = engine
        kernel.step.risk = engine
        self.config = replace(self.config, risk=setting, risk_setting=setting)  # type: ignore[arg-type]
        if self.store is not None:
            meta = self.store.load_run_meta(self.config.run_id)
            if meta is not None:
                meta["risk"] = setting if isinstance(setting, str) else dict(setting)
                created = self.store.run_created_ns(self.config.run_id) or 0
                self.store.save_run_meta(self.config.run_id, meta, created)
        logger.warning("risk rules reloaded: profile %s", rules.profile)

    # -- run -----------------------------------------------------------------------------------
    def run(self) -> int:
        """Open the bus and the analytics store, run the paper session, report the stages."""
        cfg = self.loop_config
        if cfg.bus.url:
            self._redis = _RedisBusThread(cfg.bus.url)
            self._redis.start()
            self.bus = self._redis.bus
        if self.analytics is None:  # ``tradeloop serve`` opens it first to share it
            self.analytics = AnalyticsStore(cfg.path(cfg.run.analytics), hold=False)
        self.feedback = feedback_loop_for(cfg, self.analytics, self.bus, self.zones)
        self.feedback.attach()
        # the journal is attached by the paper session (one place for every mode), into
        # this store and onto this bus
        try:
            return super().run()
        finally:
            self._finish()

    def _finish(self) -> None:
        stages = self.stages(count_rows=True)
        if self.retrainer is not None:
            self.retrainer.close()
        logger.info("loop stages", extra={"stages": stages})
        self._write_status(force=True)
        if self.feedback is not None:
            self.feedback.detach()
        self._close_journal()
        if self._redis is not None:
            self._redis.stop()
        if self.analytics is not None:
            self.analytics.close()

    # -- reporting -----------------------------------------------------------------------------
    def stages(self, *, count_rows: bool = False) -> dict[str, Any]:
        """The count at every stage of the run (cumulative over restarts where stored).

        ``count_rows`` also counts the run's rows in the analytics store (a query: done at
        the end, not for every status write).
        """
        kernel = self.kernel
        out: dict[str, Any] = {}
        if kernel is not None:
            counts = kernel.step.counts.as_dict()
            out["bars"] = kernel.steps
            out["signals"] = counts["signals"]
            out["enriched"] = (
                counts["signals"] - counts["dropped_by_model"] if self.enrichment is not None else 0
            )
            out["dropped_by_model"] = counts["dropped_by_model"]
            out["rejected"] = counts["rejected"]
            out["orders"] = counts["orders"]
            out["fills"] = len(kernel.broker.fills())
            out["trades"] = sum(1 for t in kernel.portfolio.trades if t.exit_ts is not None)
            out["open_positions"] = len(kernel.portfolio.positions)
            out["invalid_order_transitions"] = kernel.invalid_transitions
            out["by_strategy"] = _plain(self.manager.pnl_by_strategy(kernel.portfolio.trades))
            out["conflicts"] = dict(self.manager.conflicts)
        if self.feedback is not None:
            out.update(self.feedback.counts())
            if count_rows:
                self._rows = self._feedback_rows()
            if self._rows is not None:
                out["feedback_rows"] = self._rows
        out.update(self.retrainer.counts() if self.retrainer else {"models_swapped": 0})
        out["config_reloads"] = self.reloads
        out["config_reloads_refused"] = self.reloads_refused
        out["events_published"] = (
            dict(kernel.step.events.counts) if kernel is not None and kernel.step.events else {}
        )
        return out

    def _feedback_rows(self) -> int:
        if self.analytics is None:
            return 0
        run_id = self.loop_config.run.id
        with self.analytics.session() as con:
            row = con.execute(
                "SELECT count(*) FROM signal_feedback WHERE source = ?", [run_id]
            ).fetchone()
        return int(row[0]) if row else 0

    def status(self) -> dict[str, Any]:
        """The paper session's status plus the stage counts."""
        out = super().status()
        out["stages"] = self.stages()
        return out


def _stamp(path: Path | None) -> tuple[int, int] | None:
    """The file's modification time and size (None when absent)."""
    if path is None:
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def _plain(value: Any) -> Any:
    """Dataclasses and mappings as JSON-ready dicts."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if hasattr(value, "__dataclass_fields__"):
        return {k: _plain(getattr(value, k)) for k in value.__dataclass_fields__}
    return value
