"""sma_cross's signals: prebuilt ones (closes, and entries without exits) equal to the
signals the factories build, entries with exits placed around the signal bar's close."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tradeloop.core.signal import Signal, SignalAction
from tradeloop.data.loader import load_ohlcv
from tradeloop.engine.config import RunConfig
from tradeloop.engine.runner import run_on_bars
from tradeloop.strategy.examples.sma_cross import SmaCross

CASES = [
    {},
    {"short": True},
    {"stop_loss": 0.02, "take_profit": 0.04},
    {"stop_loss": 0.02, "take_profit": 0.04, "trailing_stop": 0.03, "short": True},
]


@pytest.mark.parametrize("params", CASES, ids=[str(p) for p in CASES])
def test_sma_cross_signals_equal_the_factories_at_the_signal_bar_close(
    params: dict[str, float], sample_1h: Path
) -> None:
    # Arrange
    bars = load_ohlcv(sample_1h).bars.slice(0, 5_000)
    close_at = dict(zip(bars.ts.tolist(), bars.close.tolist(), strict=True))
    sl, tp = params.get("stop_loss", 0.0), params.get("take_profit", 0.0)
    trail = params.get("trailing_stop") or None
    # Act
    result = run_on_bars(SmaCross(**params), {bars.symbol: bars}, RunConfig(fee=0.001))
    # Assert: each recorded signal is what the factory makes of the bar's close
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
                stop_loss=(close * (1 - sl) if d > 0 else close * (1 + sl)) if sl else None,
                take_profit=(close * (1 + tp) if d > 0 else close * (1 - tp)) if tp else None,
                trailing_stop=trail,
                position_id=signal.position_id,
                tag="sma_cross_up" if d > 0 else "sma_cross_down",
            )
            assert signal.position_id == f"sma_cross:{bars.symbol}:{ts}"
        assert signal == expected
    assert SignalAction.OPEN_LONG in actions
    assert (SignalAction.OPEN_SHORT in actions) == bool(params.get("short"))
    assert (SignalAction.CLOSE in actions) != bool(params.get("short"))
    assert len(result.signals) > 20
    assert np.isfinite(result.equity).all()


def test_sma_cross_closes_and_plain_entries_are_built_once_per_symbol(sample_1h: Path) -> None:
    # Arrange
    bars = load_ohlcv(sample_1h).bars.slice(0, 3_000)
    # Act
    plain = SmaCross()
    run_on_bars(plain, {bars.symbol: bars}, RunConfig())
    stops = SmaCross(stop_loss=0.01)
    run_on_bars(stops, {bars.symbol: bars}, RunConfig())
    # Assert: entries with a stop depend on the bar's close, so only the close is prebuilt
    assert set(plain._fixed) == {(bars.symbol, 1), (bars.symbol, -1), (bars.symbol, 0)}
    assert set(stops._fixed) == {(bars.symbol, 0)}
    (entry,) = plain._fixed[(bars.symbol, 1)]
    assert entry == Signal.open_long(bars.symbol, 1.0, tag="sma_cross_up")
