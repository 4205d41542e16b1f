"""One redaction helper for every output path: CLI messages, logs, status files, run records.

:func:`redact` masks, in any text:

* the password of a URL's user info: ``postgresql://user:PASSWORD@host/db`` becomes
  ``postgresql://user:***@host/db`` (a user name alone is kept);
* credentials in a URL's query: ``password=``, ``token=``, ``api_key=``, ``secret=``,
  ``access_token=``, ``signature=``... values become ``***``;
* webhook URLs: the token part of ``.../api/webhooks/ID/TOKEN`` (Discord, Slack-style
  ``hooks.slack.com/services/...``) becomes ``***``;
* ``Authorization: Bearer ...`` / ``token ...`` and API-key header values (``X-API-Key``,
  ``X-MBX-APIKEY``, Alpaca's ``APCA-API-*``...);
* alert channels as apprise URLs (``tgram://``, ``slack://``...): everything after the scheme;
* every secret value known to the process: the values of ``TRADELOOP_*`` environment
  variables whose name says key, secret, password, passphrase, token or webhook, and any
  value given to :func:`register_secret`. The command line registers the credentials of its
  arguments and the values of its secret options (:func:`register_arguments`), settings from
  ``.env`` and ``tradeloop.toml`` theirs, a ``loop.toml`` its own
  (:func:`register_credentials`): once known, a secret is masked wherever it shows, even
  without its URL around it (a driver's error quoting the password alone).

:class:`RedactingFilter` applies it to log records (message, arguments and ``extra`` fields),
:func:`redact_data` to JSON-like data written to files, and :class:`RedactingStream` to a
whole output stream (the CLI wraps stdout and stderr with it).
"""

from __future__ import annotations

import io
import logging
import os
import re
import threading
from collections.abc import Mapping
from typing import Any, TextIO

__all__ = [
    "MASK",
    "RedactingFilter",
    "RedactingStream",
    "install_redaction",
    "redact",
    "redact_data",
    "register_arguments",
    "register_credentials",
    "register_secret",
]

MASK = "***"

_SECRET_NAME = re.compile(
    r"(API_?KEY|SECRET|PASSWORD|PASSPHRASE|TOKEN|WEBHOOK|PRIVATE_?KEY|DSN|_URL)$", re.IGNORECASE
)
_MIN_SECRET = 6  # shorter values are not masked by value (too many false hits)

_USERINFO = re.compile(
    r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@\s/]+)@"
)
_QUERY = re.compile(
    r"(?P<key>(?:[?&;,\s](?:password|passwd|pwd|token|access_token|refresh_token|auth_token|"
    r"api_?key|apikey|access_?key|x-api-key|listen_?key|secret|api_secret|client_secret|"
    r"signature)|[?&](?:sig|key))=)"
    r"(?P<value>[^&\s#'\"]+)",
    re.IGNORECASE,
)
_WEBHOOK = re.compile(
    r"(?P<base>(?:https?://)?[^\s/]*(?:discord(?:app)?\.com|discord\.gg)/api/(?:v\d+/)?webhooks/"
    r"[^/\s]+/)"
    r"(?P<token>[A-Za-z0-9_\-\.]+)"
    r"|(?P<slack>https?://hooks\.slack\.com/services/)(?P<stoken>[A-Za-z0-9/_\-]+)",
    re.IGNORECASE,
)
_BEARER = re.compile(r"(?P<kind>\b(?:Bearer|Basic)\s+)(?P<value>[A-Za-z0-9._~+/=\-]{8,})")
_HEADER = re.compile(
    r"(?P<key>\b(?:Authorization|Proxy-Authorization|X-API-Key|X-MBX-APIKEY|APCA-API-KEY-ID|"
    r"APCA-API-SECRET-KEY|OK-ACCESS-KEY|X-Auth-Token)[\"']?\s*[:=]\s*[\"']?"
    r"(?:(?:Bearer|Basic|token)\s+)?)(?P<value>[^\s,&'\"}]+)",
    re.IGNORECASE,
)
#: alert channels as apprise URLs: everything after the scheme is a token or a key
_APPRISE = re.compile(
    r"(?P<scheme>\b(?:tgram|slack|discord|msteams|pover|pbul|ntfys?|gotify|matrix|rocket|"
    r"mailtos?|pushover|twilio|signal)://)(?P<rest>[^\s'\"]+)",
    re.IGNORECASE,
)
_KV = re.compile(
    r"(?P<key>[\"']?(?:api_?key|api_?secret|secret|password|passphrase|webhook_url|token|"
    r"access_token|auth_token)"
    r"[\"']?\s*[:=]\s*[\"']?)(?P<value>[^\"'\s,}]{4,})",
    re.IGNORECASE,
)

_lock = threading.Lock()
_registered: set[str] = set()


def register_secret(value: str | None) -> None:
    """Mask ``value`` wherever it appears in output from now on (short values are ignored)."""
    if value and len(value) >= _MIN_SECRET:
        with _lock:
            _registered.add(value)
            # the password inside a URL value is a secret of its own
            match = _USERINFO.search(value)
            if match and len(match["pw"]) >= _MIN_SECRET:
                _registered.add(match["pw"])


