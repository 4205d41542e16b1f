"""What the market-stream servers replay: recorded real trades, an L2 book derived from
recorded real best bid/ask quotes, recorded real 1-minute candles and the perpetual's recorded
real 8-hour funding rates.

A :class:`MarketScript` is venue-neutral; each venue dialect renders its items in that
venue's wire format. The depth stream is derived from the quote file: every quote sets the
size of its bid and ask level; levels the new quote crosses are removed (size 0), so the book
grows levels behind the top as the market moves, exactly as a venue's incremental feed does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "DepthStep",
    "FundingRow",
    "KlineRow",
    "MarketScript",
    "ScriptTrade",
    "book_after",
    "load_script",
]

TRADES = "trades/binance_btcusdt_2021/btcusdt-trades.normalized.csv"
QUOTES = "trades/binance_btcusdt_2021/btcusdt-quotes.normalized.csv"
CANDLES = "crypto_1m/binance_spot_2025/BTC_USDT-1m.normalized.csv"
FUNDING = "crypto_futures/binance_usdm_2025/BTC_USDT_USDT-8h-funding_rate.normalized.csv"


@dataclass(frozen=True, slots=True)
class ScriptTrade:
    """One recorded trade (ms time, venue id, price, amount, taker side buy/sell)."""

    ts_ms: int
    trade_id: int
    price: float
    amount: float
    side: str


@dataclass(frozen=True, slots=True)
class DepthStep:
    """One incremental book update: ``seq`` is its update id (consecutive from the first)."""

    ts_ms: int
    seq: int
    bids: tuple[tuple[float, float], ...]
    asks: tuple[tuple[float, float], ...]


@dataclass(frozen=True, slots=True)
class KlineRow:
    """One recorded 1-minute candle (open time in ms)."""

    ts_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass(frozen=True, slots=True)
class FundingRow:
    """One recorded funding rate of the perpetual (funding time in ms)."""

    ts_ms: int
    rate: float


@dataclass(frozen=True, slots=True)
class MarketScript:
    """The recorded market of one symbol, in time order per channel."""

    symbol: str
    trades: tuple[ScriptTrade, ...]
    depth: tuple[DepthStep, ...]
    klines: tuple[KlineRow, ...]
    first_seq: int
    funding: tuple[FundingRow, ...] = ()


def _ms(col: pd.Series) -> np.ndarray:
    ts = pd.to_datetime(col, utc=True, format="ISO8601")
    out: np.ndarray = ts.dt.tz_convert(None).astype("datetime64[ms]").astype("int64").to_numpy()
    return out


def _depth_from_quotes(quotes: pd.DataFrame, first_seq: int) -> tuple[DepthStep, ...]:
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    out: list[DepthStep] = []
    seq = first_seq
    ts = _ms(quotes["timestamp"])
    for i, (bid, bsz, ask, asz) in enumerate(
        zip(quotes["bid"], quotes["bid_size"], quotes["ask"], quotes["ask_size"], strict=True)
    ):
        d_bids: dict[float, float] = {float(bid): float(bsz)}
        d_asks: dict[float, float] = {float(ask): float(asz)}
        for p in [p for p in bids if p >= ask or p > bid]:
            d_bids[p] = 0.0  # crossed by the new ask, or above the new best bid: gone
        for p in [p for p in asks if p <= bid or p < ask]:
            d_asks[p] = 0.0
        for p, s in d_bids.items():
            if s == 0.0:
                bids.pop(p, None)
            else:
                bids[p] = s
        for p, s in d_asks.items():
            if s == 0.0:
                asks.pop(p, None)
            else:
                asks[p] = s
        out.append(
            DepthStep(
                int(ts[i]),
                seq,
                tuple(sorted(d_bids.items(), reverse=True)),
                tuple(sorted(d_asks.items())),
            )
        )
        seq += 1
    return tuple(out)


def book_after(
    script: MarketScript, seq: int
) -> tuple[tuple[tuple[float, float], ...], tuple[tuple[float, float], ...]]:
    """The reference book after the update with sequence ``seq`` (bids desc, asks asc),
    rebuilt from the script's own messages."""
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    for step in script.depth:
        if step.seq > seq:
            break
        for side, levels in ((bids, step.bids), (asks, step.asks)):
            for p, s in levels:
                if s == 0.0:
                    side.pop(p, None)
                else:
                    side[p] = s
    return tuple(sorted(bids.items(), reverse=True)), tuple(sorted(asks.items()))


def load_script(data_dir: Path, klines: int = 240, symbol: str = "BTC/USDT") -> MarketScript:
    """Load the recorded BTC/USDT trades, quotes and the first ``klines`` 1m candles.

    Raises
    ------
    FileNotFoundError
        If a file is missing from ``data_dir``.
    """
    trades = pd.read_csv(data_dir / TRADES)
    quotes = pd.read_csv(data_dir / QUOTES)
    candles = pd.read_csv(data_dir / CANDLES, nrows=klines)
    t_ms = _ms(trades["timestamp"])
    script_trades = tuple(
        ScriptTrade(int(t), int(i), float(p), float(a), str(s))
        for t, i, p, a, s in zip(
            t_ms,
            trades["trade_id"],
            trades["price"],
            trades["amount"],
            trades["side"],
            strict=True,
        )
    )
    k_ms = _ms(candles["timestamp"])
    rows = tuple(
        KlineRow(int(t), float(o), float(h), float(lo), float(c), float(v))
        for t, o, h, lo, c, v in zip(
            k_ms,
            candles["open"],
            candles["high"],
            candles["low"],
            candles["close"],
            candles["volume"],
            strict=True,
        )
    )
    first_seq = 1_000
    depth = _depth_from_quotes(quotes, first_seq)
    fr = pd.read_csv(data_dir / FUNDING)
    funding = tuple(
        FundingRow(int(t), float(r))
        for t, r in zip(_ms(fr["timestamp"]), fr["funding_rate"], strict=True)
    )
    return MarketScript(symbol, script_trades, depth, rows, first_seq, funding)
