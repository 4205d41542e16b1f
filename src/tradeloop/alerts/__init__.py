"""Alerts: tell a human what the engine did, without ever slowing it down.

:class:`LogAlerter` (the default) writes log lines; :class:`DiscordAlerter` posts embeds to a
Discord webhook from a background thread; :class:`MultiAlerter` fans out to several.
:class:`~tradeloop.alerts.notify.AppriseAlerter` sends to Telegram, Slack, email and the other
channels apprise speaks, configured by URL. :func:`alerter_from_settings` builds the usual set.
"""

from __future__ import annotations

from collections.abc import Sequence

from tradeloop.alerts.base import (
    ALERT_KINDS,
    Alert,
    Alerter,
    AlerterStats,
    AlertKind,
    MultiAlerter,
)
from tradeloop.alerts.discord import DiscordAlerter, discord_payload
from tradeloop.alerts.log import LogAlerter
from tradeloop.alerts.messages import (
    close_alert,
    daily_summary_alert,
    error_alert,
    open_alert,
    risk_alert,
    shutdown_alert,
    start_alert,
)

__all__ = [
    "ALERT_KINDS",
    "Alert",
    "AlertKind",
    "Alerter",
    "AlerterStats",
    "DiscordAlerter",
    "LogAlerter",
    "MultiAlerter",
    "alerter_from_settings",
    "close_alert",
    "daily_summary_alert",
    "discord_payload",
    "error_alert",
    "open_alert",
    "risk_alert",
    "shutdown_alert",
    "start_alert",
]


def alerter_from_settings(
    discord_webhook_url: str | None = None, notify_urls: Sequence[str] = ()
) -> Alerter:
    """Return the alerter to use: the log, plus Discord when a webhook URL is given, plus the
    apprise channels of ``notify_urls`` (Telegram, Slack, email...; see
    :class:`~tradeloop.alerts.notify.AppriseAlerter`).

    An empty or whitespace-only URL counts as none.

    Raises
    ------
    ConfigError
        For a notification URL apprise does not understand (named by its scheme only).
    """
    url = (discord_webhook_url or "").strip()
    urls = [u.strip() for u in notify_urls if u.strip()]
    members: list[Alerter] = [LogAlerter()]
    if url:
        members.append(DiscordAlerter(url))
    if urls:
        from tradeloop.alerts.notify import AppriseAlerter

        members.append(AppriseAlerter(urls))
    if len(members) == 1:
        return members[0]
    return MultiAlerter(members)
