"""The strategy manager: several strategies on one account through the one kernel step.

Parity (backtest = paper), allocation, ownership and conflicts on a netting account,
per-member P&L, a restart through the state store, and hot reload."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tradeloop.core.bar import BarArrays
from tradeloop.core.errors import ConfigError, StrategyError
from tradeloop.core.portfolio import Portfolio
from tradeloop.core.position import ExitReason, Trade
from tradeloop.core.signal import Signal, signal_id
from tradeloop.data.loader import load_ohlcv
from tradeloop.engine.config import RunConfig
from tradeloop.engine.kernel import BacktestEngine
from tradeloop.engine.live import LiveKernel
from tradeloop.engine.market import MarketData
from tradeloop.engine.parity import trade_key
from tradeloop.store.state import SqliteStateStore
from tradeloop.strategy.base import NO_SIGNALS, Strategy
from tradeloop.strategy.examples.mtf_trend import MtfTrend
from tradeloop.strategy.examples.rsi_reversion import RsiReversion
from tradeloop.strategy.examples.sma_cross import SmaCross
from tradeloop.strategy.manager import (
    Allocation,
    StrategyManager,
    StrategyPnL,
    member_of,
    pnl_by_strategy,
)
from tradeloop.strategy.params import Param
from tradeloop.strategy.registry import discover_strategies
from tradeloop.strategy.view import MarketView
from tradeloop.testing.kernels import bar_row, stream_bars, test_instrument

WARMUP = 300


class EveryNth(Strategy):
    """A counter kept in ``on_bar``, nothing precomputed: enters every `every`-th bar it sees
    (equity fraction `size`) and closes `every` // 2 bars later."""

    name = "every_nth"
    every = Param(20, min=2)
    size = Param(0.5, min=0.0, max=1.0)
    #: (instance id, bars seen) of every on_init call
    inits: ClassVar[list[tuple[int, int]]] = []

    def on_init(self, view: MarketView) -> None:
        self.count = 0
        self.seen_equity: list[float] = []
        EveryNth.inits.append((id(self), len(view.arrays())))

    def on_bar(self, view: MarketView, portfolio: Portfolio) -> Sequence[Signal]:
        self.count += 1
        self.seen_equity.append(portfolio.equity)
        symbol = view.symbols[0]
        if portfolio.is_flat(symbol):
            if self.count % self.every == 0:
                return [Signal.open_long(symbol, self.size, tag="nth")]
        elif self.count % self.every == self.every // 2:
            return [Signal.close(symbol, tag="nth")]
        return NO_SIGNALS

    def get_state(self) -> dict[str, Any]:
        return {"count": self.count}

    def set_state(self, state: dict[str, Any]) -> None:  # type: ignore[override]
        self.count = int(state["count"])


class Scripted(Strategy):
    """Returns the signals scripted for a bar index (``view.i``), ``(action, size[, symbol])``
    with the view's first symbol by default, and records what it saw at every bar:
    ``(bar, flat in the first symbol, equity)``."""

    def __init__(self, script: dict[int, list[tuple[Any, ...]]], **params: Any) -> None:
        super().__init__(**params)
        self.script = script
        self.saw: list[tuple[int, bool, float]] = []

    def on_bar(self, view: MarketView, portfolio: Portfolio) -> Sequence[Signal]:
        symbol = view.symbols[0]
        self.saw.append((view.i, portfolio.is_flat(symbol), portfolio.equity))
        out = []
        for action, size, *where in self.script.get(view.i, []):
            symbol = where[0] if where else view.symbols[0]
            if action == "long":
                out.append(Signal.open_long(symbol, size))
            elif action == "short":
                out.append(Signal.open_short(symbol, size))
            else:
                out.append(Signal.close(symbol))
        return out


class FourHourTrend(Strategy):
    """Declares a 15m base and a 1d informative timeframe (never trades)."""

    name = "four_hour_trend"
    timeframes = ("15m", "1d")
    symbols = ("ETH/USDT",)
    inputs = ("liquidation_zones",)

    def on_bar(self, view: MarketView, portfolio: Portfolio) -> Sequence[Signal]:
        return NO_SIGNALS


# -- fixtures and helpers ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def btc_1m(shared_data: Path) -> BarArrays:
    bars = load_ohlcv(shared_data / "crypto_1m/binance_spot_2025/BTC_USDT-1m.feather").bars
    return bars.slice(0, 3_000)


@pytest.fixture(scope="module")
def perps_5m(shared_data: Path) -> dict[str, BarArrays]:
    folder = shared_data / "crypto_futures/binance_usdm_2025"
    out = {}
    for name in ("BTC", "ETH"):
        bars = load_ohlcv(folder / f"{name}_USDT_USDT-5m-futures.feather").bars.slice(0, 2_000)
        out[bars.symbol] = bars
    return out


