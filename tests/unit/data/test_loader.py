"""Loading OHLCV files: formats, column and time-unit detection, repair, inference helpers."""

from __future__ import annotations

import gzip
import logging
import re
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.feather as pf
import pyarrow.parquet as pq
import pytest

from tradeloop.core.errors import ConfigError, DataError
from tradeloop.core.time import parse_time
from tradeloop.data import (
    ColumnMap,
    LoadedBars,
    infer_price_decimals,
    infer_symbol,
    infer_timeframe,
    load_ohlcv,
)
from tradeloop.data.loader import read_unvalidated
from tradeloop.testing.environment import shared_data_dir

MINUTE = 60_000_000_000
HOUR = 60 * MINUTE
T0 = parse_time("2025-01-01T00:00:00Z")


def write(tmp_path: Path, text: str, name: str = "BTC_USDT-1m.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


ROWS = [
    ("100.5", "101.25", "99.75", "101.0", "12.5"),
    ("101.0", "102.0", "100.5", "101.5", "3"),
    ("101.5", "101.5", "100.0", "100.25", "0"),
]


def csv_text(stamps: list[str], header: str = "timestamp,open,high,low,close,volume") -> str:
    lines = [header] + [",".join((s, *row)) for s, row in zip(stamps, ROWS, strict=True)]
    return "\n".join(lines) + "\n"


def assert_three_minutes(loaded: LoadedBars) -> None:
    bars = loaded.bars
    assert bars.ts.tolist() == [T0, T0 + MINUTE, T0 + 2 * MINUTE]
    assert bars.open.tolist() == [100.5, 101.0, 101.5]
    assert bars.volume.tolist() == [12.5, 3.0, 0.0]
    assert loaded.timeframe == "1m"
    assert bars.timeframe == "1m"


# --------------------------------------------------------------------------- timestamps


def test_load_csv_iso_with_z_reads_utc(tmp_path: Path) -> None:
    # Arrange
    path = write(tmp_path, csv_text([f"2025-01-01T00:0{i}:00Z" for i in range(3)]))
    # Act
    loaded = load_ohlcv(path)
    # Assert
    assert_three_minutes(loaded)
    assert loaded.source == str(path)
    assert loaded.bars.symbol == "BTC/USDT"
    assert loaded.repaired == {}


def test_load_csv_naive_iso_reads_as_utc(tmp_path: Path) -> None:
    # Arrange
    path = write(tmp_path, csv_text([f"2025-01-01 00:0{i}:00" for i in range(3)]))
    # Act
    loaded = load_ohlcv(path)
    # Assert
    assert_three_minutes(loaded)


def test_load_csv_iso_with_offset_converts_to_utc(tmp_path: Path) -> None:
    # Arrange: 02:00+02:00 is 00:00Z
    path = write(tmp_path, csv_text([f"2025-01-01T02:0{i}:00+02:00" for i in range(3)]))
    # Act
    loaded = load_ohlcv(path)
    # Assert
    assert_three_minutes(loaded)


def test_load_csv_millisecond_epochs_detected(tmp_path: Path) -> None:
    # Arrange
    stamps = [str((T0 + i * MINUTE) // 1_000_000) for i in range(3)]
    path = write(tmp_path, csv_text(stamps))
    # Act
    loaded = load_ohlcv(path)
    # Assert
    assert_three_minutes(loaded)


def test_load_csv_second_epochs_detected(tmp_path: Path) -> None:
    # Arrange
    stamps = [str((T0 + i * MINUTE) // 1_000_000_000) for i in range(3)]
    path = write(tmp_path, csv_text(stamps))
    # Act
    loaded = load_ohlcv(path)
    # Assert
    assert_three_minutes(loaded)


@pytest.mark.parametrize(("unit", "div"), [("us", 1_000), ("ns", 1)])
def test_load_csv_micro_and_nano_epochs_detected(tmp_path: Path, unit: str, div: int) -> None:
    # Arrange
    stamps = [str((T0 + i * MINUTE) // div) for i in range(3)]
    path = write(tmp_path, csv_text(stamps))
    # Act
    loaded = load_ohlcv(path)
    # Assert
    assert_three_minutes(loaded)


def test_load_time_unit_forces_epoch_unit(tmp_path: Path) -> None:
    # Arrange: small ms values would be read as seconds by magnitude
    path = write(tmp_path, csv_text(["0", "60000", "120000"]))
    # Act
    forced = load_ohlcv(path, time_unit="ms")
    detected = load_ohlcv(path)
    # Assert
    assert forced.bars.ts.tolist() == [0, MINUTE, 2 * MINUTE]
    assert forced.timeframe == "1m"
    assert detected.timeframe == "1000m"


def test_load_time_unit_unknown_raises_config_error(tmp_path: Path) -> None:
    # Arrange
    path = write(tmp_path, csv_text(["0", "60", "120"]))
    # Act / Assert
    with pytest.raises(ConfigError, match="time_unit"):
        load_ohlcv(path, time_unit="minutes")


def test_load_time_unit_on_text_timestamps_raises_config_error(tmp_path: Path) -> None:
    # Arrange
    path = write(tmp_path, csv_text([f"2025-01-01T00:0{i}:00Z" for i in range(3)]))
    # Act / Assert
    with pytest.raises(ConfigError, match="numeric epoch"):
        load_ohlcv(path, time_unit="ms")


# --------------------------------------------------------------------------- columns


def test_load_date_column_name_detected(tmp_path: Path) -> None:
    # Arrange
    text = csv_text(
        [f"2025-01-01T00:0{i}:00Z" for i in range(3)], header="date,open,high,low,close,volume"
    )
    path = write(tmp_path, text)
    # Act / Assert
    assert_three_minutes(load_ohlcv(path))


def test_load_uppercase_and_short_names_detected(tmp_path: Path) -> None:
    # Arrange
    text = csv_text([f"2025-01-01T00:0{i}:00Z" for i in range(3)], header="DATETIME,O,H,L,C,VOL")
    path = write(tmp_path, text)
    # Act / Assert
    assert_three_minutes(load_ohlcv(path))


def test_load_leading_unnamed_index_is_time_when_only_candidate(tmp_path: Path) -> None:
    # Arrange: backtesting.py GOOG layout (",Open,High,...")
    path = write(
        tmp_path,
        ",Open,High,Low,Close,Volume\n"
        "2004-08-19,100,104.06,95.96,100.34,22351900\n"
        "2004-08-20,101.01,109.08,100.5,108.31,11428600\n",
        name="GOOG.csv",
    )
    # Act
    loaded = load_ohlcv(path)
    # Assert
    assert loaded.bars.ts.tolist() == [parse_time("2004-08-19"), parse_time("2004-08-20")]
    assert loaded.timeframe == "1d"
    assert loaded.bars.symbol == "GOOG"


def test_load_leading_unnamed_index_ignored_when_date_column_exists(tmp_path: Path) -> None:
    # Arrange: pandas-ta SPY layout (",date,open,...", index 0..n-1)
    path = write(
        tmp_path,
        ",date,open,high,low,close,volume\n"
        "0,1999-11-01,136.5,137.0,135.5625,135.5625,4006500.0\n"
        "1,1999-11-02,135.9687,137.25,134.5937,134.5937,6516900.0\n",
        name="SPY.csv",
    )
    # Act
    loaded = load_ohlcv(path)
    # Assert
    assert loaded.bars.ts.tolist() == [parse_time("1999-11-01"), parse_time("1999-11-02")]
    assert loaded.price_decimals == 4


def test_load_explicit_column_map_used(tmp_path: Path) -> None:
    # Arrange
    text = csv_text(
        [f"2025-01-01T00:0{i}:00Z" for i in range(3)], header="when,first,top,bottom,last,qty"
    )
    path = write(tmp_path, text)
    columns = ColumnMap(
        timestamp="when", open="first", high="top", low="bottom", close="last", volume="qty"
    )
    # Act / Assert
    assert_three_minutes(load_ohlcv(path, columns=columns))


def test_load_missing_column_lists_columns_found(tmp_path: Path) -> None:
    # Arrange: no volume column
    path = write(
        tmp_path, "timestamp,open,high,low,close\n2025-01-01T00:00:00Z,1,1,1,1\n", name="x.csv"
    )
    # Act
    with pytest.raises(DataError) as info:
        load_ohlcv(path)
    # Assert
    err = info.value
    assert err.file == str(path)
    assert err.field == "volume"
    assert "'timestamp', 'open', 'high', 'low', 'close'" in str(err)
    assert "--volume-col" in str(err)  # the command line's option, not only the Python API


def test_load_explicit_column_not_in_file_raises(tmp_path: Path) -> None:
    # Arrange
    path = write(tmp_path, csv_text([f"2025-01-01T00:0{i}:00Z" for i in range(3)]))
    # Act / Assert
    with pytest.raises(DataError, match="'px' given for close"):
        load_ohlcv(path, columns=ColumnMap(close="px"))


def test_load_semicolon_separated_csv(tmp_path: Path) -> None:
    # Arrange
    text = csv_text([f"2025-01-01T00:0{i}:00Z" for i in range(3)]).replace(",", ";")
    path = write(tmp_path, text)
    # Act / Assert
    assert_three_minutes(load_ohlcv(path))


def test_load_gzipped_csv(tmp_path: Path) -> None:
    # Arrange
    path = tmp_path / "BTC_USDT-1m.csv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(csv_text([f"2025-01-01T00:0{i}:00Z" for i in range(3)]))
    # Act
    loaded = load_ohlcv(path)
    # Assert
    assert_three_minutes(loaded)
    assert loaded.bars.symbol == "BTC/USDT"


def test_load_a_zip_named_by_the_venue_holding_one_csv(tmp_path: Path) -> None:
    # Arrange: a monthly archive such as BTCUSDT-1m-2025-01.zip, its one member a .csv
    path = tmp_path / "BTCUSDT-1m-2025-01.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(
            "BTCUSDT-1m-2025-01.csv", csv_text([f"2025-01-01T00:0{i}:00Z" for i in range(3)])
        )
    # Act
    loaded = load_ohlcv(path, symbol="BTC/USDT")
    # Assert
    assert_three_minutes(loaded)


@pytest.mark.parametrize(
    ("members", "said"),
    [
        (("a.csv", "b.csv"), "a .zip must hold exactly one CSV file, this one holds 2"),
        (("bars.parquet",), "supported for CSV only (e.g. .csv.gz) (this one holds bars.parquet)"),
        ((), "a .zip must hold exactly one CSV file, this one holds 0"),
    ],
)
def test_a_zip_that_is_not_one_csv_is_refused_by_what_it_holds(
    tmp_path: Path, members: tuple[str, ...], said: str
) -> None:
    path = tmp_path / "data.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name in members:
            archive.writestr(name, "x")
    with pytest.raises(DataError, match=re.escape(said)):
        load_ohlcv(path)


def test_data_without_volume_loads_with_volume_none(tmp_path: Path) -> None:
    # Arrange: an index or FX quotes: no volume column at all
    stamps = [f"2025-01-01T00:0{i}:00Z" for i in range(3)]
    text = "\n".join(
        ["time,open,high,low,close"]
        + [",".join((s, *row[:4])) for s, row in zip(stamps, ROWS, strict=True)]
    )
    path = write(tmp_path, text + "\n")
    # Act
    loaded = load_ohlcv(path, columns=ColumnMap(volume="none"))
    # Assert: the prices as written, a volume of 0; without the option, the way out is named
    assert loaded.bars.close.tolist() == [101.0, 101.5, 100.25]
    assert loaded.bars.volume.tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(DataError, match="pass --volume-col none for data without volume"):
        load_ohlcv(path)


def test_a_volume_column_named_none_is_still_read(tmp_path: Path) -> None:
    stamps = [f"2025-01-01T00:0{i}:00Z" for i in range(3)]
    path = write(tmp_path, csv_text(stamps, header="timestamp,open,high,low,close,none"))
    loaded = load_ohlcv(path, columns=ColumnMap(volume="none"))
    assert loaded.bars.volume.tolist() == [12.5, 3.0, 0.0]


def test_load_open_interest_and_cvd_carried(tmp_path: Path) -> None:
    # Arrange
    text = csv_text(
        [f"2025-01-01T00:0{i}:00Z" for i in range(3)],
        header="timestamp,open,high,low,close,volume",
    )
    lines = text.splitlines()
    lines[0] += ",open_interest,cvd"
    for i in range(1, 4):
        lines[i] += f",{1000 + i},{i * 2}"
    path = write(tmp_path, "\n".join(lines) + "\n")
    # Act
    bars = load_ohlcv(path).bars
    # Assert
    assert bars.open_interest is not None
    assert bars.open_interest.tolist() == [1001, 1002, 1003]
    assert bars.cvd is not None
    assert bars.cvd.tolist() == [2, 4, 6]


# --------------------------------------------------------------------------- binary formats


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "open": [100.5, 101.0, 101.5],
            "high": [101.25, 102.0, 101.5],
            "low": [99.75, 100.5, 100.0],
            "close": [101.0, 101.5, 100.25],
            "volume": [12.5, 3.0, 0.0],
        }
    )


def test_load_parquet_tz_aware_timestamp(tmp_path: Path) -> None:
    # Arrange: stamps in Europe/Berlin (UTC+1 in January)
    frame = _frame()
    frame.insert(
        0,
        "date",
        pd.date_range("2025-01-01 01:00", periods=3, freq="1min", tz="Europe/Berlin"),
    )
    path = tmp_path / "ETH_USDT-1m.parquet"
    frame.to_parquet(path)
    # Act
    loaded = load_ohlcv(path)
    # Assert
    assert_three_minutes(loaded)
    assert loaded.bars.symbol == "ETH/USDT"


def test_load_parquet_naive_millisecond_timestamp(tmp_path: Path) -> None:
    # Arrange
    stamps = pa.array([(T0 + i * MINUTE) // 1_000_000 for i in range(3)], pa.timestamp("ms"))
    table = pa.Table.from_pandas(_frame(), preserve_index=False).add_column(0, "ts", stamps)
    path = tmp_path / "x.parquet"
    pq.write_table(table, path)
    # Act / Assert
    assert_three_minutes(load_ohlcv(path))


def test_load_parquet_prices_are_views_of_the_file_columns(tmp_path: Path) -> None:
    # Arrange: float64 prices without nulls, int64 epoch-ms stamps
    frame = _frame()
    frame.insert(0, "open_time", [(T0 + i * MINUTE) // 1_000_000 for i in range(3)])
    path = tmp_path / "x.parquet"
    frame.to_parquet(path)
    # Act
    bars = load_ohlcv(path).bars
    # Assert: the values, each price read without a copy (a read-only view of its column)
    assert_three_minutes(load_ohlcv(path))
    for name in ("open", "high", "low", "close", "volume"):
        column = getattr(bars, name)
        assert column.tolist() == frame[name].astype(float).tolist()
        assert not column.flags.owndata
        assert not column.flags.writeable


def test_load_feather_with_integer_epoch_column(tmp_path: Path) -> None:
    # Arrange
    frame = _frame()
    frame.insert(0, "open_time", [(T0 + i * MINUTE) // 1_000_000 for i in range(3)])
    path = tmp_path / "x.arrow"
    pf.write_feather(frame, path)
    # Act / Assert
    assert_three_minutes(load_ohlcv(path))


def test_load_real_feather_file() -> None:
    # Arrange
    path = shared_data_dir() / "crypto_1m" / "binance_spot_2025" / "BTC_USDT-1m.feather"
    # Act
    loaded = load_ohlcv(path)
    # Assert
    bars = loaded.bars
    assert len(bars) == 130_708
    assert bars.symbol == "BTC/USDT"
    assert loaded.timeframe == "1m"
    assert int(bars.ts[0]) == parse_time("2025-05-20T00:00:00Z")
    assert int(bars.ts[-1]) == parse_time("2025-08-18T18:27:00Z")
    assert loaded.price_decimals == 2
    assert loaded.tick_size == 0.01


def test_load_real_feather_equals_normalized_csv() -> None:
    # Arrange
    folder = shared_data_dir() / "crypto_1m" / "binance_usdm_2025"
    # Act
    feather = load_ohlcv(folder / "BTC_USDT_USDT-1m-futures.feather").bars
    csv = load_ohlcv(folder / "BTC_USDT_USDT-1m-futures.normalized.csv").bars
    # Assert: bit-exact (CSV floats are Python reprs)
    for name in ("ts", "open", "high", "low", "close", "volume"):
        assert np.array_equal(getattr(feather, name), getattr(csv, name)), name
    assert feather.symbol == "BTC/USDT:USDT"


def test_load_real_yahoo_txt_and_index_csv() -> None:
    # Arrange
    data = shared_data_dir()
    # Act
    orcl = load_ohlcv(data / "equities_daily" / "backtrader" / "orcl-1995-2014.txt")
    goog = load_ohlcv(data / "equities_daily" / "backtesting_py" / "GOOG.csv")
    spy = load_ohlcv(data / "equities_daily" / "pandas_ta" / "SPY_D.csv", symbol="SPY")
    # Assert
    assert (len(orcl.bars), orcl.timeframe, orcl.bars.symbol) == (5036, "1d", "orcl")
    assert (len(goog.bars), goog.timeframe) == (2148, "1d")
    assert int(goog.bars.ts[0]) == parse_time("2004-08-19")
    assert (len(spy.bars), spy.bars.symbol) == (5241, "SPY")
    assert int(spy.bars.ts[0]) == parse_time("1999-11-01")


def test_load_one_million_rows_parquet_is_fast(tmp_path: Path) -> None:
    # Arrange
    n = 1_000_000
    rng = np.random.default_rng(7)
    close = np.round(30_000 + np.cumsum(rng.normal(0, 5, n)), 2)
    open_ = np.r_[close[0], close[:-1]]
    frame = pd.DataFrame(
        {
            "date": pd.date_range("2020-01-01", periods=n, freq="1min", tz="UTC"),
            "open": open_,
            "high": np.maximum(open_, close) + 0.5,
            "low": np.minimum(open_, close) - 0.25,
            "close": close,
            "volume": np.round(rng.random(n) * 10, 5),
        }
    )
    path = tmp_path / "BIG_USDT-1m.parquet"
    frame.to_parquet(path)
    load_ohlcv(path)  # warm up imports and the page cache
    # Act
    start = time.perf_counter()
    loaded = load_ohlcv(path)
    elapsed = time.perf_counter() - start
    # Assert: ~0.1-0.2 s expected; loose bound for busy machines
    assert len(loaded.bars) == n
    assert loaded.price_decimals == 2
    assert elapsed < 2.0


# --------------------------------------------------------------------------- errors


def test_load_missing_file_raises_data_error(tmp_path: Path) -> None:
    # Arrange
    path = tmp_path / "nope.csv"
    # Act / Assert
    with pytest.raises(DataError, match="not found"):
        load_ohlcv(path)


def test_load_unsupported_suffix_raises_data_error(tmp_path: Path) -> None:
    # Arrange
    path = write(tmp_path, "x", name="bars.xlsx")
    # Act / Assert
    with pytest.raises(DataError, match="unsupported file type"):
        load_ohlcv(path)


def test_load_header_only_raises_no_rows(tmp_path: Path) -> None:
    # Arrange
    path = write(tmp_path, "timestamp,open,high,low,close,volume\n")
    # Act / Assert
    with pytest.raises(DataError, match="no data rows"):
        load_ohlcv(path)


def test_load_single_row_needs_timeframe(tmp_path: Path) -> None:
    # Arrange
    path = write(tmp_path, "timestamp,open,high,low,close,volume\n2025-01-01,1,2,0.5,1.5,3\n")
    # Act / Assert
    with pytest.raises(DataError, match=r"fewer than two bars.*timeframe=\.\.\."):
        load_ohlcv(path)
    assert load_ohlcv(path, timeframe="1d").bars.timeframe == "1d"


# --------------------------------------------------------------------------- timeframe


def test_load_given_timeframe_coarser_than_data_asks_to_resample(tmp_path: Path) -> None:
    # Arrange
    path = write(tmp_path, csv_text([f"2025-01-01T00:0{i}:00Z" for i in range(3)]))
    # Act / Assert
    with pytest.raises(DataError, match=r"resample\(bars, '5m'\)"):
        load_ohlcv(path, timeframe="5m")


def test_load_given_timeframe_matching_data_is_used(tmp_path: Path) -> None:
    # Arrange
    path = write(tmp_path, csv_text([f"2025-01-01T00:0{i}:00Z" for i in range(3)]))
    # Act
    loaded = load_ohlcv(path, timeframe="1m", symbol="XBT")
    # Assert
    assert loaded.timeframe == "1m"
    assert loaded.bars.symbol == "XBT"


def test_load_invalid_timeframe_raises_config_error(tmp_path: Path) -> None:
    # Arrange
    path = write(tmp_path, csv_text([f"2025-01-01T00:0{i}:00Z" for i in range(3)]))
    # Act / Assert
    with pytest.raises(ConfigError):
        load_ohlcv(path, timeframe="5x")


def test_infer_timeframe_with_gaps_uses_most_common_spacing() -> None:
    # Arrange: 15m bars with a 2h hole and one odd 5m step
    m15 = 15 * MINUTE
    ts = np.array(
        [
            0,
            m15,
            2 * m15,
            2 * m15 + 2 * HOUR,
            3 * m15 + 2 * HOUR,
            3 * m15 + 2 * HOUR + 5 * MINUTE,
            4 * m15 + 2 * HOUR + 5 * MINUTE,
        ]
    )
    # Act / Assert
    assert infer_timeframe(ts) == "15m"


def test_infer_timeframe_real_hourly_file_with_28_gaps() -> None:
    # Arrange
    path = shared_data_dir() / "crypto_1h" / "binance_spot_2017_2024" / "BTC_USDT-1h.feather"
    loaded = load_ohlcv(path)
    ts = loaded.bars.ts
    # Act
    timeframe = infer_timeframe(ts)
    # Assert
    assert int(np.count_nonzero(np.diff(ts) > HOUR)) == 28
    assert timeframe == "1h"
    assert loaded.timeframe == "1h"


def test_infer_timeframe_sub_minute_spacing_raises() -> None:
    # Arrange
    ts = np.arange(5, dtype=np.int64) * 1_500_000_000
    # Act / Assert
    with pytest.raises(DataError, match="not a whole number of minutes"):
        infer_timeframe(ts)


def test_infer_timeframe_single_timestamp_raises() -> None:
    # Act / Assert
    with pytest.raises(DataError, match="fewer than two"):
        infer_timeframe(np.array([0]))


# --------------------------------------------------------------------------- repair


def test_load_repair_sorts_and_drops_duplicates_with_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Arrange: order 2,0,1,1(dup, different values),2(dup)
    header = "timestamp,open,high,low,close,volume"
    rows = [
        "2025-01-01T00:02:00Z,3,3,3,3,3",
        "2025-01-01T00:00:00Z,1,1,1,1,1",
        "2025-01-01T00:01:00Z,2,2,2,2,2",
        "2025-01-01T00:01:00Z,9,9,9,9,9",
        "2025-01-01T00:02:00Z,8,8,8,8,8",
    ]
    path = write(tmp_path, "\n".join([header, *rows]) + "\n")
    # Act
    with caplog.at_level(logging.WARNING, logger="tradeloop.data.loader"):
        loaded = load_ohlcv(path, repair=True)
    # Assert: first occurrence in file order is kept
    assert loaded.bars.ts.tolist() == [T0, T0 + MINUTE, T0 + 2 * MINUTE]
    assert loaded.bars.close.tolist() == [1.0, 2.0, 3.0]
    assert loaded.repaired == {"rows_sorted": 1, "duplicates_dropped": 2}
    assert any("duplicates_dropped=2" in r.getMessage() for r in caplog.records)


def test_load_repair_on_clean_file_reports_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Arrange
    path = write(tmp_path, csv_text([f"2025-01-01T00:0{i}:00Z" for i in range(3)]))
    # Act
    with caplog.at_level(logging.WARNING, logger="tradeloop.data.loader"):
        loaded = load_ohlcv(path, repair=True)
    # Assert
    assert loaded.repaired == {}
    assert not caplog.records


def test_load_without_repair_rejects_duplicates(tmp_path: Path) -> None:
    # Arrange
    path = write(tmp_path, csv_text(["2025-01-01T00:00:00Z"] * 2 + ["2025-01-01T00:01:00Z"]))
    # Act / Assert
    with pytest.raises(DataError, match="duplicate"):
        load_ohlcv(path)


# --------------------------------------------------------------------------- symbol


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("BTC_USDT-1m.parquet", "BTC/USDT"),
        ("BTC_USDT_USDT-1m-futures.feather", "BTC/USDT:USDT"),
        ("GOOG.csv", "GOOG"),
        ("GOOG.csv.gz", "GOOG"),
        ("data/ETH_BTC-5m.csv.bz2", "ETH/BTC"),
        ("1INCH_USDT-1h.arrow", "1INCH/USDT"),
        ("orcl-1995-2014.txt", "orcl"),
        ("SPY_D.csv", "SPY_D"),
        ("GOOG_daily.parquet", "GOOG_daily"),
    ],
)
def test_infer_symbol_from_file_name(name: str, expected: str) -> None:
    # Act / Assert
    assert infer_symbol(name) == expected
    assert infer_symbol(Path(name)) == expected


def test_infer_symbol_empty_name_raises() -> None:
    # Act / Assert
    with pytest.raises(ConfigError):
        infer_symbol("-1m.csv")


# --------------------------------------------------------------------------- price decimals


@pytest.mark.parametrize(
    ("prices", "expected"),
    [
        ([105879.75, 105880.0, 105879.5], 2),
        ([101.0314, 101.03], 4),
        ([100.0, 2.0, 35000.0], 0),
        ([0.00001234, 0.0000123], 8),
        ([0.1 + 0.2], 1),  # float arithmetic noise is tolerated
        ([1 / 3], None),
        ([1e-11], None),
    ],
)
def test_infer_price_decimals_examples(prices: list[float], expected: int | None) -> None:
    # Act / Assert
    assert infer_price_decimals(np.array(prices)) == expected


def test_infer_price_decimals_rare_finer_value_found_beyond_sample() -> None:
    # Arrange: one 3-decimal value among 1M 1-decimal values, off the sample stride
    prices = np.round(np.linspace(10, 1000, 1_000_000), 1)
    prices[123_457] = 500.125
    # Act / Assert
    assert infer_price_decimals(prices) == 3


@pytest.mark.parametrize(
    ("relative", "decimals"),
    [
        ("crypto_1m/binance_spot_2025/BTC_USDT-1m.feather", 2),
        ("crypto_1m/binance_usdm_2025/BTC_USDT_USDT-1m-futures.feather", 1),
        ("crypto_1m/freqtrade/UNITTEST_BTC-1m.feather", 8),
        ("crypto_futures/binance_usdm_2025/DOGE_USDT_USDT-5m-futures.feather", 5),
        ("crypto_futures/binance_usdm_2025/XRP_USDT_USDT-5m-futures.feather", 4),
        ("equities_daily/backtrader/orcl-1995-2014.txt", 6),
        ("equities_daily/backtesting_py/GOOG.csv", 2),
    ],
)
def test_load_price_decimals_on_real_files(relative: str, decimals: int) -> None:
    # Act
    loaded = load_ohlcv(shared_data_dir() / relative)
    # Assert
    assert loaded.price_decimals == decimals
    assert loaded.tick_size == pytest.approx(10.0**-decimals, rel=1e-12)


def test_load_float_millisecond_epochs_exact_to_the_nanosecond(tmp_path: Path) -> None:
    # Arrange: ms epochs written as floats, one with a sub-ms fraction
    stamps = ["1735689600123.0", "1735689660123.0", "1735689720123.5"]
    path = write(tmp_path, csv_text(stamps))
    # Act
    ts = load_ohlcv(path).bars.ts
    # Assert
    assert ts.tolist() == [1735689600123000000, 1735689660123000000, 1735689720123500000]


def test_load_empty_file_raises_data_error(tmp_path: Path) -> None:
    # Arrange
    path = write(tmp_path, "")
    # Act / Assert
    with pytest.raises(DataError, match="empty"):
        load_ohlcv(path)


# --------------------------------------------------------------------------- text layouts


def test_load_semicolon_csv_with_decimal_commas(tmp_path: Path) -> None:
    # Arrange: ';' between fields and ',' inside numbers: as many commas as semicolons per
    # data line, but only ';' splits the header too
    stamps = [f"2025-01-01T00:0{i}:00Z" for i in range(3)]
    lines = ["timestamp;open;high;low;close;volume"] + [
        ";".join((s, *(v.replace(".", ",") if "." in v else v + ",0" for v in row)))
        for s, row in zip(stamps, ROWS, strict=True)
    ]
    path = write(tmp_path, "\n".join(lines) + "\n")
    # Act / Assert
    assert_three_minutes(load_ohlcv(path))


def test_load_quoted_text_column_holding_the_separator(tmp_path: Path) -> None:
    # Arrange: a fully quoted CSV whose extra text column holds commas
    stamps = [f"2025-01-01T00:0{i}:00Z" for i in range(3)]
    lines = ['"timestamp","open","high","low","close","volume","name"'] + [
        ",".join(f'"{v}"' for v in (s, *row, "Bitcoin, USD"))
        for s, row in zip(stamps, ROWS, strict=True)
    ]
    path = write(tmp_path, "\n".join(lines) + "\n")
    # Act / Assert
    assert_three_minutes(load_ohlcv(path))


@pytest.mark.parametrize("extra", [",1,820.54", ",99"])
def test_load_row_with_more_fields_than_the_header_is_named(tmp_path: Path, extra: str) -> None:
    # Arrange: the second data row has a seventh field (an unquoted thousands separator in
    # the volume, or an extra value), which a reader of six columns would cut off silently
    text = csv_text([f"2025-01-01T00:0{i}:00Z" for i in range(3)]).splitlines()
    text[2] = text[2].rsplit(",", 1)[0] + extra if "820" in extra else text[2] + extra
    path = write(tmp_path, "\n".join(text) + "\n")
    # Act
    with pytest.raises(DataError) as info:
        load_ohlcv(path)
    # Assert: the file, the data row (0-based, as every loader error) and the counts
    message = str(info.value)
    assert path.name in message
    assert "row 1" in message
    assert "7 fields" in message
    assert "names 6" in message


def test_load_trailing_separators_are_empty_fields_not_errors(tmp_path: Path) -> None:
    # Arrange: every data line ends with a separator (the header does not)
    text = csv_text([f"2025-01-01T00:0{i}:00Z" for i in range(3)]).splitlines()
    path = write(tmp_path, "\n".join([text[0]] + [line + "," for line in text[1:]]) + "\n")
    # Act / Assert
    assert_three_minutes(load_ohlcv(path))


def test_load_day_first_dates_are_told_by_a_day_above_12(tmp_path: Path) -> None:
    # Arrange: 12/01 .. 14/01/2025 (day first: the last date can only be January 14th)
    stamps = ["12/01/2025 00:00", "13/01/2025 00:00", "14/01/2025 00:00"]
    path = write(tmp_path, csv_text(stamps), name="BTC_USDT-1d.csv")
    # Act
    loaded = load_ohlcv(path)
    # Assert
    day = 24 * HOUR
    start = parse_time("2025-01-12T00:00:00Z")
    assert loaded.bars.ts.tolist() == [start, start + day, start + 2 * day]


def test_load_ambiguous_numeric_dates_are_read_the_way_that_keeps_the_bars_regular(
    tmp_path: Path,
) -> None:
    # Arrange: every number up to 12, over midnight: day first 10/01 23:58 .. 11/01 00:00 are a
    # minute apart (month first, 1 October to 1 November); the same minutes month first; and
    # dates as regular either way
    stamps = ["10/01/2025 23:58", "10/01/2025 23:59", "11/01/2025 00:00"]
    path = write(tmp_path, csv_text(stamps))
    us = write(tmp_path, csv_text(["01/10/2025 23:58", "01/10/2025 23:59", "01/11/2025 00:00"]),
               name="ETH_USDT-1m.csv")  # fmt: skip
    tie = write(tmp_path, csv_text(["01/02/2025 00:00", "03/04/2025 00:00", "05/06/2025 00:00"]),
                name="XRP_USDT-1d.csv")  # fmt: skip
    # Act
    eu_loaded, us_loaded = load_ohlcv(path), load_ohlcv(us)
    with pytest.raises(DataError) as info:
        load_ohlcv(tie)
    # Assert: both read as 10 January 2025 23:58 on; the tie is refused
    start = parse_time("2025-01-10T23:58:00Z")
    assert eu_loaded.bars.ts.tolist() == [start, start + MINUTE, start + 2 * MINUTE]
    assert us_loaded.bars.ts.tolist() == [start, start + MINUTE, start + 2 * MINUTE]
    assert "day/month or month/day" in str(info.value)
    assert "XRP_USDT-1d.csv" in str(info.value)


def test_epoch_times_that_change_unit_are_read_each_by_its_magnitude(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Arrange: Binance spot klines stamped in ms up to 2024 and in us from 2025, concatenated
    ms = [1_735_689_480_000, 1_735_689_540_000]  # 2024-12-31 23:58, 23:59
    us = [1_735_689_600_000_000]  # 2025-01-01 00:00
    text = "open_time,open,high,low,close,volume\n" + "".join(
        f"{t},{','.join(row)}\n" for t, row in zip(ms + us, ROWS, strict=True)
    )
    path = write(tmp_path, text)
    # Act
    with caplog.at_level(logging.WARNING):
        loaded = load_ohlcv(path)
    # Assert: three consecutive minutes, and a warning naming both units and where each is
    assert loaded.bars.ts.tolist() == [
        parse_time("2024-12-31T23:58:00Z") + k * MINUTE for k in range(3)
    ]
    assert "ms in 2 rows from row 0, us in 1 rows from row 2" in caplog.text


def test_epoch_times_near_the_epoch_are_one_unit_the_largest_values(tmp_path: Path) -> None:
    # Arrange: synthetic times from 0 (no time after 2001 in any unit): not a change of unit
    text = "timestamp,open,high,low,close,volume\n" + "".join(
        f"{t},{','.join(row)}\n" for t, row in zip([0, 60, 120], ROWS, strict=True)
    )
    # Act
    loaded = load_ohlcv(write(tmp_path, text))
    # Assert: all seconds, as the largest value says
    assert loaded.bars.ts.tolist() == [0, MINUTE, 2 * MINUTE]


def _bars_at(tmp_path: Path, stamps: list[str], name: str = "SPY-30m.csv") -> Path:
    lines = ["timestamp,open,high,low,close,volume"]
    lines += [f"{s},100,101,99,100.5,10" for s in stamps]
    return write(tmp_path, "\n".join(lines) + "\n", name=name)


def test_tz_reads_naive_times_as_that_zones_wall_clock_through_dst(tmp_path: Path) -> None:
    # Arrange: New York 09:30 on each side of the March 2024 change, and the November hour
    # that happens twice, in order (the bars' order tells which 01:30 is which)
    stamps = ["2024-03-08 09:30", "2024-03-11 09:30"] + [
        f"2024-11-03 {hm}" for hm in ("00:30", "01:00", "01:30", "01:00", "01:30", "02:00")
    ]
    path = _bars_at(tmp_path, stamps)
    # Act
    loaded = load_ohlcv(path, tz="America/New_York", timeframe="30m")
    # Assert: 14:30 UTC in winter, 13:30 UTC in summer, the repeated hour one after the other
    utc = [pd.Timestamp(int(t), tz="UTC").strftime("%m-%d %H:%M") for t in loaded.bars.ts]
    assert utc == ["03-08 14:30", "03-11 13:30", "11-03 04:30", "11-03 05:00", "11-03 05:30",
                   "11-03 06:00", "11-03 06:30", "11-03 07:00"]  # fmt: skip


@pytest.mark.parametrize(
    ("stamps", "said"),
    [
        (["2024-03-10 01:30", "2024-03-10 02:30"], r"row 1.*does not exist in America/New_York"),
        (["2024-11-03 01:30", "2024-11-03 01:45"], r"row 0.*happens twice in America/New_York"),
    ],
)
def test_tz_refuses_a_time_dst_skips_or_repeats_ambiguously(
    tmp_path: Path, stamps: list[str], said: str
) -> None:
    with pytest.raises(DataError, match=said):
        load_ohlcv(_bars_at(tmp_path, stamps), tz="America/New_York", timeframe="15m")


@pytest.mark.parametrize(
    ("stamps", "said"),
    [
        (["2024-01-08T14:30:00Z", "2024-01-08T15:00:00Z"], "times with an offset"),
        (["1704724200", "1704726000"], "epoch numbers"),
    ],
)
def test_tz_is_refused_for_times_anchored_to_utc_already(
    tmp_path: Path, stamps: list[str], said: str
) -> None:
    with pytest.raises(ConfigError, match="leave --tz out") as err:
        load_ohlcv(_bars_at(tmp_path, stamps), tz="America/New_York")
    assert said in str(err.value)


def test_tz_unknown_name_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'America/Nowhere' is not a time zone name"):
        load_ohlcv(
            _bars_at(tmp_path, ["2024-01-08 09:30", "2024-01-08 10:00"]), tz="America/Nowhere"
        )


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-be"])
def test_load_utf16_text_with_a_byte_order_mark(tmp_path: Path, encoding: str) -> None:
    # Arrange: a spreadsheet's "Unicode text" export: UTF-16 with its byte order mark, tabs
    stamps = [f"2025-01-01T00:0{i}:00Z" for i in range(3)]
    lines = ["timestamp\topen\thigh\tlow\tclose\tvolume"] + [
        "\t".join((s, *row)) for s, row in zip(stamps, ROWS, strict=True)
    ]
    text = "\r\n".join(lines) + "\r\n"
    bom = {"utf-16-le": b"\xff\xfe", "utf-16-be": b"\xfe\xff", "utf-32-be": b"\x00\x00\xfe\xff"}
    bom = bom.get(encoding, b"")  # "utf-16" and "utf-32" write their own mark
    path = tmp_path / "BTC_USDT-1m.txt"
    path.write_bytes(bom + text.encode(encoding))
    # Act / Assert: the same bars as the UTF-8 file, through the loader and the check's reader
    assert_three_minutes(load_ohlcv(path))
    raw = read_unvalidated(path)
    assert raw.close.tolist() == [float(row[3]) for row in ROWS]


def test_load_utf16_that_does_not_decode_names_the_file(tmp_path: Path) -> None:
    # Arrange: a UTF-16 byte order mark, then a lone surrogate
    path = tmp_path / "BTC_USDT-1m.csv"
    path.write_bytes(b"\xff\xfe" + "timestamp,open".encode("utf-16-le") + b"\x00\xd8\x41")
    # Act / Assert
    with pytest.raises(DataError, match=r"BTC_USDT-1m\.csv.*UTF-16.*save it as UTF-8"):
        load_ohlcv(path)


def test_check_reader_refuses_a_header_only_file_as_having_no_rows(tmp_path: Path) -> None:
    # Arrange: what `data check` reads (it keeps NaN and unsorted rows, not an empty file)
    path = write(tmp_path, "timestamp,open,high,low,close,volume\n")
    # Act / Assert
    with pytest.raises(DataError, match="no data rows"):
        read_unvalidated(path)
