"""``tradeloop optimize``: parameter search with overfitting statistics and walk-forward.

The command is thin: options -> :class:`~tradeloop.optimize.service.OptimizeJob` -> the
service -> a rich table. Progress (trials done, ETA, best so far) goes to stderr.
"""

from __future__ import annotations

import math
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from tradeloop.cli.console import Console, Table
from tradeloop.cli.failure import fail, require
from tradeloop.core.errors import ConfigError, TradeloopError

__all__ = ["register_optimize_commands"]

console = Console()
err_console = Console(stderr=True)
#: environment variable naming the study storage (a SQLite path or a postgresql:// URL)
STORAGE_ENV = "TRADELOOP_OPTIMIZE_STORAGE"


_fail = fail  # the CLI's one error report (tradeloop.cli.failure)


class _StudyProgress:
    """A rich bar: trials done of total, ETA, best objective so far."""

    def __init__(self, label: str) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.label = label
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("best {task.fields[best]}"),
            console=err_console,
            transient=True,
            disable=not err_console.is_terminal,
        )
        self.task = self.progress.add_task(label, total=None, best="-")
        self.progress.start()

    def __call__(self, done: int, total: int, best: float | None) -> None:
        self.progress.update(
            self.task,
            completed=done,
            total=total,
            best="-" if best is None else f"{best:.4g}",
        )

    def close(self) -> None:
        self.progress.stop()


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.4g}"
    return str(value)


def _print_result(outcome: Any, top: int) -> None:
    study, summary = outcome.study, outcome.summary
    objective = study.objectives[0]
    complete = [r for r in study.complete]
    shown = sorted(
        complete,
        key=lambda r: (not r.feasible, -r.values[0] if objective.maximize else r.values[0]),
    )[:top]
    names = list(shown[0].params) if shown else []
    table = Table(
        title=f"Top {len(shown)} of {len(study.rows)} trials "
        f"({study.method}, {study.engine} kernel)"
    )
    table.add_column("trial", justify="right")
    for n in names:
        table.add_column(n, justify="right")
    cols = [o.metric for o in study.objectives]
    for extra in ("sharpe", "total_return", "max_drawdown", "trade_count"):
        if extra not in cols:
            cols.append(extra)
    for c in cols:
        table.add_column(c, justify="right")
    table.add_column("ok")
    for r in shown:
        assert r.metrics is not None
        table.add_row(
            str(r.trial),
            *[_fmt(r.params[n]) for n in names],
            *[_fmt(r.metrics[c]) for c in cols],
            "yes" if r.feasible else "no",
        )
    console.print(table)
    best = summary.get("best")
    if best is None:
        console.print(f"[bold yellow]No best trial:[/] {summary.get('message', '')}")
    else:
        console.print(f"[bold]Best[/] (trial {best['trial']}): {best['params']}")
        dsr = summary.get("deflated_sharpe") or {}
        pbo = summary.get("pbo") or {}
        cpcv = summary.get("cpcv") or {}
        console.print(
            f"Deflated Sharpe {_fmt(dsr.get('dsr', math.nan))} over {dsr.get('n_trials', 0)} "
            f"trials; PBO {_fmt(pbo.get('pbo', math.nan))} ({pbo.get('splits', 0)} CSCV splits); "
            f"CPCV OOS Sharpe {_fmt(cpcv.get('oos_sharpe_mean', math.nan))} "
            f"± {_fmt(cpcv.get('oos_sharpe_std', math.nan))}"
        )
    wf = summary.get("walk_forward")
    if wf:
        wft = Table(title=f"Walk-forward ({wf['mode']})")
        for c in (
            "fold",
            "oos start",
            "params",
            "IS " + objective.metric,
            "OOS return",
            "OOS sharpe",
        ):
            wft.add_column(c)
        for f in wf["folds"]:
            wft.add_row(
                str(f["fold"]),
                str(f["oos_start"]),
                str(f["params"]),
                _fmt(f["is"].get(objective.metric, math.nan)),
                _fmt(f["oos"]["total_return"]),
                _fmt(f["oos"]["sharpe"]),
            )
        console.print(wft)
        console.print(
            f"Stitched OOS: return {_fmt(wf['oos']['total_return'])}, "
            f"Sharpe {_fmt(wf['oos']['sharpe'])}, max drawdown {_fmt(wf['oos']['max_drawdown'])}"
        )
    console.print(
        f"{summary['evaluated_now']} trial(s) run now, {summary['resumed_from']} resumed; "
        f"study {summary['study']} in {summary['storage'] or 'memory'}"
    )
    for name, path in outcome.paths.items():
        console.print(f"  {name}: {path}")


