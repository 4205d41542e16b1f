"""Pre-trade limits as small pure functions, the reasons a check refuses, and leverage control.

Each ``cap_*`` function returns the largest size the limit allows (a notional in quote
currency, or a quantity); the :class:`~tradeloop.risk.engine.RiskEngine` applies them in turn
and refuses the order when nothing is left.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from enum import StrEnum

from tradeloop.core.instrument import Instrument

__all__ = [
    "LeverageController",
    "RejectReason",
    "cap_cash",
    "cap_position",
    "cap_risk_per_trade",
    "leverage_room",
    "round_to_instrument",
]

logger = logging.getLogger(__name__)


class RejectReason(StrEnum):
    """Machine-readable reasons of risk rejections."""

    HALTED = "halted"
    REDUCING_ONLY = "reducing_only"
    UNKNOWN_SYMBOL = "unknown_symbol"
    NO_PRICE = "no_price"
    NO_EQUITY = "no_equity"
    ALREADY_OPEN = "already_open"
    MAX_POSITIONS = "max_positions"
    LEVERAGE = "leverage"
    CORRELATION = "correlation"
    VAR_LIMIT = "var_limit"
    NO_STOP = "no_stop"
    ZERO_SIZE = "zero_size"
    ZERO_QUANTITY = "zero_quantity"
    MIN_NOTIONAL = "min_notional"
    INSUFFICIENT_CASH = "insufficient_cash"
    REGIME = "regime"
    INVALID_EXITS = "invalid_exits"


def cap_position(notional: float, equity: float, max_pct: float) -> float:
    """Return ``notional`` cut to ``max_pct`` of equity.

    >>> cap_position(5_000.0, 20_000.0, 0.10)
    2000.0
    """
    return min(notional, max_pct * equity)


def cap_risk_per_trade(
    quantity: float,
    price: float,
    stop: float,
    equity: float,
    max_risk: float,
    slippage: float = 0.0,
) -> float:
    """Return ``quantity`` cut so the loss at ``stop`` is at most ``max_risk`` of equity.

    The loss per unit is the distance to the stop plus the expected slippage on the stop fill
    (``slippage`` is a fraction of the stop price).

    >>> cap_risk_per_trade(100.0, 100.0, 95.0, 10_000.0, 0.02)
    40.0
    """
    per_unit = abs(price - stop) + slippage * stop
    if per_unit <= 0:
        return quantity
    return min(quantity, max_risk * equity / per_unit)


def leverage_room(gross: float, equity: float, max_leverage: float) -> float:
    """Return the notional that can be added before gross / equity reaches ``max_leverage``.

    >>> leverage_room(25_000.0, 10_000.0, 3.0)
    5000.0
    """
    return max(0.0, max_leverage * equity - gross)


def cap_cash(notional: float, balance: float, fee_rate: float) -> float:
    """Return a long's ``notional`` cut so notional plus fee fits in the cash ``balance``.

    >>> round(cap_cash(5_000.0, 1_010.0, 0.01), 6)
    1000.0
    """
    return min(notional, max(balance, 0.0) / (1.0 + fee_rate))


def round_to_instrument(
    quantity: float, price: float, instrument: Instrument
) -> tuple[float, RejectReason | None]:
    """Round ``quantity`` down to the lot size and check the minimum notional.

    Returns the rounded quantity and None, or 0 and the reason it cannot be traded.

    >>> round_to_instrument(0.12345, 100.0, Instrument("X", lot_size=0.01, min_notional=5.0))
    (0.12, None)
    """
    qty = instrument.round_quantity(quantity)
    if not qty > 0:
        return 0.0, RejectReason.ZERO_QUANTITY
    if qty * price < instrument.min_notional:
        return 0.0, RejectReason.MIN_NOTIONAL
    return qty, None


class LeverageController:
    """The gross-leverage cap in force, lowered in riskier regimes.

    Parameters
    ----------
    max_leverage
        Cap in a normal regime (3x).
    multipliers
        ``(regime, multiplier)`` pairs; e.g. ``high_vol`` 0.5 halves the cap and ``crisis`` 0
        allows no new exposure. An unknown regime keeps the full cap (and is logged once).
    """

    def __init__(self, max_leverage: float, multipliers: Iterable[tuple[str, float]] = ()) -> None:
        self.base = max_leverage
        self.multipliers = dict(multipliers)
        self.regime: str | None = None
        self._warned: set[str] = set()

    def set_regime(self, regime: str | None) -> None:
        """Set the current regime label (None: normal)."""
        self.regime = regime

    def multiplier(self, regime: str | None = None) -> float:
        """Return the multiplier of ``regime`` (default: the one set; 1 for none or unknown)."""
        label = regime if regime is not None else self.regime
        if label is None:
            return 1.0
        mult = self.multipliers.get(label)
        if mult is None:
            if label not in self._warned:
                self._warned.add(label)
                logger.warning("unknown regime %r: full leverage cap applies", label)
            return 1.0
        return mult

    def max_leverage(self, regime: str | None = None, base: float | None = None) -> float:
        """Return the cap for ``regime`` (default: the one set) from ``base`` (default: config).

        >>> LeverageController(3.0, [("high_vol", 0.5)]).max_leverage("high_vol")
        1.5
        """
        return (self.base if base is None else base) * self.multiplier(regime)

    @staticmethod
    def leverage(gross: float, equity: float) -> float:
        """Return gross notional / equity (inf when equity is not positive)."""
        return gross / equity if equity > 0 else math.inf
