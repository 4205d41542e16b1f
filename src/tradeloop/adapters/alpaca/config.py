"""How to reach Alpaca: keys, paper or live endpoints, local overrides, timeouts.

>>> cfg = AlpacaConfig(api_key="PK123", api_secret="s3cret")
>>> cfg.paper, "s3cret" in repr(cfg)
(True, False)
"""

from __future__ import annotations

import os
import shlex
import subprocess
from dataclasses import dataclass, field
from typing import Any

from tradeloop.core.errors import ConfigError
from tradeloop.core.extras import require_extra

__all__ = ["EXTRA_HINT", "AlpacaConfig", "require_alpaca"]

EXTRA_HINT = "pip install 'tradeloop[alpaca]'"
_ENV = "TRADELOOP_ALPACA_"


def require_alpaca() -> None:
    """Raise a clear error when the optional alpaca-py package is missing.

    Raises
    ------
    MissingExtraError
        Naming the ``alpaca`` extra (a :class:`ConfigError`).
    """
    require_extra("alpaca", "Alpaca (alpaca-py)")


@dataclass(frozen=True, slots=True)
class AlpacaConfig:
    """Connection settings of one Alpaca account.

    Attributes
    ----------
    api_key, api_secret
        The key pair (the secret is never shown in ``repr``, logs or errors).
    paper
        Use Alpaca's paper-trading endpoints (the default); live money needs ``False``.
    url
        Base URL replacing Alpaca's REST hosts (trading and market data), e.g. a local server.
    ws_url
        Base URL (``ws://host:port``) replacing the stream hosts: the trading stream is
        ``{ws_url}/stream``, the market data stream ``{ws_url}/v2/{feed}``.
    feed
        Market data feed: ``iex`` (free plans) or ``sip``.
    timeout_s
        Timeout of one REST request (alpaca-py sets none; a hung request would block the
        kernel).
    poll_interval_s
        REST polling period of order updates while the trading stream is down.
    requests_per_minute
        The account's REST budget, shared by orders, account calls and historical bars in
        this process (Alpaca allows 200 a minute; a margin is kept). Calls past it wait.
    """

    api_key: str = field(repr=False)
    api_secret: str = field(repr=False)
    paper: bool = True
    url: str | None = None
    ws_url: str | None = None
    feed: str = "iex"
    timeout_s: float = 10.0
    poll_interval_s: float = 2.0
    requests_per_minute: int = 190

    def __post_init__(self) -> None:
        if not self.api_key or not self.api_secret:
            raise ConfigError(
                "Alpaca needs an API key and secret: set TRADELOOP_ALPACA_API_KEY and "
                "TRADELOOP_ALPACA_API_SECRET (environment or .env), or "
                "TRADELOOP_ALPACA_SECRET_COMMAND (a command printing the secret)"
            )
        if self.feed not in ("iex", "sip", "test", "delayed_sip"):
            raise ConfigError(f"alpaca feed must be iex or sip, got {self.feed!r}")
        if not self.timeout_s > 0:
            raise ConfigError(f"alpaca timeout_s must be > 0, got {self.timeout_s!r}")
        if self.requests_per_minute < 1:
            raise ConfigError(
                f"alpaca requests_per_minute must be >= 1, got {self.requests_per_minute!r}"
            )

    def budget(self) -> Any:
        """The process's REST budget of this account (one per key and rate)."""
        import hashlib

        from tradeloop.execution.protection import rate_budget

        account = hashlib.sha256(self.api_key.encode()).hexdigest()[:12]
        return rate_budget(f"alpaca-{account}-{self.requests_per_minute}", self.requests_per_minute)

    @property
    def trade_stream_url(self) -> str | None:
        """``TradingStream``'s ``url_override`` (None: Alpaca's own)."""
        return f"{self.ws_url.rstrip('/')}/stream" if self.ws_url else None

    @property
    def data_stream_url(self) -> str | None:
        """``StockDataStream``'s ``url_override`` (None: Alpaca's own)."""
        return f"{self.ws_url.rstrip('/')}/v2/{self.feed}" if self.ws_url else None

    @classmethod
    def from_settings(
        cls, settings: Any = None, *, paper: bool = True, **overrides: Any
    ) -> AlpacaConfig:
        """Keys and endpoints from settings, the environment, ``.env`` or a secret command.

        Looks, in order, at ``settings.exchange("alpaca")`` (``api_key``, ``api_secret``,
        ``secret_command``, ``url``, ``ws_url`` when it has them), then at
        ``TRADELOOP_ALPACA_API_KEY`` / ``_API_SECRET`` / ``_SECRET_COMMAND`` / ``_URL`` /
        ``_WS_URL`` / ``_FEED`` / ``_REQUESTS_PER_MINUTE`` in the environment and ``.env``.
        A secret command is run without a shell; its first output line is the secret.

        Raises
        ------
        ConfigError
            When no key pair is found, or the secret command fails (its output is not shown).
        """
        values = _env_values()
        ex = settings.exchange("alpaca") if settings is not None else None
        for name in ("api_key", "api_secret", "secret_command", "url", "ws_url"):
            value: Any = getattr(ex, name, None) if ex is not None else None
            reveal = getattr(value, "get_secret_value", None)
            if reveal is not None:
                value = reveal()
            if value:
                values[name] = str(value)
        secret = values.get("api_secret")
        if not secret and values.get("secret_command"):
            secret = run_secret_command(values["secret_command"])
        kwargs: dict[str, Any] = {
            "api_key": values.get("api_key", ""),
            "api_secret": secret or "",
            "paper": paper,
            "url": values.get("url"),
            "ws_url": values.get("ws_url"),
        }
        if values.get("feed"):
            kwargs["feed"] = values["feed"]
        if values.get("requests_per_minute"):
            try:
                kwargs["requests_per_minute"] = int(values["requests_per_minute"])
            except ValueError:
                raise ConfigError(
                    "TRADELOOP_ALPACA_REQUESTS_PER_MINUTE must be an integer"
                ) from None
        kwargs.update(overrides)
        return cls(**kwargs)


def run_secret_command(command: str, timeout_s: float = 30.0) -> str:
    """Run ``command`` (no shell) and return its first output line (a password manager's CLI).

    Raises
    ------
    ConfigError
        When it cannot run, fails or prints nothing (its output is never shown).
    """
    try:
        done = subprocess.run(
            shlex.split(command), capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"alpaca secret command could not run: {type(exc).__name__}") from None
    line = done.stdout.strip().splitlines()[0].strip() if done.stdout.strip() else ""
    if done.returncode != 0 or not line:
        raise ConfigError(
            f"alpaca secret command failed (exit {done.returncode}) or printed nothing"
        )
    return line


def _env_values() -> dict[str, str]:
    found: dict[str, str] = {}
    try:
        from dotenv import dotenv_values

        dot = (
            {k: v for k, v in dotenv_values(".env").items() if v} if os.path.isfile(".env") else {}
        )
    except ImportError:  # pragma: no cover - a dependency of pydantic-settings
        dot = {}
    for source in (dot, os.environ):  # the environment wins
        for key, value in source.items():
            if key.upper().startswith(_ENV) and value:
                found[key.upper()[len(_ENV) :].lower()] = value
    return found
