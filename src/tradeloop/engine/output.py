"""Run records: write a run's files, name runs, and regenerate a run's report later.

A run folder holds ``trades.csv``, ``equity.parquet`` (and ``equity.csv`` on request),
``summary.json``, ``metrics.json`` (metrics, breakdowns, validation, bias findings),
``run.json`` (what is needed to reproduce the run: strategy, parameters, configuration, data
files with sha256, engine version, git revision, seed, start/end) and ``report.html``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import re
import subprocess
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow._compute as pc  # the kernels without ``pyarrow.compute``'s wrappers
import pyarrow.csv as pacsv

import tradeloop
from tradeloop.analysis.bias import BiasConfig
from tradeloop.analysis.metrics import given_annualization
from tradeloop.analysis.regimes import RegimeSeries
from tradeloop.analysis.report import write_report
from tradeloop.analysis.run_analysis import RunAnalysis, analyze_run
from tradeloop.analysis.runs import read_equity, read_json, read_trades
from tradeloop.analysis.trades import trade_columns
from tradeloop.analysis.validation import ValidationConfig
from tradeloop.core.bar import BarArrays
from tradeloop.core.errors import DataError
from tradeloop.core.time import to_iso
from tradeloop.core.timeframes import timeframe_ns
from tradeloop.engine.result import BacktestResult

__all__ = [
    "describe_data",
    "file_sha256",
    "git_revision",
    "json_safe",
    "new_run_id",
    "regenerate_report",
    "run_bar_ns",
    "run_info",
    "write_outputs",
]

logger = logging.getLogger(__name__)


def _arrow(
    values: Sequence[Any] | np.ndarray, kind: pa.DataType, missing: np.ndarray | None = None
) -> pa.Array:
    """An Arrow column of int64, float64, bool or string values (None: null).

    ``values`` is a sequence (None marks a null) or a numpy array, whose nulls ``missing``
    (a bool array) marks. Built from buffers: ``pa.array`` imports pandas on first use (about
    0.3 s), which a backtest otherwise never needs.
    """
    n = len(values)
    if kind == pa.string():
        return _text(values, missing)
    if isinstance(values, np.ndarray) and values.dtype != object:
        data = values
    else:
        missing = np.asarray([v is None for v in values], dtype=bool)
        fill = False if kind == pa.bool_() else 0
        data = np.asarray([fill if v is None else v for v in values])
    if kind == pa.bool_():
        bits = np.packbits(np.asarray(data, dtype=bool), bitorder="little")
        return pa.Array.from_buffers(kind, n, [_validity(missing), pa.py_buffer(bits)])
    dtype = np.int64 if kind == pa.int64() else np.float64
    data = np.ascontiguousarray(data, dtype=dtype)
    if missing is not None and missing.any():
        data = np.where(missing, dtype(0), data)  # null slots hold zeros, as from a sequence
    return pa.Array.from_buffers(kind, n, [_validity(missing), pa.py_buffer(data)])


def _required_table(columns: Sequence[pa.Array], names: Sequence[str]) -> pa.Table:
    """A table of ``columns`` declared without nulls (Parquet then stores no definition
    levels: about a quarter less time to write a 1M-row equity file; NaN is still a value)."""
    schema = pa.schema(
        [pa.field(name, col.type, nullable=False) for name, col in zip(names, columns, strict=True)]
    )
    return pa.Table.from_arrays(list(columns), schema=schema)


def _text(values: Sequence[Any] | np.ndarray, missing: np.ndarray | None = None) -> pa.Array:
    """A string column of ``values`` (str; None, or where ``missing`` is set, null)."""
    n = len(values)
    if missing is None:
        missing = np.asarray([v is None for v in values], dtype=bool)
    if isinstance(values, np.ndarray) and not missing.any():
        texts = [str(v) for v in values.tolist()]
    else:
        texts = [
            "" if gone or v is None else str(v)
            for v, gone in zip(values, missing.tolist(), strict=True)
        ]
    joined = "".join(texts)
    offsets = np.zeros(n + 1, dtype=np.int32)
    if joined.isascii():  # one byte a character: the lengths are the offsets' steps
        raw = joined.encode("ascii")
        if n:
            np.cumsum(np.fromiter(map(len, texts), dtype=np.int32, count=n), out=offsets[1:])
    else:
        encoded = [t.encode() for t in texts]
        raw = b"".join(encoded)
        if n:
            np.cumsum([len(b) for b in encoded], out=offsets[1:])
    buffers = [_validity(missing), pa.py_buffer(offsets), pa.py_buffer(raw)]
    return pa.Array.from_buffers(pa.string(), n, buffers)


def _validity(missing: Sequence[bool] | np.ndarray | None) -> pa.Buffer | None:
    if missing is None:
        return None
    present = ~np.asarray(missing, dtype=bool)
    if present.all():
        return None
    return pa.py_buffer(np.packbits(present, bitorder="little"))


def _ts_column(
    values: list[int | None] | np.ndarray, missing: np.ndarray | None = None
) -> pa.Array:
    """Return UTC ns times as ISO-8601 text (``2025-06-01T00:15:00Z``), nulls kept.

    ``values`` is a list (None marks a null) or an int64 array, whose nulls ``missing`` (a
    bool array) marks. The unit is the coarsest that keeps every value exact (s, ms, us or
    ns). Arrow formats zone-aware timestamps about ten times slower than naive ones, so the
    text is built from the naive (UTC) value and the ``Z`` is appended.
    """
    if isinstance(values, np.ndarray):
        ints = np.asarray(values, dtype=np.int64)
        if missing is not None and missing.any():
            ints = np.where(missing, 0, ints)  # null slots hold zeros, as from a list
    else:
        missing = np.asarray([v is None for v in values], dtype=bool)
        ints = np.asarray([0 if v is None else v for v in values], dtype=np.int64)
    present = ints if missing is None else ints[~missing]
    unit, size = "ns", 1
    for candidate, candidate_size in (("s", 10**9), ("ms", 10**6), ("us", 10**3)):
        if not np.any(present % candidate_size):
            unit, size = candidate, candidate_size
            break
    # no Arrow scalars (their first use imports pandas): the division in numpy, the "Z" and
    # the empty separator as arrays
    n = len(ints)
    # The kernels are called by name: ``pyarrow.compute`` (and ``Array.cast``, which imports
    # it) builds a Python wrapper for every kernel on import, about 30 ms of every backtest.
    stamps = pa.Array.from_buffers(
        pa.timestamp(unit), n, [_validity(missing), pa.py_buffer(ints // size)]
    )
    text = pc.call_function("cast", [stamps], pc.CastOptions(pa.string()))
    iso = pc.call_function(
        "replace_substring", [text], pc.ReplaceSubstringOptions(" ", "T", max_replacements=1)
    )
    return pc.call_function(
        "binary_join_element_wise", [iso, _repeat_text("Z", n), _repeat_text("", n)]
    )


def _repeat_text(text: str, n: int) -> pa.Array:
    """A string array of ``n`` copies of ``text``, built from buffers."""
    raw = text.encode()
    offsets = np.arange(n + 1, dtype=np.int32) * len(raw)
    return pa.Array.from_buffers(
        pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(raw * n)]
    )


def _write_csv(table: pa.Table, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        pacsv.write_csv(table, tmp, pacsv.WriteOptions(quoting_style="none"))
    except pa.ArrowInvalid:  # a value holds a comma, quote or newline
        pacsv.write_csv(table, tmp)
    tmp.replace(path)


def json_safe(value: Any) -> Any:
    """Return ``value`` with what JSON cannot hold made plain: NaN as None, infinities as
    ``"inf"``/``"-inf"``, numpy scalars as Python numbers, tuples as lists, paths as text.

    >>> json_safe({"a": float("nan"), "b": (1.0, float("inf"))})
    {'a': None, 'b': [1.0, 'inf']}
    """
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return json_safe(value.item())
    if isinstance(value, Path):
        return str(value)
    return value


def _write_json(data: Any, path: Path) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(json_safe(data), indent=2, default=str), encoding="utf-8")
    tmp.replace(path)


# --------------------------------------------------------------------------- provenance


def file_sha256(path: str | Path) -> str:
    """Return the hex sha256 of a file's bytes."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def git_revision(cwd: str | Path | None = None) -> str | None:
    """Return ``git rev-parse HEAD`` of the checkout at ``cwd`` (None outside a checkout)."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    revision = done.stdout.strip()
    return revision if done.returncode == 0 and revision else None


def new_run_id(strategy: str, material: Any, now: datetime | None = None) -> str:
    """Return ``<UTC yyyymmddThhmmssZ>-<strategy>-<6 hex>``; the hash is of ``material``.

    >>> new_run_id("sma_cross", {"a": 1}, datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC))
    '20250102T030405Z-sma_cross-f9d860'
    """
    moment = now or datetime.now(tz=UTC)
    slug = re.sub(r"[^A-Za-z0-9_.]+", "_", strategy).strip("_") or "run"
    digest = hashlib.sha256(
        json.dumps(json_safe(material), sort_keys=True, default=str).encode()
    ).hexdigest()[:6]
    return f"{moment.astimezone(UTC):%Y%m%dT%H%M%SZ}-{slug}-{digest}"


def describe_data(
    specs: Sequence[Any], loaded: Sequence[Any], digests: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """Return one provenance dict per data file: path (as given and resolved), symbol,
    timeframe, rows, size, sha256 and the options it was read with.

    ``specs`` are the :class:`~tradeloop.engine.runner.DataSpec` and ``loaded`` the matching
    :class:`~tradeloop.data.loader.LoadedBars`; ``digests`` are sha256 values already
    computed in this run, by resolved path (the others are computed here).
    """
    files = []
    known = digests or {}
    for spec, item in zip(specs, loaded, strict=True):
        path = Path(getattr(spec, "path", item.source))
        resolved = str(path.resolve())
        columns = getattr(spec, "columns", None)
        files.append(
            {
                "path": str(path),
                "resolved": resolved,
                "symbol": item.bars.symbol,
                "symbol_given": spec.symbol,
                "timeframe": item.timeframe,
                "rows": len(item.bars),
                "bytes": path.stat().st_size,
                "sha256": known.get(resolved) or file_sha256(path),
                "columns": dataclasses.asdict(columns) if columns is not None else None,
                "time_unit": getattr(spec, "time_unit", None),
                "tz": getattr(spec, "tz", None),
                "repair": getattr(spec, "repair", False),
                "cache": (
                    {"exchange": spec.exchange, "market": spec.market}
                    if hasattr(spec, "exchange")
                    else None
                ),
                "repaired": dict(item.repaired),
                "layout": (
                    dataclasses.asdict(spec.layout) if getattr(spec, "layout", None) else None
                ),
                "issues": list(item.issues),
            }
        )
    return files


def run_info(
    result: BacktestResult,
    data_files: Sequence[Mapping[str, Any]],
    *,
    run_id: str | None,
    validation: ValidationConfig,
    bias: BiasConfig,
    command: str = "",
    created: datetime | None = None,
    model: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Return the content of ``run.json``: everything needed to reproduce and re-report a run.

    ``model`` describes the ML model of the run (name, version, threshold, counts; see
    :meth:`tradeloop.engine.enrichment.ModelEnrichment.describe`); ``None`` when it had none.
    """
    moment = created or datetime.now(tz=UTC)
    return {
        "run_id": run_id,
        "created": moment.astimezone(UTC).isoformat(),
        "strategy": result.strategy,
        "params": dict(result.params),
        "symbols": list(result.symbols),
        "timeframe": result.timeframe,
        "start": to_iso(result.start) if len(result.ts) else None,
        "end": to_iso(result.end) if len(result.ts) else None,
        "bars": result.bars_processed,
        "seed": validation.seed,
        "engine_version": tradeloop.__version__,
        "git_revision": git_revision(),
        "command": command,
        "config": dict(result.config),
        "model": dict(model) if model is not None else None,
        "validation": dataclasses.asdict(validation),
        "bias": dataclasses.asdict(bias),
        "data": [dict(f) for f in data_files],
    }


