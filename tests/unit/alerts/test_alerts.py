"""Alerts: the alert value, the log alerter, the Discord payload, fan-out and the factory."""

from __future__ import annotations

import logging
import time

import pytest

from tradeloop.alerts import (
    Alert,
    Alerter,
    AlerterStats,
    DiscordAlerter,
    LogAlerter,
    MultiAlerter,
    alerter_from_settings,
    close_alert,
    discord_payload,
    error_alert,
    open_alert,
    shutdown_alert,
    start_alert,
)
from tradeloop.core.errors import ConfigError
from tradeloop.core.time import parse_time

T0 = parse_time("2025-07-08T13:30:00Z")

# --------------------------------------------------------------------------- Alert


def test_alert_unknown_kind_is_refused_with_a_hint() -> None:
    # Act / Assert
    with pytest.raises(ConfigError, match="Did you mean: 'error'"):
        Alert("eror", "x")  # type: ignore[arg-type]


def test_alert_fields_are_copied_frozen_and_ordered() -> None:
    # Arrange
    source = {"b": 1, "a": 2.5, "c": "x"}
    # Act
    alert = Alert("info", "t", fields=source)
    source["d"] = 4
    # Assert
    assert list(alert.fields) == ["b", "a", "c"]
    with pytest.raises(TypeError):
        alert.fields["z"] = 1  # type: ignore[index]


def test_alert_default_ts_is_now_in_utc_ns() -> None:
    # Act
    alert = Alert("info", "t")
    # Assert
    assert abs(alert.ts - time.time_ns()) < 60 * 10**9


# --------------------------------------------------------------------------- LogAlerter


