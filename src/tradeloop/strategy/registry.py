"""Find strategies: the bundled examples, a user ``strategies/`` folder, or ``pkg.mod:Class``."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
import pkgutil
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from tradeloop.core.errors import ConfigError, did_you_mean
from tradeloop.strategy.base import Strategy

__all__ = ["StrategyInfo", "discover_strategies", "load_strategy_class"]

logger = logging.getLogger(__name__)

_EXAMPLES_PACKAGE = "tradeloop.strategy.examples"


@dataclass(frozen=True, slots=True)
class StrategyInfo:
    """A discovered strategy class and where it came from."""

    name: str
    cls: type[Strategy]
    origin: str


def _strategies_in(module: ModuleType) -> list[type[Strategy]]:
    return [
        obj
        for _, obj in inspect.getmembers(module, inspect.isclass)
        if issubclass(obj, Strategy) and obj is not Strategy and obj.__module__ == module.__name__
    ]


def _load_file(path: Path) -> ModuleType:
    module_name = f"tradeloop_user_strategies.{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot import strategy file {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise ConfigError(
            f"strategy file {path} failed to import: {type(exc).__name__}: {exc}"
        ) from exc
    return module


def discover_strategies(user_dir: str | Path | None = "strategies") -> dict[str, StrategyInfo]:
    """Return every strategy by name: bundled examples first, then ``user_dir/*.py``.

    A user strategy with the name of an example replaces it (and a warning is logged).

    Raises
    ------
    ConfigError
        If a user file fails to import, or two user strategies share a name.
    """
    found: dict[str, StrategyInfo] = {}
    package = importlib.import_module(_EXAMPLES_PACKAGE)
    for mod_info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{_EXAMPLES_PACKAGE}.{mod_info.name}")
        for cls in _strategies_in(module):
            found[cls.strategy_name()] = StrategyInfo(cls.strategy_name(), cls, module.__name__)
    if user_dir is not None:
        folder = Path(user_dir)
        if folder.is_dir():
            user_names: dict[str, Path] = {}
            for path in sorted(folder.glob("*.py")):
                if path.name.startswith("_"):
                    continue
                for cls in _strategies_in(_load_file(path)):
                    name = cls.strategy_name()
                    if name in user_names:
                        raise ConfigError(
                            f"strategy name {name!r} is defined in both {user_names[name]} "
                            f"and {path}; give one of them a different `name`"
                        )
                    if name in found:
                        logger.warning(
                            "user strategy %s in %s replaces the bundled one", name, path
                        )
                    user_names[name] = path
                    found[name] = StrategyInfo(name, cls, str(path))
    return found


def load_strategy_class(
    reference: str, user_dir: str | Path | None = "strategies"
) -> type[Strategy]:
    """Return the strategy class named by ``reference``.

    ``reference`` is a registry name (``sma_cross``), ``pkg.module:Class``, or
    ``path/to/file.py:Class``.

    Raises
    ------
    ConfigError
        If nothing matches, with the closest names.
    """
    if ":" in reference:
        target, _, attr = reference.rpartition(":")
        if target.endswith(".py"):
            module = _load_file(Path(target))
        else:
            try:
                module = importlib.import_module(target)
            except ImportError as exc:
                raise ConfigError(f"cannot import strategy module {target!r}: {exc}") from exc
        cls = getattr(module, attr, None)
        if not (inspect.isclass(cls) and issubclass(cls, Strategy)):
            raise ConfigError(f"{reference!r} is not a Strategy subclass")
        return cls
    registry = discover_strategies(user_dir)
    if reference in registry:
        return registry[reference].cls
    raise ConfigError(
        f"unknown strategy {reference!r}.{did_you_mean(reference, registry)} "
        f"Known: {', '.join(sorted(registry))} (see `tradeloop strategies`)"
    )
