"""What a study optimises: one or more run metrics, and the constraints a trial must meet.

Any numeric metric of a run can be an objective (``sharpe``, ``total_return``, ``calmar``,
``sortino``, ``profit_factor``, ``max_drawdown``, ...), maximised unless given as ``-NAME`` or
``NAME:min``. Constraints are ``--min-trades N`` and ``--max-drawdown F`` (a positive fraction:
0.2 refuses trials that lost more than 20% from a peak); a trial that misses one is kept in the
table with ``feasible`` false and never chosen as the best.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from tradeloop.analysis.metrics import PerformanceMetrics
from tradeloop.core.errors import ConfigError, did_you_mean

__all__ = ["METRICS", "Constraints", "Objective", "metric_row", "parse_objectives"]

#: the metrics of a run a trial records (the columns of ``trials.csv`` after the parameters)
METRICS: tuple[str, ...] = tuple(
    f.name for f in fields(PerformanceMetrics) if f.type in ("float", "int", float, int)
)


def metric_row(metrics: PerformanceMetrics) -> dict[str, float]:
    """The recorded metrics of one run, as floats (``trade_count`` and streaks too)."""
    return {name: float(getattr(metrics, name)) for name in METRICS}


@dataclass(frozen=True, slots=True)
class Objective:
    """One metric to optimise and its direction."""

    metric: str
    maximize: bool = True

    @property
    def direction(self) -> str:
        """``maximize`` or ``minimize`` (optuna's words)."""
        return "maximize" if self.maximize else "minimize"

    def value(self, metrics: dict[str, float]) -> float:
        """The trial's value; NaN (no trades for a trade statistic) counts as the worst."""
        v = metrics[self.metric]
        if math.isnan(v):
            return -math.inf if self.maximize else math.inf
        return v

    def better(self, a: float, b: float) -> bool:
        """True when ``a`` is strictly better than ``b``."""
        return a > b if self.maximize else a < b


def parse_objectives(texts: list[str]) -> tuple[Objective, ...]:
    """Parse ``--objective`` values (``sharpe``, ``-max_drawdown``, ``calmar:max``...).

    Raises
    ------
    ConfigError
        For an unknown metric (with the closest names) or a repeated one.
    """
    out: list[Objective] = []
    for text in texts or ["sharpe"]:
        raw = text.strip()
        maximize = True
        if raw.startswith("-"):
            raw, maximize = raw[1:], False
        elif raw.startswith("+"):
            raw = raw[1:]
        name, _, way = raw.partition(":")
        if way:
            if way not in ("max", "min", "maximize", "minimize"):
                raise ConfigError(f"--objective {text}: direction must be max or min")
            maximize = way.startswith("max")
        if name not in METRICS:
            raise ConfigError(
                f"--objective {name!r} is not a run metric.{did_you_mean(name, METRICS)} "
                f"Metrics: {', '.join(METRICS)}"
            )
        if any(o.metric == name for o in out):
            raise ConfigError(f"--objective {name} is given twice")
        out.append(Objective(name, maximize))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Constraints:
    """Conditions every chosen trial meets.

    Attributes
    ----------
    min_trades
        Fewest closed trades.
    max_drawdown
        Largest drawdown allowed, as a positive fraction (None: any).

    Raises
    ------
    ConfigError
        On construction, for a negative count or a drawdown outside (0, 1].
    """

    min_trades: int = 0
    max_drawdown: float | None = None

    def __post_init__(self) -> None:
        if self.min_trades < 0:
            raise ConfigError(f"--min-trades must be >= 0, got {self.min_trades}")
        if self.max_drawdown is not None and not 0 < self.max_drawdown <= 1:
            raise ConfigError(
                f"--max-drawdown is a fraction in (0, 1] (0.2 = 20%), got {self.max_drawdown}"
            )

    def violations(self, metrics: dict[str, float]) -> list[float]:
        """Optuna-style constraint values: each <= 0 when met (the amount missed otherwise)."""
        out = [float(self.min_trades) - metrics["trade_count"]]
        if self.max_drawdown is not None:
            out.append(-metrics["max_drawdown"] - self.max_drawdown)
        return out

    def feasible(self, metrics: dict[str, float]) -> bool:
        """True when every constraint is met."""
        return all(v <= 0 for v in self.violations(metrics))

    def describe(self) -> dict[str, Any]:
        """A JSON-safe description."""
        return {"min_trades": self.min_trades, "max_drawdown": self.max_drawdown}
