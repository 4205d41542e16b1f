"""Alerts to Telegram, Slack, email and the other channels apprise speaks, by URL.

:class:`AppriseAlerter` hands every alert to a background thread that sends it through
`apprise <https://github.com/caronc/apprise>`_ to each configured URL, e.g.
``tgram://BOT_TOKEN/CHAT_ID``, ``slack://TOKEN_A/TOKEN_B/TOKEN_C/#channel``,
``mailtos://user:password@example.com?to=ops@example.com`` or ``json://host/path``. Like the
Discord alerter, :meth:`~AppriseAlerter.send` never blocks the trading loop and never raises.

The URLs hold secrets (bot tokens, webhook keys, mail passwords): they are never logged or
shown; a channel is named by its scheme only (``tgram``, ``slack``...).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import re
import threading
import time
from collections.abc import Sequence

from tradeloop.alerts.base import Alert, AlerterStats, StatsCounter
from tradeloop.core.errors import ConfigError
from tradeloop.core.extras import needs_extra

__all__ = ["AppriseAlerter", "channel_name"]

_log = logging.getLogger("tradeloop.alerts")

_TITLE = {"error": "ERROR", "warning": "WARNING", "shutdown": "STOPPED", "start": "STARTED"}


class _RedactFilter(logging.Filter):
    """Masks the configured channels' secrets in log lines of apprise and of the HTTP library
    under it (their own lines may quote a token, e.g. in a request path)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        text = record.getMessage()
        masked = text
        for secret in self.secrets:
            masked = masked.replace(secret, "***")
        if masked != text:
            record.msg, record.args = masked, None
        return True


_REDACT = _RedactFilter()


def _secret_parts(url: str) -> set[str]:
    """The pieces of a channel URL that may be secret: every token of 6+ characters after the
    scheme (bot tokens, webhook keys, passwords, users)."""
    rest = url.split("://", 1)[-1]
    return {t for t in re.split(r"[/:@?&=#,]", rest) if len(t) >= 6}


def _guard_logs(urls: Sequence[str]) -> None:
    for url in urls:
        _REDACT.secrets |= _secret_parts(url)
    for name in ("apprise", "urllib3.connectionpool"):
        log = logging.getLogger(name)
        if _REDACT not in log.filters:
            log.addFilter(_REDACT)


def channel_name(url: str) -> str:
    """A channel's name for logs: its scheme only (``tgram``), never the secret rest."""
    return url.split("://", 1)[0].lower() if "://" in url else "?"


class AppriseAlerter:
    """Deliver alerts to apprise URLs from a background thread.

    Parameters
    ----------
    urls
        One apprise URL per channel.
    queue_max
        Alerts waiting beyond this are dropped (counted), never blocking the caller.

    Raises
    ------
    ConfigError
        When a URL is not one apprise understands (named by its scheme, not its content).
    """

    def __init__(self, urls: Sequence[str], *, queue_max: int = 1000) -> None:
        with needs_extra("live", "notification channels (apprise)"):
            import apprise

        _guard_logs(urls)
        self._apprise = apprise.Apprise()
        self.channels: list[str] = []
        for n, url in enumerate(urls):
            if not self._apprise.add(url):
                raise ConfigError(
                    f"notification URL #{n + 1} ({channel_name(url)}://...) is not a URL "
                    "apprise understands (see its list of services)"
                )
            self.channels.append(channel_name(url))
        self._queue: queue.Queue[Alert | None] = queue.Queue(maxsize=queue_max)
        self._stats = StatsCounter()
        self._thread = threading.Thread(target=self._run, name="alerts-apprise", daemon=True)
        self._thread.start()

    def send(self, alert: Alert) -> None:
        """Queue ``alert`` (dropped and counted when the queue is full)."""
        try:
            self._queue.put_nowait(alert)
        except queue.Full:
            self._stats.add(dropped=1)

    def close(self, timeout_s: float = 5.0) -> None:
        """Deliver what is queued within ``timeout_s``; what is left is counted as dropped."""
        deadline = time.monotonic() + timeout_s
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=max(0.01, timeout_s))
        self._thread.join(max(0.0, deadline - time.monotonic()))
        left = 0
        while True:
            try:
                if self._queue.get_nowait() is not None:
                    left += 1
            except queue.Empty:
                break
        if left:
            self._stats.add(dropped=left)

    @property
    def stats(self) -> AlerterStats:
        """Delivery counters so far."""
        return self._stats.snapshot()

    def _run(self) -> None:
        while True:
            alert = self._queue.get()
            if alert is None:
                return
            title, body = format_alert(alert)
            try:
                ok = bool(self._apprise.notify(title=title, body=body))
            except Exception as exc:  # a transport failure must not end the thread
                _log.warning("notification failed: %s", type(exc).__name__)
                ok = False
            if ok:
                self._stats.add(sent=1)
            else:
                self._stats.add(failed=1)
                _log.warning("notification not delivered to %s", ", ".join(self.channels))


def format_alert(alert: Alert) -> tuple[str, str]:
    """The title and plain-text body of an alert."""
    from tradeloop.core.time import to_iso

    title = f"[tradeloop] {_TITLE.get(alert.kind, alert.kind.upper())}: {alert.title}"
    lines = [alert.message] if alert.message else []
    lines.extend(f"{k}: {v}" for k, v in alert.fields.items())
    lines.append(to_iso(alert.ts))
    return title, "\n".join(lines)
