"""Venue wire formats for the market-stream server: subscribe handshakes, channel frames and
the REST calls a client makes alongside (as ccxt's ``pro`` clients expect them).

* Binance spot: ``/ws/<n>``, ``{"method":"SUBSCRIBE","params":["btcusdt@trade",...]}``,
  ``trade`` / ``depthUpdate`` (``U``/``u`` update ids; the client fetches the snapshot from
  ``GET /api/v3/depth``) / ``kline`` events.
* OKX v5: ``/ws/v5/public`` and ``/ws/v5/business``, ``trades``, ``books`` (``seqId`` chained
  by ``prevSeqId``), ``candle1m``.
* Kraken spot v2: ``/v2``, ``trade``, ``book`` (snapshot + updates, no sequence), ``ohlc``.
* Bybit v5 spot: ``/v5/public/spot``, ``{"op":"subscribe","args":["publicTrade.BTCUSDT",...]}``,
  ``publicTrade``, ``orderbook.50`` (a ``snapshot`` on subscribe, then ``delta`` frames with
  consecutive ``u``), ``kline.1``; ``{"op":"ping"}`` answered with a pong.

Open interest over REST, as the venues serve it: Binance USD-M ``GET /fapi/v1/openInterest``
and Bybit v5 ``GET /v5/market/open-interest`` (newest first, on the ``intervalTime`` grid).
The shared data has no open-interest recording: :meth:`Dialect.open_interest` DERIVES a
deterministic series from the script's klines (1,000 plus the running sum of volume signed by
the bar's direction, kept positive), to exercise the wire format and the polling, not market
behaviour.
"""

from __future__ import annotations

from typing import Any, ClassVar

from tradeloop.adapters.streams.urls import venue_urls
from tradeloop.testing.streams.script import KlineRow, MarketScript, book_after

__all__ = [
    "DIALECTS",
    "BinanceDialect",
    "BybitDialect",
    "Dialect",
    "KrakenDialect",
    "OkxDialect",
]


UNSUBSCRIBE = "-"
"""Channel value in :meth:`Dialect.on_request`'s answer that ends a topic's stream."""


def _levels(levels: tuple[tuple[float, float], ...]) -> list[list[str]]:
    return [[repr(p), repr(s)] for p, s in levels]


