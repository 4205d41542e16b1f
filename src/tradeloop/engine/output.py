"""Write a run's results: trades.csv, equity.csv, summary.json and report.html."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from tradeloop.analysis.report import write_report
from tradeloop.core.bar import BarArrays
from tradeloop.engine.result import BacktestResult

__all__ = ["write_outputs"]


def _ts_column(values: list[int | None] | np.ndarray) -> pa.Array:
    """Return UTC ns times as ISO-8601 text (``2025-06-01T00:15:00Z``), nulls kept.

    The unit is the coarsest that keeps every value exact (s, ms, us or ns). Arrow formats
    zone-aware timestamps about ten times slower than naive ones, so the text is built from
    the naive (UTC) value and the ``Z`` is appended.
    """
    ints = pa.array(values, type=pa.int64())
    present = ints.drop_null().to_numpy()
    unit, size = "ns", 1
    for candidate, candidate_size in (("s", 10**9), ("ms", 10**6), ("us", 10**3)):
        if not np.any(present % candidate_size):
            unit, size = candidate, candidate_size
            break
    naive = pc.divide(ints, size).cast(pa.timestamp(unit)).cast(pa.string())
    iso = pc.replace_substring(naive, " ", "T", max_replacements=1)
    return pc.binary_join_element_wise(iso, "Z", "")


def _write_csv(table: pa.Table, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        pacsv.write_csv(table, tmp, pacsv.WriteOptions(quoting_style="none"))
    except pa.ArrowInvalid:  # a value holds a comma, quote or newline
        pacsv.write_csv(table, tmp)
    tmp.replace(path)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def write_outputs(
    result: BacktestResult,
    out_dir: str | Path,
    *,
    report: bool = True,
    prices: dict[str, BarArrays] | None = None,
    provenance: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Write the run's files into ``out_dir`` (created if needed) and return their paths.

    ``trades.csv`` has ``entry_time, exit_time, entry_price, exit_price, size, pnl`` first,
    then symbol, side, fees, pnl_pct and exit_reason; open positions have empty exit fields.
    Every file is written to a temporary name and renamed, so a crash leaves no partial file.
    """
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    trades = result.trades
    trade_table = pa.table(
        {
            "entry_time": _ts_column([t.entry_ts for t in trades]),
            "exit_time": _ts_column([t.exit_ts for t in trades]),
            "entry_price": pa.array([t.entry_price for t in trades], type=pa.float64()),
            "exit_price": pa.array([t.exit_price for t in trades], type=pa.float64()),
            "size": pa.array([t.quantity for t in trades], type=pa.float64()),
            "pnl": pa.array([t.pnl if t.is_closed else None for t in trades], type=pa.float64()),
            "symbol": pa.array([t.symbol for t in trades], type=pa.string()),
            "side": pa.array(["long" if t.direction > 0 else "short" for t in trades]),
            "fees": pa.array([t.fees for t in trades], type=pa.float64()),
            "pnl_pct": pa.array(
                [t.pnl_pct if t.is_closed else None for t in trades], type=pa.float64()
            ),
            "exit_reason": pa.array(
                [t.exit_reason.value if t.exit_reason else None for t in trades], type=pa.string()
            ),
        }
    )
    paths = {
        "trades": folder / "trades.csv",
        "equity": folder / "equity.csv",
        "summary": folder / "summary.json",
    }
    _write_csv(trade_table, paths["trades"])
    equity_table = pa.table(
        {
            "timestamp": _ts_column(result.ts),
            "equity": pa.array(result.equity, type=pa.float64()),
            "cash": pa.array(result.cash, type=pa.float64()),
            "in_position": pa.array(result.exposure, type=pa.bool_()),
        }
    )
    _write_csv(equity_table, paths["equity"])
    summary = result.summary()
    summary["config"] = result.config
    if provenance:
        summary["provenance"] = provenance
    tmp = paths["summary"].with_suffix(".json.tmp")
    tmp.write_text(json.dumps(_json_safe(summary), indent=2, default=str), encoding="utf-8")
    tmp.replace(paths["summary"])
    if report:
        paths["report"] = write_report(
            folder / "report.html",
            title=f"{result.strategy} on {', '.join(result.symbols)} ({result.timeframe})",
            summary=summary,
            ts=result.ts,
            equity=result.equity,
            trades=trades,
            prices=prices,
        )
    return paths
