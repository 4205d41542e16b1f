"""SignalRecord: a step's recorded signals, named with their ids only when read."""

from __future__ import annotations

import pickle

from tradeloop.core.signal import Signal, signal_id
from tradeloop.engine.step import SignalRecord

T0 = 1_704_067_200_000_000_000


def _raw() -> list[tuple[int, Signal]]:
    return [
        (T0, Signal.open_long("BTC", 0.5)),
        (T0 + 60, Signal.close("BTC")),
        (T0 + 120, Signal.open_short("ETH", 0.2, position_id="mine")),
        (T0 + 180, Signal.open_long("ETH", 0.1)),
    ]


def test_reading_names_every_unnamed_opening_signal_once() -> None:
    # Arrange
    raw = _raw()
    record = SignalRecord("sma", raw)
    # Act
    count = len(record)
    named_after_len = len(record._named)
    first, second = list(record), list(record)
    # Assert: len names nothing; each opening signal without an id gets signal_id's id
    assert count == 4
    assert named_after_len == 0
    assert [s.position_id for _, s in first] == [
        signal_id("sma", "BTC", T0),
        None,
        "mine",
        signal_id("sma", "ETH", T0 + 180),
    ]
    assert all(a[1] is b[1] for a, b in zip(first, second, strict=True))  # named once
    assert [(ts, s.symbol, s.action, s.size) for ts, s in first] == [
        (ts, s.symbol, s.action, s.size) for ts, s in raw
    ]


def test_signals_recorded_after_a_read_are_named_on_the_next_read() -> None:
    # Arrange
    raw = _raw()[:1]
    record = SignalRecord("sma", raw)
    before = record[0]
    # Act
    raw.append((T0 + 240, Signal.open_short("BTC", 0.3)))
    # Assert
    assert record[0] is before
    assert record[-1][1].position_id == signal_id("sma", "BTC", T0 + 240)
    assert len(record[0:2]) == 2


def test_a_record_equals_the_list_of_its_pairs_and_pickles_as_that_list() -> None:
    # Arrange
    record = SignalRecord("sma", _raw())
    other = SignalRecord("sma", _raw())
    # Act
    as_list = list(record)
    restored = pickle.loads(pickle.dumps(record))
    # Assert
    assert record == as_list
    assert as_list == record
    assert record == other
    assert record != SignalRecord("other", _raw())
    assert type(restored) is list
    assert restored == as_list
