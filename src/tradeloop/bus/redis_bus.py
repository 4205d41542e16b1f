"""``RedisBus``: local dispatch first, then mirrored to Redis (pub/sub or Streams).

* Topics whose name starts with one of ``stream_prefixes`` are appended to a Redis Stream of
  the same name (``XADD``) and read with consumer groups (:meth:`RedisBus.consume_stream`), so
  delivery survives a consumer being down. Every other topic is ``PUBLISH``-ed (fan-out).
* Writes go through an outbox drained by one writer task in pipelined batches.
* When Redis is unreachable the bus keeps dispatching in-process, logs once, and retries with
  exponential backoff. Stream messages wait in the bounded outbox (oldest dropped first,
  counted in ``stats["dropped_stream"]``); pub/sub messages published while down are dropped
  and counted in ``stats["dropped_pubsub"]``. On reconnect the outbox is flushed. If the server
  restarted (its ``run_id`` changed), the last ``replay_window`` stream messages are sent again,
  because a server without persistence lost them: delivery is at-least-once, so stream
  consumers must be idempotent (the feedback store is).
* A message that cannot be decoded, or whose handler raises, becomes a
  :class:`~tradeloop.bus.codec.DeadLetter` (kept in ``dead_letters`` and appended to the
  ``dead_letter_stream``); the consumer carries on.

Use the bus from one asyncio event loop thread: ``await bus.start()``, then ``publish`` is a
plain synchronous call.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from tradeloop.bus.base import Handler, InProcessBus
from tradeloop.bus.codec import CodecError, DeadLetter, MessageCodec

__all__ = ["RedisBus", "RedisBusConfig"]

log = logging.getLogger(__name__)

StreamHandler = Callable[[BaseModel], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class RedisBusConfig:
    """Settings of :class:`RedisBus`.

    Attributes
    ----------
    url
        ``redis://host:port/db``.
    stream_prefixes
        Topics starting with one of these go to Redis Streams instead of pub/sub.
    buffer_max
        Capacity of the outbox while Redis is unreachable.
    replay_window
        How many recently written stream messages to resend after a server restart.
    stream_maxlen
        Approximate ``MAXLEN`` of each stream.
    backoff_base_s, backoff_max_s
        Reconnect backoff: ``min(max, base * 2**attempt)``.
    socket_timeout_s
        Socket connect/read timeout.
    dead_letter_stream
        Stream that receives dead letters.
    """

    url: str = "redis://127.0.0.1:6379/0"
    stream_prefixes: tuple[str, ...] = ("liquidation:feedback",)
    buffer_max: int = 10_000
    replay_window: int = 1_000
    stream_maxlen: int = 100_000
    backoff_base_s: float = 0.05
    backoff_max_s: float = 2.0
    socket_timeout_s: float = 2.0
    dead_letter_stream: str = "tradeloop:deadletter"


def _conn_errors() -> tuple[type[BaseException], ...]:
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return (RedisConnectionError, RedisTimeoutError, OSError, asyncio.TimeoutError)


class RedisBus:
    """A :class:`~tradeloop.bus.base.MessageBus` mirrored to Redis.

    Parameters
    ----------
    config
        Connection and buffering settings.
    codec
        Codec with every message type that will cross the bus registered.
    """

    def __init__(self, config: RedisBusConfig, codec: MessageCodec) -> None:
        self.config = config
        self.codec = codec
        self.id = uuid.uuid4().hex[:12]
        self._local = InProcessBus()
        self._outbox: deque[tuple[bool, str, bytes]] = deque()
        self._replay: deque[tuple[bool, str, bytes]] = deque(maxlen=max(config.replay_window, 1))
        self._remote: dict[str, list[Handler]] = {}
        self._pending_subs: set[str] = set()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: list[asyncio.Task[None]] = []
        self._reconnect_task: asyncio.Task[None] | None = None
        self._running = False
        self._run_id: str | None = None
        self._client: Any = None
        self.connected = False
        self.dead_letters: deque[DeadLetter] = deque(maxlen=1000)
        self.stats: dict[str, int] = {
            "published": 0,
            "mirrored": 0,
            "dropped_pubsub": 0,
            "dropped_stream": 0,
            "dead_letters": 0,
            "reconnects": 0,
            "replayed": 0,
        }

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Connect (or schedule reconnects when Redis is down) and start the writer task."""
        import redis.asyncio as aioredis

        self._client = aioredis.Redis.from_url(
            self.config.url,
            socket_timeout=self.config.socket_timeout_s,
            socket_connect_timeout=self.config.socket_timeout_s,
        )
        self._running = True
        log.info("redis bus starting", extra={"config": repr(self.config)})
        try:
            await self._client.ping()
            self._run_id = str((await self._client.info("server")).get("run_id"))
            self.connected = True
        except _conn_errors() as exc:
            self._mark_down(exc)
        self._tasks.append(asyncio.create_task(self._writer(), name="redis-bus-writer"))

    async def stop(self, flush_timeout_s: float = 2.0) -> None:
        """Flush what can be flushed, stop background tasks and close the connection."""
        if self.connected:
            await self.flush(flush_timeout_s)
        self._running = False
        self._wake.set()
        tasks = [*self._tasks]
        if self._reconnect_task is not None:
            tasks.append(self._reconnect_task)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        if self._client is not None:
            await self._client.aclose()

    async def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until the outbox is written; return False on timeout or when disconnected."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while self._outbox or not self._idle.is_set():
            if asyncio.get_running_loop().time() > deadline:
                return False
            self._wake.set()
            await asyncio.sleep(0.001)
        return True

    @property
    def buffered(self) -> int:
        """Messages waiting in the outbox."""
        return len(self._outbox)

    # ------------------------------------------------------------------ MessageBus port
    def publish(self, topic: str, message: BaseModel) -> None:
        """Dispatch to local subscribers, then queue the message for Redis."""
        self.stats["published"] += 1
        self._local.publish(topic, message)
        self._enqueue(self._is_stream(topic), topic, self.codec.encode(message, origin=self.id))

    def subscribe(self, topic: str, handler: Handler) -> None:
        """Receive ``topic`` from this process and, over pub/sub, from other processes."""
        self._local.subscribe(topic, handler)
        if self._is_stream(topic):
            return  # streams are read with consume_stream (consumer groups)
        first = topic not in self._remote
        self._remote.setdefault(topic, []).append(handler)
        if first:
            self._pending_subs.add(topic)
            if self._running and not any(t.get_name() == "redis-bus-pubsub" for t in self._tasks):
                self._tasks.append(asyncio.create_task(self._listen(), name="redis-bus-pubsub"))

    def unsubscribe(self, topic: str, handler: Handler) -> None:
        """Remove ``handler`` (the Redis subscription stays until :meth:`stop`)."""
        self._local.unsubscribe(topic, handler)
        handlers = self._remote.get(topic, [])
        if handler in handlers:
            handlers.remove(handler)

    # ------------------------------------------------------------------ streams
    async def consume_stream(
        self,
        topic: str,
        group: str,
        consumer: str,
        handler: StreamHandler,
        *,
        on_batch: Callable[[], None] | None = None,
        batch: int = 500,
        block_ms: int = 100,
        stop: asyncio.Event | None = None,
    ) -> None:
        """Read ``topic`` as consumer ``consumer`` of ``group`` until ``stop`` is set.

        Each entry is decoded and passed to ``handler``; ``on_batch`` runs after each batch and
        before the batch is acknowledged (commit there). Entries left pending by an earlier run of
        the same consumer are delivered first. Malformed entries become dead letters and are
        acknowledged. Lost connections are retried with backoff; a group lost in a server restart
        is recreated.
        """
        from redis.exceptions import ResponseError

        stop = stop or asyncio.Event()
        attempt = 0
        start_id = "0"  # our own pending entries first, then new ones
        group_ready = False
        while not stop.is_set() and self._running:
            try:
                if not group_ready:
                    try:
                        await self._client.xgroup_create(topic, group, id="0", mkstream=True)
                    except ResponseError as exc:
                        if "BUSYGROUP" not in str(exc):
                            raise
                    group_ready = True
                resp = await self._client.xreadgroup(
                    group,
                    consumer,
                    {topic: start_id},
                    count=batch,
                    block=None if start_id == "0" else block_ms,
                )
                attempt = 0
                entries = resp[0][1] if resp else []
                if start_id == "0" and not entries:
                    start_id = ">"
                    continue
                ids = []
                for entry_id, fields in entries:
                    ids.append(entry_id)
                    raw = fields.get(b"data", b"")
                    try:
                        envelope = self.codec.decode(raw, source=topic)
                        result = handler(envelope.message)
                        if inspect.isawaitable(result):
                            await result
                    except Exception as exc:
                        self._dead_letter(topic, raw, exc)
                if on_batch is not None and ids:
                    on_batch()
                if ids:
                    await self._client.xack(topic, group, *ids)
            except ResponseError as exc:
                if "NOGROUP" in str(exc):
                    group_ready = False
                    start_id = "0"
                    continue
                raise
            except _conn_errors() as exc:
                self._mark_down(exc)
                group_ready = False
                start_id = "0"
                await asyncio.sleep(self._backoff(attempt))
                attempt += 1

    # ------------------------------------------------------------------ internals
    def _is_stream(self, topic: str) -> bool:
        return topic.startswith(self.config.stream_prefixes)

    def _enqueue(self, is_stream: bool, topic: str, data: bytes) -> None:
        if not is_stream and not self.connected:
            self.stats["dropped_pubsub"] += 1
            return
        if len(self._outbox) >= self.config.buffer_max:
            dropped_stream, _, _ = self._outbox.popleft()
            self.stats["dropped_stream" if dropped_stream else "dropped_pubsub"] += 1
        self._outbox.append((is_stream, topic, data))
        self._wake.set()

    def _dead_letter(self, topic: str, raw: bytes | str, exc: BaseException) -> None:
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        letter = DeadLetter(topic=topic, raw=text, error=f"{type(exc).__name__}: {exc}")
        self.dead_letters.append(letter)
        self.stats["dead_letters"] += 1
        log.warning("dead letter on %s: %s", topic, letter.error)
        record = json.dumps({"topic": topic, "raw": text, "error": letter.error}).encode()
        self._enqueue(True, self.config.dead_letter_stream, record)

    def _backoff(self, attempt: int) -> float:
        return float(min(self.config.backoff_max_s, self.config.backoff_base_s * 2**attempt))

    def _mark_down(self, exc: BaseException) -> None:
        if self.connected or self._reconnect_task is None:
            log.warning(
                "redis unreachable (%s); continuing in-process and retrying",
                exc,
                extra={"url": self.config.url},
            )
        self.connected = False
        if self._running and (self._reconnect_task is None or self._reconnect_task.done()):
            self._reconnect_task = asyncio.create_task(self._reconnect(), name="redis-reconnect")

    async def _reconnect(self) -> None:
        attempt = 0
        while self._running and not self.connected:
            await asyncio.sleep(self._backoff(attempt))
            attempt += 1
            try:
                await self._client.ping()
                run_id = str((await self._client.info("server")).get("run_id"))
            except _conn_errors():
                continue
            if self._run_id is not None and run_id != self._run_id:
                # the server restarted: what it held in memory is gone, send it again
                replay = [item for item in self._replay if item[0]]
                self._outbox.extendleft(reversed(replay))
                self.stats["replayed"] += len(replay)
            self._run_id = run_id
            self.connected = True
            self.stats["reconnects"] += 1
            log.info("redis reconnected", extra={"url": self.config.url})
            self._wake.set()

    async def _writer(self) -> None:
        errors = _conn_errors()
        while self._running:
            await self._wake.wait()
            self._wake.clear()
            while self._outbox and self.connected:
                self._idle.clear()
                n = min(len(self._outbox), 512)
                batch = [self._outbox.popleft() for _ in range(n)]
                pipe = self._client.pipeline(transaction=False)
                for is_stream, topic, data in batch:
                    if is_stream:
                        pipe.xadd(
                            topic,
                            {"data": data},
                            maxlen=self.config.stream_maxlen,
                            approximate=True,
                        )
                    else:
                        pipe.publish(topic, data)
                try:
                    await pipe.execute()
                except errors as exc:
                    # put stream messages back in order; pub/sub ones are lost with the link
                    keep = [item for item in batch if item[0]]
                    self.stats["dropped_pubsub"] += len(batch) - len(keep)
                    self._outbox.extendleft(reversed(keep))
                    while len(self._outbox) > self.config.buffer_max:
                        self._outbox.pop()
                        self.stats["dropped_stream"] += 1
                    self._mark_down(exc)
                    break
                self.stats["mirrored"] += n
                self._replay.extend(item for item in batch if item[0])
            self._idle.set()

    async def _listen(self) -> None:
        errors = _conn_errors()
        attempt = 0
        while self._running:
            pubsub = self._client.pubsub()
            try:
                subscribed: set[str] = set()
                self._pending_subs |= set(self._remote)
                while self._running:
                    if self._pending_subs:
                        new = self._pending_subs - subscribed
                        self._pending_subs.clear()
                        if new:
                            await pubsub.subscribe(*new)
                            subscribed |= new
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
                    attempt = 0
                    if msg is not None and msg.get("type") == "message":
                        channel = msg["channel"]
                        topic = channel.decode() if isinstance(channel, bytes) else str(channel)
                        self._deliver_remote(topic, msg["data"])
            except errors as exc:
                self._mark_down(exc)
                await asyncio.sleep(self._backoff(attempt))
                attempt += 1
            finally:
                try:
                    await pubsub.aclose()
                except Exception:  # closing a dead connection may fail; nothing to do
                    log.debug("pubsub close failed", exc_info=True)

    def _deliver_remote(self, topic: str, raw: bytes) -> None:
        try:
            envelope = self.codec.decode(raw, source=topic)
        except CodecError as exc:
            self._dead_letter(topic, raw, exc)
            return
        if envelope.origin == self.id:
            return  # our own message, already dispatched locally
        for handler in tuple(self._remote.get(topic, ())):
            try:
                handler(envelope.message)
            except Exception as exc:
                self._dead_letter(topic, raw, exc)