def register_optimize_commands(app: typer.Typer) -> None:
    """Add ``tradeloop optimize`` to ``app``."""

    @app.command()
    def optimize(
        strategy: Annotated[
            str,
            typer.Option(
                "--strategy", "-s", help="Strategy name, pkg.module:Class or file.py:Class."
            ),
        ],
        data: Annotated[Path, typer.Option("--data", "-d", help="OHLCV file (one symbol).")],
        param: Annotated[
            list[str],
            typer.Option(
                "--param",
                "-p",
                help="Searched parameter (repeatable): NAME=LOW:HIGH:STEP (inclusive), "
                "NAME=LOW:HIGH (continuous, random/tpe), NAME=LOW:HIGH:log or :log5 (log scale; "
                "N grid points), NAME=a,b,c (choices), NAME=VALUE (fixed).",
            ),
        ],
        method: Annotated[
            str, typer.Option(help="grid (every combination), random or tpe (optuna).")
        ] = "grid",
        trials: Annotated[
            int | None, typer.Option(help="Trials for random/tpe (default 100); a grid runs all.")
        ] = None,
        objective: Annotated[
            list[str] | None,
            typer.Option(
                "--objective",
                "-o",
                help="Run metric to optimise (repeat for several: a Pareto front): sharpe, "
                "total_return, calmar, sortino, profit_factor, ...; -NAME or NAME:min minimises.",
            ),
        ] = None,
        min_trades: Annotated[
            int, typer.Option(help="A chosen trial has at least this many closed trades.")
        ] = 0,
        max_drawdown: Annotated[
            float | None,
            typer.Option(help="A chosen trial lost at most this fraction from a peak (0.2 = 20%)."),
        ] = None,
        seed: Annotated[int, typer.Option(help="Sampler seed.")] = 42,
        backend: Annotated[
            str, typer.Option(help="serial, pool (local processes) or ray (a Ray cluster).")
        ] = "pool",
        workers: Annotated[
            int | None, typer.Option(help="Worker processes (default: CPU count).")
        ] = None,
        address: Annotated[
            str | None,
            typer.Option(help="Ray cluster to join (auto or HOST:PORT); default: a local one."),
        ] = None,
        storage: Annotated[
            str | None,
            typer.Option(
                help="Study storage: a SQLite file or a postgresql:// URL (default: "
                f"${STORAGE_ENV}, else study.db in --out, else output/optimize/studies.db). "
                "Rerunning the same command resumes the study."
            ),
        ] = None,
        study: Annotated[
            str | None, typer.Option(help="Study name (default: derived from the study).")
        ] = None,
        fresh: Annotated[
            bool, typer.Option(help="Delete the stored study and start again.")
        ] = False,
        fast: Annotated[
            str,
            typer.Option(
                help="auto: vectorized kernel where it applies (SMA cross); off: event kernel."
            ),
        ] = "auto",
        walk_forward: Annotated[
            str | None,
            typer.Option(help="Also validate by walk-forward: rolling or anchored windows."),
        ] = None,
        wf_folds: Annotated[int, typer.Option(help="Walk-forward out-of-sample segments.")] = 4,
        wf_ratio: Annotated[
            float, typer.Option(help="In-sample length / out-of-sample length.")
        ] = 3.0,
        timeframe: Annotated[
            str | None, typer.Option("--timeframe", "-t", help="Trading timeframe.")
        ] = None,
        start: Annotated[str | None, typer.Option(help="First bar (UTC date or ISO time).")] = None,
        end: Annotated[str | None, typer.Option(help="End, exclusive.")] = None,
        balance: Annotated[float, typer.Option(help="Starting cash.")] = 10_000.0,
        fee: Annotated[float, typer.Option(help="Commission per fill as a fraction.")] = 0.0,
        slippage_bps: Annotated[
            float, typer.Option(help="Adverse slippage in basis points.")
        ] = 0.0,
        symbol: Annotated[
            str | None, typer.Option(help="Symbol of the data (default: from the file name).")
        ] = None,
        out: Annotated[
            Path | None,
            typer.Option(help="Folder for trials.csv, best.json, report.html (and study.db)."),
        ] = None,
        record: Annotated[
            bool, typer.Option(help="Record the best parameters as a run (output/runs).")
        ] = True,
        report: Annotated[bool, typer.Option(help="Write report.html.")] = True,
        trial_files: Annotated[
            bool,
            typer.Option(
                "--trial-files",
                help="Also write every trial's trades.csv and equity under OUT/trials/<trial>/ "
                "(each trial rerun through the event kernel after the study; off by default).",
            ),
        ] = False,
        allow_data_issues: Annotated[
            bool,
            typer.Option(
                "--allow-data-issues",
                help="Search on data that fails the data check (as backtest).",
            ),
        ] = False,
        top: Annotated[int, typer.Option(help="Rows of the result table.")] = 10,
        output_root: Annotated[Path, typer.Option(help="Where run folders go.")] = Path("output"),
        strategies_dir: Annotated[Path, typer.Option(help="Folder of user strategies.")] = Path(
            "strategies"
        ),
    ) -> None:
        """Search a strategy's parameters and say how much of the best result is luck.

        Every trial is a backtest with the same rules. Each result comes with the deflated
        Sharpe ratio over the trials actually run, the probability of backtest overfitting
        (CSCV) and combinatorial purged CV; --walk-forward re-optimises on rolling or anchored
        in-sample windows and trades each next window unseen.

        Example: tradeloop optimize -s sma_cross -d btc.feather -p fast=5:50:5 -p slow=60:240:20
        --fee 0.001 --min-trades 20 --out opt/
        """
        require("ml", "tradeloop optimize")
        from tradeloop.cli.leftovers import NewPaths
        from tradeloop.core.time import parse_time
        from tradeloop.engine.config import RunConfig
        from tradeloop.engine.runner import DataSpec
        from tradeloop.optimize.objective import Constraints, parse_objectives
        from tradeloop.optimize.service import OptimizeJob, run_optimize_job
        from tradeloop.optimize.study import StudyOptions, storage_url

        progress: _StudyProgress | None = None
        made: NewPaths | None = None
        try:
            where = storage or os.environ.get(STORAGE_ENV)
            study_folder = None  # made once every option is checked
            if where is None:
                study_folder = out if out is not None else output_root / "optimize"
                where = str(study_folder / ("study.db" if out is not None else "studies.db"))
            options = StudyOptions(
                method=method,
                trials=trials,
                objectives=parse_objectives(objective or []),
                constraints=Constraints(min_trades=min_trades, max_drawdown=max_drawdown),
                seed=seed,
                storage=storage_url(where),
                name=study,
                fresh=fresh,
                batch=1 if backend == "serial" else 0,
            )
            if fast not in ("auto", "off"):
                raise ConfigError(f"--fast must be auto or off, got {fast!r}")
            if top < 1:
                raise ConfigError(f"--top must be 1 or more, got {top}")
            if workers is not None and workers < 1:
                raise ConfigError(f"--workers must be 1 or more, got {workers}")
            config = RunConfig(
                balance=balance,
                fee=fee,
                slippage_bps=slippage_bps,
                timeframe=timeframe,
                start=parse_time(start) if start else None,
                end=parse_time(end) if end else None,
            )
            job = OptimizeJob(
                strategy=strategy,
                data=DataSpec(data, symbol=symbol),
                params=tuple(param),
                options=options,
                config=config,
                backend=backend,
                workers=workers,
                address=address,
                fast=fast,
                walk_forward=walk_forward,
                wf_folds=wf_folds,
                wf_ratio=wf_ratio,
                out=out,
                record=record,
                report=report,
                trial_files=trial_files,
                allow_data_issues=allow_data_issues,
                output_root=output_root,
                strategies_dir=strategies_dir,
                command=shlex.join(["tradeloop", *sys.argv[1:]]),
            )
            if study_folder is not None:
                made = NewPaths(study_folder / "study.db", study_folder / "studies.db")
                study_folder.mkdir(parents=True, exist_ok=True)
            progress = _StudyProgress(f"optimize {strategy}")
            started = time.perf_counter()
            outcome = run_optimize_job(job, progress=progress)
            progress.close()
            progress = None
            _print_result(outcome, top)
            console.print(f"done in {time.perf_counter() - started:.1f}s")
        except TradeloopError as exc:
            if made is not None:  # a refused run leaves no empty study behind
                made.remove()
            raise _fail(exc) from None
        finally:
            if progress is not None:
                progress.close()
