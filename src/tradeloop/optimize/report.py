"""The HTML report of an optimisation (plotly): importance, a two-parameter heatmap, OOS equity.

One self-contained page: the study's summary (best parameters, deflated Sharpe, PBO, CPCV), a
bar chart of optuna's parameter importance, a heatmap of the first objective over the first two
searched parameters (the best value where other parameters vary), and the out-of-sample equity
of the walk-forward (or, without one, the Sharpe ratios of every trial against the first
parameter).
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from tradeloop.optimize.space import SearchSpace
    from tradeloop.optimize.study import StudyResult
    from tradeloop.optimize.walkforward import WalkForwardResult

__all__ = ["heatmap_matrix", "write_optimize_report"]


def heatmap_matrix(
    rows: list[dict[str, Any]], x: str, y: str, value: str, maximize: bool = True
) -> tuple[list[Any], list[Any], list[list[float | None]]]:
    """The best ``value`` for every (``x``, ``y``) pair of ``rows`` (None where no trial ran).

    >>> heatmap_matrix([{"a": 1, "b": 2, "v": 0.5}, {"a": 1, "b": 2, "v": 0.7}], "a", "b", "v")
    ([1], [2], [[0.7]])
    """
    xs = sorted({r[x] for r in rows}, key=_sort_key)
    ys = sorted({r[y] for r in rows}, key=_sort_key)
    grid: list[list[float | None]] = [[None] * len(xs) for _ in ys]
    for r in rows:
        v = r[value]
        if v is None or (isinstance(v, float) and not math.isfinite(v)):
            continue
        i, j = ys.index(r[y]), xs.index(r[x])
        cur = grid[i][j]
        if cur is None or (v > cur if maximize else v < cur):
            grid[i][j] = float(v)
    return xs, ys, grid


def _sort_key(v: Any) -> tuple[int, Any]:
    return (0, v) if isinstance(v, int | float) else (1, str(v))


def write_optimize_report(
    study: StudyResult,
    summary: dict[str, Any],
    path: Path,
    *,
    walk_forward: WalkForwardResult | None = None,
    space: SearchSpace | None = None,
) -> Path:
    """Write the report page to ``path`` and return it."""
    import plotly.graph_objects as go
    from plotly.io import to_html

    from tradeloop.engine.output import json_safe

    objective = study.objectives[0]
    names = space.names if space is not None else []
    records = [
        {**r.params, objective.metric: (r.metrics or {})[objective.metric]} for r in study.complete
    ]
    figures: list[str] = []
    if study.importance:
        imp = go.Figure(
            go.Bar(x=list(study.importance.values()), y=list(study.importance), orientation="h")
        )
        imp.update_layout(title="Parameter importance (fANOVA)", height=320)
        figures.append(to_html(imp, include_plotlyjs="cdn", full_html=False))
    if len(names) >= 2 and records:
        xs, ys, z = heatmap_matrix(
            records, names[0], names[1], objective.metric, objective.maximize
        )
        heat = go.Figure(
            go.Heatmap(x=[str(v) for v in xs], y=[str(v) for v in ys], z=z, colorscale="RdYlGn")
        )
        heat.update_layout(
            title=f"{objective.metric} over {names[0]} x {names[1]}",
            xaxis_title=names[0],
            yaxis_title=names[1],
            height=480,
        )
        figures.append(
            to_html(heat, include_plotlyjs="cdn" if not figures else False, full_html=False)
        )
    if walk_forward is not None:
        ts = walk_forward.ts.astype("datetime64[ns]")
        eq = go.Figure(go.Scatter(x=ts, y=walk_forward.equity, mode="lines", name="OOS equity"))
        starts = np.cumsum([0] + [f.oos_end - f.oos_start for f in walk_forward.folds[:-1]])
        for k in starts[1:]:
            eq.add_vline(x=ts[int(k)], line_dash="dot", line_color="grey")
        eq.update_layout(
            title=f"Walk-forward ({walk_forward.mode}) stitched out-of-sample equity", height=420
        )
        figures.append(
            to_html(eq, include_plotlyjs="cdn" if not figures else False, full_html=False)
        )
    elif records and names:
        scatter = go.Figure(
            go.Scatter(
                x=[r[names[0]] for r in records],
                y=[r[objective.metric] for r in records],
                mode="markers",
            )
        )
        scatter.update_layout(
            title=f"{objective.metric} of every trial by {names[0]} (in-sample; run with "
            "--walk-forward for out-of-sample equity)",
            height=380,
        )
        figures.append(
            to_html(scatter, include_plotlyjs="cdn" if not figures else False, full_html=False)
        )
    body = "\n".join(f"<section>{f}</section>" for f in figures)
    text = json.dumps(json_safe(summary), indent=2)
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>tradeloop optimize: {html.escape(study.name)}</title>
<style>body{{font-family:sans-serif;margin:2em}} pre{{background:#f4f4f4;padding:1em}}</style>
</head><body>
<h1>Optimisation {html.escape(study.name)}</h1>
<p>{len(study.rows)} trials ({study.method}, {html.escape(study.engine)} kernel).</p>
{body}
<h2>Summary</h2><pre>{html.escape(text)}</pre>
</body></html>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
