"""Peer backtesters for the throughput bench, each running the same SMA crossover rules.

The rules (the ones the tradeloop engine applies by default):

* long only; a cross of SMA(fast) above SMA(slow) on a bar's close buys when flat, a cross
  below sells the whole position;
* orders fill at the next bar's open;
* all-equity fractional sizing with the fee included: ``size = cash / (open * (1 + fee))``;
* a commission of ``fee`` times the notional on every fill;
* a position still open at the end stays open (it is not closed at the last bar).

A "cross" follows tradeloop's tie rule: the sign of ``fast - slow`` is tracked bar by bar and an
exact tie keeps the previous sign. tradeloop decides ties exactly on integer ticks; the peers
compute their moving averages in floating point, where an exact decimal tie comes out as a
difference of a few ulps of either sign. On a 0.01 tick grid two distinct values of
``fast_sma - slow_sma`` are at least ``tick * gcd(fast, slow) / (fast * slow)`` apart, so the peers
treat ``|fast_sma - slow_sma|`` below half that as a tie (:attr:`Rules.tie_eps`). Without it
about one cross in 8,000 differs on the 1M-bar series.

Each ``run_*`` function imports its library on first use, so a missing library only removes its
row from the bench. Times are wall-clock seconds from :func:`time.perf_counter`.
"""

from __future__ import annotations

import importlib.util
import math
import os
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "PEERS",
    "Bars",
    "Match",
    "PeerRun",
    "Rules",
    "Trade",
    "is_available",
    "match_trades",
    "run_backtesting",
]

#: One round trip as (entry fill time, exit fill time or None while open), UTC ns.
Trade = tuple[int, int | None]

# Head room, as a power of two, kept between the smallest position and the peer's quantity limit
# (one whole unit in backtesting.py, vectorbt's 1e-12 absolute tolerance). See Rules.min_equity.
_HEADROOM_BITS = 24
# Fraction of the available cash a peer spends on an entry, a hair under 1 so that rounding in
# the peer's own cash check never rejects the order. tradeloop spends exactly all of it.
_SPEND = 1.0 - 1e-9


@dataclass(frozen=True, slots=True)
class Bars:
    """OHLCV columns: int64 UTC ns open times and float64 prices on a ``tick`` grid."""

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    tick: float

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def head(self, n: int) -> Bars:
        """Return the first ``n`` bars (views, not copies)."""
        return Bars(
            self.ts[:n],
            self.open[:n],
            self.high[:n],
            self.low[:n],
            self.close[:n],
            self.volume[:n],
            self.tick,
        )

    def index(self) -> pd.DatetimeIndex:
        """Open times as a tz-naive (UTC) pandas index, the form every peer accepts."""
        return pd.DatetimeIndex(self.ts.view("datetime64[ns]"))


@dataclass(frozen=True, slots=True)
class Rules:
    """Parameters of the SMA crossover run every engine in the bench executes."""

    fast: int = 10
    slow: int = 30
    fee: float = 0.001
    cash: float = 10_000.0
    tick: float = 0.01
    #: Lowest equity the run reaches and highest price: this loss-making 1-minute strategy
    #: shrinks equity by ~17 orders of magnitude over 1M bars, below what some peers can trade.
    min_equity: float = 10_000.0
    max_price: float = 1.0

    @property
    def tie_eps(self) -> float:
        """Half the smallest non-zero ``|fast_sma - slow_sma|`` on the tick grid."""
        return self.tick * math.gcd(self.fast, self.slow) / (2 * self.fast * self.slow)

    @property
    def smallest_position(self) -> float:
        """Quantity bought with the lowest equity at the highest price."""
        return self.min_equity / (max(self.max_price, self.tick) * (1 + self.fee))

    def unit_exponent(self) -> int:
        """Exponent ``e`` such that ``2**e`` of the asset is well below the smallest position.

        Scaling by a power of two is exact, so it changes no price comparison (no tie moves),
        and all-in percentage-fee trading is scale-invariant: the same trades follow.
        """
        return math.floor(math.log2(self.smallest_position)) - _HEADROOM_BITS


@dataclass(slots=True)
class PeerRun:
    """Timings and trades of one peer run."""

    name: str
    label: str
    version: str
    bars: int
    import_s: float
    prep_s: float
    run_s: float
    trades: list[Trade]
    notes: list[str] = field(default_factory=list)

    @property
    def bars_per_s(self) -> float:
        """Bars per second of the timed run."""
        return self.bars / self.run_s if self.run_s > 0 else float("inf")


