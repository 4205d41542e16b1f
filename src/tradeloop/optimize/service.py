"""The optimisation job ``tradeloop optimize`` runs: search, validate, record, report.

:func:`run_optimize_job` loads the data once, runs (or resumes) the study on the chosen backend,
measures overfitting over the trials actually run (PBO by CSCV, combinatorial purged CV, the
deflated Sharpe ratio of the best trial), optionally validates by walk-forward, records the
best parameters as a run like any backtest (through :func:`~tradeloop.engine.service.
run_backtest_job`, with the trial count in its validation) and writes ``trials.csv``,
``best.json`` and ``report.html`` to the output folder.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from tradeloop.core.errors import ConfigError
from tradeloop.engine.config import RunConfig
from tradeloop.engine.runner import CacheSpec, DataSpec
from tradeloop.optimize.objective import METRICS
from tradeloop.optimize.space import SearchSpace
from tradeloop.optimize.study import StudyOptions, StudyProgress, StudyResult, TrialRow

__all__ = ["OptimizeJob", "OptimizeOutcome", "run_optimize_job", "write_trials_csv"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OptimizeJob:
    """Everything an optimisation needs.

    Attributes
    ----------
    strategy
        Strategy reference.
    data
        One data source (a file or a cached series).
    params
        ``--param`` texts (see :mod:`tradeloop.optimize.space`).
    options
        Method, trials, objectives, constraints, seed, storage.
    config
        Trading rules of every trial.
    backend, workers, address
        Where trials run (``serial``, ``pool``, ``ray``).
    fast
        ``auto`` or ``off`` (the vectorized kernel where it applies).
    walk_forward
        ``rolling``, ``anchored`` or None.
    wf_folds, wf_ratio
        Walk-forward folds and IS/OOS length ratio.
    out
        Folder for ``trials.csv``, ``best.json``, ``report.html`` (None: no files but the run
        record).
    record
        Record the best parameters as a run under ``output_root``.
    trial_files
        Also write every trial's ``trades.csv`` and equity (``equity.parquet``,
        ``equity.csv``) under ``out/trials/<trial>/`` (rerun through the event kernel after
        the study, which the fast path equals trade for trade); off by default.
    allow_data_issues
        Search on data that fails the data gate (as ``backtest --allow-data-issues``); by
        default such data is refused, naming its rows.
    output_root, strategies_dir, command
        As for a backtest job.
    """

    strategy: str
    data: DataSpec | CacheSpec
    params: tuple[str, ...]
    options: StudyOptions = field(default_factory=StudyOptions)
    config: RunConfig = field(default_factory=RunConfig)
    backend: str = "pool"
    workers: int | None = None
    address: str | None = None
    fast: str = "auto"
    walk_forward: str | None = None
    wf_folds: int = 4
    wf_ratio: float = 3.0
    out: Path | None = None
    record: bool = True
    report: bool = True
    trial_files: bool = False
    allow_data_issues: bool = False
    output_root: Path = Path("output")
    strategies_dir: Path | None = Path("strategies")
    command: str = ""


@dataclass(slots=True)
class OptimizeOutcome:
    """What an optimisation produced."""

    study: StudyResult
    summary: dict[str, Any]
    paths: dict[str, Path]
    run_id: str | None
    walk_forward: Any = None
    seconds: float = 0.0


def write_trials_csv(rows: list[TrialRow], path: Path) -> Path:
    """Write the trial table: ``trial``, the parameters, ``feasible``, the metrics, ``error``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    records = [r.record() for r in rows]
    names = list(records[0]) if records else ["trial", "feasible", *METRICS, "error"]
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=names)
        writer.writeheader()
        for rec in records:
            writer.writerow({k: _csv_value(v) for k, v in rec.items()})
    tmp.replace(path)
    return path


def _csv_value(value: Any) -> Any:
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("" if math.isnan(value) else str(value))
    return value


def _identity(job: OptimizeJob, loaded: Any) -> dict[str, Any]:
    from tradeloop.engine.output import describe_data

    files = describe_data((job.data,), [loaded])
    return {
        "strategy": job.strategy,
        "data": [f.get("sha256") for f in files],
        "config": repr(job.config),
    }


