"""Read recorded runs: find them, resolve a run id, load trades, equity and metrics back.

A run record is a folder (``output/runs/<run-id>/`` by default) holding ``run.json``,
``metrics.json``, ``summary.json``, ``trades.csv``, ``equity.csv``, ``equity.parquet`` and
``report.html``. Run ids are ``<UTC time>-<strategy>-<hash>``, so sorting them sorts runs by
time.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tradeloop.core.errors import ConfigError, DataError, did_you_mean
from tradeloop.core.position import ExitReason, Trade

__all__ = [
    "EquityRecord",
    "RunListing",
    "find_runs",
    "read_equity",
    "read_json",
    "read_trades",
    "resolve_run",
]

RUN_FILE = "run.json"
METRICS_FILE = "metrics.json"


@dataclass(frozen=True, slots=True)
class RunListing:
    """One line of ``tradeloop runs``."""

    run_id: str
    path: Path
    strategy: str
    symbols: tuple[str, ...]
    timeframe: str
    total_return: float
    sharpe: float
    trades: int
    created: str
    verdict: str
    #: live runs (``tradeloop runs --state``): fills with an expected price, their mean adverse
    #: slippage in bps and its total cost in quote currency (0 / None for recorded backtests)
    slippage_fills: int = 0
    slippage_bps: float | None = None
    slippage_cost: float | None = None


@dataclass(frozen=True, slots=True)
class EquityRecord:
    """The equity curve of a recorded run."""

    ts: np.ndarray
    equity: np.ndarray
    cash: np.ndarray
    exposure: np.ndarray


def read_json(path: Path) -> dict[str, Any]:
    """Read a JSON file of a run record.

    Raises
    ------
    DataError
        If it is missing or not valid JSON.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: not found; is this a run folder?") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object")
    return data


def _number(value: Any) -> float:
    if value in ("inf", "-inf"):
        return math.inf if value == "inf" else -math.inf
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def find_runs(root: str | Path) -> list[RunListing]:
    """List the runs recorded under ``root``, oldest first: ``<root>/runs/*/run.json`` and runs
    written with ``--out`` into a folder of ``root`` itself (``output/demo`` of ``make demo``).

    Folders whose records cannot be read are skipped; ``latest`` (a link) is not listed twice.
    """
    base = Path(root)
    seen: set[Path] = set()
    run_files = []
    for run_file in [
        *sorted((base / "runs").glob(f"*/{RUN_FILE}")),
        *sorted(base.glob(f"*/{RUN_FILE}")),
    ]:
        if run_file.parent.is_symlink():
            continue
        resolved = run_file.resolve()
        if resolved not in seen:
            seen.add(resolved)
            run_files.append(run_file)
    listings = []
    for run_file in run_files:
        try:
            run = read_json(run_file)
            metrics_file = run_file.parent / METRICS_FILE
            analysis = read_json(metrics_file) if metrics_file.exists() else {}
        except DataError:
            continue
        metrics = analysis.get("metrics", {})
        verdict = analysis.get("validation", {}).get("verdict", {})
        listings.append(
            RunListing(
                run_id=str(run.get("run_id", run_file.parent.name)),
                path=run_file.parent,
                strategy=str(run.get("strategy", "")),
                symbols=tuple(run.get("symbols", ())),
                timeframe=str(run.get("timeframe", "")),
                total_return=_number(metrics.get("total_return")),
                sharpe=_number(metrics.get("sharpe")),
                trades=int(metrics.get("trade_count") or 0),
                created=str(run.get("created", "")),
                verdict=("passed" if verdict.get("passed") else "failed") if verdict else "",
            )
        )
    listings.sort(key=lambda r: r.created)
    return listings


def resolve_run(ref: str | Path, root: str | Path = "output") -> Path:
    """Return the folder of run ``ref``: a folder path, a run id, a unique id prefix or
    ``latest``. Every run :func:`find_runs` lists is found by the id it shows, runs written
    with ``--out`` into a folder of ``root`` (``output/demo``) also by that folder's name.

    Raises
    ------
    ConfigError
        If no run or several runs match.
    """
    path = Path(ref)
    if path.is_dir() and (path / RUN_FILE).exists():
        return path
    base = Path(root)
    if str(ref) == "latest" and (base / "latest").exists():
        return (base / "latest").resolve()
    runs_dir = base / "runs"
    exact = runs_dir / str(ref)
    if (exact / RUN_FILE).exists():
        return exact
    folders = _run_ids(base)
    ids = sorted(folders)
    matches = [i for i in ids if i.startswith(str(ref))] or [i for i in ids if str(ref) in i]
    distinct = {folders[m].resolve() for m in matches}
    if len(distinct) == 1:
        return folders[matches[0]]
    if len(distinct) > 1:
        shown = ", ".join(matches[:5]) + (" ..." if len(matches) > 5 else "")
        raise ConfigError(f"run {str(ref)!r} is ambiguous: {len(distinct)} runs match ({shown})")
    if path.is_dir():
        raise ConfigError(f"{path} has no {RUN_FILE}; it is not a run folder")
    raise ConfigError(
        f"no run {str(ref)!r} under {runs_dir} (see `tradeloop runs`)."
        + did_you_mean(str(ref), ids)
    )


