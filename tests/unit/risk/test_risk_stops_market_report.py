"""Stops (default trailing stop armed at +2%, expected slippage), the rolling market history,
and the risk report with its JSON/CSV export."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tradeloop.core.bar import BarArrays
from tradeloop.core.instrument import Instrument
from tradeloop.core.orders import Order, OrderType
from tradeloop.core.portfolio import Portfolio
from tradeloop.core.position import ExitReason, Position
from tradeloop.core.rejection import Rejection
from tradeloop.core.signal import Signal
from tradeloop.engine.config import RunConfig
from tradeloop.engine.runner import run_on_bars
from tradeloop.risk.config import LimitsConfig, RiskConfig, StopsConfig, VarConfig
from tradeloop.risk.engine import RiskEngine
from tradeloop.risk.market import RollingMarket
from tradeloop.risk.report import RiskReport, read_risk_report, write_risk_report
from tradeloop.risk.stops import StopManager, expected_exit_price, plan_stops
from tradeloop.strategy.base import NO_SIGNALS, Strategy
from tradeloop.strategy.view import MarketView

HOUR = 3_600_000_000_000
T0 = 1_704_067_200_000_000_000


# --------------------------------------------------------------------------- stops


def test_plan_stops_completes_the_intent_with_defaults() -> None:
    # Arrange
    cfg = StopsConfig(stop_loss_pct=0.05, trailing_pct=0.01, trailing_activation_pct=0.02)
    # Act
    long_plan = plan_stops(1, 100.0, cfg)
    short_plan = plan_stops(-1, 100.0, cfg)
    own = plan_stops(1, 100.0, cfg, stop_loss=97.0, trailing_stop=0.03)
    # Assert
    assert (long_plan.stop_loss, long_plan.trailing_stop, long_plan.trailing_activation) == (
        95.0,
        0.01,
        0.02,
    )
    assert short_plan.stop_loss == pytest.approx(105.0)
    assert (own.stop_loss, own.trailing_stop, own.trailing_activation) == (97.0, 0.03, None)


def test_trailing_stop_is_armed_only_after_activation() -> None:
    # Arrange: long from 100, trail 1% once the best price is +2%
    pos = Position(
        "p",
        "X",
        1,
        1.0,
        100.0,
        T0,
        0.0,
        trail_fraction=0.01,
        trail_anchor=101.9,
        trail_activation=0.02,
    )
    armed = replace(pos, trail_anchor=102.0)
    short = Position(
        "s",
        "X",
        -1,
        1.0,
        100.0,
        T0,
        0.0,
        trail_fraction=0.01,
        trail_anchor=98.0,
        trail_activation=0.02,
    )
    # Act / Assert
    assert pos.trailing_stop_price() is None
    assert armed.trailing_stop_price() == pytest.approx(100.98)
    assert short.trailing_stop_price() == pytest.approx(98.98)
    assert armed.active_stop() == (pytest.approx(100.98), ExitReason.TRAILING)


def test_stop_manager_follows_prices_and_emits_stop_orders_with_slippage() -> None:
    # Arrange: 50 bps expected slippage
    manager = StopManager(StopsConfig(expected_slippage_bps=50.0))
    pos = Position(
        "p",
        "X",
        1,
        2.0,
        100.0,
        T0,
        0.0,
        stop_loss=95.0,
        trail_fraction=0.01,
        trail_anchor=100.0,
        trail_activation=0.02,
    )
    # Act
    pos = manager.update(pos, 103.0)  # best 103 -> trailing 101.97 armed, above the 95 stop
    order = manager.stop_order(pos, T0)
    hit = manager.triggered(pos, 101.5)
    # Assert
    assert order is not None
    assert (order.type, order.reduce_only, order.quantity) == (OrderType.STOP, True, 2.0)
    assert order.stop_price == pytest.approx(101.97)
    assert order.limit_price == pytest.approx(101.97 * 0.995)
    assert expected_exit_price(100.0, -1, 50.0) == pytest.approx(100.5)
    assert hit is ExitReason.TRAILING
    # loss at the stop: (101.97 * 0.995 - 100) * 2, a gain here, so negative loss
    assert manager.loss_at_stop(pos) == pytest.approx(-(101.97 * 0.995 - 100.0) * 2.0)


class _BuyOnce(Strategy):
    name = "buy_once"

    def on_bar(self, view: MarketView, portfolio: Portfolio) -> list[Signal]:
        return [Signal.open_long("X", 0.5)] if view.i == 0 else list(NO_SIGNALS)


def test_backtest_default_trailing_stop_arms_at_two_percent_and_trails_one() -> None:
    # Arrange: entry at bar 1 open 100; bar 1 high 101.5 (not armed); bar 2 high 103 (armed:
    # level 103 * 0.99 = 101.97 from bar 3 on); bar 3 low 101.5 -> stopped at 101.97
    rows = [
        (100, 100, 100, 100),
        (100, 101.5, 99.5, 101),
        (101, 103, 100.5, 102.5),
        (102.5, 102.8, 101.5, 102),
    ]
    arr = np.asarray(rows, dtype=np.float64)
    bars = BarArrays(
        "X", "1h", T0 + np.arange(4) * HOUR, arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3], np.ones(4)
    )
    cfg = replace(
        RiskConfig.permissive(),
        stops=StopsConfig(expected_slippage_bps=0.0),
        limits=replace(RiskConfig.permissive().limits, max_position_pct=1.0),
    )
    # Act
    result = run_on_bars(_BuyOnce(), {"X": bars}, RunConfig(risk=cfg))
    # Assert
    (trade,) = result.trades
    assert trade.entry_price == 100.0
    assert trade.exit_reason is ExitReason.TRAILING
    assert trade.exit_price == pytest.approx(101.97)
    assert trade.exit_ts == T0 + 3 * HOUR


# --------------------------------------------------------------------------- rolling market


def test_rolling_market_keeps_the_last_window_in_order() -> None:
    # Arrange: window 5, 12 bars of X; Y joins at bar 8
    m = RollingMarket(["X"], 5, HOUR)
    xs = [100.0 + k for k in range(12)]
    for k, x in enumerate(xs):
        closes = {"X": x} if k < 8 else {"X": x, "Y": 50.0 + k}
        m.push(T0 + k * HOUR, closes)
    # Act
    got = m.returns(["X", "Y", "Z"], 10)
    # Assert: the last 5 returns, oldest first; Y has none before its second bar
    expected_x = [xs[k] / xs[k - 1] - 1 for k in range(7, 12)]
    assert got.shape == (5, 3)
    assert got[:, 0] == pytest.approx(expected_x)
    assert np.isnan(got[:2, 1]).all()  # bar 7: no Y yet; bar 8: Y's first close
    assert got[-1, 1] == pytest.approx(61.0 / 60.0 - 1)
    assert np.isnan(got[:, 2]).all()
    assert m.price("X") == 111.0
    assert m.ts == T0 + 11 * HOUR


def test_rolling_market_grows_past_its_initial_capacity() -> None:
    # Arrange
    symbols = [f"S{k}" for k in range(20)]
    m = RollingMarket([], 3, HOUR)
    # Act
    m.push(T0, {s: 1.0 for s in symbols})
    m.push(T0 + HOUR, {s: 2.0 for s in symbols})
    # Assert
    assert m.returns(symbols, 3)[-1] == pytest.approx([1.0] * 20)


# --------------------------------------------------------------------------- report


def test_risk_report_figures_and_exports(tmp_path: Path) -> None:
    # Arrange: long X 10 @ 100 and long Y 20 @ 50 on cash 8,000 -> equity 10,000
    rng = np.random.default_rng(5)
    m = RollingMarket(["X", "Y"], 600, HOUR)
    px, py = 100.0, 50.0
    for k in range(300):
        r = rng.normal(0, 0.01)
        px, py = px * (1 + r), py * (1 + r + rng.normal(0, 0.001))
        m.push(T0 + k * HOUR, {"X": px, "Y": py})
    portfolio = Portfolio(10_000.0 - 10 * px - 20 * py)
    portfolio.positions["X"] = Position("X-1", "X", 1, 10.0, px, T0, 0.0)
    portfolio.positions["Y"] = Position("Y-1", "Y", 1, 20.0, py, T0, 0.0)
    portfolio.marks.update({"X": px, "Y": py})
    cfg = replace(RiskConfig.default(), var=VarConfig(horizon="1h"))
    engine = RiskEngine(cfg)
    engine.rejections.append(Rejection(T0, "Z", "max_positions", "10 open", "risk"))
    # Act
    report = engine.report(portfolio, m)
    paths = write_risk_report(report, tmp_path)
    back = read_risk_report(paths["risk_report"])
    # Assert
    assert report.equity == pytest.approx(10_000.0)
    assert report.gross_exposure == pytest.approx(10 * px + 20 * py)
    assert report.leverage == pytest.approx(report.gross_exposure / 10_000.0)
    assert report.clusters == [["X", "Y"]]  # almost the same returns
    hist = m.returns(["X", "Y"], 500)
    pnl = np.nan_to_num(hist) @ np.array([10 * px, 20 * py])
    pnl = pnl[np.isfinite(hist).any(axis=1)]
    v99 = next(v for v in report.var if v["level"] == 0.99)
    assert v99["historical_var"] == pytest.approx(-np.quantile(pnl, 0.01))
    assert report.rejections_by_reason == {"max_positions": 1}
    usage = {lim["name"]: lim for lim in report.limits}
    assert usage["max_open_positions"]["usage"] == pytest.approx(0.2)
    assert back == RiskReport.from_dict(json.loads(paths["risk_report"].read_text()))
    assert back.exposure == report.exposure
    with paths["risk_csv"].open() as fh:
        rows = list(csv.DictReader(fh))
    assert {"state", "portfolio", "var", "correlation", "cluster", "limit"} <= {
        r["section"] for r in rows
    }
    with paths["risk_rejections"].open() as fh:
        assert next(csv.DictReader(fh))["reason"] == "max_positions"


def test_engine_order_carries_default_stops() -> None:
    # Arrange
    engine = RiskEngine(
        replace(RiskConfig.default(), limits=LimitsConfig(max_var_pct=None)), {"X": Instrument("X")}
    )
    m = RollingMarket(["X"], 10, HOUR)
    m.push(T0, {"X": 100.0})
    # Act
    o = engine.check(Signal.open_long("X"), Portfolio(10_000.0), m)
    # Assert
    assert isinstance(o, Order)
    assert o.exits is not None
    assert (o.exits.trailing_stop, o.exits.trailing_activation) == (0.01, 0.02)
