"""Parity report: replay a paper run's recorded bars through the backtest engine and diff.

The paper session stores every bar it saw (warm-up history and live bars), its orders and its
trades. :func:`parity_report` runs the same strategy and parameters through
:class:`~tradeloop.engine.kernel.BacktestEngine` on those bars, with the strategy first called
on the first live bar, and compares every order (time, side, size, type, exits) and every trade
(entry and exit time and price, size, exit reason). A clean run has zero differences. A run
with a model replays with the model name and version it stored (its ML enrichment).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tradeloop.core.bar import BarArrays
from tradeloop.core.errors import ConfigError
from tradeloop.core.orders import Order
from tradeloop.core.position import Trade
from tradeloop.engine.kernel import BacktestEngine
from tradeloop.engine.market import MarketData
from tradeloop.engine.paper import enrichment_of, instrument_from_dict, stored_run_config
from tradeloop.execution.venue import is_broker_order
from tradeloop.store.state import StateStore
from tradeloop.strategy.registry import load_strategy_class

__all__ = ["Difference", "ParityReport", "parity_report", "trade_key"]

_ORDER_FIELDS = (
    "id",
    "ts_created",
    "symbol",
    "side",
    "type",
    "quantity",
    "equity_fraction",
    "reduce_only",
    "tag",
    "exits",
    "position_id",
)
_TRADE_FIELDS = (
    "id",
    "symbol",
    "direction",
    "quantity",
    "entry_ts",
    "entry_price",
    "exit_ts",
    "exit_price",
    "exit_reason",
    "stop_loss",
    "take_profit",
)


def trade_key(trade: Trade) -> tuple[Any, ...]:
    """The fields of ``trade`` the parity report compares, as a tuple (equal tuples: same trade)."""
    return tuple(getattr(trade, name) for name in _TRADE_FIELDS)


@dataclass(frozen=True, slots=True)
class Difference:
    """One field that differs between the paper run and the backtest replay."""

    kind: str  # "order" or "trade"
    index: int
    field: str
    paper: Any
    backtest: Any


@dataclass(slots=True)
class ParityReport:
    """Orders and trades compared and every difference found."""

    run_id: str
    bars: int
    live_bars: int
    orders: int
    trades: int
    differences: list[Difference] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """True when paper and backtest agree on every order and trade."""
        return not self.differences


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return bool(a == b)


def _diff(
    kind: str, paper: Sequence[Any], backtest: Sequence[Any], fields: Sequence[str]
) -> list[Difference]:
    out: list[Difference] = []
    for i in range(max(len(paper), len(backtest))):
        if i >= len(paper) or i >= len(backtest):
            p = paper[i] if i < len(paper) else None
            b = backtest[i] if i < len(backtest) else None
            out.append(Difference(kind, i, "missing", p, b))
            continue
        for name in fields:
            pv, bv = getattr(paper[i], name), getattr(backtest[i], name)
            if not _same(pv, bv):
                out.append(Difference(kind, i, name, pv, bv))
    return out


def _bars(
    rows: list[tuple[int, float, float, float, float, float, bool]], symbol: str, tf: str
) -> BarArrays:
    arr = np.array([r[:6] for r in rows], dtype=np.float64).reshape(-1, 6)
    ts = np.array([r[0] for r in rows], dtype=np.int64)
    return BarArrays(symbol, tf, ts, arr[:, 1], arr[:, 2], arr[:, 3], arr[:, 4], arr[:, 5])


def parity_report(
    store: StateStore,
    run_id: str,
    *,
    strategies_dir: str | None = "strategies",
    registry: str | Path | None = None,
) -> ParityReport:
    """Replay ``run_id`` from ``store`` through the backtest engine and compare.

    A run with a model replays with it, loaded from ``registry`` (default: the model folder
    stored with the run).

    Raises
    ------
    ConfigError
        When the store holds no such run, the run has no live bar yet, or its model is gone.
    """
    meta = store.load_run_meta(run_id)
    if meta is None:
        known = ", ".join(store.run_ids()) or "none"
        raise ConfigError(f"no run {run_id!r} in the state store (runs: {known})")
    symbols: list[str] = list(meta["symbols"])
    tf: str = meta["timeframe"]
    sources: dict[str, BarArrays] = {}
    first_live: int | None = None
    total = live = 0
    for symbol in symbols:
        rows = store.load_bars(run_id, symbol, tf)
        if not rows:
            raise ConfigError(f"run {run_id!r} has no stored {tf} bars of {symbol}")
        sources[symbol] = _bars(rows, symbol, tf)
        total += len(rows)
        live_ts = [r[0] for r in rows if r[6]]
        live += len(live_ts)
        if live_ts:
            first_live = live_ts[0] if first_live is None else min(first_live, live_ts[0])
    if first_live is None:
        raise ConfigError(f"run {run_id!r} has not processed a live bar yet")
    ref = meta.get("strategy_class") or meta["strategy"]
    try:
        cls = load_strategy_class(ref, strategies_dir)
    except ConfigError:
        cls = load_strategy_class(meta["strategy"], strategies_dir)
    strategy = cls(**meta["params"])
    instruments = {s: instrument_from_dict(d) for s, d in meta["instruments"].items()}
    config = stored_run_config(meta, trade_start=first_live)
    declared = tuple(strategy.timeframes)
    extra = tuple(t for t in declared if t != tf)
    market = MarketData(sources, {s: instruments[s] for s in symbols}, tf, extra)
    engine = BacktestEngine(strategy, market, config, enrichment=enrichment_of(meta, registry))
    result = engine.run()
    # (a live run's journal also holds the venue broker's own orders: resting stops and
    # targets, exits of watched levels; a backtest's exits are fills without orders)
    paper_orders: list[Order] = [
        s.order for s in store.load_orders(run_id) if not is_broker_order(s.order)
    ]
    paper_trades = _trade_list(store.load_trades(run_id))
    backtest_trades = _trade_list(result.trades)
    report = ParityReport(run_id, total, live, len(paper_orders), len(paper_trades))
    report.differences += _diff("order", paper_orders, engine.orders, _ORDER_FIELDS)
    report.differences += _diff("trade", paper_trades, backtest_trades, _TRADE_FIELDS)
    return report


def _trade_list(trades: Sequence[Trade]) -> list[Trade]:
    """Trades by entry time then id (open trades included, without their marks)."""
    return sorted(trades, key=lambda t: (t.entry_ts, t.id))
