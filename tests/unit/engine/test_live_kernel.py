"""The paper/live kernel against the backtest kernel on the same real bars (the parity suite),
and its durable restore."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from tradeloop.core.bar import BarArrays
from tradeloop.core.time import to_iso
from tradeloop.data.loader import load_ohlcv
from tradeloop.data.resample import resample
from tradeloop.engine.config import RunConfig
from tradeloop.engine.kernel import BacktestEngine
from tradeloop.engine.live import LiveKernel
from tradeloop.engine.market import MarketData
from tradeloop.engine.parity import trade_key
from tradeloop.risk.config import BlackSwanConfig, KillSwitchConfig, OverridesConfig, RiskConfig
from tradeloop.risk.engine import RiskEngine
from tradeloop.risk.killswitch import TradingState
from tradeloop.risk.overrides import issue_token
from tradeloop.store.state import SqliteStateStore
from tradeloop.strategy.base import Strategy
from tradeloop.strategy.examples.mtf_trend import MtfTrend
from tradeloop.strategy.examples.rsi_reversion import RsiReversion
from tradeloop.strategy.examples.sma_cross import SmaCross
from tradeloop.testing.kernels import bar_row, stream_bars, test_instrument

WARMUP = 300


@pytest.fixture(scope="module")
def btc_1m(shared_data: Path) -> BarArrays:
    bars = load_ohlcv(shared_data / "crypto_1m/binance_spot_2025/BTC_USDT-1m.feather").bars
    return bars.slice(0, 4_000)


def _backtest(strategy: Strategy, sources: dict[str, BarArrays], cfg: RunConfig):
    declared = tuple(strategy.timeframes)
    tf = next(iter(sources.values())).timeframe
    market = MarketData(
        sources, {s: test_instrument(s) for s in sources}, tf, tuple(t for t in declared if t != tf)
    )
    engine = BacktestEngine(strategy, market, cfg)
    return engine, engine.run()


def _trade_keys(trades) -> list[tuple]:
    return [trade_key(t) for t in trades]


@pytest.fixture(scope="module")
def btc_15m(shared_data: Path) -> BarArrays:
    bars = load_ohlcv(shared_data / "crypto_1m/binance_spot_2025/BTC_USDT-5m.feather").bars
    return resample(bars, "15m").slice(0, 2_500)


@pytest.mark.parametrize(
    ("strategy", "data"),
    [
        (lambda: SmaCross(fast=5, slow=20, short=True, stop_loss=0.003, take_profit=0.004), "1m"),
        (lambda: RsiReversion(), "1m"),
        (lambda: MtfTrend(short=True, stop_loss=0.01), "15m"),
    ],
    ids=["sma_cross_sl_tp_short", "rsi_reversion", "mtf_trend_4h_over_15m"],
)
def test_paper_kernel_gives_the_backtests_orders_and_trades(
    request: pytest.FixtureRequest, strategy, data: str
) -> None:
    # Arrange
    bars: BarArrays = request.getfixturevalue("btc_1m" if data == "1m" else "btc_15m")
    sym = bars.symbol
    cfg = RunConfig(balance=10_000, slippage_bps=2.0, trade_start=int(bars.ts[WARMUP]))
    engine, result = _backtest(strategy(), {sym: bars}, cfg)
    kernel = LiveKernel(strategy(), {sym: test_instrument(sym)}, data, cfg)
    kernel.warm_up({sym: [bar_row(bars, i) for i in range(WARMUP)]})
    # Act
    stream_bars(kernel, {sym: bars}, WARMUP, len(bars))
    # Assert
    orders = [s.order for s in kernel._orders.values()]
    assert len(engine.orders) > 4
    assert orders == engine.orders
    closed = [t for t in result.trades if t.exit_ts is not None]
    assert _trade_keys(kernel.portfolio.trades) == _trade_keys(closed)
    assert kernel.portfolio.equity == pytest.approx(float(result.equity[-1]), rel=1e-12)
    assert kernel.steps == len(bars) - WARMUP


def test_a_short_window_keeps_only_its_bars_and_still_matches_the_backtest(btc_1m) -> None:
    # Arrange: a 64-bar window over 4,000 bars (the buffer is compacted many times); the
    # strategy looks back 20 bars, so the trades must equal a backtest over all bars
    sym = btc_1m.symbol
    cfg = RunConfig(balance=10_000, slippage_bps=1.0, trade_start=int(btc_1m.ts[WARMUP]))
    engine, result = _backtest(SmaCross(fast=5, slow=20, short=True), {sym: btc_1m}, cfg)
    kernel = LiveKernel(
        SmaCross(fast=5, slow=20, short=True), {sym: test_instrument(sym)}, "1m", cfg, max_bars=64
    )
    kernel.warm_up({sym: [bar_row(btc_1m, i) for i in range(WARMUP)]})
    # Act
    stream_bars(kernel, {sym: btc_1m}, WARMUP, 1_000)
    early = kernel.series[sym].arrays(sym, "1m")  # a view handed out before more appends
    early_close = early.close.copy()
    stream_bars(kernel, {sym: btc_1m}, 1_000, len(btc_1m))
    # Assert: the window is the last 64 bars, earlier views are untouched, trades are equal
    held = kernel.series[sym].arrays(sym, "1m")
    n = len(btc_1m)
    assert held.ts.tolist() == btc_1m.ts[n - 64 :].tolist()
    assert held.close.tolist() == btc_1m.close[n - 64 :].tolist()
    assert held.volume.tolist() == btc_1m.volume[n - 64 :].tolist()
    assert early.close.tolist() == early_close.tolist()
    assert not held.close.flags.writeable  # a strategy cannot write into the kernel's bars
    assert not held.ts.flags.writeable
    assert early.ts.tolist() == btc_1m.ts[1_000 - 64 : 1_000].tolist()
    assert [s.order for s in kernel._orders.values()] == engine.orders
    closed = [t for t in result.trades if t.exit_ts is not None]
    assert _trade_keys(kernel.portfolio.trades) == _trade_keys(closed)


def test_multi_symbol_paper_kernel_matches_the_backtest(shared_data: Path) -> None:
    # Arrange: two real 5m perpetual series, stepped on the union of their bar times
    folder = shared_data / "crypto_futures/binance_usdm_2025"
    sources = {
        name: load_ohlcv(folder / f"{name}_USDT_USDT-5m-futures.feather").bars.slice(0, 2_000)
        for name in ("BTC", "ETH")
    }
    sources = {b.symbol: b for b in sources.values()}
    cfg = RunConfig(balance=10_000, trade_start=int(next(iter(sources.values())).ts[200]))
    engine, result = _backtest(SmaCross(fast=8, slow=30, short=True), sources, cfg)
    kernel = LiveKernel(
        SmaCross(fast=8, slow=30, short=True), {s: test_instrument(s) for s in sources}, "5m", cfg
    )
    kernel.warm_up({s: [bar_row(b, i) for i in range(200)] for s, b in sources.items()})
    # Act
    stream_bars(kernel, sources, 200, 2_000)
    # Assert
    assert len(engine.orders) > 10
    assert [s.order for s in kernel._orders.values()] == engine.orders
    closed = [t for t in result.trades if t.exit_ts is not None]
    assert _trade_keys(kernel.portfolio.trades) == _trade_keys(closed)


def test_a_restored_kernel_continues_exactly(btc_1m, tmp_path: Path) -> None:
    # Arrange: an uninterrupted run, and one restarted from the store three times
    sym = btc_1m.symbol
    cfg = RunConfig(balance=10_000, slippage_bps=1.0)

    def strategy() -> SmaCross:
        return SmaCross(fast=5, slow=20, short=True, stop_loss=0.004)

    ref = LiveKernel(strategy(), {sym: test_instrument(sym)}, "1m", cfg)
    ref.warm_up({sym: [bar_row(btc_1m, i) for i in range(WARMUP)]})
    stream_bars(ref, {sym: btc_1m}, WARMUP, 2_000)
    # Act
    cuts = [WARMUP, 777, 1_203, 1_650, 2_000]
    for k, (lo, hi) in enumerate(itertools.pairwise(cuts)):
        store = SqliteStateStore(tmp_path / "state.db")
        kernel = LiveKernel(
            strategy(), {sym: test_instrument(sym)}, "1m", cfg, run_id="r", store=store
        )
        restored = kernel.restore()
        assert restored == (k > 0)
        if not restored:
            kernel.warm_up({sym: [bar_row(btc_1m, i) for i in range(WARMUP)]})
        # a restart may see the last processed bar again: it is ignored
        if restored:
            kernel.on_bar(sym, *bar_row(btc_1m, lo - 1))
            assert kernel.duplicates == 1
        stream_bars(kernel, {sym: btc_1m}, lo, hi)
        store.close()
    # Assert
    assert _trade_keys(kernel.portfolio.trades) == _trade_keys(ref.portfolio.trades)
    assert kernel.portfolio.positions == ref.portfolio.positions
    assert kernel.portfolio.balance == ref.portfolio.balance
    with SqliteStateStore(tmp_path / "state.db") as store:
        stored = store.load_trades("r")
        assert len({t.id for t in stored}) == len(stored)
        closed = [t for t in stored if t.exit_ts is not None]
        assert _trade_keys(closed) == _trade_keys(ref.portfolio.trades)
        bars = store.load_bars("r", sym, "1m")
        assert [b[0] for b in bars] == [int(t) for t in btc_1m.ts[:2_000]]


def test_a_restored_kernel_keeps_its_risk_state(btc_1m, tmp_path: Path) -> None:
    # Arrange: a 0.2% daily loss limit that halts on day one, lifts at midnight and halts
    # again; restarts land inside the halts, so a restart that forgot them would trade on
    risk = RiskConfig(
        kill_switch=KillSwitchConfig(daily_loss_pct=0.002, drawdown_reduce_pct=None),
        black_swan=BlackSwanConfig(drop_pct=None, vol_shock_sigma=12.0, vol_window=50),
    )
    sym = btc_1m.symbol
    cfg = RunConfig(balance=10_000, slippage_bps=1.0, risk=risk)

    def strategy() -> SmaCross:
        return SmaCross(fast=5, slow=20, short=True, stop_loss=0.004)

    cuts = [WARMUP, 777, 1_203, 1_650, 2_400, 3_000]
    ref = LiveKernel(strategy(), {sym: test_instrument(sym)}, "1m", cfg)
    ref.warm_up({sym: [bar_row(btc_1m, i) for i in range(WARMUP)]})
    states_at_cut = []
    for lo, hi in itertools.pairwise(cuts):
        stream_bars(ref, {sym: btc_1m}, lo, hi)
        states_at_cut.append(ref.risk.state)
    assert [e.cause for e in ref.risk.events] == ["daily_loss", "new_day", "daily_loss", "new_day"]
    assert TradingState.HALTED in states_at_cut[:-1]
    # Act
    for k, (lo, hi) in enumerate(itertools.pairwise(cuts)):
        store = SqliteStateStore(tmp_path / "state.db")
        kernel = LiveKernel(
            strategy(), {sym: test_instrument(sym)}, "1m", cfg, run_id="r", store=store
        )
        if kernel.restore():
            assert kernel.risk.state == states_at_cut[k - 1]
        else:
            kernel.warm_up({sym: [bar_row(btc_1m, i) for i in range(WARMUP)]})
        stream_bars(kernel, {sym: btc_1m}, lo, hi)
        store.close()
    # Assert: same trades, same state changes, same monitors and windows
    assert _trade_keys(kernel.portfolio.trades) == _trade_keys(ref.portfolio.trades)
    assert [e.as_dict() for e in kernel.risk.events] == [e.as_dict() for e in ref.risk.events]
    assert kernel.risk.export_state() == ref.risk.export_state()
    assert kernel.risk.export_state()["black_swan"][sym]["returns"]  # the windows came along


def _stream_days(kernel: LiveKernel, bars: BarArrays, start: int, stop: int, equity: dict):
    """Stream like :func:`_stream`; return the day summaries and record each close's equity."""
    days = []
    for i in range(start, stop):
        ts, o = bar_row(bars, i)[:2]
        days += kernel.on_price(bars.symbol, ts, o, o, o, o).days
        days += kernel.on_bar(bars.symbol, *bar_row(bars, i)).days
        equity[ts] = kernel.portfolio.equity
    return days


