"""``RedisBus``: local dispatch first, then mirrored to Redis (pub/sub, Streams, retained).

* Topics whose name starts with one of ``stream_prefixes`` are appended to a Redis Stream of
  the same name (``XADD``) and read with consumer groups (:meth:`RedisBus.consume_stream`), so
  delivery survives a consumer being down. Topics starting with one of ``retained_prefixes``
  are ``PUBLISH``-ed and their last message is also kept under the key of the same name
  (``SET``), so a process that starts later can read it (:meth:`RedisBus.latest`). Every other
  topic is ``PUBLISH``-ed (fan-out).
* **Back-pressure, not loss.** Writes go through a bounded outbox (``buffer_max`` messages)
  drained by one writer thread in pipelined batches. While Redis is reachable, a
  :meth:`~RedisBus.publish` that finds the outbox full *waits* for room: the producer is slowed
  to the speed of Redis, nothing is dropped and memory stays bounded.
* **Redis unreachable.** The bus keeps dispatching in-process, logs once and reconnects with
  exponential backoff. Pub/sub messages published while down reach the local subscribers only
  (counted in ``stats["fallback"]``). Stream messages wait in the outbox; when it is full the
  oldest is evicted (``stats["dropped_stream"]``) so a producer never hangs on a dead server.
  On reconnect the outbox is flushed. If the server restarted (its ``run_id`` changed), the
  last ``replay_window`` stream messages are sent again, because a server without persistence
  lost them: stream delivery is at-least-once, so stream consumers must be idempotent (the
  feedback store is).
* A message that cannot be decoded, or whose handler raises, becomes a
  :class:`~tradeloop.bus.codec.DeadLetter` (kept in ``dead_letters``, logged with its reason and
  appended to the ``dead_letter_stream``); the consumer carries on.

Use the bus from one asyncio event loop thread: ``await bus.start()``, then ``publish`` is a
plain synchronous call (it may block while the outbox is full: that is the back-pressure).

``stats`` counts, per bus: ``published`` (every publish), ``mirrored`` (written to Redis),
``fallback`` (in-process only: Redis was down), ``dropped_pubsub`` (pub/sub messages in a
pipeline that failed when the link died; they may or may not have reached Redis),
``dropped_stream`` (evicted while down), ``unsent`` (still queued when :meth:`stop` gave up),
``backpressure_waits`` (publishes that had to wait for room), ``refused`` (commands the server
answered with an error, logged), ``dead_letters``, ``reconnects`` and ``replayed``.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel

from tradeloop.bus.base import Handler, InProcessBus
from tradeloop.bus.codec import CodecError, DeadLetter, MessageCodec
from tradeloop.core.extras import needs_extra

__all__ = ["RedisBus", "RedisBusConfig", "redacted_url"]

log = logging.getLogger(__name__)

StreamHandler = Callable[[BaseModel], Awaitable[None] | None]

_STREAM, _PUBSUB, _RETAINED = 0, 1, 2


class _Item(NamedTuple):
    kind: int
    topic: str
    data: bytes


@dataclass(frozen=True, slots=True)
class RedisBusConfig:
    """Settings of :class:`RedisBus`.

    Attributes
    ----------
    url
        ``redis://host:port/db``.
    stream_prefixes
        Topics starting with one of these go to Redis Streams instead of pub/sub.
    retained_prefixes
        Topics starting with one of these are published and their last message is kept under
        the key of the same name (read it with :meth:`RedisBus.latest`).
    buffer_max
        Capacity of the outbox. While Redis is reachable a full outbox makes ``publish`` wait;
        while it is not, stream messages beyond it evict the oldest.
    batch_max
        Messages per pipeline.
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
    retained_prefixes: tuple[str, ...] = ("liquidation:weights",)
    buffer_max: int = 10_000
    batch_max: int = 512
    replay_window: int = 1_000
    stream_maxlen: int = 100_000
    backoff_base_s: float = 0.05
    backoff_max_s: float = 2.0
    socket_timeout_s: float = 2.0
    dead_letter_stream: str = "tradeloop:deadletter"

    def __post_init__(self) -> None:
        if self.buffer_max < 1 or self.batch_max < 1:
            raise ValueError("buffer_max and batch_max must be >= 1")


