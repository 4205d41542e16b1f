"""Run the replay server: ``python -m tradeloop.testing.replay [--data-dir DIR] [--port P]``.

Serves the recorded candles of the shared data folder as Binance and Bybit kline streams and
prints its URL first, so a live session can point at it::

    TRADELOOP_BINANCE_WS_URL=ws://127.0.0.1:9000 tradeloop ...
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from tradeloop.testing._serve import (
    add_data_folder_argument,
    missing_data_folder,
    serve_until_interrupted,
)
from tradeloop.testing.replay import ReplayServer
from tradeloop.testing.venue import recorded_venues


def _start_ms(text: str) -> int:
    """Epoch milliseconds or an ISO date/time (UTC when no offset is given)."""
    if text.lstrip("-").isdigit():
        return int(text)
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def main(argv: list[str] | None = None) -> int:
    """Serve until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m tradeloop.testing.replay",
        description=(
            "Replay recorded candles as Binance (/stream?streams=..., /ws/<stream>) and Bybit "
            "(/v5/public/spot, /v5/public/linear) kline WebSocket streams on 127.0.0.1. "
            "The clock advances one 1m bar every --bar-interval seconds."
        ),
    )
    add_data_folder_argument(parser, "--data-dir")
    parser.add_argument("--port", type=int, default=0, help="TCP port (default: a free one)")
    parser.add_argument(
        "--bar-interval", type=float, default=0.05, help="wall seconds per 1m bar (default 0.05)"
    )
    parser.add_argument(
        "--start",
        type=_start_ms,
        default=None,
        help="bar time to start at: epoch ms or ISO time in UTC (default: first bar)",
    )
    parser.add_argument(
        "--binance-market",
        choices=("spot", "linear"),
        default="spot",
        help="Binance market served on /stream and /ws (default spot)",
    )
    parser.add_argument(
        "--idle-clock",
        action="store_true",
        help="advance the clock while no client is subscribed (default: wait for clients)",
    )
    args = parser.parse_args(argv)
    if missing_data_folder(args.data_dir):
        return 2
    server = ReplayServer(
        recorded_venues(args.data_dir),
        port=args.port,
        start_ms=args.start,
        bar_interval_s=args.bar_interval,
        advance_when_idle=args.idle_clock,
        binance_market=args.binance_market,
    )
    return serve_until_interrupted(server)


if __name__ == "__main__":
    raise SystemExit(main())
