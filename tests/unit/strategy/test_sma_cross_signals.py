"""sma_cross's signals: every one built once per symbol (closes, and entries whose stop and
target are distances from the signal bar's close), equal to what the factories build, and
the same orders and trades as a strategy placing the levels around the close itself."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from tradeloop.core.portfolio import Portfolio
from tradeloop.core.signal import Signal, SignalAction
from tradeloop.data.loader import load_ohlcv
from tradeloop.engine.config import RunConfig
from tradeloop.engine.runner import run_on_bars
from tradeloop.strategy.examples.sma_cross import SmaCross
from tradeloop.strategy.view import MarketView

CASES = [
    {},
    {"short": True},
    {"stop_loss": 0.02, "take_profit": 0.04},
    {"stop_loss": 0.02, "take_profit": 0.04, "trailing_stop": 0.03, "short": True},
]


@pytest.mark.parametrize("params", CASES, ids=[str(p) for p in CASES])
def test_sma_cross_signals_equal_the_factories_with_levels_placed_at_the_signal_bar_close(
    params: dict[str, float], sample_1h: Path
) -> None:
    # Arrange
    bars = load_ohlcv(sample_1h).bars.slice(0, 5_000)
    close_at = dict(zip(bars.ts.tolist(), bars.close.tolist(), strict=True))
    sl, tp = params.get("stop_loss", 0.0), params.get("take_profit", 0.0)
    trail = params.get("trailing_stop") or None
    # Act
    result = run_on_bars(SmaCross(**params), {bars.symbol: bars}, RunConfig(fee=0.001))
    # Assert: each recorded signal is what the factory makes, its distances placed around
    # the bar's close at the prices a strategy computing them itself gets
    actions = set()
    for ts, signal in result.signals:
        close = close_at[ts]
        actions.add(signal.action)
        if signal.action is SignalAction.CLOSE:
            expected = Signal.close(bars.symbol, tag="sma_cross_down")
        else:
            d = 1 if signal.action is SignalAction.OPEN_LONG else -1
            factory = Signal.open_long if d > 0 else Signal.open_short
            expected = factory(
                bars.symbol,
                1.0,
                stop_loss_pct=sl or None,
                take_profit_pct=tp or None,
                trailing_stop=trail,
                position_id=signal.position_id,
                tag="sma_cross_up" if d > 0 else "sma_cross_down",
            )
            assert signal.position_id == f"sma_cross:{bars.symbol}:{ts}"
            assert signal.exit_levels(close) == (
                (close * (1 - sl) if d > 0 else close * (1 + sl)) if sl else None,
                (close * (1 + tp) if d > 0 else close * (1 - tp)) if tp else None,
            )
        assert signal == expected
    assert SignalAction.OPEN_LONG in actions
    assert (SignalAction.OPEN_SHORT in actions) == bool(params.get("short"))
    assert (SignalAction.CLOSE in actions) != bool(params.get("short"))
    assert len(result.signals) > 20
    assert np.isfinite(result.equity).all()


class _PricedSmaCross(SmaCross):
    """sma_cross as it was written before distances: each entry built at the bar, its stop
    and target computed around the bar's close by the strategy itself."""

    def on_bar(self, view: MarketView, portfolio: Portfolio) -> Sequence[Signal]:
        out = []
        for signal in super().on_bar(view, portfolio):
            if signal.action is SignalAction.CLOSE:
                out.append(signal)
                continue
            d = 1 if signal.action is SignalAction.OPEN_LONG else -1
            close = view.close(signal.symbol)
            sl, tp = self.stop_loss, self.take_profit
            factory = Signal.open_long if d > 0 else Signal.open_short
            out.append(
                factory(
                    signal.symbol,
                    signal.size,
                    stop_loss=close * (1 - d * sl) if sl else None,
                    take_profit=close * (1 + d * tp) if tp else None,
                    trailing_stop=signal.trailing_stop,
                    tag=signal.tag,
                )
            )
        return out


STOP_CASES = [
    {"stop_loss": 0.01, "take_profit": 0.02, "trailing_stop": 0.01},
    {"stop_loss": 0.02, "take_profit": 0.04, "short": True},
    {"take_profit": 0.015, "trailing_stop": 0.02, "short": True},
]


@pytest.mark.parametrize("risk", [None, "default"])
@pytest.mark.parametrize("params", STOP_CASES, ids=[str(p) for p in STOP_CASES])
def test_distances_give_the_orders_and_trades_of_levels_placed_by_the_strategy(
    params: dict[str, float], risk: str | None, sample_1h: Path
) -> None:
    # Arrange: the same rules, levels as distances (placed where the order is made) and as
    # prices (placed by the strategy), through the pass-through gate and the full risk gate
    bars = load_ohlcv(sample_1h).bars.slice(0, 8_000)
    cfg = RunConfig(fee=0.001, risk=risk)
    # Act
    by_distance = run_on_bars(SmaCross(**params), {bars.symbol: bars}, cfg)
    by_price = run_on_bars(_PricedSmaCross(**params), {bars.symbol: bars}, cfg)

    # Assert: every trade the same, its stop and target (kept on the trade) to the last bit
    assert by_distance.trades == by_price.trades
    assert len(by_distance.trades) > 50
    assert all(
        (t.stop_loss is not None) == bool(params.get("stop_loss"))
        and (t.take_profit is not None) == bool(params.get("take_profit"))
        for t in by_distance.trades
    )
    assert {t.exit_reason.value for t in by_distance.trades} - {"signal", "end"}  # levels hit
    assert np.array_equal(by_distance.equity, by_price.equity)


def test_sma_cross_builds_every_signal_once_per_symbol(sample_1h: Path) -> None:
    # Arrange
    bars = load_ohlcv(sample_1h).bars.slice(0, 3_000)
    # Act
    plain = SmaCross(short=True)
    run_on_bars(plain, {bars.symbol: bars}, RunConfig())
    stops = SmaCross(stop_loss=0.01)
    run_on_bars(stops, {bars.symbol: bars}, RunConfig())
    # Assert: entries with a stop do not depend on the bar either (a distance), so both are
    # prebuilt; a long-only strategy has no short entry
    assert set(plain._fixed) == {(bars.symbol, 1), (bars.symbol, -1), (bars.symbol, 0)}
    assert set(stops._fixed) == {(bars.symbol, 1), (bars.symbol, 0)}
    (entry,) = plain._fixed[(bars.symbol, 1)]
    assert entry == Signal.open_long(bars.symbol, 1.0, tag="sma_cross_up")
    (with_stop,) = stops._fixed[(bars.symbol, 1)]
    assert with_stop == Signal.open_long(bars.symbol, 1.0, stop_loss_pct=0.01, tag="sma_cross_up")
