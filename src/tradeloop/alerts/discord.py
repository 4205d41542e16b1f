"""Discord webhook alerter: a background worker posts embeds; the caller never waits.

:meth:`DiscordAlerter.send` appends to a bounded in-memory queue and returns; a daemon thread
posts each alert to the webhook with :mod:`httpx`. Rate limits (429) are honoured with the
server's ``retry_after``; 5xx answers and network errors are retried with exponential backoff;
other 4xx answers are not retried. Nothing the webhook does reaches the caller: outcomes show
in :attr:`DiscordAlerter.stats` and on the ``tradeloop.alerts`` logger.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from tradeloop.alerts.base import Alert, AlerterStats, StatsCounter
from tradeloop.core.errors import ConfigError
from tradeloop.core.time import to_iso

if TYPE_CHECKING:  # httpx (~0.2 s) is imported when a webhook is configured, not by every session
    import httpx

__all__ = [
    "COLORS",
    "EMBED_LIMITS",
    "DiscordAlerter",
    "discord_payload",
]

_log = logging.getLogger("tradeloop.alerts")

BLUE = 0x3498DB
GREEN = 0x2ECC71
RED = 0xE74C3C
GREY = 0x95A5A6
ORANGE = 0xE67E22

COLORS: dict[str, int] = {
    "start": BLUE,
    "open": GREEN,
    "close": GREY,  # green or red when the alert has a numeric "pnl" field
    "error": RED,
    "shutdown": GREY,
    "warning": ORANGE,
    "info": BLUE,
}
"""Embed colour by alert kind."""

EMBED_LIMITS: dict[str, int] = {
    "title": 256,
    "description": 4096,
    "fields": 25,
    "field_name": 256,
    "field_value": 1024,
    "footer": 2048,
    "total": 6000,
}
"""Discord's embed limits (characters, and number of fields)."""

_FOOTER = "tradeloop"
_EMPTY = "\u200b"  # Discord refuses empty field names and values; a zero-width space passes


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _color(alert: Alert) -> int:
    if alert.kind == "close" and "pnl" in alert.fields:
        try:
            pnl = float(alert.fields["pnl"])
        except (TypeError, ValueError):
            return GREY
        if pnl > 0:
            return GREEN
        if pnl < 0:
            return RED
        return GREY
    return COLORS.get(alert.kind, GREY)


def discord_payload(alert: Alert, *, username: str = "tradeloop") -> dict[str, Any]:
    """Build the JSON body of a Discord webhook execution for ``alert``.

    One embed with the title, the message as description, a colour by kind (see
    :data:`COLORS`; a ``close`` alert is green or red by the sign of its ``pnl`` field), the
    fields as inline fields, the alert time as ISO-8601 UTC and a ``tradeloop`` footer. Texts
    are truncated to Discord's limits (:data:`EMBED_LIMITS`); fields past the 25th, or past
    the 6,000-character embed total, are left out.

    >>> discord_payload(Alert("info", "hi", ts=0))["embeds"][0]["timestamp"]
    '1970-01-01T00:00:00+00:00'
    """
    title = _truncate(alert.title or _EMPTY, EMBED_LIMITS["title"])
    description = _truncate(alert.message, EMBED_LIMITS["description"])
    fields: list[dict[str, Any]] = []
    budget = EMBED_LIMITS["total"] - len(title) - len(description) - len(_FOOTER)
    for name, value in list(alert.fields.items())[: EMBED_LIMITS["fields"]]:
        name_text = _truncate(str(name) or _EMPTY, EMBED_LIMITS["field_name"])
        value_text = _truncate(str(value) or _EMPTY, EMBED_LIMITS["field_value"])
        budget -= len(name_text) + len(value_text)
        if budget < 0:
            break
        fields.append({"name": name_text, "value": value_text, "inline": True})
    embed: dict[str, Any] = {
        "title": title,
        "color": _color(alert),
        "timestamp": to_iso(alert.ts),
        "footer": {"text": _FOOTER},
    }
    if description:
        embed["description"] = description
    if fields:
        embed["fields"] = fields
    return {"username": username, "embeds": [embed]}


