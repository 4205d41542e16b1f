"""Settings of the signal loop: bare SIGNALS_ENABLED / SIGNAL_TOP_N and the Redis URL."""

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


def test_settings_redis_url_is_not_taken_for_an_exchange_endpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # TRADELOOP_<EXCHANGE>_URL is the exchange pattern; TRADELOOP_REDIS_URL is a setting
    monkeypatch.setenv("TRADELOOP_REDIS_URL", "redis://127.0.0.1:6390/2")
    monkeypatch.setenv("TRADELOOP_BINANCE_URL", "http://127.0.0.1:8080")
    settings = Settings()
    assert settings.redis_url == "redis://127.0.0.1:6390/2"
    assert "redis" not in settings.exchanges
    assert settings.exchanges["binance"].url == "http://127.0.0.1:8080"
