"""ccxt's exceptions as the venue contract's errors (:mod:`tradeloop.execution.venue`)."""

from __future__ import annotations

from typing import Any

from tradeloop.adapters.ccxt.retry import retry_after_seconds
from tradeloop.core.errors import ConfigError, TradeloopError
from tradeloop.execution.venue import (
    DuplicateOrderError,
    OrderNotFoundError,
    OrderRejectedError,
    RateLimitedError,
    VenueUnavailableError,
)

__all__ = ["venue_error"]


def venue_error(
    exc: Exception, exchange: Any, *, client_order_id: str = "", what: str = ""
) -> TradeloopError:
    """The venue-contract error for ccxt exception ``exc`` (raise it ``from None``).

    Rate limits carry the response's ``Retry-After``; network errors, timeouts and 5xx are
    :class:`VenueUnavailableError` (retried); the venue's refusals are
    :class:`OrderRejectedError`; an unknown order is :class:`OrderNotFoundError`.
    """
    import ccxt

    text = (
        f"{what}: {type(exc).__name__}: {_short(exc)}"
        if what
        else f"{type(exc).__name__}: {_short(exc)}"
    )
    if isinstance(exc, ccxt.OrderNotFound):
        return OrderNotFoundError(client_order_id, text)
    if isinstance(exc, (ccxt.RateLimitExceeded, ccxt.DDoSProtection)):
        headers = getattr(exchange, "last_response_headers", None)
        return RateLimitedError(text, retry_after=retry_after_seconds(headers))
    if isinstance(exc, (ccxt.NetworkError, ccxt.OperationFailed)):
        return VenueUnavailableError(text)
    if isinstance(exc, ccxt.BadSymbol):
        return ConfigError(text)
    if isinstance(exc, ccxt.AuthenticationError):
        return ConfigError(f"{text} (check the exchange's API key and secret)")
    if isinstance(exc, ccxt.InvalidOrder) and (
        "Duplicate order" in str(exc) or "ClientOrderId is duplicated" in str(exc)
    ):
        return DuplicateOrderError(client_order_id, text)
    if isinstance(exc, ccxt.InsufficientFunds):
        return OrderRejectedError(text, code="insufficient_funds")
    if isinstance(exc, ccxt.ExchangeError):
        return OrderRejectedError(text)
    return VenueUnavailableError(text)


def _short(exc: Exception, limit: int = 300) -> str:
    text = str(exc)
    return text if len(text) <= limit else text[:limit] + "..."
