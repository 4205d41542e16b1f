"""The trading rules of a run, one definition for every mode (backtest, paper, live).

:class:`RunConfig` holds what the kernel needs besides the strategy and the data: starting
cash, fees, slippage, the fill rule, shorting, the risk profile and the bar window. A
backtest passes one to :func:`~tradeloop.engine.runner.run_on_bars`; a paper session's
:class:`~tradeloop.engine.paper.PaperConfig` *is* one (it derives from it and adds the venue,
the state store and the session's timing).

``BacktestConfig`` is the former name of :class:`RunConfig`, kept as an alias so existing code
keeps working; new code should use ``RunConfig``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from tradeloop.core.errors import ConfigError
from tradeloop.core.timeframes import timeframe_minutes
from tradeloop.execution.config import FillPrice, check_cash_buffer
from tradeloop.risk.config import RiskConfig, risk_config_from_mapping

__all__ = ["BacktestConfig", "RunConfig", "risk_rules"]


def risk_rules(
    risk: RiskConfig | str | Mapping[str, Any] | None, source: str = "risk table"
) -> RiskConfig:
    """Return the risk rules ``risk`` describes.

    ``risk`` is a :class:`RiskConfig`, a profile name (``"default"``, ``"permissive"``), a
    parsed risk TOML table (what a risk file holds) or None (the permissive profile).
    ``source`` names a table in error messages and in the rules' ``source``.

    >>> risk_rules("default").profile
    'default'
    >>> table = {"profile": "permissive", "limits": {"max_open_positions": 3}}
    >>> risk_rules(table).limits.max_open_positions
    3

    Raises
    ------
    ConfigError
        For an unknown profile, an invalid setting or a value of another type.
    """
    if risk is None:
        return RiskConfig.permissive()
    if isinstance(risk, RiskConfig):
        return risk
    if isinstance(risk, str):
        return RiskConfig.from_profile(risk)
    if isinstance(risk, Mapping):
        return risk_config_from_mapping(risk, source)
    raise ConfigError(f"risk must be a RiskConfig, a profile name or a risk table, got {risk!r}")


@dataclass(frozen=True, slots=True)
class RunConfig:
    """The trading rules of a run: everything except the strategy, the data and the venue.

    The defaults match the reference rules the oracle trade lists use: fills at the next
    bar's open, all-equity fractional sizing with the fee included, no slippage, a position
    still open at the end is reported open (``close_at_end=False``).

    Attributes
    ----------
    balance
        Starting cash.
    fee
        Commission as a fraction of notional, for instruments that do not set their own
        (a backtest's data files; a venue's instruments carry the venue's fees).
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
        a risk gate; pass ``RiskConfig.default()``, a loaded file, a profile name
        (``"default"``/``"permissive"``) or a parsed risk table for the full gate (see
        :func:`risk_rules`; the attribute always holds a :class:`RiskConfig`). The run record
        shows it.
    post_only_entries
        Send entries as post-only limit orders at the touch (maker fee; fills only if the next
        bar trades through the limit, else expires; see
        :class:`~tradeloop.execution.config.SimulatedBrokerConfig`). Off by default.
    cash_buffer_pct
        Size buy entries, when they are sent, to leave this fraction of the cash unspent at
        the last price, so a higher next open still pays for them (live: the venue would
        refuse the buy). 0 (default): sizes unchanged.
    periods_per_year
        Periods per year for annualized metrics (Sharpe, volatility, Sortino); None infers
        it from the bar times (365 days for data with bars every day, 252 sessions for
        data with empty weekends; see :func:`~tradeloop.analysis.metrics.infer_annualization`).
    periods_basis
        Where a set ``periods_per_year`` comes from, shown with the metrics (a backtest with
        ``--calendar`` sets both: ``"XNYS sessions: 252 a year x 390 bars a session"``);
        empty: given by the user.

    Raises
    ------
    ConfigError
        On construction, for a value out of range or of the wrong kind (naming the field).
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
    periods_per_year: float | None = None
    periods_basis: str = ""
    post_only_entries: bool = False
    cash_buffer_pct: float = 0.0

    def __post_init__(self) -> None:
        check_cash_buffer(self.cash_buffer_pct)
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
        if self.periods_per_year is not None and not (
            math.isfinite(self.periods_per_year) and self.periods_per_year > 0
        ):
            raise ConfigError(f"periods_per_year must be > 0, got {self.periods_per_year}")
        object.__setattr__(self, "risk", risk_rules(self.risk))

    def rules(self) -> RunConfig:
        """Return these trading rules as a plain :class:`RunConfig`.

        A subclass (a paper session's config) drops its own fields, so what reaches the
        kernel is the rules alone; a plain ``RunConfig`` is returned as is.
        """
        if type(self) is RunConfig:
            return self
        return RunConfig(**{f.name: getattr(self, f.name) for f in fields(RunConfig)})


#: Deprecated name of :class:`RunConfig` (the same class), kept so existing code keeps working.
BacktestConfig = RunConfig
