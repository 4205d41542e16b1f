"""Typed strategy parameters with defaults, bounds and "did you mean" errors."""

from __future__ import annotations

from typing import Any

from tradeloop.core.errors import ConfigError

__all__ = ["Param"]

_TRUE = {"1", "true", "yes", "on", "y"}
_FALSE = {"0", "false", "no", "off", "n"}


class Param:
    """A strategy parameter declared as a class attribute.

    The type is the type of ``default`` (int, float, bool or str). Values given as text (from
    the command line) are converted; bounds and choices are checked.

    >>> p = Param(10, min=1, help="fast SMA length")
    >>> p.name = "fast"
    >>> p.coerce("12")
    12
    """

    __slots__ = ("choices", "default", "help", "max", "min", "name", "type")

    def __init__(
        self,
        default: int | float | bool | str,
        *,
        min: float | None = None,
        max: float | None = None,
        choices: tuple[Any, ...] | None = None,
        help: str = "",
    ) -> None:
        self.default = default
        self.type: type = type(default)
        self.min = min
        self.max = max
        self.choices = choices
        self.help = help
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def coerce(self, value: Any) -> Any:
        """Return ``value`` converted to this parameter's type and checked.

        Raises
        ------
        ConfigError
            If the value cannot be converted or is out of bounds.
        """
        converted = self._convert(value)
        if self.min is not None and converted < self.min:
            raise ConfigError(
                f"parameter {self.name}={converted!r} is below its minimum {self.min}"
            )
        if self.max is not None and converted > self.max:
            raise ConfigError(
                f"parameter {self.name}={converted!r} is above its maximum {self.max}"
            )
        if self.choices is not None and converted not in self.choices:
            raise ConfigError(
                f"parameter {self.name}={converted!r} is not one of {list(self.choices)}"
            )
        return converted

    def _convert(self, value: Any) -> Any:
        kind = self.type
        try:
            if kind is bool:
                if isinstance(value, bool):
                    return value
                text = str(value).strip().lower()
                if text in _TRUE:
                    return True
                if text in _FALSE:
                    return False
                raise ValueError(text)
            if kind is int:
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError(value)
                if isinstance(value, str):
                    number = float(value)
                    if not number.is_integer():
                        raise ValueError(value)
                    return int(number)
                return int(value)
            if kind is float:
                return float(value)
            return str(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"parameter {self.name}: cannot read {value!r} as {kind.__name__}"
            ) from exc

    def describe(self) -> str:
        """Return a one-line description for listings."""
        parts = [f"{self.type.__name__} = {self.default!r}"]
        if self.min is not None or self.max is not None:
            parts.append(
                f"range [{self.min if self.min is not None else '-inf'}, "
                f"{self.max if self.max is not None else 'inf'}]"
            )
        if self.choices:
            parts.append(f"one of {list(self.choices)}")
        if self.help:
            parts.append(self.help)
        return "; ".join(parts)
