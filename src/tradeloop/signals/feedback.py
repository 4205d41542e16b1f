"""``FeedbackConsumer``: trade outcomes -> DuckDB ``signal_feedback`` (idempotent)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from tradeloop.core.position import Trade
from tradeloop.signals.models import DEFAULT_COMPONENT, TradeFeedback, symbol_key
from tradeloop.store.analytics import AnalyticsStore

if TYPE_CHECKING:
    from tradeloop.bus.redis_bus import RedisBus

__all__ = ["FeedbackConsumer", "feedback_topic", "trade_signal_id", "trades_to_feedback"]

log = logging.getLogger(__name__)


def feedback_topic(symbol: str, prefix: str = "liquidation:feedback") -> str:
    """Return the channel of ``symbol``'s feedback.

    >>> feedback_topic("BTC/USDT")
    'liquidation:feedback:BTCUSDT'
    """
    return f"{prefix}:{symbol_key(symbol)}"


def trade_signal_id(trade: Trade) -> str:
    """Return the id that keys ``trade``'s feedback: unique per trade.

    The trade's ``signal_id`` when it carries one (the signal it was opened on), else the trade
    id. Never the ``tag``: a strategy tags all its trades alike, and feedback keyed by it would
    collapse every trade of a strategy into one row.
    """
    signal_id = getattr(trade, "signal_id", None)  # a field `Trade` may gain; absent today
    return str(signal_id) if signal_id else trade.id


def trades_to_feedback(
    trades: Iterable[Trade],
    *,
    source: str = "tradeloop",
    component: str | Callable[[Trade], str] = DEFAULT_COMPONENT,
) -> list[TradeFeedback]:
    """Turn our engine's closed trades into feedback, one row per trade.

    Each row is keyed by :func:`trade_signal_id`. Open trades are skipped. ``component`` is
    one name for every row, or a function giving each trade's.
    """
    out: list[TradeFeedback] = []
    for t in trades:
        if t.exit_ts is None or t.exit_price is None:
            continue
        out.append(
            TradeFeedback(
                signal_id=trade_signal_id(t),
                symbol=symbol_key(t.symbol),
                side="long" if t.direction > 0 else "short",
                entry_price=t.entry_price,
                exit_price=t.exit_price,
                entry_ts=t.entry_ts,
                exit_ts=t.exit_ts,
                pnl=t.pnl,
                pnl_pct=t.pnl_pct,
                source=source,
                component=component(t) if callable(component) else component,
            )
        )
    return out


class FeedbackConsumer:
    """Buffer :class:`TradeFeedback` and write it to the analytics store in batches.

    Parameters
    ----------
    store
        Target store.
    batch_size
        Rows buffered before an automatic :meth:`flush`.
    """

    def __init__(self, store: AnalyticsStore, *, batch_size: int = 1000) -> None:
        self.store = store
        self.batch_size = batch_size
        self._buffer: list[dict[str, Any]] = []
        self.received = 0
        self.stored = 0
        self.duplicates = 0

    def handle(self, message: BaseModel) -> None:
        """Buffer one feedback message (a bus handler).

        Raises
        ------
        TypeError
            If ``message`` is not a :class:`TradeFeedback` (the bus dead-letters it).
        """
        if not isinstance(message, TradeFeedback):
            raise TypeError(f"expected TradeFeedback, got {type(message).__name__}")
        self.received += 1
        self._buffer.append(message.model_dump())
        if len(self._buffer) >= self.batch_size:
            self.flush()

    def add_trades(self, trades: Iterable[Trade], *, source: str = "tradeloop") -> int:
        """Store our own engine's closed trades; return the number of new rows."""
        before = self.stored
        for fb in trades_to_feedback(trades, source=source):
            self.handle(fb)  # flushes every batch_size rows
        self.flush()
        return self.stored - before

    def flush(self) -> int:
        """Write the buffer; return the number of new rows (duplicates are ignored)."""
        if not self._buffer:
            return 0
        rows, self._buffer = self._buffer, []
        new = self.store.insert_feedback(rows)
        self.stored += new
        self.duplicates += len(rows) - new
        return new

    async def run(
        self,
        bus: RedisBus,
        symbols: Iterable[str],
        *,
        group: str = "tradeloop-feedback",
        consumer: str = "consumer-1",
        prefix: str = "liquidation:feedback",
        stop: asyncio.Event | None = None,
        tick_s: float = 0.05,
        on_tick: Callable[[], object] | None = None,
    ) -> None:
        """Consume the feedback of ``symbols`` until ``stop`` is set.

        Each symbol's ``{prefix}:{SYMBOL}`` is read two ways:

        * as a Redis Stream with a consumer group (rows are committed before the batch is
          acknowledged, so a crash redelivers them and the idempotent store keeps one copy);
        * as a pub/sub channel of the same name, for senders that ``PUBLISH`` (at-most-once:
          what is published while no consumer listens is gone).

        Either way a message that does not decode, or is not a :class:`TradeFeedback`, is
        refused as a dead letter with its reason logged. Every ``tick_s`` seconds the buffer is
        flushed and ``on_tick`` (e.g. a scheduled weight update) runs.
        """
        stop = stop or asyncio.Event()
        tasks = []
        topics = [feedback_topic(symbol, prefix) for symbol in symbols]
        for topic in topics:
            bus.subscribe_channel(topic, self.handle)
            tasks.append(
                asyncio.create_task(
                    bus.consume_stream(
                        topic, group, consumer, self.handle, on_batch=self.flush, stop=stop
                    )
                )
            )
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):  # a tick passed
                    await asyncio.wait_for(stop.wait(), tick_s)
                self.flush()
                if on_tick is not None:
                    on_tick()
        finally:
            stop.set()
            for topic in topics:
                bus.unsubscribe(topic, self.handle)
            await asyncio.gather(*tasks, return_exceptions=True)
            self.flush()
