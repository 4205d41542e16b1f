"""Side inputs a strategy can read with ``view.input(name)``, computed by the run.

``liquidation_zones`` is the signal loop's liquidation-zone model
(:class:`~tradeloop.signals.heatmap.LiquidationHeatmap`) run causally over the strategy's
bars: at each step, every completed bar not seen yet updates the model, and the input is the
strongest zones (:class:`~tradeloop.signals.models.LiquidationSignal`, strongest first) weighted
by the signal loop's current adaptive weights (:attr:`ZoneSource.weights`, which a running loop
updates as feedback arrives).

``order_book`` is the L2 book summary of each symbol (:class:`~tradeloop.engine.book_input.
BookInput`; ``view.book(symbol)``), filled by a live or replayed stream and empty otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from tradeloop.core.errors import ConfigError, did_you_mean
from tradeloop.engine.step import InputSource
from tradeloop.strategy.base import Strategy
from tradeloop.strategy.view import MarketView

if TYPE_CHECKING:
    from tradeloop.signals.heatmap import HeatmapConfig, LiquidationHeatmap

# The sources' models (the signal loop's heatmap, the numba order book) are imported when a
# strategy declares the input, so a backtest without side inputs never loads them.

__all__ = ["INPUTS", "ZoneSource", "input_sources"]


class ZoneSource:
    """The ``liquidation_zones`` side input: per symbol, the ``top`` strongest zones.

    Parameters
    ----------
    top
        How many zones per symbol.
    config
        The liquidation model's settings.
    weights
        Component weights (leverage tiers) from the signal loop; None weighs all equally.
    """

    name = "liquidation_zones"

    def __init__(
        self,
        top: int = 5,
        config: HeatmapConfig | None = None,
        weights: Mapping[str, float] | None = None,
    ) -> None:
        if top < 1:
            raise ConfigError(f"liquidation_zones: top must be >= 1, got {top}")
        from tradeloop.signals.heatmap import HeatmapConfig

        self.top = top
        self.config = config or HeatmapConfig()
        self.weights: dict[str, float] | None = dict(weights) if weights else None
        self._models: dict[str, LiquidationHeatmap] = {}
        self._last_ts: dict[str, int] = {}
        #: bars fed to the model, all symbols
        self.bars_seen = 0

    def update(self, view: MarketView) -> None:
        """Feed every completed bar up to the current step; publish the zones."""
        from tradeloop.signals.heatmap import LiquidationHeatmap, bar_update_args

        values = view.inputs.setdefault(self.name, {})
        for symbol in view.symbols:
            stop = view.index(symbol) + 1
            if stop <= 0:
                continue
            bars = view.arrays(symbol)
            model = self._models.get(symbol)
            if model is None:
                model = self._models[symbol] = LiquidationHeatmap(symbol, self.config)
                start = 0
            else:
                start = int(np.searchsorted(bars.ts, self._last_ts[symbol], side="right"))
            if start >= stop:
                continue
            for i in range(start, stop):
                model.update(*bar_update_args(bars, i))
            self.bars_seen += stop - start
            self._last_ts[symbol] = int(bars.ts[stop - 1])
            values[symbol] = tuple(model.top_signals(self.top, self.weights))


def _book_input() -> InputSource:
    """The ``order_book`` source (:class:`~tradeloop.engine.book_input.BookInput`)."""
    from tradeloop.engine.book_input import BookInput

    return BookInput()


#: side-input name -> factory
INPUTS: dict[str, Callable[[], InputSource]] = {
    "liquidation_zones": ZoneSource,
    "order_book": _book_input,
}


def input_sources(strategy: Strategy, given: Sequence[InputSource] = ()) -> tuple[InputSource, ...]:
    """The sources for every input ``strategy`` declares: ``given`` ones first, the rest built
    with their defaults.

    Raises
    ------
    ConfigError
        If the strategy declares an input nobody provides.
    """
    by_name = {s.name: s for s in given}
    out: list[InputSource] = list(given)
    for name in strategy.inputs:
        if name in by_name:
            continue
        factory = INPUTS.get(name)
        if factory is None:
            raise ConfigError(
                f"strategy '{strategy.strategy_name()}' reads side input {name!r}, which no "
                f"source provides.{did_you_mean(name, list(INPUTS))} Known: {', '.join(INPUTS)}"
            )
        source = factory()
        by_name[name] = source
        out.append(source)
    return tuple(out)