def test_a_resume_token_queued_while_the_run_was_down_lifts_the_restored_halt(
    btc_1m, tmp_path: Path
) -> None:
    # Arrange: the daily-loss halt of day one (about 08:13); the run stops at bar 777 while
    # halted, an operator queues a signed resume for bar 800, and the run is started again
    secret = b"paper desk secret"
    inbox = tmp_path / "overrides.jsonl"
    risk = RiskConfig(
        kill_switch=KillSwitchConfig(
            daily_loss_pct=0.002, drawdown_reduce_pct=None, daily_resume_next_day=False
        ),
        black_swan=BlackSwanConfig(enabled=False),
        overrides=OverridesConfig(inbox=str(inbox), audit_log=str(tmp_path / "audit.jsonl")),
    )
    sym = btc_1m.symbol
    cfg = RunConfig(balance=10_000, slippage_bps=1.0, risk=risk)

    def kernel(store: SqliteStateStore) -> LiveKernel:
        return LiveKernel(
            SmaCross(fast=5, slow=20, short=True, stop_loss=0.004),
            {sym: test_instrument(sym)},
            "1m",
            cfg,
            run_id="r",
            store=store,
            risk=RiskEngine(risk, secret=secret),
        )

    with SqliteStateStore(tmp_path / "state.db") as store:
        first = kernel(store)
        first.warm_up({sym: [bar_row(btc_1m, i) for i in range(WARMUP)]})
        stream_bars(first, {sym: btc_1m}, WARMUP, 777)
        assert first.risk.state == TradingState.HALTED
    at = int(btc_1m.ts[800])
    token = issue_token(
        secret,
        who="desk",
        why="limit too tight",
        action="resume",
        not_before=at - 60 * 10**9,
        expires_at=at + 3_600 * 10**9,
    )
    inbox.write_text(json.dumps({"at": at, "token": token}) + "\n")
    # Act
    with SqliteStateStore(tmp_path / "state.db") as store:
        second = kernel(store)
        assert second.restore()
        assert second.risk.state == TradingState.HALTED
        stream_bars(second, {sym: btc_1m}, 777, 1_200)
    # Assert: resumed at bar 800 by the override, and trading again after it
    resumed = [e for e in second.risk.events if e.cause == "override"]
    assert [(e.ts, e.state_to) for e in resumed] == [(at, TradingState.ACTIVE)]
    assert any(t.entry_ts > at for t in second.portfolio.trades)


