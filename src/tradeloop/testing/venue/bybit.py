"""Bybit v5 market endpoints ccxt calls for candles: ``time``, ``instruments-info``, ``kline``."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

from tradeloop.testing._wire import BYBIT_INTERVALS

if TYPE_CHECKING:
    from tradeloop.testing.venue.server import LocalVenueServer, Response

__all__ = ["route"]

_LIMIT = (200, 1000)


def _num(x: float) -> str:
    text = repr(float(x))
    return text[:-2] if text.endswith(".0") else text


def route(server: LocalVenueServer, path: str, q: dict[str, str]) -> Response | None:
    """Answer a Bybit v5 market path, or return None when the path is not Bybit's."""
    if not path.startswith("/v5/market/"):
        return None
    name = path[len("/v5/market/") :]
    now = int(time.time() * 1000)
    if name == "time":
        return _ok({"timeSecond": str(now // 1000), "timeNano": str(now * 1_000_000)}, now)
    category = q.get("category", "")
    market = {"spot": "spot", "linear": "linear"}.get(category)
    if market is None:
        return _fail(10001, "Illegal category", now)
    if name == "instruments-info":
        return _instruments(server, market, category, now)
    if name == "kline":
        return _kline(server, market, category, q, now)
    return _fail(10001, f"unknown endpoint {path}", now)


def _ok(result: Any, now: int) -> Response:
    from tradeloop.testing.venue.server import Response

    body = {"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": now}
    headers = {
        "X-Bapi-Limit": "600",
        "X-Bapi-Limit-Status": "599",
        "X-Bapi-Limit-Reset-Timestamp": str(now),
    }
    return Response(200, body, headers)


def _fail(code: int, msg: str, now: int) -> Response:
    from tradeloop.testing.venue.server import Response

    return Response(
        200, {"retCode": code, "retMsg": msg, "result": {}, "retExtInfo": {}, "time": now}
    )


def _instruments(server: LocalVenueServer, market: str, category: str, now: int) -> Response:
    specs = server.data.markets.get(("bybit", market), {})
    items = []
    for spec in specs.values():
        if market == "spot":
            items.append(
                {
                    "symbol": spec.symbol_id,
                    "baseCoin": spec.base,
                    "quoteCoin": spec.quote,
                    "innovation": "0",
                    "status": "Trading",
                    "marginTrading": "both",
                    "stTag": "0",
                    "lotSizeFilter": {
                        "basePrecision": spec.step_size,
                        "quotePrecision": "0.00000001",
                        "minOrderQty": spec.step_size,
                        "maxOrderQty": "71.73956243",
                        "minOrderAmt": "1",
                        "maxOrderAmt": "2000000",
                    },
                    "priceFilter": {"tickSize": spec.tick_size},
                    "riskParameters": {"priceLimitRatioX": "0.01", "priceLimitRatioY": "0.02"},
                }
            )
        else:
            items.append(
                {
                    "symbol": spec.symbol_id,
                    "contractType": "LinearPerpetual",
                    "status": "Trading",
                    "baseCoin": spec.base,
                    "quoteCoin": spec.quote,
                    "launchTime": "1585526400000",
                    "deliveryTime": "0",
                    "deliveryFeeRate": "",
                    "priceScale": "2",
                    "leverageFilter": {
                        "minLeverage": "1",
                        "maxLeverage": "100.00",
                        "leverageStep": "0.01",
                    },
                    "priceFilter": {
                        "minPrice": spec.tick_size,
                        "maxPrice": "1999999.80",
                        "tickSize": spec.tick_size,
                    },
                    "lotSizeFilter": {
                        "maxOrderQty": "1190.000",
                        "minOrderQty": spec.step_size,
                        "qtyStep": spec.step_size,
                        "postOnlyMaxOrderQty": "1190.000",
                        "maxMktOrderQty": "500.000",
                        "minNotionalValue": "5",
                    },
                    "unifiedMarginTrade": True,
                    "fundingInterval": 480,
                    "settleCoin": spec.quote,
                    "copyTrading": "both",
                    "upperFundingRate": "0.005",
                    "lowerFundingRate": "-0.005",
                    "isPreListing": False,
                    "preListingInfo": None,
                }
            )
    return _ok({"category": category, "list": items, "nextPageCursor": ""}, now)


def _kline(
    server: LocalVenueServer, market: str, category: str, q: dict[str, str], now: int
) -> Response:
    sid = q.get("symbol", "")
    if sid not in server.data.markets.get(("bybit", market), {}):
        return _fail(10001, "params error: symbol invalid", now)
    interval = BYBIT_INTERVALS.get(q.get("interval", ""))
    if interval is None:
        return _fail(10001, "params error: invalid interval", now)
    limit = min(int(q.get("limit", _LIMIT[0])), _LIMIT[1])
    candles = server.data.candles("bybit", market, sid, interval)
    rows: list[list[str]] = []
    if candles is not None:
        ts = candles.ts
        start = int(q["start"]) if "start" in q else None
        end = int(q["end"]) if "end" in q else now
        lo = 0 if start is None else int(np.searchsorted(ts, start, side="left"))
        hi = int(np.searchsorted(ts, end, side="right"))
        lo = max(lo, hi - limit)  # Bybit answers the newest `limit` bars of the window
        for i in range(hi - 1, lo - 1, -1):  # newest first
            close, volume = float(candles.close[i]), float(candles.volume[i])
            rows.append(
                [
                    str(int(ts[i])),
                    _num(candles.open[i]),
                    _num(candles.high[i]),
                    _num(candles.low[i]),
                    _num(close),
                    _num(volume),
                    _num(round(volume * close, 8)),
                ]
            )
    return _ok({"symbol": sid, "category": category, "list": rows}, now)