@pytest.fixture(scope="module")
def btc_1h(sample_1h: Path) -> BarArrays:
    return load_ohlcv(sample_1h).bars.slice(0, 12_000)


def _engine(strategy: Strategy, sources: dict[str, BarArrays], cfg: RunConfig) -> BacktestEngine:
    tf = next(iter(sources.values())).timeframe
    extra = tuple(t for t in strategy.timeframes[1:] if t != tf)
    market = MarketData(sources, {s: test_instrument(s) for s in sources}, tf, extra)
    return BacktestEngine(strategy, market, cfg)


def _paper(
    strategy: Strategy, sources: dict[str, BarArrays], cfg: RunConfig, warmup: int, **kw: Any
) -> LiveKernel:
    tf = next(iter(sources.values())).timeframe
    kernel = LiveKernel(strategy, {s: test_instrument(s) for s in sources}, tf, cfg, **kw)
    kernel.warm_up({s: [bar_row(b, i) for i in range(warmup)] for s, b in sources.items()})
    return kernel


def _closed(trades: Sequence[Trade]) -> list[Trade]:
    return [t for t in trades if t.exit_ts is not None]


def _keys(trades: Sequence[Trade]) -> list[tuple[Any, ...]]:
    return [trade_key(t) for t in trades]


# -- declaration and configuration errors ---------------------------------------------------------


