"""The one fill rule of protective exits, checked against hand-worked bars."""

from __future__ import annotations

import pytest

from tradeloop.execution.fill_rules import TriggerFill, TriggerKind, trigger_fill

STOP, TAKE = TriggerKind.STOP, TriggerKind.TAKE_PROFIT


@pytest.mark.parametrize(
    ("kind", "direction", "level", "bar", "expected"),
    [
        # a long's stop: touched inside the bar -> the level; opened through -> the open
        (STOP, 1, 95.0, (100.0, 101.0, 95.0), TriggerFill(95.0, False, False)),
        (STOP, 1, 95.0, (94.0, 96.0, 93.0), TriggerFill(94.0, False, True)),
        (STOP, 1, 95.0, (100.0, 101.0, 95.01), None),
        # a short's stop is above
        (STOP, -1, 105.0, (100.0, 105.5, 99.0), TriggerFill(105.0, False, False)),
        (STOP, -1, 105.0, (107.0, 108.0, 104.0), TriggerFill(107.0, False, True)),
        # targets fill as a resting limit (maker), at the open on a gap
        (TAKE, 1, 110.0, (100.0, 110.0, 99.0), TriggerFill(110.0, True, False)),
        (TAKE, 1, 110.0, (111.0, 112.0, 109.0), TriggerFill(111.0, True, True)),
        (TAKE, -1, 90.0, (100.0, 101.0, 90.5), None),
        (TAKE, -1, 90.0, (89.0, 91.0, 88.0), TriggerFill(89.0, True, True)),
    ],
)
def test_trigger_fill(
    kind: TriggerKind,
    direction: int,
    level: float,
    bar: tuple[float, float, float],
    expected: TriggerFill | None,
) -> None:
    o, h, low = bar
    assert trigger_fill(kind, direction, level, o, h, low) == expected
