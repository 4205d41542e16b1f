"""The faster ``__init__`` builds the same objects as the dataclass's own."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from typing import Any

import pytest

from tradeloop.core.errors import ConfigError
from tradeloop.core.orders import Fill, Order, OrderSide, OrderType
from tradeloop.core.position import ExitReason, Position, Trade
from tradeloop.core.signal import Signal, SignalAction, SizeMode
from tradeloop.core.slots_init import slots_init


def _dataclass_init_twin(cls: type) -> type:
    """The same fields as ``cls`` with the dataclass's generated ``__init__``."""
    fields = [(f.name, f.type, f) for f in dataclasses.fields(cls)]
    namespace: dict[str, Any] = {}
    if "__post_init__" in cls.__dict__:
        namespace["__post_init__"] = cls.__dict__["__post_init__"]
    return dataclasses.make_dataclass(
        "Twin" + cls.__name__, fields, namespace=namespace, frozen=True, slots=True
    )


_CASES: list[tuple[type, tuple[Any, ...], dict[str, Any]]] = [
    (Signal, ("BTC/USDT", SignalAction.OPEN_LONG), {}),
    (
        Signal,
        ("BTC/USDT", SignalAction.OPEN_SHORT, 0.5, SizeMode.EQUITY_FRACTION, 110.0, 90.0),
        {"trailing_stop": 0.01, "tag": "x"},
    ),
    (Order, (7, "BTC/USDT", OrderSide.BUY, OrderType.MARKET, 0.0, 5), {"equity_fraction": 1.0}),
    (Fill, (7, "BTC/USDT", OrderSide.SELL, 1.5, 100.0, 0.15, 9), {}),
    (Position, ("p", "X", 1, 1.0, 100.0, 0, 0.1), {"stop_loss": 99.0, "trail_anchor": 101.0}),
    (
        Trade,
        ("a", "X", 1, 2.0, 0, 10.0, 5, 11.0, 0.0, 0.0, 2.0, ExitReason.SIGNAL),
        {"tag": "t"},
    ),
]


@pytest.mark.parametrize(
    ("cls", "args", "kwargs"), _CASES, ids=lambda v: getattr(v, "__name__", "")
)
def test_the_fast_init_builds_what_the_dataclass_init_builds(
    cls: type, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    # Arrange
    twin = _dataclass_init_twin(cls)
    # Act
    ours = cls(*args, **kwargs)
    theirs = twin(*args, **kwargs)
    # Assert: every field (defaults included), frozen, copies and pickles alike
    assert dataclasses.astuple(ours) == dataclasses.astuple(theirs)
    assert cls.__init__ is not twin.__init__
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(ours, dataclasses.fields(cls)[0].name, None)
    assert copy.copy(ours) == ours
    assert pickle.loads(pickle.dumps(ours)) == ours
    assert dataclasses.replace(ours) == ours


def test_post_init_still_checks_and_errors_are_the_same() -> None:
    # Act / Assert: __post_init__ runs, and a missing or unknown argument is a TypeError
    with pytest.raises(ConfigError, match="size must be > 0"):
        Signal("X", SignalAction.OPEN_LONG, 0.0)
    with pytest.raises(TypeError):
        Fill(1, "X")  # type: ignore[call-arg]


def test_classes_it_cannot_speed_up_are_left_alone() -> None:
    # Arrange
    @dataclasses.dataclass(frozen=True, slots=True)
    class WithFactory:
        items: list[int] = dataclasses.field(default_factory=list)

    @dataclasses.dataclass
    class NotFrozen:
        x: int

    before = (WithFactory.__init__, NotFrozen.__init__)
    # Act
    slots_init(WithFactory)
    slots_init(NotFrozen)
    # Assert
    assert (WithFactory.__init__, NotFrozen.__init__) == before
