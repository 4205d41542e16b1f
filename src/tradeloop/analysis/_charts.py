"""Plotly figure specifications (plain dicts) for the HTML reports.

Figures are built as dicts and serialized once, with numeric arrays as base64 typed arrays
(``{"dtype": "f8", "bdata": ...}``, decoded by plotly.js), which is several times smaller and
faster than JSON lists and skips plotly.py's validation. Times are float milliseconds since the
epoch on ``date`` axes (UTC).

Large series are reduced before they reach the browser:

* line charts keep, per bucket of consecutive points, the points at the bucket's minimum and
  maximum (and the drawdown's minimum), so peaks, troughs and spikes survive;
* candles are first aggregated onto the run's bar grid (finer data files are resampled), then
  merged ``k`` at a time (open of the first, max high, min low, close of the last) down to at
  most ``max_candles``; a second chart then shows the most recent bars at full resolution.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tradeloop.analysis.trades import TradeColumns
from tradeloop.core.bar import BarArrays

__all__ = [
    "Candles",
    "equity_figure",
    "grid_candles",
    "merge_candles",
    "monte_carlo_figure",
    "monthly_heatmap_figure",
    "overlay_figure",
    "price_figure",
    "reduce_line",
    "typed",
]

_NS_PER_MS = 1_000_000

#: Marker style per exit reason: (plotly symbol, colour, legend label).
EXIT_STYLES: dict[str, tuple[str, str, str]] = {
    "signal": ("circle-open", "#1f4e9e", "exit: signal"),
    "stop_loss": ("x", "#d62728", "exit: stop loss"),
    "take_profit": ("star", "#2ca02c", "exit: take profit"),
    "trailing": ("diamond", "#ff7f0e", "exit: trailing stop"),
    "end": ("square", "#7f7f7f", "exit: end of data"),
    "risk": ("hexagon", "#9467bd", "exit: risk"),
}
_OTHER_EXIT = ("circle", "#8c564b", "exit: {reason}")


def typed(values: np.ndarray | Sequence[float], dtype: str = "f8") -> dict[str, str]:
    """Return ``values`` as a plotly.js base64 typed array (``f8`` float64, ``i4`` int32).

    >>> typed(np.array([1.0]))["dtype"]
    'f8'
    """
    arr = np.ascontiguousarray(values, dtype={"f8": "<f8", "f4": "<f4", "i4": "<i4"}[dtype])
    return {"dtype": dtype, "bdata": base64.b64encode(arr.tobytes()).decode("ascii")}


def _ms(ts_ns: np.ndarray) -> dict[str, str]:
    return typed(np.asarray(ts_ns, dtype=np.int64) // _NS_PER_MS)


def _date_axis(**extra: Any) -> dict[str, Any]:
    return {"type": "date", **extra}


# --------------------------------------------------------------------------- reduction


def reduce_line(values: Sequence[np.ndarray], max_points: int) -> np.ndarray:
    """Return sorted indices keeping each bucket's min and max of every series in ``values``.

    With ``n <= max_points`` every index is kept. Otherwise the points are cut into
    ``max_points // (2 * len(values))`` buckets of consecutive points; the first and last
    points are always kept.

    >>> reduce_line([np.array([0.0, 5.0, 1.0, 2.0, -3.0, 0.0])], 4).tolist()
    [0, 1, 3, 4, 5]
    """
    n = len(values[0])
    if n <= max_points:
        return np.arange(n)
    buckets = max(1, max_points // (2 * len(values)))
    size = math.ceil(n / buckets)
    buckets = math.ceil(n / size)
    keep = [np.array([0, n - 1])]
    for series in values:
        padded = np.empty(buckets * size)
        padded[:n] = series
        padded[n:] = series[-1]
        grid = padded.reshape(buckets, size)
        base = np.arange(buckets) * size
        keep.append(base + np.argmin(grid, axis=1))
        keep.append(base + np.argmax(grid, axis=1))
    idx = np.unique(np.concatenate(keep))
    return idx[idx < n]


@dataclass(frozen=True, slots=True)
class Candles:
    """OHLC candles (open times in UTC ns) and their volume (None: not known).

    ``last_ts`` is the open time of the last bar each candle holds (merged candles), whose
    close is the candle's: the time its indicator values are read at (None: ``ts``).
    """

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray | None = None
    last_ts: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    @property
    def close_bar_ts(self) -> np.ndarray:
        """Open time of the bar whose close each candle closes at."""
        return self.ts if self.last_ts is None else self.last_ts

    def tail(self, count: int) -> Candles:
        """The last ``count`` candles."""
        sl = slice(max(0, len(self) - count), None)
        return Candles(
            self.ts[sl],
            self.open[sl],
            self.high[sl],
            self.low[sl],
            self.close[sl],
            None if self.volume is None else self.volume[sl],
            None if self.last_ts is None else self.last_ts[sl],
        )


def grid_candles(bars: BarArrays, grid_ts: np.ndarray, bar_ns: int) -> Candles:
    """Aggregate ``bars`` onto the steps ``grid_ts`` (each ``bar_ns`` long) of a run.

    Bars outside the run are dropped; bars finer than the step are merged into it.
    """
    grid_ts = np.asarray(grid_ts, dtype=np.int64)
    if not len(bars) or not grid_ts.size:
        empty = np.zeros(0)
        return Candles(np.zeros(0, dtype=np.int64), empty, empty, empty, empty)
    lo = int(np.searchsorted(bars.ts, grid_ts[0], side="left"))
    hi = int(np.searchsorted(bars.ts, grid_ts[-1] + bar_ns, side="left"))
    ts = bars.ts[lo:hi]
    if not ts.size:
        empty = np.zeros(0)
        return Candles(np.zeros(0, dtype=np.int64), empty, empty, empty, empty)
    if ts.size == grid_ts.size and np.array_equal(ts, grid_ts):
        return Candles(
            ts,
            bars.open[lo:hi],
            bars.high[lo:hi],
            bars.low[lo:hi],
            bars.close[lo:hi],
            bars.volume[lo:hi],
        )
    step = np.searchsorted(grid_ts, ts, side="right") - 1
    starts = np.flatnonzero(np.concatenate(([True], step[1:] != step[:-1])))
    ends = np.append(starts[1:], ts.size) - 1
    return Candles(
        grid_ts[step[starts]],
        bars.open[lo:hi][starts],
        np.maximum.reduceat(bars.high[lo:hi], starts),
        np.minimum.reduceat(bars.low[lo:hi], starts),
        bars.close[lo:hi][ends],
        np.add.reduceat(bars.volume[lo:hi], starts),
    )


def merge_candles(candles: Candles, max_candles: int) -> tuple[Candles, int]:
    """Merge consecutive candles ``k`` at a time so at most ``max_candles`` remain.

    Returns the candles and ``k`` (1 when nothing was merged).
    """
    n = len(candles)
    if n <= max_candles:
        return candles, 1
    k = math.ceil(n / max_candles)
    starts = np.arange(0, n, k)
    ends = np.append(starts[1:], n) - 1
    return (
        Candles(
            candles.ts[starts],
            candles.open[starts],
            np.maximum.reduceat(candles.high, starts),
            np.minimum.reduceat(candles.low, starts),
            candles.close[ends],
            None if candles.volume is None else np.add.reduceat(candles.volume, starts),
            candles.close_bar_ts[ends],
        ),
        k,
    )


# --------------------------------------------------------------------------- figures


def equity_figure(
    ts: np.ndarray,
    equity: np.ndarray,
    peaks: np.ndarray,
    drawdown: np.ndarray,
    benchmark: np.ndarray | None,
) -> dict[str, Any]:
    """Equity with drawdown shading and buy-and-hold overlay above, underwater chart below.

    Arrays are already reduced; ``drawdown`` is a fraction (shown in percent).
    """
    x = _ms(ts)
    data: list[dict[str, Any]] = [
        {
            "type": "scatter",
            "mode": "lines",
            "name": "running peak",
            "x": x,
            "y": typed(peaks),
            "line": {"width": 0.8, "color": "rgba(120,120,120,0.6)"},
            "hoverinfo": "skip",
            "xaxis": "x",
            "yaxis": "y",
        },
        {
            "type": "scatter",
            "mode": "lines",
            "name": "equity",
            "x": x,
            "y": typed(equity),
            "line": {"width": 1.5, "color": "#1f77b4"},
            "fill": "tonexty",
            "fillcolor": "rgba(214,39,40,0.18)",
            "xaxis": "x",
            "yaxis": "y",
        },
    ]
    if benchmark is not None:
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": "buy & hold",
                "x": x,
                "y": typed(benchmark),
                "line": {"width": 1, "color": "#7f7f7f", "dash": "dot"},
                "xaxis": "x",
                "yaxis": "y",
            }
        )
    data.append(
        {
            "type": "scatter",
            "mode": "lines",
            "name": "drawdown %",
            "x": x,
            "y": typed(np.asarray(drawdown) * 100.0),
            "fill": "tozeroy",
            "line": {"width": 1, "color": "#d62728"},
            "xaxis": "x2",
            "yaxis": "y2",
        }
    )
    layout = {
        "title": {"text": "Equity and drawdown"},
        "height": 560,
        "margin": {"l": 60, "r": 20, "t": 50, "b": 40},
        "hovermode": "x unified",
        "legend": {"orientation": "h", "y": 1.08},
        "xaxis": _date_axis(anchor="y", matches="x2", showticklabels=False),
        "xaxis2": _date_axis(anchor="y2"),
        "yaxis": {"domain": [0.34, 1.0], "title": {"text": "equity"}},
        "yaxis2": {"domain": [0.0, 0.28], "title": {"text": "underwater %"}},
    }
    return {"data": data, "layout": layout}


def _marker_trace(
    name: str,
    x: np.ndarray,
    y: np.ndarray,
    text: list[str],
    symbol: str,
    color: str,
    size: int = 9,
) -> dict[str, Any]:
    return {
        "type": "scatter",
        "mode": "markers",
        "name": name,
        "x": _ms(x),
        "y": typed(y),
        "text": text,
        "hovertemplate": "%{text}<br>%{y}<extra>" + name + "</extra>",
        "marker": {"symbol": symbol, "color": color, "size": size, "line": {"width": 1}},
    }


def _segments(
    start: np.ndarray, stop: np.ndarray, level: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """x and y of horizontal segments separated by NaN gaps."""
    n = start.size
    x = np.empty(3 * n)
    y = np.empty(3 * n)
    x[0::3] = start // _NS_PER_MS
    x[1::3] = stop // _NS_PER_MS
    x[2::3] = np.nan
    y[0::3] = level
    y[1::3] = level
    y[2::3] = np.nan
    return x, y


def price_figure(
    symbol: str,
    candles: Candles,
    trades: TradeColumns,
    *,
    end_ns: int,
    title: str,
    height: int = 520,
    indicators: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> dict[str, Any]:
    """Candlesticks with entry markers (long up-triangles, short down-triangles), exit markers
    per exit reason, stop-loss / take-profit segments while each trade was open, a line from
    each entry to its exit (green for a gain, red for a loss, the trade's P&L on hover), a
    volume panel below (when the candles have volume), the strategy's ``indicators`` as lines
    (sampled at each candle's last bar, whose close is the candle's) and a linear/log
    price-scale toggle.

    ``trades`` must already be restricted to ``symbol`` and to what the chart should show;
    open trades' segments run to ``end_ns``.
    """
    data: list[dict[str, Any]] = [
        {
            "type": "candlestick",
            "name": symbol,
            "x": _ms(candles.ts),
            "open": typed(candles.open),
            "high": typed(candles.high),
            "low": typed(candles.low),
            "close": typed(candles.close),
            "increasing": {"line": {"color": "#26a69a", "width": 1}},
            "decreasing": {"line": {"color": "#ef5350", "width": 1}},
        }
    ]
    palette = ("#1f77b4", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
    for k, (name, (its, values)) in enumerate((indicators or {}).items()):
        # the value at the candle's close: of its last bar (a merged candle holds several)
        at = np.searchsorted(its, candles.close_bar_ts, side="right") - 1
        ok = at >= 0
        y = np.full(len(candles), np.nan)
        y[ok] = values[at[ok]]
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": name,
                "x": _ms(candles.ts),
                "y": typed(y),
                "line": {"width": 1.3, "color": palette[k % len(palette)]},
                "hovertemplate": f"{name} %{{y:,.6g}}<extra></extra>",
            }
        )
    labels = [
        f"{i} · {'long' if d > 0 else 'short'} {q:.6g}"
        for i, d, q in zip(trades.ids, trades.direction, trades.quantity, strict=True)
    ]
    for side, symbol_name, color, name in (
        (1, "triangle-up", "#2ca02c", "long entry"),
        (-1, "triangle-down", "#d62728", "short entry"),
    ):
        sel = np.flatnonzero(trades.direction == side)
        if sel.size:
            data.append(
                _marker_trace(
                    name,
                    trades.entry_ts[sel],
                    trades.entry_price[sel],
                    [labels[i] for i in sel],
                    symbol_name,
                    color,
                    11,
                )
            )
    reasons = trades.exit_reasons
    for reason in sorted({str(r) for r in reasons[trades.closed]}, key=_exit_order):
        sel = np.flatnonzero(trades.closed & (reasons == reason))
        marker, color, name = EXIT_STYLES.get(reason, _OTHER_EXIT)
        data.append(
            _marker_trace(
                name.format(reason=reason),
                trades.exit_ts[sel],
                trades.exit_price[sel],
                [f"{labels[i]} · pnl {trades.pnl[i]:,.2f}" for i in sel],
                marker,
                color,
            )
        )
    for won, color, name in (
        (True, "#2ca02c", "winning trade"),
        (False, "#d62728", "losing trade"),
    ):
        sel = np.flatnonzero(trades.closed & ((trades.pnl > 0) == won))
        if sel.size:
            n = sel.size
            x = np.full(3 * n, np.nan)
            y = np.full(3 * n, np.nan)
            x[0::3] = trades.entry_ts[sel] // _NS_PER_MS
            x[1::3] = trades.exit_ts[sel] // _NS_PER_MS
            y[0::3] = trades.entry_price[sel]
            y[1::3] = trades.exit_price[sel]
            text: list[str | None] = []
            pnl, pnl_pct = trades.pnl, trades.pnl_pct  # the property computes every trade's
            for i in sel:
                tip = f"{labels[i]} · pnl {pnl[i]:,.2f} ({pnl_pct[i]:+.2%})"
                text += [tip, tip, None]
            data.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "name": name,
                    "x": typed(x),
                    "y": typed(y),
                    "text": text,
                    "hoverinfo": "text",
                    "connectgaps": False,
                    "line": {"width": 1.2, "color": color},
                    "opacity": 0.7,
                }
            )
    stop = np.where(trades.closed, trades.exit_ts, end_ns)
    for level, name, color in (
        (trades.stop_loss, "stop loss", "#d62728"),
        (trades.take_profit, "take profit", "#2ca02c"),
    ):
        sel = np.flatnonzero(np.isfinite(level))
        if sel.size:
            x, y = _segments(trades.entry_ts[sel], stop[sel], level[sel])
            data.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "name": name,
                    "x": typed(x),
                    "y": typed(y),
                    "connectgaps": False,
                    "hoverinfo": "skip",
                    "line": {"width": 1, "color": color, "dash": "dash"},
                }
            )
    layout: dict[str, Any] = {
        "title": {"text": title},
        "height": height,
        "margin": {"l": 60, "r": 20, "t": 50, "b": 40},
        "legend": {"orientation": "h", "y": -0.12},
        "xaxis": _date_axis(rangeslider={"visible": False}),
        "yaxis": {"title": {"text": "price"}, "fixedrange": False},
        "updatemenus": [
            {
                "type": "buttons",
                "direction": "left",
                "x": 0.0,
                "y": 1.08,
                "xanchor": "left",
                "showactive": True,
                "buttons": [
                    {"label": "linear", "method": "relayout", "args": [{"yaxis.type": "linear"}]},
                    {"label": "log", "method": "relayout", "args": [{"yaxis.type": "log"}]},
                ],
            }
        ],
    }
    if candles.volume is not None and len(candles):
        data.append(
            {
                "type": "bar",
                "name": "volume",
                "x": _ms(candles.ts),
                "y": typed(candles.volume),
                "yaxis": "y2",
                "marker": {"color": "rgba(120,120,160,0.45)"},
                "hovertemplate": "volume %{y:,.4g}<extra></extra>",
            }
        )
        layout["yaxis"]["domain"] = [0.24, 1.0]
        layout["yaxis2"] = {
            "domain": [0.0, 0.18],
            "anchor": "x",
            "title": {"text": "volume"},
            "fixedrange": True,
        }
    return {"data": data, "layout": layout}


def _exit_order(reason: str) -> int:
    order = list(EXIT_STYLES)
    return order.index(reason) if reason in order else len(order)


def monthly_heatmap_figure(months: np.ndarray, returns: np.ndarray) -> dict[str, Any]:
    """Heatmap of monthly returns in percent: one row per year, one column per month."""
    years = months.astype("datetime64[Y]").astype(np.int64) + 1970
    month_no = months.astype(np.int64) % 12
    first_year = int(years.min())
    n_years = int(years.max()) - first_year + 1
    z = np.full((n_years, 12), np.nan)
    z[years - first_year, month_no] = np.asarray(returns) * 100.0
    text = [["" if math.isnan(v) else f"{v:+.1f}%" for v in row] for row in z]
    names = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    peak = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 1.0
    data = [
        {
            "type": "heatmap",
            "name": "monthly return %",
            "z": [[None if math.isnan(v) else round(float(v), 4) for v in row] for row in z],
            "x": names,
            "y": [str(first_year + k) for k in range(n_years)],
            "text": text,
            "texttemplate": "%{text}",
            "hovertemplate": "%{y} %{x}: %{text}<extra></extra>",
            "colorscale": [[0.0, "#c0392b"], [0.5, "#f7f7f7"], [1.0, "#1e8449"]],
            "zmid": 0,
            "zmin": -peak,
            "zmax": peak,
            "colorbar": {"title": {"text": "%"}},
        }
    ]
    layout = {
        "title": {"text": "Monthly returns (%)"},
        "height": max(220, 60 + 32 * n_years),
        "margin": {"l": 60, "r": 20, "t": 50, "b": 30},
        "yaxis": {"autorange": "reversed", "type": "category"},
    }
    return {"data": data, "layout": layout}


def monte_carlo_figure(
    drawdowns: np.ndarray, finals: np.ndarray, initial_equity: float, title: str
) -> dict[str, Any]:
    """Histograms of the Monte Carlo paths' max drawdown (%) and final equity.

    Compounded final equity is heavily skewed, so it is shown as log10 of the multiple of the
    starting equity (0 = break-even, 1 = ten times, -1 = a tenth).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        multiple = np.log10(np.asarray(finals) / initial_equity)
    multiple = multiple[np.isfinite(multiple)]
    data = [
        {
            "type": "histogram",
            "name": "max drawdown %",
            "x": typed(np.asarray(drawdowns) * 100.0),
            "marker": {"color": "#d62728"},
            "xaxis": "x",
            "yaxis": "y",
        },
        {
            "type": "histogram",
            "name": "final equity (log10 multiple)",
            "x": typed(multiple),
            "marker": {"color": "#1f77b4"},
            "xaxis": "x2",
            "yaxis": "y2",
        },
    ]
    layout = {
        "title": {"text": title},
        "height": 320,
        "showlegend": False,
        "margin": {"l": 60, "r": 20, "t": 50, "b": 40},
        "xaxis": {"domain": [0.0, 0.47], "title": {"text": "max drawdown %"}},
        "xaxis2": {"domain": [0.53, 1.0], "title": {"text": "final equity: log10(final / start)"}},
        "yaxis": {"anchor": "x", "title": {"text": "paths"}},
        "yaxis2": {"anchor": "x2"},
    }
    return {"data": data, "layout": layout}


def overlay_figure(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]], max_points: int = 5000
) -> dict[str, Any]:
    """Equity curves of several runs, each normalized to 100 at its start, and their drawdowns.

    ``curves`` maps a label to ``(ts, equity_with_initial_first)``.
    """
    data: list[dict[str, Any]] = []
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]
    for k, (label, (ts, equity)) in enumerate(curves.items()):
        eq = np.asarray(equity, dtype=np.float64)
        norm = eq / eq[0] * 100.0 if eq.size and eq[0] else eq
        peaks = np.maximum.accumulate(norm)
        with np.errstate(divide="ignore", invalid="ignore"):
            dd = np.where(peaks > 0, norm / peaks - 1.0, 0.0) * 100.0
        idx = reduce_line([norm, dd], max_points)
        color = palette[k % len(palette)]
        x = _ms(np.asarray(ts)[idx])
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": label,
                "x": x,
                "y": typed(norm[idx]),
                "line": {"width": 1.4, "color": color},
                "legendgroup": label,
                "xaxis": "x",
                "yaxis": "y",
            }
        )
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": f"{label} drawdown %",
                "x": x,
                "y": typed(dd[idx]),
                "line": {"width": 1, "color": color},
                "legendgroup": label,
                "showlegend": False,
                "xaxis": "x2",
                "yaxis": "y2",
            }
        )
    layout = {
        "title": {"text": "Equity (start = 100) and drawdown"},
        "height": 600,
        "hovermode": "x unified",
        "margin": {"l": 60, "r": 20, "t": 50, "b": 40},
        "legend": {"orientation": "h", "y": 1.08},
        "xaxis": _date_axis(anchor="y", matches="x2", showticklabels=False),
        "xaxis2": _date_axis(anchor="y2"),
        "yaxis": {"domain": [0.34, 1.0], "title": {"text": "equity (start = 100)"}},
        "yaxis2": {"domain": [0.0, 0.28], "title": {"text": "drawdown %"}},
    }
    return {"data": data, "layout": layout}