class Dialect:
    """One venue's wire format over a script (subclasses fill in the venue)."""

    ws_paths: ClassVar[tuple[str, ...]] = ()

    def __init__(self, script: MarketScript, kline_tail: bool = True) -> None:
        self.script = script
        self.market_id = script.symbol.replace("/", "")
        self.kline_tail = kline_tail
        """After the script's klines, send the next bar's opening update (open = high = low
        = close = the last close, no volume), as a live venue does when a bar starts: a
        client that infers closure from the next bar then sees the last kline closed."""

    def kline(self, i: int) -> KlineRow:
        """Kline ``i`` of the kline channel (the opening update after the script's end)."""
        if i < len(self.script.klines):
            return self.script.klines[i]
        last = self.script.klines[-1]
        c = last.close
        return KlineRow(last.ts_ms + 60_000, c, c, c, c, 0.0)

    def items(self, channel: str) -> tuple[Any, ...]:
        """The script's items of ``channel`` (trades, depth or kline)."""
        if channel == "trades":
            return self.script.trades
        if channel == "depth":
            return self.script.depth
        if channel == "funding":
            return self.script.funding
        if self.kline_tail and self.script.klines:
            return (*self.script.klines, self.kline(len(self.script.klines)))
        return self.script.klines

    def open_interest(self, upto: int) -> list[tuple[int, float]]:
        """``(time ms, amount)`` of the derived open interest at each of the first ``upto``
        klines (stamped at the kline's close; see the module doc)."""
        out: list[tuple[int, float]] = []
        running = 0.0
        for k in self.script.klines[: max(0, upto)]:
            sign = (k.close > k.open) - (k.close < k.open)
            running += k.volume * sign
            out.append((k.ts_ms + 60_000, round(1_000.0 + abs(running), 3)))
        return out

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
        """Answer a client frame: ``(reply, list of replies or None, [(channel, topic)])``;
        channel :data:`UNSUBSCRIBE` ends the stream of ``topic``."""
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
            "/api/v3/historicalTrades": self._historical_trades,
            "/fapi/v1/openInterest": self._open_interest,
        }

    def _open_interest(self, query: dict[str, str], index_now: int) -> Any:
        series = self.open_interest(max(1, min(index_now, len(self.script.klines))))
        ts, amount = series[-1]
        return {"symbol": query.get("symbol", self.market_id), "openInterest": f"{amount:.3f}",
                "time": ts}  # fmt: skip

    def _historical_trades(self, query: dict[str, str], index_now: int) -> Any:
        first = int(query.get("fromId", "0"))
        limit = min(int(query.get("limit", "500")), 1000)
        rows = [t for t in self.script.trades if t.trade_id >= first][:limit]
        return [
            {"id": t.trade_id, "price": repr(t.price), "qty": repr(t.amount),
             "quoteQty": repr(t.price * t.amount), "time": t.ts_ms,
             "isBuyerMaker": t.side == "sell", "isBestMatch": True}
            for t in rows
        ]  # fmt: skip

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
            for k in self.script.klines
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
        k = self.kline(i)
        interval = topic.rsplit("@kline_", 1)[-1] if "@kline_" in topic else "1m"
        step = 1000 if interval == "1s" else 60_000  # the script's 1m candles, or restamped
        return {
            "e": "kline", "E": k.ts_ms + step, "s": mid,
            "k": {
                "t": k.ts_ms, "T": k.ts_ms + step - 1, "s": mid, "i": interval, "f": 0, "L": 0,
                "o": repr(k.open), "c": repr(k.close), "h": repr(k.high), "l": repr(k.low),
                "v": repr(k.volume), "n": 0, "x": i < len(self.script.klines), "q": "0", "V": "0",
                "Q": "0", "B": "0",
            },
        }  # fmt: skip


_BYBIT_OI_INTERVALS = {"5min": 300_000, "15min": 900_000, "30min": 1_800_000,
                       "1h": 3_600_000, "4h": 14_400_000, "1d": 86_400_000}  # fmt: skip


class BybitDialect(Dialect):
    """Bybit v5 spot public streams."""

    ws_paths = ("/v5/public/spot", "/v5/public/linear")

    def ccxt_urls(self, ws: str, http: str) -> dict[str, Any]:
        return venue_urls("bybit", ws, http)

    def rest_routes(self) -> dict[str, Any]:
        return {"/v5/market/open-interest": self._open_interest}

    def _open_interest(self, query: dict[str, str], index_now: int) -> Any:
        step = _BYBIT_OI_INTERVALS.get(query.get("intervalTime", ""))
        if step is None or query.get("category") not in ("linear", "inverse"):
            return {"retCode": 10001, "retMsg": "params error: intervalTime or category",
                    "result": {}, "retExtInfo": {}, "time": 0}  # fmt: skip
        series = self.open_interest(max(1, min(index_now, len(self.script.klines))))
        points = [(t, a) for t, a in series if t % step == 0] or series[:1]
        limit = min(int(query.get("limit", "50")), 200)
        rows = [{"openInterest": f"{a:.3f}", "timestamp": str(t)} for t, a in points[::-1]]
        return {
            "retCode": 0, "retMsg": "OK",
            "result": {"symbol": query.get("symbol", self.market_id),
                       "category": query["category"], "list": rows[:limit],
                       "nextPageCursor": ""},
            "retExtInfo": {}, "time": points[-1][0],
        }  # fmt: skip

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
        k = self.kline(i)
        return {
            "topic": topic, "type": "snapshot", "ts": k.ts_ms + 60_000,
            "data": [{
                "start": k.ts_ms, "end": k.ts_ms + 59_999, "interval": "1",
                "open": repr(k.open), "close": repr(k.close), "high": repr(k.high),
                "low": repr(k.low), "volume": repr(k.volume), "turnover": "0",
                "confirm": i < len(self.script.klines),
                "timestamp": k.ts_ms + 60_000,
            }],
        }  # fmt: skip


