"""Backtest configuration."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from tradeloop.core.errors import ConfigError
from tradeloop.core.timeframes import timeframe_minutes
from tradeloop.execution.config import FillPrice
from tradeloop.risk.config import RiskConfig

__all__ = ["BacktestConfig"]


@dataclass(frozen=True, slots=True)
class BacktestConfig:
    """Everything about a backtest except the strategy and the data.

    The defaults match the reference rules the oracle trade lists use: fills at the next
    bar's open, all-equity fractional sizing with the fee included, no slippage, a position
    still open at the end is reported open (``close_at_end=False``).

    Attributes
    ----------
    balance
        Starting cash.
    fee
        Commission as a fraction of notional, for instruments that do not set their own.
    slippage_bps
        Adverse slippage on market and stop fills, in basis points.
    fill_price
        ``next_open`` or ``close``.
    timeframe
        Trading timeframe; None uses the strategy's first timeframe or the data's own.
    start, end
        Optional UTC ns bounds: bars with ``start <= open time < end`` are used.
    close_at_end
        Close open positions at the last close with exit reason ``end``.
    allow_short
        Accept short signals.
    trade_start
        Optional UTC ns bar time before which bars are history only: the strategy is first
        called on the first bar opening at or after it (a paper session's warm-up bars).
    risk
        Risk profile every signal passes through before the broker. The default is the
        ``permissive`` profile (instrument rules only), which leaves results exactly as without
        a risk gate; pass ``RiskConfig.default()``, a loaded file, or a profile name
        (``"default"``/``"permissive"``) for the full gate. The run record shows it.
    """

    balance: float = 10_000.0
    fee: float = 0.0
    slippage_bps: float = 0.0
    fill_price: FillPrice = FillPrice.NEXT_OPEN
    timeframe: str | None = None
    start: int | None = None
    end: int | None = None
    close_at_end: bool = False
    allow_short: bool = True
    trade_start: int | None = None
    risk: RiskConfig = field(default_factory=RiskConfig.permissive)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.balance) and self.balance > 0):
            raise ConfigError(f"balance must be > 0, got {self.balance}")
        if not (math.isfinite(self.fee) and 0 <= self.fee < 0.5):
            raise ConfigError(f"fee is a fraction of notional in [0, 0.5), got {self.fee}")
        if not (math.isfinite(self.slippage_bps) and self.slippage_bps >= 0):
            raise ConfigError(f"slippage_bps must be >= 0, got {self.slippage_bps}")
        try:
            object.__setattr__(self, "fill_price", FillPrice(self.fill_price))
        except ValueError:
            raise ConfigError(
                f"fill_price must be one of {[f.value for f in FillPrice]}, got {self.fill_price!r}"
            ) from None
        if self.timeframe is not None:
            timeframe_minutes(self.timeframe)
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ConfigError("end must be after start")
        risk: object = self.risk
        if risk is None:
            object.__setattr__(self, "risk", RiskConfig.permissive())
        elif isinstance(risk, str):
            object.__setattr__(self, "risk", RiskConfig.from_profile(risk))
        elif not isinstance(risk, RiskConfig):
            raise ConfigError(f"risk must be a RiskConfig or a profile name, got {risk!r}")
