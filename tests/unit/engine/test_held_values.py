"""held_values (the equity curve's cash and quantity per step) equals a per-step search."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradeloop.engine.kernel import held_values


def _reference(steps: list[int], values: list[float], initial: float, n: int) -> np.ndarray:
    """Each step's value: the last entry at or before it (``initial`` before the first)."""
    out = np.full(n, initial, dtype=np.float64)
    for k in range(n):
        for step, value in zip(steps, values, strict=True):
            if step <= k:
                out[k] = value
    return out


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(0, 60),
    entries=st.lists(
        st.tuples(st.integers(-2, 65), st.floats(-1e6, 1e6, allow_nan=False)), max_size=25
    ),
    initial=st.floats(-1e6, 1e6, allow_nan=False),
)
def test_held_values_equal_the_last_entry_at_or_before_each_step(
    n: int, entries: list[tuple[int, float]], initial: float
) -> None:
    # Arrange: sorted steps, repeats and steps outside [0, n) included
    entries = sorted(entries, key=lambda e: e[0])
    steps, values = [s for s, _ in entries], [v for _, v in entries]
    # Act
    held = held_values(steps, values, initial, n)
    # Assert
    np.testing.assert_array_equal(held, _reference(steps, values, initial, n))
    assert held.shape == (n,)


def test_held_values_reject_out_of_order_steps_and_mismatched_lengths() -> None:
    # Arrange / Act / Assert: a ledger out of step order has no "value in force" to repeat
    with pytest.raises(ValueError, match="out of order"):
        held_values([3, 1], [1.0, 2.0], 0.0, 5)
    with pytest.raises(ValueError, match="2 steps but 1 values"):
        held_values([1, 2], [1.0], 0.0, 5)
