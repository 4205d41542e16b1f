"""Liquidation-zone magnet: trade toward the nearest strong liquidation cluster."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tradeloop.core.portfolio import Portfolio
from tradeloop.core.signal import Signal
from tradeloop.strategy.base import NO_SIGNALS, Strategy
from tradeloop.strategy.params import Param
from tradeloop.strategy.view import MarketView


class ZoneMagnet(Strategy):
    """Liquidation-zone magnet: price is drawn to clusters of leveraged positions' liquidation
    levels, so trade toward the strongest nearby zone and take profit at it.

    Reads the ``liquidation_zones`` side input (the signal loop's liquidation model over the
    strategy's own bars, weighted by the loop's adaptive weights). When flat and the strongest
    zone within ``max_distance`` of the close carries at least ``min_share`` of the model's
    strength: a short-liquidation zone above the price opens a long, a long-liquidation zone
    below opens a short (with ``short``); the target is the zone's level, the stop
    ``stop_loss`` away. A zone is traded once.
    """

    name = "zone_magnet"
    inputs = ("liquidation_zones",)
    max_distance = Param(0.01, min=0.0001, max=0.5, help="zone within this fraction of price")
    min_share = Param(0.01, min=0.0, max=1.0, help="zone's share of the model's strength")
    size = Param(0.5, min=0.0, max=1.0, help="equity fraction per entry, split across symbols")
    stop_loss = Param(0.01, min=0.0001, max=0.5, help="stop-loss distance as a fraction")
    short = Param(True, help="also trade long-liquidation zones below the price")

    def on_init(self, view: MarketView) -> None:
        """Nothing to precompute: the zones arrive with every bar."""
        self._fraction = self.size / len(view.symbols)
        #: id of the last zone traded, by symbol (state kept by on_bar)
        self.traded: dict[str, str] = {}

    def on_bar(self, view: MarketView, portfolio: Portfolio) -> Sequence[Signal]:
        """Enter toward the strongest near zone not traded yet."""
        out: list[Signal] | None = None
        for symbol in view.symbols:
            if not view.updated(symbol) or not portfolio.is_flat(symbol):
                continue
            zones: Any = view.input("liquidation_zones", symbol) or ()
            price = view.close(symbol)
            zone = next(
                (
                    z
                    for z in zones
                    if abs(z.distance_pct) <= self.max_distance and z.confidence >= self.min_share
                ),
                None,
            )
            if zone is None or self.traded.get(symbol) == zone.id:
                continue
            if zone.side == "short" and zone.price_level > price:
                signal = Signal.open_long(
                    symbol,
                    self._fraction,
                    stop_loss=price * (1 - self.stop_loss),
                    take_profit=zone.price_level,
                    tag=f"zone:{zone.component}",
                )
            elif zone.side == "long" and zone.price_level < price and self.short:
                signal = Signal.open_short(
                    symbol,
                    self._fraction,
                    stop_loss=price * (1 + self.stop_loss),
                    take_profit=zone.price_level,
                    tag=f"zone:{zone.component}",
                )
            else:
                continue
            self.traded[symbol] = zone.id
            out = [signal] if out is None else [*out, signal]
        return out if out is not None else NO_SIGNALS

    def get_state(self) -> dict[str, Any]:
        """The zones already traded."""
        return {"traded": dict(self.traded)}

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`get_state`."""
        self.traded = dict(state.get("traded", {}))
