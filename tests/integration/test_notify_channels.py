"""Alerts through apprise: delivered to a real local HTTP endpoint (apprise's ``json://``
channel), a failing endpoint counted, Telegram/Slack/email URLs accepted, a bad URL refused,
and no URL secret in any log line or error message."""

from __future__ import annotations

import logging

import pytest

from tradeloop.alerts import AlerterStats, MultiAlerter, alerter_from_settings, start_alert
from tradeloop.alerts.notify import AppriseAlerter
from tradeloop.core.errors import ConfigError
from tradeloop.testing.webhook import WebhookServer

SECRET = "s3cr3tTokenValue12345678"  # the shape of a Slack token, so apprise accepts it


def test_alerts_reach_a_json_endpoint_and_failures_are_counted_without_secrets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with WebhookServer() as server:
        url = server.url.replace("http://", "json://") + f"/hook/{SECRET}"
        alerter = AppriseAlerter([url])
        # Act: one delivered, then one the endpoint refuses
        alerter.send(start_alert("paper", "sma_cross", ["BTC/USDT"], "1m", 10_000.0))
        posts = server.wait_for_posts(1, timeout=10)
        server.script([(500, {}, {"error": "down"})])
        alerter.send(start_alert("paper", "sma_cross", ["BTC/USDT"], "1m", 9_000.0))
        server.wait_for_posts(2, timeout=10)
        alerter.close(10)
    # Assert
    assert posts[0].path.endswith(f"/hook/{SECRET}")
    assert posts[0].body["title"].startswith("[tradeloop] STARTED")
    assert "BTC/USDT" in posts[0].body["message"]
    assert alerter.stats == AlerterStats(sent=1, failed=1, dropped=0)
    assert SECRET not in caplog.text


def test_channel_urls_are_accepted_and_a_bad_one_is_refused_without_its_secret() -> None:
    # Act
    alerter = alerter_from_settings(
        None,
        [
            f"tgram://123456789:{SECRET}/12345",
            f"slack://T1JJ3T3L2/A1BRTD4JD/{SECRET}/#ops",
            f"mailtos://ops:{SECRET}@example.com?to=ops@example.com",
        ],
    )
    with pytest.raises(ConfigError) as refused:
        AppriseAlerter([f"nonsense://{SECRET}"])
    # Assert
    assert isinstance(alerter, MultiAlerter)
    (apprise_alerter,) = [a for a in alerter.alerters if isinstance(a, AppriseAlerter)]
    assert apprise_alerter.channels == ["tgram", "slack", "mailtos"]
    assert SECRET not in str(refused.value)
    assert "nonsense://" in str(refused.value)
    apprise_alerter.close(0.1)
