"""Alpaca adapter pieces that need no server: settings and secrets, the missing-extra error,
status mapping, order requests as alpaca-py builds them, the clock schedule."""

from __future__ import annotations

import itertools
import sys
from dataclasses import dataclass
from typing import Any

import pytest

from tradeloop.adapters.alpaca import AlpacaClockSchedule, AlpacaConfig, require_alpaca
from tradeloop.adapters.alpaca.client import STATUS_MAP, AlpacaClient
from tradeloop.core.errors import ConfigError
from tradeloop.core.order_status import TRANSITIONS, OrderStatus
from tradeloop.core.orders import OrderSide, OrderType, TimeInForce
from tradeloop.execution.venue import MarketClock, OrderRejectedError, OrderRequest

KEY, SECRET = "PKUNITTEST", "unit-secret-value-123"


def test_secret_never_in_repr_and_paper_by_default() -> None:
    cfg = AlpacaConfig(api_key=KEY, api_secret=SECRET)
    assert cfg.paper is True
    assert SECRET not in repr(cfg)
    assert KEY not in repr(cfg)
    assert cfg.trade_stream_url is None
    local = AlpacaConfig(api_key=KEY, api_secret=SECRET, ws_url="ws://127.0.0.1:9", feed="sip")
    assert local.trade_stream_url == "ws://127.0.0.1:9/stream"
    assert local.data_stream_url == "ws://127.0.0.1:9/v2/sip"
    with pytest.raises(ConfigError, match="feed"):
        AlpacaConfig(api_key=KEY, api_secret=SECRET, feed="nasdaq")


def test_keys_from_env_dotenv_and_secret_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("API_KEY", "API_SECRET", "SECRET_COMMAND", "URL", "WS_URL"):
        monkeypatch.delenv(f"TRADELOOP_ALPACA_{name}", raising=False)
    with pytest.raises(ConfigError, match="TRADELOOP_ALPACA_API_KEY"):
        AlpacaConfig.from_settings(None)
    (tmp_path / ".env").write_text(f"TRADELOOP_ALPACA_API_KEY={KEY}\n")
    script = tmp_path / "op.py"
    script.write_text(f"print({SECRET!r})\n")
    monkeypatch.setenv("TRADELOOP_ALPACA_SECRET_COMMAND", f"{sys.executable} {script}")
    cfg = AlpacaConfig.from_settings(None)
    assert (cfg.api_key, cfg.api_secret) == (KEY, SECRET)
    monkeypatch.setenv("TRADELOOP_ALPACA_SECRET_COMMAND", f"{sys.executable} -c 'exit(3)'")
    with pytest.raises(ConfigError, match="exit 3") as err:
        AlpacaConfig.from_settings(None)
    assert SECRET not in str(err.value)
    monkeypatch.setenv("TRADELOOP_ALPACA_API_SECRET", "from-env")
    assert AlpacaConfig.from_settings(None, paper=False).paper is False


def test_settings_carry_the_keys_as_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    from tradeloop.config.settings import load_settings

    monkeypatch.setenv("TRADELOOP_ALPACA_API_KEY", KEY)
    monkeypatch.setenv("TRADELOOP_ALPACA_API_SECRET", SECRET)
    settings = load_settings()
    assert SECRET not in repr(settings)
    cfg = AlpacaConfig.from_settings(settings)
    assert cfg.api_secret == SECRET


