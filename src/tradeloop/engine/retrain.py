"""Retraining in a running loop: closed trades -> retrain monitor -> a retrain in the background
-> validation -> model registry -> atomic hot-swap between two steps.

:class:`ModelRetrainer` watches the model of a paper or live run (a
:class:`~tradeloop.engine.enrichment.ModelEnrichment`); backtests never retrain.

1. **Outcomes.** It subscribes locally to ``tradeloop.trades``. A closed trade's id is the id of
   the signal that opened it, so the enrichment's record of that signal gives the probability
   the model gave it; ``(meta_confidence, pnl > 0)`` goes into a
   :class:`~tradeloop.ml.monitor.RetrainMonitor`. Trades the model did not score (cold
   features, opened before a restart) and trades scored by a model since replaced are counted
   and left out.
2. **Trigger.** When the monitor emits a :class:`~tradeloop.ml.monitor.RetrainEvent` (live
   accuracy below the baseline, or ``every_n`` outcomes), the next :meth:`apply_pending` call,
   on the kernel's thread, copies the bars the kernel holds and starts one retrain on a
   background thread. An event while a retrain is under way (or its result not yet applied) is
   ignored and counted.
3. **Retrain.** The training data are the strategy's entry signals this process saw on
   ``tradeloop.signals`` (or those an ``entries_of`` function finds on the bars), labelled by
   the project's training code (:func:`~tradeloop.ml.training.train_meta_model`) with the
   running model's feature set and label settings (read from its registry metadata). The most
   recent ``validation_share`` of the entries whose labels are complete is held out; the
   candidate is trained only on bars before the first of them (and on entries whose labels end
   there).
4. **Validation.** Both the running model and the candidate score the held-out entries with the
   metric the training code reports per fold (``log_loss`` by default, or ``accuracy``). The
   candidate passes when it is no worse than the running model by more than ``margin``.
5. **Swap.** A candidate that passed is saved to the registry as the next version of the same
   name, still in the background. The swap itself happens in :meth:`apply_pending` on the
   kernel's thread, between two steps, so a step never sees half a model; the monitor then
   watches the new model with its held-out accuracy as the baseline. A candidate that failed,
   or a retrain that raised (too little data, anything else), is logged and counted, the
   running model stays, and the monitor starts watching afresh.
"""

from __future__ import annotations

import ast
import concurrent.futures
import copy
import dataclasses
import logging
import math
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel

from tradeloop.bus.base import MessageBus
from tradeloop.bus.dedupe import SeenIds
from tradeloop.bus.events import SignalEvent, TradeEvent
from tradeloop.core.bar import BarArrays
from tradeloop.core.errors import ConfigError, DataError
from tradeloop.engine.enrichment import ModelEnrichment
from tradeloop.engine.live import LiveKernel
from tradeloop.engine.loop_config import LoopConfig, RetrainSection
from tradeloop.ml.model import MetaModel
from tradeloop.ml.monitor import RetrainEvent, RetrainMonitor
from tradeloop.ml.registry import ModelRef, ModelRegistry
from tradeloop.ml.training import TrainConfig, build_dataset, train_meta_model
from tradeloop.ml.training import _metrics as training_metrics

__all__ = [
    "EntriesOf",
    "ModelRetrainer",
    "RetrainConfig",
    "RetrainOutcome",
    "retrainer_for",
    "train_config_of",
]

logger = logging.getLogger(__name__)

#: ``bars -> (entry bar indices, sides)`` of the primary strategy; runs on the background thread.
EntriesOf = Callable[[BarArrays], tuple[np.ndarray, np.ndarray]]

_SIDES = {"open_long": 1, "open_short": -1}


