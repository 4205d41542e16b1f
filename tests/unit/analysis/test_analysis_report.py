"""The HTML report: charts and their traces, reduction of long runs, tables, edge cases."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest

from tradeloop.analysis import _charts as charts
from tradeloop.analysis.report import ReportLimits, buy_and_hold, fmt_value, write_report
from tradeloop.core.bar import BarArrays
from tradeloop.core.position import ExitReason, Trade

MINUTE = 60_000_000_000
HOUR = 60 * MINUTE


def hourly_bars(n: int, symbol: str = "X/USD", seed: int = 0) -> BarArrays:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.005, n)))
    open_ = np.concatenate(([100.0], close[:-1]))
    high = np.maximum(open_, close) * 1.002
    low = np.minimum(open_, close) * 0.998
    ts = np.arange(n, dtype=np.int64) * HOUR + 1_700_000_000 * 10**9 // HOUR * HOUR
    return BarArrays(symbol, "1h", ts, open_, high, low, close, np.ones(n))


def make_trade(
    k: int,
    bars: BarArrays,
    entry: int,
    exit_: int | None,
    direction: int,
    reason: ExitReason | None,
    *,
    stop: float | None = None,
    target: float | None = None,
) -> Trade:
    price = float(bars.open[entry])
    exit_price = float(bars.open[exit_]) if exit_ is not None else None
    pnl = direction * ((exit_price if exit_price is not None else price) - price) * 10
    return Trade(
        id=f"T{k}",
        symbol=bars.symbol,
        direction=direction,
        quantity=10.0,
        entry_ts=int(bars.ts[entry]),
        entry_price=price,
        exit_ts=int(bars.ts[exit_]) if exit_ is not None else None,
        exit_price=exit_price,
        entry_fee=0.1,
        exit_fee=0.1 if exit_ is not None else 0.0,
        pnl=pnl,
        exit_reason=reason,
        stop_loss=stop,
        take_profit=target,
    )


def every_kind_of_trade(bars: BarArrays) -> list[Trade]:
    """Longs and shorts, every exit reason, stops and targets, one trade still open."""
    return [
        make_trade(1, bars, 10, 50, 1, ExitReason.TAKE_PROFIT, stop=95.0, target=105.0),
        make_trade(2, bars, 60, 90, -1, ExitReason.STOP_LOSS, stop=110.0),
        make_trade(3, bars, 100, 180, 1, ExitReason.SIGNAL),
        make_trade(4, bars, 200, 260, 1, ExitReason.TRAILING),
        make_trade(5, bars, 300, 400, -1, ExitReason.SIGNAL, target=90.0),
        make_trade(6, bars, 450, 480, 1, ExitReason.END),
        make_trade(7, bars, 500, None, 1, None, stop=80.0),
    ]


def chart_specs(html: str) -> dict[str, dict]:  # type: ignore[type-arg]
    """Chart id -> (declared trace count, parsed figure) from a report."""
    out = {}
    for chart_id, traces in re.findall(
        r'<div class="chart" id="([^"]+)" data-traces="(\d+)"', html
    ):
        spec = re.search(
            rf'<script type="application/json" id="{chart_id}-spec">(.*?)</script>', html, re.S
        )
        assert spec is not None
        out[chart_id] = {"traces": int(traces), "figure": json.loads(spec.group(1))}
    return out


def decode(array: dict[str, str]) -> np.ndarray:
    return np.frombuffer(base64.b64decode(array["bdata"]), dtype="<" + array["dtype"])


@pytest.fixture
def small_report(tmp_path: Path) -> tuple[str, list[Trade]]:
    bars = hourly_bars(600)
    trades = every_kind_of_trade(bars)
    equity = 10_000.0 * bars.close / bars.close[0]
    path = write_report(
        tmp_path / "report.html",
        title="test run",
        ts=bars.ts,
        equity=equity,
        trades=trades,
        prices={bars.symbol: bars},
        bar_ns=HOUR,
        initial_equity=10_000.0,
    )
    return path.read_text(encoding="utf-8"), trades


def test_report_has_every_chart_with_expected_traces(small_report: tuple[str, list[Trade]]) -> None:
    # Arrange
    html, _ = small_report
    # Act
    specs = chart_specs(html)
    # Assert: equity (peak, equity, buy & hold, underwater), Monte Carlo (2 histograms),
    # price: candles + long/short entries + 5 exit reasons + winning/losing entry->exit lines
    # + stop and target segments + volume = 13, monthly heatmap; 600 bars need no
    # recent-window chart
    assert {k: v["traces"] for k, v in specs.items()} == {
        "chart-equity": 4,
        "chart-montecarlo": 2,
        "chart-price-0": 13,
        "chart-monthly": 1,
    }
    for spec in specs.values():
        assert len(spec["figure"]["data"]) == spec["traces"]


def test_report_price_chart_marks_entries_exits_and_levels(
    small_report: tuple[str, list[Trade]],
) -> None:
    # Arrange
    html, trades = small_report
    # Act
    data = chart_specs(html)["chart-price-0"]["figure"]["data"]
    by_name = {t["name"]: t for t in data}
    # Assert
    assert by_name["long entry"]["marker"]["symbol"] == "triangle-up"
    assert by_name["long entry"]["marker"]["color"] == "#2ca02c"
    assert by_name["short entry"]["marker"]["symbol"] == "triangle-down"
    assert by_name["short entry"]["marker"]["color"] == "#d62728"
    exits = {n: t["marker"]["symbol"] for n, t in by_name.items() if n.startswith("exit:")}
    assert len(set(exits.values())) == 5  # one marker shape per exit reason
    assert len(decode(by_name["long entry"]["x"])) == 5
    assert len(decode(by_name["exit: signal"]["x"])) == 2
    # stop segments: trades 1, 2 and the open trade 7 (to the end of data); NaN separated
    stop_y = decode(by_name["stop loss"]["y"])
    assert sorted(set(stop_y[np.isfinite(stop_y)].tolist())) == [80.0, 95.0, 110.0]
    assert len(stop_y) == 9
    assert sorted(set(decode(by_name["take profit"]["y"])[::3].tolist())) == [90.0, 105.0]
    # entry -> exit lines: one segment per closed trade, split by the sign of its P&L
    closed = [t for t in trades if t.is_closed]
    wins = [t for t in closed if t.pnl > 0]
    win_y = decode(by_name["winning trade"]["y"])
    loss_y = decode(by_name["losing trade"]["y"])
    assert len(win_y) == 3 * len(wins)
    assert len(win_y) + len(loss_y) == 3 * len(closed)
    assert win_y[0::3].tolist() == [t.entry_price for t in wins]
    assert win_y[1::3].tolist() == [t.exit_price for t in wins]
    assert "pnl" in by_name["winning trade"]["text"][0]
    # volume panel on its own axis, and the linear/log toggle
    assert by_name["volume"]["yaxis"] == "y2"
    layout = chart_specs(html)["chart-price-0"]["figure"]["layout"]
    labels = [b["label"] for b in layout["updatemenus"][0]["buttons"]]
    assert labels == ["linear", "log"]


def test_report_tables_show_verdict_biases_trades_and_provenance(
    small_report: tuple[str, list[Trade]],
) -> None:
    # Arrange
    html, _ = small_report
    # Act / Assert
    assert "Statistical verdict:" in html
    assert "Behavioural bias checks" in html
    assert "take_profit" in html
    assert ">T7<" in html
    assert "Monthly returns" in html
    assert "Parameters and data provenance" in html
    assert "annualized with 8,760 periods/year (365 days a year, bars every day)" in html
    assert '<h2 id="risk">Risk</h2>' in html
    assert html.count('<script type="text/javascript">') == 1  # plotly.js inlined once
    assert not re.search(r"<(script|link)[^>]+(src|href)=", html)  # nothing fetched


def test_report_without_prices_leaves_out_candles_and_benchmark(tmp_path: Path) -> None:
    # Arrange
    bars = hourly_bars(300)
    # Act
    path = write_report(
        tmp_path / "r.html",
        title="no prices",
        ts=bars.ts,
        equity=np.linspace(100.0, 120.0, 300),
        trades=every_kind_of_trade(hourly_bars(600))[:3],
        bar_ns=HOUR,
        initial_equity=100.0,
    )
    html = path.read_text(encoding="utf-8")
    specs = chart_specs(html)
    # Assert
    assert specs["chart-equity"]["traces"] == 3
    assert not any(k.startswith("chart-price") for k in specs)
    assert "No price data" in html


def test_report_without_trades_still_renders(tmp_path: Path) -> None:
    # Arrange
    bars = hourly_bars(50)
    # Act
    html = write_report(
        tmp_path / "r.html",
        title="idle",
        ts=bars.ts,
        equity=np.full(50, 100.0),
        trades=[],
        prices={bars.symbol: bars},
        bar_ns=HOUR,
        initial_equity=100.0,
    ).read_text(encoding="utf-8")
    specs = chart_specs(html)
    # Assert
    assert "chart-montecarlo" not in specs
    assert specs["chart-price-0"]["traces"] == 2  # candles and volume
    assert "No behavioural bias found." in html


def test_report_of_a_long_run_is_reduced(tmp_path: Path) -> None:
    # Arrange: 30_000 bars; at most 1_000 candles and 2_000 equity points
    bars = hourly_bars(30_000, seed=3)
    trades = [
        make_trade(k, bars, 100 * k, 100 * k + 50, 1, ExitReason.SIGNAL) for k in range(1, 290)
    ]
    limits = ReportLimits(max_points=2_000, max_candles=1_000, window_candles=300, max_markers=50)
    # Act
    html = write_report(
        tmp_path / "r.html",
        title="long",
        ts=bars.ts,
        equity=10_000.0 * bars.close / bars.close[0],
        trades=trades,
        prices={bars.symbol: bars},
        bar_ns=HOUR,
        initial_equity=10_000.0,
        limits=limits,
    ).read_text(encoding="utf-8")
    specs = chart_specs(html)
    # Assert
    overview = specs["chart-price-0"]["figure"]
    assert len(decode(overview["data"][0]["x"])) == 1_000  # 30 bars per candle
    assert "30 bars per candle" in overview["layout"]["title"]["text"]
    assert len(decode(overview["data"][1]["x"])) == 50  # markers: the last 50 trades
    recent = specs["chart-price-0-recent"]["figure"]
    assert len(decode(recent["data"][0]["x"])) == 300
    assert len(decode(specs["chart-equity"]["figure"]["data"][1]["y"])) <= 2_002


def test_charts_reduce_line_keeps_extremes() -> None:
    # Arrange: a spike and a crash hidden in 100_000 points
    y = np.random.default_rng(0).normal(0, 1, 100_000)
    y[12_345], y[67_890] = 50.0, -50.0
    # Act
    idx = charts.reduce_line([y], 1_000)
    # Assert
    assert idx.size <= 1_002
    assert {0, 12_345, 67_890, 99_999} <= set(idx.tolist())
    assert np.all(np.diff(idx) > 0)


def test_charts_grid_candles_resample_finer_bars_by_hand() -> None:
    # Arrange: six 1m bars onto a 3m grid starting at minute 0
    ts = np.arange(6, dtype=np.int64) * MINUTE
    bars = BarArrays(
        "X",
        "1m",
        ts,
        np.array([1.0, 2, 3, 4, 5, 6]),
        np.array([1.5, 9, 3.5, 4.5, 5.5, 6.5]),
        np.array([0.5, 1.5, 2.5, 0.1, 4.5, 5.5]),
        np.array([1.2, 2.2, 3.2, 4.2, 5.2, 6.2]),
        np.ones(6),
    )
    grid = np.array([0, 3 * MINUTE], dtype=np.int64)
    # Act
    c = charts.grid_candles(bars, grid, 3 * MINUTE)
    # Assert
    assert c.ts.tolist() == [0, 3 * MINUTE]
    assert c.open.tolist() == [1.0, 4.0]
    assert c.high.tolist() == [9.0, 6.5]
    assert c.low.tolist() == [0.5, 0.1]
    assert c.close.tolist() == [3.2, 6.2]


def test_charts_merge_candles_by_hand() -> None:
    # Arrange: five candles merged 2 at a time -> 3
    c = charts.Candles(
        np.arange(5, dtype=np.int64),
        np.array([1.0, 2, 3, 4, 5]),
        np.array([2.0, 5, 4, 6, 7]),
        np.array([0.5, 1, 2, 3, 4]),
        np.array([1.5, 2.5, 3.5, 4.5, 5.5]),
    )
    # Act
    merged, per = charts.merge_candles(c, 3)
    # Assert
    assert per == 2
    assert merged.open.tolist() == [1.0, 3.0, 5.0]
    assert merged.high.tolist() == [5.0, 6.0, 7.0]
    assert merged.low.tolist() == [0.5, 2.0, 4.0]
    assert merged.close.tolist() == [2.5, 4.5, 5.5]


def test_report_buy_and_hold_weights_symbols_equally() -> None:
    # Arrange: A doubles, B stays flat -> +50%
    ts = np.arange(3, dtype=np.int64) * HOUR
    a = charts.Candles(ts, np.ones(3), np.ones(3), np.ones(3), np.array([10.0, 15.0, 20.0]))
    b = charts.Candles(ts, np.ones(3), np.ones(3), np.ones(3), np.array([5.0, 5.0, 5.0]))
    # Act
    bh = buy_and_hold(ts, {"A": a, "B": b}, 1_000.0)
    # Assert
    assert bh is not None
    assert bh.tolist() == pytest.approx([1_000.0, 1_250.0, 1_500.0])


@pytest.mark.parametrize(
    ("key", "value", "text"),
    [
        ("profit_factor", float("inf"), "∞"),
        ("profit_factor", float("-inf"), "-∞"),
        ("sharpe", float("nan"), "–"),
        ("sharpe", None, "–"),
        ("total_return", 0.1234, "12.34%"),
        ("final_equity", 12345.5, "12,345.5"),
        ("trade_count", 3, "3"),
    ],
)
def test_report_fmt_value(key: str, value: object, text: str) -> None:
    assert fmt_value(key, value) == text
