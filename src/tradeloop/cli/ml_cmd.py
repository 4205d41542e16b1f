"""``tradeloop train`` and ``tradeloop ml ...``: meta-model training and evaluation.

Commands
--------
``tradeloop train --strategy X --data FILE [--name NAME]``
    Run the primary strategy, label its entries with triple barriers, train the meta-model
    with purged walk-forward validation and save it as the next version of ``NAME`` (default:
    the strategy's name) in the model folder (``--registry``, default ``models``).
``tradeloop ml evaluate --strategy X --data FILE``
    Walk-forward report: the primary strategy alone against the same strategy with the
    model's enrichment on each out-of-sample window.
``tradeloop ml models``
    The saved models of the model folder, every name and version.

The ``--model NAME[:VERSION]`` options of ``tradeloop backtest`` and ``tradeloop paper`` are
defined here (:func:`model_options`), so both commands read a model the same way.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tradeloop.cli.console import Console, Table
from tradeloop.cli.failure import fail, require
from tradeloop.core.errors import ConfigError, TradeloopError

if TYPE_CHECKING:
    from tradeloop.engine.service import ModelOptions
    from tradeloop.ml.training import TrainConfig

__all__ = [
    "MinConfidenceOpt",
    "MlThreadsOpt",
    "ModelOpt",
    "RegistryOpt",
    "ToxicityOpt",
    "ml_app",
    "model_options",
    "register",
]

ml_app = typer.Typer(help="Meta-labeling models: evaluate, list.", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)

StrategyOpt = Annotated[str, typer.Option("--strategy", "-s", help="Primary strategy name.")]
DataOpt = Annotated[Path, typer.Option("--data", "-d", help="OHLCV file of one symbol.")]
ParamOpt = Annotated[
    list[str] | None, typer.Option("--param", "-p", help="Strategy parameter key=value.")
]
HorizonOpt = Annotated[int, typer.Option(help="Vertical barrier in bars.")]
BarrierOpt = Annotated[float, typer.Option(help="Barrier width in rolling-volatility units.")]
EstimatorsOpt = Annotated[int, typer.Option(help="LightGBM trees.")]
EstimatorOpt = Annotated[
    str, typer.Option(help="'lightgbm' or a scikit-learn classifier as pkg.mod:Class.")
]
FeeOpt = Annotated[float, typer.Option(help="Fee per side as a fraction (0.001 = 0.1%).")]
RegistryOpt = Annotated[
    Path, typer.Option("--registry", help="Model folder: one subfolder per model name.")
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        metavar="NAME[:VERSION]",
        help="Enrich every entry signal with this model from --registry: NAME or "
        "NAME:VERSION (default: the latest version). Entries below --min-confidence are "
        "dropped; the confidence scales the position after the risk caps.",
    ),
]
MinConfidenceOpt = Annotated[
    float | None,
    typer.Option(
        "--min-confidence",
        help="Drop entries whose confidence is below this (0-1; default: the threshold the "
        "model was trained with; 0 keeps every entry and only sizes it).",
    ),
]
ToxicityOpt = Annotated[
    bool,
    typer.Option(
        "--toxicity/--no-toxicity",
        help="Multiply the confidence by 1 - toxicity (the bar's VPIN proxy).",
    ),
]
MlThreadsOpt = Annotated[
    int,
    typer.Option(
        "--ml-threads",
        envvar="TRADELOOP_ML_THREADS",
        help="Threads for model inference (LightGBM, OpenMP, BLAS, numba pools).",
    ),
]


def model_options(
    model: str | None,
    registry: Path,
    min_confidence: float | None,
    toxicity: bool,
    threads: int,
) -> ModelOptions | None:
    """The ``--model`` options as :class:`ModelOptions` (None without ``--model``).

    Raises
    ------
    ConfigError
        For ``--min-confidence``/``--toxicity`` without ``--model``, or fewer than one thread.
    """
    if model is None:
        if min_confidence is not None or toxicity:
            raise ConfigError("--min-confidence and --toxicity need --model NAME[:VERSION]")
        return None
    from tradeloop.core.extras import require_extra

    require_extra("ml", "--model")
    from tradeloop.engine.service import ModelOptions

    return ModelOptions(
        model,
        registry,
        min_confidence=min_confidence,
        use_toxicity=toxicity,
        threads=threads,
    )


_fail = fail  # the CLI's one error report (tradeloop.cli.failure)


def _params(items: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--param expects key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def _train_config(
    horizon: int, pt: float, sl: float, estimator: str, n_estimators: int, **kw: object
) -> TrainConfig:
    from tradeloop.ml.training import TrainConfig

    params: dict[str, object] = {"n_estimators": n_estimators} if estimator == "lightgbm" else {}
    return TrainConfig(
        horizon=horizon,
        pt=pt,
        sl=sl,
        estimator=estimator,
        estimator_params=params,
        **kw,  # type: ignore[arg-type]
    )


def _fmt(x: float, pct: bool = False) -> str:
    if not math.isfinite(x):
        return "-"
    return f"{x:+.2%}" if pct else f"{x:.3f}"


def train(
    strategy: StrategyOpt,
    data: DataOpt,
    param: ParamOpt = None,
    registry: RegistryOpt = Path("models"),
    name: Annotated[
        str | None,
        typer.Option(help="Model name in the registry (default: the strategy's name)."),
    ] = None,
    horizon: HorizonOpt = 24,
    pt: BarrierOpt = 2.0,
    sl: BarrierOpt = 2.0,
    estimator: EstimatorOpt = "lightgbm",
    n_estimators: EstimatorsOpt = 200,
    calibration: Annotated[str, typer.Option(help="isotonic, platt or none.")] = "isotonic",
    cv: Annotated[str, typer.Option(help="walk_forward or kfold (purged).")] = "walk_forward",
    folds: Annotated[int, typer.Option(help="Validation folds.")] = 5,
    fee: FeeOpt = 0.0,
) -> None:
    """Train a meta-model on a primary strategy's signals and save it to the registry."""
    require("ml", "tradeloop train")
    from tradeloop.data.loader import load_ohlcv
    from tradeloop.engine.config import RunConfig
    from tradeloop.engine.ml_strategy import primary_events
    from tradeloop.engine.runner import run_on_bars
    from tradeloop.ml.registry import ModelCatalog
    from tradeloop.ml.training import train_meta_model
    from tradeloop.strategy.registry import load_strategy_class

    try:
        cls = load_strategy_class(strategy, "strategies")
        params = _params(param)
        model_name = name or cls(**params).strategy_name()
        target = ModelCatalog(registry).registry(model_name)  # checks the name up front
        bars = load_ohlcv(data).bars
        run = run_on_bars(cls(**params), {bars.symbol: bars}, RunConfig(fee=fee))
        events, sides = primary_events(run, bars)
        cfg = _train_config(
            horizon, pt, sl, estimator, n_estimators,
            calibration=calibration, cv=cv, n_splits=folds,
        )  # fmt: skip
        with console.status("training meta-model"):
            result = train_meta_model(bars, events, sides, cfg)
        version = target.save(
            result.model,
            params={"strategy": strategy, "strategy_params": params, "train": repr(cfg)},
            metrics={"overall": result.overall, "folds": [repr(f) for f in result.folds]},
            bars=bars,
            extra={"importance": result.importance, "name": model_name},
        )
    except TradeloopError as exc:
        raise _fail(exc) from None
    table = Table(title=f"meta-model for {strategy} on {bars.symbol}: {result.n_events} events")
    for col in ("fold", "train", "test", "accuracy", "AUC", "log loss", "precision", "base rate"):
        table.add_column(col, justify="right")
    for f in result.folds:
        table.add_row(
            str(f.fold), str(f.n_train), str(f.n_test), _fmt(f.accuracy), _fmt(f.auc),
            _fmt(f.log_loss), _fmt(f.precision), _fmt(f.base_rate),
        )  # fmt: skip
    o = result.overall
    table.add_row(
        "all (calibrated)", "", str(result.n_events), _fmt(o["accuracy"]), _fmt(o["auc"]),
        _fmt(o["log_loss"]), _fmt(o["precision"]), _fmt(o["base_rate"]),
    )  # fmt: skip
    console.print(table)
    top = ", ".join(f"{k} {v:.2f}" for k, v in list(result.importance.items())[:5])
    console.print(f"top features: {top}")
    console.print(
        f"saved {model_name}:{version} to {registry} in {result.seconds:.1f}s "
        f"(use it with --model {model_name}:{version})"
    )