class DiscordAlerter:
    """Post alerts to a Discord webhook from a background thread.

    Parameters
    ----------
    webhook_url
        ``https://discord.com/api/webhooks/<id>/<token>`` (any http(s) URL is accepted).
    username
        Name the messages are posted under.
    max_queue
        Alerts waiting for delivery; when full, new alerts are dropped (counted in
        ``stats.dropped``, logged on the first drop and every ``drop_log_every`` after).
    timeout_s
        Timeout of each HTTP request.
    max_retries
        Retries after a 5xx answer or a network error before the alert counts as failed.
    backoff_s
        First retry delay after a 5xx or network error; doubles on each retry.
    max_retry_after_s
        Cap on the wait a 429 asks for.
    max_rate_limited
        429 answers tolerated for one alert before it counts as failed.
    drop_log_every
        Log one warning per this many dropped alerts.

    Raises
    ------
    ConfigError
        If the URL is not http(s) or a number is out of range.
    """

    def __init__(
        self,
        webhook_url: str,
        *,
        username: str = "tradeloop",
        max_queue: int = 100,
        timeout_s: float = 5.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        max_retry_after_s: float = 30.0,
        max_rate_limited: int = 10,
        drop_log_every: int = 100,
    ) -> None:
        if not webhook_url.startswith(("http://", "https://")):
            raise ConfigError(f"discord webhook URL must start with https://, got {webhook_url!r}")
        if max_queue < 1 or timeout_s <= 0 or max_retries < 0 or backoff_s < 0:
            raise ConfigError(
                "DiscordAlerter: max_queue >= 1, timeout_s > 0, max_retries >= 0 and "
                "backoff_s >= 0 are required"
            )
        self.webhook_url = webhook_url
        self.username = username
        self.max_queue = max_queue
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_retry_after_s = max_retry_after_s
        self.max_rate_limited = max_rate_limited
        self.drop_log_every = max(1, drop_log_every)
        self._stats = StatsCounter()
        self._cond = threading.Condition()
        self._pending: deque[Alert] = deque()
        self._closing = False
        self._deadline = float("inf")  # monotonic time close() gives up at
        self._stop = threading.Event()  # set when close() gives up: abandon waits and alerts
        import httpx

        self._client = httpx.Client(timeout=timeout_s)
        self._thread = threading.Thread(target=self._run, name="discord-alerter", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ caller side

    def send(self, alert: Alert) -> None:
        """Queue ``alert`` for delivery and return at once (drop it if the queue is full)."""
        try:
            with self._cond:
                if not self._closing and len(self._pending) < self.max_queue:
                    self._pending.append(alert)
                    self._cond.notify()
                    return
                closing = self._closing
            dropped = self._stats.add(dropped=1)
            if dropped == 1 or dropped % self.drop_log_every == 0:
                why = "alerter closed" if closing else f"queue full ({self.max_queue})"
                _log.warning("discord alert dropped (%s); %d dropped so far", why, dropped)
        except Exception:  # the contract: never raise into the trading loop
            return

    def close(self, timeout_s: float = 5.0) -> None:
        """Deliver queued alerts for up to ``timeout_s``, then stop the worker.

        Alerts still queued then are counted as dropped. Returns within ``timeout_s`` (plus
        scheduling noise) even if a request hangs; such a request ends with its own
        ``timeout_s`` in the background. Idempotent.
        """
        try:
            with self._cond:
                if not self._closing:
                    self._closing = True
                    self._deadline = time.monotonic() + max(0.0, timeout_s)
                self._cond.notify_all()
            self._thread.join(max(0.0, self._deadline - time.monotonic()))
            with self._cond:
                left = len(self._pending)
                self._pending.clear()
            self._stop.set()
            if left:
                self._stats.add(dropped=left)
                _log.warning("discord alerter closed with %d alerts undelivered", left)
        except Exception:
            _log.exception("discord alerter close failed")

    @property
    def stats(self) -> AlerterStats:
        """Alerts delivered, failed and dropped so far."""
        return self._stats.snapshot()

    @property
    def pending(self) -> int:
        """Alerts waiting in the queue (not counting the one being posted)."""
        with self._cond:
            return len(self._pending)

    # ------------------------------------------------------------------ worker side

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._pending and not self._closing:
                        self._cond.wait()
                    if not self._pending or self._stop.is_set():
                        return
                    alert = self._pending.popleft()
                try:
                    self._deliver(alert)
                except Exception:  # a bug here must not kill the worker silently
                    _log.exception("discord alerter: unexpected error delivering %r", alert.title)
                    self._stats.add(failed=1)
        finally:
            self._client.close()

    def _wait(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless closing cuts it short; return False to abandon the alert."""
        if time.monotonic() + seconds > self._deadline:
            return False
        return not self._stop.wait(seconds)

    def _deliver(self, alert: Alert) -> None:
        import httpx

        payload = discord_payload(alert, username=self.username)
        errors = 0
        limited = 0
        while True:
            if self._stop.is_set():
                self._stats.add(dropped=1)
                return
            try:
                response = self._client.post(self.webhook_url, json=payload)
            except httpx.HTTPError as exc:
                status, reason = None, f"{type(exc).__name__}: {exc}"
            else:
                status, reason = response.status_code, response.text[:200]
            if status is not None and 200 <= status < 300:
                self._stats.add(sent=1)
                return
            if status == 429:
                limited += 1
                if limited > self.max_rate_limited:
                    self._give_up(alert, f"rate limited {limited} times")
                    return
                delay = min(_retry_after(response), self.max_retry_after_s)
            elif status is None or status >= 500:
                errors += 1
                if errors > self.max_retries:
                    self._give_up(alert, f"{errors} attempts, last: {status or ''} {reason}")
                    return
                delay = self.backoff_s * 2 ** (errors - 1)
            else:
                self._give_up(alert, f"HTTP {status}: {reason}")
                return
            if not self._wait(delay):
                self._stats.add(dropped=1)
                _log.warning("discord alert %r abandoned: alerter closing", alert.title)
                return

    def _give_up(self, alert: Alert, why: str) -> None:
        self._stats.add(failed=1)
        _log.warning("discord alert %r failed: %s", alert.title, why)


def _retry_after(response: httpx.Response) -> float:
    """Seconds a 429 asks to wait: JSON ``retry_after``, else the ``Retry-After`` header."""
    try:
        body = response.json()
        if isinstance(body, dict) and body.get("retry_after") is not None:
            return max(0.0, float(body["retry_after"]))
    except (ValueError, TypeError):
        pass
    try:
        return max(0.0, float(response.headers.get("Retry-After", "1")))
    except ValueError:
        return 1.0
