"""Build a ccxt exchange from settings: endpoint override, testnet switch, rate limiter."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from tradeloop.config.settings import ExchangeSettings
from tradeloop.core.errors import ConfigError, did_you_mean

__all__ = ["MARKET_TYPES", "create_exchange", "point_urls_at"]

# tradeloop market name -> ccxt market type (USD-M / linear perpetuals for "perp")
MARKET_TYPES: dict[str, str] = {"spot": "spot", "perp": "linear"}
_DEFAULT_TYPES = {"spot": "spot", "perp": "swap"}


def create_exchange(name: str, market: str, settings: ExchangeSettings) -> Any:
    """Return a ccxt exchange instance for ``market`` (``spot`` or ``perp``).

    Only the market type in use is loaded (``options.fetchMarkets.types``), the rate limiter
    stays on (``enableRateLimit``), ``settings.testnet`` switches to the sandbox, and
    ``settings.url`` replaces the host of every REST endpoint.

    Raises
    ------
    ConfigError
        If ccxt has no such exchange, the market is unknown, or the exchange has no testnet.
    """
    import ccxt

    if market not in MARKET_TYPES:
        raise ConfigError(f"market must be one of {', '.join(MARKET_TYPES)}, got {market!r}")
    exchange_id = name.lower()
    cls = getattr(ccxt, exchange_id, None)
    if exchange_id not in ccxt.exchanges or cls is None:
        raise ConfigError(
            f"ccxt has no exchange {name!r}.{did_you_mean(exchange_id, ccxt.exchanges)}"
        )
    config: dict[str, Any] = {
        "enableRateLimit": True,
        "timeout": settings.timeout_ms,
        "options": {
            "fetchMarkets": {"types": [MARKET_TYPES[market]]},
            "defaultType": _DEFAULT_TYPES[market],
        },
    }
    if settings.rate_limit_ms is not None:
        config["rateLimit"] = settings.rate_limit_ms
    exchange = cls(config)
    if settings.testnet:
        try:
            exchange.set_sandbox_mode(True)
        except ccxt.NotSupported as exc:
            raise ConfigError(f"{exchange_id} has no testnet in ccxt: {exc}") from None
    if settings.url:
        point_urls_at(exchange, settings.url)
    return exchange


def point_urls_at(exchange: Any, base_url: str) -> None:
    """Replace scheme and host of every REST URL in ``exchange.urls['api']`` by ``base_url``.

    Paths are kept (``https://fapi.binance.com/fapi/v1`` -> ``{base_url}/fapi/v1``), so one
    server can answer all of an exchange's REST hosts.

    >>> class Ex:
    ...     urls = {"api": {"public": "https://api.example.com/api/v3",
    ...                     "nested": {"x": "https://{hostname}"}}}
    >>> ex = Ex()
    >>> point_urls_at(ex, "http://127.0.0.1:9000/")
    >>> ex.urls["api"]
    {'public': 'http://127.0.0.1:9000/api/v3', 'nested': {'x': 'http://127.0.0.1:9000'}}
    """
    base = base_url.rstrip("/")

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: rewrite(v) for k, v in node.items()}
        if isinstance(node, str) and node.startswith(("http://", "https://")):
            return base + urlsplit(node).path.rstrip("/")
        return node

    exchange.urls = dict(exchange.urls)
    exchange.urls["api"] = rewrite(exchange.urls.get("api", {}))
