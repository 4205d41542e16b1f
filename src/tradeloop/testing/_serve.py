"""What the test servers share: a background HTTP server's lifecycle and the CLI main loop."""

from __future__ import annotations

import argparse
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Protocol, Self

__all__ = [
    "BackgroundHTTPServer",
    "add_data_folder_argument",
    "missing_data_folder",
    "serve_until_interrupted",
]


class BackgroundHTTPServer:
    """A :class:`ThreadingHTTPServer` on ``host``/``port`` served from a daemon thread.

    Subclasses call :meth:`_bind` in ``__init__`` and get :meth:`start`, :meth:`stop` and the
    context-manager protocol.
    """

    _thread_name = "http-server"
    _poll_interval = 0.5  # the default of serve_forever

    def _bind(self, host: str, port: int, handler: type[BaseHTTPRequestHandler]) -> None:
        self._httpd = ThreadingHTTPServer((host, port), handler)
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def _base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        """Serve in a background thread."""
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": self._poll_interval},
            name=self._thread_name,
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Server(Protocol):
    @property
    def url(self) -> str: ...

    def start(self) -> object: ...

    def stop(self) -> None: ...


def add_data_folder_argument(parser: argparse.ArgumentParser, flag: str) -> None:
    """Add ``flag`` (a Path) for the shared data folder, defaulting to $TRADELOOP_SHARED_DATA."""
    parser.add_argument(
        flag,
        type=Path,
        default=Path(os.environ.get("TRADELOOP_SHARED_DATA", "../shared/data")),
        help="shared data folder (default: $TRADELOOP_SHARED_DATA or ../shared/data)",
    )


def missing_data_folder(folder: Path) -> bool:
    """Say so on stderr and return True when ``folder`` is not a directory."""
    if folder.is_dir():
        return False
    print(f"no data folder {folder}", file=sys.stderr)
    return True


def serve_until_interrupted(server: _Server) -> int:
    """Start ``server``, print its URL, serve until Ctrl-C, stop it; return exit status 0."""
    server.start()
    print(server.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