def _run_ids(base: Path) -> dict[str, Path]:
    """Each run under ``base`` by the names it answers to: its folder's name under
    ``runs/``; for a run written with ``--out`` into a folder of ``base``, the run id of its
    record and the folder's name."""
    out = {p.parent.name: p.parent for p in (base / "runs").glob(f"*/{RUN_FILE}")}
    for run_file in base.glob(f"*/{RUN_FILE}"):
        if run_file.parent.is_symlink():
            continue  # latest
        out.setdefault(run_file.parent.name, run_file.parent)
        try:
            run_id = read_json(run_file).get("run_id")
        except DataError:
            continue
        if isinstance(run_id, str) and run_id:
            out.setdefault(run_id, run_file.parent)
    return out


def read_trades(path: Path) -> list[Trade]:
    """Read ``trades.csv`` of a run back into trades.

    Fees are put on the entry (the file holds their sum); an open trade keeps the P&L marked
    at the run's last close (NaN in files written before it was recorded). Files written
    before ``id``, ``stop_loss`` and ``take_profit`` were recorded get ids ``<symbol>-<n>``
    and no stops.

    Raises
    ------
    DataError
        If the file is missing or lacks a required column.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    stamp = pa.timestamp("ns", tz="UTC")
    try:
        table = pacsv.read_csv(
            path,
            convert_options=pacsv.ConvertOptions(
                column_types={
                    "entry_time": stamp,
                    "exit_time": stamp,
                    "symbol": pa.string(),
                    "id": pa.string(),
                    "exit_reason": pa.string(),
                    "side": pa.string(),
                }
            ),
        )
    except FileNotFoundError:
        raise DataError(f"{path}: not found") from None
    except pa.ArrowInvalid as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    need = {"entry_time", "exit_time", "entry_price", "exit_price", "size", "pnl", "symbol", "side"}
    missing = sorted(need - set(table.column_names))
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}")
    cols = {name: table.column(name).to_pylist() for name in table.column_names}
    n = table.num_rows
    entry = table.column("entry_time").cast(pa.int64()).to_pylist()
    exits = table.column("exit_time").cast(pa.int64()).to_pylist()
    none = [None] * n
    ids = cols.get("id", none)
    reasons = cols.get("exit_reason", none)
    fees = cols.get("fees", [0.0] * n)
    stops, targets = cols.get("stop_loss", none), cols.get("take_profit", none)
    trades = []
    for k in range(n):
        reason = reasons[k]
        try:
            exit_reason = ExitReason(reason) if reason else None
        except ValueError:
            exit_reason = None
        pnl = cols["pnl"][k]
        trades.append(
            Trade(
                id=ids[k] or f"{cols['symbol'][k]}-{k + 1}",
                symbol=cols["symbol"][k],
                direction=1 if cols["side"][k] == "long" else -1,
                quantity=float(cols["size"][k]),
                entry_ts=int(entry[k]),
                entry_price=float(cols["entry_price"][k]),
                exit_ts=None if exits[k] is None else int(exits[k]),
                exit_price=None if cols["exit_price"][k] is None else float(cols["exit_price"][k]),
                entry_fee=float(fees[k] or 0.0),
                exit_fee=0.0,
                pnl=math.nan if pnl is None else float(pnl),
                exit_reason=exit_reason,
                stop_loss=None if stops[k] is None else float(stops[k]),
                take_profit=None if targets[k] is None else float(targets[k]),
            )
        )
    return trades


def read_equity(folder: Path) -> EquityRecord:
    """Read a run's equity curve (``equity.parquet``, else ``equity.csv``).

    Raises
    ------
    DataError
        If neither file can be read.
    """
    import pyarrow as pa

    parquet, csv = folder / "equity.parquet", folder / "equity.csv"
    try:
        if parquet.exists():
            import pyarrow.parquet as pq

            table = pq.read_table(parquet)
        else:
            import pyarrow.csv as pacsv

            table = pacsv.read_csv(
                csv,
                convert_options=pacsv.ConvertOptions(
                    column_types={"timestamp": pa.timestamp("ns", tz="UTC")}
                ),
            )
    except FileNotFoundError:
        raise DataError(f"{folder}: no equity.parquet or equity.csv") from None
    except pa.ArrowInvalid as exc:
        raise DataError(f"{folder}: cannot read the equity curve ({exc})") from None
    ts = table.column("timestamp").cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64())
    return EquityRecord(
        ts=ts.to_numpy(),
        equity=table.column("equity").to_numpy().astype(np.float64),
        cash=table.column("cash").to_numpy().astype(np.float64),
        exposure=table.column("in_position").to_numpy(zero_copy_only=False).astype(bool),
    )
