"""Post-only entries in the simulated broker (backtest and paper): an entry rests as a limit at
the signal bar's close, fills at the limit with the maker fee only if the next bar trades
through it, else expires; exits stay market orders. Every number is worked out by hand."""

from __future__ import annotations

import pytest

from tradeloop.core.instrument import Instrument
from tradeloop.core.signal import Signal
from tradeloop.engine.config import RunConfig
from tradeloop.engine.kernel import BacktestEngine
from tradeloop.engine.market import MarketData
from tradeloop.execution.config import SimulatedBrokerConfig

from .test_simulated_broker import SYM, Scripted, hourly

INST = {SYM: Instrument(SYM, maker_fee=0.0002, taker_fee=0.001, lot_size=0.0)}
# bar 0 closes at 100 (signal); bar 1 trades down to 99.5 (through a buy limit at 100)
THROUGH = [
    (100, 101, 99, 100),
    (100.5, 101, 99.5, 100.8),
    (101, 102, 100, 101.5),
    (101.5, 103, 101, 102),
]
# bar 1 never trades below 100: a buy limit at 100 is not filled
AWAY = [
    (100, 101, 99, 100),
    (100.5, 102, 100.0, 101.5),
    (101.5, 103, 101, 102),
    (102, 104, 101.5, 103),
]


def _run(rows: list[tuple[float, ...]], loop: str, post_only: bool = True):
    schedule = {0: [Signal.open_long(SYM, 1.0, quantity=True)], 2: [Signal.close(SYM)]}
    bars = {SYM: hourly(rows)}
    market = MarketData(bars, INST, "1h", ())
    engine = BacktestEngine(
        Scripted(schedule), market, RunConfig(post_only_entries=post_only), loop=loop
    )
    return engine.run()


@pytest.mark.parametrize("loop", ["auto", "general"])
def test_a_post_only_entry_fills_at_its_limit_with_the_maker_fee(loop: str) -> None:
    result = _run(THROUGH, loop)
    (trade,) = result.trades
    assert trade.entry_price == 100.0  # the limit, not bar 1's open 100.5
    assert trade.entry_ts == hourly(THROUGH).ts[1]
    assert trade.entry_fee == pytest.approx(1.0 * 100.0 * 0.0002)  # maker
    assert trade.exit_price == 101.5  # the close is a market order at bar 3's open
    assert trade.exit_fee == pytest.approx(101.5 * 0.001)  # taker
    assert trade.pnl == pytest.approx(1.5 - 0.02 - 0.1015)
    assert result.rejections == []


@pytest.mark.parametrize("loop", ["auto", "general"])
def test_a_post_only_entry_the_next_bar_does_not_trade_through_expires(loop: str) -> None:
    result = _run(AWAY, loop)  # low == limit: touched, not traded through
    assert result.trades == []
    assert [(r.reason, r.ts) for r in result.rejections][:1] == [
        ("post_only_expired", hourly(AWAY).ts[1])
    ]
    assert float(result.equity[-1]) == pytest.approx(RunConfig().balance)


@pytest.mark.parametrize("loop", ["auto", "general"])
def test_a_post_only_entry_the_next_open_would_fill_at_once_is_rejected(loop: str) -> None:
    rows = [
        (100, 101, 99, 100),
        (99.8, 101, 99, 100.5),
        (100.5, 102, 100, 101.5),
        (101.5, 103, 101, 102),
    ]
    result = _run(rows, loop)  # the buy limit at 100 would take at the open 99.8
    assert result.trades == []
    assert [(r.reason, r.ts) for r in result.rejections][:1] == [
        ("post_only_would_take", hourly(rows).ts[1])
    ]


def test_off_by_default_entries_are_market_orders_at_the_next_open() -> None:
    assert RunConfig().post_only_entries is False
    assert SimulatedBrokerConfig().post_only_entries is False
    (trade,) = _run(THROUGH, "auto", post_only=False).trades
    assert trade.entry_price == 100.5
    assert trade.entry_fee == pytest.approx(100.5 * 0.001)


def test_post_only_entries_reach_backtest_paper_and_live_from_the_cli(
    sample_1h: object, tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json
    from pathlib import Path

    from typer.testing import CliRunner

    from tradeloop.cli.app import app
    from tradeloop.core.errors import ConfigError
    from tradeloop.engine import live_session, paper

    runner = CliRunner()
    out = Path(str(tmp_path))
    trades = {}
    for flag in ([], ["--post-only-entries"]):
        folder = out / ("po" if flag else "market")
        res = runner.invoke(
            app,
            [
                "backtest",
                "-s",
                "sma_cross",
                "-d",
                str(sample_1h),
                "--no-report",
                "--fee",
                "0.001",
                "--out",
                str(folder),
                *flag,
            ],
        )
        assert res.exit_code == 0, res.output
        run = json.loads((folder / "run.json").read_text())
        assert run["config"]["post_only_entries"] is bool(flag)
        trades[bool(flag)] = (folder / "trades.csv").read_text().splitlines()
    assert trades[True] != trades[False]  # entries at the limit, fewer of them

    seen: list[bool] = []

    class Stop(live_session.LiveSession):
        def __init__(self, strategy: object, config: paper.PaperConfig, **_kw: object) -> None:
            seen.append(config.post_only_entries)
            raise ConfigError("stopped by the test")

    monkeypatch.setattr(live_session, "LiveSession", Stop)
    base = ["live", "--strategy", "sma_cross", "--symbol", "BTC/USDT", "--state", str(out / "s.db")]
    assert "stopped by the test" in runner.invoke(app, [*base, "--post-only-entries"]).output
    assert "stopped by the test" in runner.invoke(app, base).output
    assert seen == [True, False]
    meta = {
        "balance": 1_000.0,
        "slippage_bps": 0.0,
        "fill_price": "next_open",
        "allow_short": True,
        "risk": "permissive",
        "post_only_entries": True,
    }
    assert paper.stored_run_config(meta).post_only_entries is True
    meta.pop("post_only_entries")  # a run stored before the option
    assert paper.stored_run_config(meta).post_only_entries is False
