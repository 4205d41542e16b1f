"""A self-contained HTML report of a run (Plotly; works offline).

One file holds everything: plotly.js is inlined once, every chart's data is embedded, nothing
is fetched. Sections: verdict, headline metrics, equity with drawdown shading and a buy-and-hold
benchmark, underwater chart, statistical validation with the Monte Carlo distributions, bias
findings, a candlestick chart per symbol with entries, exits (by exit reason) and stop-loss /
take-profit levels, monthly returns, per-symbol results, the trades, parameters and data
provenance; with a regime model, the price shaded by regime and the performance by regime.

Large runs stay light (see :mod:`tradeloop.analysis._charts`): the equity chart keeps each
bucket's extremes (at most ``max_points`` points), candles are merged to at most
``max_candles`` with a full-resolution chart of the last ``window_candles`` bars, the
overview marks the most recent ``max_markers`` trades per symbol, and the tables show the first
``max_trade_rows`` trades and ``max_findings`` bias findings (``trades.csv`` and
``metrics.json`` hold all of them). Each chart's ``<div>`` carries ``data-traces``, the number
of traces it must render.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from tradeloop.analysis import _charts as charts
from tradeloop.analysis.metrics import drawdown_curve, monthly_returns
from tradeloop.analysis.regimes import RegimeSeries, regime_figure, regime_performance
from tradeloop.analysis.report_assets import plotly_script
from tradeloop.analysis.run_analysis import RunAnalysis, analyze_run, metrics_dict
from tradeloop.analysis.slippage import SlippageView
from tradeloop.analysis.trades import TradeColumns, trade_columns
from tradeloop.core.bar import BarArrays
from tradeloop.core.position import Trade
from tradeloop.core.time import to_iso

__all__ = ["ReportLimits", "buy_and_hold", "write_compare_report", "write_report"]

#: Metric keys shown as percentages.
PERCENT_KEYS = frozenset(
    {
        "total_return",
        "cagr",
        "volatility",
        "max_drawdown",
        "win_rate",
        "exposure",
        "avg_trade_return",
        "median_trade_return",
        "avg_return",
        "ret",
        "benchmark_return",
    }
)

_METRIC_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "Returns",
        ("initial_equity", "final_equity", "total_return", "cagr", "benchmark_return", "fees_paid"),
    ),
    (
        "Risk",
        (
            "volatility",
            "sharpe",
            "sortino",
            "calmar",
            "max_drawdown",
            "max_drawdown_start",
            "max_drawdown_trough",
            "max_drawdown_recovery",
            "max_drawdown_duration_days",
        ),
    ),
    (
        "Trades",
        (
            "trade_count",
            "win_rate",
            "profit_factor",
            "expectancy",
            "payoff_ratio",
            "avg_trade_pnl",
            "median_trade_pnl",
            "avg_trade_return",
            "median_trade_return",
            "longest_win_streak",
            "longest_loss_streak",
            "avg_holding_hours",
            "exposure",
            "turnover",
        ),
    ),
)


@dataclass(frozen=True, slots=True)
class ReportLimits:
    """Caps that keep a report of a long run small and quick to open."""

    max_points: int = 6000
    max_candles: int = 5000
    window_candles: int = 1500
    max_markers: int = 2000
    max_trade_rows: int = 500
    max_findings: int = 300


# --------------------------------------------------------------------------- formatting


def fmt_value(key: str, value: Any) -> str:
    """Format a metric for people: percentages, ``∞`` for infinities, ``–`` for NaN/None.

    >>> fmt_value("win_rate", 0.5), fmt_value("profit_factor", float("inf"))
    ('50.00%', '∞')
    """
    if type(value) is float:  # the common case first: one type check
        return _fmt_float(key, value)
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float | np.floating):
        return _fmt_float(key, float(value))
    return str(value)


def _fmt_float(key: str, v: float) -> str:
    """:func:`fmt_value` of a float."""
    if not math.isfinite(v):
        if math.isnan(v):
            return "–"
        return "∞" if v > 0 else "-∞"
    if key in PERCENT_KEYS:
        return f"{v * 100:,.2f}%"
    return f"{v:,.4g}" if abs(v) < 1e-3 and v else f"{v:,.4f}".rstrip("0").rstrip(".")


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _table(
    rows: Sequence[Sequence[Any]],
    header: Sequence[str],
    *,
    cls: str = "",
    keys: bool = False,
    formats: Sequence[str] | None = None,
) -> str:
    """An HTML table of formatted values.

    With ``keys`` the first cell of each row names the metric that formats the row; otherwise
    ``formats`` (default: the header) names the metric that formats each column.
    """
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    column_keys = list(formats or header)
    body = []
    for row in rows:
        row_keys = [str(row[0])] * len(row) if keys else column_keys
        # a float's text (digits, separators, signs, %, ∞, –) needs no escaping
        cells = "".join(
            [
                f"<td>{_fmt_float(k, v) if type(v) is float else _esc(fmt_value(k, v))}</td>"
                for k, v in zip(row_keys, row, strict=False)
            ]
        )
        body.append(f"<tr>{cells}</tr>")
    return (
        f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
    )


class _Charts:
    """Collects chart divs and the script that draws them."""

    def __init__(self) -> None:
        self.count = 0

    def div(self, name: str, figure: Mapping[str, Any]) -> str:
        self.count += 1
        chart_id = f"chart-{name}"
        payload = json.dumps(
            {"data": figure["data"], "layout": figure["layout"]},
            separators=(",", ":"),
            allow_nan=False,
            default=_json_default,
        ).replace("</", "<\\/")
        return (
            f'<div class="chart" id="{chart_id}" data-traces="{len(figure["data"])}"></div>\n'
            f'<script type="application/json" id="{chart_id}-spec">{payload}</script>\n'
        )


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot serialize {type(value).__name__}")


_DRAW_SCRIPT = """
<script>
(function () {
  function draw() {
    var config = {responsive: true, displaylogo: false};
    document.querySelectorAll("div.chart").forEach(function (div) {
      var spec = JSON.parse(document.getElementById(div.id + "-spec").textContent);
      Plotly.newPlot(div, spec.data, spec.layout, config);
    });
  }
  if (window.Plotly) { draw(); } else { window.tradeloopDraw = draw; }
})();
</script>
"""


_STYLE = """
body { font-family: system-ui, -apple-system, Segoe UI, sans-serif; margin: 24px auto;
       max-width: 1400px; padding: 0 16px; color: #222; }
h1 { margin-bottom: 4px; } h2 { margin-top: 32px; border-bottom: 1px solid #ddd; }
.sub { color: #666; margin-top: 0; }
nav a { margin-right: 12px; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 16px 16px 0; }
td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th { background: #f4f4f4; } td:first-child { text-align: left; }
.grid { display: flex; flex-wrap: wrap; align-items: flex-start; }
.verdict { padding: 10px 14px; border-radius: 6px; font-weight: 600; margin: 12px 0; }
.pass { background: #e6f4ea; color: #1e6b34; } .fail { background: #fdecea; color: #a11d1d; }
.ok { color: #1e6b34; font-weight: 600; } .no { color: #a11d1d; font-weight: 600; }
.note { color: #666; font-size: 13px; }
.chart { width: 100%; min-height: 200px; }
.scroll { display: inline-block; max-width: 100%; max-height: 480px; overflow: auto; }
code { font-size: 12px; }
"""


# --------------------------------------------------------------------------- benchmark


def buy_and_hold(
    ts: np.ndarray, candles: Mapping[str, charts.Candles], initial_equity: float
) -> np.ndarray | None:
    """Equity at times ``ts`` of buying every symbol with an equal share at its first close
    and holding it.

    ``candles`` are the symbols' candles on the run's steps (:func:`_charts.grid_candles`);
    each share sits in cash until its symbol's first candle. Returns None without candles.
    """
    ts = np.asarray(ts, dtype=np.int64)
    legs = []
    for c in candles.values():
        if not len(c):
            continue
        at = np.searchsorted(c.ts, ts, side="right") - 1
        close = np.where(at >= 0, c.close[np.maximum(at, 0)], c.close[0])
        legs.append(close / c.close[0])
    if not legs:
        return None
    return np.asarray(initial_equity * np.mean(legs, axis=0), dtype=np.float64)


# --------------------------------------------------------------------------- sections


def _verdict_html(analysis: RunAnalysis) -> str:
    verdict = analysis.validation.verdict
    cls = "pass" if verdict.passed else "fail"
    rows = [
        (
            rule.description,
            fmt_value(rule.name, rule.value),
            '<span class="ok">pass</span>' if rule.passed else '<span class="no">fail</span>',
        )
        for rule in verdict.rules
    ]
    body = "".join(f"<tr><td>{_esc(a)}</td><td>{_esc(b)}</td><td>{c}</td></tr>" for a, b, c in rows)
    return (
        f'<div class="verdict {cls}">Statistical verdict: {_esc(verdict.summary)}</div>'
        f'<table class="rules"><thead><tr><th>rule</th><th>value</th><th>result</th></tr>'
        f"</thead><tbody>{body}</tbody></table>"
    )


def _metrics_html(metrics: Mapping[str, Any]) -> str:
    parts = []
    for title, keys in _METRIC_GROUPS:
        rows = [(k, metrics[k]) for k in keys if k in metrics]
        parts.append(f"<div><h3>{title}</h3>{_table(rows, ('metric', 'value'), keys=True)}</div>")
    return f'<div class="grid">{"".join(parts)}</div>'


def _validation_html(analysis: RunAnalysis) -> str:
    v = analysis.validation
    cfg = v.config
    t, ci, sig, mc = v.t_test, v.sharpe_ci, v.significance, v.monte_carlo
    stats_rows = [
        ("closed trades tested", t.n),
        ("mean trade return", fmt_value("avg_trade_return", t.mean)),
        ("t statistic", t.t_stat),
        ("p-value (one-sided, mean > 0)", t.p_value),
        (
            f"Sharpe {ci.confidence:.0%} interval (block bootstrap, {ci.samples} resamples, "
            f"blocks of {ci.block_length} bars)",
            f"{fmt_value('', ci.low)} … {fmt_value('', ci.high)}",
        ),
        ("probabilistic Sharpe ratio (P[true Sharpe > 0])", sig.psr),
        (f"deflated Sharpe ratio ({sig.n_trials} trial(s))", sig.dsr),
        (
            "per-bar Sharpe / skewness / kurtosis",
            f"{sig.sharpe:.4g} / {sig.skew:.3g} / {sig.kurtosis:.3g}",
        ),
        ("seed", cfg.seed),
    ]
    mc_rows = [
        ("max drawdown", *(fmt_value("max_drawdown", x) for x in mc.max_drawdown)),
        ("final equity", *(fmt_value("", x) for x in mc.final_equity)),
    ]
    how = (
        f"runs of {mc.block} consecutive trade(s) redrawn with replacement"
        if mc.method == "bootstrap"
        else "trade order reshuffled (final equity is order-independent)"
    )
    mc_note = (
        f"{mc.sims} paths over {mc.trades} closed trades ({how}); probability of ending below "
        f"the starting equity: {fmt_value('win_rate', mc.prob_loss)}."
    )
    return (
        f'<div class="grid"><div>{_table(stats_rows, ("test", "value"))}</div>'
        f"<div><h3>Monte Carlo</h3>"
        f"{_table(mc_rows, ('', '5th percentile', 'median', '95th percentile'))}"
        f'<p class="note">{_esc(mc_note)}</p></div></div>'
    )


def _bias_html(analysis: RunAnalysis, limit: int) -> str:
    report = analysis.biases
    counts = report.counts()
    summary_rows = [
        (kind, counts[kind] if report.checked.get(kind) else "not checked (no prices)")
        for kind in counts
    ]
    findings = report.findings
    rows = []
    for f in findings[:limit]:
        ids = list(f.trade_ids)
        shown = ", ".join(ids[:8]) + (f" … ({len(ids)} trades)" if len(ids) > 8 else "")
        rows.append((f.kind.value, to_iso(f.ts), shown, f.message))
    more = (
        f'<p class="note">First {limit} of {len(findings)} findings; all are in metrics.json.</p>'
        if len(findings) > limit
        else ""
    )
    table = (
        _table(rows, ("bias", "time", "trades", "finding"), cls="findings")
        if rows
        else '<p class="note">No behavioural bias found.</p>'
    )
    return (
        f'<div class="grid"><div>{_table(summary_rows, ("check", "findings"))}</div>'
        f'<div><div class="scroll">{table}</div>{more}</div></div>'
    )


def _trades_html(cols: TradeColumns, limit: int, slippage: SlippageView | None = None) -> str:
    n = min(limit, len(cols))

    def floats(column: np.ndarray) -> list[Any]:
        """The first ``n`` values as Python floats, None where not finite (no level)."""
        part = column[:n]
        return [
            v if ok else None
            for v, ok in zip(part.tolist(), np.isfinite(part).tolist(), strict=True)
        ]

    closed = cols.closed[:n].tolist()
    entry_iso = [to_iso(ns) for ns in cols.entry_ts[:n].tolist()]
    exit_iso = [
        to_iso(ns) if c else "open" for ns, c in zip(cols.exit_ts[:n].tolist(), closed, strict=True)
    ]
    exit_price = [
        v if c else None for v, c in zip(cols.exit_price[:n].tolist(), closed, strict=True)
    ]
    sides = ["long" if d > 0 else "short" for d in cols.direction[:n].tolist()]
    reasons = [r or "" for r in cols.exit_reasons[:n].tolist()]
    ids = cols.ids[:n].tolist()
    rows: list[tuple[Any, ...]] = list(
        zip(
            ids,
            cols.symbols[:n].tolist(),
            sides,
            entry_iso,
            cols.entry_price[:n].tolist(),
            exit_iso,
            exit_price,
            cols.quantity[:n].tolist(),
            floats(cols.stop_loss),
            floats(cols.take_profit),
            cols.pnl[:n].tolist(),
            cols.pnl_pct[:n].tolist(),
            reasons,
            strict=True,
        )
    )
    if slippage is not None:
        by_trade = slippage.by_trade
        rows = [(*row, *by_trade.get(row[0], (None, None))) for row in rows]
    header: tuple[str, ...] = (
        "id",
        "symbol",
        "side",
        "entry time",
        "entry price",
        "exit time",
        "exit price",
        "size",
        "stop loss",
        "take profit",
        "pnl",
        "return",
        "exit reason",
    )
    formats = [*header[:11], "avg_return", ""]
    if slippage is not None:
        header = (*header, "entry slippage (bps)", "exit slippage (bps)")
        formats += ["", ""]
    return _table(rows, header, cls="trades", formats=formats)


def _slippage_html(slippage: SlippageView | None) -> str:
    """Expected vs actual fill prices in total (a live run's fills); empty without them."""
    if slippage is None:
        return ""
    rows = [
        ("fills with an expected price", slippage.fills),
        ("mean slippage (bps, + adverse)", slippage.mean_bps),
        ("slippage cost (quote, + adverse)", slippage.total_cost),
    ]
    return '<h2 id="slippage">Slippage (expected vs actual fill price)</h2>\n' + _table(
        rows, ("what", "value"), cls="kv", formats=("", "")
    )


_ISO_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})(:\d{2}(?:\.\d+)?)?(?:Z|\+00:00)$")
_TIME_KEYS = frozenset({"start", "end", "trade_start", "created"})


def _readable(key: str, value: Any) -> str:
    """A setting's value for a table: times as ``2024-01-02 03:04 UTC``, lists joined."""
    if value is None:
        return "–"
    leaf = key.rsplit(".", 1)[-1]
    if leaf in _TIME_KEYS and isinstance(value, int) and value > 10**15:
        value = to_iso(value)
    if isinstance(value, str):
        match = _ISO_TIME.match(value)
        if match:
            seconds = match.group(3) or ""
            shown = "" if seconds in ("", ":00") else seconds.split(".")[0]
            return f"{match.group(1)} {match.group(2)}{shown} UTC"
        return value
    if isinstance(value, list | tuple):
        if all(not isinstance(v, dict | list | tuple) for v in value):
            return ", ".join(_readable(leaf, v) for v in value) or "–"
        return json.dumps(value, default=str)
    return str(value)


def _kv_rows(mapping: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Settings as ``(name, value)`` rows; nested tables flattened to dotted names
    (``risk.limits.max_position_pct``) so each setting gets its own row."""
    rows: list[tuple[str, str]] = []
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            rows += _kv_rows(value, f"{name}.")
        else:
            rows.append((name, _readable(name, value)))
    return rows


def _risk_html(run_info: Mapping[str, Any] | None, summary: Mapping[str, Any]) -> str:
    """Halts (when, cause, how long, lifted by what) and rejections by reason."""
    risk = dict((run_info or {}).get("risk") or {})
    reasons = dict(risk.get("rejections_by_reason") or summary.get("rejections_by_reason") or {})
    halts = list(risk.get("halts") or [])
    parts = []
    if risk.get("halted_at_end") and halts:
        last = halts[-1]
        parts.append(
            '<div class="verdict fail">Trading was halted from '
            f"{_esc(last.get('start'))} ({_esc(last.get('cause'))}: {_esc(last.get('detail'))}) "
            f"to the end of the run: {float(last.get('days') or 0):,.1f} days without new "
            "positions. Only a signed override lifts this halt, or set "
            "<code>kill_switch.resume_after</code> in the risk file.</div>"
        )
    if not risk and not reasons:
        return '<p class="note">No risk record for this run.</p>'
    state = risk.get("state_at_end", "")
    parts.append(
        f"<p>State at the end: <b>{_esc(state or 'active')}</b> · halts: {len(halts)} · "
        f"days halted: {float(risk.get('halted_days') or 0):,.1f}</p>"
    )
    if halts:
        rows = [
            (
                h.get("start", ""),
                h.get("end") or "end of run",
                f"{float(h.get('days') or 0):,.2f}",
                h.get("cause", ""),
                h.get("lifted_by") or "-",
                h.get("detail", ""),
            )
            for h in halts[:200]
        ]
        more = f" (first 200 of {len(halts)})" if len(halts) > 200 else ""
        parts.append(
            f'<h3>Halts{_esc(more)}</h3><div class="scroll">'
            + _table(
                rows,
                ("halted at", "until", "days", "cause", "lifted by", "detail"),
                formats=("", "", "", "", "", ""),
            )
            + "</div>"
        )
    if reasons:
        reason_rows = sorted(reasons.items(), key=lambda kv: -int(kv[1]))
        parts.append(
            "<h3>Rejected orders by reason</h3>"
            + _table(reason_rows, ("reason", "orders"), formats=("", ""))
        )
    return "".join(parts)


def _data_issues_html(run_info: Mapping[str, Any] | None) -> str:
    """The data-check findings a run was allowed to proceed with (--allow-data-issues)."""
    issues = list((run_info or {}).get("data_issues") or [])
    if not issues:
        return ""
    rows = [
        (
            i.get("source", ""),
            i.get("check", ""),
            i.get("count", ""),
            "; ".join(list(i.get("where") or [])[:5]),
        )
        for i in issues
    ]
    return (
        '<h2 id="data-issues">Data issues</h2>'
        '<div class="verdict fail">This run used data that fails the data check '
        "(--allow-data-issues). Its results may be wrong where the data is.</div>"
        + _table(rows, ("file", "check", "count", "first locations"), formats=("", "", "", ""))
    )


def _provenance_html(run_info: Mapping[str, Any] | None, summary: Mapping[str, Any]) -> str:
    info = dict(run_info or {})
    info.pop("risk", None)
    info.pop("data_issues", None)
    files = info.pop("data", None) or []
    params = info.pop("params", None) or summary.get("params") or {}
    config = info.pop("config", None) or summary.get("config") or {}
    run_rows = (
        _kv_rows(info)
        if info
        else _kv_rows(
            {k: v for k, v in summary.items() if k not in {"params", "config", "provenance"}}
        )
    )
    file_rows = [
        (
            f.get("path", ""),
            f.get("symbol", ""),
            f.get("timeframe", ""),
            f.get("rows", ""),
            f.get("sha256", ""),
        )
        for f in files
    ]
    parts = [
        f"<div><h3>Run</h3>{_table(run_rows, ('field', 'value'))}</div>",
        f"<div><h3>Parameters</h3>{_table(_kv_rows(params), ('parameter', 'value'))}</div>",
        f"<div><h3>Configuration</h3>{_table(_kv_rows(config), ('setting', 'value'))}</div>",
    ]
    if file_rows:
        parts.append(
            "<div><h3>Data files</h3>"
            f"{_table(file_rows, ('path', 'symbol', 'timeframe', 'rows', 'sha256'))}</div>"
        )
    return f'<div class="grid">{"".join(parts)}</div>'


def _price_sections(
    cols: TradeColumns,
    all_candles: Mapping[str, charts.Candles],
    end_ns: int,
    limits: ReportLimits,
    out: _Charts,
    indicators: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> list[str]:
    parts = []
    for k, (symbol, candles) in enumerate(all_candles.items()):
        if not len(candles):
            continue
        lines = indicators if k == 0 else None  # a strategy plots over its first symbol
        mine = cols.select(np.flatnonzero(cols.symbols == symbol))
        order = np.argsort(mine.entry_ts, kind="stable")
        mine = mine.select(order)
        shown = mine.select(slice(max(0, len(mine) - limits.max_markers), None))
        merged, per = charts.merge_candles(candles, limits.max_candles)
        title = f"{symbol}: price and trades"
        if per > 1:
            title += f" ({per} bars per candle)"
        if len(shown) < len(mine):
            title += f" · markers for the last {len(shown)} of {len(mine)} trades"
        parts.append(
            out.div(
                f"price-{k}",
                charts.price_figure(
                    symbol, merged, shown, end_ns=end_ns, title=title, indicators=lines
                ),
            )
        )
        if per > 1:
            recent = candles.tail(limits.window_candles)
            start = int(recent.ts[0])
            inside = np.flatnonzero(
                (mine.entry_ts >= start) | (mine.closed & (mine.exit_ts >= start)) | ~mine.closed
            )
            window = mine.select(inside[-limits.max_markers :])
            parts.append(
                out.div(
                    f"price-{k}-recent",
                    charts.price_figure(
                        symbol,
                        recent,
                        window,
                        end_ns=end_ns,
                        title=f"{symbol}: the last {len(recent)} bars at full resolution",
                        indicators=lines,
                    ),
                )
            )
    return parts


def write_report(
    path: str | Path,
    *,
    title: str,
    ts: np.ndarray,
    equity: np.ndarray,
    trades: Sequence[Trade],
    summary: Mapping[str, Any] | None = None,
    prices: Mapping[str, BarArrays] | None = None,
    analysis: RunAnalysis | None = None,
    bar_ns: int | None = None,
    initial_equity: float | None = None,
    run_info: Mapping[str, Any] | None = None,
    limits: ReportLimits | None = None,
    notes: Sequence[str] = (),
    regimes: RegimeSeries | None = None,
    indicators: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
    slippage: SlippageView | None = None,
    assets: Path | None = None,
) -> Path:
    """Write the HTML report of a run and return its path.

    Parameters
    ----------
    path
        File to write (replaced atomically).
    title
        Page heading.
    ts, equity
        Step open times (UTC ns) and equity at each step's close.
    trades
        The run's trades.
    summary
        The run's summary dict (shown when ``run_info`` is not given).
    prices
        Bars per symbol for the candlestick charts and the benchmark; None leaves both out.
    analysis
        Precomputed :class:`RunAnalysis`; computed here (default configurations) when None.
    bar_ns, initial_equity
        Step length and starting equity (inferred from ``ts`` and ``equity`` when None).
    run_info
        Run record fields (run id, parameters, config, data files, versions) for provenance.
    limits
        Size caps for long runs.
    notes
        Warnings shown at the top (e.g. a missing data file).
    regimes
        The regime the run acted on at each step (a run with a regime model): adds the price
        chart shaded by regime and the performance by regime.
    indicators
        Lines the strategy asked to plot (``{name: (times_ns, values)}``, see
        ``Strategy.plot``), drawn over the first symbol's price chart.
    slippage
        A live run's expected vs actual fill prices (:func:`~tradeloop.analysis.slippage.
        slippage_view`): a total under the metrics and per-trade entry/exit columns.
    assets
        Cache folder of the packed plotly.js (a run store's ``.report-assets``, see
        :mod:`tradeloop.analysis.report_assets`); None: packed in this process only.
    """
    limits = limits or ReportLimits()
    summary = dict(summary or {})
    ts = np.asarray(ts, dtype=np.int64)
    equity = np.asarray(equity, dtype=np.float64)
    if bar_ns is None:
        bar_ns = int(np.median(np.diff(ts))) if ts.size > 1 else 60_000_000_000
    if initial_equity is None:
        initial_equity = float(summary.get("initial_equity") or (equity[0] if equity.size else 0))
    if analysis is None:
        analysis = analyze_run(
            ts=ts,
            equity=equity,
            trades=trades,
            bar_ns=bar_ns,
            initial_equity=initial_equity,
            prices=prices,
        )
    cols = analysis.columns if len(analysis.columns) == len(trades) else trade_columns(trades)
    out = _Charts()
    metrics = metrics_dict(analysis.metrics)
    candles = {
        symbol: charts.grid_candles(bars, ts, bar_ns) for symbol, bars in (prices or {}).items()
    }
    peaks = np.maximum(np.maximum.accumulate(equity), initial_equity) if equity.size else equity
    drawdown = drawdown_curve(equity, initial_equity)
    idx = charts.reduce_line([equity, drawdown], limits.max_points)
    benchmark = buy_and_hold(ts[idx], candles, initial_equity) if candles else None
    if benchmark is not None and benchmark.size:  # idx always holds the last bar
        metrics["benchmark_return"] = float(benchmark[-1] / initial_equity - 1.0)
    equity_div = out.div(
        "equity",
        charts.equity_figure(
            ts[idx],
            equity[idx],
            peaks[idx],
            drawdown[idx],
            benchmark,
        ),
    )
    mc = analysis.validation.monte_carlo
    mc_div = (
        out.div(
            "montecarlo",
            charts.monte_carlo_figure(
                mc.drawdowns,
                mc.finals,
                initial_equity,
                f"Monte Carlo: {mc.sims} paths ({mc.method})",
            ),
        )
        if mc.sims
        else ""
    )
    end_ns = int(ts[-1]) + bar_ns if ts.size else 0
    price_divs = _price_sections(cols, candles, end_ns, limits, out, indicators)
    months, month_rets = monthly_returns(ts, equity, initial_equity)
    heatmap_div = (
        out.div("monthly", charts.monthly_heatmap_figure(months, month_rets)) if months.size else ""
    )
    month_rows = [(r.month, r.ret, r.trades, r.pnl, r.win_rate) for r in analysis.by_month]
    symbol_rows = [
        (
            r.symbol,
            r.trades,
            r.open_trades,
            r.win_rate,
            r.pnl,
            r.profit_factor,
            r.expectancy,
            r.avg_return,
            r.fees,
        )
        for r in analysis.by_symbol
    ]
    shown = (
        f" (first {limits.max_trade_rows} of {len(cols)}; all in trades.csv)"
        if len(cols) > limits.max_trade_rows
        else ""
    )
    notes_html = "".join(f'<div class="verdict fail">{_esc(n)}</div>' for n in notes)
    if not prices:
        notes_html += (
            '<p class="note">No price data: candlestick charts, the buy-and-hold benchmark and '
            "the FOMO check are left out.</p>"
        )
    generated = datetime.now(tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    subtitle = (
        f"{to_iso(int(ts[0]))} → {to_iso(int(ts[-1]))} · {len(ts):,} bars · "
        f"annualized with {analysis.metrics.annualization or 'the bar length'} · "
        f"generated {generated}"
        if ts.size
        else f"no bars · generated {generated}"
    )
    regime_html = _regime_html(regimes, ts, equity, trades, prices, initial_equity, out)
    doc = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{_esc(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{_STYLE}</style>
{plotly_script(assets)}
</head><body>
<h1>{_esc(title)}</h1>
<p class="sub">{_esc(subtitle)}</p>
<nav><a href="#metrics">Metrics</a><a href="#equity">Equity</a>
<a href="#validation">Validation</a><a href="#biases">Biases</a><a href="#risk">Risk</a>
<a href="#prices">Prices</a>
<a href="#monthly">Monthly</a><a href="#trades">Trades</a><a href="#provenance">Provenance</a></nav>
{notes_html}
{_verdict_html(analysis)}
<h2 id="metrics">Metrics</h2>
{_metrics_html(metrics)}
{_slippage_html(slippage)}
<h2 id="equity">Equity and drawdown</h2>
{equity_div}
<h2 id="validation">Statistical validation</h2>
{_validation_html(analysis)}
{mc_div}
<h2 id="biases">Behavioural bias checks</h2>
{_bias_html(analysis, limits.max_findings)}
<h2 id="risk">Risk</h2>
{_risk_html(run_info, summary)}
{_data_issues_html(run_info)}
<h2 id="prices">Prices and trades</h2>
{"".join(price_divs) or '<p class="note">No price data.</p>'}
{regime_html}
<h2 id="monthly">Monthly returns</h2>
{heatmap_div}
<div class="scroll">{
        _table(
            month_rows,
            ("month", "return", "trades closed", "pnl", "win rate"),
            formats=("month", "ret", "trades", "pnl", "win_rate"),
        )
    }</div>
<h2>Per symbol</h2>
{
        _table(
            symbol_rows,
            (
                "symbol",
                "trades",
                "open",
                "win rate",
                "pnl",
                "profit factor",
                "expectancy",
                "avg return",
                "fees",
            ),
            formats=("", "", "", "win_rate", "", "", "", "avg_return", ""),
        )
    }
<h2 id="trades">Trades{_esc(shown)}</h2>
<div class="scroll">{_trades_html(cols, limits.max_trade_rows, slippage)}</div>
<h2 id="provenance">Parameters and data provenance</h2>
{_provenance_html(run_info, summary)}
{_DRAW_SCRIPT}
</body></html>
"""
    return _write_atomic(Path(path), doc)


def _regime_html(
    regimes: RegimeSeries | None,
    ts: np.ndarray,
    equity: np.ndarray,
    trades: Sequence[Trade],
    prices: Mapping[str, BarArrays] | None,
    initial_equity: float,
    out: _Charts,
) -> str:
    """The regime section: shaded price chart and performance by regime ('' without one)."""
    if regimes is None or not len(regimes.labels):
        return ""
    bars = (prices or {}).get(regimes.symbol)
    close = np.full(len(regimes.labels), np.nan)
    if bars is not None and len(bars):
        at = np.searchsorted(bars.ts, regimes.ts, side="right") - 1
        close = np.where(at >= 0, bars.close[np.maximum(at, 0)], np.nan)
    rows = regime_performance(regimes.labels, ts, equity, close, trades, initial_equity)
    table = _table(
        [
            (
                r["regime"], r["bars"], r["share"], r["strategy_log_return"],
                r["market_log_return"], r["trades"], r["win_rate"], r["pnl"],
            )
            for r in rows
        ],
        (
            "regime", "bars", "share", "strategy log return", "market log return",
            "trades entered", "win rate", "pnl",
        ),
        formats=("", "", "exposure", "", "", "", "win_rate", ""),
    )  # fmt: skip
    chart = (
        out.div("regimes", regime_figure(regimes.ts, close, regimes.labels, regimes.symbol))
        if bars is not None
        else '<p class="note">No price data for the regime chart.</p>'
    )
    return (
        f'<h2 id="regimes">Market regimes ({_esc(regimes.model)}, on {_esc(regimes.symbol)})</h2>'
        f"{chart}<h3>Performance by regime</h3>{table}"
    )


def _write_atomic(out: Path, text: str) -> Path:
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    return out


def write_compare_report(
    path: str | Path,
    *,
    title: str,
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    rows: Sequence[Sequence[Any]],
    labels: Sequence[str],
) -> Path:
    """Write an HTML page overlaying several runs' equity curves, with a metrics table.

    ``curves`` maps a label to ``(ts, equity)`` with the starting equity first (its time is
    the first bar's); ``rows`` are ``(metric, value per run...)``.
    """
    out = _Charts()
    chart = out.div("overlay", charts.overlay_figure(curves))
    table = _table(rows, ("metric", *labels), keys=True)
    doc = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{_esc(title)}</title>
<style>{_STYLE}</style>
{plotly_script()}
</head><body>
<h1>{_esc(title)}</h1>
{chart}
<h2>Metrics</h2>
{table}
{_DRAW_SCRIPT}
</body></html>
"""
    return _write_atomic(Path(path), doc)