def run_optimize_job(job: OptimizeJob, *, progress: StudyProgress | None = None) -> OptimizeOutcome:
    """Run ``job`` (see the module docstring) and return what it produced.

    Raises
    ------
    ConfigError
        For bad parameters, options or constraints (an unknown parameter names the closest).
    DataError
        For a malformed or missing data file.
    """
    from tradeloop.analysis.metrics import periods_per_year
    from tradeloop.engine.runner import _instrument, load_data
    from tradeloop.optimize.backends import make_backend
    from tradeloop.optimize.evaluate import EvalSpec, TrialEvaluator
    from tradeloop.optimize.overfitting import (
        combinatorial_purged_cv,
        probability_of_overfitting,
        trials_sharpe_std,
    )
    from tradeloop.optimize.study import run_study
    from tradeloop.strategy.registry import load_strategy_class

    if job.trial_files and job.out is None:
        raise ConfigError("--trial-files writes under --out: give --out DIR")
    started = time.perf_counter()
    strategy_cls = load_strategy_class(job.strategy, job.strategies_dir)
    space = SearchSpace.parse(list(job.params), strategy_cls.parameters())
    (loaded,) = load_data([job.data], gate=True, allow_data_issues=job.allow_data_issues)
    bars = loaded.bars
    instrument = _instrument(loaded, job.config)
    spec = EvalSpec(
        job.strategy,
        str(job.strategies_dir) if job.strategies_dir is not None else None,
        job.config,
        instrument,
        fast=job.fast,
    )
    evaluator = TrialEvaluator(spec, bars)
    if evaluator.blocker is not None:
        logger.info("fast path off: %s", evaluator.blocker)
    options = job.options
    if options.batch <= 1 and job.backend != "serial":
        options = replace(options, batch=max(2, (job.workers or 2) * 4))
    with tempfile.TemporaryDirectory(prefix="tradeloop-bars-") as tmp:
        backend = make_backend(
            job.backend, spec, bars, folder=Path(tmp), workers=job.workers, address=job.address
        )
        try:
            study = run_study(
                space,
                backend,
                options,
                identity=_identity(job, loaded),
                engine=evaluator.engine,
                progress=progress,
            )
        finally:
            backend.close()
    ppy = periods_per_year(evaluator.bar_ns)
    summary: dict[str, Any] = {
        "study": study.name,
        "storage": study.storage,
        "method": study.method,
        "engine": study.engine,
        "objectives": [f"{o.metric}:{'max' if o.maximize else 'min'}" for o in study.objectives],
        "constraints": options.constraints.describe(),
        "trials": len(study.rows),
        "complete": len(study.complete),
        "refused": len(study.rows) - len(study.complete),
        "feasible": sum(1 for r in study.complete if r.feasible),
        "evaluated_now": study.evaluated,
        "resumed_from": study.resumed,
        "peak_memory_mb_per_worker": [round(m, 1) for m in study.peak_memory_mb],
        "best": None,
    }
    blocks = study.blocks()
    if len(study.complete) >= 2:
        summary["pbo"] = probability_of_overfitting(blocks).to_dict()
    else:
        summary["pbo"] = None
    if len(study.complete) >= 1:
        summary["cpcv"] = combinatorial_purged_cv(blocks).to_dict(ppy)
    std = trials_sharpe_std(blocks) if len(study.complete) >= 2 else None
    paths: dict[str, Path] = {}
    run_id = None
    best_returns: np.ndarray | None = None
    if study.best is None:
        summary["message"] = (
            "no trial meets the constraints"
            if study.complete
            else "no parameter set could run (every one was refused)"
        )
    else:
        best = study.best
        summary["best"] = {
            "trial": best.trial,
            "params": best.params,
            "values": dict(zip([o.metric for o in study.objectives], best.values, strict=True)),
            "metrics": best.metrics,
        }
        summary["pareto"] = [r.params for r in study.pareto] if len(study.objectives) > 1 else None
        best_returns = _best_returns(evaluator, best.params)
        from tradeloop.analysis.validation import deflated_sharpe

        sig = deflated_sharpe(best_returns, max(1, len(study.complete)), std)
        summary["deflated_sharpe"] = {
            "dsr": sig.dsr,
            "psr": sig.psr,
            "n_trials": sig.n_trials,
            "sharpe_per_bar": sig.sharpe,
            "benchmark_per_bar": sig.deflated_benchmark,
            "trials_sharpe_std": std,
        }
        if job.record:
            run_id, run_paths = _record_best(job, best.params, len(study.complete), std)
            paths.update(run_paths)
            summary["run_id"] = run_id
    wf = None
    if job.walk_forward is not None:
        wf = _walk_forward(job, evaluator, space, options, _identity(job, loaded))
        summary["walk_forward"] = wf.to_dict(bars.ts)
    summary["seconds"] = round(time.perf_counter() - started, 3)
    if job.out is not None:
        job.out.mkdir(parents=True, exist_ok=True)
        paths["trials"] = write_trials_csv(study.rows, job.out / "trials.csv")
        paths["best"] = _write_json(summary, job.out / "best.json")
        if job.trial_files:
            paths["trial_files"] = _write_trial_files(evaluator, study.rows, job.out / "trials")
        if job.report:
            from tradeloop.optimize.report import write_optimize_report

            paths["report"] = write_optimize_report(
                study, summary, job.out / "report.html", walk_forward=wf, space=space
            )
    return OptimizeOutcome(study, summary, paths, run_id, wf, time.perf_counter() - started)


