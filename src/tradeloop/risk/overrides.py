"""Signed, expiring overrides and their append-only audit log.

An override is either ``resume`` (leave HALTED) or ``set_limit`` (a temporary value for one
limit). It is valid only as a token signed with the configured secret (HMAC-SHA256)::

    tlo1.<base64url(JSON payload)>.<base64url(HMAC-SHA256(secret, "tlo1." + payload))>

The payload says who, what, why, and the validity window (``not_before`` .. ``expires_at``,
UTC ns). A token is used at most once. Every attempt, accepted or refused, is appended to the
audit log as one JSON line; each line carries the SHA-256 of the previous line, so an edited
or deleted line breaks the chain (:func:`verify_audit_chain`).

With a key (derived from the override secret, :func:`audit_key`) the log is also *keyed*:
each line carries ``mac`` = HMAC-SHA256(key, previous mac + the line without its mac), and a
head file next to the log (``<log>.head``) holds the record count and the last mac under an
HMAC of their own. Without the key nobody can rewrite a line and recompute the chain, and
cutting records off the end (the one edit a plain hash chain cannot see) no longer matches
the head: :func:`audit_problem` reports both.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import json
import logging
import math
import os
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tradeloop.core.errors import ConfigError
from tradeloop.core.time import to_iso

__all__ = [
    "OVERRIDABLE_LIMITS",
    "AuditLog",
    "Override",
    "OverrideManager",
    "OverrideRefused",
    "audit_key",
    "audit_problem",
    "issue_token",
    "read_token_claims",
    "secret_from_env",
    "verify_audit_chain",
    "verify_token",
]

logger = logging.getLogger(__name__)

_PREFIX = "tlo1"
ACTIONS = ("resume", "set_limit")
#: limits an override may change (fields of :class:`~tradeloop.risk.config.LimitsConfig`)
OVERRIDABLE_LIMITS = (
    "max_position_pct",
    "max_risk_per_trade",
    "max_open_positions",
    "max_gross_leverage",
    "max_correlation",
    "max_var_pct",
)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: bytes, body: str) -> str:
    return _b64(hmac.new(secret, body.encode("ascii"), hashlib.sha256).digest())


def secret_from_env(name: str) -> bytes | None:
    """Return the secret held by environment variable ``name`` (None when unset or empty)."""
    value = os.environ.get(name, "")
    return value.encode("utf-8") if value else None


@dataclass(frozen=True, slots=True)
class Override:
    """A verified override."""

    id: str
    who: str
    why: str
    action: str
    limit: str | None
    value: float | None
    not_before: int
    expires_at: int

    def audit_record(self, at: str, result: str) -> dict[str, Any]:
        """Return the audit-log entry of this override with outcome ``result`` at ``at``."""
        return {
            "at": at,
            "result": result,
            "who": self.who,
            "what": self.action,
            "limit": self.limit,
            "value": self.value,
            "why": self.why,
            "until": to_iso(self.expires_at),
            "token_id": self.id,
            "verified": True,
        }

    def describe(self) -> str:
        """Return what the override does, in words."""
        if self.action == "resume":
            return "resume trading"
        return f"set {self.limit} to {'off' if self.value is None else self.value}"


@dataclass(frozen=True, slots=True)
class OverrideRefused:
    """A refused override, with a machine-readable reason (never an exception)."""

    reason: str
    detail: str = ""
    claims: Mapping[str, Any] | None = None


def issue_token(
    secret: bytes,
    *,
    who: str,
    why: str,
    action: str,
    expires_at: int,
    not_before: int | None = None,
    limit: str | None = None,
    value: float | None = None,
) -> str:
    """Return a signed override token.

    Parameters
    ----------
    secret
        The HMAC secret the risk engine is configured with.
    who, why
        Who asks, and why (both go to the audit log).
    action
        ``resume`` or ``set_limit``.
    expires_at, not_before
        Validity window in UTC ns (``not_before`` defaults to now).
    limit, value
        For ``set_limit``: one of :data:`OVERRIDABLE_LIMITS` and its temporary value (None
        switches the limit off).

    Raises
    ------
    ConfigError
        For an empty secret, who or why, an unknown action or limit, or an empty window.
    """
    if not secret:
        raise ConfigError("an override needs a non-empty secret")
    if not who.strip() or not why.strip():
        raise ConfigError("an override must say who asks for it and why")
    if action not in ACTIONS:
        raise ConfigError(f"override action must be one of {list(ACTIONS)}, got {action!r}")
    if action == "set_limit" and limit not in OVERRIDABLE_LIMITS:
        raise ConfigError(
            f"override limit must be one of {list(OVERRIDABLE_LIMITS)}, got {limit!r}"
        )
    start = time.time_ns() if not_before is None else not_before
    if expires_at <= start:
        raise ConfigError("override expires before it becomes valid")
    payload = {
        "v": 1,
        "id": secrets.token_hex(8),
        "who": who,
        "why": why,
        "action": action,
        "limit": limit if action == "set_limit" else None,
        "value": value if action == "set_limit" else None,
        "not_before": int(start),
        "expires_at": int(expires_at),
    }
    body = _PREFIX + "." + _b64(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode())
    return body + "." + _sign(secret, body)


def read_token_claims(token: str) -> dict[str, Any] | None:
    """Return a token's payload WITHOUT checking its signature (for audit records), or None."""
    try:
        prefix, payload, _sig = token.strip().split(".")
        if prefix != _PREFIX:
            return None
        claims = json.loads(_unb64(payload))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    return claims if isinstance(claims, dict) else None