class OkxDialect(Dialect):
    """OKX v5 public streams: ``trades``, ``books`` (snapshot, then updates chained by
    ``prevSeqId``/``seqId``) and ``funding-rate`` (of the ``-SWAP`` perpetual) on
    ``/ws/v5/public``, ``candle1m`` on ``/ws/v5/business``; a text ``ping`` is answered with
    ``pong``."""

    ws_paths = ("/ws/v5/public", "/ws/v5/business")

    def __init__(self, script: MarketScript, kline_tail: bool = True) -> None:
        super().__init__(script, kline_tail)
        self.market_id = script.symbol.replace("/", "-")

    def ccxt_urls(self, ws: str, http: str) -> dict[str, Any]:
        return venue_urls("okx", ws, http)

    def on_request(self, req: dict[str, Any]) -> tuple[Any, list[tuple[str, str]]]:
        op = req.get("op")
        if op == "unsubscribe":  # ccxt unsubscribes a book before subscribing it again
            args = req.get("args", [])
            acks = [{"event": "unsubscribe", "arg": arg, "connId": "local"} for arg in args]
            return acks, [(UNSUBSCRIBE, str(arg.get("channel", ""))) for arg in args]
        if op != "subscribe":
            return None, []
        replies: list[Any] = []
        out: list[tuple[str, str]] = []
        for arg in req.get("args", []):
            channel = str(arg.get("channel", ""))
            replies.append({"event": "subscribe", "arg": arg, "connId": "local"})
            if channel == "trades":
                out.append(("trades", channel))
            elif channel.startswith("books"):
                out.append(("depth", channel))
            elif channel.startswith("candle"):
                out.append(("kline", channel))
            elif channel == "funding-rate":
                out.append(("funding", channel))
        return replies, out

    def _book(self, channel: str, action: str, ts: int, seq: int, prev: int, bids: Any,
              asks: Any) -> Any:  # fmt: skip
        return {
            "arg": {"channel": channel, "instId": self.market_id}, "action": action,
            "data": [{
                "asks": [[repr(p), repr(q), "0", "1"] for p, q in asks],
                "bids": [[repr(p), repr(q), "0", "1"] for p, q in bids],
                "ts": str(ts), "checksum": 0, "prevSeqId": prev, "seqId": seq,
            }],
        }  # fmt: skip

    def on_join(self, channel: str, topic: str, start: int) -> list[Any]:
        if channel != "depth":
            return []
        depth = self.script.depth
        upto = min(start, len(depth)) - 1
        seq = depth[upto].seq if upto >= 0 else self.script.first_seq - 1
        bids, asks = book_after(self.script, seq)
        ts = depth[max(upto, 0)].ts_ms
        return [self._book(topic, "snapshot", ts, seq, -1, bids, asks)]

    def render(self, channel: str, topic: str, i: int) -> Any:
        arg = {"channel": topic, "instId": self.market_id}
        if channel == "trades":
            t = self.script.trades[i]
            return {
                "arg": arg,
                "data": [{
                    "instId": self.market_id, "tradeId": str(t.trade_id), "px": repr(t.price),
                    "sz": repr(t.amount), "side": t.side, "ts": str(t.ts_ms), "count": "1",
                }],
            }  # fmt: skip
        if channel == "depth":
            d = self.script.depth[i]
            return self._book(topic, "update", d.ts_ms, d.seq, d.seq - 1, d.bids, d.asks)
        if channel == "funding":
            f = self.script.funding[i]
            swap = f"{self.market_id}-SWAP"
            return {
                "arg": {"channel": topic, "instId": swap},
                "data": [{
                    "fundingRate": repr(f.rate), "fundingTime": str(f.ts_ms), "instId": swap,
                    "instType": "SWAP", "method": "current_period", "nextFundingRate": "",
                    "nextFundingTime": str(f.ts_ms + 8 * 3_600_000), "ts": str(f.ts_ms),
                }],
            }  # fmt: skip
        k = self.kline(i)
        return {
            "arg": arg,
            "data": [[str(k.ts_ms), repr(k.open), repr(k.high), repr(k.low), repr(k.close),
                      repr(k.volume), "0", "0", "1"]],
        }  # fmt: skip


