"""``tradeloop regime ...``: fit, detect and report market regimes.

Commands
--------
``tradeloop regime fit --data F --method hmm|gbm|lstm|consensus --states N --name NAME``
    Fit a regime detector on the bars of ``F`` and save it as the next version of ``NAME`` in
    the model folder (``--registry``, default ``models``).
``tradeloop regime detect --data F --model NAME[:VERSION] --out regimes.csv``
    The regime of every bar of ``F``, filtered causally (each bar from it and the bars before
    it only): ``timestamp, regime, confidence`` (warm-up bars with an empty regime).
``tradeloop regime report --data F --model NAME`` (or ``--regimes regimes.csv``)
    Counts, durations and returns by regime.
``tradeloop regime list``
    The regime models of the model folder.

A run uses a regime model with ``--regime NAME[:VERSION]`` (``tradeloop backtest``, ``tradeloop
paper``) or ``[regime]`` in ``loop.toml`` (``tradeloop run``); the options are defined here
(:func:`regime_options`) so every command reads them the same way.
"""

from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tradeloop.cli.console import Console, Table
from tradeloop.cli.failure import fail, require
from tradeloop.core.errors import ConfigError, DataError, TradeloopError

if TYPE_CHECKING:
    from tradeloop.core.bar import BarArrays
    from tradeloop.engine.regime import RegimeOptions

__all__ = [
    "RegimeConfirmOpt",
    "RegimeExposureOpt",
    "RegimeOpt",
    "RegimeTransitionOpt",
    "regime_app",
    "regime_options",
    "register_regime_commands",
]

regime_app = typer.Typer(
    help="Market regimes: fit a detector, detect regimes causally, report them.",
    no_args_is_help=True,
)
console = Console()
err_console = Console(stderr=True)

RegimeOpt = Annotated[
    str | None,
    typer.Option(
        "--regime",
        metavar="NAME[:VERSION]",
        help="Regime model from --registry (see `tradeloop regime fit`): at every bar its "
        "regime sets the risk engine's leverage cap and scales entry sizes by the regime's "
        "exposure (ramped over --regime-transition), and its confidence is the ML regime "
        "weight.",
    ),
]
RegimeTransitionOpt = Annotated[
    str,
    typer.Option(
        "--regime-transition",
        help="How long a full exposure change between regimes takes (e.g. 30m, 2h, 0).",
    ),
]
RegimeConfirmOpt = Annotated[
    int,
    typer.Option(
        "--regime-confirm",
        help="Bars in a row a new regime must be detected before it is adopted (hysteresis).",
    ),
]
RegimeExposureOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--regime-exposure",
        help="Exposure of a regime, REGIME=0..1 (repeatable; defaults: high_vol=0.5, "
        "crisis=0, uncertain=0.5, others 1).",
    ),
]
DataOpt = Annotated[Path, typer.Option("--data", "-d", help="OHLCV file of one symbol.")]
RegistryOpt = Annotated[
    Path, typer.Option("--registry", help="Model folder: one subfolder per model name.")
]


