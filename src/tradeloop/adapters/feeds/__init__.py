"""What a live market-data feed hands to a session: kline updates and feed status changes.

The feeds themselves are :class:`tradeloop.adapters.streams.kline_feed.KlineFeed` (any ccxt
venue, through ccxt's WebSocket layer) and the venues with their own market data
(:mod:`tradeloop.adapters.market`, e.g. Alpaca).

>>> FeedStatus("binance", "stale").attempt
0
"""

from tradeloop.adapters.feeds.events import FeedEvent, FeedState, FeedStatus, KlineUpdate

__all__ = ["FeedEvent", "FeedState", "FeedStatus", "KlineUpdate"]