# --------------------------------------------------------------------------- writing


def _trade_table(result: BacktestResult) -> pa.Table:
    """The ``trades.csv`` table, from the trades' columns (built once by the engine)."""
    cols = result.trade_columns
    if cols is None or len(cols) != len(result.trades):
        cols = trade_columns(result.trades)
    f64 = pa.float64()
    still_open = ~cols.closed
    side = np.where(cols.direction > 0, "long", "short").astype(object)
    columns = {
        "entry_time": _ts_column(cols.entry_ts),
        "exit_time": _ts_column(cols.exit_ts, still_open),
        "entry_price": _arrow(cols.entry_price, f64),
        "exit_price": _arrow(cols.exit_price, f64, np.isnan(cols.exit_price)),
        "size": _arrow(cols.quantity, f64),
        # an open position's P&L is marked at the last close (its exit fields stay empty)
        "pnl": _arrow(cols.pnl, f64, np.isnan(cols.pnl)),
        "symbol": _text(cols.symbols, np.zeros(len(cols), dtype=bool)),
        "side": _text(side, np.zeros(len(cols), dtype=bool)),
        "fees": _arrow(cols.fees, f64),
        "pnl_pct": _arrow(cols.pnl_pct, f64, np.isnan(cols.pnl_pct)),
        "exit_reason": _text(cols.exit_reasons, cols.exit_reasons == ""),  # "": still open
        "id": _text(cols.ids, np.zeros(len(cols), dtype=bool)),
        "stop_loss": _arrow(cols.stop_loss, f64, np.isnan(cols.stop_loss)),
        "take_profit": _arrow(cols.take_profit, f64, np.isnan(cols.take_profit)),
    }
    return pa.Table.from_arrays(list(columns.values()), names=list(columns))


