"""Trading keys of a ccxt exchange: settings, environment, ``.env`` or a secret command.

Looked up, first found wins: the exchange's settings (``api_key`` / ``api_secret`` /
``secret_command`` when they have them), then ``TRADELOOP_<EXCHANGE>_API_KEY``,
``TRADELOOP_<EXCHANGE>_API_SECRET`` and ``TRADELOOP_<EXCHANGE>_SECRET_COMMAND`` in the
environment, then in ``.env``. A secret command (a password manager's CLI, e.g.
``op read op://vault/binance/secret``) is run without a shell; its first output line is the
secret. Keys are held as :class:`pydantic.SecretStr` and never appear in ``repr``, logs or errors.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from tradeloop.core.errors import ConfigError

__all__ = ["Credentials", "load_credentials", "run_secret_command"]


@dataclass(frozen=True, slots=True)
class Credentials:
    """An API key pair (secrets never shown)."""

    api_key: SecretStr
    api_secret: SecretStr

    def __repr__(self) -> str:
        return "Credentials(api_key=**********, api_secret=**********)"


def load_credentials(
    exchange: str, settings: Any = None, *, env_file: Path = Path(".env")
) -> Credentials:
    """The key pair of ``exchange`` (see the module docstring).

    Raises
    ------
    ConfigError
        Naming the variables to set when no pair is found, or when the secret command fails
        (its output is never shown).
    """
    prefix = f"TRADELOOP_{exchange.upper()}_"
    values: dict[str, str] = {}
    if env_file.is_file():
        from dotenv import dotenv_values  # a dependency of pydantic-settings

        for key, value in dotenv_values(env_file).items():
            if value and key.upper().startswith(prefix):
                values[key.upper()[len(prefix) :].lower()] = value
    for key, value in os.environ.items():  # the environment wins over .env
        if value and key.upper().startswith(prefix):
            values[key.upper()[len(prefix) :].lower()] = value
    if settings is not None:
        ex = settings.exchange(exchange) if hasattr(settings, "exchange") else settings
        for name in ("api_key", "api_secret", "secret_command"):
            value = getattr(ex, name, None)
            reveal = getattr(value, "get_secret_value", None)
            if reveal is not None:
                value = reveal()
            if value:
                values[name] = str(value)
    key = values.get("api_key", "")
    secret = values.get("api_secret", "")
    if not secret and values.get("secret_command"):
        secret = run_secret_command(values["secret_command"], what=f"{exchange} secret command")
    if not key or not secret:
        missing = [n for n, v in (("API_KEY", key), ("API_SECRET", secret)) if not v]
        raise ConfigError(
            f"live trading on {exchange} needs API keys: set "
            + " and ".join(f"{prefix}{m}" for m in missing)
            + f" (environment or .env), or {prefix}SECRET_COMMAND for the secret"
        )
    return Credentials(SecretStr(key), SecretStr(secret))


def run_secret_command(
    command: str, *, what: str = "secret command", timeout_s: float = 30.0
) -> str:
    """Run ``command`` (no shell) and return its first output line.

    Raises
    ------
    ConfigError
        When it cannot run, fails or prints nothing (its output is never shown).
    """
    try:
        done = subprocess.run(
            shlex.split(command), capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"{what} could not run: {type(exc).__name__}") from None
    out = done.stdout.strip()
    line = out.splitlines()[0].strip() if out else ""
    if done.returncode != 0 or not line:
        raise ConfigError(f"{what} failed (exit {done.returncode}) or printed nothing")
    return line