def test_manager_declares_shared_base_extra_timeframes_symbols_and_inputs() -> None:
    # Arrange
    members = [
        Allocation(MtfTrend(), 0.3, symbols=("ETH/USDT",)),
        Allocation(FourHourTrend(), 0.3),
        Allocation(SmaCross(), 0.2, symbols=("BTC/USDT",)),
    ]
    # Act
    manager = StrategyManager(members)
    everything = StrategyManager([*members, Allocation(RsiReversion(), 0.2)])
    # Assert
    assert manager.timeframes == ("15m", "4h", "1d")
    assert manager.symbols == ("ETH/USDT", "BTC/USDT")
    assert manager.inputs == ("liquidation_zones",)
    assert manager.names == ("mtf_trend", "four_hour_trend", "sma_cross")
    assert everything.symbols == ()  # rsi_reversion trades every symbol of the run
    assert manager.strategy_name() == "strategy_manager"


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([], "at least one member"),
        ([Allocation(SmaCross(), 0.0)], r"member 'sma_cross': weight must be in \(0, 1\]"),
        ([Allocation(SmaCross(), 1.5)], r"member 'sma_cross': weight must be in \(0, 1\]"),
        ([Allocation(SmaCross(), float("nan"))], "member 'sma_cross': weight"),
        (
            [Allocation(SmaCross(), 0.7), Allocation(RsiReversion(), 0.4)],
            r"sum to 1.1, more than 1 \(sma_cross=0.7, rsi_reversion=0.4\)",
        ),
        (
            [Allocation(SmaCross(), 0.5), Allocation(SmaCross(fast=5), 0.5)],
            "two members are named 'sma_cross'; give one of them a `name`",
        ),
        (
            [
                Allocation(MtfTrend(), 0.5),
                Allocation(FourHourTrend(), 0.2),
                Allocation(type("Daily", (EveryNth,), {"timeframes": ("1d",)})(), 0.2),
            ],
            "member 'every_nth' trades on '1d' but member 'mtf_trend' on '15m'",
        ),
        ([Allocation(SmaCross(), 0.5, name="a:b")], "member name 'a:b' is not usable"),
        (
            [Allocation(StrategyManager([Allocation(SmaCross(), 1.0)]), 0.5)],
            "managers do not nest",
        ),
    ],
    ids=["empty", "zero", "above_one", "nan", "sum", "duplicate", "base_tf", "colon", "nested"],
)
def test_manager_refuses_bad_configuration_naming_the_member(
    members: list[Allocation], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        StrategyManager(members)


def test_manager_refuses_one_strategy_object_for_two_members() -> None:
    shared = SmaCross()
    with pytest.raises(ConfigError, match="'a' and 'b' are the same strategy object"):
        StrategyManager([Allocation(shared, 0.5, name="a"), Allocation(shared, 0.5, name="b")])


def test_member_trading_a_symbol_without_data_is_refused_by_name(btc_1h: BarArrays) -> None:
    # Arrange: the run has BTC only (on_init is called directly: a backtest engine would
    # already refuse the union of the members' symbols, without naming the member)
    manager = StrategyManager(
        [
            Allocation(SmaCross(), 0.5, name="btc", symbols=("BTC/USDT",)),
            Allocation(SmaCross(), 0.5, name="eth", symbols=("ETH/USDT",)),
        ]
    )
    market = MarketData({btc_1h.symbol: btc_1h}, {btc_1h.symbol: test_instrument("BTC/USDT")}, "1h")
    # Act / Assert
    with pytest.raises(ConfigError, match=r"member 'eth' trades \['ETH/USDT'\]"):
        manager.on_init(market.view())


def test_registry_never_offers_the_manager_as_a_plain_strategy(tmp_path: Path) -> None:
    # Arrange: a user file that imports the manager and defines a preset combination
    (tmp_path / "combo.py").write_text(
        "from tradeloop.strategy.manager import Allocation, StrategyManager\n"
        "from tradeloop.strategy.examples.sma_cross import SmaCross\n"
        "from tradeloop.strategy.examples.rsi_reversion import RsiReversion\n\n"
        "class Combo(StrategyManager):\n"
        '    """Trend and reversion, half each."""\n\n'
        "    def __init__(self):\n"
        "        super().__init__([Allocation(SmaCross(), 0.5), Allocation(RsiReversion(), 0.5)])\n"
    )
    # Act
    bundled = discover_strategies(None)
    with_user = discover_strategies(tmp_path)
    # Assert: the manager itself is not listed; the user's preset is, needing no parameters
    assert "strategy_manager" not in bundled
    assert "strategy_manager" not in with_user
    combo = with_user["combo"].cls
    assert combo.parameters() == {}
    assert combo().names == ("sma_cross", "rsi_reversion")  # type: ignore[attr-defined]


# -- one member at weight 1 is the member itself ---------------------------------------------------


def test_one_member_at_full_weight_gives_exactly_the_members_own_backtest(
    btc_1h: BarArrays,
) -> None:
    # Arrange
    cfg = RunConfig(fee=0.001, slippage_bps=2.0, risk="default")
    sources = {btc_1h.symbol: btc_1h}
    alone = _engine(SmaCross(short=True, stop_loss=0.02), sources, cfg)
    managed = _engine(
        StrategyManager([Allocation(SmaCross(short=True, stop_loss=0.02), 1.0)]), sources, cfg
    )
    renamed = _engine(
        StrategyManager([Allocation(SmaCross(short=True, stop_loss=0.02), 1.0, name="trend")]),
        sources,
        cfg,
    )
    # Act
    a, b, c = alone.run(), managed.run(), renamed.run()
    # Assert: the default member name is the strategy's, so even the ids agree
    assert len(a.trades) > 20
    assert b.trades == a.trades
    assert managed.orders == alone.orders
    assert b.signals == a.signals
    assert (b.equity == a.equity).all()
    # another name changes only the ids, which carry it
    assert [t.id for t in c.trades] == [t.id.replace("sma_cross:", "trend:") for t in a.trades]
    assert [trade_key(t)[1:] for t in c.trades] == [trade_key(t)[1:] for t in a.trades]


# -- allocation ------------------------------------------------------------------------------------


def test_a_quarter_allocation_buys_a_quarter_of_the_notional(btc_1h: BarArrays) -> None:
    # Arrange: the same member alone and at weight 0.25; 10,000 cash, size 0.5, fee 0.1%
    sources = {btc_1h.symbol: btc_1h}
    cfg = RunConfig(balance=10_000)
    alone = _engine(EveryNth(every=20, size=0.5), sources, cfg)
    managed = _engine(
        StrategyManager([Allocation(EveryNth(every=20, size=0.5), 0.25, name="nth")]),
        sources,
        cfg,
    )
    # Act
    a, m = alone.run(), managed.run()
    # Assert: the first entry (the 20th bar's signal, filled at the next bar's open)
    entry = float(btc_1h.open[20])
    first_alone, first_managed = a.trades[0], m.trades[0]
    assert first_alone.entry_price == first_managed.entry_price == entry
    # 5,000 and 1,250 to spend, fee included, rounded down to the 0.00001 lot
    assert first_alone.quantity == pytest.approx(int(5_000 / (entry * 1.001) * 1e5) / 1e5)
    assert first_managed.quantity == pytest.approx(int(1_250 / (entry * 1.001) * 1e5) / 1e5)
    assert first_managed.quantity * entry == pytest.approx(
        first_alone.quantity * entry / 4, abs=entry * 1e-5
    )
    assert managed.orders[0].equity_fraction == 0.125
    # the member's view shows a quarter of the account
    member = managed.strategy.member("nth")  # type: ignore[attr-defined]
    assert member.seen_equity[0] == 2_500.0
    assert a.trades[0].id == "every_nth:BTC/USDT:" + str(int(btc_1h.ts[19]))
    assert m.trades[0].id == signal_id("nth", "BTC/USDT", int(btc_1h.ts[19]))


# -- ownership and conflicts -----------------------------------------------------------------------


def test_ownership_conflicts_and_a_reversal_by_the_owner(btc_1h: BarArrays) -> None:
    # Arrange: "a" opens at bar 10 and closes at 30; "b" tries to open at 15 and close at 20
    # (not its position), then opens at 40 (free again) and closes at 45. "a" opens long at
    # 50, reverses to short at 60 (its own position: allowed), "b" tries at 65, "a" closes
    # at 70. "a" and "b" also open on the same bar 80: the first member wins.
    a = Scripted(
        {
            10: [("long", 1.0)],
            30: [("close", 0)],
            50: [("long", 1.0)],
            60: [("short", 1.0)],
            70: [("close", 0)],
            80: [("long", 1.0)],
            85: [("close", 0)],
        },
    )
    b = Scripted(
        {
            15: [("long", 1.0)],
            20: [("close", 0)],
            40: [("long", 1.0)],
            45: [("close", 0)],
            65: [("short", 1.0)],
            80: [("long", 1.0)],
        },
    )
    manager = StrategyManager([Allocation(a, 0.5, name="a"), Allocation(b, 0.5, name="b")])
    bars = btc_1h.slice(0, 100)
    engine = _engine(manager, {bars.symbol: bars}, RunConfig(balance=10_000))
    # Act
    result = engine.run()
    # Assert: the trades, their owners and times (fills at the next bar's open)
    ts = [int(t) for t in bars.ts]
    got = [(t.id, t.entry_ts, t.exit_ts, t.direction, t.exit_reason) for t in result.trades]
    assert got == [
        (f"a:BTC/USDT:{ts[10]}", ts[11], ts[31], 1, ExitReason.SIGNAL),
        (f"b:BTC/USDT:{ts[40]}", ts[41], ts[46], 1, ExitReason.SIGNAL),
        (f"a:BTC/USDT:{ts[50]}", ts[51], ts[61], 1, ExitReason.SIGNAL),
        (f"a:BTC/USDT:{ts[60]}", ts[61], ts[71], -1, ExitReason.SIGNAL),
        (f"a:BTC/USDT:{ts[80]}", ts[81], ts[86], 1, ExitReason.SIGNAL),
    ]
    assert manager.conflicts == {"a": 0, "b": 3}  # bars 15, 65 and 80
    assert manager.ignored_closes == {"a": 0, "b": 1}  # bar 20
    # each member saw only its own position: "b" flat while "a" held, and the reverse
    a_flat = {i: flat for i, flat, _ in a.saw}
    b_flat = {i: flat for i, flat, _ in b.saw}
    assert [a_flat[i] for i in (11, 30, 31, 41, 51, 61, 70)] == [
        False,
        False,
        True,
        True,
        False,
        False,
        False,
    ]
    assert [b_flat[i] for i in (11, 30, 41, 45, 46, 51, 61)] == [
        True,
        True,
        False,
        False,
        True,
        True,
        True,
    ]
    # equity seen is half the account's
    assert a.saw[0][2] == b.saw[0][2] == 5_000.0
    assert manager.portfolio_of("a").trades[0].id == f"a:BTC/USDT:{ts[10]}"
    assert [t.id for t in manager.portfolio_of("b").trades] == [f"b:BTC/USDT:{ts[40]}"]


def test_an_entry_waiting_for_its_open_holds_the_symbol_across_steps(
    perps_5m: dict[str, BarArrays],
) -> None:
    # Arrange: ETH has no bars for steps 30-39 (BTC has), so an ETH entry sent at step 29
    # waits ten steps for its open. "eth" (trades ETH only) enters at its bar 29; "any"
    # (trades every symbol) tries to short ETH at step 33, while the entry still waits, and
    # again at step 65, after "eth" closed at its bar 50
    btc, eth = perps_5m["BTC/USDT:USDT"].slice(0, 80), perps_5m["ETH/USDT:USDT"].slice(0, 80)
    keep = [i for i in range(80) if not 30 <= i < 40]
    eth = BarArrays(
        eth.symbol,
        eth.timeframe,
        *(getattr(eth, c)[keep] for c in ("ts", "open", "high", "low", "close", "volume")),
    )
    first = Scripted({29: [("long", 1.0)], 50: [("close", 0)]})
    second = Scripted({33: [("short", 1.0, eth.symbol)], 65: [("short", 1.0, eth.symbol)]})
    manager = StrategyManager(
        [
            Allocation(first, 0.5, name="eth", symbols=(eth.symbol,)),
            Allocation(second, 0.5, name="any"),
        ]
    )
    engine = _engine(manager, {btc.symbol: btc, eth.symbol: eth}, RunConfig())
    # Act
    result = engine.run()
    # Assert: the waiting entry filled at ETH's next open (step 40) and stayed "eth"'s; the
    # short at step 33 was dropped; the one at step 65 (ETH bar 55, after the close at ETH
    # bar 51) went through
    ts = [int(t) for t in eth.ts]
    got = [(t.id, t.entry_ts, t.exit_ts, t.direction) for t in result.trades]
    assert got == [
        (f"eth:{eth.symbol}:{ts[29]}", ts[30], ts[51], 1),
        (f"any:{eth.symbol}:{int(btc.ts[65])}", ts[56], None, -1),
    ]
    assert manager.conflicts == {"eth": 0, "any": 1}
    assert [i for i, _, _ in first.saw][28:32] == [28, 29, 30, 31]  # called on ETH bars only
    assert len(first.saw) == 70


def test_state_round_trips_through_json_with_a_waiting_entry(
    perps_5m: dict[str, BarArrays],
) -> None:
    # Arrange: stop at step 35, while "eth"'s entry of step 29 waits for ETH's next bar
    btc, eth = perps_5m["BTC/USDT:USDT"].slice(0, 36), perps_5m["ETH/USDT:USDT"].slice(0, 30)

    def manager() -> StrategyManager:
        return StrategyManager(
            [
                Allocation(Scripted({29: [("long", 1.0)]}), 0.4, name="eth", symbols=(eth.symbol,)),
                Allocation(EveryNth(every=4), 0.3, name="nth", symbols=(btc.symbol,)),
                Allocation(Scripted({33: [("short", 1.0, eth.symbol)]}), 0.3, name="any"),
            ]
        )

    running = manager()
    _engine(running, {btc.symbol: btc, eth.symbol: eth}, RunConfig()).run()
    state = running.get_state()
    # Act: what a store keeps, into a new process's manager (after its on_init)
    restored = manager()
    market = MarketData(
        {btc.symbol: btc, eth.symbol: eth},
        {s: test_instrument(s) for s in (btc.symbol, eth.symbol)},
        "5m",
    )
    restored.on_init(market.view())
    restored.set_state(json.loads(json.dumps(state)))
    # Assert
    waiting = f"eth:{eth.symbol}:{int(eth.ts[29])}"
    assert state["ownership"][eth.symbol] == {
        "position_id": waiting,
        "pending_since": int(eth.ts[29]),
    }
    assert restored.ownership()[eth.symbol] == waiting
    assert restored.get_state() == state
    assert restored.member("nth").count == 36  # type: ignore[attr-defined]
    assert state["members"]["nth"] == {"count": 36}
    assert state["conflicts"] == {"eth": 0, "nth": 0, "any": 1}  # step 33: ETH was claimed


def test_a_member_signal_outside_its_symbols_is_a_strategy_error(
    perps_5m: dict[str, BarArrays],
) -> None:
    # Arrange: "btc" trades only BTC but opens ETH at its sixth bar
    class Stray(Scripted):
        def on_bar(self, view: MarketView, portfolio: Portfolio) -> Sequence[Signal]:
            return [Signal.open_long("ETH/USDT:USDT", 0.5)] if view.i == 5 else NO_SIGNALS

    manager = StrategyManager([Allocation(Stray({}), 0.5, name="btc", symbols=("BTC/USDT:USDT",))])
    sources = {s: b.slice(0, 20) for s, b in perps_5m.items()}
    # Act / Assert
    with pytest.raises(StrategyError, match=r"strategy 'btc'.*'ETH/USDT:USDT', which is not one"):
        _engine(manager, sources, RunConfig()).run()


def test_a_member_on_one_symbol_trades_as_it_would_alone(perps_5m: dict[str, BarArrays]) -> None:
    # Arrange: rsi_reversion on ETH inside a two-symbol manager, and alone on ETH
    eth = "ETH/USDT:USDT"
    cfg = RunConfig(balance=10_000)
    manager = StrategyManager(
        [
            Allocation(SmaCross(fast=8, slow=30), 0.5, symbols=("BTC/USDT:USDT",)),
            Allocation(RsiReversion(), 0.5, symbols=(eth,)),
        ]
    )
    both = _engine(manager, perps_5m, cfg).run()
    alone = _engine(RsiReversion(), {eth: perps_5m[eth]}, cfg).run()
    # Act
    in_manager = [t for t in both.trades if t.symbol == eth]

    def timing(t: Trade) -> tuple[Any, ...]:
        return (t.id, t.entry_ts, t.exit_ts, t.entry_price, t.exit_price, t.exit_reason)

    # Assert: the same entries and exits (sizes differ: half the account, shared equity)
    assert len(alone.trades) > 5
    assert [timing(t) for t in in_manager] == [timing(t) for t in alone.trades]
    assert {member_of(t.id) for t in both.trades} == {"sma_cross", "rsi_reversion"}
    assert all(t.symbol == "BTC/USDT:USDT" for t in both.trades if t.id.startswith("sma_cross:"))


# -- per-member P&L --------------------------------------------------------------------------------


def _trade(tid: str, pnl: float, entry_fee: float, exit_fee: float, closed: bool = True) -> Trade:
    return Trade(
        tid,
        "X",
        1,
        1.0,
        0,
        100.0,
        1 if closed else None,
        101.0 if closed else None,
        entry_fee,
        exit_fee,
        pnl,
        ExitReason.SIGNAL if closed else None,
    )


def test_pnl_by_strategy_groups_closed_trades_by_the_member_in_their_id() -> None:
    # Arrange: a long of 2 at 100 -> 110 with fees 0.20 + 0.22: 20 - 0.42 = 19.58;
    # a short of 1 at 50 -> 55 with fees 0.05 + 0.055: -5 - 0.105 = -5.105;
    # b long of 1 at 100 -> 101 with fees 0.1 + 0.101: 1 - 0.201 = 0.799; b has an open trade
    trades = [
        _trade("a:BTC/USDT:1", 19.58, 0.20, 0.22),
        _trade("b:BTC/USDT:2", 0.799, 0.1, 0.101),
        _trade("a:ETH/USDT:USDT:3", -5.105, 0.05, 0.055),
        _trade("b:BTC/USDT:4", 123.0, 0.1, 0.0, closed=False),
        _trade("BTC/USDT-7", -1.0, 0.5, 0.5),
    ]
    # Act
    grouped = pnl_by_strategy(trades)
    managed = StrategyManager(
        [
            Allocation(SmaCross(), 0.4, name="c"),
            Allocation(SmaCross(), 0.3, name="b"),
            Allocation(RsiReversion(), 0.3, name="a"),
        ]
    ).pnl_by_strategy(trades)
    # Assert
    a = grouped["a"]
    assert (a.trades, a.wins, a.losses) == (2, 1, 1)
    assert a.pnl == pytest.approx(14.475)
    assert a.fees == pytest.approx(0.525)
    assert a.gross_pnl == pytest.approx(15.0)
    assert a.win_rate == 0.5
    b = grouped["b"]
    assert (b.trades, b.wins, b.pnl, b.fees) == (1, 1, 0.799, pytest.approx(0.201))
    assert grouped[""] == StrategyPnL("", 1, 0, -1.0, 1.0)
    assert list(managed) == ["c", "b", "a", ""]
    assert managed["c"] == StrategyPnL("c", 0, 0, 0.0, 0.0)
    assert managed["a"] == a


# -- parity: backtest = paper ----------------------------------------------------------------------


def _parity(
    factory: Callable[[], StrategyManager],
    sources: dict[str, BarArrays],
    warmup: int,
) -> tuple[BacktestEngine, LiveKernel]:
    first = next(iter(sources.values()))
    cfg = RunConfig(balance=10_000, slippage_bps=2.0, trade_start=int(first.ts[warmup]))
    engine = _engine(factory(), sources, cfg)
    engine.run()
    kernel = _paper(factory(), sources, cfg, warmup)
    stream_bars(kernel, sources, warmup, len(first))
    return engine, kernel


def _assert_same_run(engine: BacktestEngine, kernel: LiveKernel) -> None:
    assert [s.order for s in kernel._orders.values()] == engine.orders
    assert _keys(kernel.portfolio.trades) == _keys(_closed(engine.portfolio.trades))
    backtest_manager, paper_manager = engine.strategy, kernel.strategy
    assert isinstance(backtest_manager, StrategyManager)
    assert isinstance(paper_manager, StrategyManager)
    assert paper_manager.conflicts == backtest_manager.conflicts
    assert paper_manager.ignored_closes == backtest_manager.ignored_closes
    assert paper_manager.get_state() == backtest_manager.get_state()


def test_members_on_different_symbols_trade_identically_in_backtest_and_paper(
    perps_5m: dict[str, BarArrays],
) -> None:
    # Arrange: long/flat trend on BTC, reversion on ETH, and a stateful counter on BTC that
    # takes BTC while the trend is flat
    def manager() -> StrategyManager:
        return StrategyManager(
            [
                Allocation(SmaCross(fast=8, slow=30), 0.4, symbols=("BTC/USDT:USDT",)),
                Allocation(RsiReversion(), 0.4, symbols=("ETH/USDT:USDT",)),
                Allocation(EveryNth(every=30), 0.2, name="nth", symbols=("BTC/USDT:USDT",)),
            ]
        )

    # Act
    engine, kernel = _parity(manager, perps_5m, 200)
    # Assert
    _assert_same_run(engine, kernel)
    pnl = engine.strategy.pnl_by_strategy(engine.portfolio.trades)  # type: ignore[attr-defined]
    assert all(row.trades > 3 for row in pnl.values()), pnl
    assert engine.strategy.conflicts["nth"] > 0  # type: ignore[attr-defined]
    assert kernel.strategy.member("nth").count == 1_800  # type: ignore[attr-defined]


def test_members_on_the_same_symbol_trade_identically_in_backtest_and_paper(
    btc_1m: BarArrays,
) -> None:
    # Arrange: three members contend for one symbol on one netting account
    def manager() -> StrategyManager:
        return StrategyManager(
            [
                Allocation(
                    SmaCross(fast=5, slow=20, short=True, stop_loss=0.003, take_profit=0.004), 0.5
                ),
                Allocation(RsiReversion(), 0.3),
                Allocation(EveryNth(), 0.2, name="nth"),
            ]
        )

    # Act
    engine, kernel = _parity(manager, {btc_1m.symbol: btc_1m}, WARMUP)
    # Assert
    _assert_same_run(engine, kernel)
    owners = {member_of(t.id) for t in engine.portfolio.trades}
    assert owners == {"sma_cross", "rsi_reversion", "nth"}
    assert sum(engine.strategy.conflicts.values()) > 10  # type: ignore[attr-defined]
    reversals = [
        (a, b)
        for a, b in itertools.pairwise(engine.portfolio.trades)
        if a.exit_ts == b.entry_ts and a.direction != b.direction
    ]
    assert reversals
    assert all(member_of(a.id) == member_of(b.id) for a, b in reversals)
    assert kernel.strategy.member("nth").count == len(btc_1m) - WARMUP  # type: ignore[attr-defined]


def test_a_restarted_manager_continues_exactly(btc_1m: BarArrays, tmp_path: Path) -> None:
    # Arrange: an uninterrupted paper run and one restarted from the store three times
    sym = btc_1m.symbol

    def manager() -> StrategyManager:
        return StrategyManager(
            [
                Allocation(SmaCross(fast=5, slow=20, short=True, stop_loss=0.003), 0.5),
                Allocation(EveryNth(every=25), 0.5, name="nth"),
            ]
        )

    cfg = RunConfig(balance=10_000, slippage_bps=1.0)
    ref = _paper(manager(), {sym: btc_1m}, cfg, WARMUP)
    stream_bars(ref, {sym: btc_1m}, WARMUP, len(btc_1m))
    cuts = [WARMUP, 811, 1_417, 2_203, len(btc_1m)]
    # Act
    for k, (lo, hi) in enumerate(itertools.pairwise(cuts)):
        store = SqliteStateStore(tmp_path / "state.db")
        kernel = LiveKernel(
            manager(), {sym: test_instrument(sym)}, "1m", cfg, run_id="r", store=store
        )
        if not kernel.restore():
            assert k == 0
            kernel.warm_up({sym: [bar_row(btc_1m, i) for i in range(WARMUP)]})
        stream_bars(kernel, {sym: btc_1m}, lo, hi)
        store.close()
    # Assert
    assert len(ref.portfolio.trades) > 20
    assert [s.order for s in kernel._orders.values()] == [s.order for s in ref._orders.values()]
    assert _keys(kernel.portfolio.trades) == _keys(ref.portfolio.trades)
    assert kernel.portfolio.positions == ref.portfolio.positions
    assert kernel.portfolio.balance == ref.portfolio.balance
    restored, uninterrupted = kernel.strategy, ref.strategy
    assert isinstance(restored, StrategyManager)
    assert isinstance(uninterrupted, StrategyManager)
    assert restored.get_state() == uninterrupted.get_state()
    assert restored.conflicts == uninterrupted.conflicts
    assert sum(restored.conflicts.values()) > 0
    assert restored.member("nth").count == len(btc_1m) - WARMUP  # type: ignore[attr-defined]


# -- hot reload ------------------------------------------------------------------------------------


def _two() -> StrategyManager:
    return StrategyManager(
        [Allocation(SmaCross(fast=5, slow=20), 0.5, name="fast"), Allocation(EveryNth(), 0.3)]
    )


@pytest.mark.parametrize(
    ("weights", "params", "message"),
    [
        ({"fsat": 0.2}, {}, r"unknown member 'fsat'\. Did you mean: 'fast'\?"),
        ({}, {"evry_nth": {"every": 3}}, "unknown member 'evry_nth'. Did you mean: 'every_nth'"),
        ({"fast": 0.8}, {}, r"weights sum to 1.1, more than 1 \(fast=0.8, every_nth=0.3\)"),
        ({"fast": 0}, {}, r"member 'fast': weight must be in \(0, 1\]"),
        ({"fast": "half"}, {}, "member 'fast': weight 'half' is not a number"),
        ({}, {"fast": {"slwo": 30}}, "member 'fast': .*no parameter 'slwo'.*Did you mean: 'slow'"),
        ({}, {"fast": {"slow": "thirty"}}, "member 'fast': parameter slow: cannot read 'thirty'"),
        ({}, {"every_nth": {"every": 1}}, "member 'every_nth': parameter every=1 is below"),
        ({}, {"fast": {"fast": 40}}, r"member 'fast': sma_cross: fast \(40\) must be below slow"),
        # a valid part next to an invalid one: still nothing applied
        ({"fast": 0.2}, {"fast": {"slow": 30}, "every_nth": {"size": 2.0}}, "every_nth"),
    ],
    ids=[
        "unknown_weight",
        "unknown_params",
        "sum",
        "zero",
        "text",
        "key",
        "coerce",
        "bound",
        "validate",
        "partly_valid",
    ],
)
def test_reconfigure_refuses_bad_input_and_changes_nothing(
    btc_1h: BarArrays, weights: dict[str, Any], params: dict[str, Any], message: str
) -> None:
    # Arrange: a running manager
    manager = _two()
    _engine(manager, {btc_1h.symbol: btc_1h.slice(0, 200)}, RunConfig()).run()
    before = (manager.weights, {n: manager.member(n) for n in manager.names})
    params_before = {n: dict(manager.member(n).params) for n in manager.names}
    # Act / Assert
    with pytest.raises(ConfigError, match=message):
        manager.reconfigure(weights, params)
    assert (manager.weights, {n: manager.member(n) for n in manager.names}) == before
    assert {n: dict(manager.member(n).params) for n in manager.names} == params_before


def test_reconfigure_applies_weights_and_rebuilds_a_member_that_keeps_its_position(
    btc_1m: BarArrays,
) -> None:
    # Arrange: paper run; "every_nth" enters every 20th bar and closes 10 bars later
    sym = btc_1m.symbol
    cfg = RunConfig(balance=10_000)
    manager = _two()
    kernel = _paper(manager, {sym: btc_1m}, cfg, WARMUP)
    stream_bars(kernel, {sym: btc_1m}, WARMUP, WARMUP + 45)  # every_nth holds since bar 40
    old = manager.member("every_nth")
    held = kernel.portfolio.positions[sym]
    assert member_of(held.id) == "every_nth"
    assert old.count == 45
    fast_before = manager.member("fast")
    EveryNth.inits.clear()
    # Act: a new weight for both, and every=30 for the counter (rebuilt)
    manager.reconfigure(
        {"fast": 0.3, "every_nth": 0.6}, {"every_nth": {"every": 30}, "fast": {"fast": 5}}
    )
    before_rebuild_state = manager.get_state()["members"]["every_nth"]
    stream_bars(kernel, {sym: btc_1m}, WARMUP + 45, WARMUP + 200)
    # Assert: applied; a new instance with the new parameter, initialised once on the next
    # bar, with the old counter carried over; "fast" (same params) was not rebuilt
    new = manager.member("every_nth")
    assert manager.weights == {"fast": 0.3, "every_nth": 0.6}
    assert new is not old
    assert new.params["every"] == 30
    assert new.params["size"] == 0.5
    assert [n for who, n in EveryNth.inits if who == id(new)] == [WARMUP + 46]
    assert manager.member("fast") is fast_before
    assert before_rebuild_state == {"count": 45}
    assert new.count == 200  # type: ignore[attr-defined]
    # the position opened before the reload stayed the member's, which closed it: every=30
    # closes at counts where count % 30 == 15 (45 has passed, so 75; filled at the next open)
    closed = {t.id: t for t in kernel.portfolio.trades}
    assert closed[held.id].exit_reason is ExitReason.SIGNAL
    assert closed[held.id].exit_ts == int(btc_1m.ts[WARMUP + 75])
    # entries after the reload: the new weight, and the new period (counts 90, 120, ...)
    after = int(btc_1m.ts[WARMUP + 45])
    later = [s.order for s in kernel._orders.values() if s.order.ts_created >= after]
    nth = [o for o in later if member_of(o.position_id or "") == "every_nth"]
    fast = [o for o in later if member_of(o.position_id or "") == "fast"]
    assert nth
    assert fast
    assert all(o.equity_fraction == pytest.approx(0.5 * 0.6) for o in nth)
    period_ends = {int(btc_1m.ts[WARMUP + c - 1]) for c in range(90, 201, 30)}
    assert {o.ts_created for o in nth} <= period_ends
    assert all(o.equity_fraction == pytest.approx(0.3) for o in fast)
    assert manager.member("fast").params["fast"] == 5
