"""The seed's bare ``SIGNALS_ENABLED`` / ``SIGNAL_TOP_N`` variables work next to the prefixed ones."""

from __future__ import annotations

import pytest

from tradeloop.config.settings import Settings


@pytest.mark.parametrize("name", ["SIGNALS_ENABLED", "TRADELOOP_SIGNALS_ENABLED"])
def test_settings_signals_enabled_false_from_either_variable(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, "false")
    assert Settings().signals_enabled is False


def test_settings_signal_top_n_from_bare_variable_and_keyword(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SIGNAL_TOP_N", "7")
    assert Settings().signal_top_n == 7
    assert Settings(signal_top_n=3).signal_top_n == 3
