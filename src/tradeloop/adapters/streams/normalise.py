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
from itertools import repeat
from operator import itemgetter
from typing import Any

import numpy as np

from tradeloop.core.market_events import TradeBatch

__all__ = ["normalise_trades"]

_NS = 1_000_000
_SIDE: dict[object, int] = {"buy": 1, "sell": -1}
_TS = itemgetter("timestamp")
_PRICE = itemgetter("price")
_AMOUNT = itemgetter("amount")
_SIDE_OF = itemgetter("side")
_ID = itemgetter("id")
_ZEROS = repeat(0)


def normalise_trades(
    venue: str, symbol: str, trades: Sequence[Mapping[str, Any]], recv_ts: int
) -> TradeBatch:
    """Columns of ccxt unified trades (``timestamp`` ms, ``price``, ``amount``, ``side``,
    ``id``); a missing timestamp becomes ``recv_ts`` (to the ms), an unknown side 0."""
    n = len(trades)
    stamps = list(map(_TS, trades))
    if None in stamps:
        stamps = [recv_ts // _NS if x is None else x for x in stamps]
    ts = np.fromiter(stamps, np.int64, n) * _NS
    return TradeBatch(
        venue,
        symbol,
        ts,
        np.full(n, recv_ts, np.int64),
        np.fromiter(map(_PRICE, trades), np.float64, n),
        np.fromiter(map(_AMOUNT, trades), np.float64, n),
        np.fromiter(map(_SIDE.get, map(_SIDE_OF, trades), _ZEROS), np.int8, n),
        np.array(list(map(str, map(_ID, trades))), dtype=object),
    )