@ml_app.command("evaluate")
def evaluate(
    strategy: StrategyOpt,
    data: DataOpt,
    param: ParamOpt = None,
    windows: Annotated[int, typer.Option(help="Out-of-sample windows.")] = 4,
    threshold: Annotated[
        float, typer.Option(help="Entries whose confidence is below it are dropped.")
    ] = 0.5,
    horizon: HorizonOpt = 24,
    pt: BarrierOpt = 2.0,
    sl: BarrierOpt = 2.0,
    estimator: EstimatorOpt = "lightgbm",
    n_estimators: EstimatorsOpt = 100,
    fee: FeeOpt = 0.0,
) -> None:
    """Walk-forward report: the primary strategy alone against it with the model's enrichment."""
    require("ml", "tradeloop ml evaluate")
    from tradeloop.core.time import to_iso
    from tradeloop.data.loader import load_ohlcv
    from tradeloop.engine.config import RunConfig
    from tradeloop.engine.ml_strategy import walk_forward_evaluate
    from tradeloop.strategy.registry import load_strategy_class

    try:
        cls = load_strategy_class(strategy, "strategies")
        params = _params(param)
        cls(**params)  # validate parameters early
        bars = load_ohlcv(data).bars
        cfg = _train_config(horizon, pt, sl, estimator, n_estimators)
        with console.status("walk-forward evaluation"):
            folds = walk_forward_evaluate(
                lambda: cls(**params),
                bars,
                RunConfig(fee=fee),
                cfg,
                n_windows=windows,
                threshold=threshold,
            )
    except TradeloopError as exc:
        raise _fail(exc) from None
    table = Table(title=f"walk-forward: {strategy} vs with the model on {bars.symbol}")
    for col in (
        "window", "from", "to", "train events", "CV AUC",
        "primary return", "trades", "win rate", "with model", "trades", "win rate", "dropped",
    ):  # fmt: skip
        table.add_column(col, justify="right")
    prim = filt = 1.0
    for f in folds:
        prim *= 1 + f.primary_return
        filt *= 1 + f.filtered_return
        table.add_row(
            str(f.fold), to_iso(f.start)[:10], to_iso(f.end)[:10], str(f.train_events),
            _fmt(f.cv_auc), _fmt(f.primary_return, True), str(f.primary_trades),
            _fmt(f.primary_win_rate), _fmt(f.filtered_return, True), str(f.filtered_trades),
            _fmt(f.filtered_win_rate), str(f.dropped),
        )  # fmt: skip
    table.add_row(
        "all", "", "", "", "", _fmt(prim - 1, True),
        str(sum(f.primary_trades for f in folds)), "", _fmt(filt - 1, True),
        str(sum(f.filtered_trades for f in folds)), "", str(sum(f.dropped for f in folds)),
    )  # fmt: skip
    console.print(table)
    better = "better" if filt > prim else "worse"
    console.print(
        f"with the model: compounded return {filt - 1:+.2%} vs primary {prim - 1:+.2%} ({better})"
    )


