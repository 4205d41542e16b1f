"""The risk engine inside backtests on real data: the permissive profile changes nothing, the
default profile sizes and stops every position, a black swan flattens and halts until an
override, correlated entries are refused."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tradeloop.core.bar import BarArrays
from tradeloop.core.instrument import Instrument
from tradeloop.core.orders import order_from_signal
from tradeloop.core.portfolio import Portfolio
from tradeloop.core.position import ExitReason
from tradeloop.core.signal import Signal
from tradeloop.data.loader import load_ohlcv
from tradeloop.engine.config import RunConfig
from tradeloop.engine.kernel import BacktestEngine
from tradeloop.engine.market import MarketData
from tradeloop.engine.runner import run_on_bars
from tradeloop.engine.step import Step
from tradeloop.risk.config import BlackSwanConfig, LimitsConfig, RiskConfig
from tradeloop.risk.engine import RiskEngine
from tradeloop.risk.killswitch import TradingState
from tradeloop.risk.overrides import issue_token
from tradeloop.strategy.base import NO_SIGNALS, Strategy
from tradeloop.strategy.examples.donchian_breakout import DonchianBreakout
from tradeloop.strategy.examples.rsi_reversion import RsiReversion
from tradeloop.strategy.examples.sma_cross import SmaCross
from tradeloop.strategy.view import MarketView

BTC_1H = "crypto_1h/binance_spot_2017_2024/BTC_USDT-1h.feather"
DAY = 86_400_000_000_000
HOUR = 3_600_000_000_000
SECRET = b"integration-secret"


@pytest.fixture(scope="module")
def btc_1h(shared_data: Path) -> BarArrays:
    return load_ohlcv(shared_data / BTC_1H).bars


class AlwaysLong(Strategy):
    """Opens a long whenever flat (so a position is open when a crash comes)."""

    name = "always_long"

    def on_bar(self, view: MarketView, portfolio: Portfolio) -> Sequence[Signal]:
        sym = view.symbols[0]
        return [Signal.open_long(sym, 1.0)] if portfolio.is_flat(sym) else NO_SIGNALS


def _direct_submit(self: Step, signals, step, ts, view, closes, close) -> None:  # type: ignore[no-untyped-def]
    """The step's submit as it was before the risk gate: signal -> broker."""
    self.broker.step = step
    for signal in self.with_ids(signals, ts):
        self._signals.append((ts, signal))  # the record behind Step.signals
        price = close if closes is None else closes.get(signal.symbol, math.nan)
        self.broker.submit(signal, ts, price)


