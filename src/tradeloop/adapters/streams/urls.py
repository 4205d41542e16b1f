"""Where each venue's ccxt client connects: overrides of ``urls['api']`` for another host.

``venue_urls(venue, ws_base, rest_base)`` keeps each endpoint's path and replaces scheme,
host and port, e.g. to point a client at a local server, a proxy or a regional host.

>>> venue_urls("bybit", "ws://127.0.0.1:9000", None)["ws"]["public"]["spot"]
'ws://127.0.0.1:9000/v5/public/spot'
"""

from __future__ import annotations

from typing import Any

from tradeloop.core.errors import ConfigError, did_you_mean

__all__ = ["URL_VENUES", "venue_urls"]


def _binance(ws: str | None, rest: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if ws:
        wsu = f"{ws}/ws"
        out["ws"] = {"spot": wsu, "margin": wsu, "linear": f"{ws}/ws", "inverse": f"{ws}/ws"}
    if rest:
        out |= {
            "public": f"{rest}/api/v3", "v1": f"{rest}/api/v1", "sapi": f"{rest}/sapi/v1",
            "fapiPublic": f"{rest}/fapi/v1", "fapiPublicV2": f"{rest}/fapi/v2",
            "fapiData": f"{rest}/futures/data",
        }  # fmt: skip
    return out


def _bybit(ws: str | None, rest: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if ws:
        out["ws"] = {
            "public": {k: f"{ws}/v5/public/{k}" for k in ("spot", "linear", "inverse", "option")}
        }
    if rest:
        out |= {"public": rest, "spot": rest, "futures": rest, "v2": rest, "private": rest}
    return out


def _okx(ws: str | None, rest: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if ws:
        out["ws"] = f"{ws}/ws/v5"
    if rest:
        out |= {"rest": rest}
    return out


def _kraken(ws: str | None, rest: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if ws:
        out["ws"] = {"public": ws, "publicV2": f"{ws}/v2"}
    if rest:
        out |= {"public": f"{rest}/0/public"}
    return out


_BUILDERS = {"binance": _binance, "bybit": _bybit, "okx": _okx, "kraken": _kraken}
URL_VENUES = tuple(_BUILDERS)


def venue_urls(venue: str, ws_base: str | None, rest_base: str | None) -> dict[str, Any]:
    """``urls['api']`` overrides for ``venue`` with the given WebSocket / REST bases.

    Raises
    ------
    ConfigError
        For a venue without a known URL layout.
    """
    build = _BUILDERS.get(venue)
    if build is None:
        raise ConfigError(
            f"no URL layout for venue {venue!r}.{did_you_mean(venue, URL_VENUES)} "
            f"Known: {', '.join(URL_VENUES)}"
        )
    ws = ws_base.rstrip("/") if ws_base else None
    rest = rest_base.rstrip("/") if rest_base else None
    return build(ws, rest)
