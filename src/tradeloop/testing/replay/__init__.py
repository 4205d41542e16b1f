"""Local WebSocket replay server: Binance and Bybit kline streams from recorded candles."""

from tradeloop.testing.replay.answered import status_answered
from tradeloop.testing.replay.server import BASE_BAR_MS, ReplayServer

__all__ = ["BASE_BAR_MS", "ReplayServer", "status_answered"]
