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

__all__ = ["StrategyInfo", "discover_strategies", "load_strategy_class", "scan_strategies"]

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


def scan_strategies(
    user_dir: str | Path | None = "strategies",
) -> tuple[dict[str, StrategyInfo], dict[Path, ConfigError]]:
    """Return every strategy that imports, by name, and each user file that failed, by path.

    Bundled examples come first; a user strategy with an example's name replaces it (and a
    warning is logged). One broken file does not hide the strategies of the others.

    Raises
    ------
    ConfigError
        If two user strategies share a name.
    """
    found: dict[str, StrategyInfo] = {}
    broken: dict[Path, ConfigError] = {}
    package = importlib.import_module(_EXAMPLES_PACKAGE)
    for mod_info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{_EXAMPLES_PACKAGE}.{mod_info.name}")
        for cls in _strategies_in(module):
            found[cls.strategy_name()] = StrategyInfo(cls.strategy_name(), cls, module.__name__)
    if user_dir is None or not Path(user_dir).is_dir():
        return found, broken
    user_names: dict[str, Path] = {}
    for path in sorted(Path(user_dir).glob("*.py")):
        if path.name.startswith("_"):
            continue
        try:
            module = _load_file(path)
        except ConfigError as exc:
            broken[path] = exc
            continue
        for cls in _strategies_in(module):
            name = cls.strategy_name()
            if name in user_names:
                raise ConfigError(
                    f"strategy name {name!r} is defined in both {user_names[name]} "
                    f"and {path}; give one of them a different `name`"
                )
            if name in found:
                logger.warning("user strategy %s in %s replaces the bundled one", name, path)
            user_names[name] = path
            found[name] = StrategyInfo(name, cls, str(path))
    return found, broken


def discover_strategies(user_dir: str | Path | None = "strategies") -> dict[str, StrategyInfo]:
    """Return every strategy by name: bundled examples first, then ``user_dir/*.py``.

    A user strategy with the name of an example replaces it (and a warning is logged).

    Raises
    ------
    ConfigError
        If a user file fails to import, or two user strategies share a name.
    """
    found, broken = scan_strategies(user_dir)
    if broken:
        raise next(iter(broken.values()))
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
    registry, broken = scan_strategies(user_dir)
    if reference in registry:
        for path, exc in broken.items():
            logger.warning("%s; the strategies in %s are not available", exc, path.name)
        return registry[reference].cls
    if broken:
        # the strategy asked for may be the one in the file that does not import
        first = next(iter(broken.values()))
        raise ConfigError(
            f"unknown strategy {reference!r}, and {first}"
            + (f" (and {len(broken) - 1} more broken file(s))" if len(broken) > 1 else "")
        ) from first
    raise ConfigError(
        f"unknown strategy {reference!r}.{did_you_mean(reference, registry)} "
        f"Known: {', '.join(sorted(registry))} (see `tradeloop strategies`)"
    )
