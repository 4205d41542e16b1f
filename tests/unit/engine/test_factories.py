"""The parts that differ by mode come from one place; an unknown mode or a live broker that
does not exist is a clear error."""

from __future__ import annotations

import pytest

from tradeloop.bus.base import InProcessBus
from tradeloop.core.clock import HistoricalClock, LiveClock
from tradeloop.core.errors import ConfigError
from tradeloop.core.portfolio import Portfolio
from tradeloop.engine.config import RunConfig
from tradeloop.engine.factories import make_broker, make_bus, make_clock
from tradeloop.execution.simulated import SimulatedBroker
from tradeloop.testing.kernels import test_instrument

INSTRUMENTS = {"BTC/USDT": test_instrument("BTC/USDT")}


def test_backtest_and_paper_share_the_simulated_broker_paper_tracks_statuses() -> None:
    rules = RunConfig(slippage_bps=3.0, allow_short=False)
    backtest = make_broker("backtest", Portfolio(1_000.0), INSTRUMENTS, "1m", rules)
    paper = make_broker("paper", Portfolio(1_000.0), INSTRUMENTS, "1m", rules)
    assert isinstance(backtest, SimulatedBroker)
    assert isinstance(paper, SimulatedBroker)
    assert backtest.order_status is None
    assert paper.order_status == {}
    assert paper.config.slippage_bps == 3.0
    assert not paper.config.allow_short


def test_clocks_and_buses() -> None:
    assert isinstance(make_clock("backtest"), HistoricalClock)
    assert isinstance(make_clock("live"), LiveClock)
    assert isinstance(make_bus(None), InProcessBus)
    from tradeloop.bus.redis_bus import RedisBus

    bus = make_bus("redis://:secret@127.0.0.1:6379/0")
    assert isinstance(bus, RedisBus)


@pytest.mark.parametrize("mode", ["live", "sandbox"])
def test_live_without_a_venue_and_unknown_modes_are_refused(mode: str) -> None:
    with pytest.raises(ConfigError, match=r"needs a venue|mode must be one of"):
        make_broker(mode, Portfolio(1_000.0), INSTRUMENTS, "1m", RunConfig())


def test_live_dispatches_by_broker_name(monkeypatch: pytest.MonkeyPatch) -> None:
    from tradeloop.engine.factories import VenueSpec, make_venue_client

    with pytest.raises(ConfigError, match="broker must be one of"):
        make_venue_client(VenueSpec("ibkr", "x", "run"))
    for name in ("TRADELOOP_BINANCE_API_KEY", "TRADELOOP_BINANCE_API_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir("/")  # no .env
    with pytest.raises(ConfigError, match="TRADELOOP_BINANCE_API_KEY"):
        make_venue_client(VenueSpec("ccxt", "binance", "run"))