@dataclass(frozen=True, slots=True)
class RetrainConfig:
    """When to retrain and what a candidate must show (``[retrain]`` of ``loop.toml``).

    Attributes
    ----------
    drop_threshold, min_samples, window, every_n
        The :class:`~tradeloop.ml.monitor.RetrainMonitor`'s trigger.
    min_train_bars
        Bars the kernel must hold for a retrain to be tried (the training code itself needs
        at least :data:`~tradeloop.ml.training.MIN_BARS` before the held-out entries).
    validation_share
        The most recent share of the labelled entries held out for validation.
    min_validation_events
        Held-out entries (with features and a complete label) a validation needs.
    metric
        ``"log_loss"`` (lower is better) or ``"accuracy"`` (higher is better), as the training
        code computes them.
    margin
        How much worse than the running model the candidate may be and still pass (in the
        metric's units); negative: it must beat the running model by that much.

    Raises
    ------
    ConfigError
        For a setting out of range.
    """

    drop_threshold: float = 0.05
    min_samples: int = 100
    window: int = 200
    every_n: int | None = None
    min_train_bars: int = 2000
    validation_share: float = 0.25
    min_validation_events: int = 20
    metric: Literal["log_loss", "accuracy"] = "log_loss"
    margin: float = 0.0

    def __post_init__(self) -> None:
        if self.metric not in ("log_loss", "accuracy"):
            raise ConfigError(f"retrain metric must be log_loss or accuracy, got {self.metric!r}")
        if not 0.0 < self.validation_share < 1.0:
            raise ConfigError(f"validation_share must be in (0, 1), got {self.validation_share!r}")
        if self.min_train_bars < 1 or self.min_validation_events < 1:
            raise ConfigError(
                "min_train_bars and min_validation_events must be >= 1, got "
                f"{self.min_train_bars}, {self.min_validation_events}"
            )
        if not math.isfinite(self.margin):
            raise ConfigError(f"margin must be a finite number, got {self.margin!r}")

    @classmethod
    def from_section(cls, section: RetrainSection) -> RetrainConfig:
        """The settings of a ``[retrain]`` section."""
        return cls(**section.model_dump(exclude={"enabled"}))


