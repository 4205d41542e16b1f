"""Run a market-stream server: ``python -m tradeloop.testing.streams --venue binance``.

Serves the recorded BTC/USDT trades, the depth stream derived from the recorded quotes and
recorded 1m candles in the venue's WebSocket format (plus the REST calls its client makes)
and prints its URL first, so a recording can point at it::

    tradeloop data record --exchange binance --symbol BTC/USDT --out rec \\
        --ws-url ws://127.0.0.1:PORT --rest-url http://127.0.0.1:PORT
"""

from __future__ import annotations

import argparse

from tradeloop.testing._serve import (
    add_data_folder_argument,
    missing_data_folder,
    serve_until_interrupted,
)
from tradeloop.testing.streams.dialects import DIALECTS
from tradeloop.testing.streams.script import load_script
from tradeloop.testing.streams.server import StreamServer


class _Served(StreamServer):
    @property
    def url(self) -> str:
        return self.ws_url


def main(argv: list[str] | None = None) -> int:
    """Serve until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m tradeloop.testing.streams",
        description="Replay recorded market data as a venue's public WebSocket streams.",
    )
    parser.add_argument("--venue", choices=sorted(DIALECTS), default="binance")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--interval", type=float, default=0.01, help="seconds per message")
    parser.add_argument("--klines", type=int, default=1000, help="1m candles to serve")
    add_data_folder_argument(parser, "--data-dir")
    args = parser.parse_args(argv)
    if missing_data_folder(args.data_dir):
        return 2
    script = load_script(args.data_dir, klines=args.klines)
    server = _Served(args.venue, script, interval_s=args.interval, port=args.port)
    return serve_until_interrupted(server)


if __name__ == "__main__":
    raise SystemExit(main())
