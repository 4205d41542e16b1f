"""Reading a TOML file with errors that name it (risk rules, ``loop.toml``)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from tradeloop.core.errors import ConfigError

__all__ = ["read_toml"]


def read_toml(path: str | Path, what: str) -> dict[str, Any]:
    """Return the parsed content of the TOML file ``path`` (a ``what``, for messages).

    Raises
    ------
    ConfigError
        If the file cannot be read or is not valid TOML, naming the file.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {file}: {exc.strerror or exc}") from None
    try:
        content = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML (invalid TOML in the {what}): {exc}") from None
    _register(content)
    return content


def _register(value: Any, key: str = "") -> None:
    """Register the credentials in a parsed file's strings (DSN passwords, webhook tokens) and
    the whole value of a key that names a secret, so output masks them from now on."""
    from tradeloop.config.redact import register_credentials, register_secret

    if isinstance(value, dict):
        for name, item in value.items():
            _register(item, str(name))
    elif isinstance(value, list):
        for item in value:
            _register(item, key)
    elif isinstance(value, str):
        register_credentials(value)
        lowered = key.lower()
        if any(word in lowered for word in ("key", "secret", "password", "token", "webhook")):
            register_secret(value)
