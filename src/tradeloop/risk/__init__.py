"""Risk: the pre-trade gate and portfolio guardian used identically in backtest, paper and live.

``RiskEngine.check(intent, portfolio, market) -> Order | Rejection`` sizes every signal and
applies the limits; ``RiskEngine.on_bar`` runs the kill switches and the black-swan protocol.
See :mod:`tradeloop.risk.engine` for the order of the checks and :mod:`tradeloop.risk.config`
for the profiles and the TOML file.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tradeloop.core.rejection import Rejection
    from tradeloop.risk.backtest_var import (
        KupiecResult,
        VarBacktestResult,
        kupiec_pof,
        var_backtest,
    )
    from tradeloop.risk.config import (
        BlackSwanConfig,
        KillSwitchConfig,
        LimitsConfig,
        OverridesConfig,
        RiskConfig,
        SizingConfig,
        StopsConfig,
        VarConfig,
        load_risk_config,
        profile_for_mode,
        risk_config_from_mapping,
    )
    from tradeloop.risk.engine import RiskEngine
    from tradeloop.risk.killswitch import RiskEvent, TradingState
    from tradeloop.risk.limits import LeverageController, RejectReason
    from tradeloop.risk.market import MarketContext, RollingMarket
    from tradeloop.risk.overrides import AuditLog, Override, OverrideRefused, issue_token
    from tradeloop.risk.report import RiskReport, read_risk_report, write_risk_report

# Names are imported on first use, so importing one submodule (the kernel imports
# ``tradeloop.risk.engine``) does not load the rest.
_WHERE = {
    "Rejection": "tradeloop.core.rejection",
    "KupiecResult": "tradeloop.risk.backtest_var",
    "VarBacktestResult": "tradeloop.risk.backtest_var",
    "kupiec_pof": "tradeloop.risk.backtest_var",
    "var_backtest": "tradeloop.risk.backtest_var",
    "BlackSwanConfig": "tradeloop.risk.config",
    "KillSwitchConfig": "tradeloop.risk.config",
    "LimitsConfig": "tradeloop.risk.config",
    "OverridesConfig": "tradeloop.risk.config",
    "RiskConfig": "tradeloop.risk.config",
    "SizingConfig": "tradeloop.risk.config",
    "StopsConfig": "tradeloop.risk.config",
    "VarConfig": "tradeloop.risk.config",
    "load_risk_config": "tradeloop.risk.config",
    "profile_for_mode": "tradeloop.risk.config",
    "risk_config_from_mapping": "tradeloop.risk.config",
    "RiskEngine": "tradeloop.risk.engine",
    "RiskEvent": "tradeloop.risk.killswitch",
    "TradingState": "tradeloop.risk.killswitch",
    "LeverageController": "tradeloop.risk.limits",
    "RejectReason": "tradeloop.risk.limits",
    "MarketContext": "tradeloop.risk.market",
    "RollingMarket": "tradeloop.risk.market",
    "AuditLog": "tradeloop.risk.overrides",
    "Override": "tradeloop.risk.overrides",
    "OverrideRefused": "tradeloop.risk.overrides",
    "issue_token": "tradeloop.risk.overrides",
    "RiskReport": "tradeloop.risk.report",
    "read_risk_report": "tradeloop.risk.report",
    "write_risk_report": "tradeloop.risk.report",
}

__all__ = [
    "AuditLog",
    "BlackSwanConfig",
    "KillSwitchConfig",
    "KupiecResult",
    "LeverageController",
    "LimitsConfig",
    "MarketContext",
    "Override",
    "OverrideRefused",
    "OverridesConfig",
    "RejectReason",
    "Rejection",
    "RiskConfig",
    "RiskEngine",
    "RiskEvent",
    "RiskReport",
    "RollingMarket",
    "SizingConfig",
    "StopsConfig",
    "TradingState",
    "VarBacktestResult",
    "VarConfig",
    "issue_token",
    "kupiec_pof",
    "load_risk_config",
    "profile_for_mode",
    "read_risk_report",
    "risk_config_from_mapping",
    "var_backtest",
    "write_risk_report",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'tradeloop.risk' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
