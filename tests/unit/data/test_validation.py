"""Validation of OHLCV data: each malformed file names its file, first bad row and field."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from tradeloop.core.errors import DataError
from tradeloop.data import load_ohlcv, validate_ohlcv, validate_timestamps
from tradeloop.data.validation import count_time_order_problems

HEADER = "timestamp,open,high,low,close,volume\n"


def write_csv(tmp_path: Path, rows: list[str], name: str = "bars.csv") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + "\n".join(rows) + "\n")
    return path


def good_rows(n: int = 6) -> list[str]:
    return [f"2025-01-01T00:{i:02d}:00Z,100.0,101.0,99.0,100.5,10.0" for i in range(n)]


def load_error(path: Path, **kwargs: object) -> DataError:
    with pytest.raises(DataError) as info:
        load_ohlcv(path, **kwargs)  # type: ignore[arg-type]
    return info.value


# --------------------------------------------------------------------------- malformed files


def test_load_unsorted_timestamps_names_first_backward_row(tmp_path: Path) -> None:
    # Arrange: row 3 goes back in time
    rows = good_rows()
    rows[2], rows[3] = rows[3], rows[2]
    path = write_csv(tmp_path, rows)
    # Act
    err = load_error(path)
    # Assert
    assert (err.file, err.row, err.field) == (str(path), 3, "timestamp")
    assert "row 3" in str(err)
    assert "not sorted" in str(err)
    assert str(path) in str(err)


def test_load_duplicate_timestamps_names_row_and_count(tmp_path: Path) -> None:
    # Arrange: rows 2 and 5 repeat their predecessor's time
    rows = good_rows(7)
    rows[2] = rows[1]
    rows[5] = rows[4]
    path = write_csv(tmp_path, rows)
    # Act
    err = load_error(path)
    # Assert
    assert (err.row, err.field) == (2, "timestamp")
    assert "duplicate timestamp" in str(err)
    assert "(and 1 more row)" in str(err)


def test_load_nan_close_names_row_and_field(tmp_path: Path) -> None:
    # Arrange
    rows = good_rows()
    rows[4] = "2025-01-01T00:04:00Z,100.0,101.0,99.0,NaN,10.0"
    path = write_csv(tmp_path, rows)
    # Act
    err = load_error(path)
    # Assert
    assert (err.row, err.field) == (4, "close")
    assert "row 4, field 'close'" in str(err)
    assert "NaN" in str(err)


def test_load_empty_volume_cell_names_row_and_field(tmp_path: Path) -> None:
    # Arrange
    rows = good_rows()
    rows[1] = "2025-01-01T00:01:00Z,100.0,101.0,99.0,100.5,"
    path = write_csv(tmp_path, rows)
    # Act
    err = load_error(path)
    # Assert
    assert (err.row, err.field) == (1, "volume")


def test_load_infinite_high_names_row_and_field(tmp_path: Path) -> None:
    # Arrange
    rows = good_rows()
    rows[0] = "2025-01-01T00:00:00Z,100.0,inf,99.0,100.5,10.0"
    path = write_csv(tmp_path, rows)
    # Act
    err = load_error(path)
    # Assert
    assert (err.row, err.field) == (0, "high")
    assert "infinite" in str(err)


def test_load_non_positive_low_names_row_field_and_more_rows(tmp_path: Path) -> None:
    # Arrange: 3 rows with low <= 0
    rows = good_rows()
    for i in (2, 3, 5):
        rows[i] = f"2025-01-01T00:0{i}:00Z,100.0,101.0,{'0' if i == 2 else '-1'},100.5,10.0"
    path = write_csv(tmp_path, rows)
    # Act
    err = load_error(path)
    # Assert
    assert (err.row, err.field) == (2, "low")
    assert "not positive" in str(err)
    assert "(and 2 more rows)" in str(err)


def test_load_high_below_body_names_row_and_field(tmp_path: Path) -> None:
    # Arrange: high 100.2 < close 100.5
    rows = good_rows()
    rows[3] = "2025-01-01T00:03:00Z,100.0,100.2,99.0,100.5,10.0"
    path = write_csv(tmp_path, rows)
    # Act
    err = load_error(path)
    # Assert
    assert (err.row, err.field) == (3, "high")
    assert "below max(open, close)" in str(err)
    assert "100.2" in str(err)


def test_load_low_above_body_names_row_and_field(tmp_path: Path) -> None:
    # Arrange: low 100.1 > open 100.0
    rows = good_rows()
    rows[5] = "2025-01-01T00:05:00Z,100.0,101.0,100.1,100.5,10.0"
    path = write_csv(tmp_path, rows)
    # Act
    err = load_error(path)
    # Assert
    assert (err.row, err.field) == (5, "low")
    assert "above min(open, close)" in str(err)


def test_load_high_below_low_is_reported(tmp_path: Path) -> None:
    # Arrange: high < low (so also below the body)
    rows = good_rows()
    rows[2] = "2025-01-01T00:02:00Z,100.0,98.0,99.0,100.5,10.0"
    path = write_csv(tmp_path, rows)
    # Act
    err = load_error(path)
    # Assert
    assert (err.row, err.field) == (2, "high")


def test_load_negative_volume_names_row_and_field(tmp_path: Path) -> None:
    # Arrange
    rows = good_rows()
    rows[4] = "2025-01-01T00:04:00Z,100.0,101.0,99.0,100.5,-3"
    path = write_csv(tmp_path, rows)
    # Act
    err = load_error(path)
    # Assert
    assert (err.row, err.field) == (4, "volume")
    assert "negative" in str(err)


def test_load_non_numeric_price_names_row_and_value(tmp_path: Path) -> None:
    # Arrange
    rows = good_rows()
    rows[3] = "2025-01-01T00:03:00Z,100.0,abc,99.0,100.5,10"
    path = write_csv(tmp_path, rows)
    # Act
    err = load_error(path)
    # Assert
    assert (err.row, err.field) == (3, "high")
    assert "'abc'" in str(err)


def test_load_unreadable_timestamp_names_row(tmp_path: Path) -> None:
    # Arrange
    rows = good_rows()
    rows[2] = "yesterday,100.0,101.0,99.0,100.5,10"
    path = write_csv(tmp_path, rows)
    # Act
    err = load_error(path)
    # Assert
    assert (err.row, err.field) == (2, "timestamp")
    assert "'yesterday'" in str(err)


def test_load_missing_timestamp_names_row(tmp_path: Path) -> None:
    # Arrange
    rows = good_rows()
    rows[1] = ",100.0,101.0,99.0,100.5,10"
    path = write_csv(tmp_path, rows)
    # Act
    err = load_error(path)
    # Assert
    assert (err.row, err.field) == (1, "timestamp")


def test_load_error_uses_source_column_name(tmp_path: Path) -> None:
    # Arrange: upper-case header; the error names the column as written in the file
    path = tmp_path / "upper.csv"
    path.write_text(
        "Date,Open,High,Low,Close,Volume\n"
        "2025-01-01,100,101,99,100,1\n"
        "2025-01-02,100,99.5,99,100,1\n"
    )
    # Act
    err = load_error(path)
    # Assert
    assert (err.row, err.field) == (1, "High")


def test_load_with_repair_still_raises_on_price_violation(tmp_path: Path) -> None:
    # Arrange: unsorted (repairable) plus a bad high at file row 4
    rows = good_rows()
    rows[0], rows[1] = rows[1], rows[0]
    rows[4] = "2025-01-01T00:04:00Z,100.0,100.2,99.0,100.5,10.0"
    path = write_csv(tmp_path, rows)
    # Act
    err = load_error(path, repair=True)
    # Assert: the row refers to the file, not to the sorted order
    assert (err.row, err.field) == (4, "high")


# --------------------------------------------------------------------------- arrays


def _arrays(n: int) -> dict[str, np.ndarray]:
    close = np.full(n, 100.0)
    return {
        "ts": np.arange(n, dtype=np.int64) * 60_000_000_000,
        "open": close.copy(),
        "high": close + 1,
        "low": close - 1,
        "close": close,
        "volume": np.ones(n),
    }


def test_validate_ohlcv_valid_arrays_passes() -> None:
    # Arrange
    a = _arrays(10)
    # Act / Assert (no exception)
    validate_ohlcv(a["ts"], a["open"], a["high"], a["low"], a["close"], a["volume"], file="m")


def test_validate_ohlcv_skips_time_checks_without_ts() -> None:
    # Arrange: identical stamps would fail, but ts is not given
    a = _arrays(3)
    # Act / Assert
    validate_ohlcv(None, a["open"], a["high"], a["low"], a["close"], a["volume"], file="m")


def test_validate_ohlcv_length_mismatch_raises() -> None:
    # Arrange
    a = _arrays(4)
    # Act / Assert
    with pytest.raises(DataError, match="different lengths"):
        validate_ohlcv(
            a["ts"], a["open"][:3], a["high"], a["low"], a["close"], a["volume"], file="m"
        )


def test_validate_timestamps_reports_first_backward_row() -> None:
    # Arrange
    ts = np.array([0, 10, 5, 20, 15], dtype=np.int64)
    # Act
    with pytest.raises(DataError) as info:
        validate_timestamps(ts, file="f.csv")
    # Assert
    assert info.value.row == 2
    assert "(and 1 more row)" in str(info.value)


def test_count_time_order_problems_counts_backward_and_duplicates() -> None:
    # Arrange / Act
    counts = count_time_order_problems(np.array([1, 3, 2, 2, 5, 4]))
    # Assert
    assert counts == (2, 1)


def test_validate_ohlcv_one_million_rows_is_fast() -> None:
    # Arrange: 1M valid rows plus one violation at the very end
    a = _arrays(1_000_000)
    a["volume"][-1] = -1.0
    # Act
    start = time.perf_counter()
    with pytest.raises(DataError) as info:
        validate_ohlcv(a["ts"], a["open"], a["high"], a["low"], a["close"], a["volume"], file="m")
    elapsed = time.perf_counter() - start
    # Assert: vectorized (tens of ms); the bound is loose to stay stable on busy machines
    assert info.value.row == 999_999
    assert elapsed < 1.0
