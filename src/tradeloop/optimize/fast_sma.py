"""The fast path of a sweep: the SMA crossover simulated by one numba pass per parameter set.

:class:`SmaCrossSweep` holds one symbol's bars once; the integer-tick window sums of every
distinct SMA length are computed once and shared by every parameter set that uses that length.
Each parameter set is then one compiled pass over the bars (:func:`sma_cross_sim_nb`) that
decides the crosses exactly as :func:`~tradeloop.indicators.crossover.sma_crossover_exact`
does (integer sums, a tie keeps the previous sign) and trades them with the rules of the
simulated broker: market orders at the next open, all-equity fractional sizing with the fee
included, adverse slippage, stop-loss/take-profit checked against each bar's range (a gap
through a level fills at the open; both inside one bar: the stop), optional close at the end.

It is a specialisation of the event kernel for one strategy, proven equal to it trade for trade
by the tests; :func:`fast_path_blocker` says when it does not apply (another strategy, several
symbols, a coarser trading timeframe than the data, a risk profile with per-bar rules, lots...)
and the caller then runs the event kernel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from math import gcd
from typing import Any

import numpy as np
from numba import njit

from tradeloop.analysis.metrics import PerformanceMetrics, compute_metrics
from tradeloop.analysis.trades import TradeColumns
from tradeloop.core.bar import BarArrays
from tradeloop.core.instrument import Instrument
from tradeloop.core.position import ExitReason, Trade
from tradeloop.core.precision import price_decimals, to_ticks
from tradeloop.core.timeframes import timeframe_ns
from tradeloop.engine.config import RunConfig
from tradeloop.execution.config import FillPrice

__all__ = ["FastRun", "SmaCrossSweep", "fast_path_blocker", "sma_cross_sim_nb"]

# columns of the trade buffer
_SIG, _ENTRY, _EXIT, _DIR, _QTY, _EPX, _XPX, _EFEE, _XFEE, _PNL, _REASON, _SL, _TP = range(13)
_N_COLS = 13
_REASONS = (ExitReason.SIGNAL, ExitReason.STOP_LOSS, ExitReason.TAKE_PROFIT, ExitReason.END)
_REASON_TEXT = np.array(["signal", "stop_loss", "take_profit", "end"], dtype=object)
_NO_TS = np.iinfo(np.int64).min


@njit(cache=True, nogil=True)
def _close_nb(
    trades: np.ndarray,
    ntr: int,
    k: int,
    sig: int,
    entry: int,
    d: int,
    q: float,
    epx: float,
    efee: float,
    price: float,
    fee: float,
    reason: int,
    sl: float,
    tp: float,
) -> tuple[int, float]:
    """Record a closed trade; return the new trade count and the cash change."""
    xfee = fee * q * price
    trades[ntr, _SIG] = sig
    trades[ntr, _ENTRY] = entry
    trades[ntr, _EXIT] = k
    trades[ntr, _DIR] = d
    trades[ntr, _QTY] = q
    trades[ntr, _EPX] = epx
    trades[ntr, _XPX] = price
    trades[ntr, _EFEE] = efee
    trades[ntr, _XFEE] = xfee
    trades[ntr, _PNL] = d * q * (price - epx) - efee - xfee
    trades[ntr, _REASON] = reason
    trades[ntr, _SL] = sl
    trades[ntr, _TP] = tp
    return ntr + 1, d * q * price - xfee


@njit(cache=True, nogil=True)
def sma_cross_sim_nb(
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    sum_fast: np.ndarray,
    sum_slow: np.ndarray,
    g_fast: int,
    g_slow: int,
    longest: int,
    first: int,
    balance: float,
    fee: float,
    slip: float,
    fraction: float,
    short: bool,
    sl: float,
    tp: float,
    close_at_end: bool,
    equity: np.ndarray,
    exposure: np.ndarray,
    trades: np.ndarray,
) -> int:
    """Simulate one SMA(fast)/SMA(slow) parameter set; return the number of trades written.

    ``sum_fast``/``sum_slow`` are the integer-tick window sums, ``g_fast``/``g_slow`` the lengths
    divided by their gcd (the exact comparison is ``g_slow * sum_fast`` vs ``g_fast * sum_slow``),
    ``first`` the first bar the strategy acts on. ``equity``/``exposure`` are filled per bar;
    ``trades`` gets one row per trade (closed ones in exit order, then the open one).
    """
    n = close.shape[0]
    cash = balance
    pos = 0
    qty = 0.0
    epx = 0.0
    efee = 0.0
    stop = math.nan
    take = math.nan
    entry = -1
    sig = -1
    pending = 0  # 1 open long, -1 open short, 2 close
    p_sig = -1
    p_sl = math.nan
    p_tp = math.nan
    ntr = 0
    prev = 0
    for k in range(n):
        # the exact, tie-carrying sign of SMA(fast) - SMA(slow) and its cross
        if k >= longest - 1:
            diff = g_slow * sum_fast[k] - g_fast * sum_slow[k]
            s = 1 if diff > 0 else (-1 if diff < 0 else prev)
        else:
            s = 0
        cross = 0
        if prev == -1 and s == 1:
            cross = 1
        elif prev == 1 and s == -1:
            cross = -1
        prev = s
        if k < first:
            equity[k] = balance
            exposure[k] = False
            continue
        o = open_[k]
        # market phase: orders waiting for this open, then stops/targets against the range
        if pending != 0:
            if pending == 2:
                if pos != 0:
                    px = o * (1.0 - pos * slip) if slip != 0.0 else o
                    ntr, dc = _close_nb(
                        trades, ntr, k, sig, entry, pos, qty, epx, efee, px, fee, 0, stop, take
                    )
                    cash += dc
                    pos = 0
                    qty = 0.0
            elif pos != pending:
                if pos != 0:
                    px = o * (1.0 - pos * slip) if slip != 0.0 else o
                    ntr, dc = _close_nb(
                        trades, ntr, k, sig, entry, pos, qty, epx, efee, px, fee, 0, stop, take
                    )
                    cash += dc
                    pos = 0
                    qty = 0.0
                d = pending
                px = o * (1.0 + d * slip) if slip != 0.0 else o
                budget = fraction * cash
                if d > 0:
                    budget = min(budget, cash)
                q = budget / (px * (1.0 + fee)) if budget > 0 else 0.0
                if q > 0:
                    f = fee * q * px
                    cash -= d * q * px + f
                    pos = d
                    qty = q
                    epx = px
                    efee = f
                    entry = k
                    sig = p_sig
                    stop = p_sl
                    take = p_tp
            pending = 0
        if pos != 0 and (stop == stop or take == take):
            h = high[k]
            lo = low[k]
            long = pos > 0
            done = False
            if stop == stop and (o <= stop if long else o >= stop):
                px = o * (1.0 - pos * slip) if slip != 0.0 else o
                ntr, dc = _close_nb(
                    trades, ntr, k, sig, entry, pos, qty, epx, efee, px, fee, 1, stop, take
                )
                done = True
            elif take == take and (o >= take if long else o <= take):
                ntr, dc = _close_nb(
                    trades, ntr, k, sig, entry, pos, qty, epx, efee, o, fee, 2, stop, take
                )
                done = True
            else:
                stop_hit = stop == stop and (lo <= stop if long else h >= stop)
                tp_hit = take == take and (h >= take if long else lo <= take)
                if stop_hit:  # both in range at the finest data: the stop is assumed
                    px = stop * (1.0 - pos * slip) if slip != 0.0 else stop
                    ntr, dc = _close_nb(
                        trades, ntr, k, sig, entry, pos, qty, epx, efee, px, fee, 1, stop, take
                    )
                    done = True
                elif tp_hit:
                    ntr, dc = _close_nb(
                        trades, ntr, k, sig, entry, pos, qty, epx, efee, take, fee, 2, stop, take
                    )
                    done = True
            if done:
                cash += dc
                pos = 0
                qty = 0.0
        # decision phase: the strategy acts on the cross of the bar that just completed
        c = close[k]
        if cross == 1:
            if pos != 1:
                pending = 1
                p_sig = k
                p_sl = c * (1 - sl) if sl else math.nan
                p_tp = c * (1 + tp) if tp else math.nan
        elif cross == -1:
            if short:
                if pos != -1:
                    pending = -1
                    p_sig = k
                    p_sl = c * (1 + sl) if sl else math.nan
                    p_tp = c * (1 - tp) if tp else math.nan
            elif pos == 1:
                pending = 2
        equity[k] = cash + (pos * qty) * c
        exposure[k] = pos != 0
    if pos != 0 and n > 0:
        if close_at_end:
            ntr, dc = _close_nb(
                trades,
                ntr,
                n - 1,
                sig,
                entry,
                pos,
                qty,
                epx,
                efee,
                close[n - 1] * (1.0 - pos * slip) if slip != 0.0 else close[n - 1],
                fee,
                3,
                stop,
                take,
            )
            cash += dc
            equity[n - 1] = cash
            exposure[n - 1] = False
        else:  # still open: marked at the last close
            trades[ntr, _SIG] = sig
            trades[ntr, _ENTRY] = entry
            trades[ntr, _EXIT] = -1
            trades[ntr, _DIR] = pos
            trades[ntr, _QTY] = qty
            trades[ntr, _EPX] = epx
            trades[ntr, _XPX] = math.nan
            trades[ntr, _EFEE] = efee
            trades[ntr, _XFEE] = 0.0
            trades[ntr, _PNL] = pos * qty * (close[n - 1] - epx) - efee
            trades[ntr, _REASON] = -1
            trades[ntr, _SL] = stop
            trades[ntr, _TP] = take
            ntr += 1
    return ntr


@dataclass(slots=True)
class FastRun:
    """One parameter set through the fast path: equity, exposure, trades and metrics."""

    params: dict[str, Any]
    ts: np.ndarray
    equity: np.ndarray
    exposure: np.ndarray
    rows: np.ndarray
    metrics: PerformanceMetrics
    symbol: str
    strategy: str

    def trades(self) -> list[Trade]:
        """The trades as :class:`~tradeloop.core.position.Trade` objects (ids as the kernel's)."""
        out = []
        ts = self.ts
        for r in self.rows:
            closed = r[_EXIT] >= 0
            sl, tp = float(r[_SL]), float(r[_TP])
            direction = int(r[_DIR])
            out.append(
                Trade(
                    id=f"{self.strategy}:{self.symbol}:{int(ts[int(r[_SIG])])}",
                    symbol=self.symbol,
                    direction=direction,
                    quantity=float(r[_QTY]),
                    entry_ts=int(ts[int(r[_ENTRY])]),
                    entry_price=float(r[_EPX]),
                    exit_ts=int(ts[int(r[_EXIT])]) if closed else None,
                    exit_price=float(r[_XPX]) if closed else None,
                    entry_fee=float(r[_EFEE]),
                    exit_fee=float(r[_XFEE]),
                    pnl=float(r[_PNL]),
                    exit_reason=_REASONS[int(r[_REASON])] if closed else None,
                    tag="sma_cross_up" if direction > 0 else "sma_cross_down",
                    stop_loss=sl if sl == sl else None,
                    take_profit=tp if tp == tp else None,
                )
            )
        return out


def fast_path_blocker(
    strategy_cls: type,
    bars: BarArrays,
    instrument: Instrument,
    config: RunConfig,
    *,
    model: bool = False,
) -> str | None:
    """Return why the fast path cannot run this backtest, or None when it can.

    The fast path covers the bundled ``sma_cross`` strategy (not a subclass) on one symbol
    traded on the data's own timeframe, filled at the next open, without a model, with a risk
    profile that neither sizes nor watches bars, and an instrument without lots or minimum
    notional.
    """
    from tradeloop.strategy.examples.sma_cross import SmaCross

    if strategy_cls is not SmaCross:
        return "only the bundled sma_cross strategy has a vectorized kernel"
    if model:
        return "an ML model scores entries"
    if config.timeframe is not None and config.timeframe != bars.timeframe:
        return "the trading timeframe differs from the data's (intrabar drill-down)"
    if config.fill_price is not FillPrice.NEXT_OPEN:
        return "fills at the close"
    if not config.allow_short:
        return "shorting disabled (short signals would be rejected)"
    if config.risk.profile != "permissive":
        return f"risk profile {config.risk.profile!r} checks signals"
    if instrument.lot_size > 0 or instrument.min_notional > 0:
        return "the instrument has lots or a minimum notional"
    if instrument.maker_fee != instrument.taker_fee:
        return "maker and taker fees differ"
    return None


class SmaCrossSweep:
    """Many SMA-crossover parameter sets over one symbol's bars, each one compiled pass.

    Parameters
    ----------
    bars
        The symbol's bars (memory-mapped arrays are used in place, never copied).
    instrument
        Tick size and fee of the symbol.
    config
        The trading rules (bar window ``start``/``end``, ``trade_start``, balance, fee...).
    """

    def __init__(self, bars: BarArrays, instrument: Instrument, config: RunConfig) -> None:
        lo = 0 if config.start is None else int(np.searchsorted(bars.ts, config.start, "left"))
        hi = len(bars) if config.end is None else int(np.searchsorted(bars.ts, config.end, "left"))
        self.bars = bars if (lo, hi) == (0, len(bars)) else bars.slice(lo, hi)
        self.config = config
        self.instrument = instrument
        self.first = (
            0
            if config.trade_start is None
            else int(np.searchsorted(self.bars.ts, config.trade_start, side="left"))
        )
        self.bar_ns = timeframe_ns(bars.timeframe)
        close = self.bars.close
        tick = instrument.tick_size
        if not tick > 0:
            decimals = price_decimals(close)
            tick = 10.0**-decimals if decimals is not None else 0.0
        if tick > 0 and close.size:
            largest = float(np.max(np.abs(close))) / tick  # no int64 tick form near 1e300
            tick = tick if np.isfinite(largest) and largest < 2**62 else 0.0
        self._ticks = to_ticks(close, tick) if tick > 0 else None
        self._max_tick = int(np.max(np.abs(self._ticks))) if self._ticks is not None else 0
        #: window sums by length, computed once per distinct length
        self._sums: dict[int, np.ndarray] = {}
        n = len(self.bars)
        self._equity = np.empty(n)
        self._exposure = np.empty(n, dtype=np.bool_)
        self._trades = np.empty((n // 2 + 2, _N_COLS))

    def exact(self, fast: int, slow: int) -> bool:
        """Whether the integer comparison is exact for these lengths (else: the event kernel)."""
        if self._ticks is None:
            return False
        longest = max(fast, slow)
        return self._max_tick * longest * (longest // gcd(fast, slow)) < 2**62

    def window_sum(self, n: int) -> np.ndarray:
        """The integer-tick sum of the last ``n`` closes at each bar (0 before ``n`` bars)."""
        cached = self._sums.get(n)
        if cached is None:
            assert self._ticks is not None
            ticks = self._ticks
            with np.errstate(over="ignore"):
                cs = np.concatenate(([0], np.cumsum(ticks, dtype=np.int64)))
                sums = cs[n:] - cs[:-n]
            cached = np.zeros(ticks.size, dtype=np.int64)
            cached[n - 1 :] = sums
            self._sums[n] = cached
        return cached

    def run(self, params: dict[str, Any], *, keep: bool = False) -> FastRun:
        """Run one parameter set (``sma_cross`` parameters, defaults filled in).

        ``keep`` returns copies of the equity and exposure arrays (otherwise they are buffers
        reused by the next call).
        """
        from tradeloop.strategy.examples.sma_cross import SmaCross

        strategy: Any = SmaCross(**params)  # checks names, bounds and fast < slow
        fast, slow = int(strategy.fast), int(strategy.slow)
        g = gcd(fast, slow)
        config, bars = self.config, self.bars
        ntr = sma_cross_sim_nb(
            bars.open,
            bars.high,
            bars.low,
            bars.close,
            self.window_sum(fast),
            self.window_sum(slow),
            fast // g,
            slow // g,
            max(fast, slow),
            self.first,
            float(config.balance),
            float(self.instrument.taker_fee),
            config.slippage_bps / 10_000.0,
            float(strategy.size),
            bool(strategy.short),
            float(strategy.stop_loss),
            float(strategy.take_profit),
            bool(config.close_at_end),
            self._equity,
            self._exposure,
            self._trades,
        )
        rows = self._trades[:ntr].copy()
        equity = self._equity.copy() if keep else self._equity
        exposure = self._exposure.copy() if keep else self._exposure
        metrics = compute_metrics(
            equity,
            bars.ts,
            self._columns(rows),
            self.bar_ns,
            initial_equity=config.balance,
            exposure_mask=exposure,
            periods=config.periods_per_year,
        )
        return FastRun(
            dict(strategy.params),
            bars.ts,
            equity,
            exposure,
            rows,
            metrics,
            bars.symbol,
            SmaCross.strategy_name(),
        )

    def _columns(self, rows: np.ndarray) -> TradeColumns:
        """The trade rows as the columns the metrics read."""
        n = rows.shape[0]
        ts = self.bars.ts
        closed = rows[:, _EXIT] >= 0
        exit_idx = np.where(closed, rows[:, _EXIT], 0).astype(np.int64)
        reasons = np.where(closed, _REASON_TEXT[np.maximum(rows[:, _REASON], 0).astype(int)], "")
        return TradeColumns(
            ids=np.full(n, "", dtype=object),
            symbols=np.full(n, self.bars.symbol, dtype=object),
            exit_reasons=reasons.astype(object),
            direction=rows[:, _DIR].astype(np.int8),
            quantity=np.ascontiguousarray(rows[:, _QTY]),
            entry_ts=ts[rows[:, _ENTRY].astype(np.int64)] if n else np.zeros(0, np.int64),
            entry_price=np.ascontiguousarray(rows[:, _EPX]),
            exit_ts=np.where(closed, ts[exit_idx] if n else exit_idx, _NO_TS).astype(np.int64),
            exit_price=np.ascontiguousarray(rows[:, _XPX]),
            fees=rows[:, _EFEE] + rows[:, _XFEE],
            pnl=np.ascontiguousarray(rows[:, _PNL]),
            stop_loss=np.ascontiguousarray(rows[:, _SL]),
            take_profit=np.ascontiguousarray(rows[:, _TP]),
            closed=closed,
        )