def redacted_url(url: str) -> str:
    """``url`` with its password masked, for logs and messages.

    >>> redacted_url("redis://:secret@db:6379/0"), redacted_url("redis://db:6379/0")
    ('redis://:***@db:6379/0', 'redis://db:6379/0')
    """
    parts = urlsplit(url)
    if not parts.password:
        return url
    host = f"{parts.username or ''}:***@{parts.hostname}"
    return urlunsplit(parts._replace(netloc=host + (f":{parts.port}" if parts.port else "")))


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
        self._url = redacted_url(config.url)
        self.id = uuid.uuid4().hex[:12]
        self._local = InProcessBus()
        self._cond = threading.Condition()
        self._outbox: deque[_Item] = deque()
        self._in_flight = 0
        self._replay: deque[_Item] = deque(maxlen=max(config.replay_window, 1))
        self._remote: dict[str, list[Handler]] = {}
        self._pending_subs: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._writer_thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._running = False
        self._warned = False
        self._active_subs: frozenset[str] = frozenset()
        self._run_id: str | None = None
        self._client: Any = None  # asyncio client: pub/sub listener and stream reads
        self._sync: Any = None  # blocking client: the writer thread and latest()
        self.connected = False
        self.dead_letters: deque[DeadLetter] = deque(maxlen=1000)
        self.stats: dict[str, int] = {
            "published": 0,
            "mirrored": 0,
            "fallback": 0,
            "dropped_pubsub": 0,
            "dropped_stream": 0,
            "unsent": 0,
            "backpressure_waits": 0,
            "refused": 0,
            "dead_letters": 0,
            "reconnects": 0,
            "replayed": 0,
        }

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Connect (or keep retrying in the background when Redis is down); start the writer."""
        with needs_extra("live", "the Redis signal bus"):
            import redis
            import redis.asyncio as aioredis

        timeout = self.config.socket_timeout_s
        self._client = aioredis.Redis.from_url(
            self.config.url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self._sync = redis.Redis.from_url(
            self.config.url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self._running = True
        self._stopping.clear()
        log.info(
            "redis bus starting",
            extra={"config": repr(self.config).replace(self.config.url, self._url)},
        )
        await asyncio.to_thread(self._connect)
        self._writer_thread = threading.Thread(
            target=self._write_loop, name=f"redis-bus-writer-{self.id}", daemon=True
        )
        self._writer_thread.start()
        if self._remote:  # subscribed before start
            self._tasks.append(asyncio.create_task(self._listen(), name="redis-bus-pubsub"))

    async def stop(self, flush_timeout_s: float = 2.0) -> None:
        """Write what can be written within ``flush_timeout_s``, then stop and disconnect.

        Messages still queued after that are counted in ``stats["unsent"]``.
        """
        if self.connected:
            await self.flush(flush_timeout_s)
        self._running = False
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        if self._writer_thread is not None:
            await asyncio.to_thread(self._writer_thread.join)
            self._writer_thread = None
        with self._cond:
            self.stats["unsent"] = len(self._outbox)  # still ``buffered``, never written
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._client is not None:
            await self._client.aclose()
        if self._sync is not None:
            self._sync.close()

    def drain(self, timeout_s: float = 5.0) -> bool:
        """Block until the outbox is written; False on timeout or while Redis is unreachable."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._outbox or self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0 or not self.connected or not self._running:
                    return False
                self._cond.notify_all()
                self._cond.wait(min(left, 0.1))
        return True

    async def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until the outbox is written; return False on timeout or when disconnected."""
        return await asyncio.to_thread(self.drain, timeout_s)

    @property
    def buffered(self) -> int:
        """Messages waiting in the outbox."""
        return len(self._outbox)

    # ------------------------------------------------------------------ MessageBus port
    def publish(self, topic: str, message: BaseModel) -> None:
        """Dispatch to local subscribers, then queue the message for Redis.

        Blocks while the outbox is full and Redis is reachable (back-pressure).
        """
        self.stats["published"] += 1
        self._local.publish(topic, message)
        self._enqueue(self._kind(topic), topic, self.codec.encode(message, origin=self.id))

    def subscribe(self, topic: str, handler: Handler) -> None:
        """Receive ``topic`` from this process and, over pub/sub, from other processes."""
        self._local.subscribe(topic, handler)
        if self._kind(topic) == _STREAM:
            return  # streams are read with consume_stream (consumer groups)
        self.subscribe_channel(topic, handler)

    def subscribe_local(self, topic: str, handler: Handler) -> None:
        """Receive ``topic`` only as this process publishes it (no Redis subscription, so it
        works before :meth:`start` and from any thread)."""
        self._local.subscribe(topic, handler)

    def subscribe_channel(self, topic: str, handler: Handler) -> None:
        """Call ``handler`` with every message ``PUBLISH``-ed on channel ``topic`` by others.

        Unlike :meth:`subscribe` this also works for stream topics (a channel and a stream may
        share a name) and does not add a local subscription. Messages that do not decode, or
        whose handler raises, become dead letters.
        """
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

    async def subscribed(self, topic: str, timeout_s: float = 5.0) -> bool:
        """Wait until this bus's pub/sub listener is subscribed to ``topic``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            if topic in self._active_subs:
                return True
            await asyncio.sleep(0.01)
        return False

    def latest(self, topic: str) -> BaseModel | None:
        """Return the last message retained on ``topic`` (see ``retained_prefixes``).

        None when nothing is retained, when Redis is unreachable, or when the stored value does
        not decode (logged). Synchronous: one ``GET``.
        """
        if self._sync is None:
            return None
        try:
            raw = self._sync.get(topic)
        except _conn_errors() as exc:
            log.debug("latest(%s) failed: %s", topic, exc)
            return None
        if raw is None:
            return None
        try:
            return self.codec.decode(raw, source=topic).message
        except CodecError as exc:
            log.warning("retained message on %s does not decode: %s", topic, exc)
            return None

    # ------------------------------------------------------------------ streams
    async def consume_stream(
        self,
        topic: str,
        group: str,
        consumer: str,
        handler: StreamHandler,
        *,
        on_batch: Callable[[], object] | None = None,
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
    def _kind(self, topic: str) -> int:
        if topic.startswith(self.config.stream_prefixes):
            return _STREAM
        if topic.startswith(self.config.retained_prefixes):
            return _RETAINED
        return _PUBSUB

    def _enqueue(self, kind: int, topic: str, data: bytes) -> None:
        cap = self.config.buffer_max
        with self._cond:
            if kind != _STREAM and not self.connected:
                self.stats["fallback"] += 1
                return
            if len(self._outbox) >= cap and self.connected and self._running:
                self.stats["backpressure_waits"] += 1
                while len(self._outbox) >= cap and self.connected and self._running:
                    self._cond.wait(0.5)
            if len(self._outbox) >= cap:
                if kind != _STREAM and not self.connected:
                    self.stats["fallback"] += 1
                    return
                evicted = self._outbox.popleft()
                self.stats["dropped_stream" if evicted.kind == _STREAM else "dropped_pubsub"] += 1
            self._outbox.append(_Item(kind, topic, data))
            self._cond.notify_all()

    def _dead_letter(self, topic: str, raw: bytes | str, exc: BaseException) -> None:
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        letter = DeadLetter(topic=topic, raw=text, error=f"{type(exc).__name__}: {exc}")
        self.dead_letters.append(letter)
        self.stats["dead_letters"] += 1
        log.warning("dead letter on %s: %s", topic, letter.error)
        record = json.dumps({"topic": topic, "raw": text, "error": letter.error}).encode()
        self._enqueue(_STREAM, self.config.dead_letter_stream, record)

    def _backoff(self, attempt: int) -> float:
        return float(min(self.config.backoff_max_s, self.config.backoff_base_s * 2**attempt))

    def _mark_down(self, exc: BaseException) -> None:
        with self._cond:
            if self.connected or not self._warned:
                log.warning(
                    "redis unreachable (%s); continuing in-process and retrying",
                    exc,
                    extra={"url": self._url},
                )
                self._warned = True
            self.connected = False
            self._cond.notify_all()  # producers waiting for room stop waiting

    def _connect(self) -> bool:
        """Ping; on success mark connected (replaying after a server restart)."""
        try:
            self._sync.ping()
            run_id = str(self._sync.info("server").get("run_id"))
        except _conn_errors() as exc:
            self._mark_down(exc)
            return False
        with self._cond:
            if self._run_id is not None and run_id != self._run_id:
                # the server restarted: what it held in memory is gone, send it again
                replay = [item for item in self._replay if item.kind == _STREAM]
                self._outbox.extendleft(reversed(replay))
                self.stats["replayed"] += len(replay)
            if self._run_id is not None or self._warned:
                self.stats["reconnects"] += 1
                log.info("redis reconnected", extra={"url": self._url})
            self._run_id = run_id
            self._warned = False
            self.connected = True
            self._cond.notify_all()
        return True

    def _write_loop(self) -> None:
        """The writer thread: drain the outbox in pipelines; reconnect with backoff."""
        try:
            self._write_until_stopped()
        except Exception as exc:  # never leave producers waiting on a dead writer
            log.exception("redis bus writer failed; continuing in-process only")
            self._mark_down(exc)

    def _write_until_stopped(self) -> None:
        attempt = 0
        while not self._stopping.is_set():
            if not self.connected:
                if self._connect():
                    attempt = 0
                else:
                    self._stopping.wait(self._backoff(attempt))
                    attempt += 1
                continue
            with self._cond:
                while not self._outbox and self.connected and not self._stopping.is_set():
                    self._cond.wait(0.5)
                if not self._outbox or not self.connected or self._stopping.is_set():
                    continue
                n = min(len(self._outbox), self.config.batch_max)
                batch = [self._outbox.popleft() for _ in range(n)]
                self._in_flight = n
                self._cond.notify_all()  # room for waiting producers
            self._write_batch(batch)

    def _write_batch(self, batch: list[_Item]) -> None:
        pipe = self._sync.pipeline(transaction=False)
        for item in batch:
            if item.kind == _STREAM:
                pipe.xadd(
                    item.topic,
                    {"data": item.data},
                    maxlen=self.config.stream_maxlen,
                    approximate=True,
                )
            else:
                if item.kind == _RETAINED:
                    pipe.set(item.topic, item.data)
                pipe.publish(item.topic, item.data)
        try:
            results = pipe.execute(raise_on_error=False)
        except _conn_errors() as exc:
            # put stream messages back in order; pub/sub ones are lost with the link
            with self._cond:
                keep = [item for item in batch if item.kind == _STREAM]
                self.stats["dropped_pubsub"] += len(batch) - len(keep)
                self._outbox.extendleft(reversed(keep))
                while len(self._outbox) > self.config.buffer_max:
                    self._outbox.popleft()
                    self.stats["dropped_stream"] += 1
                self._in_flight = 0
            self._mark_down(exc)
            return
        refused = [r for r in results if isinstance(r, Exception)]
        if refused:
            log.warning("redis refused %d commands: %s", len(refused), refused[0])
        with self._cond:
            self.stats["mirrored"] += len(batch) - len(refused)
            self.stats["refused"] += len(refused)
            self._replay.extend(item for item in batch if item.kind == _STREAM)
            self._in_flight = 0
            self._cond.notify_all()

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
                            self._active_subs = frozenset(subscribed)
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
                    attempt = 0
                    if msg is not None and msg.get("type") == "message":
                        channel = msg["channel"]
                        topic = channel.decode() if isinstance(channel, bytes) else str(channel)
                        self._deliver_remote(topic, msg["data"])
            except errors as exc:
                self._active_subs = frozenset()
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
