"""Venue wire formats for the market-stream server: subscribe handshakes, channel frames and
the REST calls a client makes alongside (as ccxt's ``pro`` clients expect them).

* Binance spot: ``/ws/<n>``, ``{"method":"SUBSCRIBE","params":["btcusdt@trade",...]}``,
  ``trade`` / ``depthUpdate`` (``U``/``u`` update ids; the client fetches the snapshot from
  ``GET /api/v3/depth``) / ``kline`` events.
* Bybit v5 spot: ``/v5/public/spot``, ``{"op":"subscribe","args":["publicTrade.BTCUSDT",...]}``,
  ``publicTrade``, ``orderbook.50`` (a ``snapshot`` on subscribe, then ``delta`` frames with
  consecutive ``u``), ``kline.1``; ``{"op":"ping"}`` answered with a pong.
"""

from __future__ import annotations

from typing import Any, ClassVar

from tradeloop.adapters.streams.urls import venue_urls
from tradeloop.testing.streams.script import MarketScript, book_after

__all__ = ["DIALECTS", "BinanceDialect", "BybitDialect", "Dialect"]


def _levels(levels: tuple[tuple[float, float], ...]) -> list[list[str]]:
    return [[repr(p), repr(s)] for p, s in levels]


class Dialect:
    """One venue's wire format over a script (subclasses fill in the venue)."""

    ws_paths: ClassVar[tuple[str, ...]] = ()

    def __init__(self, script: MarketScript) -> None:
        self.script = script
        self.market_id = script.symbol.replace("/", "")

    def items(self, channel: str) -> tuple[Any, ...]:
        """The script's items of ``channel`` (trades, depth or kline)."""
        if channel == "trades":
            return self.script.trades
        if channel == "depth":
            return self.script.depth
        return self.script.klines

    def depth_seq(self, i: int) -> int:
        """Sequence number of depth item ``i``."""
        return self.script.depth[i].seq

    def ccxt_urls(self, ws: str, http: str) -> dict[str, Any]:
        """Overrides of ccxt's ``urls['api']`` that point at this server."""
        raise NotImplementedError

    def rest_routes(self) -> dict[str, Any]:
        """REST path -> handler(query, index_now) returning a JSON body."""
        return {}

    def on_request(self, req: dict[str, Any]) -> tuple[Any, list[tuple[str, str]]]:
        """Answer a client frame: ``(reply or None, [(channel, topic) subscribed])``."""
        raise NotImplementedError

    def on_join(self, channel: str, topic: str, start: int) -> list[Any]:
        """Frames sent when a subscription starts at item ``start`` (e.g. a book snapshot)."""
        return []

    def render(self, channel: str, topic: str, i: int) -> Any:
        """Item ``i`` of ``channel`` as the venue's frame."""
        raise NotImplementedError


class BinanceDialect(Dialect):
    """Binance spot market streams and REST."""

    ws_paths = ("/ws", "/ws/{n}", "/stream")

    def ccxt_urls(self, ws: str, http: str) -> dict[str, Any]:
        return venue_urls("binance", ws, http)

    def rest_routes(self) -> dict[str, Any]:
        return {
            "/api/v3/depth": self._depth,
            "/api/v3/klines": self._klines,
            "/api/v3/exchangeInfo": self._exchange_info,
        }

    def _exchange_info(self, query: dict[str, str], index_now: int) -> Any:
        base, quote = self.script.symbol.split("/")
        return {
            "timezone": "UTC",
            "serverTime": 0,
            "rateLimits": [],
            "symbols": [{
                "symbol": self.market_id, "status": "TRADING", "baseAsset": base,
                "baseAssetPrecision": 8, "quoteAsset": quote, "quotePrecision": 8,
                "quoteAssetPrecision": 8, "orderTypes": ["LIMIT", "MARKET"],
                "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
                "permissions": ["SPOT"], "permissionSets": [["SPOT"]],
                "filters": [
                    {"filterType": "PRICE_FILTER", "minPrice": "0.01000000",
                     "maxPrice": "1000000.00000000", "tickSize": "0.01000000"},
                    {"filterType": "LOT_SIZE", "minQty": "0.00001000", "maxQty": "9000.00000000",
                     "stepSize": "0.00001000"},
                ],
            }],
        }  # fmt: skip

    def _depth(self, query: dict[str, str], index_now: int) -> Any:
        depth = self.script.depth
        upto = min(index_now, len(depth)) - 1
        seq = depth[upto].seq if upto >= 0 else self.script.first_seq - 1
        bids, asks = book_after(self.script, seq)
        limit = int(query.get("limit", "1000"))
        return {"lastUpdateId": seq, "bids": _levels(bids[:limit]), "asks": _levels(asks[:limit])}

    def _klines(self, query: dict[str, str], index_now: int) -> Any:
        start = int(query.get("startTime", "0"))
        end = int(query.get("endTime", str(2**62)))
        limit = int(query.get("limit", "500"))
        rows = [
            [k.ts_ms, repr(k.open), repr(k.high), repr(k.low), repr(k.close), repr(k.volume),
             k.ts_ms + 59_999, "0", 0, "0", "0", "0"]
            for k in self.script.klines[:index_now]
            if start <= k.ts_ms <= end
        ]  # fmt: skip
        return rows[:limit]

    def on_request(self, req: dict[str, Any]) -> tuple[Any, list[tuple[str, str]]]:
        if req.get("method") != "SUBSCRIBE":
            return {"result": None, "id": req.get("id")}, []
        out: list[tuple[str, str]] = []
        for param in req.get("params", []):
            stream = str(param)
            if stream.endswith("@trade"):
                out.append(("trades", stream))
            elif "@depth" in stream:
                out.append(("depth", stream))
            elif "@kline_" in stream:
                out.append(("kline", stream))
        return {"result": None, "id": req.get("id")}, out

    def render(self, channel: str, topic: str, i: int) -> Any:
        mid = self.market_id
        if channel == "trades":
            t = self.script.trades[i]
            return {
                "e": "trade", "E": t.ts_ms, "s": mid, "t": t.trade_id, "p": repr(t.price),
                "q": repr(t.amount), "T": t.ts_ms, "m": t.side == "sell", "M": True,
            }  # fmt: skip
        if channel == "depth":
            d = self.script.depth[i]
            return {
                "e": "depthUpdate", "E": d.ts_ms, "s": mid, "U": d.seq, "u": d.seq,
                "b": _levels(d.bids), "a": _levels(d.asks),
            }  # fmt: skip
        k = self.script.klines[i]
        return {
            "e": "kline", "E": k.ts_ms + 60_000, "s": mid,
            "k": {
                "t": k.ts_ms, "T": k.ts_ms + 59_999, "s": mid, "i": "1m", "f": 0, "L": 0,
                "o": repr(k.open), "c": repr(k.close), "h": repr(k.high), "l": repr(k.low),
                "v": repr(k.volume), "n": 0, "x": True, "q": "0", "V": "0", "Q": "0", "B": "0",
            },
        }  # fmt: skip


