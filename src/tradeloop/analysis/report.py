"""A self-contained HTML report of a run (Plotly; works offline).

Large runs stay light: the equity and price charts are decimated to at most ``max_points``
points (min/max per bucket for prices, so spikes survive), and the trade table shows the
first ``max_trade_rows`` trades.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tradeloop.core.bar import BarArrays
from tradeloop.core.position import Trade
from tradeloop.core.time import to_iso

__all__ = ["write_report"]


def _decimate_index(n: int, max_points: int) -> np.ndarray:
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_points).astype(np.int64))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isinf(value):
            return "∞" if value > 0 else "-∞"
        if math.isnan(value):
            return "–"
        return f"{value:,.6g}"
    return html.escape(str(value))


def _table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_report(
    path: str | Path,
    *,
    title: str,
    summary: Mapping[str, Any],
    ts: np.ndarray,
    equity: np.ndarray,
    trades: Sequence[Trade],
    prices: Mapping[str, BarArrays] | None = None,
    max_points: int = 5000,
    max_trade_rows: int = 500,
) -> Path:
    """Write an HTML report with the equity curve, drawdown, prices with trades and tables.

    Returns the path written.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    out = Path(path)
    idx = _decimate_index(len(ts), max_points)
    times = ts[idx].astype("datetime64[ns]")
    eq = equity[idx]
    peaks = np.maximum.accumulate(equity)[idx]
    drawdown = np.where(peaks > 0, eq / peaks - 1.0, 0.0) * 100
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.04
    )
    fig.add_trace(go.Scatter(x=times, y=eq, name="equity", line={"width": 1.5}), row=1, col=1)
    fig.add_trace(
        go.Scatter(
            x=times,
            y=drawdown,
            name="drawdown %",
            fill="tozeroy",
            line={"width": 1, "color": "crimson"},
        ),
        row=2,
        col=1,
    )
    fig.update_layout(
        height=520, margin={"l": 40, "r": 20, "t": 30, "b": 30}, title="Equity and drawdown"
    )
    parts = [fig.to_html(full_html=False, include_plotlyjs=True)]

    for symbol, bars in (prices or {}).items():
        sel = _decimate_index(len(bars), max_points)
        pfig = go.Figure()
        pfig.add_trace(
            go.Scatter(
                x=bars.ts[sel].astype("datetime64[ns]"),
                y=bars.close[sel],
                name=f"{symbol} close",
                line={"width": 1, "color": "#555"},
            )
        )
        sym_trades = [t for t in trades if t.symbol == symbol][: max_trade_rows * 4]
        if sym_trades:
            entries_long = [t for t in sym_trades if t.direction > 0]
            entries_short = [t for t in sym_trades if t.direction < 0]
            for group, color, label in (
                (entries_long, "green", "long entry"),
                (entries_short, "red", "short entry"),
            ):
                if group:
                    pfig.add_trace(
                        go.Scatter(
                            x=np.array([t.entry_ts for t in group]).astype("datetime64[ns]"),
                            y=[t.entry_price for t in group],
                            mode="markers",
                            name=label,
                            marker={"symbol": "triangle-up", "color": color, "size": 8},
                        )
                    )
            exits = [t for t in sym_trades if t.is_closed]
            if exits:
                pfig.add_trace(
                    go.Scatter(
                        x=np.array([t.exit_ts for t in exits]).astype("datetime64[ns]"),
                        y=[t.exit_price for t in exits],
                        mode="markers",
                        name="exit",
                        text=[t.exit_reason.value if t.exit_reason else "" for t in exits],
                        marker={"symbol": "x", "color": "black", "size": 7},
                    )
                )
        pfig.update_layout(
            height=420, title=f"{symbol} with trades", margin={"l": 40, "r": 20, "t": 40, "b": 30}
        )
        parts.append(pfig.to_html(full_html=False, include_plotlyjs=False))

    metrics_rows = [(k, v) for k, v in summary.items() if not isinstance(v, dict | list)]
    trade_rows = [
        (
            t.symbol,
            "long" if t.direction > 0 else "short",
            to_iso(t.entry_ts),
            t.entry_price,
            to_iso(t.exit_ts) if t.exit_ts is not None else "open",
            t.exit_price if t.exit_price is not None else "",
            t.quantity,
            t.pnl,
            t.exit_reason.value if t.exit_reason else "",
        )
        for t in trades[:max_trade_rows]
    ]
    shown = f" (first {max_trade_rows} of {len(trades)})" if len(trades) > max_trade_rows else ""
    doc = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; color: #222; }}
table {{ border-collapse: collapse; font-size: 13px; margin-bottom: 24px; }}
td, th {{ border: 1px solid #ddd; padding: 3px 8px; text-align: right; }}
th {{ background: #f4f4f4; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<h2>Summary</h2>
{_table(metrics_rows, ("metric", "value"))}
{"".join(parts)}
<h2>Trades{shown}</h2>
{
        _table(
            trade_rows,
            (
                "symbol",
                "side",
                "entry time",
                "entry price",
                "exit time",
                "exit price",
                "size",
                "pnl",
                "exit reason",
            ),
        )
    }
</body></html>
"""
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(doc, encoding="utf-8")
    tmp.replace(out)
    return out
