"""API latency under load while the engine runs, and the engine's bar-to-order latency with and
without that load.

A real ``tradeloop serve --config loop.toml`` process runs a paper loop (sma_cross 2/5 on the
recorded Binance USD-M 1m klines, replayed over a local WebSocket at ``--bar-interval`` wall
seconds per bar, warm-up and backfill from the local REST venue). Each round has two phases of
``--seconds``:

1. **quiet**: no API traffic; the engine's bar-to-order latency is read from the
   ``tradeloop_engine_bar_to_order_seconds`` histogram (the closed bar taken from the feed's
   queue -> its order committed to the state store and published), as the difference of two
   scrapes;
2. **loaded**: ``--concurrency`` httpx clients in this process call ``/status``,
   ``/positions``, ``/orders``, ``/equity``, ``/risk`` and ``/metrics`` in a loop as fast as they
   can; every request's latency is recorded (exact quantiles), and the engine's bar-to-order
   latency is read as in the quiet phase.

Quantiles of the histogram are interpolated inside its buckets, as Prometheus'
``histogram_quantile`` does. The table shows the median of ``--rounds`` rounds and the ratio
loaded / quiet. Needs the shared data folder (``TRADELOOP_SHARED_DATA``).

    python bench/api_load.py --rounds 3 --seconds 15
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tradeloop.testing.environment import shared_data_dir
from tradeloop.testing.replay import ReplayServer
from tradeloop.testing.venue import LocalVenueServer
from tradeloop.testing.venue.data import recorded_venues

START_MS = 1_748_169_180_000 + 600 * 60_000
ROUTES = ("/status", "/positions", "/orders", "/equity", "/risk", "/metrics")
HIST = "tradeloop_engine_bar_to_order_seconds"
KEY = "bench-key"

LOOP = """
[run]
id = "bench-api"
exchange = "binance"
market = "perp"
symbols = ["BTC/USDT:USDT"]
timeframe = "1m"
balance = 10000
state = "state.db"
analytics = "analytics.duckdb"
status = "status.json"
warmup_bars = 30

[risk]
profile = "permissive"

[[strategies]]
name = "sma_cross"
weight = 1.0
params = { fast = 2, slow = 5, short = true }
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _buckets(url: str) -> dict[float, float]:
    """Cumulative bucket counts of the bar-to-order histogram, by upper bound."""
    text = httpx.get(url + "/metrics", timeout=10).text
    out: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != HIST:
            continue
        for sample in family.samples:
            if sample.name == HIST + "_bucket":
                out[float(sample.labels["le"])] = sample.value
    return out


def _hist_quantile(q: float, before: dict[float, float], after: dict[float, float]) -> float:
    """Prometheus-style quantile of the observations between two scrapes."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1]
    if total <= 0:
        return float("nan")
    rank = q * total
    lower, prev = 0.0, 0.0
    for bound, cum in zip(bounds, counts, strict=True):
        if cum >= rank:
            if bound == float("inf"):
                return lower
            inside = cum - prev
            return lower + (bound - lower) * ((rank - prev) / inside if inside else 1.0)
        lower, prev = bound, cum
    return lower


def _count(before: dict[float, float], after: dict[float, float]) -> int:
    return int(after.get(float("inf"), 0.0) - before.get(float("inf"), 0.0))


async def _load(url: str, seconds: float, concurrency: int) -> list[tuple[str, float]]:
    latencies: list[tuple[str, float]] = []
    stop = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:

        async def worker(k: int) -> None:
            n = k
            while time.monotonic() < stop:
                route = ROUTES[n % len(ROUTES)]
                n += 1
                started = time.perf_counter()
                response = await client.get(route)
                latencies.append((route, time.perf_counter() - started))
                response.raise_for_status()

        await asyncio.gather(*(worker(k) for k in range(concurrency)))
    return latencies


def _q(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def one_round(args: argparse.Namespace, venue: Any, rest: LocalVenueServer) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix="tradeloop-bench-api-"))
    (folder / "loop.toml").write_text(LOOP)
    port, ws_port = _port(), _port()
    with ReplayServer(
        venue,
        port=ws_port,
        start_ms=START_MS,
        end_ms=START_MS + 5_000 * 60_000,
        bar_interval_s=args.bar_interval,
        binance_market="linear",
    ):
        env = dict(os.environ)
        env.update(
            TRADELOOP_BINANCE_URL=rest.url,
            TRADELOOP_BINANCE_WS_URL=f"ws://127.0.0.1:{ws_port}",
            TRADELOOP_API_KEY=KEY,
        )
        command = [sys.executable, "-m", "tradeloop", "serve", "--config", "loop.toml"]
        proc = subprocess.Popen(
            [*command, "--port", str(port)],
            cwd=folder,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 90
            while True:
                try:
                    if httpx.get(url + "/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("the service did not become healthy")
                time.sleep(0.2)
            time.sleep(2.0)
            b0 = _buckets(url)
            time.sleep(args.seconds)
            b1 = _buckets(url)
            latencies = asyncio.run(_load(url, args.seconds, args.concurrency))
            b2 = _buckets(url)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    return {
        "quiet_p50": _hist_quantile(0.5, b0, b1),
        "quiet_p99": _hist_quantile(0.99, b0, b1),
        "quiet_orders": _count(b0, b1),
        "loaded_p50": _hist_quantile(0.5, b1, b2),
        "loaded_p99": _hist_quantile(0.99, b1, b2),
        "loaded_orders": _count(b1, b2),
        "api_requests": len(latencies),
        "api_rps": len(latencies) / args.seconds,
        "api_p50": _q([x for _, x in latencies], 0.5),
        "api_p99": _q([x for _, x in latencies], 0.99),
        **{f"api_p99 {r}": _q([x for route, x in latencies if route == r], 0.99) for r in ROUTES},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--bar-interval", type=float, default=0.05)
    args = parser.parse_args()
    venue = recorded_venues(shared_data_dir(), open_interest=False)
    rounds = []
    with LocalVenueServer(venue) as rest:
        for n in range(args.rounds):
            rounds.append(one_round(args, venue, rest))
            print(f"round {n + 1}/{args.rounds}: {rounds[-1]}", file=sys.stderr)
    med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    ms = 1000.0
    print(
        "\nmachine load: "
        + subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    )
    print(
        f"\n{args.rounds} rounds of {args.seconds:g} s per phase, {args.concurrency} concurrent "
        f"API clients, one replayed 1m bar every {args.bar_interval:g} s; median of the rounds\n"
    )
    print("| measure | quiet (no API load) | under API load | loaded / quiet |")
    print("|---|---:|---:|---:|")
    for label, a, b in (
        ("engine bar-to-order p50 (ms)", med["quiet_p50"] * ms, med["loaded_p50"] * ms),
        ("engine bar-to-order p99 (ms)", med["quiet_p99"] * ms, med["loaded_p99"] * ms),
        ("orders timed", med["quiet_orders"], med["loaded_orders"]),
    ):
        print(f"| {label} | {a:,.2f} | {b:,.2f} | {b / a if a else float('nan'):.2f} |")
    print("\n| API under load | value |")
    print("|---|---:|")
    print(f"| requests | {med['api_requests']:,.0f} |")
    print(f"| requests / s | {med['api_rps']:,.0f} |")
    print(f"| p50 (ms) | {med['api_p50'] * ms:,.2f} |")
    print(f"| p99 (ms) | {med['api_p99'] * ms:,.2f} |")
    for route in ROUTES:
        print(f"| p99 {route} (ms) | {med['api_p99 ' + route] * ms:,.2f} |")


if __name__ == "__main__":
    main()
