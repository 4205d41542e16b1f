"""``indicators.parquet``: what a strategy plotted, read back as it was written.

Series on the same times are stored wide (the times once, a column of values per name);
series on different times, or named like the long table's columns, are stored long (``name,
timestamp, value``), the layout of files written before the wide one, which still read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tradeloop.engine.output import read_indicators, write_indicators

MINUTE = 60 * 10**9
TS = 1_700_000_000 * 10**9 + np.arange(50, dtype=np.int64) * MINUTE


def _same(
    got: dict[str, tuple[np.ndarray, np.ndarray]], want: dict[str, tuple[np.ndarray, np.ndarray]]
) -> None:
    assert list(got) == list(want)
    for name, (ts, values) in want.items():
        assert got[name][0].tolist() == np.asarray(ts).tolist()
        np.testing.assert_array_equal(got[name][1], values)  # NaN where NaN, every bit else


def _no_definition_levels(path: Path) -> None:
    """Every column is stored as required: no nulls, so no definition levels to write."""
    schema = pq.ParquetFile(path).metadata.schema
    assert [schema.column(i).max_definition_level for i in range(len(schema))] == [0] * len(schema)


def test_series_on_the_same_times_are_stored_once_and_read_back(tmp_path: Path) -> None:
    # Arrange: two averages with NaN warm-up bars, the second on an equal copy of the times
    fast = np.r_[np.full(9, np.nan), np.linspace(100.0, 101.0, 41)]
    slow = np.r_[np.full(29, np.nan), np.linspace(99.0, 100.5, 21)]
    plotted = {"SMA 10": (TS, fast), "SMA 30": (TS.copy(), slow)}
    path = tmp_path / "indicators.parquet"
    # Act
    write_indicators(plotted, path)
    # Assert: one row a bar, the times once
    table = pq.read_table(path)
    assert table.column_names == ["timestamp", "SMA 10", "SMA 30"]
    assert table.num_rows == len(TS)
    _no_definition_levels(path)
    _same(read_indicators(path), plotted)


@pytest.mark.parametrize(
    "plotted",
    [
        {"a": (TS, np.arange(50.0)), "b": (TS[10:], np.arange(40.0) * 2)},  # other times
        {"name": (TS, np.arange(50.0)), "x": (TS, np.ones(50))},  # a long table's column
        {"timestamp": (TS, np.arange(50.0))},
    ],
)
def test_other_series_are_stored_long_and_read_back(
    tmp_path: Path, plotted: dict[str, tuple[np.ndarray, np.ndarray]]
) -> None:
    # Arrange
    path = tmp_path / "indicators.parquet"
    # Act
    write_indicators(plotted, path)
    # Assert
    table = pq.read_table(path)
    assert table.column_names == ["name", "timestamp", "value"]
    assert table.num_rows == sum(len(ts) for ts, _ in plotted.values())
    _no_definition_levels(path)
    _same(read_indicators(path), plotted)


def test_a_file_of_the_long_layout_written_earlier_still_reads(tmp_path: Path) -> None:
    # Arrange: the long layout as plain Arrow columns, one series after the other
    path = tmp_path / "indicators.parquet"
    table = pa.table(
        {
            "name": pa.array(["SMA 10"] * 3 + ["SMA 30"] * 2).dictionary_encode(),
            "timestamp": pa.array([1, 2, 3, 2, 3], pa.int64()),
            "value": pa.array([1.0, 1.5, 2.0, 1.25, 1.75]),
        }
    )
    pq.write_table(table, path)
    # Act
    got = read_indicators(path)
    # Assert
    _same(
        got,
        {
            "SMA 10": (np.array([1, 2, 3]), np.array([1.0, 1.5, 2.0])),
            "SMA 30": (np.array([2, 3]), np.array([1.25, 1.75])),
        },
    )
