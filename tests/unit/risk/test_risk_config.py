"""Risk configuration: the issue's defaults, the two profiles, the TOML file and its errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tradeloop.core.errors import ConfigError
from tradeloop.engine.config import RunConfig
from tradeloop.risk.config import (
    RiskConfig,
    load_risk_config,
    profile_for_mode,
    risk_config_from_mapping,
)


def test_default_profile_has_the_issue_defaults() -> None:
    # Arrange / Act
    cfg = RiskConfig.default()
    # Assert
    lim, ks, bs, st = cfg.limits, cfg.kill_switch, cfg.black_swan, cfg.stops
    assert (lim.max_position_pct, lim.max_risk_per_trade, lim.max_open_positions) == (
        0.10,
        0.02,
        10,
    )
    assert (lim.max_gross_leverage, lim.max_correlation, lim.correlation_window) == (3.0, 0.7, 100)
    assert (st.trailing_activation_pct, st.trailing_pct) == (0.02, 0.01)
    assert (ks.daily_loss_pct, ks.drawdown_reduce_pct, ks.drawdown_halt_pct) == (0.02, 0.10, 0.15)
    assert (bs.enabled, bs.drop_pct) == (True, 0.20)
    assert cfg.var.levels == (0.95, 0.99)
    assert not cfg.is_passthrough
    assert cfg.needs_bar_updates


def test_permissive_profile_is_a_passthrough_without_bar_work() -> None:
    # Arrange / Act
    cfg = RiskConfig.permissive()
    # Assert
    assert cfg.is_passthrough
    assert not cfg.needs_bar_updates


def test_run_modes_pick_their_profiles() -> None:
    # Arrange / Act / Assert
    assert profile_for_mode("backtest").profile == "permissive"
    assert profile_for_mode("paper").profile == "default"
    assert profile_for_mode("live").profile == "default"
    with pytest.raises(ConfigError, match="Did you mean: 'paper'"):
        profile_for_mode("papr")


def test_run_config_defaults_to_permissive_and_accepts_a_profile_name() -> None:
    # Arrange / Act
    plain = RunConfig()
    named = RunConfig(risk="default")  # type: ignore[arg-type]
    # Assert
    assert plain.risk == RiskConfig.permissive()
    assert named.risk == RiskConfig.default()


def test_toml_file_changes_keys_of_a_profile(tmp_path: Path) -> None:
    # Arrange
    path = tmp_path / "risk.toml"
    path.write_text(
        'profile = "default"\n'
        "[limits]\nmax_position_pct = 0.05\nmax_var_pct = false\n"
        "[limits.regime_leverage]\nhigh_vol = 0.25\n"
        '[black_swan]\ndrop_pct = 0.1\nwindow = "12h"\n'
        "[var]\nlevels = [0.9, 0.99]\n",
        encoding="utf-8",
    )
    # Act
    cfg = load_risk_config(path)
    # Assert
    assert cfg.limits.max_position_pct == 0.05
    assert cfg.limits.max_var_pct is None  # false switches it off
    assert dict(cfg.limits.regime_leverage)["high_vol"] == 0.25
    assert dict(cfg.limits.regime_leverage)["crisis"] == 0.0  # the others are kept
    assert (cfg.black_swan.drop_pct, cfg.black_swan.window_ns) == (0.1, 12 * 3_600_000_000_000)
    assert cfg.var.levels == (0.9, 0.99)
    assert cfg.limits.max_open_positions == 10  # untouched keys keep the profile's value
    assert cfg.source == str(path)


def test_toml_risk_table_and_permissive_base() -> None:
    # Arrange / Act
    cfg = risk_config_from_mapping(
        {"risk": {"profile": "permissive", "limits": {"max_open_positions": 3}}}
    )
    # Assert
    assert cfg.profile == "permissive"
    assert cfg.limits.max_open_positions == 3
    assert cfg.limits.max_position_pct is None
    assert not cfg.is_passthrough


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"limitz": {}}, "unknown risk setting 'limitz'. Did you mean: 'limits'?"),
        (
            {"limits": {"max_positon_pct": 0.1}},
            "'limits.max_positon_pct'. Did you mean: 'max_position_pct'",
        ),
        ({"profile": "defualt"}, "Did you mean: 'default'?"),
        ({"limits": {"max_open_positions": 2.5}}, "max_open_positions must be an integer"),
        ({"limits": {"max_position_pct": "high"}}, "max_position_pct must be a number"),
        ({"limits": {"max_position_pct": -0.1}}, "x.toml: limits.max_position_pct must be in"),
        ({"sizing": {"method": "kely"}}, "Did you mean: 'kelly'?"),
        ({"black_swan": {"window": "soon"}}, "expected a duration"),
        (
            {"kill_switch": {"drawdown_reduce_pct": 0.2, "drawdown_halt_pct": 0.1}},
            "must not exceed",
        ),
        ({"limits": 3}, "[limits] must be a table"),
    ],
)
def test_invalid_settings_raise_config_error_naming_them(
    data: dict[str, object], message: str
) -> None:
    # Arrange / Act / Assert
    with pytest.raises(ConfigError) as info:
        risk_config_from_mapping(data, "x.toml")
    assert message in str(info.value)


def test_missing_or_broken_file_raises_config_error(tmp_path: Path) -> None:
    # Arrange
    broken = tmp_path / "broken.toml"
    broken.write_text("[limits\n", encoding="utf-8")
    # Act / Assert
    with pytest.raises(ConfigError, match="cannot read risk config"):
        load_risk_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_risk_config(broken)
