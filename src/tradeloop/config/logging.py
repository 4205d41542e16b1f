"""Logging: stdlib ``logging``; readable lines on the console, JSON lines in log files.

Every handler carries a :class:`~tradeloop.config.redact.RedactingFilter`: credentials never
reach a log line.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["ConsoleFormatter", "JsonLinesFormatter", "setup_logging"]

_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonLinesFormatter(logging.Formatter):
    """Format each record as one JSON object: time, level, logger, message and ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as a JSON line."""
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            payload["exception"] = record.exc_text
        return json.dumps(payload, default=str)


class ConsoleFormatter(logging.Formatter):
    """One readable line per record: ``14:03:07 WARNING data.loader: message (key=value ...)``.

    Plain ``extra`` fields (text and numbers) follow the message in parentheses, unless the
    message already says them; structured ones (a risk event's dict, a list) are for the JSON
    log file, not the terminal. An exception's traceback follows on the next lines.
    """

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as a readable line."""
        when = datetime.fromtimestamp(record.created, tz=UTC).strftime("%H:%M:%S")
        name = record.name.removeprefix("tradeloop.")
        message = record.getMessage()
        extra = [
            f"{key}={value}"
            for key, value in vars(record).items()
            if key not in _RESERVED
            and not key.startswith("_")
            and isinstance(value, str | int | float)
            and str(value) not in message
        ]
        line = f"{when} {record.levelname:<7} {name}: {message}"
        if extra:
            line += f" ({', '.join(extra)})"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        elif record.exc_text:
            line += "\n" + record.exc_text
        return line


def setup_logging(
    level: int | str = logging.WARNING,
    log_file: str | Path | None = None,
    *,
    console_json: bool = False,
) -> None:
    """Send tradeloop's logs to stderr as readable lines (``console_json``: JSON lines), and to
    ``log_file`` as JSON lines rotated daily; credentials are masked on both."""
    from tradeloop.config.redact import RedactingFilter

    root = logging.getLogger("tradeloop")
    root.setLevel(level)
    for handler in list(root.handlers):
        root.removeHandler(handler)
    formatter = JsonLinesFormatter()
    stream = logging.StreamHandler()
    stream.setFormatter(formatter if console_json else ConsoleFormatter())
    stream.addFilter(RedactingFilter())
    root.addHandler(stream)
    if log_file is not None:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        rotating = logging.handlers.TimedRotatingFileHandler(
            log_file, when="midnight", utc=True, backupCount=14, encoding="utf-8"
        )
        rotating.setFormatter(formatter)
        rotating.addFilter(RedactingFilter())
        root.addHandler(rotating)
    root.propagate = False