@ml_app.command("models")
def models(
    registry: RegistryOpt = Path("models"),
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the saved models (every name and version) with their data range and metrics."""
    from tradeloop.core.time import to_iso
    from tradeloop.ml.registry import ModelCatalog

    catalog = ModelCatalog(registry)
    names = catalog.names()
    if as_json:
        import json

        rows = []
        for name in names:
            reg = catalog.registry(name)
            for version in reg.versions():
                meta = reg.metadata(version)
                rows.append(
                    {
                        "model": name,
                        "version": version,
                        "feature_set": meta.get("feature_set"),
                        "data": meta.get("data", {}),
                        "metrics": meta.get("metrics", {}).get("overall", {}),
                    }
                )
        print(json.dumps(rows, indent=2, default=str))
        return
    table = Table(title=f"models in {registry}")
    for col in ("model", "version", "feature set", "symbol", "tf", "from", "to", "accuracy", "AUC"):
        table.add_column(col, justify="right")
    for name in names:
        reg = catalog.registry(name)
        for version in reg.versions():
            meta = reg.metadata(version)
            data = meta.get("data", {})
            overall = meta.get("metrics", {}).get("overall", {})
            fs = meta["feature_set"]
            table.add_row(
                name,
                version,
                f"{fs['name']}@{fs['version']}",
                str(data.get("symbol", "")),
                str(data.get("timeframe", "")),
                to_iso(data["start_ns"])[:10] if "start_ns" in data else "",
                to_iso(data["end_ns"])[:10] if "end_ns" in data else "",
                _fmt(float(overall.get("accuracy", math.nan))),
                _fmt(float(overall.get("auc", math.nan))),
            )
    console.print(table)
    if not names:
        console.print(f"no model in {registry}; train one with `tradeloop train --name NAME`")


def register(app: typer.Typer) -> None:
    """Add ``train`` and the ``ml`` command group to ``app``."""
    app.command("train")(train)
    app.add_typer(ml_app, name="ml")
