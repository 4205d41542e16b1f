"""Property tests of the backtest kernel and simulated broker on random paths and schedules.

The accounting is rebuilt independently from the trade list: cash moves by ``-d*q*entry -
entry_fee`` at each entry and ``+d*q*exit - exit_fee`` at each exit, and equity is cash plus
the signed quantity held times the close.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tradeloop.core.bar import BarArrays
from tradeloop.core.portfolio import Portfolio
from tradeloop.core.position import Trade
from tradeloop.core.signal import Signal
from tradeloop.core.time import parse_time
from tradeloop.engine.config import RunConfig
from tradeloop.engine.result import BacktestResult
from tradeloop.engine.runner import run_on_bars
from tradeloop.strategy.base import NO_SIGNALS, Strategy
from tradeloop.strategy.view import MarketView

HOUR = 3_600_000_000_000
T0 = parse_time("2024-01-01T00:00:00Z")
SYM = "XBT"
BALANCE = 10_000.0


@dataclass(frozen=True)
class Order:
    """One scheduled action: ``kind`` is long, short or close; fractions are of the close."""

    kind: str
    size: float = 1.0
    stop: float | None = None
    target: float | None = None
    trail: float | None = None


class Scheduled(Strategy):
    """Emits the scheduled order of bar ``view.i`` with stops placed around its close."""

    name = "scheduled"

    def __init__(self, orders: Sequence[Order | None]) -> None:
        super().__init__()
        self.orders = list(orders)

    def on_bar(self, view: MarketView, portfolio: Portfolio) -> Sequence[Signal]:
        order = self.orders[view.i]
        if order is None:
            return NO_SIGNALS
        if order.kind == "close":
            return [Signal.close(SYM)]
        price = view.close(SYM)
        d = 1 if order.kind == "long" else -1
        stop = price * (1 - d * order.stop) if order.stop else None
        target = price * (1 + d * order.target) if order.target else None
        factory = Signal.open_long if d > 0 else Signal.open_short
        return [
            factory(SYM, order.size, stop_loss=stop, take_profit=target, trailing_stop=order.trail)
        ]


fractions = st.one_of(st.none(), st.floats(0.002, 0.1))
actions = st.one_of(
    st.builds(Order, st.just("close")),
    st.builds(
        Order,
        st.sampled_from(["long", "short"]),
        st.floats(0.05, 1.0),
        fractions,
        fractions,
        st.one_of(st.none(), st.floats(0.002, 0.1)),
    ),
)
orders = st.one_of(st.none(), st.none(), actions)


@st.composite
def price_paths(draw: st.DrawFn) -> BarArrays:
    """Positive OHLC bars: open near the previous close, high/low enclose open and close."""
    n = draw(st.integers(2, 40))
    rets = np.array(draw(st.lists(st.floats(-0.06, 0.06), min_size=n, max_size=n)))
    gaps = np.array(draw(st.lists(st.floats(-0.02, 0.02), min_size=n, max_size=n)))
    ups = np.array(draw(st.lists(st.floats(0.0, 0.03), min_size=n, max_size=n)))
    downs = np.array(draw(st.lists(st.floats(0.0, 0.03), min_size=n, max_size=n)))
    close = 100.0 * np.exp(np.cumsum(rets))
    prev = np.concatenate(([100.0], close[:-1]))
    open_ = prev * (1 + gaps)
    high = np.maximum(open_, close) * (1 + ups)
    low = np.minimum(open_, close) * (1 - downs)
    ts = T0 + np.arange(n, dtype=np.int64) * HOUR
    return BarArrays(SYM, "1h", ts, open_, high, low, close, np.ones(n))


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[BarArrays, list[Order | None], RunConfig]:
    bars = draw(price_paths())
    schedule = draw(st.lists(orders, min_size=len(bars), max_size=len(bars)))
    config = RunConfig(
        balance=BALANCE,
        fee=draw(st.floats(0.0, 0.01)),
        slippage_bps=draw(st.sampled_from([0.0, 5.0, 25.0])),
        fill_price=draw(st.sampled_from(["next_open", "close"])),
        close_at_end=draw(st.booleans()),
    )
    return bars, schedule, config


def run(scenario: tuple[BarArrays, list[Order | None], RunConfig]) -> BacktestResult:
    bars, schedule, config = scenario
    return run_on_bars(Scheduled(schedule), {SYM: bars}, config)


def held_at(trades: Sequence[Trade], ts: int) -> float:
    """Signed quantity held at the close of the step opened at ``ts``."""
    return math.fsum(
        t.direction * t.quantity
        for t in trades
        if t.entry_ts <= ts and (t.exit_ts is None or t.exit_ts > ts)
    )


def cash_at(trades: Sequence[Trade], ts: int) -> float:
    """Cash after every fill up to and including the step opened at ``ts``."""
    flows = [BALANCE]
    for t in trades:
        if t.entry_ts <= ts:
            flows.append(-(t.direction * t.quantity * t.entry_price) - t.entry_fee)
        if t.exit_ts is not None and t.exit_ts <= ts:
            assert t.exit_price is not None
            flows.append(t.direction * t.quantity * t.exit_price - t.exit_fee)
    return math.fsum(flows)


@settings(max_examples=60, deadline=None)
@given(scenarios())
def test_properties_final_equity_equals_balance_plus_closed_and_open_pnl(
    scenario: tuple[BarArrays, list[Order | None], RunConfig],
) -> None:
    # Arrange / Act
    result = run(scenario)
    # Assert
    closed = math.fsum(t.pnl for t in result.trades if t.is_closed)
    still_open = math.fsum(t.pnl for t in result.trades if not t.is_closed)
    expected = BALANCE + closed + still_open
    assert math.isclose(result.equity[-1], expected, rel_tol=1e-6, abs_tol=1e-6 * BALANCE)
    assert math.isclose(result.metrics.final_equity, result.equity[-1], rel_tol=1e-12)
    if scenario[2].close_at_end:
        assert all(t.is_closed for t in result.trades)


@settings(max_examples=60, deadline=None)
@given(scenarios())
def test_properties_equity_is_cash_plus_held_quantity_times_close_every_step(
    scenario: tuple[BarArrays, list[Order | None], RunConfig],
) -> None:
    # Arrange
    bars = scenario[0]
    # Act
    result = run(scenario)
    # Assert
    for k, ts in enumerate(result.ts.tolist()):
        cash = cash_at(result.trades, ts)
        equity = cash + held_at(result.trades, ts) * float(bars.close[k])
        assert math.isclose(result.cash[k], cash, rel_tol=1e-9, abs_tol=1e-6), k
        assert math.isclose(result.equity[k], equity, rel_tol=1e-9, abs_tol=1e-6), k
        assert result.exposure[k] == (held_at(result.trades, ts) != 0), k


@settings(max_examples=60, deadline=None)
@given(scenarios())
def test_properties_trades_positive_and_curves_finite(
    scenario: tuple[BarArrays, list[Order | None], RunConfig],
) -> None:
    # Arrange / Act
    result = run(scenario)
    # Assert
    assert not np.isnan(result.equity).any()
    assert not np.isnan(result.cash).any()
    for t in result.trades:
        assert t.quantity > 0
        assert t.direction in (1, -1)
        assert math.isfinite(t.pnl)
        assert t.entry_fee >= 0
        assert t.exit_fee >= 0


@settings(max_examples=60, deadline=None)
@given(scenarios())
def test_properties_fills_inside_bar_range_and_positions_never_overlap(
    scenario: tuple[BarArrays, list[Order | None], RunConfig],
) -> None:
    # Arrange
    bars, _, config = scenario
    slip = config.slippage_bps / 10_000
    row = {int(ts): k for k, ts in enumerate(bars.ts.tolist())}
    # Act
    result = run(scenario)
    # Assert: every fill price, slippage removed, lies within its bar's low..high
    for t in result.trades:
        fills = [(t.entry_ts, t.entry_price)]
        if t.exit_ts is not None:
            assert t.exit_price is not None
            fills.append((t.exit_ts, t.exit_price))
        for ts, price in fills:
            k = row[ts]
            lo = float(bars.low[k]) * (1 - slip) * (1 - 1e-12)
            hi = float(bars.high[k]) * (1 + slip) * (1 + 1e-12)
            assert lo <= price <= hi
    # one position at a time: each trade starts no earlier than the previous one ended
    ordered = sorted(result.trades, key=lambda t: (t.entry_ts, t.exit_ts is None))
    for before, after in itertools.pairwise(ordered):
        assert before.exit_ts is not None
        assert before.exit_ts <= after.entry_ts


# --------------------------------------------------------------------------- two symbols


class ScheduledPair(Strategy):
    """Emits ``(symbol, order)`` pairs scheduled for engine step ``view.step``."""

    name = "scheduled_pair"

    def __init__(self, orders: Sequence[tuple[str, Order] | None]) -> None:
        super().__init__()
        self.orders = list(orders)

    def on_bar(self, view: MarketView, portfolio: Portfolio) -> Sequence[Signal]:
        item = self.orders[view.step] if view.step < len(self.orders) else None
        if item is None:
            return NO_SIGNALS
        symbol, order = item
        if order.kind == "close":
            return [Signal.close(symbol)]
        factory = Signal.open_long if order.kind == "long" else Signal.open_short
        return [factory(symbol, order.size)]


@st.composite
def gappy_pairs(
    draw: st.DrawFn,
) -> tuple[dict[str, BarArrays], list[tuple[str, Order] | None], RunConfig]:
    n = draw(st.integers(2, 25))
    bars = {}
    for symbol in ("A", "B"):
        mask = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
        mask[draw(st.integers(0, n - 1))] = True  # at least one bar
        path = draw(price_paths())
        hours = np.flatnonzero(mask)
        m = min(len(hours), len(path))
        ts = T0 + hours[:m].astype(np.int64) * HOUR
        bars[symbol] = BarArrays(
            symbol, "1h", ts, path.open[:m], path.high[:m], path.low[:m], path.close[:m], np.ones(m)
        )
    pair = st.tuples(st.sampled_from(["A", "B"]), actions)
    schedule = draw(st.lists(st.one_of(st.none(), pair), min_size=n, max_size=n))
    config = RunConfig(
        balance=BALANCE, fee=draw(st.floats(0.0, 0.01)), close_at_end=draw(st.booleans())
    )
    return bars, schedule, config


@settings(max_examples=60, deadline=None)
@given(gappy_pairs())
def test_properties_two_symbols_with_gaps_equity_is_cash_plus_latest_marks(
    scenario: tuple[dict[str, BarArrays], list[tuple[str, Order] | None], RunConfig],
) -> None:
    # Arrange
    bars, schedule, config = scenario
    # Act
    result = run_on_bars(ScheduledPair(schedule), bars, config)
    # Assert: steps are the union of both symbols' bar times
    expected_steps = np.union1d(bars["A"].ts, bars["B"].ts)
    np.testing.assert_array_equal(result.ts, expected_steps)
    for k, ts in enumerate(result.ts.tolist()):
        equity = cash_at(result.trades, ts)
        for symbol, series in bars.items():
            trades = [t for t in result.trades if t.symbol == symbol]
            held = held_at(trades, ts)
            latest = int(np.searchsorted(series.ts, ts, side="right")) - 1
            if held:
                equity += held * float(series.close[latest])
        assert math.isclose(result.equity[k], equity, rel_tol=1e-9, abs_tol=1e-6), k
    # every fill happened on a bar of its own symbol (or at the end with close_at_end)
    for t in result.trades:
        assert t.entry_ts in set(bars[t.symbol].ts.tolist())
        if t.exit_ts is not None:
            assert t.exit_ts in set(bars[t.symbol].ts.tolist()) or t.exit_ts == result.end
