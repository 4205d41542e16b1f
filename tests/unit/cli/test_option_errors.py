"""Bad option and settings values end in one line naming the field, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tradeloop.cli.app import app
from tradeloop.config.settings import ExchangeSettings, load_settings
from tradeloop.core.errors import ConfigError


def test_a_settings_value_that_must_be_json_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Arrange
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRADELOOP_EXCHANGES", "notjson")
    # Act / Assert
    with pytest.raises(ConfigError, match=r"invalid settings.*exchanges"):
        load_settings()


def test_an_exchange_url_without_a_scheme_is_a_config_error_naming_the_field() -> None:
    # Act / Assert
    with pytest.raises(ConfigError, match="url must look like http://host"):
        ExchangeSettings().with_changes(url="127.0.0.1:8766/x")
    assert ExchangeSettings().with_changes(url="http://127.0.0.1:8766/").url == (
        "http://127.0.0.1:8766"
    )


def test_a_negative_seed_is_refused_as_an_option_value(sample_1h: Path, tmp_path: Path) -> None:
    # Act
    result = CliRunner().invoke(
        app, ["backtest", "-s", "sma_cross", "-d", str(sample_1h), "--seed", "-1",
              "--out", str(tmp_path / "run")],
    )  # fmt: skip
    # Assert
    assert result.exit_code == 2
    assert "--seed" in result.output
    assert not (tmp_path / "run").exists()