def test_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    class NoAlpaca:  # alpaca-py not installed
        def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
            if name == "alpaca" or name.startswith("alpaca."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    monkeypatch.setattr(sys, "meta_path", [NoAlpaca(), *sys.meta_path])
    for name in [m for m in sys.modules if m == "alpaca" or m.startswith("alpaca.")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(ConfigError, match=r"pip install 'tradeloop\[alpaca\]'"):
        require_alpaca()


def test_every_alpaca_status_maps_to_the_state_machine() -> None:
    from alpaca.trading.enums import OrderStatus as AlpacaStatus

    assert {s.value for s in AlpacaStatus} <= set(STATUS_MAP)
    assert STATUS_MAP["new"] is OrderStatus.ACCEPTED
    assert STATUS_MAP["canceled"] is OrderStatus.CANCELLED
    assert STATUS_MAP["pending_new"] is OrderStatus.SUBMITTED
    # a submitted order may move to every status Alpaca can report later
    for status in set(STATUS_MAP.values()) - {OrderStatus.SUBMITTED}:
        assert status in TRANSITIONS[OrderStatus.SUBMITTED]


def _client() -> AlpacaClient:
    return AlpacaClient(AlpacaConfig(api_key=KEY, api_secret=SECRET, url="http://127.0.0.1:9"))


def test_order_requests_as_alpaca_py_sends_them() -> None:
    client = _client()
    frac = client._order_request(
        OrderRequest("tlx1", "SPY", OrderSide.BUY, OrderType.MARKET, 1.2345678912)
    ).to_request_fields()
    assert frac["qty"] == 1.234567891
    assert frac["time_in_force"] == "day"  # fractional: Alpaca takes day orders only
    assert frac["client_order_id"] == "tlx1"
    whole = client._order_request(
        OrderRequest(
            "tlx2",
            "SPY",
            OrderSide.SELL,
            OrderType.STOP_LIMIT,
            3,
            price=99.5,
            stop_price=100.0,
            time_in_force=TimeInForce.GTC,
        )
    ).to_request_fields()
    assert (whole["type"], whole["time_in_force"], whole["limit_price"], whole["stop_price"]) == (
        "stop_limit",
        "gtc",
        99.5,
        100.0,
    )
    trail = client._order_request(
        OrderRequest("tlx3", "SPY", OrderSide.SELL, OrderType.STOP, 2, trail_percent=0.01)
    ).to_request_fields()
    assert (trail["type"], trail["trail_percent"]) == ("trailing_stop", 1.0)
    bracket = client._order_request(
        OrderRequest(
            "tlx4", "SPY", OrderSide.BUY, OrderType.MARKET, 2, take_profit=110.0, stop_loss=95.0
        )
    ).to_request_fields()
    assert bracket["order_class"] == "bracket"
    assert bracket["take_profit"] == {"limit_price": 110.0}
    assert bracket["stop_loss"] == {"stop_price": 95.0}
    with pytest.raises(OrderRejectedError, match="take_profit and stop_loss"):
        client._order_request(
            OrderRequest("tlx5", "SPY", OrderSide.BUY, OrderType.MARKET, 2, take_profit=110.0)
        )
    assert client.round_price("SPY", 127.456) == 127.46
    assert client.round_price("PENNY", 0.123456) == 0.1235
    client.close()


@dataclass
class _FakeClock:
    """Answers like Alpaca's clock at a settable time (a unit test of the schedule logic)."""

    now: int
    sessions: list[tuple[int, int]]
    calls: int = 0

    def market_clock(self) -> MarketClock:
        self.calls += 1
        for o, c in self.sessions:
            if o <= self.now < c:
                nxt = next(s for s in self.sessions if s[0] > self.now)
                return MarketClock(self.now, True, nxt[0], c)
        nxt = next(s for s in self.sessions if s[0] > self.now)
        return MarketClock(self.now, False, nxt[0], nxt[1])


def test_clock_schedule_learns_sessions_and_asks_only_at_boundaries() -> None:
    h = 3_600 * 10**9
    sessions = [(10 * h, 16 * h), (34 * h, 40 * h), (58 * h, 64 * h)]
    clock = _FakeClock(9 * h, sessions)
    schedule = AlpacaClockSchedule(clock, min_refresh_s=0.0)
    assert not schedule.is_open(9 * h)
    assert schedule.next_open(9 * h) == 10 * h
    states = []
    for minute in range(9 * 60, 41 * 60, 5):
        clock.now = minute * 60 * 10**9
        states.append(schedule.is_open(clock.now))
    flips = sum(1 for a, b in itertools.pairwise(states) if a != b)
    assert flips == 4  # open, close, open, close
    assert clock.calls <= 6
    assert schedule.next_close(35 * h) == 40 * h
