"""Strategy discovery, parameters and the user-code trust boundary."""

from __future__ import annotations

from pathlib import Path

import pytest

from tradeloop.core.errors import ConfigError
from tradeloop.strategy.registry import (
    discover_strategies,
    load_strategy_class,
    scan_strategies,
)

USER_STRATEGY = '''
from tradeloop.strategy import NO_SIGNALS, Param, Strategy


class Breakout(Strategy):
    """My breakout."""

    name = "my_breakout"
    lookback = Param(55, min=5, help="bars")

    def on_bar(self, view, portfolio):
        return NO_SIGNALS
'''


def test_discover_strategies_without_user_folder_finds_all_examples() -> None:
    # Act
    found = discover_strategies(None)
    # Assert
    assert {"sma_cross", "rsi_reversion", "donchian_breakout", "vwap_momentum", "mtf_trend"} <= set(
        found
    )
    assert found["mtf_trend"].cls.timeframes == ("15m", "4h")


def test_discover_strategies_user_folder_adds_its_strategies(tmp_path: Path) -> None:
    # Arrange
    (tmp_path / "breakout.py").write_text(USER_STRATEGY)
    # Act
    found = discover_strategies(tmp_path)
    # Assert
    assert found["my_breakout"].origin.endswith("breakout.py")
    assert found["my_breakout"].cls.parameters()["lookback"].default == 55
    assert "sma_cross" in found


def test_discover_strategies_broken_user_file_names_the_file(tmp_path: Path) -> None:
    # Arrange
    (tmp_path / "broken.py").write_text("import nonexistent_module_xyz\n")
    # Act / Assert
    with pytest.raises(ConfigError, match=r"broken\.py"):
        discover_strategies(tmp_path)


def test_scan_strategies_keeps_the_files_that_import_beside_a_broken_one(tmp_path: Path) -> None:
    # Arrange
    (tmp_path / "breakout.py").write_text(USER_STRATEGY)
    (tmp_path / "broken.py").write_text("import nonexistent_module_xyz\n")
    # Act
    found, broken = scan_strategies(tmp_path)
    # Assert
    assert "my_breakout" in found
    assert "sma_cross" in found
    assert list(broken) == [tmp_path / "broken.py"]
    assert "nonexistent_module_xyz" in str(broken[tmp_path / "broken.py"])
    assert load_strategy_class("my_breakout", tmp_path).strategy_name() == "my_breakout"
    with pytest.raises(ConfigError, match=r"unknown strategy 'nope', and .*broken\.py"):
        load_strategy_class("nope", tmp_path)


def test_load_strategy_class_misspelt_name_suggests_the_closest() -> None:
    with pytest.raises(ConfigError, match="Did you mean: 'sma_cross'"):
        load_strategy_class("sma_crsos", None)


def test_load_strategy_class_module_reference_resolves() -> None:
    cls = load_strategy_class("tradeloop.strategy.examples.sma_cross:SmaCross", None)
    assert cls.strategy_name() == "sma_cross"


def test_strategy_unknown_parameter_error_suggests_the_closest() -> None:
    cls = load_strategy_class("sma_cross", None)
    with pytest.raises(ConfigError, match="Did you mean: 'fast'"):
        cls(fsat=5)


def test_strategy_text_parameters_are_converted_and_checked() -> None:
    # Arrange
    cls = load_strategy_class("sma_cross", None)
    # Act
    strategy = cls(fast="5", slow="20", short="true")
    # Assert
    assert (strategy.fast, strategy.slow, strategy.short) == (5, 20, True)
    with pytest.raises(ConfigError, match="cannot read 'abc' as int"):
        cls(fast="abc")
    with pytest.raises(ConfigError, match="below its minimum"):
        cls(fast=0)
    with pytest.raises(ConfigError, match="must be below slow"):
        cls(fast=30, slow=10)
