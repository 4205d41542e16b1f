"""The "at file:line" of a failure names the user's own code, never generated or library code."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from tradeloop.cli.console import Console
from tradeloop.cli.failure import print_failure, user_frame


def _printed(exc: BaseException) -> str:
    out = io.StringIO()
    print_failure(exc, Console(file=out, width=200, color_system=None))
    return out.getvalue()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # RunConfig's generated __init__ ('<string>') raises from __post_init__
        (["--fee", "-0.1"], "fee is a fraction"),
        # importlib raises from the standard library
        (["--strategy", "no_such_module.sub:Cls"], "cannot import strategy module"),
    ],
)
def test_errors_raised_in_generated_or_library_code_name_no_location(
    args: list[str], message: str, sample_1h: Path, tmp_path: Path
) -> None:
    # Act: the real command line
    out = subprocess.run(
        [sys.executable, "-m", "tradeloop", "backtest", "-d", str(sample_1h),
         "--out", str(tmp_path / "run"), *(["-s", "sma_cross"] if "--strategy" not in args else []),
         *args],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    # Assert: the one-line error, and no "at <string>:17" or standard-library location
    assert out.returncode == 2, out.stderr
    assert message in out.stderr
    assert "\n  at " not in out.stderr
    assert "<string>" not in out.stderr


def test_the_users_own_file_is_named_with_its_line(tmp_path: Path) -> None:
    # Arrange: a user's module that raises
    source = tmp_path / "user_code.py"
    source.write_text("def go():\n    raise RuntimeError('from user code')\n")
    namespace: dict[str, object] = {}
    exec(compile(source.read_text(), str(source), "exec"), namespace)
    with pytest.raises(RuntimeError) as info:
        namespace["go"]()  # type: ignore[operator]
    # Act
    text = _printed(info.value)
    # Assert
    frame = user_frame(info.value)
    assert frame is not None
    assert (frame.filename, frame.lineno) == (str(source), 2)
    assert f"at {source}:2 in go" in text
