"""Risk configuration: frozen, documented dataclasses, two profiles and a TOML loader.

Profiles
--------
``default``
    The full gate used by paper and live trading: the limits of the issue and seeds 003/004
    (10% of equity per symbol, 2% of equity at risk per trade, 10 open positions, gross
    leverage 3x, correlation 0.7, a VaR cap), default trailing stops (armed at +2%, trailing
    1%), the daily-loss, drawdown and black-swan kill switches.
``permissive``
    What a plain backtest uses, so research runs and the peer oracles stay reproducible:
    only the instrument rules (lot size, min notional, no negative cash), which the broker
    enforces at the fill. No limit, stop or kill switch of its own.

A TOML file names a base profile and changes keys of it::

    profile = "default"          # base profile (default: "default")

    [limits]
    max_position_pct = 0.05
    max_var_pct = false          # false switches an optional limit off

    [black_swan]
    drop_pct = 0.15
    window = "12h"

An unknown key or section is a :class:`~tradeloop.core.errors.ConfigError` with a "did you
mean" hint. The file may also hold these tables under ``[risk]`` (as in ``tradeloop.toml``);
then only that table is read.
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from tradeloop.config.toml_file import read_toml
from tradeloop.core.errors import ConfigError, did_you_mean
from tradeloop.core.timeframes import timeframe_ns

__all__ = [
    "PROFILES",
    "BlackSwanConfig",
    "KillSwitchConfig",
    "LimitsConfig",
    "OverridesConfig",
    "RiskConfig",
    "SizingConfig",
    "StopsConfig",
    "VarConfig",
    "duration_ns",
    "load_risk_config",
    "load_risk_table",
    "profile_for_mode",
    "risk_config_from_mapping",
]

SIZING_METHODS = ("signal", "fixed_fraction", "risk_per_trade", "vol_target", "kelly", "optimizer")
VAR_METHODS = ("historical", "parametric")


def duration_ns(text: str, *, field_name: str = "duration") -> int:
    """Return a duration such as ``90m``, ``24h``, ``2d`` or ``1w`` in nanoseconds.

    >>> duration_ns("2h") // 60_000_000_000
    120

    Raises
    ------
    ConfigError
        If ``text`` is not ``<n><m|h|d|w>`` with ``n > 0``.
    """
    try:
        value = timeframe_ns(text)
    except ConfigError:
        raise ConfigError(
            f"{field_name}: expected a duration like '90m', '24h' or '2d', got {text!r}"
        ) from None
    if value <= 0:
        raise ConfigError(f"{field_name}: duration must be > 0, got {text!r}")
    return value


def _fraction(
    name: str, value: float | None, *, upper: float = 1.0, allow_zero: bool = False
) -> None:
    if value is None:
        return
    low_ok = value >= 0 if allow_zero else value > 0
    if not (math.isfinite(value) and low_ok and value <= upper):
        bound = "[0" if allow_zero else "(0"
        raise ConfigError(f"{name} must be in {bound}, {upper}], got {value}")


def _positive(name: str, value: float | None) -> None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{name} must be > 0, got {value}")


def _min_int(name: str, value: int | None, low: int) -> None:
    if value is not None and value < low:
        raise ConfigError(f"{name} must be >= {low}, got {value}")


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    """Pre-trade limits. ``None`` switches a limit off.

    Attributes
    ----------
    max_position_pct
        Largest position in one symbol as a fraction of equity (seed 004: 10%); bigger orders
        are cut down to it.
    max_risk_per_trade
        When the order has a stop: the loss at the stop (with expected slippage) may be at most
        this fraction of equity (seed 003: 2%); bigger orders are cut down.
    max_open_positions
        A new position beyond this count is refused.
    max_gross_leverage
        Gross notional / equity after the order (3x); cut down to the remaining room, refused
        when there is none. The :class:`~tradeloop.risk.limits.LeverageController` lowers it by
        ``regime_leverage``.
    regime_leverage
        ``(regime, multiplier)`` pairs applied to ``max_gross_leverage`` when a regime is set.
    max_correlation
        No new position whose return correlation with an open one (signed by the directions,
        so a hedge is not blocked) exceeds this.
    correlation_window, correlation_min_periods
        Bars of returns used for the correlation, and the fewest needed to apply the limit.
    max_var_pct
        Post-trade portfolio VaR (model and level from :class:`VarConfig`) as a fraction of
        equity; an order that breaches it is refused.
    """

    max_position_pct: float | None = 0.10
    max_risk_per_trade: float | None = 0.02
    max_open_positions: int | None = 10
    max_gross_leverage: float | None = 3.0
    regime_leverage: tuple[tuple[str, float], ...] = (
        ("low_vol", 1.0),
        ("normal", 1.0),
        ("high_vol", 0.5),
        ("crisis", 0.0),
    )
    max_correlation: float | None = 0.7
    correlation_window: int = 100
    correlation_min_periods: int = 30
    max_var_pct: float | None = 0.10

    def __post_init__(self) -> None:
        _fraction("limits.max_position_pct", self.max_position_pct, upper=100.0)
        _fraction("limits.max_risk_per_trade", self.max_risk_per_trade)
        _min_int("limits.max_open_positions", self.max_open_positions, 1)
        _positive("limits.max_gross_leverage", self.max_gross_leverage)
        for regime, mult in self.regime_leverage:
            if not (math.isfinite(mult) and mult >= 0):
                raise ConfigError(f"limits.regime_leverage.{regime} must be >= 0, got {mult}")
        _fraction("limits.max_correlation", self.max_correlation)
        _min_int("limits.correlation_window", self.correlation_window, 3)
        _min_int("limits.correlation_min_periods", self.correlation_min_periods, 3)
        _fraction("limits.max_var_pct", self.max_var_pct, upper=10.0)


@dataclass(frozen=True, slots=True)
class SizingConfig:
    """How an order's size is chosen before the limits cut it (and the confidence scales it).

    Attributes
    ----------
    method
        ``signal`` (the signal's own size: equity fraction or quantity), ``fixed_fraction``
        (``fraction`` of equity), ``risk_per_trade`` (lose ``risk_per_trade`` of equity at the
        stop), ``vol_target`` (``vol_target`` annualized volatility per position), ``kelly``
        (``kelly_fraction`` x Kelly from the closed trades' win rate and payoff), ``optimizer``
        (the portfolio optimizer's weight).
    fraction
        Equity fraction for ``fixed_fraction`` and the fallback of ``kelly``/``optimizer``.
    risk_per_trade
        Equity fraction lost at the stop for ``risk_per_trade``.
    vol_target, vol_method, vol_window
        Annualized volatility target; ``realized`` (std of returns) or ``atr`` (ATR / price);
        bars used.
    periods_per_year
        Bars per year for annualizing; None derives it from the bar length (365-day year).
    kelly_fraction, kelly_min_trades
        Multiplier of the Kelly fraction (0.5 = half Kelly) and the closed trades it needs.
    optimizer_objective, optimizer_window, optimizer_gross
        ``min_variance`` or ``max_sharpe``, bars of returns it uses, gross exposure cap.
    use_confidence
        Multiply the size by the intent's confidence in [0, 1] when one is given (an ML
        model's, see :mod:`tradeloop.engine.enrichment`). It is applied after every limit has
        cut the size (position, risk per trade, leverage, cash), so under the default profile a
        higher confidence still gives a larger position, never one above a cap.
    """

    method: str = "signal"
    fraction: float = 0.10
    risk_per_trade: float = 0.01
    vol_target: float = 0.20
    vol_method: str = "realized"
    vol_window: int = 20
    periods_per_year: float | None = None
    kelly_fraction: float = 0.5
    kelly_min_trades: int = 20
    optimizer_objective: str = "min_variance"
    optimizer_window: int = 250
    optimizer_gross: float = 1.0
    use_confidence: bool = True

    def __post_init__(self) -> None:
        if self.method not in SIZING_METHODS:
            raise ConfigError(
                f"sizing.method must be one of {list(SIZING_METHODS)}, got {self.method!r}"
                + did_you_mean(self.method, SIZING_METHODS)
            )
        _fraction("sizing.fraction", self.fraction, upper=100.0)
        _fraction("sizing.risk_per_trade", self.risk_per_trade)
        _positive("sizing.vol_target", self.vol_target)
        if self.vol_method not in ("realized", "atr"):
            raise ConfigError(
                f"sizing.vol_method must be 'realized' or 'atr', got {self.vol_method!r}"
            )
        _min_int("sizing.vol_window", self.vol_window, 2)
        _positive("sizing.periods_per_year", self.periods_per_year)
        _fraction("sizing.kelly_fraction", self.kelly_fraction)
        _min_int("sizing.kelly_min_trades", self.kelly_min_trades, 1)
        if self.optimizer_objective not in ("min_variance", "max_sharpe"):
            raise ConfigError(
                "sizing.optimizer_objective must be 'min_variance' or 'max_sharpe', "
                f"got {self.optimizer_objective!r}"
            )
        _min_int("sizing.optimizer_window", self.optimizer_window, 10)
        _positive("sizing.optimizer_gross", self.optimizer_gross)


@dataclass(frozen=True, slots=True)
class StopsConfig:
    """Stops the risk engine attaches to every new position that lacks them.

    Attributes
    ----------
    stop_loss_pct
        Fixed stop this fraction away from the entry (None: only the signal's own stop).
    trailing_pct, trailing_activation_pct
        Trailing stop (seed 004: trails 1%, armed once the price is 2% in favour). Not attached
        when the signal brings its own trailing stop.
    expected_slippage_bps
        Slippage expected on a stop fill, in basis points; included in the risk per trade and
        in the expected exit of stop orders.
    """

    stop_loss_pct: float | None = None
    trailing_pct: float | None = 0.01
    trailing_activation_pct: float | None = 0.02
    expected_slippage_bps: float = 5.0

    def __post_init__(self) -> None:
        _fraction("stops.stop_loss_pct", self.stop_loss_pct, upper=0.99)
        _fraction("stops.trailing_pct", self.trailing_pct, upper=0.99)
        _fraction("stops.trailing_activation_pct", self.trailing_activation_pct, upper=10.0)
        if not (math.isfinite(self.expected_slippage_bps) and self.expected_slippage_bps >= 0):
            raise ConfigError(
                f"stops.expected_slippage_bps must be >= 0, got {self.expected_slippage_bps}"
            )


@dataclass(frozen=True, slots=True)
class KillSwitchConfig:
    """Equity kill switches (ACTIVE -> REDUCING -> HALTED).

    Attributes
    ----------
    daily_loss_pct
        Equity below ``(1 - daily_loss_pct)`` x the day's starting equity halts trading for the
        rest of the UTC day (seed 004: 2%).
    daily_resume_next_day
        Lift a daily-loss halt at the next UTC day (seed 004's "for the rest of the day");
        False keeps it until an override.
    drawdown_reduce_pct, drawdown_halt_pct
        Drawdown from the equity peak that switches to REDUCING (seed 003 "alert at 10%") and
        that halts (15%). REDUCING lifts by itself when the drawdown is back under its level;
        HALTED needs an override.
    resume_after
        A cool-down (``"72h"``, ``"7d"``) after which a drawdown or black-swan halt lifts by
        itself, re-basing the drawdown peak at the equity then (event cause ``cooldown``).
        None (the default): only a signed override lifts it, which is right for live trading
        with an operator, but halts a backtest for the rest of its history at the first crash.
    """

    daily_loss_pct: float | None = 0.02
    daily_resume_next_day: bool = True
    drawdown_reduce_pct: float | None = 0.10
    drawdown_halt_pct: float | None = 0.15
    resume_after: str | None = None

    @property
    def resume_after_ns(self) -> int | None:
        """The cool-down in nanoseconds (None: overrides only)."""
        if self.resume_after is None:
            return None
        return duration_ns(self.resume_after, field_name="kill_switch.resume_after")

    def __post_init__(self) -> None:
        _fraction("kill_switch.daily_loss_pct", self.daily_loss_pct)
        _fraction("kill_switch.drawdown_reduce_pct", self.drawdown_reduce_pct)
        _fraction("kill_switch.drawdown_halt_pct", self.drawdown_halt_pct)
        if self.resume_after is not None:
            duration_ns(self.resume_after, field_name="kill_switch.resume_after")
        if (
            self.drawdown_reduce_pct is not None
            and self.drawdown_halt_pct is not None
            and self.drawdown_reduce_pct > self.drawdown_halt_pct
        ):
            raise ConfigError(
                "kill_switch.drawdown_reduce_pct must not exceed drawdown_halt_pct "
                f"({self.drawdown_reduce_pct} > {self.drawdown_halt_pct})"
            )


@dataclass(frozen=True, slots=True)
class BlackSwanConfig:
    """The black-swan protocol: on a crash, flatten every position and halt.

    Attributes
    ----------
    enabled
        Evaluate the triggers on every bar / price update.
    drop_pct, window
        A close at least ``drop_pct`` under the highest close of the last ``window`` (seed 003:
        20%) in any symbol of the run triggers.
    vol_shock_sigma, vol_window
        A one-bar return beyond ``vol_shock_sigma`` standard deviations of the previous
        ``vol_window`` returns triggers (None: off).
    spread_shock_bps
        A quoted bid/ask spread wider than this triggers (quotes come from live feeds).
    """

    enabled: bool = True
    drop_pct: float | None = 0.20
    window: str = "24h"
    vol_shock_sigma: float | None = 10.0
    vol_window: int = 100
    spread_shock_bps: float | None = 200.0

    def __post_init__(self) -> None:
        _fraction("black_swan.drop_pct", self.drop_pct, upper=0.99)
        duration_ns(self.window, field_name="black_swan.window")
        _positive("black_swan.vol_shock_sigma", self.vol_shock_sigma)
        _min_int("black_swan.vol_window", self.vol_window, 10)
        _positive("black_swan.spread_shock_bps", self.spread_shock_bps)

    @property
    def window_ns(self) -> int:
        """The drop window in nanoseconds."""
        return duration_ns(self.window, field_name="black_swan.window")


@dataclass(frozen=True, slots=True)
class VarConfig:
    """Value at risk of the portfolio.

    Attributes
    ----------
    window
        Bars of returns in the history (500).
    levels
        Confidence levels reported (95% and 99%).
    limit_level, method
        Level and model (``historical`` or ``parametric``) of the ``max_var_pct`` limit.
    horizon
        Horizon VaR is scaled to with the square-root-of-time rule (one bar when it equals the
        bar length).
    min_periods
        Fewest returns needed to compute VaR (fewer: the VaR limit does not apply yet).
    """

    window: int = 500
    levels: tuple[float, ...] = (0.95, 0.99)
    limit_level: float = 0.99
    method: str = "historical"
    horizon: str = "1d"
    min_periods: int = 50

    def __post_init__(self) -> None:
        _min_int("var.window", self.window, 10)
        for level in (*self.levels, self.limit_level):
            if not (0.5 < level < 1.0):
                raise ConfigError(f"var levels must be in (0.5, 1), got {level}")
        if self.method not in VAR_METHODS:
            raise ConfigError(f"var.method must be one of {list(VAR_METHODS)}, got {self.method!r}")
        duration_ns(self.horizon, field_name="var.horizon")
        _min_int("var.min_periods", self.min_periods, 5)


@dataclass(frozen=True, slots=True)
class OverridesConfig:
    """Signed overrides and their audit log.

    Attributes
    ----------
    secret_env
        Environment variable holding the HMAC secret. Without a secret every override is
        refused (and the refusal audited).
    audit_log
        Append-only JSON-lines audit file; None keeps the audit in memory (backtests).
    max_ttl
        Longest validity a token may carry.
    inbox
        JSON-lines queue of override tokens (``tradeloop risk override apply`` appends to it):
        a backtest applies each at its time, a live engine polls it.
    """

    secret_env: str = "TRADELOOP_RISK_SECRET"
    audit_log: str | None = None
    max_ttl: str = "24h"
    inbox: str | None = None

    def __post_init__(self) -> None:
        if not self.secret_env:
            raise ConfigError("overrides.secret_env must name an environment variable")
        duration_ns(self.max_ttl, field_name="overrides.max_ttl")


def _permissive_limits() -> LimitsConfig:
    return LimitsConfig(
        max_position_pct=None,
        max_risk_per_trade=None,
        max_open_positions=None,
        max_gross_leverage=None,
        max_correlation=None,
        max_var_pct=None,
    )


@dataclass(frozen=True, slots=True)
class RiskConfig:
    """Everything the :class:`~tradeloop.risk.engine.RiskEngine` needs; see the module doc.

    ``profile`` names the base profile; ``source`` the file that changed it (empty if none).
    """

    profile: str = "default"
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    sizing: SizingConfig = field(default_factory=SizingConfig)
    stops: StopsConfig = field(default_factory=StopsConfig)
    kill_switch: KillSwitchConfig = field(default_factory=KillSwitchConfig)
    black_swan: BlackSwanConfig = field(default_factory=BlackSwanConfig)
    var: VarConfig = field(default_factory=VarConfig)
    overrides: OverridesConfig = field(default_factory=OverridesConfig)
    source: str = ""

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise ConfigError(
                f"unknown risk profile {self.profile!r}; profiles: {sorted(PROFILES)}"
                + did_you_mean(self.profile, PROFILES)
            )

    @classmethod
    def default(cls) -> RiskConfig:
        """Return the full profile (paper and live)."""
        return cls()

    @classmethod
    def permissive(cls) -> RiskConfig:
        """Return the profile of a plain backtest: instrument rules only (at the broker)."""
        return cls(
            profile="permissive",
            limits=_permissive_limits(),
            sizing=SizingConfig(use_confidence=False),
            stops=StopsConfig(trailing_pct=None, trailing_activation_pct=None),
            kill_switch=KillSwitchConfig(
                daily_loss_pct=None, drawdown_reduce_pct=None, drawdown_halt_pct=None
            ),
            black_swan=BlackSwanConfig(enabled=False),
        )

    @classmethod
    def from_profile(cls, name: str) -> RiskConfig:
        """Return a named profile (``default`` or ``permissive``).

        Raises
        ------
        ConfigError
            For an unknown profile name.
        """
        try:
            return PROFILES[name]()
        except KeyError:
            raise ConfigError(
                f"unknown risk profile {name!r}; profiles: {sorted(PROFILES)}"
                + did_you_mean(name, PROFILES)
            ) from None

    @property
    def is_passthrough(self) -> bool:
        """True when the gate adds nothing to the broker's own rules (permissive runs)."""
        lim = self.limits
        return (
            self.sizing.method == "signal"
            and not self.sizing.use_confidence
            and lim.max_position_pct is None
            and lim.max_risk_per_trade is None
            and lim.max_open_positions is None
            and lim.max_gross_leverage is None
            and lim.max_correlation is None
            and lim.max_var_pct is None
            and self.stops.stop_loss_pct is None
            and self.stops.trailing_pct is None
            and not self.needs_bar_updates
        )

    @property
    def needs_bar_updates(self) -> bool:
        """True when a kill switch or the black-swan protocol must see every bar."""
        ks = self.kill_switch
        return (
            ks.daily_loss_pct is not None
            or ks.drawdown_reduce_pct is not None
            or ks.drawdown_halt_pct is not None
            or self.black_swan.enabled
        )


PROFILES: dict[str, typing.Callable[[], RiskConfig]] = {
    "default": RiskConfig.default,
    "permissive": RiskConfig.permissive,
}


def profile_for_mode(mode: str) -> RiskConfig:
    """Return the profile a run mode uses unless told otherwise.

    ``backtest`` runs are permissive (reproducible research); ``paper`` and ``live`` use the
    full default profile.

    Raises
    ------
    ConfigError
        For an unknown mode.
    """
    modes = {"backtest": "permissive", "paper": "default", "live": "default"}
    if mode not in modes:
        raise ConfigError(
            f"unknown run mode {mode!r}; modes: {list(modes)}" + did_you_mean(mode, modes)
        )
    return RiskConfig.from_profile(modes[mode])


# --------------------------------------------------------------------------- loading


def _coerce(tp: Any, value: Any, where: str, source: str) -> Any:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if value is False and type(None) in get_args(tp) and bool not in args:
            return None
        return _coerce(args[0], value, where, source)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{source}: {where} must be a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: {where} must be an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {where} must be true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: {where} must be text, got {value!r}")
        return value
    if origin is tuple:
        items = get_args(tp)
        if len(items) == 2 and items[1] is Ellipsis and get_origin(items[0]) is tuple:
            if not isinstance(value, Mapping):
                raise ConfigError(f"{source}: {where} must be a table of name = number")
            return tuple(
                (str(k), _coerce(get_args(items[0])[1], v, f"{where}.{k}", source))
                for k, v in value.items()
            )
        if not isinstance(value, list):
            raise ConfigError(f"{source}: {where} must be a list, got {value!r}")
        return tuple(_coerce(items[0], v, f"{where}[{k}]", source) for k, v in enumerate(value))
    raise ConfigError(f"{source}: {where}: unsupported setting type {tp!r}")  # pragma: no cover


def _merge(base: Any, data: Mapping[str, Any], where: str, source: str) -> Any:
    cls = type(base)
    hints = get_type_hints(cls)
    names = [f.name for f in fields(cls)]
    changes: dict[str, Any] = {}
    for key, value in data.items():
        if key not in names:
            label = f"{where}.{key}" if where else key
            raise ConfigError(
                f"{source}: unknown risk setting '{label}'." + did_you_mean(key, names)
            )
        label = f"{where}.{key}" if where else key
        current = getattr(base, key)
        if is_dataclass(current):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{source}: [{label}] must be a table")
            changes[key] = _merge(current, value, label, source)
        else:
            coerced = _coerce(hints[key], value, label, source)
            if isinstance(value, Mapping):  # a name = number table updates the pairs it names
                coerced = tuple({**dict(current), **dict(coerced)}.items())
            changes[key] = coerced
    try:
        return replace(base, **changes)
    except ConfigError as exc:  # a value out of range: name the file too
        raise ConfigError(f"{source}: {exc}") from None


def risk_config_from_mapping(data: Mapping[str, Any], source: str = "risk config") -> RiskConfig:
    """Build a :class:`RiskConfig` from a parsed TOML mapping (see the module doc).

    Raises
    ------
    ConfigError
        For an unknown key or profile, a value of the wrong type or out of range.
    """
    if isinstance(data.get("risk"), Mapping):  # a [risk] table, e.g. in tradeloop.toml
        data = data["risk"]
    body = dict(data)
    profile = body.pop("profile", "default")
    if not isinstance(profile, str):
        raise ConfigError(f"{source}: profile must be text, got {profile!r}")
    body.pop("source", None)
    base = RiskConfig.from_profile(profile)
    config: RiskConfig = _merge(base, body, "", source)
    return replace(config, source=source)


def load_risk_config(path: str | Path) -> RiskConfig:
    """Read a risk TOML file (the ``--risk`` option of ``tradeloop backtest``).

    Raises
    ------
    ConfigError
        If the file is missing, is not valid TOML, or holds an invalid setting.
    """
    return risk_config_from_mapping(read_toml(path, "risk config"), str(path))


def load_risk_table(path: str | Path) -> dict[str, Any]:
    """Read a risk TOML file, check it (as :func:`load_risk_config`), return its table: what a
    paper run stores, so a restart and ``tradeloop parity`` use the same rules.

    Raises
    ------
    ConfigError
        If the file is missing, is not valid TOML, or holds an invalid setting.
    """
    data = read_toml(path, "risk config")
    risk_config_from_mapping(data, str(path))
    return data