def test_log_alerter_writes_one_record_per_alert_with_level_and_fields(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Arrange
    alerter = LogAlerter()
    alerts = [
        open_alert("BTC/USDT", "long", 0.5, 60_000.0, sl=58_000.0, tp=64_000.0),
        error_alert("feed lost", "websocket closed"),
        Alert("warning", "drawdown 8%"),
        shutdown_alert("ctrl-c", 10_250.5, 0),
    ]
    # Act
    with caplog.at_level(logging.INFO, logger="tradeloop.alerts"):
        for alert in alerts:
            alerter.send(alert)
    # Assert
    records = [r for r in caplog.records if r.name == "tradeloop.alerts"]
    assert len(records) == 4
    assert [r.levelno for r in records] == [
        logging.INFO,
        logging.WARNING,
        logging.WARNING,
        logging.INFO,
    ]
    assert [r.alert for r in records] == ["open", "error", "warning", "shutdown"]  # type: ignore[attr-defined]
    assert records[0].fields == {  # type: ignore[attr-defined]
        "symbol": "BTC/USDT",
        "side": "long",
        "qty": 0.5,
        "price": 60_000.0,
        "sl": 58_000.0,
        "tp": 64_000.0,
    }
    assert "[open] Opened long BTC/USDT" in records[0].getMessage()
    assert "sl=58000.0" in records[0].getMessage()
    assert "websocket closed" in records[1].getMessage()
    assert alerter.stats == AlerterStats(sent=4, failed=0, dropped=0)
    assert isinstance(alerter, Alerter)


def test_log_alerter_never_raises_when_a_handler_breaks() -> None:
    # Arrange
    class Broken(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            raise RuntimeError("disk full")

        def handleError(self, record: logging.LogRecord) -> None:
            raise RuntimeError("and error handling too")

    logger = logging.getLogger("tradeloop.alerts.test_broken")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = Broken()
    logger.addHandler(handler)
    alerter = LogAlerter(logger)
    # Act
    try:
        alerter.send(Alert("info", "x"))
    finally:
        logger.removeHandler(handler)
    # Assert
    assert alerter.stats == AlerterStats(sent=0, failed=1, dropped=0)


# --------------------------------------------------------------------------- Discord payload


@pytest.mark.parametrize(
    ("alert", "color"),
    [
        (start_alert("paper", "sma_cross", ["BTC/USDT", "ETH/USDT"], "1h", 10_000.0), 0x3498DB),
        (open_alert("BTC/USDT", "long", 1.0, 100.0), 0x2ECC71),
        (close_alert("BTC/USDT", "long", 1.0, 100.0, 110.0, 10.0, "take profit"), 0x2ECC71),
        (close_alert("BTC/USDT", "long", 1.0, 100.0, 90.0, -10.0, "stop loss"), 0xE74C3C),
        (Alert("close", "closed, no pnl"), 0x95A5A6),
        (error_alert("boom"), 0xE74C3C),
        (shutdown_alert("done", 1.0, 0), 0x95A5A6),
        (Alert("warning", "careful"), 0xE67E22),
    ],
)
def test_discord_payload_colour_by_kind(alert: Alert, color: int) -> None:
    # Act
    payload = discord_payload(alert)
    # Assert
    assert payload["embeds"][0]["color"] == color


def test_discord_payload_shape() -> None:
    # Arrange
    alert = Alert("open", "Opened long BTC", "why", fields={"qty": 2, "price": 1.5}, ts=T0)
    # Act
    payload = discord_payload(alert, username="bot")
    # Assert
    assert payload == {
        "username": "bot",
        "embeds": [
            {
                "title": "Opened long BTC",
                "description": "why",
                "color": 0x2ECC71,
                "fields": [
                    {"name": "qty", "value": "2", "inline": True},
                    {"name": "price", "value": "1.5", "inline": True},
                ],
                "timestamp": "2025-07-08T13:30:00+00:00",
                "footer": {"text": "tradeloop"},
            }
        ],
    }


def test_discord_payload_truncates_to_discord_limits() -> None:
    # Arrange
    fields = {f"f{i:02d}" + "n" * 300: "v" * 2000 for i in range(30)}
    alert = Alert("info", "T" * 300, "D" * 5000, fields=fields)
    # Act
    embed = discord_payload(alert)["embeds"][0]
    # Assert
    assert len(embed["title"]) == 256
    assert embed["title"].endswith("…")
    assert len(embed["description"]) == 4096
    assert 0 < len(embed["fields"]) <= 25
    assert all(len(f["name"]) <= 256 and len(f["value"]) <= 1024 for f in embed["fields"])
    total = len(embed["title"]) + len(embed["description"]) + len(embed["footer"]["text"])
    total += sum(len(f["name"]) + len(f["value"]) for f in embed["fields"])
    assert total <= 6000


def test_discord_payload_25_field_cap_and_empty_values() -> None:
    # Arrange
    alert = Alert("info", "t", fields={f"k{i}": "" if i == 0 else i for i in range(40)})
    # Act
    embed = discord_payload(alert)["embeds"][0]
    # Assert
    assert [f["name"] for f in embed["fields"]] == [f"k{i}" for i in range(25)]
    assert embed["fields"][0]["value"] == "\u200b"
    assert "description" not in embed


def test_discord_alerter_refuses_a_non_http_url() -> None:
    # Act / Assert
    with pytest.raises(ConfigError, match="https://"):
        DiscordAlerter("discord.com/api/webhooks/1/x")


# --------------------------------------------------------------------------- fan-out, factory


class _Recorder:
    def __init__(self, *, explode: bool = False) -> None:
        self.got: list[Alert] = []
        self.closed_with: float | None = None
        self.explode = explode

    def send(self, alert: Alert) -> None:
        if self.explode:
            raise RuntimeError("broken alerter")
        self.got.append(alert)

    def close(self, timeout_s: float = 5.0) -> None:
        self.closed_with = timeout_s

    @property
    def stats(self) -> AlerterStats:
        return AlerterStats(sent=len(self.got), failed=0, dropped=1)


def test_multi_alerter_fans_out_past_a_broken_member_and_sums_stats() -> None:
    # Arrange
    first, broken, last = _Recorder(), _Recorder(explode=True), _Recorder()
    multi = MultiAlerter([first, broken, last])
    alert = Alert("info", "hello")
    # Act
    multi.send(alert)
    multi.close(2.0)
    # Assert
    assert first.got == [alert]
    assert last.got == [alert]
    assert last.closed_with is not None
    assert 0 <= last.closed_with <= 2.0
    assert multi.stats == AlerterStats(sent=2, failed=0, dropped=3)


def test_alerter_from_settings_log_only_without_url() -> None:
    # Act / Assert
    assert isinstance(alerter_from_settings(None), LogAlerter)
    assert isinstance(alerter_from_settings("  "), LogAlerter)


def test_alerter_from_settings_log_and_discord_with_url() -> None:
    # Act
    alerter = alerter_from_settings("http://127.0.0.1:9/api/webhooks/1/x")
    try:
        # Assert
        assert isinstance(alerter, MultiAlerter)
        assert [type(a) for a in alerter.alerters] == [LogAlerter, DiscordAlerter]
    finally:
        alerter.close(0.1)


def test_message_helpers_carry_the_engine_facts() -> None:
    # Act
    start = start_alert("live", "sma", ["BTC/USDT", "ETH/USDT"], "15m", 5_000.0)
    opened = open_alert("ETH/USDT", "short", 2.0, 3_000.0)
    closed = close_alert("ETH/USDT", "short", 2.0, 3_000.0, 2_900.0, 200.0, "tp")
    # Assert
    assert start.kind == "start"
    assert start.fields["symbols"] == "BTC/USDT, ETH/USDT"
    assert start.fields["balance"] == 5_000.0
    assert "sl" not in opened.fields
    assert "tp" not in opened.fields
    assert list(closed.fields) == ["symbol", "side", "qty", "entry", "exit", "pnl", "reason"]
    assert closed.fields["pnl"] == 200.0