def _write_trial_files(evaluator: Any, rows: Any, folder: Path) -> Path:
    """Every trial that ran (not a refused parameter set): its trades and equity in
    ``folder/<trial>/``."""
    from tradeloop.engine.output import write_trades_and_equity

    for row in rows:
        if row.metrics is None:
            continue
        write_trades_and_equity(evaluator.backtest(row.params), folder / str(row.trial))
    return folder


def _best_returns(evaluator: Any, params: dict[str, Any]) -> np.ndarray:
    from tradeloop.analysis.run_analysis import bar_returns

    keep = evaluator.with_config(evaluator.spec.config)
    keep = type(evaluator)(replace(keep.spec, keep_equity=True), evaluator.bars)
    result = keep.evaluate(params)
    assert result.equity is not None
    return np.asarray(bar_returns(result.equity, evaluator.spec.config.balance))


def _record_best(
    job: OptimizeJob, params: dict[str, Any], n_trials: int, std: float | None
) -> tuple[str, dict[str, Path]]:
    """Record the best parameters as a backtest run (validation deflated by the trials)."""
    from tradeloop.analysis.validation import ValidationConfig
    from tradeloop.engine.service import BacktestJob, run_backtest_job

    outcome = run_backtest_job(
        BacktestJob(
            strategy=job.strategy,
            data=(job.data,),
            config=job.config,
            params=params,
            validation=ValidationConfig(n_trials=max(1, n_trials), trials_sharpe_std=std),
            report=job.report,
            output_root=job.output_root,
            strategies_dir=job.strategies_dir,
            command=job.command,
        )
    )
    return outcome.run_id, {"run": outcome.folder}


def _walk_forward(
    job: OptimizeJob,
    evaluator: Any,
    space: SearchSpace,
    options: StudyOptions,
    identity: dict[str, Any],
) -> Any:
    from tradeloop.optimize.walkforward import walk_forward

    if job.walk_forward is None:
        raise ConfigError("no walk-forward mode")
    return walk_forward(
        evaluator,
        space,
        options,
        folds=job.wf_folds,
        ratio=job.wf_ratio,
        mode=job.walk_forward,
        identity=identity,
    )


def _write_json(data: dict[str, Any], path: Path) -> Path:
    from tradeloop.engine.output import json_safe

    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(json_safe(data), indent=2, sort_keys=False), encoding="utf-8")
    tmp.replace(path)
    return path
