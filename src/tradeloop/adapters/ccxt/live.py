"""REST pieces a paper or live session needs from an exchange: its trading rules and recent
closed bars (warm-up history and the backfill of bars missed while a stream was down)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from tradeloop.adapters.ccxt.history import CcxtHistorySource
from tradeloop.core.instrument import AssetClass, Instrument
from tradeloop.core.timeframes import timeframe_ns
from tradeloop.data.history import PageRequest

__all__ = ["closed_bars", "instruments_for"]

logger = logging.getLogger(__name__)

_NS_PER_MS = 1_000_000
_TICK_SIZE_MODE = 4  # ccxt.TICK_SIZE


def _step(value: Any, mode: int) -> float:
    """A ccxt precision value as a step size (tick or lot), whatever the precision mode."""
    if value is None:
        return 0.0
    value = float(value)
    if mode == _TICK_SIZE_MODE:
        return value
    return 10.0 ** (-value)  # DECIMAL_PLACES / SIGNIFICANT_DIGITS: a number of digits


def instruments_for(source: CcxtHistorySource, symbols: Sequence[str]) -> dict[str, Instrument]:
    """Return the exchange's rules for ``symbols``: tick and lot size, minimum notional, fees.

    Keys are the symbols as given (``BTC/USDT``); unknown symbols raise ``ConfigError`` with
    suggestions.
    """
    client = source.client
    mode = int(getattr(client, "precisionMode", _TICK_SIZE_MODE))
    out: dict[str, Instrument] = {}
    for symbol in symbols:
        resolved = source.resolve_symbol(symbol)  # loads the markets first
        market = client.markets[resolved]
        precision = market.get("precision") or {}
        limits = market.get("limits") or {}
        cost = (limits.get("cost") or {}).get("min")
        is_perp = bool(market.get("swap") or market.get("future"))
        out[symbol] = Instrument(
            symbol=symbol,
            venue=source.exchange,
            asset_class=AssetClass.PERPETUAL if is_perp else AssetClass.CRYPTO,
            tick_size=_step(precision.get("price"), mode),
            lot_size=_step(precision.get("amount"), mode),
            min_notional=float(cost or 0.0),
            maker_fee=float(market.get("maker") or 0.0),
            taker_fee=float(market.get("taker") or 0.0),
            contract_multiplier=float(market.get("contractSize") or 1.0),
            quote_currency=str(market.get("quote") or "USD"),
        )
    return out


def closed_bars(
    source: CcxtHistorySource, symbol: str, timeframe: str, start_ns: int, end_ns: int
) -> list[tuple[int, float, float, float, float, float]]:
    """Return the bars of ``symbol`` opened in ``[start_ns, end_ns)``, oldest first.

    Pages through the exchange's candle endpoint (with the source's retries). Bars at or
    after ``end_ns`` are never returned, so a bar still forming is not taken for a closed one.

    Raises
    ------
    ConfigError
        For an unknown symbol.
    TemporaryError
        When the exchange keeps failing after the retries.
    """
    if end_ns <= start_ns:
        return []
    step = timeframe_ns(timeframe)
    resolved = source.resolve_symbol(symbol)
    limit = source.page_limit("candles")
    out: list[tuple[int, float, float, float, float, float]] = []
    since = start_ns
    while since < end_ns:
        until = min(end_ns - 1, since + step * limit - 1)
        table = source.fetch_page(
            PageRequest(
                "candles",
                resolved,
                timeframe,
                since // _NS_PER_MS,
                until // _NS_PER_MS,
                limit,
            )
        )
        if table.num_rows == 0:
            since = until + 1
            continue
        times = table.column("timestamp").cast(pa.int64()).to_pylist()
        cols = [table.column(c).to_pylist() for c in ("open", "high", "low", "close", "volume")]
        last = since - 1
        for i, t in enumerate(times):
            if t < since or t >= end_ns or (out and t <= out[-1][0]):
                continue
            o, h, low, c, v = (float(col[i]) for col in cols)
            out.append((int(t), o, h, low, c, v))
            last = int(t)
        since = max(last + step, until + 1) if last >= since else until + 1
    if not out and end_ns - start_ns >= step:
        logger.warning(
            "no %s bars of %s between %d and %d from the exchange",
            timeframe,
            symbol,
            start_ns,
            end_ns,
        )
    return out
