"""Optional extras: which packages each one brings, and the one error a missing one raises.

``pip install tradeloop`` is the core (backtests, data, runs and reports, paper trading on the
exchanges' public feeds). The rest comes as extras (``pip install 'tradeloop[ml]'``); code
that needs one imports its packages inside functions, under :func:`needs_extra` (or checks
first with :func:`require_extra`), so a missing extra is one clear message naming the extra
and the install command instead of a traceback, and core commands never import it.

>>> extra_of("sklearn.ensemble"), extra_of("numpy")
('ml', None)
>>> print(MissingExtraError("serve", "tradeloop serve"))
tradeloop serve needs the serve extra: pip install 'tradeloop[serve]'
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib.util import find_spec

from tradeloop.core.errors import ConfigError

__all__ = ["EXTRAS", "MissingExtraError", "extra_of", "needs_extra", "require_extra"]

#: extra -> the top-level import names of the packages it adds (pyproject's
#: ``[project.optional-dependencies]``; a test keeps the two in step)
EXTRAS: dict[str, tuple[str, ...]] = {
    "ml": ("sklearn", "lightgbm", "hmmlearn", "optuna", "scipy", "joblib", "threadpoolctl"),
    "serve": ("fastapi", "uvicorn"),
    "live": ("tenacity", "pyrate_limiter", "redis", "psycopg", "apprise"),
    "alpaca": ("alpaca",),
    "ray": ("ray",),
    "regimes-lstm": ("torch",),
}

_EXTRA_OF: dict[str, str] = {module: extra for extra, mods in EXTRAS.items() for module in mods}


class MissingExtraError(ConfigError):
    """A feature needs an optional extra that is not installed.

    The message names the feature, the extra and the command that installs it.
    """

    def __init__(self, extra: str, feature: str) -> None:
        self.extra = extra
        self.feature = feature
        super().__init__(f"{feature} needs the {extra} extra: pip install 'tradeloop[{extra}]'")


def extra_of(module: str | None) -> str | None:
    """The extra that provides ``module`` (a dotted import name), or None for core/unknown."""
    if not module:
        return None
    return _EXTRA_OF.get(module.partition(".")[0])


def _installed(module: str) -> bool:
    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):  # a finder refusing it, or a half-removed package
        return False


def require_extra(extra: str, feature: str, modules: tuple[str, ...] | None = None) -> None:
    """Raise :class:`MissingExtraError` unless ``extra``'s packages are installed.

    Checks ``modules`` (default: every package of ``extra``) without importing them, so a
    command can refuse at once, before any work, at no import cost.

    Raises
    ------
    MissingExtraError
        Naming ``feature``, ``extra`` and the install command.
    """
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}; known: {sorted(EXTRAS)}")
    for module in modules or EXTRAS[extra]:
        if not _installed(module):
            raise MissingExtraError(extra, feature)


@contextmanager
def needs_extra(extra: str, feature: str) -> Iterator[None]:
    """Imports inside this block that fail for a package of ``extra`` raise
    :class:`MissingExtraError` naming ``feature`` (other import errors pass unchanged):
    ``with needs_extra("ml", "saving a model"): import joblib``.
    """
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}; known: {sorted(EXTRAS)}")
    try:
        yield
    except ModuleNotFoundError as exc:
        owner = extra_of(exc.name)
        if owner is None:
            raise
        raise MissingExtraError(owner, feature) from exc