def _write_equity(result: BacktestResult, folder: Path, csv: bool) -> dict[str, Path]:
    """``equity.parquet`` (UTC ns timestamps), and with ``csv`` also ``equity.csv`` (ISO
    text: about 66 MB and most of the write time for 1M bars, so only on request)."""
    equity = _arrow(np.asarray(result.equity, dtype=np.float64), pa.float64())
    cash = _arrow(np.asarray(result.cash, dtype=np.float64), pa.float64())
    exposure = _arrow(np.asarray(result.exposure, dtype=bool), pa.bool_())
    paths = {}
    if csv:
        paths["equity_csv"] = folder / "equity.csv"
        _write_csv(
            pa.Table.from_arrays(
                [_ts_column(result.ts), equity, cash, exposure],
                names=["timestamp", "equity", "cash", "in_position"],
            ),
            paths["equity_csv"],
        )
    import pyarrow.parquet as pq

    paths["equity"] = parquet_path = folder / "equity.parquet"
    # a view of the int64 values (a cast would import pyarrow.compute, see _ts_column)
    stamps = _arrow(np.asarray(result.ts, dtype=np.int64), pa.int64()).view(
        pa.timestamp("ns", tz="UTC")
    )
    tmp = parquet_path.with_suffix(".parquet.tmp")
    pq.write_table(
        _required_table(
            [stamps, equity, cash, exposure], ["timestamp", "equity", "cash", "in_position"]
        ),
        tmp,
        compression="zstd",
        use_dictionary=False,  # floats rarely repeat; dictionary pages only cost time
        # a regular grid: ~1/3 the size; the equity byte-split compresses better, sooner (the
        # cash, constant between fills, compresses best as it is)
        column_encoding={"timestamp": "DELTA_BINARY_PACKED", "equity": "BYTE_STREAM_SPLIT"},
    )
    tmp.replace(parquet_path)
    return paths


