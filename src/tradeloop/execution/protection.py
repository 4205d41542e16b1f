"""Protection around a venue: a circuit breaker, one rate budget per venue, and retries.

* :class:`CircuitBreaker` - closed (calls go through), open (calls refused at once for
  ``reset_after_s``), half-open (one trial call: success closes, failure opens again). It opens
  after ``failure_threshold`` consecutive failed operations (3 by default). Only transient
  failures (:class:`~tradeloop.core.errors.TemporaryError`: network, timeouts, 5xx, 429) count;
  a venue's refusal is an answer. Listeners hear every state change (the venue broker puts the
  risk engine into reducing-only and alerts).
* :class:`RateBudget` - the venue's request-weight budget per minute, one per venue name in the
  process (:func:`rate_budget`), shared by market-data and order calls; built on
  ``pyrate_limiter`` (blocking acquire of a request's weight).
* :func:`retrying` - tenacity: exponential backoff on transient failures, waiting at least a
  rate limit's ``Retry-After``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from pyrate_limiter import Duration, Limiter, Rate
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_attempt,
)

from tradeloop.core.errors import TemporaryError

__all__ = [
    "BreakerOpenError",
    "BreakerState",
    "CircuitBreaker",
    "RateBudget",
    "Retrier",
    "RetryPolicy",
    "rate_budget",
    "retrying",
]

logger = logging.getLogger(__name__)
T = TypeVar("T")


class BreakerState(StrEnum):
    """Where the breaker is."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class BreakerOpenError(TemporaryError):
    """The breaker is open: the call was not made."""