def test_each_utc_day_is_summarised_once_also_across_a_restart(btc_1m, tmp_path: Path) -> None:
    # Arrange: 3,700 live 1m bars from 05:00 on day one: two whole UTC days end
    sym = btc_1m.symbol
    cfg = RunConfig(balance=10_000, slippage_bps=1.0)

    def kernel(**kw) -> LiveKernel:
        return LiveKernel(
            SmaCross(fast=5, slow=20, short=True, stop_loss=0.004),
            {sym: test_instrument(sym)},
            "1m",
            cfg,
            **kw,
        )

    ref = kernel()
    ref.warm_up({sym: [bar_row(btc_1m, i) for i in range(WARMUP)]})
    equity: dict[int, float] = {}
    # Act: one uninterrupted run, one restarted in the middle of the first day
    days = _stream_days(ref, btc_1m, WARMUP, len(btc_1m), equity)
    resumed = []
    for lo, hi in itertools.pairwise([WARMUP, 1_000, len(btc_1m)]):
        with SqliteStateStore(tmp_path / "state.db") as store:
            run = kernel(run_id="r", store=store)
            if not run.restore():
                run.warm_up({sym: [bar_row(btc_1m, i) for i in range(WARMUP)]})
            resumed += _stream_days(run, btc_1m, lo, hi, {})
    # Assert: by hand from the equity at each close and the trade list
    day_ns = 86_400 * 10**9
    first_day = int(btc_1m.ts[WARMUP]) // day_ns
    assert [d.day for d in days] == ["2025-05-20", "2025-05-21"]
    closes = sorted(equity)
    for n, summary in enumerate(days):
        lo_ns, hi_ns = (first_day + n) * day_ns, (first_day + n + 1) * day_ns
        in_day = [t for t in closes if lo_ns <= t < hi_ns]
        before = [t for t in closes if t < lo_ns]
        start = equity[before[-1]] if before else 10_000.0
        closed = [t for t in ref.portfolio.trades if lo_ns <= t.exit_ts < hi_ns]
        assert summary.start_equity == pytest.approx(start, rel=1e-12)
        assert summary.end_equity == pytest.approx(equity[in_day[-1]], rel=1e-12)
        assert summary.trades == len(closed)
        assert summary.trades > 0
        assert summary.wins == sum(1 for t in closed if t.pnl > 0)
        assert summary.realized_pnl == pytest.approx(sum(t.pnl for t in closed))
    assert days[1].start_equity == days[0].end_equity
    assert resumed == days