def regime_options(
    regime: str | None,
    registry: Path,
    transition: str = "30m",
    confirm: int = 3,
    exposures: list[str] | None = None,
) -> RegimeOptions | None:
    """The ``--regime`` options as :class:`~tradeloop.engine.regime.RegimeOptions` (None
    without ``--regime``).

    Raises
    ------
    ConfigError
        For ``--regime-exposure`` without ``--regime``, a malformed ``REGIME=VALUE`` or bad
        transition settings.
    """
    if regime is None:
        if exposures:
            raise ConfigError("--regime-exposure needs --regime NAME[:VERSION]")
        return None
    from tradeloop.core.extras import require_extra

    require_extra("ml", "--regime")
    from tradeloop.engine.regime import RegimeOptions

    table: dict[str, float] = {}
    for item in exposures or []:
        key, sep, value = item.partition("=")
        try:
            table[key.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not key.strip():
            raise ConfigError(f"--regime-exposure expects REGIME=0..1, got {item!r}")
    return RegimeOptions(
        regime, registry, transition=transition, confirm_bars=confirm, exposures=table
    )


_fail = fail  # the CLI's one error report (tradeloop.cli.failure)


def _load(path: Path) -> BarArrays:
    from tradeloop.data.loader import load_ohlcv

    if not path.is_file():
        raise DataError("no such file", file=str(path))
    return load_ohlcv(path).bars


def _fmt(value: Any, digits: int = 4) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            return "-"
        return f"{value:.{digits}g}"
    return str(value)


@regime_app.command("fit")
def fit(
    data: DataOpt,
    name: Annotated[str, typer.Option(help="Save the model under this name.")],
    method: Annotated[
        str,
        typer.Option(
            help="hmm, gbm (LightGBM), lstm (needs the regimes-lstm extra) or "
            "consensus (HMM + LightGBM + LSTM when installed)."
        ),
    ] = "hmm",
    states: Annotated[int, typer.Option(help="Regime states, 2 to 5 (named by volatility).")] = 3,
    registry: RegistryOpt = Path("models"),
    features: Annotated[
        str | None,
        typer.Option(
            help="HMM/GBM/LSTM feature columns, comma-separated (default: ret,vol,volume for "
            "the HMM; multi-horizon trend/volatility for the classifiers). Use e.g. ret,vol "
            "for data without volume."
        ),
    ] = None,
    window: Annotated[int, typer.Option(help="Window of the vol and volume features.")] = 20,
    threshold: Annotated[
        float, typer.Option(help="Consensus: agreement needed to name a regime.")
    ] = 0.75,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Fit a regime detector on --data and save it in the model folder as NAME.

    Example: tradeloop regime fit -d BTC_USDT-1h.csv --method hmm --states 3 --name btc_hmm
    """
    require("ml", "tradeloop regime fit")
    try:
        from tradeloop.ml.regimes import build_detector, save_regime_model

        bars = _load(data)
        options: dict[str, Any] = {"seed": seed}
        if method == "consensus":
            options["threshold"] = threshold
        else:
            options["window"] = window
            if features:
                options["features"] = tuple(f.strip() for f in features.split(",") if f.strip())
        detector = build_detector(method, states, **options)
        started = time.perf_counter()
        with console.status(f"fitting {method} on {len(bars):,} bars of {bars.symbol}..."):
            detector.fit(bars)
        seconds = time.perf_counter() - started
        ref = save_regime_model(registry, name, detector, bars=bars, extra={"fit_seconds": seconds})
        path = detector.detect(bars)
    except TradeloopError as exc:
        raise _fail(exc) from None
    console.print(
        f"saved [bold]{ref.spec}[/] ({method}, {states} states) in {ref.path} "
        f"after {seconds:.1f}s on {len(bars):,} bars"
    )
    _print_summary(path.labels(), bars, f"{ref.spec} on {bars.symbol} (causal, in-sample)")


@regime_app.command("detect")
def detect(
    data: DataOpt,
    model: Annotated[str, typer.Option("--model", metavar="NAME[:VERSION]", help="Regime model.")],
    out: Annotated[Path, typer.Option(help="CSV to write: timestamp, regime, confidence.")] = Path(
        "regimes.csv"
    ),
    registry: RegistryOpt = Path("models"),
) -> None:
    """Write the regime of every bar of --data, filtered causally, to --out.

    Each bar's regime is computed from it and the bars before it only, as a live run would
    have seen it; bars in the model's warm-up have an empty regime.
    """
    require("ml", "tradeloop regime detect")
    try:
        from tradeloop.ml.regimes import load_regime_model

        detector, ref, _ = load_regime_model(model, registry)
        bars = _load(data)
        with console.status(f"filtering {len(bars):,} bars with {ref.spec}..."):
            path = detector.detect(bars)
        rows = path.rows()
        tmp = out.with_suffix(out.suffix + ".tmp")
        with tmp.open("w", newline="") as fh:
            fields = ["timestamp", "regime", "confidence"]
            if path.uncertain is not None:  # the consensus: agreement below its threshold
                fields.append("uncertain")
            writer = csv.DictWriter(fh, fields)
            writer.writeheader()
            writer.writerows(rows)
        tmp.replace(out)
    except TradeloopError as exc:
        raise _fail(exc) from None
    labelled = sum(1 for r in rows if r["regime"])
    console.print(f"wrote {len(rows):,} rows ({labelled:,} with a regime) to {out}")


@regime_app.command("report")
def report(
    data: DataOpt,
    model: Annotated[
        str | None,
        typer.Option("--model", metavar="NAME[:VERSION]", help="Detect with this model."),
    ] = None,
    regimes: Annotated[
        Path | None,
        typer.Option(help="Or read a regimes.csv written by `tradeloop regime detect`."),
    ] = None,
    registry: RegistryOpt = Path("models"),
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the table as JSON.")
    ] = None,
) -> None:
    """Counts, durations and returns by regime (next-bar returns: free of lookahead)."""
    try:
        bars = _load(data)
        if (model is None) == (regimes is None):
            raise ConfigError("give exactly one of --model NAME or --regimes regimes.csv")
        if model is not None:
            from tradeloop.ml.regimes import load_regime_model

            detector, ref, _ = load_regime_model(model, registry)
            with console.status(f"filtering {len(bars):,} bars with {ref.spec}..."):
                labels = detector.detect(bars).labels()
            title = f"{ref.spec} on {bars.symbol}"
        else:
            assert regimes is not None
            labels = _read_regimes(regimes, bars)
            title = f"{regimes} on {bars.symbol}"
        rows = _print_summary(labels, bars, title)
        if json_out is not None:
            json_out.write_text(json.dumps(rows, indent=2, default=str))
    except TradeloopError as exc:
        raise _fail(exc) from None


def _read_regimes(path: Path, bars: BarArrays) -> list[str]:
    """The regime column of a regimes.csv aligned with ``bars`` (by timestamp)."""
    from tradeloop.core.time import parse_time

    if not path.is_file():
        raise DataError("no such file", file=str(path))
    by_ts: dict[int, str] = {}
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or not {"timestamp", "regime"} <= set(reader.fieldnames):
            raise DataError("needs the columns timestamp and regime", file=str(path))
        for row_no, row in enumerate(reader):
            try:
                by_ts[parse_time(row["timestamp"], field="timestamp")] = row["regime"] or ""
            except ConfigError as exc:
                raise DataError(str(exc), file=str(path), row=row_no, field="timestamp") from None
    labels = [by_ts.get(int(t), "") for t in bars.ts.tolist()]
    if not any(labels):
        raise DataError(f"no timestamp matches a bar of {bars.symbol}", file=str(path))
    return labels


def _print_summary(labels: list[str], bars: BarArrays, title: str) -> list[dict[str, Any]]:
    from tradeloop.analysis.regimes import regime_summary
    from tradeloop.core.timeframes import timeframe_ns

    rows = regime_summary(labels, bars.close, timeframe_ns(bars.timeframe), bars.ts)
    table = Table(title=title)
    for col in (
        "regime", "bars", "share", "episodes", "mean bars", "max bars", "mean days",
        "ann. ret", "ann. vol",
    ):  # fmt: skip
        table.add_column(col, justify="left" if col == "regime" else "right")
    for r in rows:
        table.add_row(
            r["regime"], f"{r['bars']:,}", f"{r['share']:.1%}", f"{r['episodes']:,}",
            f"{r['mean_bars']:.1f}", f"{r['max_bars']:,}", f"{r['mean_days']:.1f}",
            f"{r['ann_return']:.1%}", f"{r['ann_vol']:.1%}",
        )  # fmt: skip
    console.print(table)
    return rows


@regime_app.command("list")
def list_models(
    registry: RegistryOpt = Path("models"),
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """The regime models in the model folder, with their versions and methods."""
    from tradeloop.ml.regimes.store import regime_model_names
    from tradeloop.ml.registry import ModelCatalog

    names = regime_model_names(registry)
    catalog = ModelCatalog(registry)
    rows = []
    for name in names:
        reg = catalog.registry(name)
        for version in reg.versions():
            meta = reg.metadata(version)
            data = meta.get("data", {})
            rows.append(
                {
                    "name": name,
                    "version": version,
                    "method": meta.get("method", ""),
                    "states": list(meta.get("states", [])),
                    "symbol": data.get("symbol", ""),
                    "timeframe": data.get("timeframe", ""),
                    "bars": data.get("bars"),
                }
            )
    if as_json:
        print(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        console.print(f"no regime model in {registry}; fit one with `tradeloop regime fit`")
        return
    table = Table(title=f"regime models in {registry}")
    for col in ("name", "version", "method", "states", "trained on", "bars"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["name"], r["version"], str(r["method"]), ",".join(r["states"]),
            f"{r['symbol']} {r['timeframe']}", str(r["bars"] if r["bars"] is not None else ""),
        )  # fmt: skip
    console.print(table)


def register_regime_commands(app: typer.Typer) -> None:
    """Add the ``regime`` command group to ``app``."""
    app.add_typer(regime_app, name="regime")
