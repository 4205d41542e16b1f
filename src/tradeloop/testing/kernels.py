"""Drive a paper/live kernel from recorded bars the way a kline stream does (parity tests)."""

from __future__ import annotations

from collections.abc import Mapping

from tradeloop.core.bar import BarArrays
from tradeloop.core.instrument import Instrument
from tradeloop.engine.live import Bar6, LiveKernel

__all__ = ["bar_row", "stream_bars", "test_instrument"]


def test_instrument(symbol: str) -> Instrument:
    """A spot instrument with Binance-like tick, lot, minimum notional and fees."""
    return Instrument(
        symbol, tick_size=0.01, lot_size=1e-5, min_notional=5.0, maker_fee=0.0004, taker_fee=0.001
    )


test_instrument.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def bar_row(bars: BarArrays, i: int) -> Bar6:
    """Bar ``i`` as the kernel's ``(ts, open, high, low, close, volume)`` tuple."""
    return (
        int(bars.ts[i]),
        float(bars.open[i]),
        float(bars.high[i]),
        float(bars.low[i]),
        float(bars.close[i]),
        float(bars.volume[i]),
    )


def stream_bars(
    kernel: LiveKernel, sources: Mapping[str, BarArrays], start: int, stop: int
) -> None:
    """Feed bars ``[start, stop)`` like a kline stream: each bar's first update (its open),
    then its close, symbol by symbol."""
    for i in range(start, stop):
        for symbol, b in sources.items():
            ts, o = bar_row(b, i)[:2]
            kernel.on_price(symbol, ts, o, o, o, o)
        for symbol, b in sources.items():
            kernel.on_bar(symbol, *bar_row(b, i))
