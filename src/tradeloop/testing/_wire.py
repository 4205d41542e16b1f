"""Wire details shared by the REST venue and the WebSocket replay server.

Both speak the same exchanges, so the interval codes and Binance's number format live here once.
"""

from __future__ import annotations

__all__ = ["BYBIT_INTERVALS", "INTERVAL_MS", "binance_num"]

_MINUTE = 60_000

INTERVAL_MS: dict[str, int] = {
    "1m": _MINUTE,
    "3m": 3 * _MINUTE,
    "5m": 5 * _MINUTE,
    "15m": 15 * _MINUTE,
    "30m": 30 * _MINUTE,
    "1h": 60 * _MINUTE,
    "2h": 120 * _MINUTE,
    "4h": 240 * _MINUTE,
    "6h": 360 * _MINUTE,
    "8h": 480 * _MINUTE,
    "12h": 720 * _MINUTE,
    "1d": 1440 * _MINUTE,
    "3d": 3 * 1440 * _MINUTE,
    "1w": 7 * 1440 * _MINUTE,
}
"""Binance interval code -> bar length in ms."""

BYBIT_INTERVALS: dict[str, str] = {
    "1": "1m",
    "3": "3m",
    "5": "5m",
    "15": "15m",
    "30": "30m",
    "60": "1h",
    "120": "2h",
    "240": "4h",
    "360": "6h",
    "720": "12h",
    "D": "1d",
    "W": "1w",
}
"""Bybit v5 interval code -> Binance-style interval code."""


def binance_num(x: float) -> str:
    """Binance's decimal string (8 places, or the shortest exact text when 8 would round).

    >>> binance_num(0.1), binance_num(67123.45), binance_num(1e-9)
    ('0.10000000', '67123.45000000', '1e-09')
    """
    text = f"{x:.8f}"
    return text if float(text) == x else repr(float(x))
