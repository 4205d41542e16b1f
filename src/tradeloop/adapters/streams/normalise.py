"""ccxt's unified stream structures -> columnar core types (the pipeline's first stage).

ccxt parses each venue's wire format into unified dicts (``watch_trades`` items,
``watch_order_book`` books); these functions turn many of them into numpy columns at once.

>>> b = normalise_trades("binance", "BTC/USDT", [
...     {"timestamp": 1, "price": 10.0, "amount": 2.0, "side": "sell", "id": "7"}], 5)
>>> b.ts.tolist(), b.side.tolist(), b.trade_id.tolist()
([1000000], [-1], ['7'])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tradeloop.core.market_events import TradeBatch

__all__ = ["normalise_trades"]

_NS = 1_000_000
_SIDE = {"buy": 1, "sell": -1}


def normalise_trades(
    venue: str, symbol: str, trades: Sequence[Mapping[str, Any]], recv_ts: int
) -> TradeBatch:
    """Columns of ccxt unified trades (``timestamp`` ms, ``price``, ``amount``, ``side``,
    ``id``); a missing timestamp becomes ``recv_ts``, an unknown side 0."""
    n = len(trades)
    ts = np.fromiter(
        (t["timestamp"] if t.get("timestamp") is not None else -1 for t in trades), np.int64, n
    )
    ts *= _NS
    missing = ts < 0
    if missing.any():
        ts[missing] = recv_ts
    return TradeBatch(
        venue,
        symbol,
        ts,
        np.full(n, recv_ts, np.int64),
        np.fromiter((t["price"] for t in trades), np.float64, n),
        np.fromiter((t["amount"] for t in trades), np.float64, n),
        np.fromiter((_SIDE.get(str(t.get("side")), 0) for t in trades), np.int8, n),
        np.array([str(t.get("id")) for t in trades], dtype=object),
    )