@dataclass(frozen=True, slots=True)
class RetrainOutcome:
    """What one retrain came to.

    Attributes
    ----------
    status
        ``"accepted"`` (saved and swapped in), ``"rejected"`` (failed validation) or
        ``"failed"`` (raised, or too little data).
    reason
        ``"passed"``, ``"worse_than_running"``, ``"model_changed"``, ``"too_little_data"``
        or ``"error"``.
    trigger
        The monitor event's reason (``"accuracy_drop"``, ``"sample_count"``, ...).
    metric, running_score, candidate_score
        The validation metric and both models' value on the held-out entries (NaN when the
        retrain failed before validating).
    candidate_accuracy
        The candidate's held-out accuracy (the monitor's next baseline when accepted).
    previous_version, version
        The running model's version, and the candidate's registry version (accepted only).
    bars, train_events, validation_events
        Bars copied from the kernel, entries trained on, entries validated on.
    seconds
        Time the background job took.
    detail
        The error message of a failed retrain.
    """

    status: Literal["accepted", "rejected", "failed"]
    reason: str
    trigger: str
    metric: str
    running_score: float = math.nan
    candidate_score: float = math.nan
    candidate_accuracy: float = math.nan
    previous_version: str = ""
    version: str | None = None
    bars: int = 0
    train_events: int = 0
    validation_events: int = 0
    seconds: float = 0.0
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The outcome as plain values (NaN as None), e.g. for a status file."""
        return {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in dataclasses.asdict(self).items()
        }


def train_config_of(metadata: Mapping[str, Any], threshold: float) -> TrainConfig:
    """The label and training settings a registered model was trained with.

    ``tradeloop train`` and retrains store them as the ``repr`` of a
    :class:`~tradeloop.ml.training.TrainConfig` under ``params.train`` (the orchestrator under
    ``params.config``); the text is read as literals only, never run. Defaults are used when
    neither is there. ``threshold`` (the running model's) always wins.

    >>> train_config_of({"params": {"train": "TrainConfig(horizon=30, n_splits=3)"}}, 0.5).horizon
    30

    Raises
    ------
    ConfigError
        For stored settings that are not a plain ``TrainConfig(...)`` of literals, or invalid.
    """
    params = metadata.get("params") or {}
    text = params.get("train") or params.get("config")
    if not isinstance(text, str) or not text.strip():
        return TrainConfig(threshold=threshold)
    try:
        call = ast.parse(text.strip(), mode="eval").body
        if not (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Name)
            and call.func.id == "TrainConfig"
            and not call.args
        ):
            raise ValueError("not a TrainConfig(...) call with keyword arguments")
        kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords if kw.arg}
    except (SyntaxError, ValueError) as exc:
        raise ConfigError(f"the model's stored training settings cannot be read: {exc}") from None
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise ConfigError(f"the model's stored training settings have unknown keys {unknown}")
    kwargs["threshold"] = threshold
    try:
        return TrainConfig(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"the model's stored training settings are invalid: {exc}") from None


@dataclass(frozen=True, slots=True)
class _Job:
    """Everything the background thread needs: copies, never the kernel's own arrays."""

    event: RetrainEvent
    bars: BarArrays
    entry_ts: np.ndarray
    entry_sides: np.ndarray
    running: MetaModel
    previous_version: str
    train: TrainConfig


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A finished background job: its outcome and, when it passed, the saved candidate."""

    outcome: RetrainOutcome
    model: MetaModel | None = None
    metadata: dict[str, Any] | None = None
    ref: ModelRef | None = None


def _copy_bars(bars: BarArrays) -> BarArrays:
    return BarArrays(
        bars.symbol,
        bars.timeframe,
        bars.ts.copy(),
        bars.open.copy(),
        bars.high.copy(),
        bars.low.copy(),
        bars.close.copy(),
        bars.volume.copy(),
    )


class ModelRetrainer:
    """Retrain the running model in the background and hot-swap it (see the module doc).

    Parameters
    ----------
    enrichment
        The run's enrichment: its records give each trade's probability, and accepted
        candidates are swapped into it.
    bus
        The run's bus (closed trades and the strategy's signals in, locally).
    config
        Trigger and validation settings.
    registry
        Where candidates are saved (default: the folder the enrichment's model was loaded
        from, :attr:`ModelEnrichment.ref`).
    train_config
        Label and training settings (default: those stored with the running model, see
        :func:`train_config_of`).
    symbol
        The symbol whose bars and entries train the model (default: the kernel's first).
    entries_of
        Finds the primary strategy's entries on the copied bars (on the background thread;
        it must not touch the kernel). Default: the entries seen on ``tradeloop.signals``.
    max_entries
        Entry signals remembered for training.

    Raises
    ------
    ConfigError
        When there is no registry to save candidates to, or the stored training settings
        cannot be read.
    """

    def __init__(
        self,
        enrichment: ModelEnrichment,
        bus: MessageBus,
        config: RetrainConfig | None = None,
        *,
        registry: ModelRegistry | str | Path | None = None,
        train_config: TrainConfig | None = None,
        symbol: str | None = None,
        entries_of: EntriesOf | None = None,
        max_entries: int = 100_000,
    ) -> None:
        self.enrichment = enrichment
        self.bus = bus
        self.config = cfg = config or RetrainConfig()
        if registry is None:
            if enrichment.ref is None:
                raise ConfigError(
                    "retraining needs a model registry to save candidates to: load the model "
                    "with ModelEnrichment.from_registry or pass registry="
                )
            registry = enrichment.ref.path.parent
        self.registry = registry if isinstance(registry, ModelRegistry) else ModelRegistry(registry)
        model = enrichment.model
        self.train_config = dataclasses.replace(
            train_config or train_config_of(enrichment.metadata, model.threshold),
            threshold=model.threshold,
        )
        self.symbol = symbol
        self.entries_of = entries_of
        self.monitor = RetrainMonitor(
            model.baseline_accuracy,
            drop_threshold=cfg.drop_threshold,
            min_samples=cfg.min_samples,
            window=cfg.window,
            every_n=cfg.every_n,
            threshold=model.threshold,
        )
        #: (bar open time, symbol, side) of the strategy's entries, oldest first
        self._entries: deque[tuple[int, str, int]] = deque(maxlen=max_entries)
        self._requested: RetrainEvent | None = None
        self._future: concurrent.futures.Future[_Prepared] | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._attached = False
        #: every retrain's outcome, oldest first
        self.outcomes: list[RetrainOutcome] = []
        self.outcomes_recorded = 0
        #: step events already handled (a step's events can be delivered again)
        self.seen = SeenIds()
        self.outcomes_unscored = 0
        self.outcomes_stale = 0
        self.events = 0
        self.events_ignored = 0
        self.started = 0
        self.failed = 0
        self.accepted = 0
        self.rejected = 0
        self.models_swapped = 0
        self.rejected_by: Counter[str] = Counter()
        self.failed_by: Counter[str] = Counter()

    # -- bus -----------------------------------------------------------------------------------
    def attach(self) -> None:
        """Subscribe to this process's closed trades and signals."""
        if not self._attached:
            self.bus.subscribe_local("tradeloop.signals", self.on_signal)
            self.bus.subscribe_local("tradeloop.trades", self.on_trade)
            self._attached = True

    def detach(self) -> None:
        """Stop listening."""
        if self._attached:
            self.bus.unsubscribe("tradeloop.signals", self.on_signal)
            self.bus.unsubscribe("tradeloop.trades", self.on_trade)
            self._attached = False

    def on_signal(self, message: BaseModel) -> None:
        """A strategy signal from the step (a bus handler): entries are remembered."""
        if not isinstance(message, SignalEvent):
            raise TypeError(f"expected SignalEvent, got {type(message).__name__}")
        if not self.seen.first(message.event_id):
            return
        side = _SIDES.get(message.action)
        if side is not None:
            self._entries.append((message.ts, message.symbol, side))

    def on_trade(self, message: BaseModel) -> None:
        """A closed trade from the step (a bus handler): its outcome goes to the monitor."""
        if not isinstance(message, TradeEvent):
            raise TypeError(f"expected TradeEvent, got {type(message).__name__}")
        if not self.seen.first(message.event_id):
            return
        record = self.enrichment.record_of(message.signal_id)
        if record is None or record.cold:
            self.outcomes_unscored += 1
            return
        if record.version != self.enrichment.version:
            self.outcomes_stale += 1  # the replaced model's call: not this model's accuracy
            return
        self.outcomes_recorded += 1
        event = self.monitor.record(record.meta_confidence, message.pnl > 0)
        if event is not None:
            self.request(event)

    # -- jobs ----------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """True from a retrain's request until its result is applied."""
        return self._requested is not None or self._future is not None

    def request(self, event: RetrainEvent) -> bool:
        """Ask for a retrain (the monitor's event, or an operator's); it starts at the next
        :meth:`apply_pending`. Returns False, counting it, when one is already under way."""
        self.events += 1
        if self.busy:
            self.events_ignored += 1
            logger.info("retrain requested (%s) while one is under way: ignored", event.reason)
            return False
        self._requested = event
        logger.info(
            "retrain requested: %s (live accuracy %.3f, baseline %.3f)",
            event.reason, event.live_accuracy, event.baseline_accuracy,
        )  # fmt: skip
        return True

    def apply_pending(self, kernel: LiveKernel) -> bool:
        """On the kernel's thread, between two events: apply a finished retrain (swap a
        candidate that passed), then start a requested one on a copy of the kernel's bars.

        Returns True when a new model was swapped in. Never raises for a failed retrain.
        """
        swapped = False
        future = self._future
        if future is not None and future.done():
            self._future = None
            swapped = self._finish(future)
        if self._requested is not None and self._future is None:
            event, self._requested = self._requested, None
            self._start(event, kernel)
        return swapped

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the background retrain; True when none is
        running any more (its result waits for :meth:`apply_pending`)."""
        future = self._future
        if future is None:
            return True
        done, _ = concurrent.futures.wait([future], timeout=timeout)
        return bool(done)

    def close(self, *, wait: bool = True) -> None:
        """Stop listening and shut the background thread down (a retrain under way finishes
        when ``wait``; its result is not applied)."""
        self.detach()
        if self._executor is not None:
            self._executor.shutdown(wait=wait, cancel_futures=True)
            self._executor = None

    def _start(self, event: RetrainEvent, kernel: LiveKernel) -> None:
        symbol = self.symbol or kernel.symbols[0]
        series = kernel.series.get(symbol)
        if series is None:
            self._fail(event, "error", f"the kernel holds no bars of {symbol!r}")
            return
        held = len(series)
        if held < self.config.min_train_bars:
            self._fail(
                event,
                "too_little_data",
                f"{symbol}: {held} bars held, a retrain needs {self.config.min_train_bars}",
            )
            return
        mine = [(ts, side) for ts, s, side in self._entries if s == symbol]
        job = _Job(
            event,
            _copy_bars(series.arrays(symbol, kernel.timeframe)),
            np.fromiter((ts for ts, _ in mine), np.int64, len(mine)),
            np.fromiter((side for _, side in mine), np.int64, len(mine)),
            copy.deepcopy(self.enrichment.model),  # the kernel keeps predicting with its own
            self.enrichment.version,
            self.train_config,
        )
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="model-retrain"
            )
        self.started += 1
        self._future = self._executor.submit(self._retrain, job)
        logger.info(
            "retrain started on %d %s bars and %d entries", held, symbol, len(mine),
            extra={"trigger": event.reason, "version": job.previous_version},
        )  # fmt: skip

    def _fail(self, event: RetrainEvent, reason: str, detail: str) -> None:
        """A retrain that could not start."""
        self._failed(
            RetrainOutcome(
                "failed", reason, event.reason, self.config.metric,
                previous_version=self.enrichment.version, detail=detail,
            )
        )  # fmt: skip

    def _failed(self, outcome: RetrainOutcome) -> None:
        self.failed += 1
        self.failed_by[outcome.reason] += 1
        self.outcomes.append(outcome)
        logger.error(
            "retrain failed (%s): %s; the running model stays", outcome.reason, outcome.detail
        )
        self.monitor.mark_retrained(self.monitor.baseline)  # watch afresh, same baseline

    def _finish(self, future: concurrent.futures.Future[_Prepared]) -> bool:
        """Apply a finished job on the kernel's thread; True when a model was swapped in."""
        if future.cancelled() or future.exception() is not None:  # not an Exception: unlikely
            exc = None if future.cancelled() else future.exception()
            self._failed(
                RetrainOutcome(
                    "failed", "error", "unknown", self.config.metric,
                    previous_version=self.enrichment.version, detail=repr(exc),
                )
            )  # fmt: skip
            return False
        prepared = future.result()
        outcome = prepared.outcome
        if outcome.status == "failed":
            self._failed(outcome)
            return False
        if outcome.status == "accepted" and outcome.previous_version != self.enrichment.version:
            outcome = dataclasses.replace(outcome, status="rejected", reason="model_changed")
        self.outcomes.append(outcome)
        if outcome.status != "accepted" or prepared.model is None:
            self.rejected += 1
            self.rejected_by[outcome.reason] += 1
            logger.warning(
                "retrained candidate rejected (%s): %s %.4f vs the running model's %.4f",
                outcome.reason, outcome.metric, outcome.candidate_score, outcome.running_score,
            )  # fmt: skip
            self.monitor.mark_retrained(self.monitor.baseline)
            return False
        self.accepted += 1
        self.enrichment.swap(
            prepared.model, outcome.version, metadata=prepared.metadata, ref=prepared.ref
        )
        self.models_swapped += 1
        self.monitor.mark_retrained(outcome.candidate_accuracy)
        logger.info(
            "model %s swapped in: %s %.4f vs %.4f on %d held-out entries",
            self.enrichment.spec, outcome.metric, outcome.candidate_score,
            outcome.running_score, outcome.validation_events,
        )  # fmt: skip
        return True

    # -- the background job --------------------------------------------------------------------
    def _retrain(self, job: _Job) -> _Prepared:
        """The background job: never raises an ``Exception``; a failure is an outcome."""
        started = time.perf_counter()
        try:
            return self._train_and_validate(job, started)
        except Exception as exc:
            if not isinstance(exc, DataError):
                logger.exception("retrain raised")
            return _Prepared(
                RetrainOutcome(
                    "failed",
                    "too_little_data" if isinstance(exc, DataError) else "error",
                    job.event.reason,
                    self.config.metric,
                    previous_version=job.previous_version,
                    bars=len(job.bars),
                    seconds=time.perf_counter() - started,
                    detail=f"{type(exc).__name__}: {exc}",
                )
            )

    def _events(self, job: _Job) -> tuple[np.ndarray, np.ndarray]:
        bars = job.bars
        if self.entries_of is not None:
            idx, sides = self.entries_of(bars)
            return np.asarray(idx, np.int64), np.asarray(sides, np.int64)
        idx = np.searchsorted(bars.ts, job.entry_ts)
        ok = idx < len(bars)
        ok[ok] = bars.ts[idx[ok]] == job.entry_ts[ok]  # entries on bars no longer held: out
        pairs = np.unique(np.stack([idx[ok], job.entry_sides[ok]], axis=1), axis=0)
        return pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)

    def _train_and_validate(self, job: _Job, started: float) -> _Prepared:
        cfg, train = self.config, job.train
        bars, running = job.bars, job.running
        fs = running.feature_set
        idx, sides = self._events(job)
        order = np.argsort(idx, kind="stable")
        idx, sides = idx[order], sides[order]
        complete = idx + train.horizon < len(bars)  # labels still open are left out
        idx, sides = idx[complete], sides[complete]
        n_val = round(cfg.validation_share * idx.size)
        if n_val < cfg.min_validation_events:
            raise DataError(
                f"{bars.symbol}: {idx.size} entries with complete labels hold out {n_val} for "
                f"validation; {cfg.min_validation_events} are needed"
            )
        cut = int(idx[idx.size - n_val])  # the first held-out entry's bar
        before = idx + train.horizon < cut  # training labels end before the held-out slice
        features = fs.compute_bars(bars)
        result = train_meta_model(
            bars.slice(0, cut), idx[before], sides[before], train, fs, features=features[:cut]
        )
        candidate = result.model
        held = idx >= cut
        ds = build_dataset(bars, idx[held], sides[held], train, fs, features)
        if ds.y.size < cfg.min_validation_events:
            raise DataError(
                f"{bars.symbol}: {ds.y.size} held-out entries have features; "
                f"{cfg.min_validation_events} are needed"
            )
        run_m = training_metrics(ds.y, running.predict_proba(ds.x), train.threshold)
        cand_m = training_metrics(ds.y, candidate.predict_proba(ds.x), train.threshold)
        run_s, cand_s = run_m[cfg.metric], cand_m[cfg.metric]
        if cfg.metric == "log_loss":
            passed = cand_s <= run_s + cfg.margin
        else:
            passed = cand_s >= run_s - cfg.margin
        outcome = RetrainOutcome(
            "accepted" if passed else "rejected",
            "passed" if passed else "worse_than_running",
            job.event.reason,
            cfg.metric,
            running_score=run_s,
            candidate_score=cand_s,
            candidate_accuracy=cand_m["accuracy"],
            previous_version=job.previous_version,
            bars=len(bars),
            train_events=result.n_events,
            validation_events=int(ds.y.size),
        )
        if not passed:
            return _Prepared(dataclasses.replace(outcome, seconds=time.perf_counter() - started))
        name = self.registry.root.name
        old = self._metadata_of(job.previous_version)
        params = dict(old.get("params") or {})
        params["train"] = repr(train)
        version = self.registry.save(
            candidate,
            params=params,
            metrics={
                "overall": result.overall,
                "validation": {"running": run_m, "candidate": cand_m, "events": int(ds.y.size)},
            },
            bars=bars,
            extra={
                "name": name,
                "retrained_from": job.previous_version,
                "trigger": dataclasses.asdict(job.event),
                "validation_start_ns": int(bars.ts[cut]),
            },
        )
        outcome = dataclasses.replace(
            outcome, version=version, seconds=time.perf_counter() - started
        )
        ref = ModelRef(name, version, self.registry.root / version)
        return _Prepared(outcome, candidate, self.registry.metadata(version), ref)

    def _metadata_of(self, version: str) -> dict[str, Any]:
        if version in self.registry.versions():
            return self.registry.metadata(version)
        return {}

    # -- reporting -----------------------------------------------------------------------------
    def counts(self) -> dict[str, Any]:
        """Outcomes, events, retrains and swaps so far, and the model version (stage report)."""
        return {
            "retrain_outcomes": self.outcomes_recorded,
            "retrain_outcomes_unscored": self.outcomes_unscored,
            "retrain_outcomes_stale": self.outcomes_stale,
            "retrain_events": self.events,
            "retrain_events_ignored": self.events_ignored,
            "retrains_started": self.started,
            "retrains_failed": self.failed,
            "retrains_failed_by": dict(self.failed_by),
            "candidates_accepted": self.accepted,
            "candidates_rejected": self.rejected,
            "candidates_rejected_by": dict(self.rejected_by),
            "models_swapped": self.models_swapped,
            "model_version": self.enrichment.version,
        }


def retrainer_for(
    config: LoopConfig, enrichment: ModelEnrichment | None, bus: MessageBus
) -> ModelRetrainer | None:
    """The retrainer ``loop.toml`` asks for, attached to the bus; None when ``[retrain]`` is
    off or the run has no model.

    Raises
    ------
    ConfigError
        As :class:`ModelRetrainer`.
    """
    if not config.retrain.enabled or enrichment is None:
        return None
    retrainer = ModelRetrainer(enrichment, bus, RetrainConfig.from_section(config.retrain))
    retrainer.attach()
    return retrainer
