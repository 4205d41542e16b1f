"""Resampling bars to higher timeframes on exchange boundaries."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from tradeloop.core.bar import BarArrays
from tradeloop.core.errors import ConfigError, DataError
from tradeloop.core.time import parse_time
from tradeloop.core.timeframes import STANDARD_TIMEFRAMES, bucket_start, timeframe_ns
from tradeloop.data import load_ohlcv, resample
from tradeloop.testing.environment import shared_data_dir

MINUTE = 60_000_000_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR


def make_bars(ts: list[int] | np.ndarray, timeframe: str, **extra: np.ndarray) -> BarArrays:
    """Bars whose open is 1000+i, high 2000+i, low i+1, close 1500+i, volume 1."""
    stamps = np.asarray(ts, dtype=np.int64)
    i = np.arange(stamps.shape[0], dtype=np.float64)
    return BarArrays(
        "TEST", timeframe, stamps, 1000 + i, 2000 + i, i + 1, 1500 + i, np.ones_like(i), **extra
    )


def reference(bars: BarArrays, timeframe: str) -> pd.DataFrame:
    """Straightforward pandas groupby on bucket_start keys, for cross-checking."""
    frame = pd.DataFrame(
        {
            "key": bucket_start(np.asarray(bars.ts), timeframe),
            "open": bars.open,
            "high": bars.high,
            "low": bars.low,
            "close": bars.close,
            "volume": bars.volume,
        }
    )
    return frame.groupby("key", sort=True).agg(
        open=("open", "first"),
        high=("high", "max"),
        low=("low", "min"),
        close=("close", "last"),
        volume=("volume", "sum"),
    )


# --------------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def btc_1m_and_5m() -> tuple[BarArrays, BarArrays]:
    folder = shared_data_dir() / "crypto_1m" / "binance_spot_2025"
    return (
        load_ohlcv(folder / "BTC_USDT-1m.feather").bars,
        load_ohlcv(folder / "BTC_USDT-5m.feather").bars,
    )


def test_resample_real_1m_to_5m_matches_exchange_5m(
    btc_1m_and_5m: tuple[BarArrays, BarArrays],
) -> None:
    # Arrange
    one_minute, exchange = btc_1m_and_5m
    # Act
    ours = resample(one_minute, "5m")
    # Assert: OHLC bit-exact, volume up to float summation order
    assert len(ours) == len(exchange) == 26_141
    for name in ("ts", "open", "high", "low", "close"):
        assert np.array_equal(getattr(ours, name), getattr(exchange, name)), name
    np.testing.assert_allclose(ours.volume, exchange.volume, rtol=1e-12, atol=1e-9)
    assert ours.timeframe == "5m"
    assert ours.symbol == "BTC/USDT"


def test_resample_real_keeps_trailing_partial_bucket_when_asked(
    btc_1m_and_5m: tuple[BarArrays, BarArrays],
) -> None:
    # Arrange
    one_minute, exchange = btc_1m_and_5m
    # Act
    ours = resample(one_minute, "5m", drop_partial=False)
    # Assert: one extra bucket 18:25Z built from 3 minutes (18:25-18:27)
    assert len(ours) == len(exchange) + 1
    assert int(ours.ts[-1]) == parse_time("2025-08-18T18:25:00Z")
    assert int(ours.ts[-2]) == int(exchange.ts[-1])
    tail = one_minute.slice(len(one_minute) - 3, len(one_minute))
    assert ours.open[-1] == tail.open[0]
    assert ours.close[-1] == tail.close[-1]
    assert ours.high[-1] == tail.high.max()
    assert ours.low[-1] == tail.low.min()


@pytest.mark.parametrize("timeframe", STANDARD_TIMEFRAMES)
def test_resample_real_1m_to_standard_timeframes_matches_reference(
    btc_1m_and_5m: tuple[BarArrays, BarArrays], timeframe: str
) -> None:
    # Arrange
    one_minute, _ = btc_1m_and_5m
    expected = reference(one_minute, timeframe)
    # Act
    ours = resample(one_minute, timeframe, drop_partial=False)
    # Assert
    assert ours.ts.tolist() == expected.index.tolist()
    for name in ("open", "high", "low", "close"):
        assert np.array_equal(getattr(ours, name), expected[name].to_numpy()), name
    np.testing.assert_allclose(ours.volume, expected["volume"].to_numpy(), rtol=1e-9)


def test_resample_real_hourly_with_gaps_to_daily() -> None:
    # Arrange: the 1h file has 28 gaps (exchange outages)
    path = shared_data_dir() / "crypto_1h" / "binance_spot_2017_2024" / "BTC_USDT-1h.feather"
    hourly = load_ohlcv(path).bars
    expected = reference(hourly, "1d")
    # Act
    daily = resample(hourly, "1d")
    # Assert: last day (2024-04-21, data ends 14:00) is partial and dropped
    assert daily.ts.tolist() == expected.index.tolist()[:-1]
    assert int(daily.ts[-1]) == parse_time("2024-04-20")
    assert np.array_equal(daily.close, expected["close"].to_numpy()[:-1])


# --------------------------------------------------------------------------- boundaries


def test_resample_4h_buckets_start_on_utc_epoch_grid() -> None:
    # Arrange: 1h bars 2024-01-01 02:00 .. 09:00 (8 bars)
    start = parse_time("2024-01-01T02:00:00Z")
    bars = make_bars(start + np.arange(8) * HOUR, "1h")
    # Act
    out = resample(bars, "4h", drop_partial=False)
    # Assert: buckets 00:00 (02,03), 04:00 (04..07), 08:00 (08,09)
    base = parse_time("2024-01-01T00:00:00Z")
    assert out.ts.tolist() == [base, base + 4 * HOUR, base + 8 * HOUR]
    assert out.open.tolist() == [1000, 1002, 1006]
    assert out.high.tolist() == [2001, 2005, 2007]
    assert out.low.tolist() == [1, 3, 7]
    assert out.close.tolist() == [1501, 1505, 1507]
    assert out.volume.tolist() == [2, 4, 2]


def test_resample_drop_partial_drops_only_unfinished_last_bucket() -> None:
    # Arrange: same data; first bucket is partial too, but only the last one is dropped
    start = parse_time("2024-01-01T02:00:00Z")
    bars = make_bars(start + np.arange(8) * HOUR, "1h")
    # Act
    out = resample(bars, "4h")
    # Assert
    assert len(out) == 2
    assert out.volume.tolist() == [2, 4]


def test_resample_complete_last_bucket_is_kept() -> None:
    # Arrange: data ends at 07:00, so the 04:00 bucket closes exactly at 08:00
    start = parse_time("2024-01-01T00:00:00Z")
    bars = make_bars(start + np.arange(8) * HOUR, "1h")
    # Act
    out = resample(bars, "4h")
    # Assert
    assert len(out) == 2
    assert out.volume.tolist() == [4, 4]


def test_resample_last_bucket_with_missing_final_bar_is_partial() -> None:
    # Arrange: 04:00 bucket has 04, 05, 06 but not 07 -> data ends before the bucket closes
    start = parse_time("2024-01-01T00:00:00Z")
    bars = make_bars(start + np.arange(7) * HOUR, "1h")
    # Act / Assert
    assert len(resample(bars, "4h")) == 1
    assert len(resample(bars, "4h", drop_partial=False)) == 2


def test_resample_1d_splits_at_utc_midnight() -> None:
    # Arrange: 6h bars from 2024-03-01 12:00 to 2024-03-03 06:00
    start = parse_time("2024-03-01T12:00:00Z")
    bars = make_bars(start + np.arange(8) * 6 * HOUR, "6h")
    # Act
    out = resample(bars, "1d", drop_partial=False)
    # Assert
    day = parse_time("2024-03-01")
    assert out.ts.tolist() == [day, day + DAY, day + 2 * DAY]
    assert out.volume.tolist() == [2, 4, 2]
    assert out.open.tolist() == [1000, 1002, 1006]


def test_resample_1w_starts_monday_utc() -> None:
    # Arrange: daily bars Thu 2024-01-04 .. Tue 2024-01-16 (Mondays: 01-01, 01-08, 01-15)
    start = parse_time("2024-01-04")
    bars = make_bars(start + np.arange(13) * DAY, "1d")
    # Act
    out = resample(bars, "1w", drop_partial=False)
    # Assert
    assert out.ts.tolist() == [
        parse_time("2024-01-01"),
        parse_time("2024-01-08"),
        parse_time("2024-01-15"),
    ]
    assert out.volume.tolist() == [4, 7, 2]
    assert pd.Timestamp(int(out.ts[1]), tz="UTC").day_name() == "Monday"


def test_resample_1w_drop_partial_keeps_week_ending_sunday() -> None:
    # Arrange: daily bars Mon 2024-01-08 .. Sun 2024-01-21 (two full weeks)
    bars = make_bars(parse_time("2024-01-08") + np.arange(14) * DAY, "1d")
    # Act
    out = resample(bars, "1w")
    # Assert
    assert out.ts.tolist() == [parse_time("2024-01-08"), parse_time("2024-01-15")]
    assert out.volume.tolist() == [7, 7]


def test_resample_gaps_produce_no_empty_buckets() -> None:
    # Arrange: 1m bars at minutes 0-4, 20-21, 23 (minutes 5-19 and 22 missing)
    minutes = [0, 1, 2, 3, 4, 20, 21, 23, 24]
    bars = make_bars(np.array(minutes) * MINUTE, "1m")
    # Act
    out = resample(bars, "5m")
    # Assert: no rows for 05,10,15; the 20 bucket (missing minute 22) is still output
    assert out.ts.tolist() == [0, 20 * MINUTE]
    assert out.volume.tolist() == [5, 4]
    assert out.close.tolist() == [1504, 1508]


def test_resample_carries_last_open_interest_and_cvd() -> None:
    # Arrange
    oi = np.array([10.0, 11.0, 12.0, 13.0, 14.0, 15.0])
    cvd = np.array([1.0, -2.0, 3.0, 5.0, 4.0, 9.0])
    bars = make_bars(np.arange(6) * MINUTE, "1m", open_interest=oi, cvd=cvd)
    # Act
    out = resample(bars, "3m")
    # Assert
    assert out.open_interest is not None
    assert out.open_interest.tolist() == [12.0, 15.0]
    assert out.cvd is not None
    assert out.cvd.tolist() == [3.0, 9.0]


def test_resample_same_timeframe_returns_input() -> None:
    # Arrange
    bars = make_bars(np.arange(3) * MINUTE, "1m")
    # Act / Assert
    assert resample(bars, "1m") is bars


def test_resample_empty_bars_returns_empty() -> None:
    # Arrange
    bars = make_bars(np.array([], dtype=np.int64), "1m")
    # Act
    out = resample(bars, "1h")
    # Assert
    assert len(out) == 0
    assert out.timeframe == "1h"


def test_resample_everything_partial_returns_empty() -> None:
    # Arrange: 3 minutes of a 5m bucket
    bars = make_bars(np.arange(3) * MINUTE, "1m")
    # Act / Assert
    assert len(resample(bars, "5m")) == 0


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(("source", "target"), [("3m", "5m"), ("1h", "90m"), ("1d", "30m")])
def test_resample_non_multiple_timeframe_raises_config_error(source: str, target: str) -> None:
    # Arrange
    bars = make_bars(np.arange(3) * timeframe_ns(source), source)
    # Act / Assert
    with pytest.raises(ConfigError, match="whole multiple"):
        resample(bars, target)


def test_resample_unknown_timeframe_raises_config_error() -> None:
    # Arrange
    bars = make_bars(np.arange(3) * MINUTE, "1m")
    # Act / Assert
    with pytest.raises(ConfigError):
        resample(bars, "1y")


def test_resample_unsorted_bars_raise_data_error() -> None:
    # Arrange
    bars = make_bars(np.array([0, 2, 1]) * MINUTE, "1m")
    # Act / Assert
    with pytest.raises(DataError, match="strictly increasing") as info:
        resample(bars, "5m")
    assert info.value.row == 2


def test_resample_off_grid_bars_raise_data_error() -> None:
    # Arrange: 1h bars stamped at :30 would straddle 4h buckets
    bars = make_bars(np.arange(4) * HOUR + 30 * MINUTE, "1h")
    # Act / Assert
    with pytest.raises(DataError, match="not aligned"):
        resample(bars, "4h")


# --------------------------------------------------------------------------- speed


def test_resample_one_million_bars_to_15m_is_fast() -> None:
    # Arrange
    n = 1_000_000
    bars = make_bars(np.arange(n, dtype=np.int64) * MINUTE, "1m")
    resample(bars.slice(0, 1000), "15m")  # warm up
    # Act
    start = time.perf_counter()
    out = resample(bars, "15m")
    elapsed = time.perf_counter() - start
    # Assert: well under 100 ms expected; loose bound for busy machines
    assert len(out) == n // 15
    assert elapsed < 1.0
