"""`tradeloop run` hot reload: weights and parameters change live; an invalid file or a change
that needs a restart is refused with the reason, and the running config is kept."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from tradeloop.alerts.base import Alert
from tradeloop.engine.loop import LoopSession
from tradeloop.engine.loop_config import load_loop_config

BASE = """
[run]
id = "reload"
symbols = ["BTC/USDT"]
timeframe = "1m"
state = "state.db"

[[strategies]]
name = "sma_cross"
weight = 0.5
params = { fast = 5, slow = 20 }

[[strategies]]
name = "zone_magnet"
weight = 0.3

[zones]
top = 5
"""


class Alerts:
    def __init__(self) -> None:
        self.sent: list[Alert] = []

    def send(self, alert: Alert) -> None:
        self.sent.append(alert)


@pytest.fixture
def session(tmp_path: Path) -> tuple[LoopSession, Path, Alerts]:
    path = tmp_path / "loop.toml"
    path.write_text(BASE, encoding="utf-8")
    alerts = Alerts()
    loop = LoopSession(load_loop_config(path), alerter=alerts, config_path=path)  # type: ignore[arg-type]
    return loop, path, alerts


def test_weights_parameters_and_zones_change_live(session) -> None:
    loop, path, _ = session
    path.write_text(
        BASE.replace("weight = 0.5", "weight = 0.6")
        .replace("fast = 5", "fast = 8")
        .replace("top = 5", "top = 3"),
        encoding="utf-8",
    )
    assert loop.reload_config()
    assert loop.manager.weights == {"sma_cross": 0.6, "zone_magnet": 0.3}
    assert dict(loop.manager.member("sma_cross").params)["fast"] == 8
    assert loop.zones.top == 3
    assert loop.reloads == 1
    assert loop.loop_config.strategies[0].weight == 0.6


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (("fast = 5", "fast = 50"), "sma_cross"),  # fast >= slow: the strategy refuses it
        (("fast = 5", "fats = 5"), "fats"),  # no such parameter
        (("weight = 0.5", "weight = 0.9"), "add up to 1.2"),
        (('timeframe = "1m"', 'timeframe = "5m"'), r"\[run\] changed; that needs a restart"),
        (('name = "zone_magnet"', 'name = "rsi_reversion"'), "adding or removing"),
        (("[zones]", "[zones"), "not valid TOML"),
    ],
)
def test_an_invalid_or_restart_only_change_is_refused_and_the_config_kept(
    session, change: tuple[str, str], reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    loop, path, alerts = session
    before = loop.loop_config
    path.write_text(BASE.replace(*change), encoding="utf-8")
    with caplog.at_level(logging.ERROR):
        assert not loop.reload_config()
    assert loop.loop_config is before
    assert loop.manager.weights == {"sma_cross": 0.5, "zone_magnet": 0.3}
    assert dict(loop.manager.member("sma_cross").params)["fast"] == 5
    assert loop.reloads_refused == 1
    assert "running config is kept" in caplog.text
    assert alerts.sent[-1].title == "config reload refused"
    assert re.search(reason, alerts.sent[-1].message)
    assert str(path) in alerts.sent[-1].message
