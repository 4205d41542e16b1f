"""Message bus: the :class:`MessageBus` port, :class:`InProcessBus` and :class:`RedisBus`."""

from tradeloop.bus.base import Handler, InProcessBus, MessageBus
from tradeloop.bus.codec import CodecError, DeadLetter, Envelope, MessageCodec
from tradeloop.bus.redis_bus import RedisBus, RedisBusConfig, redacted_url

__all__ = [
    "CodecError",
    "DeadLetter",
    "Envelope",
    "Handler",
    "InProcessBus",
    "MessageBus",
    "MessageCodec",
    "RedisBus",
    "RedisBusConfig",
    "redacted_url",
]
