"""Time helpers: UTC int64 nanoseconds inside, ISO-8601 at the edges."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from tradeloop.core.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

__all__ = ["NS_PER_MINUTE", "NS_PER_SECOND", "parse_time", "to_datetime", "to_iso"]

NS_PER_SECOND = 1_000_000_000
NS_PER_MINUTE = 60 * NS_PER_SECOND


def parse_time(value: str | datetime | int | np.datetime64, *, field: str = "time") -> int:
    """Convert a time given at an edge to UTC nanoseconds since the epoch.

    Strings may be a date (``2025-06-01``, midnight UTC) or ISO-8601 with an offset or ``Z``;
    a string without an offset is read as UTC. A naive ``datetime`` is refused.

    Raises
    ------
    ConfigError
        If the value cannot be read or is a naive datetime.

    >>> parse_time("1970-01-01T00:00:01Z")
    1000000000
    """
    if isinstance(value, bool):
        raise ConfigError(f"{field}: expected a time, got {value!r}")
    if isinstance(value, int):
        return int(value)
    # a numpy value can only exist once numpy is loaded; the CLI's edges do not load it
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        if isinstance(value, numpy.integer):
            return int(value)
        if isinstance(value, numpy.datetime64):
            return int(value.astype("datetime64[ns]").astype(numpy.int64))
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ConfigError(f"{field}: naive datetime {value!r}; give a timezone (UTC)")
        return _dt_to_ns(value)
    text = str(value).strip()
    try:
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        dt = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(
            f"{field}: cannot read {value!r} as a date or ISO-8601 time (e.g. 2025-06-01)"
        ) from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return _dt_to_ns(dt)


def _dt_to_ns(dt: datetime) -> int:
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * NS_PER_SECOND + delta.microseconds * 1000


def to_datetime(ns: int) -> datetime:
    """Return the UTC ``datetime`` of ``ns`` nanoseconds since the epoch (microsecond precision)."""
    return datetime.fromtimestamp(ns // 1000 / 1_000_000, tz=UTC)


def to_iso(ns: int) -> str:
    """Return ``ns`` as ISO-8601 UTC text.

    >>> to_iso(0)
    '1970-01-01T00:00:00+00:00'
    """
    return to_datetime(ns).isoformat()