class CircuitBreaker:
    """Closed / open / half-open breaker around one venue's calls (see the module docstring).

    >>> b = CircuitBreaker("x", failure_threshold=2, reset_after_s=60)
    >>> for _ in range(2):
    ...     try:
    ...         b.call(lambda: (_ for _ in ()).throw(TemporaryError("down")))
    ...     except TemporaryError:
    ...         pass
    >>> b.state
    <BreakerState.OPEN: 'open'>
    """

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 3,
        reset_after_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be >= 1")
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_after_s = reset_after_s
        self._clock = clock
        self._state = BreakerState.CLOSED
        self.failures = 0
        self.opened_at: float | None = None
        self.last_error = ""
        self.opened_count = 0
        self._listeners: list[Callable[[BreakerState, BreakerState, str], None]] = []
        self._lock = threading.Lock()

    @property
    def state(self) -> BreakerState:
        """The state now (an open breaker whose wait is over reads half-open)."""
        with self._lock:
            if (
                self._state is BreakerState.OPEN
                and self.opened_at is not None
                and self._clock() - self.opened_at >= self.reset_after_s
            ):
                self._move(BreakerState.HALF_OPEN, "trial call allowed")
            return self._state

    def subscribe(self, listener: Callable[[BreakerState, BreakerState, str], None]) -> None:
        """Call ``listener(old, new, why)`` on every state change."""
        self._listeners.append(listener)

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` unless the breaker is open; count its transient failure or success."""
        if self.state is BreakerState.OPEN:
            raise BreakerOpenError(
                f"{self.name}: circuit breaker open after {self.failures} consecutive "
                f"failures ({self.last_error})"
            )
        try:
            result = fn()
        except TemporaryError as exc:
            self.record_failure(str(exc))
            raise
        self.record_success()
        return result

    def record_success(self) -> None:
        """A call succeeded: close."""
        with self._lock:
            self.failures = 0
            if self._state is not BreakerState.CLOSED:
                self._move(BreakerState.CLOSED, "venue answered")

    def record_failure(self, error: str) -> None:
        """A call failed transiently: open at the threshold (at once when half-open)."""
        with self._lock:
            self.failures += 1
            self.last_error = error[:200]
            if self._state is BreakerState.HALF_OPEN or (
                self._state is BreakerState.CLOSED and self.failures >= self.failure_threshold
            ):
                self.opened_at = self._clock()
                self.opened_count += 1
                self._move(
                    BreakerState.OPEN,
                    f"{self.failures} consecutive failures, last: {self.last_error}",
                )

    def as_dict(self) -> dict[str, Any]:
        """State for the status file."""
        return {
            "state": self.state.value,
            "consecutive_failures": self.failures,
            "opened": self.opened_count,
            "last_error": self.last_error,
        }

    def _move(self, new: BreakerState, why: str) -> None:
        old, self._state = self._state, new
        logger.warning("circuit breaker %s: %s -> %s (%s)", self.name, old, new, why)
        for listener in self._listeners:
            try:
                listener(old, new, why)
            except Exception:  # a listener must never break the call path
                logger.exception("circuit breaker listener failed")


class RateBudget:
    """A venue's request weight per minute, shared by every caller of that venue.

    Parameters
    ----------
    name
        The venue (``binance``...).
    weight_per_minute
        The venue's budget (Binance spot 6000, USD-M 2400); keep a margin below it.
    """

    def __init__(self, name: str, weight_per_minute: int) -> None:
        self.name = name
        self.weight_per_minute = weight_per_minute
        self._limiter = Limiter(Rate(weight_per_minute, Duration.MINUTE))
        self.used = 0
        self._taken: deque[tuple[float, int]] = deque()
        self._taken_lock = threading.Lock()

    def acquire(self, weight: int = 1) -> None:
        """Block until ``weight`` fits in the last minute's budget, then take it."""
        weight = max(1, min(int(weight), self.weight_per_minute))
        self._limiter.try_acquire(self.name, weight=weight, blocking=True)
        self.used += weight
        with self._taken_lock:
            self._taken.append((time.monotonic(), weight))

    def left(self) -> int:
        """Weight still free in the sliding minute now (read-only; never blocks on the
        limiter): ``weight_per_minute`` minus what was taken in the last 60 s."""
        cutoff = time.monotonic() - 60.0
        with self._taken_lock:
            while self._taken and self._taken[0][0] <= cutoff:
                self._taken.popleft()
            taken = sum(w for _t, w in self._taken)
        return max(0, self.weight_per_minute - taken)


_BUDGETS: dict[str, RateBudget] = {}
_BUDGETS_LOCK = threading.Lock()


def rate_budget(name: str, weight_per_minute: int) -> RateBudget:
    """The process's one budget for venue ``name`` (created with ``weight_per_minute``)."""
    with _BUDGETS_LOCK:
        budget = _BUDGETS.get(name)
        if budget is None:
            budget = _BUDGETS[name] = RateBudget(name, weight_per_minute)
        return budget


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries of a transient failure: attempts and exponential backoff bounds (seconds)."""

    attempts: int = 4
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0


def _wait(policy: RetryPolicy) -> Callable[[RetryCallState], float]:
    def wait(state: RetryCallState) -> float:
        backoff = min(policy.backoff_max_s, policy.backoff_base_s * 2 ** (state.attempt_number - 1))
        exc = state.outcome.exception() if state.outcome is not None else None
        after = getattr(exc, "retry_after", None)
        return max(backoff, float(after)) if after else float(backoff)

    return wait


def retrying(policy: RetryPolicy, *, sleep: Callable[[float], None] = time.sleep) -> Retrying:
    """A tenacity ``Retrying`` for transient failures (never for refusals).

    >>> calls = []
    >>> def flaky():
    ...     calls.append(1)
    ...     if len(calls) < 3:
    ...         raise TemporaryError("503")
    ...     return "ok"
    >>> retrying(RetryPolicy(backoff_base_s=0), sleep=lambda s: None)(flaky), len(calls)
    ('ok', 3)
    """
    return Retrying(
        retry=retry_if_exception_type(TemporaryError)
        & retry_if_not_exception_type(BreakerOpenError),
        stop=stop_after_attempt(policy.attempts),
        wait=_wait(policy),
        sleep=sleep,
        reraise=True,
        before_sleep=lambda s: logger.info(
            "retrying after %s (attempt %d)",
            s.outcome.exception() if s.outcome is not None else "?",
            s.attempt_number,
        ),
    )


class Retrier:
    """Calls an operation under ``policy``: the first attempt directly (the common case costs
    nothing extra), the retries through tenacity (the same waits as :func:`retrying`)."""

    def __init__(self, policy: RetryPolicy, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.policy = policy
        self._sleep = sleep
        self._wait = _wait(policy)
        self._rest = (
            retrying(
                RetryPolicy(policy.attempts - 1, policy.backoff_base_s, policy.backoff_max_s),
                sleep=sleep,
            )
            if policy.attempts > 1
            else None
        )

    def __call__(self, fn: Callable[[], T]) -> T:
        """``fn()``, retried on transient failures."""
        try:
            return fn()
        except BreakerOpenError:
            raise
        except TemporaryError as exc:
            if self._rest is None:
                raise
            after = getattr(exc, "retry_after", None)
            first = self.policy.backoff_base_s
            wait = max(first, float(after)) if after else first
            logger.info("retrying after %s (attempt 1)", exc)
            self._sleep(min(wait, max(self.policy.backoff_max_s, float(after or 0))))
        return self._rest(fn)
