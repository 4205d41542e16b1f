"""Order flow on candles: funding rate and open interest as-of joined, and CVD.

* **As-of join with tolerance.** Each bar gets the latest event stamped at or before its open
  time plus a tolerance (default 1 s): real funding stamps drift by milliseconds
  (``16:00:00.003``), and an exact join would drop them. An event older than ``max_age``
  (default: twice the median event spacing) leaves the bar empty (NaN) instead of carrying a
  stale value across a hole in the history.
* **CVD** (cumulative volume delta). Where cached public trades with an aggressor side cover
  the whole bar, the bar's delta is taker-buy volume minus taker-sell volume
  (method ``trades``); elsewhere it is approximated as ``volume * sign(close - open)``
  (method ``bar_sign``). ``cvd`` is the running total from the first bar. The method is
  recorded per bar in the ``cvd_method`` column and for the whole series in the Parquet
  metadata ``tradeloop.cvd_method`` (``trades``, ``bar_sign`` or ``mixed``).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from tradeloop.data.coverage import Interval, merge

__all__ = [
    "CVD_BAR_SIGN",
    "CVD_TRADES",
    "DERIVED_COLUMNS",
    "asof_align",
    "cvd_from_bars",
    "derive_orderflow",
    "trade_volume_delta",
]

CVD_TRADES = "trades"
CVD_BAR_SIGN = "bar_sign"
DERIVED_COLUMNS = ("open_interest", "funding_rate", "volume_delta", "cvd", "cvd_method")
DEFAULT_TOLERANCE_NS = 1_000_000_000


def asof_align(
    bar_ts: np.ndarray,
    event_ts: np.ndarray,
    values: np.ndarray,
    *,
    tolerance_ns: int = DEFAULT_TOLERANCE_NS,
    max_age_ns: int | None = None,
) -> np.ndarray:
    """Return, for each bar, the value of the latest event at or before ``bar + tolerance``.

    Parameters
    ----------
    bar_ts
        Bar open times, UTC ns, sorted.
    event_ts
        Event times, UTC ns, sorted (jitter allowed).
    values
        Event values.
    tolerance_ns
        How far after a bar's open an event may be stamped and still count for that bar.
    max_age_ns
        Bars whose latest event is older than this get NaN. None: twice the median event
        spacing (no limit with fewer than two events).

    Examples
    --------
    >>> h = 3_600_000_000_000
    >>> ev = np.array([0, 8 * h + 3_000_000])         # the second stamp is 3 ms late
    >>> asof_align(np.array([0, h, 8 * h, 9 * h]), ev, np.array([0.1, 0.2])).tolist()
    [0.1, 0.1, 0.2, 0.2]
    """
    bar_ts = np.asarray(bar_ts, dtype=np.int64)
    event_ts = np.asarray(event_ts, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    out = np.full(bar_ts.shape[0], np.nan)
    if event_ts.size == 0 or bar_ts.size == 0:
        return out
    if max_age_ns is None and event_ts.size >= 2:
        max_age_ns = 2 * int(np.median(np.diff(event_ts))) + tolerance_ns
    idx = np.searchsorted(event_ts, bar_ts + tolerance_ns, side="right") - 1
    ok = idx >= 0
    safe = np.where(ok, idx, 0)
    if max_age_ns is not None:
        ok &= bar_ts - event_ts[safe] <= max_age_ns
    out[ok] = values[safe[ok]]
    return out


def cvd_from_bars(
    open_: np.ndarray, close: np.ndarray, volume: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(delta, cvd)`` approximated from bars: ``delta = volume * sign(close - open)``.

    >>> d, c = cvd_from_bars(np.array([1.0, 2.0, 2.0]), np.array([2.0, 1.0, 2.0]),
    ...                      np.array([5.0, 3.0, 4.0]))
    >>> d.tolist(), c.tolist()
    ([5.0, -3.0, 0.0], [5.0, 2.0, 2.0])
    """
    delta = np.asarray(volume, dtype=np.float64) * np.sign(
        np.asarray(close, dtype=np.float64) - np.asarray(open_, dtype=np.float64)
    )
    return delta, np.cumsum(delta)


