"""Routes of the running loop engine: health, status, positions, orders, trades, equity, risk,
strategies, research runs, and the ``/control`` routes.

Everything goes through :class:`~tradeloop.engine.service.LoopService` (its snapshot and its
command queue), never to the kernel. The snapshot reads are ``async`` routes: they only look
up a dict the engine's thread built, so they run on the event loop instead of a thread pool
whose threads would contend with the engine's thread for the interpreter. Control routes need
the API key (:mod:`tradeloop.api.auth`) and every call, carried out, refused or unauthenticated, is
audited. Request bodies are pydantic models: a bad one is a 422 naming the field, and nothing
unvalidated reaches the engine. A refused command (no position to close, a bad override token,
an invalid config file, an engine still warming up) is a 409 with the reason.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from tradeloop.api.auth import ControlCaller, require_read
from tradeloop.core.errors import ConfigError
from tradeloop.core.time import to_iso
from tradeloop.engine.service import LoopService

__all__ = ["CommandOut", "ControlRequest", "RiskOverrideRequest", "engine_router"]

engine_router = APIRouter()
_reads = [Depends(require_read)]


class ControlRequest(BaseModel):
    """Optional body of a control call: why (kept in the audit log)."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=500, description="Why (audited).")


class RiskOverrideRequest(BaseModel):
    """A signed risk override token (``tradeloop risk override issue``)."""

    model_config = ConfigDict(extra="forbid")

    token: str = Field(
        min_length=8,
        max_length=8192,
        pattern=r"^tlo1\.[A-Za-z0-9_=-]+\.[A-Za-z0-9_=-]+$",
        description="tlo1.<payload>.<signature>",
    )
    reason: str = Field(default="", max_length=500)


class CommandOut(BaseModel):
    """What a control call did."""

    action: str
    ok: bool
    detail: dict[str, Any]


class ComponentOut(BaseModel):
    """One component's health."""

    ok: bool
    detail: str


class HealthOut(BaseModel):
    """The service's health."""

    status: str = Field(description="ok | degraded | down")
    components: dict[str, ComponentOut]


def _engine(request: Request) -> LoopService:
    engine: LoopService | None = request.app.state.engine
    if engine is None:
        raise HTTPException(
            status_code=404,
            detail="no engine in this process: start it with tradeloop serve --config loop.toml",
        )
    return engine


def _snapshot(engine: LoopService) -> dict[str, Any]:
    snap = engine.snapshot()
    if snap is None:
        raise HTTPException(
            status_code=409, detail=engine.error or "the engine is opening its run (warm-up)"
        )
    return snap


Engine = Annotated[LoopService, Depends(_engine)]


# -- reads ---------------------------------------------------------------------------------------
@engine_router.get(
    "/health",
    tags=["service"],
    response_model=HealthOut,
    responses={503: {"model": HealthOut, "description": "a critical component is down"}},
)
def health(request: Request) -> JSONResponse:
    """Per-component health; 503 when a critical component (engine, feed, state store,
    broker, model) is down, with the reason in its ``detail``."""
    engine: LoopService | None = request.app.state.engine
    if engine is None:
        body: dict[str, Any] = {
            "status": "ok",
            "components": {"api": {"ok": True, "detail": "no engine in this process"}},
        }
    else:
        body = engine.health()
    return JSONResponse(body, status_code=503 if body["status"] == "down" else 200)


def _encoded(request: Request, engine: LoopService, key: str, build: Any) -> Response:
    """``build(snapshot)`` as JSON, encoded once per snapshot (rebuilt every 0.25 s) and per
    key: under load every request in between is a lookup, not a walk of the structure."""
    snap = _snapshot(engine)
    cache: dict[str, tuple[Any, bytes]] = request.app.state.json_cache
    hit = cache.get(key)
    stamp = (snap, engine.running, engine.error)
    if hit is not None and hit[0][0] is snap and hit[0][1:] == stamp[1:]:
        body = hit[1]
    else:
        body = json.dumps(build(snap), separators=(",", ":"), allow_nan=False).encode()
        cache[key] = (stamp, body)
    return Response(body, media_type="application/json")


