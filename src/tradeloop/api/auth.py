"""API-key authentication for the service's routes, with every refusal audited.

The key is read from settings (``TRADELOOP_API_KEY``) and sent by clients in the
``X-API-Key`` header (FastAPI's :class:`~fastapi.security.APIKeyHeader`, so the OpenAPI
schema declares it); it is compared in constant time (:func:`secrets.compare_digest`).

- no header: **401** (``WWW-Authenticate: APIKey``); a wrong key: **403**;
- no key configured on the server: control routes are refused (**403**), never open;
- read routes need the key only when the app is created with ``auth_reads=True``.

Who made a call is the ``X-Operator`` header when given (free text, e.g. a name) plus the
key's short fingerprint (a SHA-256 prefix; the key itself is never written anywhere).
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader

__all__ = ["API_KEY_HEADER", "Auth", "key_fingerprint", "require_control", "require_read"]

API_KEY_HEADER = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    description="The service's API key (TRADELOOP_API_KEY); required by /control routes.",
)


def key_fingerprint(key: str) -> str:
    """A short, non-reversible name of a key for audit records (``key:1a2b3c4d``)."""
    return "key:" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:8]


class Auth:
    """The server's key and the audit sink of refused calls (held by the app)."""

    def __init__(self, api_key: str | None, *, auth_reads: bool, audit: Any) -> None:
        self._key = api_key.encode("utf-8") if api_key else None
        self.auth_reads = auth_reads
        self.audit = audit

    def check(self, request: Request, given: str | None, *, control: bool) -> str:
        """Return who is calling, or raise 401/403 (audited for control routes)."""
        client = request.client.host if request.client is not None else "?"
        operator = request.headers.get("x-operator", "").strip()[:80]
        what = f"{request.method} {request.url.path}"

        def refuse(status: int, why: str) -> HTTPException:
            if control:
                who = operator or (key_fingerprint(given) if given else "anonymous")
                self.audit.append(
                    {
                        "who": f"{who}@{client}",
                        "what": what,
                        "result": f"refused {status}",
                        "detail": {"error": why},
                    }
                )
            headers = {"WWW-Authenticate": "APIKey"} if status == 401 else None
            return HTTPException(status_code=status, detail=why, headers=headers)

        if self._key is None:
            if control:
                raise refuse(403, "control is disabled: no API key is configured on the server")
            return f"anonymous@{client}"
        if not given:
            raise refuse(401, "missing API key (header X-API-Key)")
        if not secrets.compare_digest(given.encode("utf-8"), self._key):
            raise refuse(403, "invalid API key")
        return f"{operator or key_fingerprint(given)}@{client}"


def _auth(request: Request) -> Auth:
    auth: Auth = request.app.state.auth
    return auth


def require_control(
    request: Request, key: Annotated[str | None, Security(API_KEY_HEADER)] = None
) -> str:
    """Dependency of every mutating route: returns who is calling."""
    return _auth(request).check(request, key, control=True)


def require_read(
    request: Request, key: Annotated[str | None, Security(API_KEY_HEADER)] = None
) -> str:
    """Dependency of read routes: open unless the app requires the key for reads too."""
    auth = _auth(request)
    if not auth.auth_reads:
        return "reader"
    return auth.check(request, key, control=False)


ControlCaller = Annotated[str, Depends(require_control)]