@dataclass(frozen=True, slots=True)
class Match:
    """How many trades (entry and exit time) two runs have in common."""

    matched: int
    ours: int
    theirs: int

    @property
    def identical(self) -> bool:
        """True when both trade lists hold exactly the same round trips."""
        return self.matched == self.ours == self.theirs

    @property
    def total(self) -> int:
        """The longer of the two trade lists."""
        return max(self.ours, self.theirs)

    def describe(self) -> str:
        """``yes (n of n)`` or ``no (matched of total)``."""
        verdict = "yes" if self.identical else "no"
        return f"{verdict} ({self.matched:,} of {self.total:,})"


def match_trades(ours: list[Trade], theirs: list[Trade]) -> Match:
    """Count the round trips (entry, exit) present in both lists, duplicates included."""
    common = Counter(ours) & Counter(theirs)
    return Match(sum(common.values()), len(ours), len(theirs))


def is_available(module: str) -> bool:
    """True when ``module`` can be imported."""
    return importlib.util.find_spec(module) is not None


def _sign(diff: float, eps: float, previous: int) -> int:
    """Sign of ``diff`` with ``|diff| < eps`` (and NaN) keeping ``previous``."""
    if diff >= eps:
        return 1
    if diff <= -eps:
        return -1
    return previous


def _bar_times(bars: Bars, idx: np.ndarray) -> list[int]:
    return bars.ts[np.asarray(idx, dtype=np.int64)].tolist()


# --------------------------------------------------------------------------- backtesting.py


def run_backtesting(bars: Bars, rules: Rules, *, obvious: bool = False) -> PeerRun:
    """Run the rules in backtesting.py (``Strategy.next`` per bar, fills at the next open).

    Uses ``backtesting.lib.FractionalBacktest`` (or scales prices itself on versions without
    it) so that fractional quantities can be traded. The averages come from ``self.I``
    (computed once, before the bars), or with ``obvious`` from the last ``slow`` closes at
    every bar (``self.data.Close[-slow:]``, numpy means): the strategy written the obvious
    way, as tradeloop's obvious-style rows of ``speed_table.py`` are.
    """
    os.environ.setdefault("TQDM_DISABLE", "1")  # no progress bar on stderr
    started = time.perf_counter()
    import backtesting
    import backtesting.lib as bt_lib
    from backtesting import Backtest, Strategy

    import_s = time.perf_counter() - started

    started = time.perf_counter()
    frame = pd.DataFrame(
        {
            "Open": bars.open,
            "High": bars.high,
            "Low": bars.low,
            "Close": bars.close,
            "Volume": bars.volume,
        },
        index=bars.index(),
    )
    prep_s = time.perf_counter() - started

    # backtesting.py trades whole units: trade units of 2**e of the asset, small enough that
    # the lowest equity of the run still buys millions of them.
    unit = 2.0 ** min(0, rules.unit_exponent())
    eps = rules.tie_eps * unit  # the strategy sees prices in units of `unit`
    fast, slow = rules.fast, rules.slow

    def sma(values: Any, n: int) -> np.ndarray:
        return pd.Series(values).rolling(n).mean().to_numpy()

    class ObviousSmaCross(Strategy):  # type: ignore[misc]
        def init(self) -> None:
            self.last_sign = 0

        def next(self) -> None:
            closes = self.data.Close[-slow:]
            if len(closes) < slow:
                return
            previous = self.last_sign
            sign = self.last_sign = _sign(closes[-fast:].mean() - closes.mean(), eps, previous)
            if previous < 0 < sign:
                if not self.position:
                    self.buy(size=_SPEND)
            elif sign < 0 < previous and self.position:
                self.position.close()

    class SmaCross(Strategy):  # type: ignore[misc]
        def init(self) -> None:
            self.fast_ma = self.I(sma, self.data.Close, fast)
            self.slow_ma = self.I(sma, self.data.Close, slow)
            self.last_sign: int | None = None

        def next(self) -> None:
            if self.last_sign is None:  # first call: the sign of the bar before
                self.last_sign = _sign(self.fast_ma[-2] - self.slow_ma[-2], eps, 0)
            previous = self.last_sign
            sign = self.last_sign = _sign(self.fast_ma[-1] - self.slow_ma[-1], eps, previous)
            if previous < 0 < sign:
                if not self.position:
                    self.buy(size=_SPEND)
            elif sign < 0 < previous and self.position:
                self.position.close()

    kwargs: dict[str, Any] = {
        "cash": rules.cash,
        "commission": rules.fee,
        "trade_on_close": False,
        "exclusive_orders": False,
    }
    chosen = ObviousSmaCross if obvious else SmaCross
    fractional = hasattr(bt_lib, "FractionalBacktest")
    notes: list[str] = []
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if fractional:
                runner = bt_lib.FractionalBacktest(
                    frame, chosen, fractional_unit=unit, finalize_trades=False, **kwargs
                )
            else:
                runner = Backtest(_scaled(frame, unit), chosen, finalize_trades=False, **kwargs)
        except TypeError:  # versions before finalize_trades
            if fractional:
                runner = bt_lib.FractionalBacktest(frame, chosen, fractional_unit=unit, **kwargs)
            else:
                runner = Backtest(_scaled(frame, unit), chosen, **kwargs)
        stats = runner.run()
    run_s = time.perf_counter() - started

    closed = stats["_trades"]
    trades: list[Trade] = list(
        zip(
            _bar_times(bars, closed["EntryBar"].to_numpy()),
            _bar_times(bars, closed["ExitBar"].to_numpy()),
            strict=True,
        )
    )
    try:  # still-open trades are left out of stats with finalize_trades=False
        still_open = list(stats["_strategy"].trades)
    except (AttributeError, KeyError, TypeError):
        still_open = []
        notes.append("open trades not reported")
    trades.extend((int(bars.ts[t.entry_bar]), None) for t in still_open)
    how = "FractionalBacktest" if fractional else "prices scaled"
    notes.append(f"{how}, unit 2^{round(math.log2(unit))}")
    return PeerRun(
        "backtesting",
        "backtesting.py",
        backtesting.__version__,
        len(bars),
        import_s,
        prep_s,
        run_s,
        trades,
        notes,
    )