def test_two_symbol_day_summaries_with_a_missing_last_bar_and_a_restart(
    shared_data: Path, tmp_path: Path
) -> None:
    # Arrange: BTC and ETH 5m perps over ~6 days; ETH's 23:55 bar never arrives, so BTC's
    # 23:55 step runs late, after ETH's first 00:00 update; one restart in the middle of a day
    folder = shared_data / "crypto_futures/binance_usdm_2025"
    sources = {}
    for name in ("BTC", "ETH"):
        bars = load_ohlcv(folder / f"{name}_USDT_USDT-5m-futures.feather").bars.slice(0, 1_900)
        sources[bars.symbol] = bars
    eth = next(s for s in sources if s.startswith("ETH"))
    day_ns, five_min = 86_400 * 10**9, 300 * 10**9
    cfg = RunConfig(balance=10_000)

    def kernel(**kw) -> LiveKernel:
        return LiveKernel(
            SmaCross(fast=8, slow=30, short=True),
            {s: test_instrument(s) for s in sources},
            "5m",
            cfg,
            **kw,
        )

    def stream(k: LiveKernel, lo: int, hi: int) -> list:
        days = []
        for i in range(lo, hi):
            rows = {s: bar_row(b, i) for s, b in sources.items()}
            rows = {
                s: r
                for s, r in rows.items()
                if not (s == eth and r[0] % day_ns == day_ns - five_min)
            }
            for s, r in rows.items():
                days += k.on_price(s, r[0], r[1], r[1], r[1], r[1]).days
            for s, r in rows.items():
                days += k.on_bar(s, *r).days
        return days

    warm = {s: [bar_row(b, i) for i in range(200)] for s, b in sources.items()}
    ref = kernel()
    ref.warm_up(warm)
    # Act
    days = stream(ref, 200, 1_900)
    resumed = []
    for lo, hi in itertools.pairwise([200, 1_000, 1_900]):
        with SqliteStateStore(tmp_path / "state.db") as store:
            run = kernel(run_id="r", store=store)
            if not run.restore():
                run.warm_up(warm)
            resumed += stream(run, lo, hi)
    # Assert: every ended day once, in order, chained, with the trades that closed in it
    # (the late 23:55 step runs inside ETH's 00:00 close: its trades still count for the day)
    first = int(next(iter(sources.values())).ts[200]) // day_ns
    last = int(next(iter(sources.values())).ts[1_899]) // day_ns
    assert [d.day for d in days] == [to_iso(d * day_ns)[:10] for d in range(first, last)]
    previous_end = 10_000.0
    for n, summary in enumerate(days):
        lo_ns, hi_ns = (first + n) * day_ns, (first + n + 1) * day_ns
        closed = [t for t in ref.portfolio.trades if lo_ns <= t.exit_ts < hi_ns]
        assert summary.start_equity == previous_end
        assert summary.trades == len(closed)
        assert summary.realized_pnl == pytest.approx(sum(t.pnl for t in closed))
        previous_end = summary.end_equity
    assert sum(d.trades for d in days) > 10
    assert resumed == days


