"""The dashboard page: one static HTML page polling the API, usable offline.

``GET /dashboard`` serves the page; ``GET /static/plotly.min.js`` serves Plotly from the
installed ``plotly`` package (no CDN). The page polls ``/status``, ``/equity``, ``/orders``,
``/trades``, ``/risk``, ``/strategies``, ``/signals/recent`` and ``/signals/status`` every two
seconds and shows the status, the equity curve, positions, open orders, recent trades, recent
signals with the risk gate's decision, strategies and signal weights, and the risk state and
events. When the server requires the key for reads, the page asks for
it once and keeps it in the browser's local storage.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse

__all__ = ["dashboard_router"]

dashboard_router = APIRouter(tags=["dashboard"])


@cache
def _plotly_js() -> Path:
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


@dashboard_router.get("/dashboard", response_class=HTMLResponse)
def dashboard() -> HTMLResponse:
    """The live dashboard (HTML)."""
    return HTMLResponse(_PAGE)


@dashboard_router.get("/static/plotly.min.js", response_class=FileResponse)
def plotly_js() -> FileResponse:
    """Plotly's JavaScript bundle from the installed package."""
    return FileResponse(_plotly_js(), media_type="application/javascript")


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>tradeloop dashboard</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<script src="/static/plotly.min.js"></script>
<style>
 body{font-family:system-ui,sans-serif;margin:0;background:#f5f6f8;color:#222}
 header{background:#1f2937;color:#fff;padding:10px 18px;display:flex;gap:24px;align-items:center}
 header h1{font-size:18px;margin:0} .pill{padding:2px 10px;border-radius:10px;font-size:13px}
 .ok{background:#16a34a}.degraded{background:#d97706}.down{background:#dc2626}
 main{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:14px;padding:14px}
 section{background:#fff;border-radius:8px;padding:10px 14px;box-shadow:0 1px 2px #0002}
 h2{font-size:15px;margin:4px 0 8px} table{border-collapse:collapse;width:100%;font-size:13px}
 th,td{text-align:left;padding:3px 6px;border-bottom:1px solid #eee} .num{text-align:right}
 .kv{display:grid;grid-template-columns:auto 1fr;gap:2px 14px;font-size:14px}
 #updated{font-size:12px;opacity:.8} .error{color:#dc2626}
</style></head>
<body>
<header><h1>tradeloop</h1><span id="run"></span>
<span id="health" class="pill">…</span><span id="updated"></span>
<span id="error" class="error"></span></header>
<main>
<section><h2>Status</h2><div class="kv">
 <span>equity</span><b id="equity">–</b>
 <span>cash</span><span id="cash">–</span>
 <span>open positions</span><span id="npos">–</span>
 <span>steps</span><span id="steps">–</span>
 <span>risk state</span><span id="risk-state">–</span>
 <span>paused</span><span id="paused">–</span>
 <span>feed</span><span id="feed">–</span>
 <span>last bar</span><span id="last-bar">–</span>
</div></section>
<section><h2>Equity</h2><div id="equity-chart" class="chart" style="height:260px"></div></section>
<section><h2>Positions</h2><table id="positions"><thead><tr><th>symbol</th><th>side</th>
<th class="num">quantity</th><th class="num">entry</th><th class="num">mark</th>
<th class="num">stop</th><th class="num">target</th></tr></thead><tbody></tbody></table></section>
<section><h2>Open orders</h2><table id="orders"><thead><tr><th>id</th><th>symbol</th>
<th>side</th><th class="num">quantity</th><th>tag</th><th>created</th></tr></thead>
<tbody></tbody></table></section>
<section><h2>Recent trades</h2><table id="trades"><thead><tr><th>symbol</th><th>side</th>
<th>exit</th><th class="num">entry</th><th class="num">exit price</th><th class="num">P&amp;L</th>
<th>reason</th></tr></thead><tbody></tbody></table></section>
<section><h2>Strategies and signal weights</h2><table id="strategies"><thead><tr>
<th>strategy</th><th class="num">weight</th><th>params</th></tr></thead><tbody></tbody></table>
<table id="weights"><thead><tr><th>component</th><th class="num">weight</th></tr></thead>
<tbody></tbody></table></section>
<section><h2>Recent signals</h2><table id="signals"><thead><tr><th>time</th>
<th>strategy</th><th>symbol</th><th>action</th><th class="num">confidence</th>
<th>decision</th></tr></thead><tbody></tbody></table></section>
<section><h2>Risk</h2><div class="kv"><span>accepted</span><span id="risk-accepted">–</span>
<span>rejected</span><span id="risk-rejected">–</span></div>
<table id="risk-events"><thead><tr><th>time</th><th>cause</th><th>from</th><th>to</th>
<th>detail</th></tr></thead><tbody></tbody></table></section>
</main>
<script>
"use strict";
let KEY = localStorage.getItem("tradeloop-api-key") || "";
async function get(path) {
  const headers = KEY ? {"X-API-Key": KEY} : {};
  const r = await fetch(path, {headers});
  if (r.status === 401 || r.status === 403) {
    KEY = prompt("API key") || ""; localStorage.setItem("tradeloop-api-key", KEY);
    throw new Error("key needed");
  }
  if (!r.ok && path !== "/health") throw new Error(path + ": " + r.status);
  return r.json();
}
const fmt = (v, d = 2) => (v === null || v === undefined) ? "–" :
  (typeof v === "number" ? v.toLocaleString("en-US", {minimumFractionDigits: d,
   maximumFractionDigits: d}) : String(v));
function rows(id, items, cells) {
  const body = document.querySelector("#" + id + " tbody");
  body.replaceChildren(...items.map(item => {
    const tr = document.createElement("tr");
    for (const [value, num] of cells(item)) {
      const td = document.createElement("td"); td.textContent = value;
      if (num) td.className = "num"; tr.appendChild(td);
    }
    return tr;
  }));
}
const set = (id, v) => { document.getElementById(id).textContent = v; };
async function refresh() {
  try {
    const [health, st, eq, orders, trades, risk, strat, sigs] = await Promise.all([
      get("/health"), get("/status"), get("/equity"), get("/orders"), get("/trades?limit=20"),
      get("/risk"), get("/strategies"), get("/signals/recent?limit=20")]);
    rows("signals", sigs, s => [[s.time], [s.strategy], [s.symbol], [s.action],
      [fmt(s.confidence, 3), 1], [s.decision || "–"]]);
    const h = document.getElementById("health");
    h.textContent = health.status; h.className = "pill " + health.status;
    h.title = Object.entries(health.components).map(([k, c]) => k + ": " + c.detail).join("\\n");
    set("run", st.run_id || "");
    set("equity", fmt(st.equity)); set("cash", fmt(st.cash));
    set("npos", String((st.positions || []).length)); set("steps", String(st.steps ?? "–"));
    set("risk-state", st.risk_state || "–"); set("paused", st.paused ? "yes" : "no");
    set("feed", st.feed ? st.feed.feed_state : "–"); set("last-bar", st.last_bar_time || "–");
    document.body.dataset.equity = String(st.equity);
    document.body.dataset.positions = String((st.positions || []).length);
    rows("positions", st.positions || [], p => [[p.symbol], [p.side], [fmt(p.quantity, 6), 1],
      [fmt(p.entry_price), 1], [fmt(p.mark), 1], [fmt(p.stop_loss), 1], [fmt(p.take_profit), 1]]);
    rows("orders", orders.open, o => [[o.id], [o.symbol], [o.side], [fmt(o.quantity, 6), 1],
      [o.tag], [o.created]]);
    rows("trades", trades, t => [[t.symbol], [t.side], [t.exit_time], [fmt(t.entry_price), 1],
      [fmt(t.exit_price), 1], [fmt(t.pnl), 1], [t.exit_reason]]);
    rows("strategies", strat.running, s => [[s.name], [fmt(s.weight, 3), 1],
      [JSON.stringify(s.params)]]);
    rows("risk-events", risk.events.slice().reverse(), e => [[e.time], [e.cause], [e.from],
      [e.to], [e.detail]]);
    set("risk-accepted", String(risk.accepted));
    set("risk-rejected", Object.entries(risk.rejected).map(([k, v]) => k + ": " + v).join(", ")
      || "0");
    try {
      const sig = await get("/signals/status");
      const w = (sig.weights && sig.weights.values) || {};
      rows("weights", Object.entries(w), ([k, v]) => [[k], [fmt(v, 4), 1]]);
    } catch (e) { /* the signal loop may be disabled */ }
    Plotly.react("equity-chart", [{x: eq.points.map(p => p.ts), y: eq.points.map(p => p.equity),
      type: "scatter", mode: "lines", name: "equity"}],
      {margin: {l: 60, r: 10, t: 10, b: 40}, yaxis: {title: "equity"}},
      {displayModeBar: false, responsive: true});
    set("updated", "updated " + new Date().toISOString().slice(11, 19) + " UTC");
    set("error", ""); document.body.dataset.ready = "1";
  } catch (e) { set("error", String(e.message || e)); }
}
refresh(); setInterval(refresh, 2000);
</script></body></html>
"""
