"""A strategy's ``signal_bars`` hint skips idle bars without changing any result."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from tradeloop.core.bar import BarArrays
from tradeloop.core.errors import ConfigError
from tradeloop.core.portfolio import Portfolio
from tradeloop.core.signal import Signal
from tradeloop.data.loader import load_ohlcv
from tradeloop.engine.config import RunConfig
from tradeloop.engine.result import BacktestResult
from tradeloop.engine.runner import run_on_bars
from tradeloop.strategy.base import NO_SIGNALS, Strategy
from tradeloop.strategy.examples.sma_cross import SmaCross
from tradeloop.strategy.registry import discover_strategies
from tradeloop.strategy.view import MarketView


def _run(strategy: Strategy, bars, config: RunConfig) -> BacktestResult:
    return run_on_bars(strategy, {bars.symbol: bars}, config)


def _assert_same(a: BacktestResult, b: BacktestResult) -> None:
    assert a.trades == b.trades
    assert a.signals == b.signals
    assert np.array_equal(a.equity, b.equity)
    assert np.array_equal(a.cash, b.cash)
    assert a.metrics == b.metrics


class _SmaCrossEveryBar(SmaCross):
    """``SmaCross`` without its ``signal_bars`` hint: called on every bar, the broker checks
    every bar (the reference the sparse loop must equal)."""

    def signal_bars(self, view: MarketView) -> None:
        return None


def _every_bar_sma_cross(bars: BarArrays, params: dict[str, float]) -> BacktestResult:
    """``SmaCross(10, 30, **params)`` on ``bars`` called on every bar (0.1% fee)."""
    return _run(_SmaCrossEveryBar(fast=10, slow=30, **params), bars, RunConfig(fee=0.001))


def _sparse_equals_every_bar(
    bars: BarArrays, params: dict[str, float], monkeypatch: pytest.MonkeyPatch
) -> BacktestResult:
    """``SmaCross(10, 30, **params)`` on ``bars`` with its hint (under the test's patches,
    undone after it) and called on every bar: the two runs are the same; the hinted one."""
    sparse = _run(SmaCross(fast=10, slow=30, **params), bars, RunConfig(fee=0.001))
    monkeypatch.undo()
    _assert_same(sparse, _every_bar_sma_cross(bars, params))
    return sparse


CASES = [
    ("sma_cross", {}),
    ("sma_cross", {"stop_loss": 0.02, "take_profit": 0.04}),
    # reversals: each entry meets the previous side's watched position at its fill
    ("sma_cross", {"short": True, "stop_loss": 0.02, "take_profit": 0.04, "trailing_stop": 0.01}),
    ("rsi_reversion", {}),
    ("rsi_reversion", {"stop_loss": 0.02}),
    ("rsi_reversion", {"trailing_stop": 0.03}),
    ("donchian_breakout", {}),
    ("donchian_breakout", {"trailing_stop": 0.03}),
    ("vwap_momentum", {}),
]


@pytest.mark.parametrize(("name", "params"), CASES, ids=[f"{n}-{p}" for n, p in CASES])
def test_signal_bars_hint_gives_the_same_run_as_calling_every_bar(
    name: str, params: dict[str, float], sample_1h: Path
) -> None:
    # Arrange
    cls = discover_strategies(None)[name].cls
    bars = load_ohlcv(sample_1h).bars.slice(0, 20_000)
    config = RunConfig(fee=0.001, slippage_bps=2.0)

    class EveryBar(cls):  # type: ignore[valid-type, misc]
        def signal_bars(self, view: MarketView) -> None:
            return None

    # Act
    hinted = _run(cls(**params), bars, config)
    dense = _run(EveryBar(**params), bars, config)
    # Assert
    assert hinted.metrics.trade_count > 10
    _assert_same(hinted, dense)


class _CountingStrategy(Strategy):
    """Buys on every 1000th bar and sells 10 bars later; counts its calls."""

    name = "counting"

    def on_init(self, view: MarketView) -> None:
        size = len(view.arrays())
        self.calls = 0
        self._mask = np.zeros(size, dtype=bool)
        self._mask[::1000] = True
        self._mask[10::1000] = True

    def signal_bars(self, view: MarketView) -> np.ndarray:
        return self._mask

    def on_bar(self, view: MarketView, portfolio: Portfolio) -> Sequence[Signal]:
        self.calls += 1
        sym = view.symbols[0]
        if view.i % 1000 == 0 and portfolio.is_flat(sym):
            return [Signal.open_long(sym, 0.5)]
        if view.i % 1000 == 10 and not portfolio.is_flat(sym):
            return [Signal.close(sym)]
        return NO_SIGNALS


def test_signal_bars_hint_calls_on_bar_only_on_wake_bars(sample_1h: Path) -> None:
    # Arrange
    bars = load_ohlcv(sample_1h).bars.slice(0, 10_000)
    strategy = _CountingStrategy()
    # Act
    result = _run(strategy, bars, RunConfig())
    # Assert: 20 wake bars out of 10,000, and every round trip happened
    assert strategy.calls == 20
    assert result.metrics.trade_count == 10


def test_signal_bars_hint_of_the_wrong_length_is_a_config_error(sample_1h: Path) -> None:
    # Arrange
    class Broken(_CountingStrategy):
        def signal_bars(self, view: MarketView) -> np.ndarray:
            return np.ones(3, dtype=bool)

    bars = load_ohlcv(sample_1h).bars.slice(0, 100)
    # Act / Assert
    with pytest.raises(ConfigError, match="signal_bars"):
        _run(Broken(), bars, RunConfig())


@pytest.mark.parametrize(
    "params",
    [{"trailing_stop": 0.02}, {"stop_loss": 0.03, "take_profit": 0.05, "trailing_stop": 0.015}],
    ids=["trailing", "all-levels"],
)
def test_exit_checks_run_only_on_bars_reaching_a_level(
    sample_1h: Path, monkeypatch: pytest.MonkeyPatch, params: dict[str, float]
) -> None:
    # Arrange: count the broker's per-bar exit checks
    from tradeloop.core.position import ExitReason
    from tradeloop.execution.simulated import SimulatedBroker

    bars = load_ohlcv(sample_1h).bars
    checked: list[int] = []
    real = SimulatedBroker.on_bar_range

    def counting(self, symbol, ts, *rest):  # type: ignore[no-untyped-def]
        checked.append(ts)
        return real(self, symbol, ts, *rest)

    monkeypatch.setattr(SimulatedBroker, "on_bar_range", counting)
    # Act
    sparse = _sparse_equals_every_bar(bars, params, monkeypatch)
    calls = len(checked)
    # Assert: the same run (above); a check only at each bar whose range reached a level (an
    # exit there), plus at most one per loop chunk (the scan stops at chunk ends); the entry
    # bars (the exit scan starts at them) and the strategy's wake bars with an open position
    # and no level reached are not checked
    level_exits = sum(
        t.exit_reason in (ExitReason.STOP_LOSS, ExitReason.TRAILING, ExitReason.TAKE_PROFIT)
        for t in sparse.trades
    )
    signal_exits = sum(t.exit_reason is ExitReason.SIGNAL for t in sparse.trades)
    assert signal_exits > 100
    assert calls <= len(sparse.trades) + level_exits + 101
    assert calls <= level_exits + 101


class _EntryBarStrategy(Strategy):
    """Opens a position with the given exits at every 20th bar's close (wakes there only,
    and at ``extra`` bars, where it does nothing)."""

    name = "entry_bar"

    def __init__(self, exits: dict[str, float], direction: int, extra: int = -1) -> None:
        super().__init__()
        self._exits, self._direction, self._extra = exits, direction, extra

    def signal_bars(self, view: MarketView) -> np.ndarray:
        mask = np.zeros(len(view.arrays()), dtype=bool)
        mask[::20] = True
        if self._extra >= 0:
            mask[self._extra :: 20] = True
        return mask

    def on_bar(self, view: MarketView, portfolio: Portfolio) -> Sequence[Signal]:
        sym = view.symbols[0]
        if view.i % 20 or not portfolio.is_flat(sym):
            return NO_SIGNALS
        close, d = view.close(sym), self._direction
        levels = {
            "stop_loss": close * (1 - d * self._exits["stop"]) if "stop" in self._exits else None,
            "take_profit": close * (1 + d * self._exits["target"])
            if "target" in self._exits
            else None,
            "trailing_stop": self._exits.get("trail"),
        }
        factory = Signal.open_long if d > 0 else Signal.open_short
        return [factory(sym, 0.5, **levels)]


def _entry_bar_data(n: int = 400) -> BarArrays:
    """Flat bars at 100 (range 99.9-100.1), except every 20th bar + 1 (an entry bar): its
    range spans 97-103, through any 1-2% stop, target or trailing stop of an entry at 100."""
    ts = np.arange(n, dtype=np.int64) * 60_000_000_000
    close = np.full(n, 100.0)
    high, low = close + 0.1, close - 0.1
    high[1::20], low[1::20] = 103.0, 97.0
    return BarArrays("X/USD", "1m", ts, close.copy(), high, low, close, np.ones(n))


@pytest.mark.parametrize("direction", [1, -1])
@pytest.mark.parametrize(
    "exits",
    [{"stop": 0.02}, {"target": 0.02}, {"stop": 0.02, "target": 0.02}, {"trail": 0.01}],
    ids=["stop", "target", "stop-and-target", "trailing"],
)
@pytest.mark.parametrize("extra", [-1, 1], ids=["entry-bar-idle", "entry-bar-wakes"])
def test_an_exit_on_the_entry_bar_is_found_by_the_scan_as_by_the_per_bar_check(
    direction: int, exits: dict[str, float], extra: int
) -> None:
    # Arrange: every entry bar's range reaches the levels; the entry bar is a wake bar or not
    bars = _entry_bar_data()
    config = RunConfig(fee=0.001, allow_short=True)

    class EveryBar(_EntryBarStrategy):
        def signal_bars(self, view: MarketView) -> None:
            return None

    # Act
    sparse = run_on_bars(_EntryBarStrategy(exits, direction, extra), {"X/USD": bars}, config)
    dense = run_on_bars(EveryBar(exits, direction, extra), {"X/USD": bars}, config)
    # Assert: every trade leaves on its entry bar (one bar after the signal), as checked per bar
    _assert_same(sparse, dense)
    assert len(sparse.trades) == 20
    assert all(t.exit_ts == t.entry_ts for t in sparse.trades)


@pytest.mark.parametrize(
    "params",
    [{"trailing_stop": 0.02}, {"stop_loss": 0.03, "take_profit": 0.05, "trailing_stop": 0.015}],
    ids=["trailing", "all-levels"],
)
def test_an_entry_is_scanned_at_its_fill_and_its_position_built_once(
    sample_1h: Path, monkeypatch: pytest.MonkeyPatch, params: dict[str, float]
) -> None:
    # Arrange: count the positions the broker builds, its exit checks and its later scans
    import tradeloop.execution.simulated as simulated

    bars = load_ohlcv(sample_1h).bars
    counts = {"built": 0, "checks": 0, "later_scans": 0}
    position, on_bar_range = simulated.Position, simulated.SimulatedBroker.on_bar_range
    skip_to_exit = simulated.SimulatedBroker.skip_to_exit

    def build(*args):  # type: ignore[no-untyped-def]
        counts["built"] += 1
        return position(*args)

    def check(self, *args):  # type: ignore[no-untyped-def]
        counts["checks"] += 1
        return on_bar_range(self, *args)

    def scan(self, *args):  # type: ignore[no-untyped-def]
        counts["later_scans"] += 1
        return skip_to_exit(self, *args)

    monkeypatch.setattr(simulated, "Position", build)
    monkeypatch.setattr(simulated.SimulatedBroker, "on_bar_range", check)
    monkeypatch.setattr(simulated.SimulatedBroker, "skip_to_exit", scan)
    # Act
    sparse = _sparse_equals_every_bar(bars, params, monkeypatch)
    # Assert: the same run (above); one position per entry (its anchor moved over the scanned
    # bars when it is built), another only where the broker checked a bar or scanned on from
    # a wake bar the position outlived; the first entry alone is scanned after its fill
    trades = len(sparse.trades)
    assert trades > 500
    assert trades <= counts["built"] <= trades + counts["checks"] + counts["later_scans"]
    assert counts["later_scans"] < trades // 10
    assert counts["built"] < trades + trades // 10  # was about two per trade


def _count_scans(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Count the exit scans (at fills and later), the span tests and the window builds."""
    import tradeloop.engine.kernel as kernel
    import tradeloop.execution.simulated as simulated

    counts = {"scans": 0, "spans": 0, "windows": 0}

    def counted(owner: object, name: str, key: str) -> None:
        real = getattr(owner, name)

        def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
            counts[key] += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(owner, name, wrapper)

    counted(simulated, "range_exit_bar", "scans")
    counted(simulated, "next_exit_bar_of", "scans")
    counted(simulated.SimulatedBroker, "skip_to_exit", "scans")
    counted(simulated, "span_clear", "spans")  # a carried position's span
    counted(kernel, "window_extremes", "windows")
    opened = simulated.SimulatedBroker._open

    def open_with_span(broker, *args, **kwargs):  # type: ignore[no-untyped-def]
        # an entry's span, handed to the broker with its fill (it tests it there, inlined)
        counts["spans"] += broker.fill_span is not None
        return opened(broker, *args, **kwargs)

    monkeypatch.setattr(simulated.SimulatedBroker, "_open", open_with_span)
    return counts


