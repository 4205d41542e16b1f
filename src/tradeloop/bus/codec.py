"""Versioned JSON codec for bus messages.

Every message travels as an envelope ``{"v": 1, "type": "<Name>", "origin": "...",
"data": {...}}``. ``type`` names a pydantic model registered with :meth:`MessageCodec.register`;
``v`` is the envelope version. Decoding anything else raises :class:`CodecError`, which the
buses turn into a dead-letter record instead of crashing a consumer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from tradeloop.core.errors import DataError

__all__ = ["ENVELOPE_VERSION", "CodecError", "DeadLetter", "Envelope", "MessageCodec"]

ENVELOPE_VERSION = 1


class CodecError(DataError):
    """A bus message could not be decoded (bad JSON, unknown type or version, invalid fields)."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """A decoded message and where it came from."""

    message: BaseModel
    origin: str


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message that could not be decoded or handled.

    Attributes
    ----------
    topic
        Channel or stream the message arrived on.
    raw
        The raw payload as received (bytes decoded as UTF-8 with replacement).
    error
        Why it was rejected.
    """

    topic: str
    raw: str
    error: str


class MessageCodec:
    """Encode registered pydantic models to versioned JSON and back.

    Parameters
    ----------
    models
        Message classes to register; their class name is the wire ``type``.
    """

    def __init__(self, models: tuple[type[BaseModel], ...] = ()) -> None:
        self._types: dict[str, type[BaseModel]] = {}
        for model in models:
            self.register(model)

    def register(self, model: type[BaseModel]) -> None:
        """Register ``model`` under its class name."""
        self._types[model.__name__] = model

    def encode(self, message: BaseModel, origin: str = "") -> bytes:
        """Return the JSON envelope of ``message``.

        Raises
        ------
        CodecError
            If the message type is not registered.
        """
        name = type(message).__name__
        if name not in self._types:
            raise CodecError(f"message type {name!r} is not registered with the codec")
        body = message.model_dump_json()
        head = json.dumps({"v": ENVELOPE_VERSION, "type": name, "origin": origin})
        return (head[:-1] + ', "data": ' + body + "}").encode()

    def decode(self, raw: bytes | str, *, source: str = "bus") -> Envelope:
        """Decode one envelope.

        Raises
        ------
        CodecError
            On invalid JSON, an unknown version or type, or fields the model rejects.
        """
        try:
            obj: Any = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise CodecError(f"invalid JSON: {exc}", file=source) from exc
        if not isinstance(obj, dict):
            raise CodecError("envelope is not a JSON object", file=source)
        version = obj.get("v")
        if version != ENVELOPE_VERSION:
            raise CodecError(f"unsupported envelope version {version!r}", file=source, field="v")
        model = self._types.get(str(obj.get("type")))
        if model is None:
            raise CodecError(f"unknown message type {obj.get('type')!r}", file=source, field="type")
        try:
            message = model.model_validate(obj.get("data"))
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first.get("loc", ())) or None
            raise CodecError(
                f"invalid {model.__name__}: {first['msg']}", file=source, field=field
            ) from exc
        return Envelope(message=message, origin=str(obj.get("origin", "")))
