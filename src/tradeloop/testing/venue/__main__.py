"""Run the local venue server: ``python -m tradeloop.testing.venue [--port N] [--data DIR]``.

Serves the recorded data of the shared data folder until interrupted, and prints its URL
first, so a CLI session can point at it::

    TRADELOOP_BINANCE_URL=http://127.0.0.1:8765 tradeloop data fetch --exchange binance ...
"""

from __future__ import annotations

import argparse

from tradeloop.testing._serve import (
    add_data_folder_argument,
    missing_data_folder,
    serve_until_interrupted,
)
from tradeloop.testing.venue import LocalVenueServer, recorded_venues


def main(argv: list[str] | None = None) -> int:
    """Serve until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m tradeloop.testing.venue")
    parser.add_argument("--port", type=int, default=0, help="TCP port (default: a free one)")
    add_data_folder_argument(parser, "--data")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args(argv)
    if missing_data_folder(args.data):
        return 2
    server = LocalVenueServer(recorded_venues(args.data), port=args.port, delay_s=args.delay)
    return serve_until_interrupted(server)


if __name__ == "__main__":
    raise SystemExit(main())
