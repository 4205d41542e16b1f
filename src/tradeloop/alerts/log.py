"""The default alerter: one structured log line per alert."""

from __future__ import annotations

import logging

from tradeloop.alerts.base import Alert, AlerterStats, StatsCounter

__all__ = ["LogAlerter"]

_WARNING_KINDS = frozenset({"error", "warning"})


class LogAlerter:
    """Write each alert as one record on the ``tradeloop.alerts`` logger.

    ``error`` and ``warning`` alerts log at WARNING, the others at INFO. The record carries
    ``extra={"alert": kind, "fields": {...}}`` for structured (JSON) log handlers; the text is
    ``[kind] title: message (k=v, ...)``.

    Parameters
    ----------
    logger
        Logger to write to (default ``logging.getLogger("tradeloop.alerts")``).
    """

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger("tradeloop.alerts")
        self._stats = StatsCounter()

    def send(self, alert: Alert) -> None:
        """Log ``alert`` (never raises)."""
        try:
            level = logging.WARNING if alert.kind in _WARNING_KINDS else logging.INFO
            fields = dict(alert.fields)
            text = f"[{alert.kind}] {alert.title}"
            if alert.message:
                text += f": {alert.message}"
            if fields:
                text += " (" + ", ".join(f"{k}={v}" for k, v in fields.items()) + ")"
            self.logger.log(level, "%s", text, extra={"alert": alert.kind, "fields": fields})
        except Exception:  # logging must not take the engine down
            self._stats.add(failed=1)
        else:
            self._stats.add(sent=1)

    def close(self, timeout_s: float = 5.0) -> None:
        """Nothing to flush: log records are written synchronously."""

    @property
    def stats(self) -> AlerterStats:
        """Alerts logged (``sent``) and the ones logging raised on (``failed``)."""
        return self._stats.snapshot()