def verify_token(
    token: str, secret: bytes | None, now_ns: int, *, max_ttl_ns: int | None = None
) -> Override | OverrideRefused:
    """Verify a token's signature, validity window and content at time ``now_ns``.

    Returns the :class:`Override`, or an :class:`OverrideRefused` with reason ``no_secret``,
    ``malformed``, ``bad_signature``, ``not_yet_valid``, ``expired``, ``ttl_too_long`` or
    ``invalid``.
    """
    claims = read_token_claims(token)
    if not secret:
        return OverrideRefused("no_secret", "no override secret is configured", claims)
    parts = token.strip().split(".")
    if len(parts) != 3 or claims is None:
        return OverrideRefused("malformed", "not an override token")
    expected = _sign(secret, parts[0] + "." + parts[1])
    if not hmac.compare_digest(expected, parts[2]):
        return OverrideRefused("bad_signature", "signature does not match the secret", claims)
    try:
        override = Override(
            id=str(claims["id"]),
            who=str(claims["who"]),
            why=str(claims["why"]),
            action=str(claims["action"]),
            limit=None if claims.get("limit") is None else str(claims["limit"]),
            value=None if claims.get("value") is None else float(claims["value"]),
            not_before=int(claims["not_before"]),
            expires_at=int(claims["expires_at"]),
        )
    except (KeyError, TypeError, ValueError):
        return OverrideRefused("malformed", "token payload is incomplete", claims)
    if override.action not in ACTIONS or (
        override.action == "set_limit" and override.limit not in OVERRIDABLE_LIMITS
    ):
        return OverrideRefused("invalid", f"unknown action or limit: {override.describe()}", claims)
    if override.value is not None and not (math.isfinite(override.value) and override.value > 0):
        return OverrideRefused("invalid", f"limit value must be > 0, got {override.value}", claims)
    if now_ns < override.not_before:
        return OverrideRefused("not_yet_valid", f"valid from {to_iso(override.not_before)}", claims)
    if now_ns >= override.expires_at:
        return OverrideRefused("expired", f"expired at {to_iso(override.expires_at)}", claims)
    if max_ttl_ns is not None and override.expires_at - override.not_before > max_ttl_ns:
        return OverrideRefused("ttl_too_long", "validity is longer than overrides.max_ttl", claims)
    return override


def audit_key(secret: bytes) -> bytes:
    """The audit log's HMAC key, derived from the override secret (never the secret itself)."""
    return hmac.new(secret, b"tradeloop-audit-log-v1", hashlib.sha256).digest()


