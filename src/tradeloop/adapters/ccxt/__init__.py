"""ccxt adapter: exchange history (and later feeds and brokers) through the ccxt library.

The library is used unmodified; only its endpoint URLs are pointed at the configured host
(``TRADELOOP_<EXCHANGE>_URL``) and its rate limiter is kept on.
"""

from tradeloop.adapters.ccxt.client import MARKET_TYPES, create_exchange, point_urls_at
from tradeloop.adapters.ccxt.history import CcxtHistorySource
from tradeloop.adapters.ccxt.retry import RetryStats, call_with_retry

__all__ = [
    "MARKET_TYPES",
    "CcxtHistorySource",
    "RetryStats",
    "call_with_retry",
    "create_exchange",
    "point_urls_at",
]
