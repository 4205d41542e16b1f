"""DiscordAlerter against a real local webhook server: payloads, 429/5xx handling, a dead or
hanging webhook never reaching the caller, queue overflow and bounded close."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from datetime import datetime

import pytest

from tradeloop.alerts import (
    Alert,
    AlerterStats,
    DiscordAlerter,
    LogAlerter,
    MultiAlerter,
    alerter_from_settings,
    close_alert,
    error_alert,
    open_alert,
    shutdown_alert,
    start_alert,
)
from tradeloop.testing.webhook import WebhookServer

RATE_LIMITED = {"message": "You are being rate limited.", "retry_after": 0.3, "global": False}


@pytest.fixture
def server() -> Iterator[WebhookServer]:
    with WebhookServer() as srv:
        yield srv


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def test_posts_discord_payload_for_each_standard_alert(server: WebhookServer) -> None:
    # Arrange
    alerter = DiscordAlerter(server.url, username="tl-test")
    alerts = [
        start_alert("paper", "sma_cross", ["BTC/USDT"], "1h", 10_000.0),
        open_alert("BTC/USDT", "long", 0.1, 60_000.0, sl=59_000.0),
        close_alert("BTC/USDT", "long", 0.1, 60_000.0, 61_000.0, 100.0, "tp"),
        close_alert("BTC/USDT", "long", 0.1, 60_000.0, 59_000.0, -100.0, "sl"),
        error_alert("feed lost", "x" * 5000),
        shutdown_alert("signal", 10_100.0, 0),
        Alert("warning", "W" * 300, fields={f"k{i}": "v" * 2000 for i in range(30)}),
    ]
    # Act
    for alert in alerts:
        alerter.send(alert)
    posts = server.wait_for_posts(len(alerts))
    alerter.close(2.0)
    # Assert
    assert alerter.stats == AlerterStats(sent=7, failed=0, dropped=0)
    assert all(p.path == "/api/webhooks/123/abc" for p in posts)
    assert all(p.headers.get("Content-Type", "").startswith("application/json") for p in posts)
    bodies = [p.body for p in posts]
    assert all(b["username"] == "tl-test" and len(b["embeds"]) == 1 for b in bodies)
    embeds = [b["embeds"][0] for b in bodies]
    assert [e["color"] for e in embeds] == [
        0x3498DB,
        0x2ECC71,
        0x2ECC71,
        0xE74C3C,
        0xE74C3C,
        0x95A5A6,
        0xE67E22,
    ]
    assert embeds[0]["title"] == "tradeloop started (paper): sma_cross"
    assert embeds[1]["fields"][:2] == [
        {"name": "symbol", "value": "BTC/USDT", "inline": True},
        {"name": "side", "value": "long", "inline": True},
    ]
    assert {"name": "sl", "value": "59000.0", "inline": True} in embeds[1]["fields"]
    for embed, alert in zip(embeds, alerts, strict=True):
        assert embed["footer"] == {"text": "tradeloop"}
        stamp = datetime.fromisoformat(embed["timestamp"])
        assert stamp.utcoffset() is not None
        assert stamp.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
        assert abs(stamp.timestamp() - alert.ts / 1e9) < 1e-3
        assert all(f["inline"] is True for f in embed.get("fields", []))
    assert len(embeds[4]["description"]) == 4096
    assert len(embeds[6]["title"]) == 256
    assert len(embeds[6]["fields"]) <= 25
    assert all(len(f["value"]) <= 1024 for f in embeds[6]["fields"])


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({"Retry-After": "0.3"}, RATE_LIMITED),
        ({"Retry-After": "0.3"}, None),
    ],
    ids=["json-retry_after", "header-only"],
)
def test_429_retry_after_is_honoured(
    server: WebhookServer, headers: dict[str, str], body: object
) -> None:
    # Arrange
    server.script([(429, headers, body)])
    alerter = DiscordAlerter(server.url)
    # Act
    alerter.send(Alert("info", "rate me"))
    first, second = server.wait_for_posts(2)
    wait_until(lambda: alerter.stats.sent == 1)
    alerter.close(1.0)
    # Assert
    assert (first.status, second.status) == (429, 204)
    assert second.time - first.time >= 0.3
    assert second.body == first.body
    assert alerter.stats == AlerterStats(sent=1, failed=0, dropped=0)


def test_429_then_500_then_success_delivers_once(server: WebhookServer) -> None:
    # Arrange
    server.script(
        [
            (429, {"Retry-After": "0.05"}, {**RATE_LIMITED, "retry_after": 0.05}),
            (500, {}, None),
            (502, {}, {"message": "bad gateway"}),
        ]
    )
    alerter = DiscordAlerter(server.url, backoff_s=0.02)
    # Act
    alerter.send(Alert("close", "once", fields={"pnl": 1.0}))
    posts = server.wait_for_posts(4)
    wait_until(lambda: alerter.stats.sent == 1)
    alerter.close(1.0)
    time.sleep(0.2)
    # Assert
    assert [p.status for p in server.posts] == [429, 500, 502, 204]
    assert all(p.body == posts[0].body for p in posts)
    assert alerter.stats == AlerterStats(sent=1, failed=0, dropped=0)


def test_always_500_fails_after_retries_without_touching_the_caller(
    server: WebhookServer,
) -> None:
    # Arrange
    server.script([(500, {}, {"message": "internal"})] * 100)
    alerter = DiscordAlerter(server.url, max_retries=2, backoff_s=0.01)
    # Act
    for i in range(3):
        alerter.send(Alert("error", f"e{i}"))
    wait_until(lambda: alerter.stats.failed == 3)
    alerter.close(1.0)
    # Assert
    assert len(server.posts) == 9  # 1 try + 2 retries each
    assert alerter.stats == AlerterStats(sent=0, failed=3, dropped=0)


def test_4xx_other_than_429_is_not_retried(server: WebhookServer) -> None:
    # Arrange
    server.script([(404, {}, {"message": "Unknown Webhook", "code": 10015})])
    alerter = DiscordAlerter(server.url, backoff_s=0.01)
    # Act
    alerter.send(Alert("info", "gone"))
    alerter.send(Alert("info", "after"))
    wait_until(lambda: alerter.stats.failed + alerter.stats.sent == 2)
    alerter.close(1.0)
    # Assert
    assert [p.status for p in server.posts] == [404, 204]
    assert alerter.stats == AlerterStats(sent=1, failed=1, dropped=0)


def test_unreachable_webhook_counts_failed() -> None:
    # Arrange: a port nobody listens on
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    alerter = DiscordAlerter(
        f"http://127.0.0.1:{port}/api/webhooks/1/x", max_retries=1, backoff_s=0.01
    )
    # Act
    alerter.send(Alert("info", "nobody home"))
    wait_until(lambda: alerter.stats.failed == 1)
    alerter.close(1.0)
    # Assert
    assert alerter.stats == AlerterStats(sent=0, failed=1, dropped=0)


def test_hanging_webhook_never_blocks_send_and_close_is_bounded(server: WebhookServer) -> None:
    # Arrange
    server.hang(10.0)
    alerter = DiscordAlerter(server.url, max_queue=10, timeout_s=3.0)
    # Act
    started = time.perf_counter()
    for i in range(1000):
        alerter.send(Alert("info", f"a{i}"))
    send_elapsed = time.perf_counter() - started
    server.wait_for_posts(1)
    started = time.perf_counter()
    alerter.close(timeout_s=0.5)
    close_elapsed = time.perf_counter() - started
    # Assert
    assert send_elapsed < 1.0
    assert close_elapsed < 2.0
    stats = alerter.stats
    assert stats.sent == 0
    # 1 taken by the worker (in flight), 10 queued (dropped at close), the rest overflowed
    assert stats.dropped >= 999
    alerter.send(Alert("info", "after close"))
    assert alerter.stats.dropped >= stats.dropped + 1


def test_queue_overflow_counts_drops_and_logs_once_per_n(
    server: WebhookServer, caplog: pytest.LogCaptureFixture
) -> None:
    # Arrange
    server.hang(10.0)
    alerter = DiscordAlerter(server.url, max_queue=5, drop_log_every=50)
    alerter.send(Alert("info", "in flight"))
    server.wait_for_posts(1)
    # Act
    with caplog.at_level("WARNING", logger="tradeloop.alerts"):
        for i in range(105):
            alerter.send(Alert("info", f"a{i}"))
    # Assert
    assert alerter.pending == 5
    assert alerter.stats.dropped == 100
    drops = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert len(drops) == 3  # the 1st, 50th and 100th drop
    alerter.close(0.2)


def test_close_flushes_queued_alerts(server: WebhookServer) -> None:
    # Arrange
    alerter = DiscordAlerter(server.url)
    # Act
    for i in range(5):
        alerter.send(Alert("info", f"m{i}"))
    alerter.close(5.0)
    # Assert
    assert [p.body["embeds"][0]["title"] for p in server.posts] == [f"m{i}" for i in range(5)]
    assert alerter.stats == AlerterStats(sent=5, failed=0, dropped=0)


def test_close_abandons_a_long_rate_limit_wait(server: WebhookServer) -> None:
    # Arrange
    server.script([(429, {"Retry-After": "20"}, {**RATE_LIMITED, "retry_after": 20.0})])
    alerter = DiscordAlerter(server.url)
    alerter.send(Alert("info", "slow"))
    server.wait_for_posts(1)
    # Act
    started = time.perf_counter()
    alerter.close(0.5)
    # Assert
    assert time.perf_counter() - started < 1.5
    wait_until(lambda: alerter.stats.dropped == 1)
    assert alerter.stats == AlerterStats(sent=0, failed=0, dropped=1)


def test_alerter_from_settings_posts_and_logs(
    server: WebhookServer, caplog: pytest.LogCaptureFixture
) -> None:
    # Arrange
    alerter = alerter_from_settings(server.url)
    assert isinstance(alerter, MultiAlerter)
    # Act
    with caplog.at_level("INFO", logger="tradeloop.alerts"):
        alerter.send(start_alert("live", "s", ["BTC/USDT"], "1m", 1.0))
        alerter.close(2.0)
    # Assert
    assert len(server.posts) == 1
    assert any(getattr(r, "alert", None) == "start" for r in caplog.records)
    log_stats = [a.stats for a in alerter.alerters if isinstance(a, LogAlerter)]
    assert log_stats == [AlerterStats(sent=1, failed=0, dropped=0)]
