"""Instrument: what is traded, with its venue's price and quantity rules."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from tradeloop.core.errors import ConfigError

__all__ = ["AssetClass", "Instrument"]


class AssetClass(StrEnum):
    """Broad class of an instrument."""

    CRYPTO = "crypto"
    EQUITY = "equity"
    FX = "fx"
    FUTURE = "future"
    PERPETUAL = "perpetual"


@dataclass(frozen=True, slots=True)
class Instrument:
    """A tradable instrument.

    ``tick_size`` and ``lot_size`` of 0 mean "no rounding" (continuous prices/quantities).
    Fees are fractions of notional (0.001 = 0.1%).
    """

    symbol: str
    venue: str = "SIM"
    asset_class: AssetClass = AssetClass.CRYPTO
    tick_size: float = 0.0
    lot_size: float = 0.0
    min_notional: float = 0.0
    maker_fee: float = 0.0
    taker_fee: float = 0.0
    contract_multiplier: float = 1.0
    quote_currency: str = "USD"

    def __post_init__(self) -> None:
        if not self.symbol:
            raise ConfigError("instrument symbol must not be empty")
        for name in ("tick_size", "lot_size", "min_notional", "maker_fee", "taker_fee"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"instrument {self.symbol}: {name} must be >= 0, got {value}")
        if not self.contract_multiplier > 0:
            raise ConfigError(f"instrument {self.symbol}: contract_multiplier must be > 0")

    def round_price(self, price: float) -> float:
        """Round ``price`` to the nearest tick (unchanged when tick_size is 0)."""
        if self.tick_size <= 0:
            return price
        return round(round(price / self.tick_size) * self.tick_size, 12)

    def round_quantity(self, quantity: float) -> float:
        """Round ``quantity`` down to a whole number of lots (unchanged when lot_size is 0).

        >>> Instrument("X", lot_size=0.001).round_quantity(0.12345)
        0.123
        """
        if self.lot_size <= 0:
            return quantity
        lots = math.floor(abs(quantity) / self.lot_size + 1e-9)
        return math.copysign(round(lots * self.lot_size, 12), quantity)