def register_credentials(text: str | None) -> None:
    """Register the credentials inside ``text`` (a URL's password, raw and percent-decoded,
    a query's secret values, a webhook's token), not the text itself: a DSN's host and
    database stay readable, its password is masked even where it shows on its own."""
    if not text or not isinstance(text, str):
        return
    from urllib.parse import unquote

    found: list[str] = []
    for match in _USERINFO.finditer(text):
        found += [match["pw"], unquote(match["pw"])]
    for match in re.finditer(r"(?:://)[^\s]*?:(?P<pw>[^\s/]+)@[^@\s]*$", text):
        found += [match["pw"], unquote(match["pw"])]  # a password holding a raw '@'
    found += [m["value"] for m in _QUERY.finditer(text)]
    found += [unquote(m["value"]) for m in _QUERY.finditer(text)]
    for match in _WEBHOOK.finditer(text):
        found.append(match["token"] or match["stoken"])
    for value in found:
        register_secret(value)


#: option names whose value is a secret as a whole (``--api-key``, ``--discord-webhook``...)
_SECRET_OPTION = re.compile(r"^--?[\w-]*(key|secret|password|passphrase|token|webhook)[\w-]*$")


def register_arguments(args: list[str]) -> None:
    """Register the secrets of a command line: the credentials inside every argument
    (:func:`register_credentials`) and the whole value of every option whose name says key,
    secret, password, passphrase, token or webhook (``--opt VALUE`` and ``--opt=VALUE``)."""
    previous = ""
    for arg in args:
        name, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if eq and _SECRET_OPTION.match(name):
            register_secret(value)
        elif _SECRET_OPTION.match(previous) and not arg.startswith("-"):
            register_secret(arg)
        register_credentials(arg)
        previous = arg


def _env_secrets() -> list[str]:
    values = []
    for name, value in os.environ.items():
        if name.upper().startswith("TRADELOOP_") and _SECRET_NAME.search(name) and value:
            plain_url = "://" in value and not _USERINFO.search(value)
            if name.upper().endswith("_URL") and plain_url and "webhook" not in name.lower():
                continue  # a plain host URL is not a secret
            values.append(value)
            match = _USERINFO.search(value)
            if match:
                from urllib.parse import unquote

                values += [match["pw"], unquote(match["pw"])]
    return [v for v in values if len(v) >= _MIN_SECRET]


def _known_secrets() -> list[str]:
    with _lock:
        known = set(_registered)
    known.update(_env_secrets())
    return sorted(known, key=len, reverse=True)  # longest first: a URL before its password


def redact(text: str) -> str:
    """Return ``text`` with credentials masked (see the module docstring).

    >>> redact("postgresql://bob:hunter22@db:5432/x")
    'postgresql://bob:***@db:5432/x'
    >>> redact("https://discord.com/api/webhooks/123/abcDEF-xyz")
    'https://discord.com/api/webhooks/123/***'
    >>> redact("GET /v1?symbol=BTC&key=s3cr3tvalue")
    'GET /v1?symbol=BTC&key=***'
    >>> redact("Strategy parameter key=value, e.g. fast=10")  # a plain word is not a query
    'Strategy parameter key=value, e.g. fast=10'
    """
    if not text:
        return text
    for secret in _known_secrets():
        if secret in text:
            text = text.replace(secret, MASK)
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    text = _WEBHOOK.sub(
        lambda m: f"{m['base']}{MASK}" if m["base"] else f"{m['slack']}{MASK}", text
    )
    text = _QUERY.sub(lambda m: f"{m['key']}{MASK}", text)
    text = _APPRISE.sub(lambda m: f"{m['scheme']}{MASK}", text)
    text = _HEADER.sub(lambda m: f"{m['key']}{MASK}", text)
    text = _BEARER.sub(lambda m: f"{m['kind']}{MASK}", text)
    text = _KV.sub(lambda m: f"{m['key']}{MASK}", text)
    return text


def redact_data(value: Any) -> Any:
    """Return JSON-like ``value`` with every string redacted (dicts, lists, tuples walked)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: redact_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_data(v) for v in value)
    return value


class RedactingFilter(logging.Filter):
    """A logging filter that masks credentials in the message, its arguments and ``extra``."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact ``record`` in place; always keep it."""
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep the raw message
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        for key, value in list(vars(record).items()):
            if key in ("msg", "args", "exc_info", "exc_text", "stack_info"):
                continue
            if isinstance(value, str) and value:
                setattr(record, key, redact(value))
            elif isinstance(value, dict | list | tuple) and not key.startswith("_"):
                setattr(record, key, redact_data(value))
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class RedactingStream(io.TextIOBase):
    """A text stream that redacts everything written to it before passing it on."""

    def __init__(self, inner: TextIO) -> None:
        self.inner = inner

    def write(self, text: str) -> int:
        """Write ``text`` redacted; return the length of the original text."""
        self.inner.write(redact(text))
        return len(text)

    def flush(self) -> None:
        """Flush the wrapped stream."""
        self.inner.flush()

    def isatty(self) -> bool:
        """Whether the wrapped stream is a terminal."""
        return bool(getattr(self.inner, "isatty", lambda: False)())

    def fileno(self) -> int:
        """The wrapped stream's file descriptor."""
        return self.inner.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        """The wrapped stream's encoding."""
        return str(getattr(self.inner, "encoding", "utf-8"))


def install_redaction() -> None:
    """Wrap ``sys.stdout`` and ``sys.stderr`` in :class:`RedactingStream` (once)."""
    import sys

    if not isinstance(sys.stdout, RedactingStream):
        sys.stdout = RedactingStream(sys.stdout)
    if not isinstance(sys.stderr, RedactingStream):
        sys.stderr = RedactingStream(sys.stderr)