def test_waiting_orders_fill_at_the_first_update_and_stops_trigger_between_closes(btc_1m) -> None:
    # Arrange: a long with a 0.2% stop opened on a cross
    sym = btc_1m.symbol
    cfg = RunConfig(balance=10_000)
    kernel = LiveKernel(
        SmaCross(fast=5, slow=20, stop_loss=0.002), {sym: test_instrument(sym)}, "1m", cfg
    )
    kernel.warm_up({sym: [bar_row(btc_1m, i) for i in range(WARMUP)]})
    i = WARMUP
    while not kernel.broker.pending:
        kernel.on_bar(sym, *bar_row(btc_1m, i))
        i += 1
    ts, o, *_ = bar_row(btc_1m, i)
    # Act: the first update of the next bar
    out = kernel.on_price(sym, ts, o, o, o, o)
    # Assert: filled at that bar's open, before the bar closed
    assert [f.price for f in out.fills] == [o]
    pos = kernel.portfolio.positions[sym]
    assert pos.stop_loss is not None
    # Act: a later update of the same bar trades through the stop
    low = pos.stop_loss * 0.999
    out = kernel.on_price(sym, ts, o, o, low, low)
    # Assert: stopped out intrabar at the stop price
    assert [t.exit_reason.value for t in out.closed] == ["stop_loss"]
    assert out.closed[0].exit_price == pytest.approx(pos.stop_loss)
    assert not kernel.portfolio.positions


def test_gaps_are_reported_for_backfill(btc_1m) -> None:
    sym = btc_1m.symbol
    kernel = LiveKernel(SmaCross(), {sym: test_instrument(sym)}, "1m", RunConfig())
    assert kernel.missing_before(sym, int(btc_1m.ts[10])) is None  # nothing held yet
    kernel.warm_up({sym: [bar_row(btc_1m, i) for i in range(50)]})
    assert kernel.missing_before(sym, int(btc_1m.ts[50])) is None
    assert kernel.missing_before(sym, int(btc_1m.ts[53])) == (
        int(btc_1m.ts[50]),
        int(btc_1m.ts[53]),
    )