def _scaled(frame: pd.DataFrame, unit: float) -> pd.DataFrame:
    out = frame.copy()
    out[["Open", "High", "Low", "Close"]] *= unit
    out["Volume"] /= unit
    return out


# --------------------------------------------------------------------------- backtrader


def run_backtrader(bars: Bars, rules: Rules) -> PeerRun:
    """Run the rules in backtrader (``cerebro.run(stdstats=False)``, preloaded, runonce).

    Cheat-on-open lets ``next_open`` act on the previous bar's cross at this bar's open with
    the open known, so a custom sizer spends all the cash exactly as ``cash / (open * (1 +
    fee))`` and the order fills at that open: the same next-open fill as the other engines.
    """
    started = time.perf_counter()
    import backtrader as bt

    import_s = time.perf_counter() - started

    started = time.perf_counter()
    frame = pd.DataFrame(
        {
            "open": bars.open,
            "high": bars.high,
            "low": bars.low,
            "close": bars.close,
            "volume": bars.volume,
        },
        index=bars.index(),
    )
    prep_s = time.perf_counter() - started

    eps, fee = rules.tie_eps, rules.fee

    class FractionalAllIn(bt.Sizer):  # type: ignore[misc]
        """Spend all cash on a fractional quantity at the current (cheat-on-open) open."""

        def _getsizing(self, comminfo: Any, cash: float, data: Any, isbuy: bool) -> float:
            if not isbuy:
                return float(self.broker.getposition(data).size)
            return cash * _SPEND / (data.open[0] * (1 + fee))

    class SmaCross(bt.Strategy):  # type: ignore[misc]
        params = (("fast", rules.fast), ("slow", rules.slow))

        def __init__(self) -> None:
            self.fast_ma = bt.indicators.SMA(self.data.close, period=self.p.fast)
            self.slow_ma = bt.indicators.SMA(self.data.close, period=self.p.slow)
            self.last_sign = 0
            self.closed: list[tuple[float, float]] = []
            self.open_dt: float | None = None

        def next_open(self) -> None:
            # The data have moved to the new bar but the indicators have not yet: [0] is the
            # bar that just completed, and orders fill at the new bar's open.
            previous = self.last_sign
            sign = self.last_sign = _sign(self.fast_ma[0] - self.slow_ma[0], eps, previous)
            if previous < 0 < sign:
                if not self.position:
                    self.buy()
            elif sign < 0 < previous and self.position:
                self.close()

        def notify_trade(self, trade: Any) -> None:
            if trade.justopened:
                self.open_dt = trade.dtopen
            elif trade.isclosed:
                self.closed.append((trade.dtopen, trade.dtclose))
                self.open_dt = None

    started = time.perf_counter()
    cerebro = bt.Cerebro(cheat_on_open=True)
    cerebro.adddata(bt.feeds.PandasData(dataname=frame))
    cerebro.addstrategy(SmaCross)
    cerebro.addsizer(FractionalAllIn)
    cerebro.broker.setcash(rules.cash)
    cerebro.broker.setcommission(commission=rules.fee)
    strategy = cerebro.run(stdstats=False)[0]
    run_s = time.perf_counter() - started

    def ns(num: float) -> int:
        # backtrader keeps times as float days; snap back to the second.
        stamp = np.datetime64(bt.num2date(num), "ns").astype(np.int64)
        return round(int(stamp) / 1e9) * 1_000_000_000

    trades: list[Trade] = [(ns(a), ns(b)) for a, b in strategy.closed]
    if strategy.open_dt is not None:
        trades.append((ns(strategy.open_dt), None))
    return PeerRun(
        "backtrader",
        "backtrader",
        bt.__version__,
        len(bars),
        import_s,
        prep_s,
        run_s,
        trades,
        ["cheat-on-open sizing"],
    )