def write_trades_and_equity(result: BacktestResult, folder: Path) -> dict[str, Path]:
    """``trades.csv``, ``equity.parquet`` and ``equity.csv`` of ``result`` into ``folder``
    (created), as a run folder has them; e.g. one optimisation trial's files."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"trades": folder / "trades.csv"}
    _write_csv(_trade_table(result), paths["trades"])
    paths.update(_write_equity(result, folder, True))
    return paths


def _title(strategy: str, symbols: Sequence[str], timeframe: str) -> str:
    return f"{strategy} on {', '.join(symbols)} ({timeframe})"


def run_bar_ns(result: BacktestResult) -> int:
    """Step length of a run in ns (from its timeframe, else the most common step)."""
    try:
        return timeframe_ns(result.timeframe)
    except Exception:  # a non-standard timeframe: infer from the steps
        diffs = np.diff(np.asarray(result.ts, dtype=np.int64))
        return int(np.median(diffs)) if diffs.size else 60_000_000_000


def write_outputs(
    result: BacktestResult,
    out_dir: str | Path,
    *,
    report: bool = True,
    prices: dict[str, BarArrays] | None = None,
    provenance: dict[str, Any] | None = None,
    analysis: RunAnalysis | Callable[[], RunAnalysis] | None = None,
    run: Mapping[str, Any] | None = None,
    validation: ValidationConfig | None = None,
    bias: BiasConfig | None = None,
    regimes: RegimeSeries | None = None,
    equity_csv: bool = False,
    report_assets: Path | None = None,
) -> dict[str, Path]:
    """Write the run's files into ``out_dir`` (created if needed) and return their paths.

    The equity curve is ``equity.parquet`` (path ``equity``); ``equity_csv`` also writes it as
    ``equity.csv`` with ISO-8601 times (path ``equity_csv``).

    ``trades.csv`` has ``entry_time, exit_time, entry_price, exit_price, size, pnl`` first,
    then symbol, side, fees, pnl_pct, exit_reason, id, stop_loss and take_profit; open
    positions have empty exit fields. ``metrics.json`` holds ``analysis`` (computed here when
    None, with ``validation`` and ``bias``; a callable is called here, while the equity and
    indicator files are written on a second thread); ``run.json`` is written when ``run`` is
    given.
    Every file is written to a temporary name and renamed, so a crash leaves no partial file.
    With ``regimes`` (a run with a regime model) ``regimes.csv`` holds the regime at every step
    (``timestamp, regime, detected, confidence, exposure``) and the report shows them.
    ``report_assets`` is the cache folder of the report's packed plotly.js (see
    :mod:`tradeloop.analysis.report_assets`).
    """
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    # The equity files are the slowest part on long runs; Arrow formats and writes them
    # without the GIL, so they are written on a second thread while the rest is built.
    # The indicator file (one row per plotted point) goes the same way.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="equity-writer") as pool:
        equity_files = pool.submit(_write_equity, result, folder, equity_csv)
        indicator_file = None
        if result.indicators:
            indicator_file = folder / INDICATORS_FILE
            indicators_done = pool.submit(write_indicators, result.indicators, indicator_file)
        paths = _write_rest(
            result,
            folder,
            report,
            prices,
            provenance,
            analysis,
            run,
            validation,
            bias,
            regimes,
            report_assets,
        )
        paths.update(equity_files.result())
        if indicator_file is not None:
            indicators_done.result()
            paths["indicators"] = indicator_file
    return paths


def _write_rest(
    result: BacktestResult,
    folder: Path,
    report: bool,
    prices: dict[str, BarArrays] | None,
    provenance: dict[str, Any] | None,
    analysis: RunAnalysis | Callable[[], RunAnalysis] | None,
    run: Mapping[str, Any] | None,
    validation: ValidationConfig | None,
    bias: BiasConfig | None,
    regimes: RegimeSeries | None = None,
    report_assets: Path | None = None,
) -> dict[str, Path]:
    bar_ns = run_bar_ns(result)
    initial = float(result.config.get("balance", result.metrics.initial_equity))
    if callable(analysis):
        analysis = analysis()
    elif analysis is None:
        analysis = analyze_run(
            ts=result.ts,
            equity=result.equity,
            trades=result.trades,
            bar_ns=bar_ns,
            initial_equity=initial,
            exposure=result.exposure,
            prices=prices,
            metrics=result.metrics,
            validation=validation,
            bias=bias,
        )
    paths = {"trades": folder / "trades.csv"}
    _write_csv(_trade_table(result), paths["trades"])
    summary = result.summary()
    summary["config"] = result.config
    if provenance:
        summary["provenance"] = provenance
    paths["summary"] = folder / "summary.json"
    _write_json(summary, paths["summary"])
    paths["metrics"] = folder / "metrics.json"
    _write_json(analysis.to_dict(), paths["metrics"])
    if run is not None:
        paths["run"] = folder / "run.json"
        _write_json(dict(run), paths["run"])
    if regimes is not None:
        paths["regimes"] = folder / "regimes.csv"
        _write_csv(pa.Table.from_pylist(regimes.rows()), paths["regimes"])
    if report:
        paths["report"] = write_report(
            folder / "report.html",
            title=_title(result.strategy, result.symbols, result.timeframe),
            summary=summary,
            ts=result.ts,
            equity=result.equity,
            trades=result.trades,
            prices=prices,
            analysis=analysis,
            bar_ns=bar_ns,
            initial_equity=initial,
            run_info=run,
            regimes=regimes,
            indicators=result.indicators,
            assets=report_assets,
        )
    return paths


#: What the strategy plotted (``Strategy.plot``), kept so ``tradeloop report`` redraws it.
INDICATORS_FILE = "indicators.parquet"


def write_indicators(indicators: Mapping[str, tuple[np.ndarray, np.ndarray]], path: Path) -> None:
    """Store ``{name: (times_ns, values)}`` in Parquet.

    Series on the same times (the usual case: one value per bar) are one wide table, a
    ``timestamp`` column and a column of values per name, so the times are stored once;
    otherwise one long table (``name, timestamp, value``). :func:`read_indicators` reads both.
    """
    import pyarrow.parquet as pq

    series = [
        (np.asarray(ts, dtype=np.int64), np.asarray(vals, dtype=np.float64))
        for ts, vals in indicators.values()
    ]
    times = series[0][0] if series else np.zeros(0, np.int64)
    wide = (
        bool(series)
        and "name" not in indicators  # a column of the long table: kept long, unambiguous
        and "timestamp" not in indicators
        and all(ts is times or np.array_equal(ts, times) for ts, _ in series)
    )
    # built from buffers (see _arrow): no per-row Python string, no pandas import
    if wide:
        table = _required_table(
            [_arrow(times, pa.int64()), *(_arrow(vals, pa.float64()) for _, vals in series)],
            ["timestamp", *indicators],
        )
    else:
        index = np.concatenate(
            [np.full(len(ts), k, dtype=np.int32) for k, (ts, _) in enumerate(series)]
            or [np.zeros(0, dtype=np.int32)]
        )
        table = _required_table(
            [
                pa.DictionaryArray.from_arrays(
                    pa.Array.from_buffers(pa.int32(), len(index), [None, pa.py_buffer(index)]),
                    _arrow(list(indicators), pa.string()),
                ),
                _arrow(np.concatenate([ts for ts, _ in series] or [times]), pa.int64()),
                _arrow(np.concatenate([v for _, v in series] or [np.zeros(0)]), pa.float64()),
            ],
            _LONG_COLUMNS,
        )
    values = [name for name in table.column_names if name not in ("name", "timestamp")]
    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(
        table,
        tmp,
        compression="zstd",
        use_dictionary=[] if wide else ["name"],
        # times on a grid and smooth values: delta-coded times and byte-split floats take
        # about a third of the plain file's space and less time to write (lossless)
        column_encoding={
            "timestamp": "DELTA_BINARY_PACKED",
            **dict.fromkeys(values, "BYTE_STREAM_SPLIT"),
        },
    )
    tmp.replace(path)


#: the columns of the long indicator table (name, timestamp, value)
_LONG_COLUMNS = ("name", "timestamp", "value")


def read_indicators(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read what :func:`write_indicators` stored (empty when the file is missing)."""
    if not path.is_file():
        return {}
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    if tuple(table.column_names) != _LONG_COLUMNS:  # wide: timestamp, then one column a name
        times = np.asarray(table.column("timestamp").to_numpy(), dtype=np.int64)
        return {
            name: (times, np.asarray(table.column(name).to_numpy(), dtype=np.float64))
            for name in table.column_names
            if name != "timestamp"
        }
    names = np.asarray(table.column("name").cast(pa.string()).to_pylist(), dtype=object)
    ts = np.asarray(table.column("timestamp").to_numpy(), dtype=np.int64)
    values = np.asarray(table.column("value").to_numpy(), dtype=np.float64)
    out = {}
    for name in dict.fromkeys(names.tolist()):
        sel = names == name
        out[str(name)] = (ts[sel], values[sel])
    return out


