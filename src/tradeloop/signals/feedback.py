"""``FeedbackConsumer``: trade outcomes -> DuckDB ``signal_feedback`` (idempotent)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from tradeloop.core.position import Trade
from tradeloop.signals.models import DEFAULT_COMPONENT, TradeFeedback, symbol_key
from tradeloop.store.analytics import AnalyticsStore

if TYPE_CHECKING:
    from tradeloop.bus.redis_bus import RedisBus

__all__ = ["FeedbackConsumer", "feedback_topic", "trades_to_feedback"]

log = logging.getLogger(__name__)


def feedback_topic(symbol: str, prefix: str = "liquidation:feedback") -> str:
    """Return the channel of ``symbol``'s feedback.

    >>> feedback_topic("BTC/USDT")
    'liquidation:feedback:BTCUSDT'
    """
    return f"{prefix}:{symbol_key(symbol)}"


def trades_to_feedback(
    trades: Iterable[Trade], *, source: str = "tradeloop", component: str = DEFAULT_COMPONENT
) -> list[TradeFeedback]:
    """Turn our engine's closed trades into feedback.

    The signal id is the trade's ``tag`` (set it to the signal id when trading a signal), or the
    trade id when the tag is empty. Open trades are skipped.
    """
    out: list[TradeFeedback] = []
    for t in trades:
        if t.exit_ts is None or t.exit_price is None:
            continue
        out.append(
            TradeFeedback(
                signal_id=t.tag or t.id,
                symbol=symbol_key(t.symbol),
                side="long" if t.direction > 0 else "short",
                entry_price=t.entry_price,
                exit_price=t.exit_price,
                entry_ts=t.entry_ts,
                exit_ts=t.exit_ts,
                pnl=t.pnl,
                pnl_pct=t.pnl_pct,
                source=source,
                component=component,
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
        for fb in trades_to_feedback(trades, source=source):
            self.handle(fb)
        return self.flush()

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
    ) -> None:
        """Consume the feedback streams of ``symbols`` until ``stop`` is set.

        Each symbol's ``{prefix}:{SYMBOL}`` is read as a Redis Stream with a consumer group
        (rows are committed before the batch is acknowledged, so a crash redelivers them and the
        idempotent store keeps one copy).
        """
        stop = stop or asyncio.Event()
        tasks = []
        for symbol in symbols:
            topic = feedback_topic(symbol, prefix)
            tasks.append(
                asyncio.create_task(
                    bus.consume_stream(
                        topic, group, consumer, self.handle, on_batch=self.flush, stop=stop
                    )
                )
            )
        try:
            while not stop.is_set():
                await asyncio.sleep(0.05)
                self.flush()
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.flush()