def _line_mac(key: bytes, prev_mac: str, body: str) -> str:
    return hmac.new(key, (prev_mac + "\n" + body).encode("utf-8"), hashlib.sha256).hexdigest()


def _head_mac(key: bytes, count: int, last_mac: str) -> str:
    return hmac.new(key, f"head:{count}:{last_mac}".encode(), hashlib.sha256).hexdigest()


def _head_path(path: Path) -> Path:
    return path.with_name(path.name + ".head")


class AuditLog:
    """Append-only JSON-lines audit log, hash-chained; in memory when ``path`` is None.

    A line is written, flushed and synced before :meth:`append` returns; the file is only ever
    opened for appending. With ``key`` (see :func:`audit_key`) every line is also keyed and
    the head file is rewritten atomically after each append (see the module docstring).
    ``problem`` holds what :func:`audit_problem` found when the file was opened (None: intact).
    """

    def __init__(self, path: str | Path | None = None, *, key: bytes | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.records: list[dict[str, Any]] = []
        self._prev = ""
        self._mac = ""
        self._count = 0
        self.key: bytes | None = None
        self.problem: str | None = None
        if self.path is not None and self.path.exists():
            last = ""
            with self.path.open("rb") as fh:
                for line in fh:
                    if line.strip():
                        last = line.rstrip(b"\n").decode("utf-8")
                        self._count += 1
            self._prev = hashlib.sha256(last.encode("utf-8")).hexdigest() if last else ""
            if last:
                try:
                    self._mac = str(json.loads(last).get("mac") or "")
                except ValueError:
                    self._mac = ""
        if key is not None:
            self.set_key(key)

    def set_key(self, key: bytes) -> None:
        """Key the log from now on, and check what is already in the file."""
        self.key = key
        if self.path is not None and self.path.exists():
            self.problem = audit_problem(self.path, key)
            if self.problem is not None:
                logger.error("override audit log %s: %s", self.path, self.problem)

    def append(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Append ``record`` (plus the wall time and the previous line's hash); return it."""
        full = {"logged_at": to_iso(time.time_ns()), **record, "prev": self._prev}
        line = json.dumps(full, sort_keys=True, separators=(",", ":"), default=str)
        if self.key is not None:
            self._mac = _line_mac(self.key, self._mac, line)
            full["mac"] = self._mac
            line = json.dumps(full, sort_keys=True, separators=(",", ":"), default=str)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(line + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        self._count += 1
        if self.path is not None and self.key is not None:
            self._write_head(self.path, self.key)
        self._prev = hashlib.sha256(line.encode("utf-8")).hexdigest()
        self.records.append(full)
        return full

    def _write_head(self, path: Path, key: bytes) -> None:
        head = {
            "count": self._count,
            "mac": self._mac,
            "head_mac": _head_mac(key, self._count, self._mac),
        }
        target = _head_path(path)
        tmp = target.with_name(target.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            fh.write(json.dumps(head) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)


def audit_problem(path: str | Path, key: bytes | None) -> str | None:
    """Check an audit log file: its hash chain, and with ``key`` every line's mac and the head.

    Returns None when intact, else what is wrong (the record number, a count that does not
    match the head, a forged head).
    """
    p = Path(path)
    lines = [x for x in p.read_text(encoding="utf-8").splitlines() if x.strip()]
    broken = verify_audit_chain(lines)
    if broken is not None:
        return f"hash chain broken at record {broken}"
    if key is None:
        return None
    mac = ""
    keyed = False
    for k, line in enumerate(lines):
        record = json.loads(line)
        stored = record.pop("mac", None)
        if stored is None:
            if keyed:
                return f"record {k} has no mac after keyed records (inserted or rewritten)"
            continue  # written before the log was keyed
        keyed = True
        body = json.dumps(record, sort_keys=True, separators=(",", ":"), default=str)
        mac = _line_mac(key, mac, body)
        if not hmac.compare_digest(mac, str(stored)):
            return f"record {k}: mac does not match (rewritten, or written with another key)"
    head_file = _head_path(p)
    if not head_file.exists():
        return "head file missing (written by a run with the key, then removed?)" if keyed else None
    try:
        head = json.loads(head_file.read_text(encoding="utf-8"))
        count, last, head_mac = int(head["count"]), str(head["mac"]), str(head["head_mac"])
    except (ValueError, KeyError, TypeError):
        return "head file unreadable"
    if not hmac.compare_digest(head_mac, _head_mac(key, count, last)):
        return "head file forged (its mac does not match)"
    if count != len(lines):
        return f"the head says {count} records, the log holds {len(lines)} (truncated or appended)"
    if not hmac.compare_digest(last, mac):
        return "the last record is not the one the head names"
    return None


def verify_audit_chain(lines: Iterable[str]) -> int | None:
    """Return the 0-based index of the first line whose ``prev`` hash is wrong, or None."""
    prev = ""
    for k, line in enumerate(x for x in lines if x.strip()):
        text = line.rstrip("\n")
        try:
            record = json.loads(text)
        except ValueError:
            return k
        if record.get("prev", None) != prev:
            return k
        prev = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return None


class OverrideManager:
    """Verifies and audits overrides, and holds the temporary limit values in force.

    Parameters
    ----------
    secret
        HMAC secret (None: every override is refused).
    audit
        Where every attempt is recorded.
    max_ttl_ns
        Longest validity a token may have.
    """

    def __init__(
        self, secret: bytes | None, audit: AuditLog, max_ttl_ns: int | None = None
    ) -> None:
        self._secret = secret
        self.audit = audit
        if secret is not None and audit.key is None:
            audit.set_key(audit_key(secret))
        self.max_ttl_ns = max_ttl_ns
        self.active: dict[str, Override] = {}
        self._used: set[str] = set()

    def apply(self, token: str, now_ns: int) -> Override | OverrideRefused:
        """Verify ``token`` at ``now_ns``, audit the attempt, and activate a limit change.

        A ``resume`` is returned for the caller (the risk engine) to carry out.
        """
        result = verify_token(token, self._secret, now_ns, max_ttl_ns=self.max_ttl_ns)
        if isinstance(result, Override) and result.id in self._used:
            result = OverrideRefused("replayed", f"token {result.id} was already used", None)
        at = to_iso(now_ns)
        if isinstance(result, OverrideRefused):
            claims = dict(result.claims or read_token_claims(token) or {})
            self.audit.append(
                {
                    "at": at,
                    "result": "refused",
                    "reason": result.reason,
                    "detail": result.detail,
                    "who": claims.get("who"),
                    "what": claims.get("action"),
                    "limit": claims.get("limit"),
                    "value": claims.get("value"),
                    "why": claims.get("why"),
                    "until": to_iso(int(claims["expires_at"]))
                    if isinstance(claims.get("expires_at"), int)
                    else None,
                    "token_id": claims.get("id"),
                    "verified": False,
                }
            )
            logger.warning("override refused: %s %s", result.reason, result.detail)
            return result
        self._used.add(result.id)
        if result.action == "set_limit" and result.limit is not None:
            self.active[result.limit] = result
        self.audit.append(result.audit_record(at, "accepted"))
        logger.warning(
            "override accepted: %s by %s until %s",
            result.describe(),
            result.who,
            to_iso(result.expires_at),
        )
        return result

    def export_state(self) -> dict[str, Any]:
        """Return the limit overrides in force and the ids of used tokens, JSON-ready."""
        return {
            "active": {name: dataclasses.asdict(o) for name, o in self.active.items()},
            "used": sorted(self._used),
        }

    def restore_state(self, data: Mapping[str, Any]) -> None:
        """Load what :meth:`export_state` returned: a used token stays refused as a replay."""
        self.active = {name: Override(**item) for name, item in data.get("active", {}).items()}
        self._used = set(data.get("used", ()))

    def limit(self, name: str, default: float | None, now_ns: int) -> float | None:
        """Return limit ``name`` in force at ``now_ns``: an override's value, or ``default``."""
        override = self.active.get(name)
        if override is None:
            return default
        if now_ns >= override.expires_at:
            del self.active[name]
            self.audit.append({**override.audit_record(to_iso(now_ns), "expired"), "limit": name})
            return default
        return override.value