def _iso_ms(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


class KrakenDialect(Dialect):
    """Kraken spot WebSocket v2 (``/v2``): ``trade``, ``book`` (a snapshot, then updates;
    Kraken has no sequence numbers, only a checksum) and ``ohlc``; numbers are JSON numbers,
    times ISO-8601."""

    ws_paths = ("/v2",)

    def __init__(self, script: MarketScript, kline_tail: bool = True) -> None:
        super().__init__(script, kline_tail)
        self.market_id = script.symbol

    def ccxt_urls(self, ws: str, http: str) -> dict[str, Any]:
        return venue_urls("kraken", ws, http)

    def on_request(self, req: dict[str, Any]) -> tuple[Any, list[tuple[str, str]]]:
        if req.get("method") == "ping":
            return {"method": "pong", "req_id": req.get("req_id")}, []
        if req.get("method") != "subscribe":
            return None, []
        params = req.get("params", {})
        channel = str(params.get("channel", ""))
        kind = {"trade": "trades", "book": "depth", "ohlc": "kline"}.get(channel)
        ack = {
            "method": "subscribe", "req_id": req.get("req_id"), "success": True,
            "result": {"channel": channel, "symbol": self.market_id},
        }  # fmt: skip
        return ack, ([(kind, channel)] if kind else [])

    def _book(self, kind: str, ts: int, bids: Any, asks: Any) -> Any:
        return {
            "channel": "book", "type": kind,
            "data": [{
                "symbol": self.market_id,
                "bids": [{"price": p, "qty": q} for p, q in bids],
                "asks": [{"price": p, "qty": q} for p, q in asks],
                "checksum": 0, "timestamp": _iso_ms(ts),
            }],
        }  # fmt: skip

    def on_join(self, channel: str, topic: str, start: int) -> list[Any]:
        if channel != "depth":
            return []
        depth = self.script.depth
        upto = min(start, len(depth)) - 1
        seq = depth[upto].seq if upto >= 0 else self.script.first_seq - 1
        bids, asks = book_after(self.script, seq)
        return [self._book("snapshot", depth[max(upto, 0)].ts_ms, bids, asks)]

    def render(self, channel: str, topic: str, i: int) -> Any:
        if channel == "trades":
            t = self.script.trades[i]
            return {
                "channel": "trade", "type": "update",
                "data": [{
                    "symbol": self.market_id, "side": t.side, "price": t.price, "qty": t.amount,
                    "ord_type": "market", "trade_id": t.trade_id, "timestamp": _iso_ms(t.ts_ms),
                }],
            }  # fmt: skip
        if channel == "depth":
            d = self.script.depth[i]
            return self._book("update", d.ts_ms, d.bids, d.asks)
        k = self.kline(i)
        return {
            "channel": "ohlc", "type": "update",
            "data": [{
                "symbol": self.market_id, "open": k.open, "high": k.high, "low": k.low,
                "close": k.close, "trades": 1, "volume": k.volume, "vwap": k.close,
                "interval_begin": _iso_ms(k.ts_ms), "interval": 1,
                "timestamp": _iso_ms(k.ts_ms + 60_000),
            }],
        }  # fmt: skip


DIALECTS: dict[str, type[Dialect]] = {
    "binance": BinanceDialect,
    "bybit": BybitDialect,
    "okx": OkxDialect,
    "kraken": KrakenDialect,
}
"""Venue -> wire format."""
