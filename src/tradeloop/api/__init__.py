"""HTTP API (FastAPI) over the service facades."""

from tradeloop.api.app import create_app, signals_router

__all__ = ["create_app", "signals_router"]
