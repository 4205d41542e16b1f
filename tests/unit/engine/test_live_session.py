"""What live adds to a session, without a venue: the breaker's hold on the risk engine, the
real-money guards of the CLI."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

from tradeloop.cli.app import app
from tradeloop.core.errors import ConfigError
from tradeloop.core.instrument import Instrument
from tradeloop.engine.config import RunConfig
from tradeloop.engine.live import LiveKernel
from tradeloop.engine.live_session import LiveOptions, LiveSession
from tradeloop.execution.protection import BreakerState
from tradeloop.execution.venue_broker import NotionalCaps
from tradeloop.risk.killswitch import TradingState
from tradeloop.strategy.examples.sma_cross import SmaCross


class _Alerts:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send(self, alert: Any) -> None:
        self.sent.append(alert)


def _session() -> tuple[LiveSession, LiveKernel, _Alerts]:
    kernel = LiveKernel(SmaCross(), {"BTC/USDT": Instrument("BTC/USDT")}, "1m", RunConfig())
    session = LiveSession.__new__(LiveSession)
    alerts = _Alerts()
    session.kernel = kernel
    session.alerter = alerts
    session.config = SimpleNamespace(exchange="binance")
    return session, kernel, alerts


def test_an_open_breaker_sets_reducing_only_with_an_alert_and_its_close_resumes() -> None:
    session, kernel, alerts = _session()
    session._on_breaker(BreakerState.CLOSED, BreakerState.OPEN, "3 consecutive failures, 503")
    assert kernel.risk.state is TradingState.REDUCING
    assert "3 consecutive failures" in alerts.sent[-1].message
    assert "reducing-only" in alerts.sent[-1].message
    session._on_breaker(BreakerState.HALF_OPEN, BreakerState.CLOSED, "venue answered")
    assert kernel.risk.state is TradingState.ACTIVE


def test_the_breaker_never_lifts_a_halt_it_did_not_cause() -> None:
    session, kernel, _ = _session()
    kernel.risk.kill_switch.trip(0, TradingState.HALTED, "daily_loss", "-2%")
    session._on_breaker(BreakerState.CLOSED, BreakerState.OPEN, "down")
    session._on_breaker(BreakerState.HALF_OPEN, BreakerState.CLOSED, "up")
    assert kernel.risk.state is TradingState.HALTED


def test_real_money_needs_both_caps() -> None:
    with pytest.raises(ConfigError, match="max-order-notional"):
        LiveOptions(real_money=True, caps=NotionalCaps(per_order=100.0))
    assert LiveOptions(real_money=True, caps=NotionalCaps(100.0, 1_000.0)).real_money


def test_the_cli_asks_before_real_money_and_refuses_without_caps(tmp_path: Any) -> None:
    runner = CliRunner()
    base = ["live", "--strategy", "sma_cross", "--symbol", "BTC/USDT", "--real-money"]
    no_caps = runner.invoke(app, base)
    assert no_caps.exit_code != 0
    assert "max-order-notional" in no_caps.output
    declined = runner.invoke(
        app,
        [*base, "--max-order-notional", "100", "--max-daily-notional", "1000"],
        input="n\n",
    )
    assert declined.exit_code == 1
    assert "REAL MONEY" in declined.output
    assert "nothing was started" in declined.output


def test_broker_alpaca_defaults_the_exchange_to_alpaca_and_refuses_a_crypto_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tradeloop.cli import live_cmd

    seen: list[tuple[str, str]] = []
    monkeypatch.setattr(
        live_cmd, "_run_strategy", lambda opts, o: seen.append((opts.broker, o["exchange"]))
    )
    runner = CliRunner()
    base = ["live", "--strategy", "sma_cross", "--symbol", "SPY"]
    assert runner.invoke(app, [*base, "--broker", "alpaca"]).exit_code == 0
    assert runner.invoke(app, [*base, "--broker", "ccxt"]).exit_code == 0
    assert runner.invoke(app, [*base, "--broker", "ccxt", "--exchange", "Bybit"]).exit_code == 0
    assert seen == [("alpaca", "alpaca"), ("ccxt", "binance"), ("ccxt", "bybit")]

    refused = runner.invoke(app, [*base, "--broker", "alpaca", "--exchange", "binance"])
    assert refused.exit_code != 0
    assert "--broker alpaca" in refused.output
    assert "--exchange 'binance'" in refused.output
    refused = runner.invoke(app, [*base, "--broker", "ccxt", "--exchange", "alpaca"])
    assert refused.exit_code != 0
    assert "--broker ccxt" in refused.output
    assert "--exchange 'alpaca'" in refused.output
    assert len(seen) == 3
    # the real-money question names the venue the run would trade on
    asked = runner.invoke(
        app,
        [
            *base,
            "--broker",
            "alpaca",
            "--real-money",
            "--max-order-notional",
            "1",
            "--max-daily-notional",
            "2",
        ],
        input="n\n",
    )
    assert "REAL MONEY on alpaca" in asked.output
    assert len(seen) == 3
    assert "Default: alpaca with --broker alpaca" in " ".join(
        runner.invoke(app, ["live", "--help"]).output.split()
    )


def test_broker_alpaca_refuses_a_loop_toml_on_a_crypto_exchange(tmp_path: Any) -> None:
    loop = tmp_path / "loop.toml"
    loop.write_text(
        '[run]\nid = "l1"\nsymbols = ["BTC/USDT"]\nexchange = "binance"\n\n'
        '[[strategies]]\nname = "sma_cross"\nweight = 1.0\n',
        encoding="utf-8",
    )
    refused = CliRunner().invoke(app, ["live", "--broker", "alpaca", "--config", str(loop)])
    assert refused.exit_code != 0
    assert "--broker alpaca" in refused.output
    assert "'binance'" in refused.output
