"""Run the local venue server: ``python -m tradeloop.testing.venue [--port N] [--data DIR]``.

Serves the recorded data of the shared data folder until interrupted, and prints its URL
first, so a CLI session can point at it::

    TRADELOOP_BINANCE_URL=http://127.0.0.1:8765 tradeloop data fetch --exchange binance ...
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from pathlib import Path

from tradeloop.testing.venue import LocalVenueServer, recorded_venues


def main(argv: list[str] | None = None) -> int:
    """Serve until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m tradeloop.testing.venue")
    parser.add_argument("--port", type=int, default=0, help="TCP port (default: a free one)")
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("TRADELOOP_SHARED_DATA", "../shared/data")),
        help="shared data folder (default: $TRADELOOP_SHARED_DATA or ../shared/data)",
    )
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"no data folder {args.data}", file=sys.stderr)
        return 2
    server = LocalVenueServer(recorded_venues(args.data), port=args.port, delay_s=args.delay)
    server.start()
    print(server.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
