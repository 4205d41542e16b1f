"""A plain redis-py pub/sub subscriber (not tradeloop's bus) that records what arrives.

Tests use it to check from outside that every message the product reports reached Redis.
"""

from __future__ import annotations

import threading
import time

import redis

__all__ = ["RawSubscriber"]


class RawSubscriber:
    """``redis.Redis().pubsub()`` on ``channels``, read by a thread into :attr:`messages`.

    The subscription is confirmed before the constructor returns, so nothing published after
    it is missed. Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, url: str, channels: list[str]) -> None:
        self.client = redis.Redis.from_url(url)
        self.pubsub = self.client.pubsub()
        self.pubsub.subscribe(*channels)
        for _ in channels:  # one confirmation per channel
            if self.pubsub.get_message(timeout=5.0) is None:
                raise TimeoutError(f"no subscribe confirmation from {len(channels)} channel(s)")
        #: (channel, payload, monotonic arrival time), in arrival order
        self.messages: list[tuple[str, bytes, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            msg = self.pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
            if msg is not None and msg["type"] == "message":
                self.messages.append((msg["channel"].decode(), msg["data"], time.monotonic()))

    def payloads(self, channel: str | None = None) -> list[bytes]:
        """Payloads received (on ``channel`` only, when given)."""
        return [d for ch, d, _ in self.messages if channel is None or ch == channel]

    def on(self, channel: str) -> list[tuple[bytes, float]]:
        """Payloads of ``channel`` with their arrival times."""
        return [(d, at) for ch, d, at in self.messages if ch == channel]

    def wait_for(self, n: int, limit_s: float = 60.0) -> int:
        """Wait until ``n`` messages arrived or ``limit_s`` passed; return how many did."""
        deadline = time.monotonic() + limit_s
        while len(self.messages) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        return len(self.messages)

    def close(self) -> None:
        """Stop reading and disconnect."""
        self._stop.set()
        self._thread.join(5)
        self.pubsub.close()
        self.client.close()

    def __enter__(self) -> RawSubscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
