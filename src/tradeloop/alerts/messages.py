"""The standard alerts the paper/live engine sends, built in one place."""

from __future__ import annotations

from collections.abc import Iterable

from tradeloop.alerts.base import Alert, AlertKind, FieldValue

__all__ = [
    "close_alert",
    "daily_summary_alert",
    "error_alert",
    "open_alert",
    "risk_alert",
    "shutdown_alert",
    "start_alert",
]


def start_alert(
    mode: str, strategy: str, symbols: Iterable[str], timeframe: str, balance: float
) -> Alert:
    """Return the ``start`` alert: the engine began trading.

    >>> start_alert("paper", "sma_cross", ["BTC/USDT"], "1h", 10_000.0).title
    'tradeloop started (paper): sma_cross'
    """
    return Alert(
        "start",
        f"tradeloop started ({mode}): {strategy}",
        fields={
            "mode": mode,
            "strategy": strategy,
            "symbols": ", ".join(symbols),
            "timeframe": timeframe,
            "balance": balance,
        },
    )


def open_alert(
    symbol: str,
    side: str,
    qty: float,
    price: float,
    sl: float | None = None,
    tp: float | None = None,
) -> Alert:
    """Return the ``open`` alert: a position was opened (``sl``/``tp`` shown when set)."""
    fields: dict[str, FieldValue] = {"symbol": symbol, "side": side, "qty": qty, "price": price}
    if sl is not None:
        fields["sl"] = sl
    if tp is not None:
        fields["tp"] = tp
    return Alert("open", f"Opened {side} {symbol}", fields=fields)


def close_alert(
    symbol: str,
    side: str,
    qty: float,
    entry: float,
    exit: float,
    pnl: float,
    reason: str,
) -> Alert:
    """Return the ``close`` alert: a position was closed (coloured by the sign of ``pnl``)."""
    return Alert(
        "close",
        f"Closed {side} {symbol}",
        message=reason,
        fields={
            "symbol": symbol,
            "side": side,
            "qty": qty,
            "entry": entry,
            "exit": exit,
            "pnl": pnl,
            "reason": reason,
        },
    )


def error_alert(title: str, detail: str = "") -> Alert:
    """Return an ``error`` alert."""
    return Alert("error", title, message=detail)


def risk_alert(cause: str, state_from: str, state_to: str, detail: str = "") -> Alert:
    """Return the alert of a change of trading state (the risk engine's kill switches).

    A halt or a reduction is a ``warning``; a return to active trading is ``info``.

    >>> a = risk_alert("daily_loss", "active", "halted", "equity 9,790 is 2.1% under ...")
    >>> (a.kind, a.title)
    ('warning', 'Trading halted: daily_loss')
    """
    kind: AlertKind = "info" if state_to == "active" else "warning"
    verb = {"halted": "halted", "reducing": "reducing only", "active": "resumed"}.get(
        state_to, state_to
    )
    return Alert(
        kind,
        f"Trading {verb}: {cause}",
        message=detail,
        fields={"cause": cause, "from": state_from, "to": state_to},
    )


def daily_summary_alert(
    day: str,
    start_equity: float,
    end_equity: float,
    trades: int,
    wins: int,
    realized_pnl: float,
    open_positions: int,
) -> Alert:
    """Return the end-of-day summary (UTC day): equity, P&L, trades and win count.

    >>> a = daily_summary_alert("2025-05-20", 10_000.0, 10_150.0, 4, 3, 120.0, 1)
    >>> (a.kind, a.title, a.fields["return"])
    ('info', 'Daily summary 2025-05-20: +150.00 (+1.50%)', '+1.50%')
    """
    pnl = end_equity - start_equity
    pct = (end_equity / start_equity - 1.0) * 100.0 if start_equity else 0.0
    return Alert(
        "info",
        f"Daily summary {day}: {pnl:+,.2f} ({pct:+.2f}%)",
        fields={
            "day": day,
            "equity": end_equity,
            "pnl": pnl,
            "return": f"{pct:+.2f}%",
            "trades": trades,
            "wins": wins,
            "realized_pnl": realized_pnl,
            "open_positions": open_positions,
        },
    )


def shutdown_alert(reason: str, equity: float | None, open_positions: int) -> Alert:
    """Return the ``shutdown`` alert: the engine stopped (``equity`` None: it never started).

    >>> shutdown_alert("stop requested", None, 0).fields["reason"]
    'stop requested'
    """
    fields: dict[str, FieldValue] = {"reason": reason, "open_positions": open_positions}
    if equity is not None:
        fields["equity"] = equity
    return Alert("shutdown", "tradeloop stopped", message=reason, fields=fields)