@pytest.mark.parametrize(
    "strategy",
    [SmaCross(fast=10, slow=30), RsiReversion(), DonchianBreakout()],
    ids=["sma_cross", "rsi_reversion", "donchian"],
)
def test_permissive_profile_is_bit_identical_to_no_risk_gate(
    btc_1h: BarArrays, strategy: Strategy, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange
    config = RunConfig(fee=0.001, slippage_bps=2.0)
    gated = run_on_bars(strategy, {btc_1h.symbol: btc_1h}, config)
    fresh = type(strategy)(**dict(strategy.params))
    monkeypatch.setattr(Step, "submit", _direct_submit)
    # Act
    direct = run_on_bars(fresh, {btc_1h.symbol: btc_1h}, config)
    # Assert
    assert gated.trades == direct.trades
    np.testing.assert_array_equal(gated.equity, direct.equity)
    assert gated.rejections == direct.rejections
    assert gated.config["risk"]["profile"] == "permissive"


def test_permissive_check_equals_order_from_signal() -> None:
    # Arrange
    engine = RiskEngine(RiskConfig.permissive(), order_ids=lambda: 7)
    from tradeloop.risk.market import RollingMarket

    market = RollingMarket(["X"], 5, DAY)
    market.push(0, {"X": 1.0})
    signal = Signal.open_short("X", 0.3, take_profit=0.5, tag="t")
    # Act
    order = engine.check(signal, Portfolio(1.0), market)
    # Assert
    assert order == order_from_signal(signal, 0, Portfolio(1.0), 7)


def test_default_profile_sizes_to_ten_percent_and_trails_every_position(btc_1h: BarArrays) -> None:
    # Arrange: the full profile without the kill switches (they would halt this strategy)
    base = RiskConfig.default()
    cfg = replace(
        base,
        kill_switch=replace(
            base.kill_switch, daily_loss_pct=None, drawdown_reduce_pct=None, drawdown_halt_pct=None
        ),
        black_swan=BlackSwanConfig(enabled=False),
    )
    engine = RiskEngine(cfg)
    # Act
    result = run_on_bars(
        SmaCross(fast=10, slow=30),
        {btc_1h.symbol: btc_1h},
        RunConfig(fee=0.001, risk=cfg),
        risk=engine,
    )
    # Assert: at entry each position is ~10% of the equity (sized on the signal bar's close,
    # filled at the next open)
    assert result.config["risk"]["profile"] == "default"
    assert len(result.trades) > 100
    equity_at = dict(zip(result.ts.tolist(), result.equity.tolist(), strict=True))
    step = int(result.ts[1] - result.ts[0])
    for trade in result.trades:
        before = equity_at[trade.entry_ts - step]
        assert trade.quantity * trade.entry_price == pytest.approx(0.10 * before, rel=0.05)
    reasons = {t.exit_reason for t in result.closed_trades}
    assert ExitReason.TRAILING in reasons
    assert engine.adjustments["max_position_pct"] == len(result.trades)
    assert engine.report().limits[0]["name"] == "max_position_pct"


def test_black_swan_on_real_data_flattens_and_blocks_until_override(btc_1h: BarArrays) -> None:
    # Arrange: a 10% fall within 24h triggers (the real series has several)
    cfg = replace(
        RiskConfig.permissive(),
        limits=replace(RiskConfig.permissive().limits, max_position_pct=0.5),
        black_swan=BlackSwanConfig(drop_pct=0.10, window="24h", vol_shock_sigma=None),
    )
    probe = RiskEngine(cfg, secret=SECRET)
    run_on_bars(AlwaysLong(), {btc_1h.symbol: btc_1h}, RunConfig(risk=cfg), risk=probe)
    trigger = probe.events[0]
    assert (trigger.cause, trigger.state_to) == ("black_swan", TradingState.HALTED)
    t_swan = trigger.ts
    resume_at = t_swan + 7 * DAY
    engine = RiskEngine(cfg, secret=SECRET)
    expired = issue_token(
        SECRET,
        who="ops",
        why="too early",
        action="resume",
        not_before=t_swan,
        expires_at=t_swan + DAY,
    )
    forged = issue_token(
        b"not-the-secret",
        who="mallory",
        why="let me trade",
        action="resume",
        not_before=t_swan + 3 * DAY - HOUR,
        expires_at=t_swan + 3 * DAY + HOUR,
    )
    good = issue_token(
        SECRET,
        who="ops",
        why="market stable again",
        action="resume",
        not_before=resume_at - HOUR,
        expires_at=resume_at + HOUR,
    )
    engine.schedule_override(expired, t_swan + 2 * DAY)
    engine.schedule_override(forged, t_swan + 3 * DAY)
    engine.schedule_override(good, resume_at)
    # Act
    result = run_on_bars(AlwaysLong(), {btc_1h.symbol: btc_1h}, RunConfig(risk=cfg), risk=engine)
    # Assert: flat from the next bar's open after the trigger
    ts = result.ts
    k = int(np.searchsorted(ts, t_swan))
    k_resume = int(np.searchsorted(ts, resume_at))
    flattened = [
        t
        for t in result.trades
        if t.exit_reason is ExitReason.RISK and t.exit_ts is not None and t.exit_ts <= resume_at
    ]
    assert len(flattened) == 1
    assert flattened[0].exit_ts == ts[k + 1]
    assert not result.exposure[k + 1 : k_resume + 1].any()
    # no order accepted between the trigger and the override; every intent refused as halted
    entries = sorted(t.entry_ts for t in result.trades)
    assert not [e for e in entries if t_swan < e <= resume_at]
    halted = [r.ts for r in result.rejections if r.reason == "halted"]
    assert [t for t in halted if t < resume_at]
    assert all(t >= t_swan for t in halted)
    later_swans = [e.ts for e in engine.events[2:] if e.cause == "black_swan"]
    assert all(t < resume_at or (later_swans and t >= later_swans[0]) for t in halted)
    # the bad tokens were refused and audited, the good one resumed trading
    audit = engine.overrides.audit.records
    assert [(r["result"], r.get("reason")) for r in audit] == [
        ("refused", "expired"),
        ("refused", "bad_signature"),
        ("accepted", None),
    ]
    assert audit[1]["who"] == "mallory"
    assert [e.cause for e in engine.events[:2]] == ["black_swan", "override"]
    assert min(e for e in entries if e > resume_at) == ts[k_resume + 1]


class TwoAtOnce(Strategy):
    """At one bar, opens BTC then ETH."""

    name = "two_at_once"

    def on_bar(self, view: MarketView, portfolio: Portfolio) -> Sequence[Signal]:
        if view.step == 300:
            return [Signal.open_long(s, 0.1) for s in view.symbols]
        return NO_SIGNALS


def test_correlated_second_entry_is_refused_on_real_futures_data(shared_data: Path) -> None:
    # Arrange: BTC and ETH perpetuals, 5-minute bars
    folder = shared_data / "crypto_futures" / "binance_usdm_2025"
    btc = load_ohlcv(folder / "BTC_USDT_USDT-5m-futures.feather", symbol="BTC").bars
    eth = load_ohlcv(folder / "ETH_USDT_USDT-5m-futures.feather", symbol="ETH").bars
    cfg = replace(
        RiskConfig.permissive(),
        limits=LimitsConfig(
            max_position_pct=None,
            max_risk_per_trade=None,
            max_open_positions=None,
            max_gross_leverage=None,
            max_var_pct=None,
            max_correlation=0.7,
        ),
    )
    engine = RiskEngine(cfg)
    # Act
    result = run_on_bars(TwoAtOnce(), {"BTC": btc, "ETH": eth}, RunConfig(risk=cfg), risk=engine)
    # Assert: BTC entered; ETH refused, its 100-bar correlation with the in-flight BTC order
    # above 0.7 (checked by hand below)
    assert [t.symbol for t in result.trades] == ["BTC"]
    (refusal,) = [r for r in result.rejections if r.source == "risk"]
    assert (refusal.symbol, refusal.reason) == ("ETH", "correlation")
    closes = {s: b.close for s, b in (("BTC", btc), ("ETH", eth))}
    idx = {s: int(np.searchsorted(b.ts, result.ts[300])) for s, b in (("BTC", btc), ("ETH", eth))}
    r = {
        s: np.diff(closes[s][idx[s] - 100 : idx[s] + 1]) / closes[s][idx[s] - 100 : idx[s]]
        for s in closes
    }
    corr = float(np.corrcoef(r["BTC"], r["ETH"])[0, 1])
    assert corr > 0.7
    assert f"{corr:.3f}" in refusal.detail


def test_risk_report_of_a_run(btc_1h: BarArrays) -> None:
    # Arrange: the full profile on the first 2,000 hours
    engine = RiskEngine(replace(RiskConfig.default(), black_swan=BlackSwanConfig(enabled=False)))
    bars = btc_1h.slice(0, 2_000)
    market = MarketData({bars.symbol: bars}, {bars.symbol: Instrument(bars.symbol)}, "1h")
    kernel = BacktestEngine(AlwaysLong(), market, RunConfig(risk=engine.config), risk=engine)
    # Act
    result = kernel.run()
    report = kernel.risk_report()
    # Assert
    assert report.profile == "default"
    assert report.accepted_orders == len(result.trades) + sum(
        1 for r in result.rejections if r.source == "broker"
    )
    assert report.var
    assert math.isfinite(report.var[0]["level"])
    assert sum(report.rejections_by_reason.values()) == len(result.rejections)
    assert report.events == [e.as_dict() for e in engine.events]