@engine_router.get("/status", tags=["engine"], dependencies=_reads)
async def status(request: Request, engine: Engine) -> Response:
    """Run, mode, equity, cash, positions, counters, feed, stages, paused, risk state
    (``ready`` false and the run's id only while the run is being opened)."""
    if engine.snapshot() is None:
        return JSONResponse(engine.status())
    return _encoded(request, engine, "status", lambda _snap: engine.status())


@engine_router.get("/positions", tags=["engine"], dependencies=_reads)
async def positions(request: Request, engine: Engine) -> Response:
    """Open positions with their marks, stops and targets."""
    return _encoded(request, engine, "positions", lambda snap: snap["positions"])


@engine_router.get("/orders", tags=["engine"], dependencies=_reads)
async def orders(request: Request, engine: Engine) -> Response:
    """Open (waiting) orders, the most recent orders with their status, counts by status."""
    return _encoded(request, engine, "orders", lambda snap: snap["orders"])


@engine_router.get("/trades", tags=["engine"], dependencies=_reads)
async def trades(
    request: Request, engine: Engine, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> Response:
    """The most recent closed trades, newest first."""
    return _encoded(request, engine, f"trades:{limit}", lambda snap: snap["trades"][:limit])


@engine_router.get("/equity", tags=["engine"], dependencies=_reads)
async def equity(
    request: Request, engine: Engine, limit: Annotated[int, Query(ge=1, le=5000)] = 1000
) -> Response:
    """The equity after each recent step (bar time, equity), oldest first, and the current."""
    metrics = request.app.state.engine_metrics

    def build(snap: dict[str, Any]) -> dict[str, Any]:
        points = metrics.equity_curve(limit) if metrics is not None else []
        return {
            "equity": snap["status"].get("equity"),
            "initial_balance": snap["status"].get("initial_balance"),
            "points": [{"ts": to_iso(ts), "equity": value} for ts, value in points],
        }

    return _encoded(request, engine, f"equity:{limit}", build)


@engine_router.get("/signals/recent", tags=["signals"], dependencies=_reads)
async def signals_recent(
    request: Request, engine: Engine, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> list[dict[str, Any]]:
    """The engine's latest signals (strategy, symbol, action, confidence) with the risk gate's
    decision (accepted, or rejected with the reason), newest first."""
    metrics = request.app.state.engine_metrics
    rows: list[dict[str, Any]] = metrics.signals_recent(limit) if metrics is not None else []
    for row in rows:
        row["time"] = to_iso(row.pop("ts"))
    return rows


@engine_router.get("/risk", tags=["engine"], dependencies=_reads)
async def risk(request: Request, engine: Engine) -> Response:
    """Trading state, paused flag, limits, kill switches, overrides in force, recent events,
    accepted and rejected counts (by reason)."""
    return _encoded(request, engine, "risk", lambda snap: snap["risk"])


@engine_router.get("/strategies", tags=["engine"], dependencies=_reads)
def strategies(request: Request) -> dict[str, Any]:
    """The engine's strategies (weight, parameters) and every strategy available to runs."""
    from tradeloop.strategy.registry import scan_strategies

    engine: LoopService | None = request.app.state.engine
    running: list[dict[str, Any]] = []
    if engine is not None:
        snap = engine.snapshot()
        running = snap["strategies"] if snap is not None else []
    folder = request.app.state.backtests.strategies_dir
    error = None
    try:
        found, broken = scan_strategies(folder if folder.is_dir() else None)
        if broken:  # a broken user file hides only its own strategies
            error = "; ".join(str(exc) for exc in broken.values())
    except ConfigError as exc:  # two user files define one name
        found, error = scan_strategies(None)[0], str(exc)
    return {
        "running": running,
        "available": [{"name": n, "origin": i.origin} for n, i in sorted(found.items())],
        "error": error,
    }


@engine_router.get("/runs", tags=["runs"], dependencies=_reads)
def runs(request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[Any]:
    """Recorded research runs (backtests) under the server's output folder, newest first."""
    from dataclasses import asdict

    from tradeloop.analysis.runs import find_runs
    from tradeloop.engine.output import json_safe

    root = request.app.state.backtests.output_root
    found = find_runs(root) if root.is_dir() else []
    rows = [json_safe(asdict(r)) for r in found]
    rows.sort(key=lambda r: str(r.get("created") or r.get("run_id")), reverse=True)
    return rows[:limit]


# -- control -------------------------------------------------------------------------------------
_CONTROL_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "no API key"},
    403: {"description": "wrong API key, or control disabled"},
    404: {"description": "no engine in this process"},
    409: {"model": CommandOut, "description": "refused by the engine (reason in detail)"},
}


def _answer(result: Any) -> JSONResponse:
    body = {"action": result.action, "ok": result.ok, "detail": result.detail}
    return JSONResponse(body, status_code=200 if result.ok else 409)


@engine_router.post(
    "/control/pause", tags=["control"], response_model=CommandOut, responses=_CONTROL_RESPONSES
)
def pause(
    caller: ControlCaller, engine: Engine, body: ControlRequest | None = None
) -> JSONResponse:
    """Pause: no new order while paused (signals are refused with reason ``paused``); bars,
    marks, stops and targets go on. Kept across a restart."""
    reason = body.reason if body else ""
    return _answer(engine.command("pause", caller, reason=reason))


@engine_router.post(
    "/control/resume", tags=["control"], response_model=CommandOut, responses=_CONTROL_RESPONSES
)
def resume(
    caller: ControlCaller, engine: Engine, body: ControlRequest | None = None
) -> JSONResponse:
    """Resume after a pause."""
    reason = body.reason if body else ""
    return _answer(engine.command("resume", caller, reason=reason))


@engine_router.post(
    "/control/flatten", tags=["control"], response_model=CommandOut, responses=_CONTROL_RESPONSES
)
def flatten(
    caller: ControlCaller, engine: Engine, body: ControlRequest | None = None
) -> JSONResponse:
    """Cancel every waiting order and close every position (market orders, exit reason risk)."""
    reason = body.reason if body else ""
    return _answer(engine.command("flatten", caller, reason=reason))


@engine_router.post(
    "/control/close/{symbol:path}",
    tags=["control"],
    response_model=CommandOut,
    responses=_CONTROL_RESPONSES,
)
def close(
    caller: ControlCaller,
    engine: Engine,
    symbol: Annotated[str, PathParam(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9/:._-]+$")],
    body: ControlRequest | None = None,
) -> JSONResponse:
    """Close the open position of ``symbol`` (e.g. ``BTC/USDT:USDT``)."""
    reason = body.reason if body else ""
    return _answer(engine.command("close", caller, symbol=symbol, reason=reason))


@engine_router.post(
    "/control/risk-override",
    tags=["control"],
    response_model=CommandOut,
    responses=_CONTROL_RESPONSES,
)
def risk_override(caller: ControlCaller, engine: Engine, body: RiskOverrideRequest) -> JSONResponse:
    """Apply a signed, expiring risk override (resume from a halt, or a temporary limit); the
    risk engine verifies the signature and audits it too."""
    return _answer(engine.command("risk_override", caller, token=body.token, reason=body.reason))


@engine_router.post(
    "/control/reload", tags=["control"], response_model=CommandOut, responses=_CONTROL_RESPONSES
)
def reload(
    caller: ControlCaller, engine: Engine, body: ControlRequest | None = None
) -> JSONResponse:
    """Read the config file again: strategy weights and parameters and ``[zones]`` change
    live; an invalid file (file and key named) or a restart-only change is refused and the
    running config kept."""
    reason = body.reason if body else ""
    return _answer(engine.command("reload", caller, reason=reason))
