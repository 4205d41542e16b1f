"""Jobs the CLI and the API both call: a backtest from its description to a recorded run, and
the running loop engine (:class:`LoopService`) that ``tradeloop serve`` steers over HTTP.

A :class:`BacktestJob` says everything a backtest needs and nothing about how it was asked
for (command-line options or an HTTP request): the data sources, the strategy and its
parameters, the trading rules (:class:`~tradeloop.engine.config.RunConfig`), an optional ML
model, the validation settings and where the run folder goes. :func:`run_backtest_job` runs
it end to end: load the data, build the strategy, run the kernel, analyse the run, write the
run folder (``trades.csv``, ``equity.csv``/``.parquet``, ``summary.json``, ``metrics.json``,
``run.json``, ``risk_report.json``, ``report.html``) and return a :class:`BacktestOutcome`
the caller shows. Progress goes through a callback, so the CLI passes its progress bar and
the API nothing. :func:`load_run_record` reads a recorded run back by id.

``tradeloop backtest`` and ``POST /backtests`` build the same job for the same request and
so write the same run record and trades.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from contextlib import nullcontext, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tradeloop.analysis.bias import BiasConfig
from tradeloop.analysis.validation import ValidationConfig
from tradeloop.core.errors import ConfigError
from tradeloop.core.extras import needs_extra
from tradeloop.engine.config import RunConfig
from tradeloop.engine.runner import CacheSpec, DataSpec
from tradeloop.ml.threads import DEFAULT_ML_THREADS, check_threads

if TYPE_CHECKING:
    from tradeloop.alerts import Alerter
    from tradeloop.analysis.run_analysis import RunAnalysis
    from tradeloop.bus.base import MessageBus
    from tradeloop.config.settings import Settings
    from tradeloop.engine.control import CommandResult
    from tradeloop.engine.enrichment import ModelEnrichment
    from tradeloop.engine.kernel import ProgressCallback
    from tradeloop.engine.loop import LoopSession
    from tradeloop.engine.regime import RegimeOptions
    from tradeloop.engine.result import BacktestResult
    from tradeloop.risk.overrides import AuditLog

__all__ = [
    "CRITICAL_COMPONENTS",
    "RUN_ID_PATTERN",
    "BacktestJob",
    "BacktestOutcome",
    "LoopService",
    "ModelOptions",
    "load_run_record",
    "run_backtest_job",
]

logger = logging.getLogger(__name__)

#: Folder under the output root where the data gate remembers files that passed it.
GATE_CACHE_FOLDER = ".data-gate"

#: what of the model's description makes two runs different (the run id's hash)
_MODEL_IDENTITY = ("name", "version", "min_confidence", "use_toxicity")
#: a run id as :func:`~tradeloop.engine.output.new_run_id` makes it (plus a ``-N`` suffix)
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


@dataclass(frozen=True, slots=True)
class ModelOptions:
    """The ML model that scores every entry signal of a run before the risk gate.

    Attributes
    ----------
    name
        ``NAME`` (the latest version) or ``NAME:VERSION`` in the model folder.
    registry
        The model folder.
    min_confidence
        Entries scored below it are dropped; None uses the model's own threshold.
    use_toxicity
        Whether order-flow toxicity lowers the confidence.
    threads
        Threads for inference (OpenMP, BLAS and numba pools are capped during the run).

    Raises
    ------
    ConfigError
        On construction, for an empty name or fewer than one thread.
    """

    name: str
    registry: Path = Path("models")
    min_confidence: float | None = None
    use_toxicity: bool = False
    threads: int = DEFAULT_ML_THREADS

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ConfigError("model name is empty; give NAME or NAME:VERSION")
        check_threads(self.threads)

    def enrichment(self) -> ModelEnrichment:
        """Load the model from the folder as the run's enrichment.

        Raises
        ------
        ConfigError
            For an unknown name (the available ones are listed) or version (the saved ones
            are listed), or an invalid threshold.
        """
        from tradeloop.engine.enrichment import ModelEnrichment

        return ModelEnrichment.from_registry(
            self.name,
            self.registry,
            min_confidence=self.min_confidence,
            use_toxicity=self.use_toxicity,
            threads=self.threads,
        )


@dataclass(frozen=True, slots=True)
class BacktestJob:
    """Everything a backtest run needs, independent of the CLI or the API that asked for it.

    Attributes
    ----------
    strategy
        Strategy name, ``pkg.module:Class`` or ``file.py:Class``.
    data
        The data: files (:class:`~tradeloop.engine.runner.DataSpec`) or series of the
        candle cache (:class:`~tradeloop.engine.runner.CacheSpec`), one per symbol.
    config
        The trading rules, risk profile and bar window.
    params
        Strategy parameters (text values are converted by the strategy's declarations).
    model
        The ML model scoring entries, or None.
    regime
        The regime model (:class:`~tradeloop.engine.regime.RegimeOptions`): the regime and
        its confidence enter the enrichment and the risk engine at every step; None: none.
    validation
        Seed and thresholds of the statistical validation (bootstrap, Monte Carlo, deflated
        Sharpe); the seed is part of the run's identity.
    report
        Write ``report.html``.
    out
        The run folder; None makes ``<output_root>/runs/<run id>`` (``-2``, ``-3``... when
        taken) and points ``<output_root>/latest`` at it.
    output_root
        Where run folders go when ``out`` is None.
    strategies_dir
        Folder of user strategies (None: the bundled examples only).
    command
        How the run was asked for (the command line, or the API route), kept in the record.
    allow_data_issues
        Run on data that fails the data gate (``tradeloop data check``'s default failures),
        recording the findings in the run record and the report instead of refusing.
    calendar
        Market calendar (``XNYS``...): only bars inside its sessions are traded, intraday
        stamps are checked on each session's grid and metrics are annualized by its sessions.
    equity_csv
        Also write the equity curve as ``equity.csv`` (ISO-8601 times) next to
        ``equity.parquet``; off by default (about 66 MB for 1M bars).

    Raises
    ------
    ConfigError
        On construction, when there is no data source.
    """

    strategy: str
    data: tuple[DataSpec | CacheSpec, ...]
    config: RunConfig = field(default_factory=RunConfig)
    params: Mapping[str, Any] = field(default_factory=dict)
    model: ModelOptions | None = None
    regime: RegimeOptions | None = None
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    report: bool = True
    out: Path | None = None
    output_root: Path = Path("output")
    strategies_dir: Path | None = Path("strategies")
    command: str = ""
    allow_data_issues: bool = False
    calendar: str | None = None
    equity_csv: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", tuple(self.data))
        object.__setattr__(self, "params", dict(self.params))
        if not self.data:
            raise ConfigError("a backtest needs at least one data file or cached series")


@dataclass(frozen=True, slots=True)
class BacktestOutcome:
    """What a finished backtest job produced.

    Attributes
    ----------
    run_id
        The run's id (its folder name when the folder was made for it).
    folder
        The run folder.
    paths
        Every file written, by name (``trades``, ``equity``, ``summary``, ``run``, ...).
    result
        The run: trades, equity curve, metrics.
    analysis
        Metrics, breakdowns, validation and bias findings (``metrics.json``).
    record
        The run record (``run.json``).
    run_seconds
        Wall time of loading and running (writing the folder excluded).
    """

    run_id: str
    folder: Path
    paths: dict[str, Path]
    result: BacktestResult
    analysis: RunAnalysis
    record: dict[str, Any]
    run_seconds: float

    @property
    def model(self) -> dict[str, Any] | None:
        """The model of the run with its counts (None without a model)."""
        model: dict[str, Any] | None = self.record.get("model")
        return model

    def summary(self) -> dict[str, Any]:
        """The run's summary metrics, JSON-safe (non-finite numbers as None or text)."""
        from tradeloop.engine.output import json_safe

        summary: dict[str, Any] = json_safe(self.result.summary())
        return summary


def run_backtest_job(
    job: BacktestJob, *, progress: ProgressCallback | None = None
) -> BacktestOutcome:
    """Run ``job`` end to end and record it; return what it produced.

    ``progress(done, total)`` is called as bars are processed.

    Raises
    ------
    ConfigError
        For an unknown strategy, parameter, model or timeframe, or inconsistent data.
    DataError
        For a malformed or missing data file or cached series.
    StrategyError
        When the strategy's code raises.
    """
    from tradeloop.analysis.report_assets import REPORT_ASSETS_FOLDER, prepare_plotly
    from tradeloop.analysis.run_analysis import analyze_run
    from tradeloop.config.redact import redact
    from tradeloop.data.gate import GateCache
    from tradeloop.engine.output import (
        describe_data,
        new_run_id,
        run_bar_ns,
        run_info,
        write_outputs,
    )
    from tradeloop.engine.runner import run_backtest
    from tradeloop.ml.threads import bounded_threads
    from tradeloop.risk.engine import RiskEngine
    from tradeloop.risk.report import write_risk_report

    config = job.config
    risk_engine = RiskEngine(config.risk)
    # data that passed the gate before is not checked again: a marker next to the run folders
    # (a run written to a folder of its own, --out, writes nothing elsewhere, so no cache)
    gate_cache = GateCache(job.output_root / GATE_CACHE_FOLDER) if job.out is None else None
    # the report's plotly.js is packed (or read from the run store's cache) while the run goes
    report_assets = job.output_root / REPORT_ASSETS_FOLDER if job.out is None else None
    if job.report:
        prepare_plotly(report_assets)
    enrichment = job.model.enrichment() if job.model is not None else None
    threads = bounded_threads(job.model.threads) if job.model is not None else nullcontext()
    regime = job.regime.source() if job.regime is not None else None
    started = time.perf_counter()
    with threads:
        result, loaded = run_backtest(
            job.strategy,
            job.data,
            config,
            job.params,
            strategies_dir=job.strategies_dir,
            progress=progress,
            risk=risk_engine,
            enrichment=enrichment,
            allow_data_issues=job.allow_data_issues,
            calendar=job.calendar,
            inputs=(regime,) if regime is not None else (),
            gate_cache=gate_cache,
        )
    run_seconds = time.perf_counter() - started
    model_record = enrichment.describe() if enrichment is not None else None
    created = datetime.now(tz=UTC)
    data_files = describe_data(
        job.data, loaded, digests=gate_cache.digests if gate_cache is not None else None
    )
    validation, bias = job.validation, BiasConfig()
    material: dict[str, Any] = {
        "params": result.params,
        "config": result.config,
        "data": [f["sha256"] for f in data_files],
        "seed": validation.seed,
    }
    if model_record is not None:  # runs without a model keep their ids
        material["model"] = {k: model_record[k] for k in _MODEL_IDENTITY}
    if regime is not None and job.regime is not None:  # runs without a regime keep their ids
        material["regime"] = {**job.regime.describe(), "version": regime.version}
    run_id = new_run_id(result.strategy, material, created)
    folder = job.out if job.out is not None else _new_folder(job.output_root / "runs" / run_id)
    record = run_info(
        result,
        data_files,
        run_id=folder.name if job.out is None else run_id,
        validation=validation,
        bias=bias,
        command=redact(job.command),  # a DSN or key typed on the command line stays out
        created=created,
        model=model_record,
    )
    issues = [issue for item in loaded for issue in item.issues]
    if issues:
        record["data_issues"] = issues
    record["risk"] = _risk_record(risk_engine, result)
    if job.calendar is not None:
        record["calendar"] = job.calendar
    if regime is not None:
        record["regime"] = regime.describe()
    provenance = {
        "files": [
            {
                "path": str(item.source),
                "symbol": item.bars.symbol,
                "timeframe": item.timeframe,
                "rows": len(item.bars),
                "repaired": item.repaired,
            }
            for item in loaded
        ],
        "command": redact(job.command),
    }
    prices = {item.bars.symbol: item.bars for item in loaded}
    analyzed: list[RunAnalysis] = []

    def analysis_of_run() -> RunAnalysis:
        """The run's analysis, computed while write_outputs writes the equity files."""
        analyzed.append(
            analyze_run(
                ts=result.ts,
                equity=result.equity,
                trades=result.trades,
                bar_ns=run_bar_ns(result),
                initial_equity=config.balance,
                exposure=result.exposure,
                prices=prices,
                metrics=result.metrics,
                validation=validation,
                bias=bias,
                columns=result.trade_columns,
            )
        )
        return analyzed[0]

    paths = write_outputs(
        result,
        folder,
        report=job.report,
        prices=prices,
        provenance=provenance,
        analysis=analysis_of_run,
        run=record,
        regimes=regime.series(result.ts, result.symbols[0]) if regime is not None else None,
        equity_csv=job.equity_csv,
        report_assets=report_assets,
    )
    analysis = analyzed[0]
    paths.update(write_risk_report(risk_engine.report(), folder))
    if job.out is None:
        _point_latest(job.output_root, folder)
    logger.info(
        "backtest %s: %d bars in %.2fs, written to %s",
        record["run_id"],
        result.bars_processed,
        run_seconds,
        folder,
    )
    return BacktestOutcome(
        run_id=str(record["run_id"]),
        folder=folder,
        paths=paths,
        result=result,
        analysis=analysis,
        record=record,
        run_seconds=run_seconds,
    )


def _risk_record(risk_engine: Any, result: BacktestResult) -> dict[str, Any]:
    """Halts (when, cause, how long, lifted by what) and rejections by reason, for run.json."""
    from collections import Counter

    from tradeloop.risk.report import halt_summary

    ks = risk_engine.kill_switch
    end = int(result.ts[-1]) + run_bar_ns_of(result) if len(result.ts) else 0
    reasons = Counter(str(r.reason) for r in result.rejections)
    return halt_summary(ks.events, end, reasons, ks.state.value)


def run_bar_ns_of(result: BacktestResult) -> int:
    """The step length of a finished run (ns)."""
    from tradeloop.engine.output import run_bar_ns

    return int(run_bar_ns(result))


def load_run_record(run_id: str, output_root: str | Path = "output") -> dict[str, Any] | None:
    """Return the record (``run.json``) of run ``run_id`` under ``output_root``, or None.

    Only an exact run id is looked up (``<output_root>/runs/<run_id>/run.json``): no path, no
    prefix, so a caller cannot reach a file outside the run folders.

    Raises
    ------
    ConfigError
        When ``run_id`` is not a run id (it holds a path separator, starts with a dot...).
    DataError
        When the record exists but cannot be read.
    """
    from tradeloop.analysis.runs import RUN_FILE, read_json

    if not RUN_ID_PATTERN.fullmatch(run_id):
        raise ConfigError(
            f"{run_id!r} is not a run id (letters, digits, '_', '.', '-'; e.g. "
            "20250102T030405Z-sma_cross-f9d860)"
        )
    path = Path(output_root) / "runs" / run_id / RUN_FILE
    if not path.is_file():
        return None
    return read_json(path)


def _new_folder(folder: Path) -> Path:
    """Create and return ``folder``, or ``folder-2``, ``folder-3``... when it is taken.

    The folder is made here (not just named), so two runs of the same job finishing in the
    same second, in two threads or processes, never share a folder.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    candidate, n = folder, 1
    while True:
        try:
            candidate.mkdir()
        except FileExistsError:
            n += 1
            candidate = folder.with_name(f"{folder.name}-{n}")
        else:
            return candidate


def _point_latest(root: Path, folder: Path) -> None:
    """Point ``<root>/latest`` at ``folder`` (a relative link, replaced atomically).

    Where links cannot be made the run is still recorded; ``latest`` is only a convenience.
    """
    latest = root / "latest"
    staged = root / f".latest-{uuid.uuid4().hex}"
    try:
        staged.symlink_to(Path("runs") / folder.name)
        os.replace(staged, latest)
    except OSError as exc:
        logger.debug("cannot point %s at %s: %s", latest, folder, exc)
        with suppress(OSError):
            staged.unlink(missing_ok=True)


# -- the loop service: one running engine and its control surface --------------------------------

#: components whose failure makes the service ``down`` (503); the others make it ``degraded``
CRITICAL_COMPONENTS = ("engine", "feed", "state_store", "broker", "model")


#: builds the session a :class:`LoopService` runs: ``(cfg, settings=, alerter=, config_path=)``
#: -> a :class:`~tradeloop.engine.loop.LoopSession` (paper) or a subclass (live)
SessionFactory = Callable[..., "LoopSession"]


class LoopService:
    """One loop engine (``loop.toml``) running in this process, and the only way the API (or
    any other caller) reads or steers it.

    The engine is a :class:`~tradeloop.engine.loop.LoopSession` (paper, or its live
    subclass from ``session_factory``) run on its own thread; every
    read is a snapshot the session's thread built, every command goes through its
    :class:`~tradeloop.engine.control.EngineControl` queue and is carried out between two
    events. Each command is audited (who, what, result) in the hash-chained ``audit`` log.

    Parameters
    ----------
    config_path
        The loop's TOML file (watched for changes while running; see ``reload``).
    settings
        Exchange endpoints and keys (default: the environment).
    alerter
        Where alerts go (default: the log).
    audit
        The control audit log (default: ``control_audit.jsonl`` next to the status file).
    feed_stale_s
        ``/health`` reports the feed down when no kline came for this long (default: the
        session's reconnect watchdog, 60 s).
    fresh
        Delete a stored run of the same id before starting.
    session_factory
        Builds the session to run, called as ``LoopSession`` is (``(cfg, settings=...,
        alerter=..., config_path=...)``); default: the paper ``LoopSession``. ``tradeloop
        serve --live`` passes one that builds a
        :class:`~tradeloop.engine.live_session.LiveLoopSession` (the same service, routes,
        health and metrics; the broker is then the venue's).

    Raises
    ------
    ConfigError
        For an invalid config file (naming the file and the key).
    """

    def __init__(
        self,
        config_path: str | Path,
        *,
        settings: Settings | None = None,
        alerter: Alerter | None = None,
        audit: AuditLog | None = None,
        feed_stale_s: float | None = None,
        fresh: bool = False,
        session_factory: SessionFactory | None = None,
    ) -> None:
        from dataclasses import replace

        from tradeloop.engine.control import EngineControl
        from tradeloop.engine.loop import LoopSession, build_strategy
        from tradeloop.engine.loop_config import load_loop_config
        from tradeloop.risk.overrides import AuditLog
        from tradeloop.store.analytics import AnalyticsStore

        path = Path(config_path)
        cfg = load_loop_config(path)
        build_strategy(cfg)  # unknown strategies and parameters fail here, named
        cfg.risk_setting()
        self.config_path = path
        make = session_factory or LoopSession
        self.session = make(cfg, settings=settings, alerter=alerter, config_path=path)
        if fresh:
            self.session.config = replace(self.session.config, fresh=True)
        self.control = EngineControl()
        self.session.control = self.control
        self.analytics = AnalyticsStore(cfg.path(cfg.run.analytics), hold=False)
        self.session.analytics = self.analytics
        status_dir = Path(self.session.config.status_path).parent
        self.audit = audit if audit is not None else AuditLog(status_dir / "control_audit.jsonl")
        self.feed_stale_s = (
            feed_stale_s if feed_stale_s is not None else self.session.config.stale_after_s
        )
        self.error: str | None = None
        self.exit_code: int | None = None
        self._thread: threading.Thread | None = None
        self._health_cache: dict[str, tuple[float, dict[str, Any]]] = {}

    # -- lifecycle ----------------------------------------------------------------------------
    @property
    def run_id(self) -> str:
        """The run's id."""
        return self.session.config.run_id

    def start(self) -> None:
        """Start the engine on its own thread."""
        self._thread = threading.Thread(target=self._run, name="engine", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.exit_code = self.session.run()
        except Exception as exc:  # the API stays up to report it (health: engine down)
            self.error = f"{type(exc).__name__}: {exc}"
            self.exit_code = 1
            logger.exception("engine stopped with an error")

    def stop(self, timeout_s: float = 30.0) -> None:
        """Ask the engine to stop (state saved) and wait for it."""
        self.session.request_stop()
        if self._thread is not None:
            self._thread.join(timeout_s)

    @property
    def running(self) -> bool:
        """True while the engine's thread runs."""
        return self._thread is not None and self._thread.is_alive()

    # -- reads --------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any] | None:
        """The newest snapshot of the engine (None until its run is open)."""
        return self.control.snapshot()

    def status(self) -> dict[str, Any]:
        """Engine status: mode, run, equity, cash, positions, counters, feed, stages, paused."""
        snap = self.snapshot()
        base: dict[str, Any] = {
            "run_id": self.run_id,
            "running": self.running,
            "error": self.error,
            "ready": snap is not None,
        }
        if snap is None:
            return base
        status: dict[str, Any] = dict(snap["status"])
        status.update(base)
        status["paused"] = snap["risk"]["paused"]
        return status

    def bar_received_at(self) -> float | None:
        """When (``time.perf_counter()``) the engine took its last closed bar from the feed."""
        return self.session.bar_received_at

    def drain_inference_latencies(self) -> list[float]:
        """Seconds of each model scoring since the last call (empty without a model)."""
        timings = getattr(self.session.enrichment, "latencies", None)
        out: list[float] = []
        while timings:
            try:
                out.append(timings.popleft())
            except IndexError:
                break
        return out

    def bus_dropped(self) -> int:
        """Messages the engine's bus dropped (failed handlers, or Redis messages lost)."""
        bus = self.session.bus
        stats = getattr(bus, "stats", None)
        if isinstance(stats, dict):
            return int(
                stats.get("dropped_pubsub", 0)
                + stats.get("dropped_stream", 0)
                + stats.get("dead_letters", 0)
            )
        return len(getattr(bus, "dead_letters", ()))

    def add_listener(self, listener: Callable[[MessageBus], None]) -> None:
        """Call ``listener(bus)`` with the engine's message bus when its run opens."""
        self.control.add_listener(listener)

    # -- control ------------------------------------------------------------------------------
    def command(self, action: str, who: str, timeout_s: float = 15.0, **args: Any) -> CommandResult:
        """Carry out ``action`` on the engine's thread and audit it; return the
        :class:`~tradeloop.engine.control.CommandResult`.

        A command sent while the engine is not running (still starting, or stopped) is
        refused (``ok`` False) and audited as such.
        """
        from concurrent.futures import TimeoutError as FutureTimeout

        from tradeloop.engine.control import CommandResult

        if not self.running or self.snapshot() is None:
            result = CommandResult(
                action,
                False,
                {"error": self.error or "the engine is not running yet (warming up or stopped)"},
            )
        else:
            future = self.control.submit(action, **args)
            try:
                result = future.result(timeout=timeout_s)
            except FutureTimeout:
                future.cancel()
                result = CommandResult(action, False, {"error": "the engine did not answer"})
        self.audit_record(who, action, args, "ok" if result.ok else "refused", result.detail)
        return result

    def audit_record(
        self,
        who: str,
        action: str,
        args: Mapping[str, Any],
        result: str,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        """Append one control record (who, what, arguments, result) to the audit log."""
        shown = {k: ("<token>" if k == "token" else v) for k, v in args.items()}
        self.audit.append(
            {
                "who": who,
                "what": action,
                "args": shown,
                "result": result,
                "detail": dict(detail or {}),
                "run_id": self.run_id,
            }
        )

    # -- health -------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """``{"status": "ok"|"degraded"|"down", "components": {name: {"ok", "detail"}}}``.

        engine (its thread runs and rebuilds its snapshot), feed (a kline within
        ``feed_stale_s`` and the connection up), bus (Redis reachable; in-process always),
        state store and analytics store (a query answers), broker (its circuit is not open),
        model (the configured model is loaded). A critical component down makes the service
        ``down``; another one ``degraded``.
        """
        snap = self.snapshot()
        comps: dict[str, dict[str, Any]] = {}
        age = self.control.snapshot_age_s()
        if not self.running:
            comps["engine"] = _down(self.error or "the engine is not running")
        elif snap is None:
            comps["engine"] = _down("starting: the run is being opened (warm-up)")
        elif age is not None and age > max(10.0, 20 * self.control.snapshot_interval_s):
            comps["engine"] = _down(f"the engine has not reported for {age:.1f}s")
        else:
            comps["engine"] = _ok(f"{snap['status'].get('steps', 0)} steps")
        comps["feed"] = self._feed(snap)
        comps["bus"] = self._bus()
        comps["state_store"] = self._cached("state_store", self._state_store)
        comps["analytics_store"] = self._cached("analytics_store", self._analytics_store)
        comps["broker"] = self._broker(snap)
        comps["model"] = self._model(snap)
        down = [n for n, c in comps.items() if not c["ok"] and n in CRITICAL_COMPONENTS]
        degraded = [n for n, c in comps.items() if not c["ok"]]
        status = "down" if down else ("degraded" if degraded else "ok")
        return {"status": status, "components": comps}

    def _feed(self, snap: Mapping[str, Any] | None) -> dict[str, Any]:
        if snap is None:
            return _down("no feed yet")
        # the feed as it is now (what it put on the engine's queue), not as far as the engine
        # has read: a backlog neither hides a dead feed nor delays its recovery
        last, state, waiting = self.session.feed_now()
        if last is None:
            return _down(f"no kline received yet (feed {state})")
        age = time.monotonic() - last
        detail = (
            f"last kline {age:.1f}s ago (limit {self.feed_stale_s:g}s), feed {state}, "
            f"{waiting} event(s) waiting for the engine"
        )
        if age > self.feed_stale_s:
            return _down(f"stale: {detail}")
        if state not in ("connected",):
            return _down(detail)
        return _ok(detail)

    def _bus(self) -> dict[str, Any]:
        bus = self.session.bus
        connected = getattr(bus, "connected", None)
        if connected is None:
            return _ok(f"{type(bus).__name__} (in-process)")
        if connected:
            return _ok("redis connected")
        return _down("redis unreachable: publishing to the in-process fallback")

    def _cached(self, name: str, check: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        now = time.monotonic()
        hit = self._health_cache.get(name)
        if hit is not None and now - hit[0] < 1.0:
            return hit[1]
        try:
            out = check()
        except Exception as exc:
            out = _down(f"{type(exc).__name__}: {str(exc)[:200]}")
        self._health_cache[name] = (now, out)
        return out

    def _state_store(self) -> dict[str, Any]:
        url = self.session.config.state_url
        if url.startswith(("postgresql://", "postgres://")):
            with needs_extra("live", "a PostgreSQL state store"):
                import psycopg

            with psycopg.connect(url, connect_timeout=2) as con:
                con.execute("SELECT 1")
            return _ok("postgresql answers")
        import sqlite3

        path = Path(url).expanduser()
        if not path.is_file():
            return _down(f"state file {path.name} does not exist")
        lite = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2.0)
        try:
            row = lite.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            lite.close()
        tables = int(row[0]) if row else 0
        return _ok(f"sqlite answers ({tables} objects)")

    def _analytics_store(self) -> dict[str, Any]:
        with self.analytics.session() as con:
            con.execute("SELECT 1").fetchone()
        return _ok("duckdb answers")

    @staticmethod
    def _broker(snap: Mapping[str, Any] | None) -> dict[str, Any]:
        if snap is None:
            return _down("no broker yet")
        broker = snap["broker"]
        circuit = broker.get("circuit")
        if circuit == "open":
            why = broker.get("circuit_reason")
            return _down(f"{broker['kind']}: circuit open" + (f" ({why})" if why else ""))
        detail = broker["kind"] + (f", circuit {circuit}" if circuit else "")
        return _ok(detail)

    def _model(self, snap: Mapping[str, Any] | None) -> dict[str, Any]:
        wanted = self.session.loop_config.model
        if wanted is None:
            return _ok("no model configured")
        if snap is None:
            return _down(f"model {wanted.name} not loaded yet")
        model = snap.get("model")
        if model is None:
            return _down(f"model {wanted.name} is not loaded")
        return _ok(f"{model['name']}:{model['version']}")


def _ok(detail: str) -> dict[str, Any]:
    return {"ok": True, "detail": detail}


def _down(detail: str) -> dict[str, Any]:
    return {"ok": False, "detail": detail}