# --------------------------------------------------------------------------- vectorbt


def run_vectorbt(bars: Bars, rules: Rules) -> PeerRun:
    """Run the rules in vectorbt: ``vbt.MA.run`` crosses, signals shifted one bar, ``price=open``.

    The timed part is the whole pipeline (moving averages, crosses, ``from_signals`` and the
    trade records). Numba compilation is done once on a small slice first and reported apart.
    """
    started = time.perf_counter()
    import vectorbt as vbt

    import_s = time.perf_counter() - started
    # vectorbt treats quantities and cash below 1e-12 as zero, so scale the cash up by a power of
    # two (exact; all-in percentage-fee trading is scale-invariant) until the smallest position
    # stays well above that.
    cash_bits = max(0, -40 - rules.unit_exponent())
    init_cash = rules.cash * 2.0**cash_bits

    def pipeline(sub: Bars) -> tuple[Any, float]:
        t0 = time.perf_counter()
        index = sub.index()
        close = pd.Series(sub.close, index=index)
        open_ = pd.Series(sub.open, index=index)
        prep = time.perf_counter() - t0
        fast = vbt.MA.run(close, rules.fast).ma
        slow = vbt.MA.run(close, rules.slow).ma
        diff = fast - slow
        diff = diff.mask(diff.abs() < rules.tie_eps, 0.0)  # NaN stays NaN
        entries = diff.vbt.crossed_above(0)
        exits = diff.vbt.crossed_below(0)
        portfolio = vbt.Portfolio.from_signals(
            close,
            entries=entries.shift(1, fill_value=False),  # act on the next bar ...
            exits=exits.shift(1, fill_value=False),
            price=open_,  # ... at its open
            fees=rules.fee,
            size=np.inf,
            init_cash=init_cash,
            direction="longonly",
            freq="1min",
        )
        records = portfolio.exit_trades.records_arr
        return records, prep

    started = time.perf_counter()
    pipeline(bars.head(min(len(bars), 2_000)))
    warmup_s = time.perf_counter() - started

    started = time.perf_counter()
    records, prep_s = pipeline(bars)
    run_s = time.perf_counter() - started - prep_s

    entry = _bar_times(bars, records["entry_idx"])
    exit_ = _bar_times(bars, records["exit_idx"])
    closed = (records["status"] == 1).tolist()
    trades: list[Trade] = [
        (a, b if is_closed else None) for a, b, is_closed in zip(entry, exit_, closed, strict=True)
    ]
    return PeerRun(
        "vectorbt",
        "vectorbt",
        vbt.__version__,
        len(bars),
        import_s,
        prep_s,
        run_s,
        trades,
        [f"JIT warm-up {warmup_s:.1f} s excluded"]
        + ([f"cash scaled by 2^{cash_bits}"] if cash_bits else []),
    )


#: Peer name (as given to ``--peers``) -> (module to import, runner).
PEERS: dict[str, tuple[str, Callable[[Bars, Rules], PeerRun]]] = {
    "backtrader": ("backtrader", run_backtrader),
    "backtesting": ("backtesting", run_backtesting),
    "vectorbt": ("vectorbt", run_vectorbt),
}