# --------------------------------------------------------------------------- regenerating


def _load_recorded_data(
    files: Sequence[Mapping[str, Any]], *, require: bool
) -> tuple[dict[str, BarArrays] | None, list[str]]:
    """Load a run's data files again after checking their sha256."""
    from tradeloop.data.loader import ColumnMap, CsvLayout
    from tradeloop.engine.runner import DataSpec, load_data

    problems: list[str] = []
    specs = []
    for f in files:
        candidates = [Path(str(f.get("resolved") or "")), Path(str(f.get("path") or ""))]
        found = next((p for p in candidates if str(p) not in ("", ".") and p.is_file()), None)
        if found is None:
            problems.append(f"data file {f.get('path')} is missing")
            continue
        digest = file_sha256(found)
        if f.get("sha256") and digest != f["sha256"]:
            problems.append(
                f"data file {found} changed since the run (sha256 {digest[:12]}..., recorded "
                f"{str(f['sha256'])[:12]}...)"
            )
            continue
        columns = f.get("columns")
        layout = f.get("layout")
        if layout and layout.get("names") is not None:
            layout = {**layout, "names": tuple(layout["names"])}
        specs.append(
            DataSpec(
                found,
                f.get("symbol_given") or f.get("symbol"),
                ColumnMap(**columns) if columns else None,
                f.get("time_unit"),
                bool(f.get("repair", False)),
                layout=CsvLayout(**layout) if layout else None,
                tz=f.get("tz"),
            )
        )
    if problems:
        if require:
            raise DataError("; ".join(problems))
        return None, problems
    loaded = load_data(specs)
    return {item.bars.symbol: item.bars for item in loaded}, problems


