"""Codec and in-process bus."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from tradeloop.bus import CodecError, InProcessBus, MessageBus, MessageCodec


class Ping(BaseModel):
    n: int


def test_codec_roundtrip_keeps_type_origin_and_version() -> None:
    codec = MessageCodec((Ping,))
    raw = codec.encode(Ping(n=3), origin="me")
    assert json.loads(raw)["v"] == 1
    env = codec.decode(raw)
    assert env.message == Ping(n=3)
    assert env.origin == "me"


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[1, 2]",
        b'{"v": 99, "type": "Ping", "data": {"n": 1}}',
        b'{"v": 1, "type": "Nope", "data": {"n": 1}}',
        b'{"v": 1, "type": "Ping", "data": {"n": "x"}}',
    ],
)
def test_codec_malformed_raises_codec_error(raw: bytes) -> None:
    with pytest.raises(CodecError):
        MessageCodec((Ping,)).decode(raw)


def test_codec_unregistered_type_raises_on_encode() -> None:
    with pytest.raises(CodecError):
        MessageCodec().encode(Ping(n=1))


def test_inprocess_bus_failing_handler_dead_letters_and_others_still_run() -> None:
    bus = InProcessBus()
    got: list[BaseModel] = []

    def boom(_: BaseModel) -> None:
        raise RuntimeError("bad handler")

    bus.subscribe("t", boom)
    bus.subscribe("t", got.append)
    bus.publish("t", Ping(n=1))
    assert got == [Ping(n=1)]
    assert len(bus.dead_letters) == 1
    assert "bad handler" in bus.dead_letters[0].error
    bus.unsubscribe("t", got.append)
    bus.publish("t", Ping(n=2))
    assert got == [Ping(n=1)]
    assert isinstance(bus, MessageBus)
