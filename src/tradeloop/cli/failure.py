"""How the CLI reports a failure: the error, where user code raised it, the traceback (-v)."""

from __future__ import annotations

import traceback
from pathlib import Path
from types import TracebackType

import typer
from rich.markup import escape

from tradeloop.cli.console import Console
from tradeloop.core.errors import ConfigError, DataError, StrategyError
from tradeloop.core.extras import MissingExtraError, require_extra

__all__ = ["EXIT_CODES", "fail", "print_failure", "require", "user_frame"]

_PACKAGE = str(Path(__file__).resolve().parents[1])

#: the exit code of each error kind (anything else: 1)
EXIT_CODES: dict[type[Exception], int] = {ConfigError: 2, DataError: 3, StrategyError: 4}

_err_console = Console(stderr=True)


def user_frame(exc: BaseException) -> traceback.FrameSummary | None:
    """The innermost frame of ``exc``'s cause chain that is not tradeloop's or a library's.

    For a strategy's exception that is the line of the strategy that raised (or called the
    library that raised).
    """
    cause: BaseException | None = exc
    frames: list[traceback.FrameSummary] = []
    while cause is not None:
        tb: TracebackType | None = cause.__traceback__
        frames = list(traceback.extract_tb(tb)) or frames
        cause = cause.__cause__
    own = [f for f in frames if _is_user_file(f.filename)]
    return own[-1] if own else None


def _library_roots() -> tuple[str, ...]:
    import sysconfig

    paths = sysconfig.get_paths()
    roots = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    return (_PACKAGE, *sorted(str(Path(r).resolve()) for r in roots))


def _is_user_file(filename: str) -> bool:
    """Whether a frame's file is the user's: a real file outside tradeloop, the standard
    library and installed packages (not generated code such as a dataclass's ``<string>``
    ``__init__``, nor a compiled module's relative ``pandas/_libs/...pyx``)."""
    if filename.startswith("<") or "site-packages" in filename:
        return False
    path = Path(filename)
    if not path.is_absolute() or not path.is_file():
        return False
    resolved = str(path.resolve())
    return not resolved.startswith(_library_roots())


def print_failure(exc: BaseException, console: Console, *, verbose: bool = False) -> None:
    """Print ``Kind: message``, the user-code location, and with ``verbose`` the traceback."""
    console.print(
        f"[bold red]{type(exc).__name__}:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
    )
    # a missing extra is the user's install, not a line of their code
    frame = None if isinstance(exc, MissingExtraError) else user_frame(exc)
    if frame is not None:
        console.print(
            f"  at {frame.filename}:{frame.lineno} in {frame.name}: {frame.line or ''}".rstrip(),
            highlight=False,
            soft_wrap=True,
        )
    cause = exc.__cause__
    if verbose and cause is not None:
        console.print(
            "".join(traceback.format_exception(cause)).rstrip(), highlight=False, markup=False
        )
    elif cause is not None and frame is not None:
        console.print("  (-v shows the whole traceback)", style="dim", highlight=False)


def fail(exc: BaseException, verbose: bool = False) -> typer.Exit:
    """The CLI's one error report: print ``exc`` on stderr (with the user-code line, and the
    traceback when ``verbose``) and return the :class:`typer.Exit` its kind maps to
    (:data:`EXIT_CODES`)."""
    print_failure(exc, _err_console, verbose=verbose)
    for cls, code in EXIT_CODES.items():
        if isinstance(exc, cls):
            return typer.Exit(code)
    return typer.Exit(1)


def require(extra: str, feature: str) -> None:
    """End the command (exit 2) with one line naming ``extra`` and its install command unless
    ``extra``'s packages are installed: ``require("serve", "tradeloop serve")`` prints
    ``tradeloop serve needs the serve extra: pip install 'tradeloop[serve]'``."""
    try:
        require_extra(extra, feature)
    except MissingExtraError as exc:
        raise fail(exc) from None
