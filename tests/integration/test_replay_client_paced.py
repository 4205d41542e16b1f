"""The replay clock paced by its client (``client_ready``): after a bar that closed something it
moves on only once the client has answered that bar, whatever the wall clock; the frames are
the same Binance kline messages as on the wall clock. A plain ``websockets`` client (not our
code) reads them."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from websockets.sync.client import connect

from tradeloop.testing.replay import BASE_BAR_MS, ReplayServer
from tradeloop.testing.venue import VenueData, recorded_venues

START_MS = 1_748_736_000_000  # 2025-06-01 00:00 UTC: inside the recorded BTC/USDT 1m series
BARS = 6


@pytest.fixture(scope="module")
def data(shared_data: Path) -> VenueData:
    return recorded_venues(shared_data, open_interest=False)


def _klines(url: str, n: int) -> list[dict[str, object]]:
    """The first ``n`` kline frames of ``btcusdt@kline_1m`` on the raw stream path."""
    with connect(f"{url}/ws/btcusdt@kline_1m") as client:
        return [json.loads(client.recv(timeout=30))["k"] for _ in range(n)]


def test_the_clock_waits_for_each_answer_and_sends_the_recording_unchanged(
    data: VenueData,
) -> None:
    # Arrange: the client answers a bar only when the test lets it
    answered: set[int] = set()
    lock = threading.Lock()

    def ready(bar_ms: int) -> bool:
        with lock:
            return bar_ms in answered

    end_ms = START_MS + BARS * BASE_BAR_MS
    with ReplayServer(
        data,
        start_ms=START_MS,
        end_ms=end_ms,
        bar_interval_s=0.001,
        advance_when_idle=False,
        client_ready=ready,
    ) as ws:
        frames: list[dict[str, object]] = []
        reader = threading.Thread(target=lambda: frames.extend(_klines(ws.url, 2 * BARS + 1)))
        reader.start()
        # Act: each bar that closes one is held until answered
        held = []
        for bar in range(START_MS + BASE_BAR_MS, end_ms + 1, BASE_BAR_MS):
            assert ws.wait_for(bar, timeout=30)
            # two hundred bar intervals later the clock is still at the unanswered bar
            held.append(not ws.wait_for(bar + BASE_BAR_MS, timeout=0.2))
            with lock:
                answered.add(bar)
        reader.join(timeout=30)
        timeouts = ws.client_timeouts
    # Assert: every closing bar was held, none timed out, and the frames are the recording's
    assert held == [True] * BARS
    assert timeouts == 0
    candles = data.candles("binance", "spot", "BTCUSDT", "1m")
    assert candles is not None
    closed = [k for k in frames if k["x"]]
    assert [k["t"] for k in closed] == [START_MS + i * BASE_BAR_MS for i in range(BARS)]
    for k in closed:
        i = int((candles.ts == k["t"]).nonzero()[0][0])
        assert float(str(k["c"])) == float(candles.close[i])
        assert float(str(k["v"])) == float(candles.volume[i])
    assert len(frames) == 2 * BARS + 1  # an open frame per bar, and a close from the second on


def test_a_client_that_never_answers_is_counted_and_the_clock_moves_on(data: VenueData) -> None:
    # Arrange
    end_ms = START_MS + 3 * BASE_BAR_MS
    with ReplayServer(
        data,
        start_ms=START_MS,
        end_ms=end_ms,
        bar_interval_s=0.001,
        advance_when_idle=False,
        client_ready=lambda _bar: False,
        client_timeout_s=0.2,
    ) as ws:
        # Act: a client that stays connected and never answers
        with connect(f"{ws.url}/ws/btcusdt@kline_1m") as client:
            frames = [json.loads(client.recv(timeout=30))["k"] for _ in range(7)]
            waited = ws.wait_until(lambda: ws.client_timeouts >= 3, timeout=30)
        timeouts = ws.client_timeouts
    # Assert: each of the three closing bars waited out its time-out once
    assert waited
    assert timeouts == 3
    assert [k["x"] for k in frames] == [False, True, False, True, False, True, False]
