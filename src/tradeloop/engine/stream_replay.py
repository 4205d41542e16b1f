"""Play a market-stream recording (or a live stream) into the one kernel.

Every event goes through the same :class:`~tradeloop.adapters.streams.pipeline.MarketPipeline`
the live session used (quality, books), in the recorded arrival order; each closed bar of
the run's timeframe is one :meth:`~tradeloop.engine.live.LiveKernel.on_bar` step, and the
strategy reads the books as of that step through ``view.book(symbol)`` (the ``order_book``
side input). The replay is deterministic: the same recording gives the same orders, fills
and trades at any speed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from tradeloop.adapters.streams.pipeline import MarketPipeline
from tradeloop.core.instrument import Instrument
from tradeloop.core.market_events import MarketEvent, MarketTrade, StreamBar
from tradeloop.core.position import Trade
from tradeloop.engine.book_input import BookInput
from tradeloop.engine.config import RunConfig
from tradeloop.engine.live import LiveKernel
from tradeloop.strategy.base import Strategy

__all__ = ["KernelFeeder", "ReplayResult", "replay_into_kernel"]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class ReplayResult:
    """What a replay did: events in/out, market trades and bars seen, the kernel's results."""

    events: int = 0
    accepted: int = 0
    market_trades: list[MarketTrade] = field(default_factory=list)
    bars: int = 0
    orders: int = 0
    fills: int = 0
    trades: list[Trade] = field(default_factory=list)
    equity: float = 0.0


class KernelFeeder:
    """A pipeline sink that steps a :class:`LiveKernel` on every closed bar of its timeframe
    (the kernel reads the pipeline's books through :class:`BookInput`)."""

    def __init__(self, kernel: LiveKernel, result: ReplayResult) -> None:
        self.kernel = kernel
        self.result = result

    def write(self, events: Sequence[MarketEvent]) -> None:
        """Step the kernel for each closed bar in ``events``; keep market trades."""
        kernel, result = self.kernel, self.result
        for ev in events:
            result.accepted += 1
            if isinstance(ev, MarketTrade):
                result.market_trades.append(ev)
            elif isinstance(ev, StreamBar) and ev.closed and ev.bar.timeframe == kernel.timeframe:
                b = ev.bar
                result.bars += 1
                out = kernel.on_bar(b.symbol, b.ts, b.open, b.high, b.low, b.close, b.volume)
                result.orders += len(out.orders)
                result.fills += len(out.fills)


def replay_into_kernel(
    events: Iterable[MarketEvent],
    strategy: Strategy,
    symbols: Sequence[str],
    timeframe: str,
    config: RunConfig | None = None,
    *,
    instruments: dict[str, Instrument] | None = None,
    pipeline: MarketPipeline | None = None,
    progress: Callable[[int], None] | None = None,
) -> ReplayResult:
    """Run ``strategy`` on ``events`` (already paced, e.g. by ``iter_replay``) through the
    pipeline and the kernel; return what happened."""
    config = config or RunConfig()
    pipe = pipeline or MarketPipeline("replay")
    result = ReplayResult()
    instruments = instruments or {s: Instrument(s) for s in symbols}
    kernel = LiveKernel(
        strategy,
        instruments,
        timeframe,
        config,
        run_id="replay",
        inputs=(BookInput(lambda s: pipe.book(s)),),
    )
    pipe.sinks.append(KernelFeeder(kernel, result))
    for ev in events:
        result.events += 1
        pipe.process((ev,))
        if progress is not None and result.events % 10_000 == 0:
            progress(result.events)
    result.trades = list(kernel.portfolio.trades)
    result.equity = kernel.portfolio.equity
    return result
