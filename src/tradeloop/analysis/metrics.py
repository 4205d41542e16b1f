"""Performance metrics of a run: returns, risk-adjusted ratios, drawdown and trade statistics.

Conventions (stated because peers differ):

* Returns are simple returns of the equity curve sampled at every bar, the first one measured
  from the starting equity.
* Annualization uses a number of periods per year inferred from the data
  (:func:`infer_annualization`): a market that trades every day (crypto) has 365 days of
  bars per year (525,600 for 1m bars, 8,760 for 1h, 365 for 1d, 52.14 for 1w); data with
  (nearly) empty weekends is exchange-session data: 252 sessions per year times the bars of
  a session (252 for daily SPY, 252 x 390 for US-equity minutes); a market calendar (``--calendar``)
  gives its own sessions per year; ``--periods-per-year`` overrides all of them. The factor
  and its basis are reported with the metrics. Volatility = std (ddof=1) * sqrt(periods);
  Sharpe = mean / std (ddof=1) * sqrt(periods) with a zero risk-free rate.
* Sortino uses the downside deviation sqrt(mean(min(r, 0)**2)) over all periods.
* CAGR = (final / initial) ** (1 / years) - 1 with years = (last bar open + one bar - first bar
  open) / 365.25 days; Calmar = CAGR / |max drawdown|.
* Max drawdown is measured from the running peak, starting at the initial equity. Its dates are
  bar open times (as in ``equity.csv``): ``start`` is the last bar at the peak before the
  trough (the first bar when the peak is the starting equity), ``recovery`` the first bar back
  at the peak (None while under water); the duration runs from start to recovery, or to the
  last bar when not recovered.
* Trade statistics use closed trades in exit order; profit factor = gross profit / gross loss
  (``inf`` with no losing trade, ``nan`` with no trade at all); payoff ratio = average win /
  average loss (``inf`` without losses); a break-even trade is neither a win nor a loss and ends
  both streaks. Turnover = traded notional (entries and exits) / average equity, over the run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from tradeloop.analysis.trades import TradeColumns, trade_columns
from tradeloop.core.position import Trade

__all__ = [
    "Annualization",
    "MonthRow",
    "PerformanceMetrics",
    "SymbolRow",
    "compute_metrics",
    "drawdown_curve",
    "given_annualization",
    "infer_annualization",
    "month_breakdown",
    "monthly_returns",
    "periods_per_year",
    "symbol_breakdown",
]

_YEAR_NS = int(365.25 * 86_400 * 1e9)
_DAY_NS = 86_400 * 10**9
#: Trading sessions per year of an exchange market without a calendar (the usual 252).
SESSIONS_PER_YEAR = 252.0
#: Days per year of a market that trades every day.
DAYS_PER_YEAR = 365.0


def periods_per_year(bar_ns: int) -> float:
    """Return the number of bars of length ``bar_ns`` in a 365-day year (a 24/7 market).

    >>> periods_per_year(86_400 * 10**9)
    365.0
    >>> periods_per_year(3_600 * 10**9)
    8760.0
    """
    return DAYS_PER_YEAR * _DAY_NS / bar_ns


@dataclass(frozen=True, slots=True)
class Annualization:
    """The periods per year used to annualize volatility and ratios, and why.

    ``basis`` is ``"24/7"`` (365 days), ``"sessions"`` (252 sessions a year, inferred from
    data without weekend bars), ``"calendar"`` (a market calendar's sessions) or ``"given"``.
    """

    periods_per_year: float
    basis: str
    detail: str

    def describe(self) -> str:
        """One line for summaries and reports."""
        return f"{self.periods_per_year:,.6g} periods/year ({self.detail})"


def given_annualization(periods: float | None, basis: str = "") -> Annualization | None:
    """A factor the run was given, as :func:`compute_metrics` takes it: ``basis`` says where
    it came from (a market calendar's sessions), else it is shown as given.

    >>> given_annualization(252.0 * 390, "XNYS sessions").describe()
    '98,280 periods/year (XNYS sessions)'
    >>> given_annualization(12.0).describe()
    '12 periods/year (given)'
    >>> given_annualization(None) is None
    True
    """
    if periods is None:
        return None
    if basis:
        return Annualization(float(periods), "calendar", basis)
    return Annualization(float(periods), "given", "given")


def infer_annualization(ts: np.ndarray, bar_ns: int) -> Annualization:
    """Infer the periods per year from bar times ``ts`` of bars ``bar_ns`` long.

    The bars of each weekday (UTC) are counted against the number of times that weekday
    occurs in the data's span. A market that trades every day fills every weekday alike: 365
    days of bars. Exchange-session data leaves two weekdays (nearly) empty, usually Saturday
    and Sunday; a few after-hours bars stamped early on Saturday (UTC) or bars of a market
    east of UTC stamped the day before do not make it 24/7: 252 sessions a year, times the
    median number of bars per trading day for intraday bars; weekly bars: 52 a year. A span
    without a weekend cannot show which it is: intraday bars covering less than three quarters
    of each day are session data, anything else is taken as 24/7.

    >>> day = 86_400 * 10**9
    >>> infer_annualization(np.arange(30) * day, day).periods_per_year
    365.0
    >>> weekdays = np.array([d for d in range(60) if (d + 3) % 7 < 5]) * day  # 1970-01-01: Thu
    >>> infer_annualization(weekdays, day).periods_per_year
    252.0
    """
    ts = np.asarray(ts, dtype=np.int64)
    every_day = Annualization(periods_per_year(bar_ns), "24/7", "365 days a year, bars every day")
    if ts.size < 2 or bar_ns > 7 * _DAY_NS:
        return every_day
    days = ts // _DAY_NS
    if bool(np.any(days[1:] < days[:-1])):  # stamps out of time order: sorted first
        days = np.sort(days)
    first, last = int(days[0]), int(days[-1])
    if bar_ns >= 7 * _DAY_NS:
        # one stamp a week says nothing about the days traded: a weekend stamp is 24/7's
        weekend = np.count_nonzero((days + 3) % 7 >= 5)
        if weekend:
            return every_day
        return Annualization(52.0, "sessions", "52 weeks a year, no weekend bars")
    # the days holding bars and their bar counts, from where the (ordered) day changes: a
    # pass over the stamps instead of a sort of them (a 1M-bar run's metrics paid ~15 ms)
    starts = np.flatnonzero(days[1:] != days[:-1]) + 1
    bounds = np.concatenate(([0], starts, [days.size]))
    per_day = np.diff(bounds)
    # per weekday (Monday 0; 1970-01-01 was a Thursday): its bars and its days in the span
    bars = np.bincount((days[bounds[:-1]] + 3) % 7, weights=per_day, minlength=7)
    span = last - first + 1
    occurs = np.full(7, span // 7)
    occurs[(first + 3 + np.arange(span % 7)) % 7] += 1
    coverage = np.where(occurs > 0, bars / np.maximum(occurs, 1), np.nan)
    bars_per_day = float(np.median(per_day))
    if occurs[5] == 0 and occurs[6] == 0:
        # no weekend in the span: only a short trading day tells session data apart
        if bar_ns >= _DAY_NS or bars_per_day * bar_ns >= 0.75 * _DAY_NS:
            return Annualization(
                every_day.periods_per_year, "24/7", "365 days a year (no weekend in the data)"
            )
    else:
        present = np.sort(coverage[occurs > 0])
        typical = float(np.median(present))
        if present.size == 7:
            sessions = float(present[1]) < 0.5 * typical  # two (nearly) empty weekdays
        else:  # a span shorter than a week: its weekend days (nearly) empty
            weekend_cov = coverage[5:][occurs[5:] > 0]
            sessions = bool(np.all(weekend_cov < 0.5 * typical))
        if not sessions:
            return every_day
    if bar_ns >= _DAY_NS:
        periods = SESSIONS_PER_YEAR * _DAY_NS / bar_ns
        return Annualization(periods, "sessions", "252 sessions a year, no weekend bars")
    return Annualization(
        SESSIONS_PER_YEAR * bars_per_day,
        "sessions",
        f"252 sessions a year x {bars_per_day:g} bars a session, no weekend bars",
    )


@dataclass(frozen=True, slots=True)
class PerformanceMetrics:
    """Headline metrics of a run (fractions, not percent; times in UTC ns)."""

    initial_equity: float
    final_equity: float
    total_return: float
    cagr: float
    volatility: float
    sharpe: float
    sortino: float
    max_drawdown: float
    win_rate: float
    profit_factor: float
    expectancy: float
    exposure: float
    trade_count: int
    avg_holding_hours: float
    fees_paid: float
    calmar: float = 0.0
    max_drawdown_start: int | None = None
    max_drawdown_trough: int | None = None
    max_drawdown_recovery: int | None = None
    max_drawdown_duration_days: float = 0.0
    payoff_ratio: float = math.nan
    avg_trade_pnl: float = math.nan
    median_trade_pnl: float = math.nan
    avg_trade_return: float = math.nan
    median_trade_return: float = math.nan
    longest_win_streak: int = 0
    longest_loss_streak: int = 0
    turnover: float = 0.0
    periods_per_year: float = 0.0
    annualization: str = ""

    def as_dict(self) -> dict[str, Any]:
        """Return the metrics as a plain dict."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class SymbolRow:
    """Closed-trade statistics of one symbol (``open_trades`` counts the ones still open)."""

    symbol: str
    trades: int
    open_trades: int
    win_rate: float
    pnl: float
    profit_factor: float
    expectancy: float
    avg_return: float
    fees: float


@dataclass(frozen=True, slots=True)
class MonthRow:
    """One calendar month (UTC): equity return and the trades that closed in it."""

    month: str
    ret: float
    trades: int
    pnl: float
    win_rate: float


# --------------------------------------------------------------------------- equity helpers


def _with_initial(equity: np.ndarray, initial: float) -> np.ndarray:
    return np.concatenate(([initial], np.asarray(equity, dtype=np.float64)))


def drawdown_curve(equity: np.ndarray, initial_equity: float | None = None) -> np.ndarray:
    """Return the drawdown at every bar as a fraction of the running peak (<= 0).

    The running peak starts at ``initial_equity`` when given.

    >>> drawdown_curve(np.array([110.0, 99.0, 120.0]), 100.0).round(3).tolist()
    [0.0, -0.1, 0.0]
    """
    eq = np.asarray(equity, dtype=np.float64)
    peaks = np.maximum.accumulate(eq)
    if initial_equity is not None:
        peaks = np.maximum(peaks, initial_equity)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(peaks > 0, eq / peaks - 1.0, 0.0)


def _drawdown_stats(
    series: np.ndarray, ts: np.ndarray
) -> tuple[float, int | None, int | None, int | None, float]:
    """Max drawdown of ``series`` (initial equity first) with start/trough/recovery times."""
    if series.size < 2 or not len(ts):
        return 0.0, None, None, None, 0.0
    peaks = np.maximum.accumulate(series)
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(peaks > 0, series / peaks - 1.0, 0.0)
    trough = int(np.argmin(dd))
    depth = float(dd[trough])
    if not depth < 0:
        return 0.0, None, None, None, 0.0

    def time_of(i: int) -> int:  # series index 0 is the starting equity
        return int(ts[max(i - 1, 0)])

    peak_value = peaks[trough]
    start = trough - int(np.argmax(series[trough::-1] == peak_value))
    after = np.flatnonzero(series[trough + 1 :] >= peak_value)
    recovery = trough + 1 + int(after[0]) if after.size else None
    end = time_of(recovery) if recovery is not None else int(ts[-1])
    duration = (end - time_of(start)) / _DAY_NS
    return (
        depth,
        time_of(start),
        time_of(trough),
        None if recovery is None else time_of(recovery),
        duration,
    )


def _longest_run(flags: np.ndarray) -> int:
    """Length of the longest run of True in ``flags``."""
    if not flags.any():
        return 0
    padded = np.concatenate(([False], flags, [False])).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return int((edges[1::2] - edges[0::2]).max())


def _profit_factor(pnls: np.ndarray) -> float:
    if not pnls.size:
        return math.nan
    gross_loss = -float(pnls[pnls < 0].sum())
    gross_win = float(pnls[pnls > 0].sum())
    return gross_win / gross_loss if gross_loss > 0 else math.inf


def compute_metrics(
    equity: np.ndarray,
    ts: np.ndarray,
    trades: Sequence[Trade] | TradeColumns,
    bar_ns: int,
    *,
    initial_equity: float | None = None,
    exposure_mask: np.ndarray | None = None,
    periods: float | Annualization | None = None,
) -> PerformanceMetrics:
    """Compute :class:`PerformanceMetrics` from an equity curve and the run's trades.

    Parameters
    ----------
    equity
        Equity marked at every bar close.
    ts
        Bar open times (int64 ns), same length as ``equity``.
    trades
        All trades (or their :class:`TradeColumns`); only closed ones count in trade
        statistics, fees and turnover count every trade.
    bar_ns
        Bar length in ns, for annualization.
    initial_equity
        Starting equity (defaults to the first equity value).
    exposure_mask
        Boolean per bar: a position was open at the close.
    periods
        Periods per year for annualization (a number, or an :class:`Annualization` with its
        basis); None infers it from ``ts`` (:func:`infer_annualization`).

    Returns
    -------
    PerformanceMetrics
        Edge cases: with no closed trade the trade statistics are NaN (streaks 0); with fewer
        than two returns or a flat curve the ratios are 0; a curve that ends at or below zero
        has CAGR -1.
    """
    equity = np.asarray(equity, dtype=np.float64)
    ts = np.asarray(ts, dtype=np.int64)
    initial = float(
        initial_equity if initial_equity is not None else (equity[0] if equity.size else 0.0)
    )
    final = float(equity[-1]) if equity.size else initial
    total_return = final / initial - 1.0 if initial else 0.0
    series = _with_initial(equity, initial)
    with np.errstate(divide="ignore", invalid="ignore"):
        rets = np.diff(series) / series[:-1]
    rets = rets[np.isfinite(rets)]
    if periods is None:
        annual = infer_annualization(ts, bar_ns)
    elif isinstance(periods, Annualization):
        annual = periods
    else:
        annual = Annualization(float(periods), "given", "given")
    ppy = annual.periods_per_year
    if rets.size > 1:
        std = float(np.std(rets, ddof=1))
        mean = float(np.mean(rets))
        volatility = std * math.sqrt(ppy)
        sharpe = mean / std * math.sqrt(ppy) if std > 0 else 0.0
        downside = float(np.sqrt(np.mean(np.minimum(rets, 0.0) ** 2)))
        sortino = (
            mean / downside * math.sqrt(ppy) if downside > 0 else (math.inf if mean > 0 else 0.0)
        )
    else:
        volatility = sharpe = sortino = 0.0
    years = (int(ts[-1]) + bar_ns - int(ts[0])) / _YEAR_NS if len(ts) else 0.0
    if years > 0 and initial > 0 and final > 0:
        try:
            cagr = (final / initial) ** (1.0 / years) - 1.0
        except OverflowError:  # a gain over minutes (a young live run) annualizes past floats
            cagr = math.inf
    else:
        cagr = -1.0 if final <= 0 < initial else 0.0
    max_dd, dd_start, dd_trough, dd_recovery, dd_days = _drawdown_stats(series, ts)
    calmar = cagr / -max_dd if max_dd < 0 else (math.inf if cagr > 0 else 0.0)

    cols = trades if isinstance(trades, TradeColumns) else trade_columns(trades)
    closed = cols.select(np.flatnonzero(cols.closed))
    order = np.argsort(closed.exit_ts, kind="stable")
    pnls = closed.pnl[order]
    returns = closed.pnl_pct[order]
    wins = pnls[pnls > 0]
    losses = pnls[pnls < 0]
    if pnls.size:
        win_rate = wins.size / pnls.size
        profit_factor = _profit_factor(pnls)
        expectancy = float(pnls.mean())
        avg_hold = float(np.mean(closed.exit_ts - closed.entry_ts)) / 3.6e12
        avg_win = float(wins.mean()) if wins.size else 0.0
        avg_loss = -float(losses.mean()) if losses.size else 0.0
        payoff = avg_win / avg_loss if avg_loss > 0 else (math.inf if avg_win > 0 else 0.0)
        median_pnl = float(np.median(pnls))
        avg_ret = float(returns.mean())
        median_ret = float(np.median(returns))
    else:
        win_rate = profit_factor = expectancy = avg_hold = math.nan
        payoff = median_pnl = avg_ret = median_ret = math.nan
    exposure = (
        float(np.mean(exposure_mask)) if exposure_mask is not None and len(exposure_mask) else 0.0
    )
    traded = float(cols.notional.sum()) + float(
        np.sum(closed.quantity * np.nan_to_num(closed.exit_price))
    )
    mean_equity = float(np.mean(series)) if series.size else 0.0
    turnover = traded / mean_equity if mean_equity > 0 else 0.0
    return PerformanceMetrics(
        initial_equity=initial,
        final_equity=final,
        total_return=total_return,
        cagr=cagr,
        volatility=volatility,
        sharpe=sharpe,
        sortino=sortino,
        max_drawdown=max_dd,
        win_rate=win_rate,
        profit_factor=profit_factor,
        expectancy=expectancy,
        exposure=exposure,
        trade_count=int(pnls.size),
        avg_holding_hours=avg_hold,
        fees_paid=float(cols.fees.sum()),
        calmar=calmar,
        max_drawdown_start=dd_start,
        max_drawdown_trough=dd_trough,
        max_drawdown_recovery=dd_recovery,
        max_drawdown_duration_days=dd_days,
        payoff_ratio=payoff,
        avg_trade_pnl=expectancy,
        median_trade_pnl=median_pnl,
        avg_trade_return=avg_ret,
        median_trade_return=median_ret,
        longest_win_streak=_longest_run(pnls > 0),
        longest_loss_streak=_longest_run(pnls < 0),
        turnover=turnover,
        periods_per_year=ppy,
        annualization=annual.describe(),
    )


# --------------------------------------------------------------------------- breakdowns


def symbol_breakdown(trades: Sequence[Trade] | TradeColumns) -> list[SymbolRow]:
    """Return closed-trade statistics per symbol, in order of first appearance.

    >>> from tradeloop.core.position import ExitReason, Trade
    >>> t = Trade("a", "X", 1, 1.0, 0, 10.0, 5, 12.0, 0.0, 0.0, 2.0, ExitReason.SIGNAL)
    >>> symbol_breakdown([t])[0].pnl
    2.0
    """
    cols = trades if isinstance(trades, TradeColumns) else trade_columns(trades)
    rows: list[SymbolRow] = []
    if not len(cols):
        return rows
    names, first = np.unique(cols.symbols.astype(str), return_index=True)
    for name in names[np.argsort(first)]:
        mine = cols.select(cols.symbols == name)
        closed = mine.closed
        pnls = mine.pnl[closed]
        rows.append(
            SymbolRow(
                symbol=str(name),
                trades=int(pnls.size),
                open_trades=int((~closed).sum()),
                win_rate=float((pnls > 0).mean()) if pnls.size else math.nan,
                pnl=float(pnls.sum()),
                profit_factor=_profit_factor(pnls),
                expectancy=float(pnls.mean()) if pnls.size else math.nan,
                avg_return=float(mine.pnl_pct[closed].mean()) if pnls.size else math.nan,
                fees=float(mine.fees.sum()),
            )
        )
    return rows


def monthly_returns(
    ts: np.ndarray, equity: np.ndarray, initial_equity: float
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(months, returns)``: each UTC calendar month with bars and its equity return.

    ``months`` is ``datetime64[M]``; a month's return runs from the last equity of the
    previous month with bars (the initial equity for the first) to its own last equity.

    >>> ts = np.array(["2024-01-31", "2024-02-01"], dtype="datetime64[ns]").view(np.int64)
    >>> m, r = monthly_returns(ts, np.array([110.0, 121.0]), 100.0)
    >>> [str(x) for x in m], r.round(6).tolist()
    (['2024-01', '2024-02'], [0.1, 0.1])
    """
    ts = np.asarray(ts, dtype=np.int64)
    equity = np.asarray(equity, dtype=np.float64)
    if not ts.size:
        return np.array([], dtype="datetime64[M]"), np.array([], dtype=np.float64)
    first = ts[:1].view("datetime64[ns]").astype("datetime64[M]")[0]
    last = ts[-1:].view("datetime64[ns]").astype("datetime64[M]")[0]
    candidates = np.arange(first, last + 1, dtype="datetime64[M]")
    starts = candidates.astype("datetime64[ns]").view(np.int64)
    begin = np.searchsorted(ts, starts, side="left")
    stop = np.searchsorted(ts, np.append(starts[1:], np.iinfo(np.int64).max), side="left")
    has = stop > begin
    months = candidates[has]
    ends = equity[stop[has] - 1]
    before = np.concatenate(([initial_equity], ends[:-1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        rets = np.where(before != 0, ends / before - 1.0, 0.0)
    return months, rets


def month_breakdown(
    ts: np.ndarray,
    equity: np.ndarray,
    trades: Sequence[Trade] | TradeColumns,
    initial_equity: float,
) -> list[MonthRow]:
    """Return one :class:`MonthRow` per UTC month with bars (trades counted by exit time)."""
    months, rets = monthly_returns(ts, equity, initial_equity)
    cols = trades if isinstance(trades, TradeColumns) else trade_columns(trades)
    closed = cols.select(np.flatnonzero(cols.closed))
    exit_month = closed.exit_ts.view("datetime64[ns]").astype("datetime64[M]")
    rows = []
    for month, ret in zip(months, rets, strict=True):
        pnls = closed.pnl[exit_month == month]
        rows.append(
            MonthRow(
                month=str(month),
                ret=float(ret),
                trades=int(pnls.size),
                pnl=float(pnls.sum()),
                win_rate=float((pnls > 0).mean()) if pnls.size else math.nan,
            )
        )
    return rows
