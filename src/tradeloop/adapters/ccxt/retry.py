"""Retry ccxt calls on transient failures with exponential backoff, honouring Retry-After.

Retried: network errors and dropped connections (``NetworkError``), timeouts, 5xx and
maintenance (``ExchangeNotAvailable``, ``OperationFailed``), and rate limits
(``RateLimitExceeded`` for HTTP 429, ``DDoSProtection`` for 418 bans). For a rate limit the
wait is the larger of the backoff and the ``Retry-After`` header of the response (seconds or
an HTTP date). Not retried: requests the exchange refuses (``ExchangeError``: bad symbol, bad
parameters), which become :class:`~tradeloop.core.errors.VenueError` or
:class:`~tradeloop.core.errors.ConfigError`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

from tradeloop.config.settings import RetrySettings
from tradeloop.core.errors import ConfigError, TemporaryError, VenueError

__all__ = ["RetryStats", "backoff_seconds", "call_with_retry", "retry_after_seconds"]

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(slots=True)
class RetryStats:
    """Counters of one client's requests and retries (read by progress displays and tests)."""

    calls: int = 0
    retries: int = 0
    rate_limited: int = 0
    banned: int = 0
    server_errors: int = 0
    network_errors: int = 0
    waited_s: float = 0.0
    retry_after_s: list[float] = field(default_factory=list)
    last_weight: int | None = None


def backoff_seconds(attempt: int, policy: RetrySettings) -> float:
    """Return the exponential backoff before retry ``attempt`` (1 for the first retry).

    >>> backoff_seconds(3, RetrySettings(backoff_base_s=0.5, backoff_max_s=60))
    2.0
    """
    return float(min(policy.backoff_max_s, policy.backoff_base_s * 2 ** (attempt - 1)))


def retry_after_seconds(headers: Any, now_s: float | None = None) -> float | None:
    """Return the Retry-After of response ``headers`` in seconds, or None.

    >>> retry_after_seconds({"Retry-After": "2"})
    2.0
    >>> retry_after_seconds({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, 1445412470.0)
    10.0
    """
    if not headers:
        return None
    value = None
    getter = getattr(headers, "get", None)
    if getter is not None:
        value = getter("Retry-After") or getter("retry-after")
    if value is None:
        return None
    text = str(value).strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now_s is None else now_s))


def call_with_retry(
    fn: Callable[[], T],
    *,
    exchange: Any,
    policy: RetrySettings,
    stats: RetryStats,
    what: str,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn`` (a ccxt request on ``exchange``), retrying transient failures.

    Raises
    ------
    TemporaryError
        When the failures continue after ``policy.max_retries`` retries.
    ConfigError
        When the exchange does not know the symbol.
    VenueError
        When the exchange refuses the request.
    """
    import ccxt

    attempt = 0
    while True:
        stats.calls += 1
        try:
            result = fn()
            _note_weight(exchange, stats)
            return result
        except ccxt.BadSymbol as exc:
            raise ConfigError(f"{what}: {exc}") from None
        except (ccxt.RateLimitExceeded, ccxt.DDoSProtection) as exc:
            banned = _status_in(exc, "418")
            stats.banned += int(banned)
            stats.rate_limited += int(not banned)
            after = retry_after_seconds(getattr(exchange, "last_response_headers", None))
            if after is not None:
                stats.retry_after_s.append(after)
            error: Exception = exc
        except ccxt.ExchangeNotAvailable as exc:
            stats.server_errors += 1
            after, error = None, exc
        except ccxt.NetworkError as exc:  # dropped connections, timeouts
            stats.network_errors += 1
            after, error = None, exc
        except ccxt.OperationFailed as exc:  # e.g. Binance -1001 "internal error" with a 5xx
            stats.server_errors += 1
            after, error = None, exc
        except ccxt.ExchangeError as exc:
            raise VenueError(f"{what}: {exc}") from None
        attempt += 1
        if attempt > policy.max_retries:
            raise TemporaryError(
                f"{what}: still failing after {policy.max_retries} retries: "
                f"{type(error).__name__}: {_short(error)}"
            ) from error
        wait = backoff_seconds(attempt, policy)
        if after is not None:
            wait = max(wait, after)
        stats.retries += 1
        stats.waited_s += wait
        logger.warning(
            "%s: %s; retry %d/%d in %.2f s",
            what,
            type(error).__name__,
            attempt,
            policy.max_retries,
            wait,
            extra={"error": type(error).__name__, "attempt": attempt, "wait_s": wait},
        )
        sleep(wait)


def _status_in(exc: Exception, status: str) -> bool:
    return f" {status} " in f" {exc} "


def _short(exc: Exception, limit: int = 200) -> str:
    text = str(exc)
    return text if len(text) <= limit else text[:limit] + "..."


def _note_weight(exchange: Any, stats: RetryStats) -> None:
    headers = getattr(exchange, "last_response_headers", None)
    getter = getattr(headers, "get", None)
    if getter is None:
        return
    value = getter("X-MBX-USED-WEIGHT-1M") or getter("x-mbx-used-weight-1m")
    if value is not None:
        with contextlib.suppress(ValueError):
            stats.last_weight = int(value)
