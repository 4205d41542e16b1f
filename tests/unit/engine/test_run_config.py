"""One RunConfig for every mode: the backtest's rules, the paper session's, the old name."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from tradeloop.core.errors import ConfigError
from tradeloop.engine import BacktestConfig as ExportedAlias
from tradeloop.engine import RunConfig as ExportedRunConfig
from tradeloop.engine.config import BacktestConfig, RunConfig
from tradeloop.engine.paper import PaperConfig, stored_run_config
from tradeloop.execution.config import FillPrice
from tradeloop.risk.config import RiskConfig

TABLE = {"profile": "default", "kill_switch": {"daily_loss_pct": 0.002}}


def _paper(tmp_path: Path, **kw: Any) -> PaperConfig:
    return PaperConfig(
        exchange="binance",
        symbols=("BTC/USDT",),
        timeframe="1m",
        run_id="r",
        state_url=str(tmp_path / "state.db"),
        status_path=tmp_path / "status.json",
        **kw,
    )


def test_backtest_config_old_name_is_the_run_config_class() -> None:
    # Act
    old = BacktestConfig(fee=0.001, timeframe="4h")
    # Assert: the same class under both names, from the module and the package
    assert BacktestConfig is RunConfig
    assert ExportedAlias is RunConfig
    assert ExportedRunConfig is RunConfig
    assert old == RunConfig(fee=0.001, timeframe="4h")


@pytest.mark.parametrize(
    ("risk", "profile", "daily_loss"),
    [(None, "permissive", None), ("default", "default", 0.02), (TABLE, "default", 0.002)],
)
def test_run_config_risk_given_as_name_or_table_holds_the_resolved_rules(
    risk: Any, profile: str, daily_loss: float | None
) -> None:
    # Act
    config = RunConfig(risk=risk)
    # Assert
    assert isinstance(config.risk, RiskConfig)
    assert config.risk.profile == profile
    assert config.risk.kill_switch.daily_loss_pct == daily_loss


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"balance": 0.0}, "balance"),
        ({"fee": 0.7}, "fee"),
        ({"fill_price": "mid"}, "fill_price"),
        ({"risk": {"limits": {"max_positon_pct": 0.1}}}, "max_position_pct"),
        ({"risk": 3}, "risk must be"),
    ],
)
def test_run_config_invalid_rule_raises_config_error_naming_it(
    kw: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        RunConfig(**kw)


def test_paper_config_is_a_run_config_whose_rules_reach_the_kernel_alone(tmp_path: Path) -> None:
    # Act
    paper = _paper(tmp_path, balance=5_000.0, slippage_bps=2.0, fill_price="close", risk=TABLE)
    rules = paper.rules()
    # Assert: the shared fields are the run config's, checked and resolved the same way
    assert isinstance(paper, RunConfig)
    assert type(rules) is RunConfig
    assert rules == RunConfig(
        balance=5_000.0,
        slippage_bps=2.0,
        fill_price=FillPrice.CLOSE,
        timeframe="1m",
        risk=paper.risk,
    )
    assert paper.risk.kill_switch.daily_loss_pct == 0.002
    assert paper.risk_setting == TABLE  # what the run stores and a restart compares


def test_run_config_rules_of_a_plain_config_is_itself() -> None:
    config = RunConfig(fee=0.001)
    assert config.rules() is config


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"fee": 0.001}, "fee"),
        ({"start": 1}, "start"),
        ({"end": 10}, "end"),
        ({"trade_start": 5}, "trade_start"),
        ({"close_at_end": True}, "close_at_end"),
    ],
)
def test_paper_config_field_of_a_fixed_window_is_refused(
    tmp_path: Path, kw: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigError, match=f"a paper session takes no {field}:"):
        _paper(tmp_path, **kw)


def test_paper_config_invalid_shared_rule_is_refused_like_a_backtest(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="balance must be > 0"):
        _paper(tmp_path, balance=-1.0)
    with pytest.raises(ConfigError, match="Did you mean: 'default'"):
        _paper(tmp_path, risk="defualt")


def test_paper_config_replace_keeps_the_stored_risk_table(tmp_path: Path) -> None:
    # Arrange: `tradeloop run` restarts a session with fresh=True through replace()
    paper = _paper(tmp_path, risk=TABLE)
    # Act
    fresh = dataclasses.replace(paper, fresh=True)
    # Assert
    assert fresh.fresh
    assert fresh.risk_setting == TABLE
    assert fresh.risk == paper.risk


def test_paper_config_named_profile_object_is_stored_by_name(tmp_path: Path) -> None:
    assert _paper(tmp_path, risk=RiskConfig.default()).risk_setting == "default"
    assert _paper(tmp_path).risk_setting == "permissive"


def test_paper_config_changed_risk_object_is_refused(tmp_path: Path) -> None:
    # Arrange: rules that are no named profile cannot be stored as a name or a table
    changed = dataclasses.replace(RiskConfig.default(), profile="permissive")
    # Act / Assert
    with pytest.raises(ConfigError, match="profile name or a risk file's table"):
        _paper(tmp_path, risk=changed)


def test_paper_config_risk_disagreeing_with_its_setting_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="differ"):
        _paper(tmp_path, risk=RiskConfig.permissive(), risk_setting="default")


def test_stored_run_config_rebuilds_the_rules_a_paper_run_stored(tmp_path: Path) -> None:
    # Arrange: the run metadata keys a paper session writes for its rules
    paper = _paper(tmp_path, balance=7_500.0, slippage_bps=1.5, fill_price="close", risk=TABLE)
    meta = {
        "balance": paper.balance,
        "slippage_bps": paper.slippage_bps,
        "fill_price": paper.fill_price.value,
        "allow_short": paper.allow_short,
        "risk": paper.risk_setting,
    }
    # Act
    replay = stored_run_config(meta, trade_start=123)
    # Assert: the replay trades by the session's rules, from the first live bar
    assert replay == dataclasses.replace(paper.rules(), timeframe=None, trade_start=123)
