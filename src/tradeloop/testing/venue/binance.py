"""Binance REST endpoints (spot ``/api/v3``, USD-M ``/fapi/v1`` and ``/futures/data``)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

from tradeloop.testing._wire import INTERVAL_MS
from tradeloop.testing._wire import binance_num as num
from tradeloop.testing.venue.data import Candles, FundingHistory, OpenInterestHistory, Trades

if TYPE_CHECKING:
    from tradeloop.testing.venue.server import LocalVenueServer, Response

__all__ = ["route"]

_OI_PERIODS = ("5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d")
_KLINE_LIMIT = {"spot": (500, 1000), "fapi": (500, 1500)}  # (default, max)


def route(server: LocalVenueServer, path: str, q: dict[str, str]) -> Response | None:
    """Answer a Binance path, or return None when the path is not Binance's."""
    if path.startswith("/api/v3/"):
        api, market, name = "spot", "spot", path[len("/api/v3/") :]
    elif path.startswith("/fapi/v1/"):
        api, market, name = "fapi", "linear", path[len("/fapi/v1/") :]
    elif path == "/futures/data/openInterestHist":
        api, market, name = "fapi", "linear", "openInterestHist"
    else:
        return None
    handler = _HANDLERS.get(name)
    if handler is None:
        return _error(404, -1, f"unknown endpoint {path}")
    weight = _weight(api, name, q)
    used, retry_after = server.use_weight(api, weight)
    headers = {"X-MBX-USED-WEIGHT-1M": str(used)}
    if retry_after is not None:
        headers["Retry-After"] = f"{retry_after:g}"
        limit = server.weight_limits[api]
        return _error(
            429,
            -1003,
            f"Too many requests; current limit of IP(127.0.0.1) is {limit} requests per minute.",
            headers,
        )
    response = handler(server, api, market, q)
    response.headers.update(headers)
    return response


def _weight(api: str, name: str, q: dict[str, str]) -> int:
    if name == "exchangeInfo":
        return 20 if api == "spot" else 1
    if name == "klines":
        if api == "spot":
            return 2
        limit = int(q.get("limit", 500))
        return 1 if limit < 100 else 2 if limit < 500 else 5 if limit <= 1000 else 10
    if name == "aggTrades":
        return 2 if api == "spot" else 20
    return 1


def _error(status: int, code: int, msg: str, headers: dict[str, str] | None = None) -> Response:
    from tradeloop.testing.venue.server import Response

    return Response(status, {"code": code, "msg": msg}, dict(headers or {}))


def _ok(body: Any) -> Response:
    from tradeloop.testing.venue.server import Response

    return Response(200, body)


def _int(q: dict[str, str], name: str) -> int | None:
    value = q.get(name)
    return None if value is None else int(value)


def _limit(q: dict[str, str], default: int, maximum: int) -> int:
    limit = _int(q, "limit") or default
    return min(limit, maximum)


def _window(ts: np.ndarray, q: dict[str, str], limit: int) -> slice:
    """Rows with startTime <= t <= endTime, first ``limit`` (last ``limit`` without start)."""
    start, end = _int(q, "startTime"), _int(q, "endTime")
    lo = 0 if start is None else int(np.searchsorted(ts, start, side="left"))
    hi = ts.shape[0] if end is None else int(np.searchsorted(ts, end, side="right"))
    if start is None:
        return slice(max(lo, hi - limit), hi)
    return slice(lo, min(hi, lo + limit))


def _symbol(server: LocalVenueServer, market: str, q: dict[str, str]) -> str | Response:
    sid = q.get("symbol", "")
    if sid not in server.data.markets.get(("binance", market), {}):
        return _error(400, -1121, "Invalid symbol.")
    return sid


# ---------------------------------------------------------------------- endpoints


def _ping(server: LocalVenueServer, api: str, market: str, q: dict[str, str]) -> Response:
    return _ok({})


def _time(server: LocalVenueServer, api: str, market: str, q: dict[str, str]) -> Response:
    return _ok({"serverTime": int(time.time() * 1000)})


