"""One :class:`Settings` object: ``tradeloop.toml`` + ``TRADELOOP_*`` environment + ``.env``.

Sources, highest priority first:

1. keyword arguments to ``Settings(...)``;
2. environment variables ``TRADELOOP_<FIELD>`` (nested fields with ``__``, e.g.
   ``TRADELOOP_RETRY__MAX_RETRIES=3``) and the per-exchange shorthands
   ``TRADELOOP_<EXCHANGE>_URL``, ``TRADELOOP_<EXCHANGE>_WS_URL``, ``TRADELOOP_<EXCHANGE>_TESTNET``,
   ``TRADELOOP_<EXCHANGE>_RATE_LIMIT_MS`` and ``TRADELOOP_<EXCHANGE>_TIMEOUT_MS``
   (``TRADELOOP_BINANCE_URL=http://127.0.0.1:8080``,
   ``TRADELOOP_BINANCE_WS_URL=ws://127.0.0.1:9000``);
3. the same names in a ``.env`` file in the working directory;
4. ``tradeloop.toml`` in the working directory (or the file named by ``TRADELOOP_CONFIG``)::

       cache_root = "data/cache"

       [exchanges.binance]
       url = "http://127.0.0.1:8080"   # every REST host of the exchange goes here
       ws_url = "ws://127.0.0.1:9000"  # every WebSocket stream host goes here
       testnet = false
       rate_limit_ms = 50

       [retry]
       max_retries = 8

5. defaults: the candle cache lives in ``~/.tradeloop/cache``.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from tradeloop.config.redact import redact, register_credentials, register_secret
from tradeloop.core.errors import ConfigError, did_you_mean

__all__ = [
    "DEFAULT_CACHE_ROOT",
    "ExchangeSettings",
    "RetrySettings",
    "Settings",
    "load_settings",
]

DEFAULT_CACHE_ROOT = Path("~/.tradeloop/cache")
_PREFIX = "TRADELOOP_"
_CONFIG_ENV = "TRADELOOP_CONFIG"
_EXCHANGE_FIELDS = (
    "rate_limit_ms",
    "timeout_ms",
    "testnet",
    "ws_url",
    "url",
    "api_key",
    "api_secret",
    "secret_command",
)
_EXCHANGE_ENV = re.compile(
    r"^TRADELOOP_([A-Z0-9]+)_(" + "|".join(f.upper() for f in _EXCHANGE_FIELDS) + r")$"
)


class ExchangeSettings(BaseModel):
    """How to reach one exchange.

    Attributes
    ----------
    url
        Base URL (scheme, host, optional port) that replaces the host of every REST endpoint
        of the exchange, e.g. ``http://127.0.0.1:8080`` for a local server that speaks the
        exchange's API. None keeps the exchange's own hosts.
    ws_url
        Base URL (``ws://`` or ``wss://``, host, optional port) that replaces scheme and host of
        every WebSocket stream of the exchange (paths are kept), e.g. ``ws://127.0.0.1:9000``
        for a local replay server. None keeps the exchange's own stream hosts.
    testnet
        Use the exchange's testnet/sandbox endpoints where the client library supports one.
        ``url`` (and ``ws_url`` for streams) still wins when both are set.
    rate_limit_ms
        Minimum milliseconds between requests of unit cost (None keeps the library's value).
    timeout_ms
        Request timeout.
    api_key, api_secret
        Trading keys (``TRADELOOP_<EXCHANGE>_API_KEY`` / ``_API_SECRET``, environment or
        ``.env``); never shown in ``repr``, logs or errors.
    secret_command
        A command printing the secret (a password manager's CLI), run without a shell when
        ``api_secret`` is not set (``TRADELOOP_<EXCHANGE>_SECRET_COMMAND``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = None
    ws_url: str | None = None
    testnet: bool = False
    rate_limit_ms: float | None = Field(default=None, ge=0)
    timeout_ms: int = Field(default=10_000, gt=0)
    api_key: SecretStr | None = None
    api_secret: SecretStr | None = None
    secret_command: str | None = None

    def with_changes(self, **changes: Any) -> ExchangeSettings:
        """A copy with ``changes`` (command-line overrides) applied and checked.

        Raises
        ------
        ConfigError
            Naming each invalid field (``url must look like http://host[:port]...``).
        """
        from pydantic import ValidationError

        try:
            return ExchangeSettings(**{**self.model_dump(), **changes})
        except ValidationError as exc:
            raise ConfigError(_problems(exc)) from None

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"url must look like http://host[:port], got {value!r}")
        return value.rstrip("/")

    @field_validator("ws_url")
    @classmethod
    def _check_ws_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not re.match(r"^wss?://[^/\s]+", value):
            raise ValueError(f"ws_url must look like ws://host[:port], got {value!r}")
        return value.rstrip("/")


class RetrySettings(BaseModel):
    """Retries of transient failures (network errors, 5xx, 429/418 rate limits).

    The wait before attempt ``k`` (from 1) is ``min(backoff_max_s, backoff_base_s * 2**(k-1))``
    or the server's ``Retry-After`` when it sends one (never less).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_retries: int = Field(default=8, ge=0)
    backoff_base_s: float = Field(default=0.5, ge=0)
    backoff_max_s: float = Field(default=60.0, ge=0)


class Settings(BaseSettings):
    """Process-wide settings (see the module docstring for the sources and their order)."""

    model_config = SettingsConfigDict(
        env_prefix=_PREFIX,
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
        frozen=True,
    )

    cache_root: Path = Field(
        default=DEFAULT_CACHE_ROOT,
        description="Root of the Parquet candle cache: {root}/{exchange}/{market}/{SYMBOL}/...",
    )
    exchanges: dict[str, ExchangeSettings] = Field(default_factory=dict)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    signals_enabled: bool = Field(
        default=True,
        validation_alias=AliasChoices(
            "signals_enabled", f"{_PREFIX}SIGNALS_ENABLED", "SIGNALS_ENABLED"
        ),
        description="Run the adaptive signal loop (TRADELOOP_SIGNALS_ENABLED or SIGNALS_ENABLED).",
    )
    signal_top_n: int = Field(
        default=5,
        ge=1,
        validation_alias=AliasChoices("signal_top_n", f"{_PREFIX}SIGNAL_TOP_N", "SIGNAL_TOP_N"),
        description="Liquidation zones per update (TRADELOOP_SIGNAL_TOP_N or SIGNAL_TOP_N).",
    )
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", description="Message bus URL.")
    state_url: str = Field(
        default="~/.tradeloop/state.db",
        description="State store of paper/live runs: a SQLite file or a postgresql:// URL.",
    )
    discord_webhook_url: str | None = Field(
        default=None, description="Discord webhook for paper/live alerts (None: log only)."
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="API key for `tradeloop serve`'s control routes (header X-API-Key); "
        "None: control routes refused.",
    )
    notify_urls: tuple[SecretStr, ...] = Field(
        default=(),
        description="Alert channels besides Discord, as apprise URLs (tgram://, slack://, "
        "mailto://, json://...); secrets: never logged.",
    )
    analytics_path: Path = Field(
        default=Path("~/.tradeloop/analytics.duckdb"),
        description="DuckDB file of signal feedback and adaptive weights.",
    )
    signal_channel_prefix: str = Field(default="liquidation:signals")
    feedback_channel_prefix: str = Field(default="liquidation:feedback")
    weights_channel: str = Field(
        default="liquidation:weights",
        description="Topic on which the feedback consumer broadcasts each weight version "
        "(its last message is retained in Redis for publishers).",
    )
    adaptive_alpha: float = Field(default=0.2, gt=0, le=1, description="EMA step of weights.")

    @field_validator("exchanges", mode="before")
    @classmethod
    def _lower_names(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k).lower(): v for k, v in value.items()}
        return value

    def exchange(self, name: str) -> ExchangeSettings:
        """Return the settings of exchange ``name`` (defaults when none are configured)."""
        return self.exchanges.get(name.lower(), ExchangeSettings())

    def resolved_cache_root(self) -> Path:
        """Return ``cache_root`` with ``~`` expanded."""
        return self.cache_root.expanduser()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Order the sources: init, env, exchange env shorthands, .env, tradeloop.toml."""
        return (
            init_settings,
            env_settings,
            _ExchangeShorthandSource(settings_cls),
            dotenv_settings,
            _TomlSource(settings_cls),
        )


class _ExchangeShorthandSource(PydanticBaseSettingsSource):
    """``TRADELOOP_<EXCHANGE>_<FIELD>`` from the environment, then from ``.env``."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        found: dict[str, dict[str, str]] = {}
        for source in (_dotenv_values(), dict(os.environ)):  # environment wins
            for key, value in source.items():
                match = _EXCHANGE_ENV.match(key.upper())
                if match is None or value is None:
                    continue
                if f"{match.group(1)}_{match.group(2)}".lower() in Settings.model_fields:
                    continue  # a setting of its own (TRADELOOP_REDIS_URL), not an exchange
                found.setdefault(match.group(1).lower(), {})[match.group(2).lower()] = value
        return {"exchanges": found} if found else {}


class _TomlSource(PydanticBaseSettingsSource):
    """``tradeloop.toml`` (or ``$TRADELOOP_CONFIG``); unknown keys raise with a hint."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        explicit = os.environ.get(_CONFIG_ENV)
        path = Path(explicit) if explicit else Path("tradeloop.toml")
        if not path.is_file():
            if explicit:
                raise ConfigError(f"{_CONFIG_ENV}={explicit}: file not found")
            return {}
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read settings: {exc}") from exc
        known = set(Settings.model_fields)
        for key in data:
            if key not in known:
                raise ConfigError(f"{path}: unknown setting {key!r}.{did_you_mean(key, known)}")
        return data


def _dotenv_values() -> dict[str, str | None]:
    env_file = Path(".env")
    if not env_file.is_file():
        return {}
    from dotenv import dotenv_values  # a dependency of pydantic-settings

    return dict(dotenv_values(env_file))


def load_settings(**overrides: Any) -> Settings:
    """Build :class:`Settings` from all sources, turning validation errors into ConfigError.

    Raises
    ------
    ConfigError
        If a value is invalid or ``tradeloop.toml`` has an unknown key.
    """
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(f"invalid settings: {_problems(exc)}") from None
    except SettingsError as exc:  # a value that must be JSON (TRADELOOP_EXCHANGES) is not
        cause = exc.__cause__ or exc
        raise ConfigError(
            f"invalid settings: {redact(str(exc))} ({type(cause).__name__}: {redact(str(cause))})"
        ) from None
    _register_secrets(settings)
    return settings


def _problems(exc: Any) -> str:
    """A pydantic validation error as one line: ``field: message; ...`` (inputs redacted)."""
    return redact(
        "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
    )


def _register_secrets(settings: Settings) -> None:
    """Register every secret the settings hold, whichever source gave it (``.env``,
    ``tradeloop.toml``, the environment): output masks them from now on."""
    for url in (settings.redis_url, settings.state_url):
        register_credentials(url)
    register_secret(settings.discord_webhook_url)
    register_credentials(settings.discord_webhook_url)
    secrets = [settings.api_key, *settings.notify_urls]
    for exchange in settings.exchanges.values():
        secrets += [exchange.api_key, exchange.api_secret]
        register_credentials(exchange.url)
    for secret in secrets:
        if secret is not None:
            value = secret.get_secret_value() if hasattr(secret, "get_secret_value") else secret
            register_secret(str(value))
            register_credentials(str(value))
