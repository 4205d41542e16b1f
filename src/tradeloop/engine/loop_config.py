"""``loop.toml``: what ``tradeloop run`` runs, validated with the file and key named.

Example::

    [run]
    id = "loop-btc"                 # the run's key in the state store (restart = same id)
    exchange = "binance"
    market = "perp"                 # spot | perp
    symbols = ["BTC/USDT:USDT"]
    timeframe = "5m"
    balance = 10000
    state = "output/loop/state.db"  # SQLite file or postgresql:// URL
    analytics = "output/loop/analytics.duckdb"
    status = "output/loop/status.json"
    warmup_bars = 500
    # until = "2025-06-01T00:00:00Z"  # stop after this bar (replays)

    [bus]
    # url = "redis://127.0.0.1:6379/0"   # absent: in-process only

    [risk]
    profile = "default"             # or: file = "risk.toml"

    # [model]
    # name = "meta"                 # a registered model, NAME or NAME:VERSION
    # min_confidence = 0.55

    # [regime]                      # a regime model (`tradeloop regime fit`)
    # name = "btc_hmm"              # NAME or NAME:VERSION in `registry`
    # transition = "30m"            # a full exposure change takes this long
    # confirm_bars = 3              # hysteresis: bars in a row before a new regime counts
    # exposures = { high_vol = 0.5, crisis = 0.0, uncertain = 0.5 }

    [[strategies]]
    name = "zone_magnet"
    weight = 0.5
    params = { max_distance = 0.01 }

    [[strategies]]
    name = "sma_cross"
    weight = 0.5
    params = { fast = 10, slow = 30 }

    [feedback]
    adapt_every = 20                # outcomes between weight updates
    adapt_interval_s = 60           # or seconds, whichever comes first
    alpha = 0.2                     # EMA step of a weight towards its target
    min_component_samples = 5       # outcomes a component needs (24h window) to move

    [zones]
    top = 5                         # zones per symbol given to strategies

    # [retrain]                     # needs [model]; paper/live only, backtests never retrain
    # enabled = true
    # drop_threshold = 0.05         # live accuracy this far below the model's baseline ...
    # min_samples = 100             # ... over at least this many closed trades (tested every
    # window = 200                  #     min_samples outcomes, over the last `window`)
    # every_n = 500                 # or retrain after this many outcomes anyway
    # min_train_bars = 2000         # bars held before a retrain is tried
    # validation_share = 0.25       # most recent share of the entries held out to validate
    # min_validation_events = 20
    # metric = "log_loss"           # or "accuracy": what the candidate must not lose on
    # margin = 0.0                  # how much worse it may be and still pass (< 0: must beat)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tradeloop.config.toml_file import read_toml
from tradeloop.core.errors import ConfigError
from tradeloop.core.time import parse_time

__all__ = ["LoopConfig", "load_loop_config"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RunSection(_Section):
    """``[run]``: what to trade, where state goes."""

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._:+-]+$")
    exchange: str = "binance"
    market: Literal["spot", "perp"] = "spot"
    symbols: tuple[str, ...] = Field(min_length=1)
    timeframe: str = "1m"
    balance: float = Field(default=10_000.0, gt=0)
    slippage_bps: float = Field(default=0.0, ge=0)
    fill_price: Literal["next_open", "close"] = "next_open"
    allow_short: bool = True
    #: entries as post-only limits at the last close (see ``--post-only-entries``)
    post_only_entries: bool = False
    state: str = "output/loop/state.db"
    analytics: str = "output/loop/analytics.duckdb"
    status: str = "output/loop/status.json"
    warmup_bars: int = Field(default=500, ge=0)
    max_bars: int = Field(default=100_000, ge=2)
    until: str | None = None
    calendar: str | None = None

    @field_validator("until")
    @classmethod
    def _until(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_time(value, field="until")
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return value


class BusSection(_Section):
    """``[bus]``: Redis URL, or in-process when absent."""

    url: str | None = None


class RiskSection(_Section):
    """``[risk]``: a profile name or a risk TOML file (relative to loop.toml)."""

    profile: str | None = None
    file: str | None = None


class ModelSection(_Section):
    """``[model]``: a registered meta-model enriching every signal."""

    name: str = Field(min_length=1)
    registry: str = "models"
    min_confidence: float | None = Field(default=None, ge=0, le=1)
    use_toxicity: bool = False
    threads: int = Field(default=1, ge=1)


class RegimeSection(_Section):
    """``[regime]``: a regime model filtered causally at every step (risk and enrichment)."""

    name: str = Field(min_length=1)
    registry: str = "models"
    transition: str = "30m"
    confirm_bars: int = Field(default=3, ge=1)
    exposures: dict[str, float] = Field(default_factory=dict)


class StrategySection(_Section):
    """``[[strategies]]``: one strategy with its share of the account."""

    name: str = Field(min_length=1)
    weight: float = Field(default=1.0, gt=0, le=1)
    params: dict[str, Any] = Field(default_factory=dict)
    label: str | None = None


class FeedbackSection(_Section):
    """``[feedback]``: when the weights adapt."""

    adapt_every: int = Field(default=20, ge=1)
    adapt_interval_s: float = Field(default=60.0, gt=0)
    weights_topic: str = "liquidation:weights"
    alpha: float = Field(default=0.2, gt=0, le=1)
    min_component_samples: int = Field(default=5, ge=1)


class ZonesSection(_Section):
    """``[zones]``: the liquidation-zone side input."""

    top: int = Field(default=5, ge=1)


class RetrainSection(_Section):
    """``[retrain]``: retrain the model in the background when its live accuracy drops, and
    hot-swap a candidate that passes validation (off unless ``enabled``; needs ``[model]``).

    The trigger settings are :class:`~tradeloop.ml.monitor.RetrainMonitor`'s; the others are
    :class:`~tradeloop.engine.retrain.RetrainConfig`'s.
    """

    enabled: bool = False
    drop_threshold: float = Field(default=0.05, gt=0, lt=1)
    min_samples: int = Field(default=100, ge=1)
    window: int = Field(default=200, ge=1)
    every_n: int | None = Field(default=None, ge=1)
    min_train_bars: int = Field(default=2000, ge=1)
    validation_share: float = Field(default=0.25, gt=0, lt=1)
    min_validation_events: int = Field(default=20, ge=1)
    metric: Literal["log_loss", "accuracy"] = "log_loss"
    margin: float = Field(default=0.0, ge=-1, le=1)

    @model_validator(mode="after")
    def _window(self) -> RetrainSection:
        if self.window < self.min_samples:
            raise ValueError(f"window ({self.window}) must be >= min_samples ({self.min_samples})")
        return self


class LoopConfig(_Section):
    """The whole ``loop.toml``; :func:`load_loop_config` reads and checks it."""

    run: RunSection
    strategies: tuple[StrategySection, ...] = Field(min_length=1)
    bus: BusSection = BusSection()
    risk: RiskSection = RiskSection()
    model: ModelSection | None = None
    regime: RegimeSection | None = None
    feedback: FeedbackSection = FeedbackSection()
    zones: ZonesSection = ZonesSection()
    retrain: RetrainSection = RetrainSection()
    #: the folder of loop.toml (relative paths in it are relative to that folder)
    base_dir: Path = Path(".")

    @field_validator("strategies")
    @classmethod
    def _weights(cls, value: tuple[StrategySection, ...]) -> tuple[StrategySection, ...]:
        total = sum(s.weight for s in value)
        if total > 1.0 + 1e-9:
            raise ValueError(f"the strategies' weights add up to {total:g}; at most 1")
        labels = [s.label or s.name for s in value]
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        if dupes:
            raise ValueError(f"strategy {dupes[0]!r} appears twice; give each a distinct `label`")
        return value

    @model_validator(mode="after")
    def _retrain_needs_a_model(self) -> LoopConfig:
        if self.retrain.enabled and self.model is None:
            raise ValueError("[retrain] enabled needs a [model] to retrain")
        return self

    def path(self, value: str) -> str:
        """A path from the file, relative to the file's folder (URLs unchanged)."""
        if "://" in value:
            return value
        p = Path(value).expanduser()
        return str(p if p.is_absolute() else self.base_dir / p)

    def risk_setting(self) -> str | dict[str, Any]:
        """The risk rules as ``tradeloop paper`` takes them: a profile name or a file's table.

        Raises
        ------
        ConfigError
            For a file that cannot be read or holds an invalid setting.
        """
        from tradeloop.risk.config import load_risk_table

        if self.risk.file is not None:
            return load_risk_table(self.path(self.risk.file))
        return self.risk.profile or "permissive"


def _where(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def parse_loop_config(data: dict[str, Any], source: str, base_dir: Path) -> LoopConfig:
    """Validate a parsed ``loop.toml``.

    Raises
    ------
    ConfigError
        Naming ``source`` and the key of the first problem.
    """
    try:
        return LoopConfig.model_validate({**data, "base_dir": base_dir})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = _where(tuple(first.get("loc", ())))
        msg = str(first["msg"]).removeprefix("Value error, ")
        more = len(exc.errors()) - 1
        tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise ConfigError(f"{source}: {where}: {msg}{tail}") from None


def load_loop_config(path: str | Path) -> LoopConfig:
    """Read and check ``loop.toml``.

    Raises
    ------
    ConfigError
        If the file is missing, not TOML, or a key is unknown, missing or invalid (the message
        names the file and the key).
    """
    file = Path(path)
    return parse_loop_config(read_toml(file, "loop config"), str(file), file.parent)
