"""The search space: ``--param`` specifications checked against a strategy's declared parameters.

One ``--param`` reads ``NAME=SPEC``:

* ``fast=5:50:5`` — a range with a step (inclusive ends): integers when every part is an
  integer, floats otherwise;
* ``sl=0.001:0.05`` — a continuous range (random and TPE only; a grid needs a step);
* ``lr=0.001:0.1:log`` — log-uniform (random/TPE); ``lr=0.001:0.1:log5`` — also 5 log-spaced
  grid points;
* ``mode=a,b,c`` — choices (converted by the parameter's declared type);
* ``short=true`` — one value (fixed for every trial).

Every name must be a parameter the strategy declares ("did you mean" otherwise) and every value
must pass its bounds; an empty range is an error.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from tradeloop.core.errors import ConfigError, did_you_mean
from tradeloop.strategy.params import Param

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution

__all__ = ["Dimension", "SearchSpace", "parse_param"]

#: the most grid points one study may enumerate
MAX_GRID = 1_000_000


@dataclass(frozen=True, slots=True)
class Dimension:
    """One searched parameter.

    Attributes
    ----------
    name
        The strategy parameter.
    kind
        ``int``, ``float`` or ``choice``.
    low, high
        Bounds of a range (inclusive).
    step
        Grid step of a linear range (None: continuous).
    log
        Log-uniform sampling.
    points
        Grid points of a log range (None: not given).
    choices
        Values of a ``choice`` dimension (already converted to the parameter's type).
    """

    name: str
    kind: str
    low: float = 0.0
    high: float = 0.0
    step: float | None = None
    log: bool = False
    points: int | None = None
    choices: tuple[Any, ...] = ()

    def grid(self) -> list[Any]:
        """The grid values of this dimension, in increasing order.

        Raises
        ------
        ConfigError
            For a continuous range (no step or point count).
        """
        if self.kind == "choice":
            return list(self.choices)
        if self.log:
            if self.points is None:
                raise ConfigError(
                    f"--param {self.name}: a grid needs a point count for a log range "
                    f"(e.g. {self.name}={_fmt(self.low)}:{_fmt(self.high)}:log5)"
                )
            values = np.geomspace(self.low, self.high, self.points)
            if self.kind == "int":
                return sorted({round(v) for v in values})
            return [float(v) for v in values]
        if self.step is None:
            raise ConfigError(
                f"--param {self.name}: a grid needs a step "
                f"(e.g. {self.name}={_fmt(self.low)}:{_fmt(self.high)}:STEP), or use "
                "--method random/tpe"
            )
        if self.kind == "int":
            return list(range(int(self.low), int(self.high) + 1, int(self.step)))
        count = math.floor((self.high - self.low) / self.step + 1e-9) + 1
        return [round(self.low + i * self.step, 12) for i in range(count)]

    def distribution(self) -> BaseDistribution:
        """The optuna distribution of this dimension."""
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        if self.kind == "choice":
            return CategoricalDistribution(list(self.choices))
        if self.kind == "int":
            step = int(self.step) if self.step is not None and not self.log else 1
            high = int(self.low) + (int(self.high) - int(self.low)) // step * step
            return IntDistribution(int(self.low), high, log=self.log, step=step)
        if self.step is not None and not self.log:
            count = math.floor((self.high - self.low) / self.step + 1e-9)
            return FloatDistribution(self.low, self.low + count * self.step, step=self.step)
        return FloatDistribution(self.low, self.high, log=self.log)


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def _number(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"--param {name}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ConfigError(f"--param {name}: {text!r} is not a finite number")
    return value


def parse_param(text: str, declared: dict[str, Param]) -> Dimension | tuple[str, Any]:
    """Parse one ``NAME=SPEC``: a :class:`Dimension`, or ``(name, value)`` for a fixed value.

    Raises
    ------
    ConfigError
        For a malformed spec, an unknown parameter (with the closest names), a value the
        parameter refuses, or an empty range.
    """
    name, sep, spec = text.partition("=")
    name, spec = name.strip(), spec.strip()
    if not sep or not name or not spec:
        raise ConfigError(f"--param {text!r}: expected NAME=SPEC (e.g. fast=5:50:5)")
    if name not in declared:
        raise ConfigError(
            f"--param {name}: the strategy has no parameter {name!r}."
            f"{did_you_mean(name, declared)} Parameters: {', '.join(declared) or '(none)'}"
        )
    param = declared[name]
    if ":" in spec:
        return _parse_range(name, spec, param)
    if "," in spec:
        values = [param.coerce(v.strip()) for v in spec.split(",") if v.strip()]
        unique = list(dict.fromkeys(values))
        if not unique:
            raise ConfigError(f"--param {name}: no choices in {spec!r}")
        if len(unique) == 1:
            return name, unique[0]
        return Dimension(name, "choice", choices=tuple(unique))
    return name, param.coerce(spec)


def _parse_range(name: str, spec: str, param: Param) -> Dimension:
    parts = [p.strip() for p in spec.split(":")]
    if len(parts) not in (2, 3):
        raise ConfigError(
            f"--param {name}={spec}: expected LOW:HIGH, LOW:HIGH:STEP or LOW:HIGH:log"
        )
    if param.type not in (int, float):
        raise ConfigError(
            f"--param {name}: a range needs a numeric parameter ({name} is "
            f"{param.type.__name__}); give choices as a,b,c"
        )
    low, high = _number(parts[0], name), _number(parts[1], name)
    step: float | None = None
    log = False
    points: int | None = None
    if len(parts) == 3:
        third = parts[2].lower()
        if third.startswith("log"):
            log = True
            if third[3:]:
                try:
                    points = int(third[3:])
                except ValueError:
                    raise ConfigError(f"--param {name}: {parts[2]!r} is not logN") from None
                if points < 1:
                    raise ConfigError(f"--param {name}: a log grid needs at least 1 point")
        else:
            step = _number(parts[2], name)
            if step <= 0:
                raise ConfigError(f"--param {name}={spec}: the step must be > 0")
    if high < low:
        raise ConfigError(
            f"--param {name}={spec}: empty range (high {_fmt(high)} < low {_fmt(low)})"
        )
    if log and low <= 0:
        raise ConfigError(f"--param {name}={spec}: a log range needs low > 0")
    is_int = param.type is int
    if is_int and not all(float(v).is_integer() for v in (low, high, step or 1.0)):
        raise ConfigError(f"--param {name}={spec}: {name} is an integer parameter")
    if not is_int and step is None and not log and low == high:
        step = 1.0
    # the ends must be values the parameter accepts
    param.coerce(int(low) if is_int else low)
    param.coerce(int(high) if is_int else high)
    return Dimension(name, "int" if is_int else "float", low, high, step, log, points)


@dataclass(frozen=True, slots=True)
class SearchSpace:
    """The searched dimensions plus fixed parameter values of one study."""

    dimensions: tuple[Dimension, ...]
    fixed: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def parse(cls, specs: list[str], declared: dict[str, Param]) -> SearchSpace:
        """Build the space from ``--param`` texts.

        Raises
        ------
        ConfigError
            See :func:`parse_param`; also for a parameter given twice or no parameter at all.
        """
        dims: list[Dimension] = []
        fixed: list[tuple[str, Any]] = []
        seen: set[str] = set()
        for text in specs:
            item = parse_param(text, declared)
            name = item.name if isinstance(item, Dimension) else item[0]
            if name in seen:
                raise ConfigError(f"--param {name} is given twice")
            seen.add(name)
            if isinstance(item, Dimension):
                dims.append(item)
            else:
                fixed.append(item)
        if not dims:
            raise ConfigError(
                "nothing to search: give at least one --param NAME=LOW:HIGH[:STEP] or a,b,c"
            )
        return cls(tuple(dims), tuple(fixed))

    @property
    def names(self) -> list[str]:
        """The searched parameter names, in the order given."""
        return [d.name for d in self.dimensions]

    def grid(self) -> list[dict[str, Any]]:
        """Every combination of the dimensions' grid values (the first dimension outermost).

        Raises
        ------
        ConfigError
            For a continuous dimension, or a grid larger than :data:`MAX_GRID`.
        """
        axes = [d.grid() for d in self.dimensions]
        size = math.prod(len(a) for a in axes)
        if size > MAX_GRID:
            raise ConfigError(
                f"the grid has {size:,} points (more than {MAX_GRID:,}); use coarser steps "
                "or --method random/tpe with --trials"
            )
        return [dict(zip(self.names, combo, strict=True)) for combo in itertools.product(*axes)]

    def distributions(self) -> dict[str, BaseDistribution]:
        """The optuna distribution of every dimension."""
        return {d.name: d.distribution() for d in self.dimensions}

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """The searched values of ``trial`` (sampled, or enqueued for a grid point)."""
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        out: dict[str, Any] = {}
        for d in self.dimensions:
            dist = d.distribution()
            if isinstance(dist, CategoricalDistribution):
                out[d.name] = trial.suggest_categorical(d.name, dist.choices)
            elif isinstance(dist, IntDistribution):
                out[d.name] = trial.suggest_int(
                    d.name, dist.low, dist.high, step=dist.step, log=dist.log
                )
            else:
                assert isinstance(dist, FloatDistribution)
                out[d.name] = trial.suggest_float(
                    d.name, dist.low, dist.high, step=dist.step, log=dist.log
                )
        return out

    def full(self, values: dict[str, Any]) -> dict[str, Any]:
        """The strategy's parameters of one trial: the fixed values plus ``values``."""
        out = dict(self.fixed)
        out.update(values)
        return out

    def describe(self) -> dict[str, Any]:
        """A JSON-safe description (for the study's identity and ``best.json``)."""
        return {
            "dimensions": [
                {
                    "name": d.name,
                    "kind": d.kind,
                    "low": d.low,
                    "high": d.high,
                    "step": d.step,
                    "log": d.log,
                    "points": d.points,
                    "choices": list(d.choices),
                }
                for d in self.dimensions
            ],
            "fixed": dict(self.fixed),
        }