def trade_volume_delta(
    bar_ts: np.ndarray,
    step_ns: int,
    trade_ts: np.ndarray,
    amount: np.ndarray,
    side: np.ndarray,
    coverage: list[Interval],
) -> tuple[np.ndarray, np.ndarray]:
    """Return per-bar taker volume delta from trades and a mask of bars the trades fully cover.

    A bar counts as covered when ``[open, open + step)`` lies inside one coverage interval and
    every trade in it has a side (``buy`` or ``sell``).

    Parameters
    ----------
    bar_ts
        Bar open times, sorted.
    step_ns
        Bar duration.
    trade_ts, amount, side
        Trades (time, base amount, taker side ``buy``/``sell``/None).
    coverage
        Intervals the trade history covers completely.

    >>> m = 60
    >>> d, ok = trade_volume_delta(np.array([0, m]), m, np.array([1, 2, 61]),
    ...     np.array([2.0, 1.0, 4.0]), np.array(["buy", "sell", "sell"], dtype=object),
    ...     [(0, 2 * m)])
    >>> d.tolist(), ok.tolist()
    ([1.0, -4.0], [True, True])
    """
    bar_ts = np.asarray(bar_ts, dtype=np.int64)
    n = bar_ts.shape[0]
    delta = np.zeros(n, dtype=np.float64)
    covered = np.zeros(n, dtype=bool)
    if n == 0:
        return delta, covered
    for start, end in merge(coverage):
        covered |= (bar_ts >= start) & (bar_ts + step_ns <= end)
    trade_ts = np.asarray(trade_ts, dtype=np.int64)
    if trade_ts.size == 0:
        return delta, covered
    bar_idx = np.searchsorted(bar_ts, trade_ts, side="right") - 1
    inside = (bar_idx >= 0) & (trade_ts < bar_ts[np.clip(bar_idx, 0, None)] + step_ns)
    side_arr = np.asarray(side, dtype=object)
    sign = np.where(side_arr == "buy", 1.0, np.where(side_arr == "sell", -1.0, np.nan))
    signed = np.asarray(amount, dtype=np.float64) * sign
    unknown = inside & np.isnan(signed)
    if unknown.any():
        covered[np.unique(bar_idx[unknown])] = False
    use = inside & ~np.isnan(signed)
    np.add.at(delta, bar_idx[use], signed[use])
    return delta, covered


def derive_orderflow(
    candles: pa.Table,
    step_ns: int,
    *,
    funding: pa.Table | None = None,
    open_interest: pa.Table | None = None,
    trades: pa.Table | None = None,
    trades_coverage: list[Interval] | None = None,
    tolerance_ns: int = DEFAULT_TOLERANCE_NS,
) -> pa.Table:
    """Return ``candles`` with the derived order-flow columns recomputed.

    Adds ``volume_delta``, ``cvd`` and ``cvd_method`` always; ``funding_rate`` when
    ``funding`` is given and ``open_interest`` when ``open_interest`` is given (both as-of
    joined with ``tolerance_ns``). Sets the ``tradeloop.cvd_method`` schema metadata.
    """
    from tradeloop.data.cache import timestamps_ns

    table = candles.drop_columns([c for c in DERIVED_COLUMNS if c in candles.column_names])
    ts = timestamps_ns(table)
    open_ = table.column("open").to_numpy()
    close = table.column("close").to_numpy()
    volume = table.column("volume").to_numpy()
    delta, _ = cvd_from_bars(open_, close, volume)
    from_trades = np.zeros(ts.shape[0], dtype=bool)
    if trades is not None and trades.num_rows:
        t_delta, from_trades = trade_volume_delta(
            ts,
            step_ns,
            timestamps_ns(trades),
            trades.column("amount").to_numpy(),
            np.asarray(trades.column("side").to_numpy(zero_copy_only=False), dtype=object),
            trades_coverage or [],
        )
        delta = np.where(from_trades, t_delta, delta)
    method = np.where(from_trades, CVD_TRADES, CVD_BAR_SIGN)
    for name, events in (("funding_rate", funding), ("open_interest", open_interest)):
        if events is not None and events.num_rows:
            values = asof_align(
                ts,
                timestamps_ns(events),
                events.column(name).to_numpy(),
                tolerance_ns=tolerance_ns,
            )
            table = table.append_column(name, pa.array(values))
    table = table.append_column("volume_delta", pa.array(delta))
    table = table.append_column("cvd", pa.array(np.cumsum(delta)))
    table = table.append_column(
        "cvd_method", pa.array(method.tolist(), pa.string()).dictionary_encode()
    )
    if from_trades.all() and from_trades.size:
        summary = CVD_TRADES
    elif from_trades.any():
        summary = "mixed"
    else:
        summary = CVD_BAR_SIGN
    meta = dict(table.schema.metadata or {})
    meta[b"tradeloop.cvd_method"] = summary.encode()
    return table.replace_schema_metadata(meta)
