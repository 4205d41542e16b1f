"""Stops for every position: which ones to attach, where they stand, and stop orders.

The risk engine decides the stops (:func:`plan_stops`); they travel on the entry
:class:`~tradeloop.core.orders.Order` into the :class:`~tradeloop.core.position.Position`. In a
backtest and in paper trading the simulated broker checks them on every bar (or price update)
with intrabar drill-down. For a venue that keeps its own stop orders, :class:`StopManager`
follows every price update, moves trailing anchors and emits the stop orders to place.

Every stop carries the slippage expected when it fills: :func:`expected_exit_price` is the
level moved against the position by ``expected_slippage_bps``; it is what the risk per trade
and the stop orders' ``limit_price`` guard use.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from tradeloop.core.orders import Order, OrderSide, OrderType
from tradeloop.core.position import ExitReason, Position
from tradeloop.risk.config import StopsConfig

__all__ = ["StopManager", "StopPlan", "expected_exit_price", "plan_stops"]


@dataclass(frozen=True, slots=True)
class StopPlan:
    """The stops to attach to an entry order."""

    stop_loss: float | None
    trailing_stop: float | None
    trailing_activation: float | None


def plan_stops(
    direction: int,
    price: float,
    config: StopsConfig,
    *,
    stop_loss: float | None = None,
    trailing_stop: float | None = None,
) -> StopPlan:
    """Return the stops of a new position: the intent's own, completed by the defaults.

    A fixed stop ``stop_loss_pct`` away from ``price`` is added when the intent has none; the
    default trailing stop (with its activation) is added when the intent has no trailing stop.

    >>> plan_stops(1, 100.0, StopsConfig(stop_loss_pct=0.05))
    StopPlan(stop_loss=95.0, trailing_stop=0.01, trailing_activation=0.02)
    """
    if stop_loss is None and config.stop_loss_pct is not None:
        stop_loss = price * (1.0 - direction * config.stop_loss_pct)
    activation = None
    if trailing_stop is None and config.trailing_pct is not None:
        trailing_stop = config.trailing_pct
        activation = config.trailing_activation_pct
    return StopPlan(stop_loss, trailing_stop, activation)


def expected_exit_price(level: float, direction: int, slippage_bps: float) -> float:
    """Return where a stop at ``level`` is expected to fill for a ``direction`` position.

    >>> expected_exit_price(100.0, 1, 50.0)
    99.5
    """
    return level * (1.0 - direction * slippage_bps / 10_000.0)


class StopManager:
    """Follows positions' stops on price updates, for venues that hold the stop orders.

    Parameters
    ----------
    config
        Expected slippage of stop fills.
    """

    def __init__(self, config: StopsConfig) -> None:
        self.config = config

    def update(self, position: Position, price: float) -> Position:
        """Return ``position`` with its trailing anchor moved to ``price`` if that is better."""
        if not position.trail_fraction or position.trail_anchor is None:
            return position
        anchor = (
            max(position.trail_anchor, price)
            if position.direction > 0
            else min(position.trail_anchor, price)
        )
        return (
            position if anchor == position.trail_anchor else replace(position, trail_anchor=anchor)
        )

    @staticmethod
    def triggered(position: Position, price: float) -> ExitReason | None:
        """Return the exit reason if ``price`` reaches the position's stop in force."""
        level, reason = position.active_stop()
        if level is None:
            return None
        hit = price <= level if position.direction > 0 else price >= level
        return reason if hit else None

    def stop_order(self, position: Position, ts_ns: int, order_id: int = 0) -> Order | None:
        """Return the reduce-only stop order protecting ``position`` (None without a stop).

        ``stop_price`` is the level in force; ``limit_price`` is the expected fill including
        slippage, for venues that take stop-limit orders.
        """
        level, _ = position.active_stop()
        if level is None:
            return None
        return Order(
            id=order_id,
            symbol=position.symbol,
            side=OrderSide.SELL if position.direction > 0 else OrderSide.BUY,
            type=OrderType.STOP,
            quantity=position.quantity,
            ts_created=ts_ns,
            stop_price=level,
            limit_price=expected_exit_price(
                level, position.direction, self.config.expected_slippage_bps
            ),
            reduce_only=True,
            tag="stop",
        )

    def loss_at_stop(self, position: Position) -> float | None:
        """Return the loss if the stop in force fills with the expected slippage (None: no stop)."""
        level, _ = position.active_stop()
        if level is None:
            return None
        exit_price = expected_exit_price(
            level, position.direction, self.config.expected_slippage_bps
        )
        return -position.direction * position.quantity * (exit_price - position.entry_price)
