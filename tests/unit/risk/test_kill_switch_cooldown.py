"""kill_switch.resume_after: a drawdown or black-swan halt lifts itself after the cool-down."""

from __future__ import annotations

from tradeloop.risk.config import KillSwitchConfig
from tradeloop.risk.killswitch import KillSwitch, TradingState

HOUR = 3_600_000_000_000


def test_drawdown_halt_lifts_after_the_cooldown_and_rebases_the_peak() -> None:
    # Arrange
    ks = KillSwitch(KillSwitchConfig(daily_loss_pct=None, resume_after="72h"))
    ks.update(0, 100.0)
    ks.update(HOUR, 80.0)  # 20% drawdown: halted
    # Act
    ks.update(72 * HOUR, 79.0)  # 71h after the halt: still halted
    still = ks.state
    ks.update(73 * HOUR, 78.0)  # 72h after: lifted at equity 78
    # Assert
    assert still is TradingState.HALTED
    assert ks.state is TradingState.ACTIVE
    assert [(e.cause, e.state_to) for e in ks.events] == [
        ("drawdown", TradingState.HALTED),
        ("cooldown", TradingState.ACTIVE),
    ]
    assert ks.events[-1].ts == 73 * HOUR
    assert ks.peak == 78.0


def test_black_swan_halt_lifts_after_the_cooldown_also_across_a_restart() -> None:
    # Arrange
    ks = KillSwitch(KillSwitchConfig(daily_loss_pct=None, resume_after="24h"))
    ks.update(0, 100.0)
    ks.black_swan(HOUR, "BTC fell 25%")
    restored = KillSwitch(ks.config)
    restored.restore_state(ks.export_state())
    # Act
    restored.update(24 * HOUR, 100.0)
    before = restored.state
    restored.update(25 * HOUR, 100.0)
    # Assert
    assert before is TradingState.HALTED
    assert restored.state is TradingState.ACTIVE
    assert restored.events[-1].cause == "cooldown"


def test_without_resume_after_only_an_override_lifts_a_halt() -> None:
    # Arrange
    ks = KillSwitch(KillSwitchConfig(daily_loss_pct=None))
    ks.update(0, 100.0)
    ks.black_swan(HOUR, "crash")
    # Act
    ks.update(10_000 * HOUR, 100.0)
    # Assert
    assert ks.state is TradingState.HALTED