def regenerate_report(
    run_dir: str | Path, *, require_data: bool = False, out: str | Path | None = None
) -> tuple[Path, list[str]]:
    """Write ``report.html`` of a recorded run again from its files and return (path, warnings).

    The data files named in ``run.json`` are read again for the price charts, the benchmark
    and the FOMO check, after their sha256 is checked. A missing or changed file gives a
    warning and a report without those parts, or a ``DataError`` with ``require_data``.
    Validation uses the recorded seed and thresholds, so the figures match the original run.

    Raises
    ------
    DataError
        If the run's records cannot be read, or (``require_data``) a data file is missing or
        changed.
    """
    folder = Path(run_dir)
    run = read_json(folder / "run.json")
    trades = read_trades(folder / "trades.csv")
    curve = read_equity(folder)
    prices, warnings = _load_recorded_data(run.get("data") or [], require=require_data)
    for message in warnings:
        logger.warning("%s", message)
    timeframe = str(run.get("timeframe", ""))
    try:
        bar_ns = timeframe_ns(timeframe)
    except Exception:
        diffs = np.diff(curve.ts)
        bar_ns = int(np.median(diffs)) if diffs.size else 60_000_000_000
    config = run.get("config") or {}
    initial = float(config.get("balance") or (curve.equity[0] if curve.equity.size else 0.0))
    validation = ValidationConfig(**(run.get("validation") or {}))
    bias = BiasConfig(**(run.get("bias") or {}))
    analysis = analyze_run(
        ts=curve.ts,
        equity=curve.equity,
        trades=trades,
        bar_ns=bar_ns,
        initial_equity=initial,
        exposure=curve.exposure,
        prices=prices,
        validation=validation,
        bias=bias,
        periods=given_annualization(
            config.get("periods_per_year"), config.get("periods_basis") or ""
        ),
    )
    notes = [f"{w}: the report is regenerated without price charts." for w in warnings]
    target = Path(out) if out is not None else folder / "report.html"
    path = write_report(
        target,
        title=_title(str(run.get("strategy", "")), run.get("symbols") or [], timeframe),
        summary=read_json(folder / "summary.json") if (folder / "summary.json").exists() else {},
        ts=curve.ts,
        equity=curve.equity,
        trades=trades,
        prices=prices,
        analysis=analysis,
        bar_ns=bar_ns,
        initial_equity=initial,
        run_info=run,
        notes=notes,
        indicators=read_indicators(folder / INDICATORS_FILE),
    )
    return path, warnings
