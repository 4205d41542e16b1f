"""Lazy package exports (PEP 562): a package's public names import their module on first use,
so importing one submodule (or ``tradeloop --help``) does not import every module the
package re-exports.

>>> exports = {"sqrt": ("math", "sqrt")}
>>> namespace: dict = {}
>>> getattr_, dir_ = lazy_exports("demo", exports, namespace)
>>> getattr_("sqrt")(9.0), "sqrt" in namespace, dir_()
(3.0, True, ['sqrt'])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, exports: Mapping[str, tuple[str, str]], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module-level ``__getattr__`` and ``__dir__`` of ``package``.

    ``exports`` maps a public name to ``(module, attribute)``; the first access imports the
    module and caches the value in the package's ``namespace`` (its ``globals()``), so later
    accesses cost nothing. An unknown name raises ``AttributeError`` as Python would.
    """

    def getattr_(name: str) -> Any:
        try:
            module, attr = exports[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        value = getattr(import_module(module), attr)
        namespace[name] = value
        return value

    def dir_() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return getattr_, dir_
