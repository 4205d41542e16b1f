"""Command-line values of the plain types converted without pydantic.

Typer converts every parameter of the command being run, given or not, with a pydantic
``TypeAdapter``. Importing pydantic and building the first adapters costs about 0.2 s of
CPU in every ``tradeloop backtest`` process (more than interpreting the 55 options). Most
parameters are plain: ``str``, ``bool``, ``int``, ``float``, ``Path`` or a list of them, without
bounds or a parser. :func:`install` gives those a converter that returns what the adapter
returns for a default of the right type, a decimal literal or a path; any other value (a
misspelt number, ``1_000``, ``nan``, text with spaces) goes to typer's own pydantic
conversion, so its result and its error message are typer's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args, get_origin

__all__ = ["install"]

#: a plain decimal literal: what ``float()`` and pydantic's lax float parsing read alike
_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
#: a plain integer literal
_INT = re.compile(r"[+-]?\d+")

_NO = object()  # "not a plain value": typer's pydantic conversion decides

Leaf = Callable[[Any, Any, Any], Any]


def _as_str(value: Any, param: Any, ctx: Any) -> Any:
    return value if type(value) is str else _NO


def _as_bool(value: Any, param: Any, ctx: Any) -> Any:
    return value if type(value) is bool else _NO


def _as_float(value: Any, param: Any, ctx: Any) -> Any:
    kind = type(value)
    if kind is float:
        return value
    if kind is int:
        return float(value)
    if kind is str and _FLOAT.fullmatch(value):
        return float(value)
    return _NO


def _as_int(value: Any, param: Any, ctx: Any) -> Any:
    kind = type(value)
    if kind is int:
        return value
    if kind is str and _INT.fullmatch(value):
        return int(value)
    return _NO


def _path_leaf(path_type: type[Path], info: Any) -> Leaf:
    from typer._param_types import coerce_cli_path

    def as_path(value: Any, param: Any, ctx: Any) -> Any:
        if type(value) is str:
            value = path_type(value)  # what pydantic's Path adapter makes of a str
        elif not isinstance(value, path_type):
            return _NO
        # typer's own checks (exists, file_okay, ...) and messages
        return coerce_cli_path(value, info, path_type=path_type, param=param, ctx=ctx)

    return as_path


def _leaf(annotation: Any, info: Any) -> Leaf | None:
    """The converter of one plain value of ``annotation``, or None when it is not plain."""
    if info.parser is not None or getattr(info, "click_type", None) is not None:
        return None
    if annotation is str:
        return _as_str
    if annotation is bool:
        return _as_bool
    if annotation is float or annotation is int:
        if info.min is not None or info.max is not None or info.clamp:
            return None
        return _as_float if annotation is float else _as_int
    if isinstance(annotation, type) and issubclass(annotation, Path):
        path_type = info.path_type or annotation
        if isinstance(path_type, type) and issubclass(path_type, Path):
            return _path_leaf(path_type, info)
    return None


try:  # typer's conversion internals (typer 0.29); without them nothing is installed
    from typer._coercion import RuntimeParam, build_runtime_param
    from typer.core import _TyperParameter
except ImportError:  # pragma: no cover - another typer
    RuntimeParam = None  # type: ignore[assignment,misc]


if RuntimeParam is not None:

    @dataclass(frozen=True)
    class _PlainParam(RuntimeParam):
        """Plain values converted by ``leaf``, anything else by typer's pydantic adapter."""

        leaf: Leaf
        many: bool
        descriptor: Any

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            leaf = self.leaf
            if self.many:
                items = value if isinstance(value, (list, tuple)) else (value,)
                out = [leaf(v, param, ctx) for v in items]
                if all(v is not _NO for v in out):
                    return out
            else:
                one = leaf(value, param, ctx)
                if one is not _NO:
                    return one
            return build_runtime_param(self.descriptor)._coerce_value(value, param, ctx)


def _plain(descriptor: Any) -> Any | None:
    """A typer runtime parameter converting plain values (None when the type is not plain)."""
    if descriptor.file_annotation is not None:
        return None
    annotation, info = descriptor.annotation, descriptor.parameter_info
    many = get_origin(annotation) is list
    leaf = _leaf(get_args(annotation)[0] if many else annotation, info)
    if leaf is None:
        return None
    return _PlainParam(
        parameter_info=info, annotation=annotation, leaf=leaf, many=many, descriptor=descriptor
    )


def install() -> bool:
    """Make typer convert plain parameters here (see the module); returns whether it could
    (False, and typer unchanged, when its internals are not the ones this was written for)."""
    if RuntimeParam is None:
        return False
    original = getattr(_TyperParameter, "get_runtime_param", None)
    if original is None:
        return False
    if getattr(original, "_tradeloop_plain", False):
        return True

    def get_runtime_param(self: Any) -> Any:
        if getattr(self, "_runtime_param", None) is None:
            self._runtime_param = _plain(self.type_descriptor)
        return original(self)

    get_runtime_param._tradeloop_plain = True  # type: ignore[attr-defined]
    _TyperParameter.get_runtime_param = get_runtime_param  # type: ignore[method-assign]
    return True