def _exchange_info(server: LocalVenueServer, api: str, market: str, q: dict[str, str]) -> Response:
    specs = server.data.markets.get(("binance", market), {})
    limit = server.weight_limits.get(api, 6000)
    rate_limits = [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": limit},
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
    ]
    symbols = []
    for spec in specs.values():
        filters = [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": spec.tick_size,
                "maxPrice": "1000000.00000000",
                "tickSize": spec.tick_size,
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": spec.step_size,
                "maxQty": "9000.00000000",
                "stepSize": spec.step_size,
            },
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": "0.00000000",
                "maxQty": "100.00000000",
                "stepSize": "0.00000000",
            },
        ]
        if market == "spot":
            filters.append(
                {
                    "filterType": "NOTIONAL",
                    "minNotional": "5.00000000",
                    "applyMinToMarket": True,
                    "maxNotional": "9000000.00000000",
                    "applyMaxToMarket": False,
                    "avgPriceMins": 5,
                }
            )
            symbols.append(
                {
                    "symbol": spec.symbol_id,
                    "status": "TRADING",
                    "baseAsset": spec.base,
                    "baseAssetPrecision": 8,
                    "quoteAsset": spec.quote,
                    "quotePrecision": 8,
                    "quoteAssetPrecision": 8,
                    "baseCommissionPrecision": 8,
                    "quoteCommissionPrecision": 8,
                    "orderTypes": [
                        "LIMIT",
                        "LIMIT_MAKER",
                        "MARKET",
                        "STOP_LOSS",
                        "STOP_LOSS_LIMIT",
                        "TAKE_PROFIT",
                        "TAKE_PROFIT_LIMIT",
                    ],
                    "icebergAllowed": True,
                    "ocoAllowed": True,
                    "otoAllowed": True,
                    "quoteOrderQtyMarketAllowed": True,
                    "allowTrailingStop": True,
                    "cancelReplaceAllowed": True,
                    "isSpotTradingAllowed": True,
                    "isMarginTradingAllowed": True,
                    "filters": filters,
                    "permissions": [],
                    "permissionSets": [["SPOT", "MARGIN"]],
                    "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
                    "allowedSelfTradePreventionModes": [
                        "EXPIRE_TAKER",
                        "EXPIRE_MAKER",
                        "EXPIRE_BOTH",
                    ],
                }
            )
        else:
            filters += [
                {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                {"filterType": "MIN_NOTIONAL", "notional": "5"},
                {
                    "filterType": "PERCENT_PRICE",
                    "multiplierUp": "1.0500",
                    "multiplierDown": "0.9500",
                    "multiplierDecimal": "4",
                },
            ]
            decimals = (
                len(spec.tick_size.split(".")[1].rstrip("0") or "") if "." in spec.tick_size else 0
            )
            qty_decimals = (
                len(spec.step_size.split(".")[1].rstrip("0") or "") if "." in spec.step_size else 0
            )
            symbols.append(
                {
                    "symbol": spec.symbol_id,
                    "pair": spec.symbol_id,
                    "contractType": "PERPETUAL",
                    "deliveryDate": 4133404800000,
                    "onboardDate": 1569398400000,
                    "status": "TRADING",
                    "maintMarginPercent": "2.5000",
                    "requiredMarginPercent": "5.0000",
                    "baseAsset": spec.base,
                    "quoteAsset": spec.quote,
                    "marginAsset": spec.quote,
                    "pricePrecision": decimals,
                    "quantityPrecision": qty_decimals,
                    "baseAssetPrecision": 8,
                    "quotePrecision": 8,
                    "underlyingType": "COIN",
                    "underlyingSubType": [],
                    "settlePlan": 0,
                    "triggerProtect": "0.0500",
                    "liquidationFee": "0.012500",
                    "marketTakeBound": "0.05",
                    "maxMoveOrderLimit": 10000,
                    "filters": filters,
                    "orderTypes": [
                        "LIMIT",
                        "MARKET",
                        "STOP",
                        "STOP_MARKET",
                        "TAKE_PROFIT",
                        "TAKE_PROFIT_MARKET",
                        "TRAILING_STOP_MARKET",
                    ],
                    "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
                }
            )
    body: dict[str, Any] = {
        "timezone": "UTC",
        "serverTime": int(time.time() * 1000),
        "rateLimits": rate_limits,
        "exchangeFilters": [],
        "symbols": symbols,
    }
    if market == "linear":
        body["futuresType"] = "U_MARGINED"
        body["assets"] = [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}]
    return _ok(body)


