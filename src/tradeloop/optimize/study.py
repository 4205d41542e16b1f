"""A resumable optuna study over a strategy's parameters.

:func:`run_study` drives optuna by ask and tell: this process asks for trials, a backend
(:mod:`tradeloop.optimize.backends`) runs them, and each result is told back as it arrives, so
the study's storage is written by one process only. Methods:

* ``grid`` — every combination of the space's grid, enqueued in grid order;
* ``random`` — optuna's seeded random sampler;
* ``tpe`` — optuna's TPE sampler (multivariate, constraint-aware, several objectives allowed).

The study lives in an optuna RDB storage: a SQLite file by default, a PostgreSQL URL when
given. Its name is derived from everything that defines it (strategy, data, rules, space,
objectives, method, seed), so running the same command again resumes it: finished trials are
kept and never run again, trials a killed process left running are marked failed and their
parameters run again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from tradeloop.core.errors import ConfigError
from tradeloop.core.extras import needs_extra
from tradeloop.optimize.objective import METRICS, Constraints, Objective

if TYPE_CHECKING:
    import optuna

    from tradeloop.optimize.backends import Backend
    from tradeloop.optimize.space import SearchSpace

__all__ = [
    "METHODS",
    "StudyOptions",
    "StudyResult",
    "TrialRow",
    "mask_url",
    "run_study",
    "storage_url",
]

logger = logging.getLogger(__name__)

METHODS = ("grid", "random", "tpe")
#: called as ``progress(done, total, best_value)`` after every trial
StudyProgress = Callable[[int, int, float | None], None]


@dataclass(frozen=True, slots=True)
class StudyOptions:
    """How to search.

    Attributes
    ----------
    method
        ``grid``, ``random`` or ``tpe``.
    trials
        Trials in the study (random/TPE; default 100); a grid runs all its points.
    objectives
        Metrics to optimise (one, or several for a Pareto front).
    constraints
        Conditions a chosen trial meets.
    seed
        Sampler seed.
    storage
        Optuna storage URL (``sqlite:///file.db`` or ``postgresql://...``); None keeps the
        study in memory.
    name
        Study name; None derives it from the study's identity (so a rerun resumes).
    fresh
        Delete a stored study of that name and start again.
    batch
        Trials asked at once (the backend's workers are kept busy; 1 for serial TPE).
    """

    method: str = "tpe"
    trials: int | None = None
    objectives: tuple[Objective, ...] = (Objective("sharpe"),)
    constraints: Constraints = field(default_factory=Constraints)
    seed: int = 42
    storage: str | None = None
    name: str | None = None
    fresh: bool = False
    batch: int = 1

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"--method must be one of {list(METHODS)}, got {self.method!r}")
        if self.trials is not None and self.trials < 1:
            raise ConfigError(f"--trials must be >= 1, got {self.trials}")
        if not self.objectives:
            raise ConfigError("give at least one objective")


@dataclass(slots=True)
class TrialRow:
    """One trial of the table: its parameters, metrics, objective values and feasibility."""

    trial: int
    params: dict[str, Any]
    metrics: dict[str, float] | None
    values: list[float]
    feasible: bool
    error: str | None = None
    blocks: list[list[float]] = field(default_factory=list, repr=False)

    def record(self) -> dict[str, Any]:
        """A flat row: ``trial``, the parameters, ``feasible``, the metrics (or ``error``)."""
        row: dict[str, Any] = {"trial": self.trial}
        row.update(self.params)
        row["feasible"] = self.feasible
        for name in METRICS:
            row[name] = self.metrics[name] if self.metrics is not None else math.nan
        row["error"] = self.error or ""
        return row


@dataclass(slots=True)
class StudyResult:
    """A finished (or resumed and finished) study."""

    name: str
    storage: str | None
    method: str
    objectives: tuple[Objective, ...]
    rows: list[TrialRow]
    best: TrialRow | None
    pareto: list[TrialRow]
    evaluated: int
    resumed: int
    engine: str
    peak_memory_mb: list[float] = field(default_factory=list)
    importance: dict[str, float] = field(default_factory=dict)

    @property
    def complete(self) -> list[TrialRow]:
        """Trials that ran (parameter sets the strategy refused excluded)."""
        return [r for r in self.rows if r.metrics is not None]

    def blocks(self) -> np.ndarray:
        """The complete trials' block statistics (N x B x 3)."""
        return np.array([r.blocks for r in self.complete], dtype=np.float64)


def storage_url(text: str | None) -> str | None:
    """An optuna storage URL: a path becomes SQLite, ``postgresql://`` gets the psycopg driver.

    >>> storage_url("out/study.db")
    'sqlite:///out/study.db'
    >>> storage_url("postgresql://u@127.0.0.1/test")
    'postgresql+psycopg://u@127.0.0.1/test'
    """
    if text is None or text == "":
        return None
    if text.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + text.split("://", 1)[1]
    if "://" in text:
        return text
    return f"sqlite:///{text}"


def mask_url(url: str | None) -> str | None:
    """``url`` with any password replaced by ``***`` (for output and records).

    >>> mask_url("postgresql+psycopg://bob:s3cret@db:5432/x")
    'postgresql+psycopg://bob:***@db:5432/x'
    """
    if url is None or "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else url


def study_identity(material: dict[str, Any]) -> str:
    """A short stable hash of what defines a study."""
    text = json.dumps(material, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _sampler(options: StudyOptions) -> optuna.samplers.BaseSampler:
    with needs_extra("ml", "parameter search (optuna)"):
        import optuna

    if options.method == "tpe":
        return optuna.samplers.TPESampler(
            seed=options.seed,
            multivariate=True,
            constant_liar=options.batch > 1,
        )
    return optuna.samplers.RandomSampler(seed=options.seed)


def _key(params: dict[str, Any], names: list[str]) -> str:
    return json.dumps([params.get(n) for n in names], default=str)


def _open_study(options: StudyOptions, name: str) -> optuna.Study:
    with needs_extra("ml", "parameter search (optuna)"):
        import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage: Any = None
    if options.storage is not None:
        storage = optuna.storages.RDBStorage(options.storage)
        if options.fresh:
            with contextlib.suppress(KeyError):
                optuna.delete_study(study_name=name, storage=storage)
    return optuna.create_study(
        study_name=name,
        storage=storage,
        sampler=_sampler(options),
        directions=[o.direction for o in options.objectives],  # type: ignore[misc]
        load_if_exists=True,
    )


def _recover(study: optuna.Study) -> int:
    """Mark trials a killed process left running as failed; return how many."""
    from optuna.trial import TrialState

    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for t in stale:
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
    if stale:
        logger.info(
            "study %s: %d trial(s) left running were marked failed", study.study_name, len(stale)
        )
    return len(stale)


def run_study(
    space: SearchSpace,
    backend: Backend,
    options: StudyOptions,
    *,
    identity: dict[str, Any],
    engine: str,
    progress: StudyProgress | None = None,
) -> StudyResult:
    """Run (or resume) the study; return every trial, the best and the Pareto front.

    ``identity`` is what defines the study besides the space and the options (strategy, data
    fingerprint, trading rules); it names the study when ``options.name`` is None.

    Raises
    ------
    ConfigError
        For a grid over a continuous range, or a grid too large.
    StrategyError
        When the strategy's code raises in a trial.
    """
    from optuna.trial import TrialState

    material = {
        **identity,
        "space": space.describe(),
        "method": options.method,
        "seed": options.seed,
        "objectives": [asdict(o) for o in options.objectives],
        "constraints": options.constraints.describe(),
    }
    name = options.name or f"tradeloop-{study_identity(material)}"
    grid = space.grid() if options.method == "grid" else None
    study = _open_study(options, name)
    _recover(study)
    names = space.names
    finished = [
        t
        for t in study.get_trials(deepcopy=False)
        if t.state is TrialState.COMPLETE
        or (t.state is TrialState.FAIL and "error" in t.user_attrs)
    ]
    resumed = len(finished)
    if grid is not None:
        total = len(grid)
        have = {_key(t.params, names) for t in finished}
        waiting = {
            _key(t.params, names)
            for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        }
        for params in grid:
            k = _key(params, names)
            if k not in have and k not in waiting:
                study.enqueue_trial(params, skip_if_exists=False)
    else:
        total = options.trials or 100
    todo = max(0, total - resumed)
    objectives, constraints = options.objectives, options.constraints
    done = resumed
    best_value: float | None = _best_value(finished, objectives)
    evaluated = 0
    while todo > 0:
        size = min(todo, max(1, options.batch))
        asked = [study.ask() for _ in range(size)]
        batch = [space.full(space.suggest(t)) for t in asked]
        for i, result in backend.run(batch):
            trial = asked[i]
            evaluated += 1
            if result.metrics is None:
                trial.set_user_attr("error", result.error or "refused")
                study.tell(trial, state=TrialState.FAIL)
            else:
                values = [o.value(result.metrics) for o in objectives]
                ok = constraints.feasible(result.metrics)
                trial.set_user_attr("metrics", result.metrics)
                trial.set_user_attr("blocks", result.blocks)
                trial.set_user_attr("feasible", ok)
                for c, amount in enumerate(constraints.violations(result.metrics)):
                    trial.set_constraint(f"c{c}", amount)
                trial.set_user_attr("engine", result.engine)
                study.tell(trial, values)
                if ok and len(objectives) == 1:
                    v = values[0]
                    if best_value is None or objectives[0].better(v, best_value):
                        best_value = v
            done += 1
            if progress is not None:
                progress(done, total, best_value)
        todo -= size
    rows = _rows(study, space, grid)
    best, pareto = _best(rows, objectives)
    return StudyResult(
        name=name,
        storage=mask_url(options.storage),
        method=options.method,
        objectives=objectives,
        rows=rows,
        best=best,
        pareto=pareto,
        evaluated=evaluated,
        resumed=resumed,
        engine=engine,
        peak_memory_mb=backend.peak_memory_mb(),
        importance=_importance(study, space, objectives),
    )


def _importance(
    study: optuna.Study, space: SearchSpace, objectives: tuple[Objective, ...]
) -> dict[str, float]:
    """Optuna's fANOVA importance of each searched parameter for the first objective."""
    import optuna
    from optuna.trial import TrialState

    usable = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.values is not None and math.isfinite(t.values[0])
    ]
    if len(usable) < 2 or len(space.names) < 1:
        return {}
    if len(space.names) == 1:
        return {space.names[0]: 1.0}
    try:
        return dict(
            optuna.importance.get_param_importances(
                study,
                params=space.names,
                target=lambda t: t.values[0] if math.isfinite(t.values[0]) else math.nan,
                evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0),
            )
        )
    except (RuntimeError, ValueError) as exc:
        logger.info("parameter importance not available: %s", exc)
        return {}


def _best_value(
    trials: list[optuna.trial.FrozenTrial], objectives: tuple[Objective, ...]
) -> float | None:
    if len(objectives) != 1:
        return None
    best: float | None = None
    for t in trials:
        if t.values is None or not t.user_attrs.get("feasible", False):
            continue
        v = t.values[0]
        if best is None or objectives[0].better(v, best):
            best = v
    return best


def _rows(
    study: optuna.Study, space: SearchSpace, grid: list[dict[str, Any]] | None
) -> list[TrialRow]:
    """The table: finished trials, in grid order for a grid, else in trial order."""
    from optuna.trial import TrialState

    names = space.names
    picked: dict[str, optuna.trial.FrozenTrial] = {}
    ordered: list[optuna.trial.FrozenTrial] = []
    for t in study.get_trials(deepcopy=False):
        if t.state is TrialState.COMPLETE or (
            t.state is TrialState.FAIL and "error" in t.user_attrs
        ):
            if grid is not None:
                picked.setdefault(_key(t.params, names), t)
            else:
                ordered.append(t)
    if grid is not None:
        ordered = [picked[k] for k in (_key(p, names) for p in grid) if k in picked]
    rows = []
    for i, t in enumerate(ordered):
        params = space.full({n: t.params[n] for n in names if n in t.params})
        if t.state is TrialState.COMPLETE:
            rows.append(
                TrialRow(
                    trial=i,
                    params=params,
                    metrics=dict(t.user_attrs["metrics"]),
                    values=list(t.values),
                    feasible=bool(t.user_attrs.get("feasible", True)),
                    blocks=t.user_attrs.get("blocks", []),
                )
            )
        else:
            rows.append(TrialRow(i, params, None, [], False, error=str(t.user_attrs["error"])))
    return rows


def _dominates(a: list[float], b: list[float], objectives: tuple[Objective, ...]) -> bool:
    better = False
    for x, y, o in zip(a, b, objectives, strict=True):
        if o.better(y, x):
            return False
        if o.better(x, y):
            better = True
    return better


def _best(
    rows: list[TrialRow], objectives: tuple[Objective, ...]
) -> tuple[TrialRow | None, list[TrialRow]]:
    feasible = [r for r in rows if r.metrics is not None and r.feasible]
    if not feasible:
        return None, []
    pareto = [
        r for r in feasible if not any(_dominates(o.values, r.values, objectives) for o in feasible)
    ]
    first = objectives[0]
    best = pareto[0]
    for r in pareto[1:]:
        if first.better(r.values[0], best.values[0]):
            best = r
    return best, pareto
