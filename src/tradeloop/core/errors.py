"""One error tree for tradeloop, split by what the caller must do.

* :class:`ConfigError` - invalid configuration or arguments: stop and fix the input.
* :class:`DataError` - malformed market data: reject it; the message names file, row and field.
* :class:`StrategyError` - user strategy code failed: isolate that strategy.
* :class:`TemporaryError` - a transient failure: retry.
* :class:`VenueError` - an exchange or broker refused a request.
"""

from __future__ import annotations

from collections.abc import Iterable
from difflib import get_close_matches

__all__ = [
    "ConfigError",
    "DataError",
    "StrategyError",
    "TemporaryError",
    "TradeloopError",
    "VenueError",
    "did_you_mean",
]


class TradeloopError(Exception):
    """Base of every error tradeloop raises on purpose."""


class ConfigError(TradeloopError):
    """Invalid configuration, parameters or command-line arguments."""


class DataError(TradeloopError):
    """Malformed market data.

    Parameters
    ----------
    message
        What is wrong.
    file
        The file (or source name) the data came from.
    row
        Zero-based data row (not counting a header) where the problem is, if known.
    field
        Column or field name, if known.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        row: int | None = None,
        field: str | None = None,
    ) -> None:
        self.file = file
        self.row = row
        self.field = field
        where = []
        if file is not None:
            where.append(f"file {file}")
        if row is not None:
            where.append(f"row {row}")
        if field is not None:
            where.append(f"field '{field}'")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class StrategyError(TradeloopError):
    """User strategy code raised; carries the strategy name and the bar time."""

    def __init__(self, message: str, *, strategy: str, time_iso: str | None = None) -> None:
        self.strategy = strategy
        self.time_iso = time_iso
        at = f" at bar {time_iso}" if time_iso else ""
        super().__init__(f"strategy '{strategy}'{at}: {message}")


class TemporaryError(TradeloopError):
    """A transient failure (network, rate limit); the operation may be retried."""


class VenueError(TradeloopError):
    """An exchange or broker rejected a request."""


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """Return a " Did you mean: x?" hint for a misspelt ``name``, or an empty string.

    >>> did_you_mean("fsat", ["fast", "slow"])
    " Did you mean: 'fast'?"
    """
    matches = get_close_matches(name, list(candidates), n=3, cutoff=0.6)
    if not matches:
        return ""
    return " Did you mean: " + ", ".join(repr(m) for m in matches) + "?"