def _klines(server: LocalVenueServer, api: str, market: str, q: dict[str, str]) -> Response:
    sid = _symbol(server, market, q)
    if not isinstance(sid, str):
        return sid
    interval = q.get("interval", "")
    if interval not in INTERVAL_MS:
        return _error(400, -1120, "Invalid interval.")
    default, maximum = _KLINE_LIMIT[api]
    limit = _limit(q, default, maximum)
    candles = server.data.candles("binance", market, sid, interval)
    if candles is None:
        return _ok([])
    step = INTERVAL_MS[interval]
    return _ok(
        [
            _kline_row(candles, i, step)
            for i in range(*_window(candles.ts, q, limit).indices(candles.ts.shape[0]))
        ]
    )


def _kline_row(c: Candles, i: int, step: int) -> list[Any]:
    t = int(c.ts[i])
    close, volume = float(c.close[i]), float(c.volume[i])
    return [
        t,
        num(float(c.open[i])),
        num(float(c.high[i])),
        num(float(c.low[i])),
        num(close),
        num(volume),
        t + step - 1,
        num(round(volume * close, 8)),
        0,
        num(round(volume / 2, 8)),
        num(round(volume * close / 2, 8)),
        "0",
    ]


def _funding(server: LocalVenueServer, api: str, market: str, q: dict[str, str]) -> Response:
    sid = _symbol(server, market, q)
    if not isinstance(sid, str):
        return sid
    limit = _limit(q, 100, 1000)
    history = server.data.get("binance", market, sid, "funding")
    if not isinstance(history, FundingHistory):
        return _ok([])
    rows = []
    for i in range(*_window(history.ts, q, limit).indices(history.ts.shape[0])):
        mark = float(history.mark_price[i])
        rows.append(
            {
                "symbol": sid,
                "fundingTime": int(history.ts[i]),
                "fundingRate": num(float(history.rate[i])),
                "markPrice": "" if np.isnan(mark) else num(mark),
            }
        )
    return _ok(rows)


def _open_interest(server: LocalVenueServer, api: str, market: str, q: dict[str, str]) -> Response:
    sid = _symbol(server, market, q)
    if not isinstance(sid, str):
        return sid
    period = q.get("period", "")
    if period not in _OI_PERIODS:
        return _error(400, -1120, "Invalid period.")
    limit = _limit(q, 30, 500)
    history = server.data.get("binance", market, sid, f"oi:{period}")
    if not isinstance(history, OpenInterestHistory):
        return _ok([])
    return _ok(
        [
            {
                "symbol": sid,
                "sumOpenInterest": num(float(history.amount[i])),
                "sumOpenInterestValue": num(float(history.value[i])),
                "CMCCirculatingSupply": "0",
                "timestamp": int(history.ts[i]),
            }
            for i in range(*_window(history.ts, q, limit).indices(history.ts.shape[0]))
        ]
    )


def _agg_trades(server: LocalVenueServer, api: str, market: str, q: dict[str, str]) -> Response:
    sid = _symbol(server, market, q)
    if not isinstance(sid, str):
        return sid
    limit = _limit(q, 500, 1000)
    start, end = _int(q, "startTime"), _int(q, "endTime")
    if start is not None and end is not None and end - start >= 3_600_000:
        return _error(400, -1127, "More than 1 hours between startTime and endTime.")
    trades = server.data.get("binance", market, sid, "trades")
    if not isinstance(trades, Trades):
        return _ok([])
    from_id = _int(q, "fromId")
    if from_id is not None:
        lo = int(np.searchsorted(trades.trade_id, from_id, side="left"))
        window = slice(lo, min(lo + limit, trades.ts.shape[0]))
    else:
        window = _window(trades.ts, q, limit)
    return _ok(
        [
            {
                "a": int(trades.trade_id[i]),
                "p": num(float(trades.price[i])),
                "q": num(float(trades.amount[i])),
                "f": int(trades.trade_id[i]),
                "l": int(trades.trade_id[i]),
                "T": int(trades.ts[i]),
                "m": not bool(trades.taker_buy[i]),
                "M": True,
            }
            for i in range(*window.indices(trades.ts.shape[0]))
        ]
    )


_HANDLERS = {
    "ping": _ping,
    "time": _time,
    "exchangeInfo": _exchange_info,
    "klines": _klines,
    "fundingRate": _funding,
    "openInterestHist": _open_interest,
    "aggTrades": _agg_trades,
}
