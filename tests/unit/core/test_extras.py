"""The missing-extra error: which extra a package belongs to, and one message naming it."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import pytest
import typer

from tradeloop.cli.app import _command_name
from tradeloop.cli.failure import require
from tradeloop.core.errors import ConfigError
from tradeloop.core.extras import EXTRAS, MissingExtraError, extra_of, needs_extra, require_extra


class _NotInstalled:
    """A ``sys.meta_path`` finder for which ``names`` are not installed."""

    def __init__(self, *names: str) -> None:
        self.names = names

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name.partition(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


@pytest.fixture
def without_lightgbm(monkeypatch: pytest.MonkeyPatch) -> None:
    """lightgbm behaves as not installed (imported modules are restored afterwards)."""
    monkeypatch.setattr(sys, "meta_path", [_NotInstalled("lightgbm"), *sys.meta_path])
    for name in [m for m in sys.modules if m == "lightgbm" or m.startswith("lightgbm.")]:
        monkeypatch.delitem(sys.modules, name)


def test_each_package_belongs_to_one_extra() -> None:
    # Act
    owners = [extra_of(m) for modules in EXTRAS.values() for m in modules]
    # Assert
    assert owners == [e for e, modules in EXTRAS.items() for _ in modules]
    assert extra_of("sklearn.linear_model") == "ml"
    assert extra_of("psycopg.pq") == "live"
    assert extra_of("numpy") is None
    assert extra_of(None) is None


@pytest.mark.usefixtures("without_lightgbm")
def test_an_import_of_a_missing_extra_names_the_extra_and_the_install_command() -> None:
    # Act
    with pytest.raises(MissingExtraError) as caught, needs_extra("ml", "the gbm detector"):
        importlib.import_module("lightgbm")
    # Assert: a ConfigError (exit code 2 in the CLI) whose message says what to install
    assert isinstance(caught.value, ConfigError)
    assert str(caught.value) == ("the gbm detector needs the ml extra: pip install 'tradeloop[ml]'")
    assert (caught.value.extra, caught.value.feature) == ("ml", "the gbm detector")


def test_other_import_errors_pass_unchanged() -> None:
    # Act / Assert: a module of no extra is not turned into an extra's error
    with pytest.raises(ModuleNotFoundError) as caught, needs_extra("ml", "x"):
        importlib.import_module("tradeloop_no_such_module")
    assert not isinstance(caught.value, MissingExtraError)


@pytest.mark.usefixtures("without_lightgbm")
def test_require_extra_checks_without_importing() -> None:
    # Act / Assert: the ml extra misses lightgbm; the serve extra is complete
    with pytest.raises(MissingExtraError, match=r"tradeloop train needs the ml extra"):
        require_extra("ml", "tradeloop train")
    require_extra("serve", "tradeloop serve")
    require_extra("ml", "hmm regimes", modules=("hmmlearn",))
    assert "lightgbm" not in sys.modules
    with pytest.raises(ValueError, match="unknown extra"):
        require_extra("gpu", "x")


@pytest.mark.usefixtures("without_lightgbm")
def test_a_command_refused_for_a_missing_extra_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Act
    with pytest.raises(typer.Exit) as caught:
        require("ml", "tradeloop optimize")
    # Assert
    assert caught.value.exit_code == 2
    err = capsys.readouterr().err
    assert "tradeloop optimize needs the ml extra: pip install 'tradeloop[ml]'" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (["ml", "evaluate", "-s", "x"], "tradeloop ml evaluate"),
        (["serve", "--port", "8000"], "tradeloop serve"),
        (["backtest", "--model", "m"], "tradeloop backtest"),
        (["--version"], "tradeloop"),
        (["nonsense"], "tradeloop"),
    ],
)
def test_the_command_named_in_the_message(argv: list[str], name: str) -> None:
    # Act / Assert
    assert _command_name(argv) == name
