"""Live exchange market-data feeds: kline WebSocket streams for Binance and Bybit.

>>> from tradeloop.adapters.feeds import KlineStream
>>> KlineStream("bybit", ["BTC/USDT"], ["1m"], url="ws://127.0.0.1:9000").url
'ws://127.0.0.1:9000/v5/public/spot'
"""

from tradeloop.adapters.feeds.binance import BinanceKlineCodec
from tradeloop.adapters.feeds.bybit import BybitKlineCodec
from tradeloop.adapters.feeds.codec import (
    KlineCodec,
    MalformedMessageError,
    SubscriptionRejectedError,
    symbol_id,
)
from tradeloop.adapters.feeds.events import FeedEvent, FeedState, FeedStatus, KlineUpdate
from tradeloop.adapters.feeds.stream import CODECS, KlineStream, backoff_delay
from tradeloop.adapters.feeds.thread import FeedThread

__all__ = [
    "CODECS",
    "BinanceKlineCodec",
    "BybitKlineCodec",
    "FeedEvent",
    "FeedState",
    "FeedStatus",
    "FeedThread",
    "KlineCodec",
    "KlineStream",
    "KlineUpdate",
    "MalformedMessageError",
    "SubscriptionRejectedError",
    "backoff_delay",
    "symbol_id",
]