class BybitDialect(Dialect):
    """Bybit v5 spot public streams."""

    ws_paths = ("/v5/public/spot", "/v5/public/linear")

    def ccxt_urls(self, ws: str, http: str) -> dict[str, Any]:
        return venue_urls("bybit", ws, http)

    def on_request(self, req: dict[str, Any]) -> tuple[Any, list[tuple[str, str]]]:
        op = req.get("op")
        if op == "ping":
            return {
                "success": True, "ret_msg": "pong", "conn_id": "local", "req_id": req.get("req_id"),
                "op": "ping",
            }, []  # fmt: skip
        if op != "subscribe":
            return None, []
        out: list[tuple[str, str]] = []
        for arg in req.get("args", []):
            topic = str(arg)
            if topic.startswith("publicTrade."):
                out.append(("trades", topic))
            elif topic.startswith("orderbook."):
                out.append(("depth", topic))
            elif topic.startswith("kline."):
                out.append(("kline", topic))
        ack = {
            "success": True, "ret_msg": "subscribe", "conn_id": "local",
            "req_id": req.get("req_id"), "op": "subscribe",
        }  # fmt: skip
        return ack, out

    def on_join(self, channel: str, topic: str, start: int) -> list[Any]:
        if channel != "depth":
            return []
        depth = self.script.depth
        seq = depth[start - 1].seq if 0 < start <= len(depth) else self.script.first_seq - 1
        if start > len(depth):
            seq = depth[-1].seq
        bids, asks = book_after(self.script, seq)
        ts = depth[max(0, min(start, len(depth)) - 1)].ts_ms
        return [
            {
                "topic": topic, "type": "snapshot", "ts": ts,
                "data": {"s": self.market_id, "b": _levels(bids), "a": _levels(asks), "u": seq,
                         "seq": seq},
                "cts": ts,
            }
        ]  # fmt: skip

    def render(self, channel: str, topic: str, i: int) -> Any:
        mid = self.market_id
        if channel == "trades":
            t = self.script.trades[i]
            return {
                "topic": topic, "type": "snapshot", "ts": t.ts_ms,
                "data": [{
                    "T": t.ts_ms, "s": mid, "S": "Buy" if t.side == "buy" else "Sell",
                    "v": repr(t.amount), "p": repr(t.price), "L": "ZeroPlusTick",
                    "i": str(t.trade_id), "BT": False,
                }],
            }  # fmt: skip
        if channel == "depth":
            d = self.script.depth[i]
            return {
                "topic": topic, "type": "delta", "ts": d.ts_ms,
                "data": {"s": mid, "b": _levels(d.bids), "a": _levels(d.asks), "u": d.seq,
                         "seq": d.seq},
                "cts": d.ts_ms,
            }  # fmt: skip
        k = self.script.klines[i]
        return {
            "topic": topic, "type": "snapshot", "ts": k.ts_ms + 60_000,
            "data": [{
                "start": k.ts_ms, "end": k.ts_ms + 59_999, "interval": "1",
                "open": repr(k.open), "close": repr(k.close), "high": repr(k.high),
                "low": repr(k.low), "volume": repr(k.volume), "turnover": "0", "confirm": True,
                "timestamp": k.ts_ms + 60_000,
            }],
        }  # fmt: skip


DIALECTS: dict[str, type[Dialect]] = {"binance": BinanceDialect, "bybit": BybitDialect}
"""Venue -> wire format."""
