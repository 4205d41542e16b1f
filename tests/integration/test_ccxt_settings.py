"""Endpoints come from settings: TRADELOOP_<EXCHANGE>_URL, tradeloop.toml, testnet switch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tradeloop.adapters.ccxt import CcxtHistorySource, create_exchange
from tradeloop.config.settings import DEFAULT_CACHE_ROOT, ExchangeSettings, load_settings
from tradeloop.core.errors import ConfigError
from tradeloop.testing.venue import LocalVenueServer, recorded_venues


@pytest.fixture(scope="module")
def venue(shared_data: Path) -> Iterator[LocalVenueServer]:
    with LocalVenueServer(recorded_venues(shared_data)) as server:
        yield server


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    monkeypatch.chdir(tmp_path)
    for name in ("TRADELOOP_CONFIG", "TRADELOOP_CACHE_ROOT", "TRADELOOP_BINANCE_URL"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_env_url_points_every_rest_host_of_ccxt_at_the_local_server(
    venue: LocalVenueServer, clean_env: pytest.MonkeyPatch
) -> None:
    # Arrange
    clean_env.setenv("TRADELOOP_BINANCE_URL", venue.url)
    clean_env.setenv("TRADELOOP_BINANCE_RATE_LIMIT_MS", "1")
    settings = load_settings()
    # Act
    source = CcxtHistorySource("binance", "perp", settings.exchange("binance"), settings.retry)
    symbol = source.resolve_symbol("ETH/USDT")
    # Assert
    assert symbol == "ETH/USDT:USDT"
    api = source.client.urls["api"]
    assert api["fapiPublic"] == f"{venue.url}/fapi/v1"
    assert api["fapiData"] == f"{venue.url}/futures/data"
    assert api["public"] == f"{venue.url}/api/v3"
    assert venue.count("/fapi/v1/exchangeInfo") >= 1


def test_settings_file_env_and_dotenv_merge_with_env_winning(clean_env: pytest.MonkeyPatch) -> None:
    # Arrange
    Path("tradeloop.toml").write_text(
        'cache_root = "market/cache"\n[exchanges.binance]\nrate_limit_ms = 5\n'
        'url = "http://127.0.0.1:1"\n[retry]\nmax_retries = 2\n'
    )
    Path(".env").write_text(
        "TRADELOOP_BYBIT_TESTNET=true\nTRADELOOP_BINANCE_URL=http://127.0.0.1:2\n"
    )
    clean_env.setenv("TRADELOOP_BINANCE_URL", "http://127.0.0.1:3/")
    # Act
    settings = load_settings()
    # Assert
    assert settings.cache_root == Path("market/cache")
    assert settings.exchange("binance") == ExchangeSettings(
        url="http://127.0.0.1:3", rate_limit_ms=5
    )
    assert settings.exchange("BYBIT").testnet is True
    assert settings.exchange("kraken") == ExchangeSettings()
    assert settings.retry.max_retries == 2


def test_unknown_setting_gets_a_did_you_mean_hint(clean_env: pytest.MonkeyPatch) -> None:
    Path("tradeloop.toml").write_text('cache_rot = "x"\n')
    with pytest.raises(ConfigError, match="Did you mean: 'cache_root'"):
        load_settings()


def test_default_cache_root_is_in_the_home_folder(clean_env: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert settings.cache_root == DEFAULT_CACHE_ROOT
    assert settings.resolved_cache_root() == Path.home() / ".tradeloop" / "cache"


def test_bad_url_is_a_config_error(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("TRADELOOP_BINANCE_URL", "127.0.0.1:8080")
    with pytest.raises(ConfigError, match="url must look like"):
        load_settings()


def test_testnet_switch_uses_the_sandbox_and_a_url_override_still_wins() -> None:
    # Act
    sandbox = create_exchange("binance", "spot", ExchangeSettings(testnet=True))
    overridden = create_exchange(
        "binance", "spot", ExchangeSettings(testnet=True, url="http://127.0.0.1:9")
    )
    # Assert
    assert "testnet" in sandbox.urls["api"]["public"]
    assert overridden.urls["api"]["public"] == "http://127.0.0.1:9/api/v3"


def test_unknown_exchange_and_symbol_are_config_errors(venue: LocalVenueServer) -> None:
    with pytest.raises(ConfigError, match="Did you mean: 'binance'"):
        create_exchange("binanse", "spot", ExchangeSettings())
    source = CcxtHistorySource("binance", "spot", ExchangeSettings(url=venue.url))
    with pytest.raises(ConfigError, match="no symbol 'DOGE/BTC'"):
        source.resolve_symbol("DOGE/BTC")
