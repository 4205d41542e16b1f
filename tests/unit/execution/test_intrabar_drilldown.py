"""Intrabar drill-down: a bar with both stop-loss and take-profit in range is replayed on finer
bars (4h -> 1h -> 15m -> 5m -> 1m) to find which level was hit first.

All paths are 1m bars flat at 100 except for a few spike minutes. A long opens on the bar after
the first base bar at its open 100, with stop 95 and target 110.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pytest

from tradeloop.core.bar import BarArrays
from tradeloop.core.portfolio import Portfolio
from tradeloop.core.position import ExitReason
from tradeloop.core.signal import Signal
from tradeloop.core.time import parse_time
from tradeloop.engine.config import RunConfig
from tradeloop.engine.market import MarketData
from tradeloop.engine.result import BacktestResult
from tradeloop.engine.runner import run_on_bars
from tradeloop.strategy.base import NO_SIGNALS, Strategy
from tradeloop.strategy.view import MarketView

MINUTE = 60_000_000_000
HOUR = 60 * MINUTE
T0 = parse_time("2024-05-06T00:00:00Z")
SYM = "SOL"
STOP, TARGET = 95.0, 110.0
TP_SPIKE = (100.0, 111.0, 100.0, 100.0)  # high 111 >= 110 only
SL_SPIKE = (100.0, 100.0, 94.0, 100.0)  # low 94 <= 95 only
BOTH_SPIKE = (100.0, 111.0, 94.0, 100.0)  # one minute reaching both levels


def minute_bars(n: int, spikes: Mapping[int, tuple[float, float, float, float]]) -> BarArrays:
    """``n`` 1m bars from T0 flat at 100, with ``spikes[minute] = (o, h, l, c)``."""
    o = np.full(n, 100.0)
    h = o.copy()
    low = o.copy()
    c = o.copy()
    for k, (so, sh, sl, sc) in spikes.items():
        o[k], h[k], low[k], c[k] = so, sh, sl, sc
    ts = T0 + np.arange(n, dtype=np.int64) * MINUTE
    return BarArrays(SYM, "1m", ts, o, h, low, c, np.ones(n))


class EnterOnFirstBar(Strategy):
    """Opens one long with a stop and a target on the first base bar."""

    name = "enter_on_first_bar"

    def on_bar(self, view: MarketView, portfolio: Portfolio) -> Sequence[Signal]:
        if view.i == 0:
            return [Signal.open_long(SYM, stop_loss=STOP, take_profit=TARGET)]
        return NO_SIGNALS


def run(bars: BarArrays, timeframe: str | None) -> BacktestResult:
    return run_on_bars(EnterOnFirstBar(), {SYM: bars}, RunConfig(timeframe=timeframe))


def stats(drilled: int = 0, tp: int = 0, sl: int = 0, assumed: int = 0) -> dict[str, int]:
    return {"drilled": drilled, "take_profit_first": tp, "stop_first": sl, "assumed_stop": assumed}


# --------------------------------------------------------------------------- 1h over 1m


def test_intrabar_1h_take_profit_first_in_1m_path_exits_take_profit() -> None:
    # Arrange: hour 1 (minutes 60-119) reaches 111 at minute 70 and 94 at minute 100, so the
    # 1h bar (high 111, low 94) holds both levels; its first 15m bar (60-74) holds only the TP
    bars = minute_bars(180, {70: TP_SPIKE, 100: SL_SPIKE})
    # Act
    result = run(bars, "1h")
    # Assert: pnl = 100 units * (110 - 100) = 1_000
    (trade,) = result.trades
    assert trade.entry_ts == T0 + HOUR
    assert trade.exit_reason is ExitReason.TAKE_PROFIT
    assert trade.exit_ts == T0 + HOUR
    assert trade.exit_price == TARGET
    assert trade.pnl == pytest.approx(1_000.0)
    assert result.intrabar == stats(drilled=1, tp=1)


def test_intrabar_1h_stop_first_in_1m_path_exits_stop_loss() -> None:
    # Arrange: the same two spikes in the opposite order
    bars = minute_bars(180, {70: SL_SPIKE, 100: TP_SPIKE})
    # Act
    result = run(bars, "1h")
    # Assert: pnl = 100 * (95 - 100) = -500
    (trade,) = result.trades
    assert trade.exit_reason is ExitReason.STOP_LOSS
    assert trade.exit_price == STOP
    assert trade.pnl == pytest.approx(-500.0)
    assert result.intrabar == stats(drilled=1, sl=1)


def test_intrabar_only_stop_in_range_does_not_drill() -> None:
    # Arrange
    bars = minute_bars(180, {100: SL_SPIKE})
    # Act
    result = run(bars, "1h")
    # Assert
    assert result.trades[0].exit_reason is ExitReason.STOP_LOSS
    assert result.intrabar == stats()


def test_intrabar_1m_bar_with_both_levels_assumes_stop() -> None:
    # Arrange: a single minute (70) reaches both 111 and 94; no finer data exists
    bars = minute_bars(180, {70: BOTH_SPIKE})
    # Act
    result = run(bars, "1h")
    # Assert: drilled 1h -> 15m -> 5m -> 1m, still ambiguous -> the stop is assumed
    (trade,) = result.trades
    assert trade.exit_reason is ExitReason.STOP_LOSS
    assert trade.exit_price == STOP
    assert result.intrabar == stats(drilled=1, assumed=1)


def test_intrabar_base_timeframe_is_source_both_in_range_assumes_stop() -> None:
    # Arrange: 1h data only; bar 1 spans 94..111
    ts = T0 + np.arange(3, dtype=np.int64) * HOUR
    rows = np.array([[100.0, 100.0, 100.0, 100.0], [100.0, 111.0, 94.0, 100.0], [100.0] * 4])
    bars = BarArrays(SYM, "1h", ts, rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3], np.ones(3))
    # Act
    result = run(bars, None)
    # Assert
    (trade,) = result.trades
    assert trade.exit_reason is ExitReason.STOP_LOSS
    assert trade.exit_price == STOP
    assert result.intrabar == stats(drilled=1, assumed=1)


# --------------------------------------------------------------------------- 4h over 1m

# 4h bar 1 spans minutes 240-479. Minutes 382 and 383 are 2h22m and 2h23m into it: in 1h
# sub-bar 2 (06:00), 15m sub-bar 06:15, 5m sub-bar 06:20, and separate 1m bars.
FIRST, SECOND = 240 + 2 * 60 + 22, 240 + 2 * 60 + 23


def spy_sub_bars(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    calls: list[tuple[str, int]] = []
    original = MarketData.sub_bars

    def recording(self: MarketData, symbol: str, timeframe: str, ts_open: int) -> object:
        calls.append((timeframe, ts_open))
        return original(self, symbol, timeframe, ts_open)

    monkeypatch.setattr(MarketData, "sub_bars", recording)
    return calls


def test_intrabar_4h_drills_through_1h_15m_5m_to_1m_take_profit_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Arrange
    calls = spy_sub_bars(monkeypatch)
    bars = minute_bars(480, {FIRST: TP_SPIKE, SECOND: SL_SPIKE})
    # Act
    result = run(bars, "4h")
    # Assert: every level of the chain was opened on the bar holding both spikes
    (trade,) = result.trades
    assert trade.exit_reason is ExitReason.TAKE_PROFIT
    assert trade.exit_ts == T0 + 4 * HOUR
    assert calls == [
        ("4h", T0 + 4 * HOUR),
        ("1h", T0 + 6 * HOUR),
        ("15m", T0 + 6 * HOUR + 15 * MINUTE),
        ("5m", T0 + 6 * HOUR + 20 * MINUTE),
    ]
    assert result.intrabar == stats(drilled=1, tp=1)


def test_intrabar_4h_drills_to_1m_stop_first(monkeypatch: pytest.MonkeyPatch) -> None:
    # Arrange: spikes swapped; only the 1m bars can tell them apart
    calls = spy_sub_bars(monkeypatch)
    bars = minute_bars(480, {FIRST: SL_SPIKE, SECOND: TP_SPIKE})
    # Act
    result = run(bars, "4h")
    # Assert
    (trade,) = result.trades
    assert trade.exit_reason is ExitReason.STOP_LOSS
    assert trade.exit_price == STOP
    assert [tf for tf, _ in calls] == ["4h", "1h", "15m", "5m"]
    assert result.intrabar == stats(drilled=1, sl=1)


def test_intrabar_short_take_profit_first_exits_take_profit() -> None:
    # Arrange: short with stop 105 and target 90; minute 70 dips to 89, minute 100 rises to 106
    class ShortOnce(Strategy):
        name = "short_once"

        def on_bar(self, view: MarketView, portfolio: Portfolio) -> Sequence[Signal]:
            if view.i == 0:
                return [Signal.open_short(SYM, stop_loss=105.0, take_profit=90.0)]
            return NO_SIGNALS

    bars = minute_bars(180, {70: (100.0, 100.0, 89.0, 100.0), 100: (100.0, 106.0, 100.0, 100.0)})
    # Act
    result = run_on_bars(ShortOnce(), {SYM: bars}, RunConfig(timeframe="1h"))
    # Assert: pnl = -1 * 100 * (90 - 100) = 1_000
    (trade,) = result.trades
    assert trade.exit_reason is ExitReason.TAKE_PROFIT
    assert trade.exit_price == 90.0
    assert trade.pnl == pytest.approx(1_000.0)
    assert result.intrabar == stats(drilled=1, tp=1)
