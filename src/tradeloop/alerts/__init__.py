"""Alerts: tell a human what the engine did, without ever slowing it down.

:class:`LogAlerter` (the default) writes log lines; :class:`DiscordAlerter` posts embeds to a
Discord webhook from a background thread; :class:`MultiAlerter` fans out to several.
:func:`alerter_from_settings` builds the usual set.
"""

from __future__ import annotations

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


def alerter_from_settings(discord_webhook_url: str | None = None) -> Alerter:
    """Return the alerter to use: log only, or log plus Discord when a webhook URL is given.

    An empty or whitespace-only URL counts as none.
    """
    url = (discord_webhook_url or "").strip()
    if not url:
        return LogAlerter()
    return MultiAlerter([LogAlerter(), DiscordAlerter(url)])