def test_entries_whose_span_reaches_no_level_are_not_scanned(
    sample_1h: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange: levels far from every price the position meets before the next cross (a stop
    # 40% away, a target at +150%, a 30% trailing stop): each span's extremes say so

    bars = load_ohlcv(sample_1h).bars
    params = {"stop_loss": 0.4, "take_profit": 1.5, "trailing_stop": 0.3}
    counts = _count_scans(monkeypatch)
    # Act
    sparse = _sparse_equals_every_bar(bars, params, monkeypatch)
    # Assert: the same run (above), the trailing anchors included (the equity is marked with
    # them); a span test answers every entry but those whose span crosses one of the loop's
    # 100 chunk ends (or runs to the end of the data): each of those is scanned, at its fill
    # and once more from the next chunk's first bar; no window extremes are built
    entries = len(sparse.trades)
    assert entries > 500
    assert entries - 100 <= counts["spans"] <= entries
    assert counts["scans"] <= 2 * 100 + 1
    assert counts["windows"] == 0


def test_window_extremes_are_built_once_the_bars_read_one_by_one_would_pay_for_them(
    sample_1h: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange: positions held across many wake bars with a trailing stop (spans that reach a
    # level are scanned bar by bar until the bars read pass an eighth of the run)
    import tradeloop.engine.kernel as kernel

    cls = discover_strategies(None)["rsi_reversion"].cls
    bars = load_ohlcv(sample_1h).bars
    built_after: list[int] = []
    real = kernel.window_extremes
    broker_of: list[object] = []
    real_init = kernel.BacktestEngine.__init__

    def keep_broker(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        real_init(self, *args, **kwargs)
        broker_of.append(self.broker)

    def built(highs, lows):  # type: ignore[no-untyped-def]
        built_after.append(broker_of[-1].windowless_bars)  # type: ignore[attr-defined]
        return real(highs, lows)

    monkeypatch.setattr(kernel.BacktestEngine, "__init__", keep_broker)
    monkeypatch.setattr(kernel, "window_extremes", built)
    # Act: the whole sample, and its first 4,000 bars
    _run(cls(trailing_stop=0.03), bars, RunConfig(fee=0.001))
    whole = list(built_after)
    built_after.clear()
    _run(cls(trailing_stop=0.03), bars.slice(0, 4_000), RunConfig(fee=0.001))
    short = list(built_after)
    # Assert: built once per run, only after more than an eighth of its bars were read one
    # by one (the scans before it read the bars without them)
    assert len(whole) == len(short) == 1
    assert whole[0] > len(bars.close) // 8
    assert short[0] > 4_000 // 8
