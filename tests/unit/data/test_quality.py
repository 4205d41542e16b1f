"""Quality report: finds what the shared data README documents, and judges thresholds."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from tradeloop.core.time import parse_time
from tradeloop.data.gaps import fill_forward, find_gaps
from tradeloop.data.loader import RawOhlcv, read_unvalidated
from tradeloop.data.quality import QualityThresholds, check_quality

H = 3_600_000_000_000
M = 60_000_000_000


# file, timeframe, gaps, missing bars, longest span between bars (README "max"), zero-volume
DOCUMENTED = [
    ("crypto_1h/binance_spot_2017_2024/BTC_USDT-1h.feather", "1h", 28, 128, 34 * H, 4),
    ("crypto_1m/freqtrade/UNITTEST_BTC-1m.feather", "1m", 538, 717, 8 * M, 0),
    ("crypto_5m_multi/freqtrade_2018/ADA_BTC-5m.feather", "5m", 5, 40, 170 * M, 0),
    ("crypto_5m_multi/freqtrade_2018/DASH_BTC-5m.feather", "5m", 2, 2, 10 * M, 0),
    ("crypto_5m_multi/freqtrade_2018/TRX_BTC-5m.feather", "5m", 6, 6, 10 * M, 0),
    ("crypto_5m_multi/freqtrade_2018/XMR_BTC-5m.feather", "5m", 2, 2, 10 * M, 0),
    ("crypto_5m_multi/freqtrade_2018/ZEC_BTC-5m.feather", "5m", 2, 2, 10 * M, 0),
    ("crypto_5m_multi/freqtrade_2018/ETH_BTC-5m.feather", "5m", 0, 0, 0, 0),
    ("trades/binance_xrpeth_2019/XRP_ETH-1m.feather", "1m", 676, 1091, 9 * M, 0),
    ("trades/binance_xrpeth_2019/XRP_ETH-5m.feather", "5m", 6, 6, 10 * M, 0),
    ("crypto_1m/binance_spot_2025/BTC_USDT-1m.feather", "1m", 0, 0, 0, 0),
    ("crypto_futures/binance_usdm_2025/BTC_USDT_USDT-8h-mark.feather", "8h", 0, 0, 0, 89),
    ("crypto_futures/binance_usdm_btc_2025/BTC_USDT_USDT-8h-mark.feather", "8h", 0, 0, 0, 74),
]


@pytest.mark.parametrize(("name", "tf", "gaps", "missing", "span", "zero"), DOCUMENTED)
def test_report_finds_every_documented_gap_and_zero_volume_bar(
    shared_data: Path, name: str, tf: str, gaps: int, missing: int, span: int, zero: int
) -> None:
    # Act
    report = check_quality(read_unvalidated(shared_data / name), tf)
    # Assert
    assert len(report.gaps) == gaps
    assert report.gaps.total_missing == missing
    assert report.gaps.longest_span_ns == span
    assert report.zero_volume == zero
    assert report.ok, report.failures  # gaps and zero volume only fail past a limit


def test_btc_1h_outages_and_zero_volume_bars_are_where_the_readme_says(shared_data: Path) -> None:
    # Act
    report = check_quality(
        read_unvalidated(shared_data / "crypto_1h/binance_spot_2017_2024/BTC_USDT-1h.feather"), "1h"
    )
    # Assert
    g = report.gaps
    longest = int(np.argmax(g.missing))
    assert g.longest == 33
    assert g.before_ns[longest] == parse_time("2018-02-08T00:00Z")
    assert sorted(int(x) for x in g.before_ns[g.missing == 10]) == [
        parse_time("2018-06-26T01:00Z"),
        parse_time("2019-05-15T02:00Z"),
    ]
    assert report.zero_volume_ts.tolist() == [
        parse_time("2017-09-06T16:00Z"),
        parse_time("2019-06-07T21:00Z"),
        parse_time("2021-02-11T03:00Z"),
        parse_time("2023-03-24T12:00Z"),
    ]


def test_limits_turn_gaps_and_zero_volume_into_failures(shared_data: Path) -> None:
    raw = read_unvalidated(shared_data / "crypto_1h/binance_spot_2017_2024/BTC_USDT-1h.feather")
    th = QualityThresholds(max_gaps=27, max_missing_bars=200, max_gap_bars=24, max_zero_volume=3)
    report = check_quality(raw, "1h", th)
    assert report.failures == [
        "gaps 28 > limit 27",
        "longest gap (bars) 33 > limit 24",
        "zero-volume bars 4 > limit 3",
    ]


def test_nan_volume_of_mark_candles_fails_as_invalid_values(shared_data: Path) -> None:
    raw = read_unvalidated(
        shared_data / "crypto_futures/freqtrade_xrp_2021/XRP_USDT_USDT-1h-mark.feather"
    )
    report = check_quality(raw, "1h")
    assert report.invalid_values == 100
    assert not report.ok


def _raw(closes: list[float], ts: list[int] | None = None, **cols: list[float]) -> RawOhlcv:
    c = np.asarray(closes, dtype=np.float64)
    t = np.asarray(ts if ts is not None else [i * M for i in range(c.size)], dtype=np.int64)
    o = np.asarray(cols.get("open", np.r_[c[:1], c[:-1]]), dtype=np.float64)
    h = np.asarray(cols.get("high", np.maximum(o, c) + 0.5), dtype=np.float64)
    lo = np.asarray(cols.get("low", np.minimum(o, c) - 0.5), dtype=np.float64)
    v = np.asarray(cols.get("volume", np.ones(c.size)), dtype=np.float64)
    return RawOhlcv("test", t, o, h, lo, c, v)


def _wavy(n: int) -> list[float]:
    rng = np.random.default_rng(7)
    return list(100 + np.cumsum(rng.normal(0, 0.1, n)).round(2))


def test_duplicates_unsorted_off_grid_and_ohlc_violations_fail_by_default() -> None:
    # Arrange
    closes = _wavy(10)
    ts = [i * M for i in range(10)]
    ts[3] = ts[2]  # duplicate
    ts[6], ts[7] = ts[7], ts[6]  # unsorted
    ts[9] = 9 * M + 1_000_000  # off grid by 1 ms
    raw = _raw(closes, ts)
    raw.high[4] = raw.low[4] - 1  # high below low
    # Act
    report = check_quality(raw, "1m")
    # Assert
    assert (report.duplicates, report.unsorted, report.off_grid) == (1, 1, 1)
    assert report.ohlc_violations == 1
    assert set(f.split(" ")[0] for f in report.failures) == {
        "OHLC",
        "duplicate",
        "unsorted",
        "off-grid",
    }


@pytest.mark.parametrize(("run", "fails"), [(4, False), (5, True), (7, True)])
def test_straight_line_interpolated_runs_of_five_or_more_bars_fail(run: int, fails: bool) -> None:
    # Arrange: flat bars stepping by exactly 0.25 for `run` bars, inside real-looking noise
    closes = _wavy(40)
    line = [closes[19] + 0.25 * k for k in range(run)]
    closes = closes[:20] + line[1:] + [x + line[-1] - closes[20] for x in closes[20:]]
    raw = _raw(closes)
    lo, hi = 19, 19 + run
    raw.open[lo:hi] = raw.high[lo:hi] = raw.low[lo:hi] = raw.close[lo:hi]
    # Act
    report = check_quality(raw, "1m")
    # Assert
    assert (report.interpolated_runs == 1) is fails
    assert report.ok is not fails


def test_a_straight_line_rounded_to_the_tick_is_still_an_interpolated_run() -> None:
    # Arrange: prices at 2 decimals; 12 bars filled along a line rising 0.80 (a step of
    # 0.0727, about 7 ticks), each value rounded to the cent as a file would write it, so
    # neighbouring steps differ by up to a tick
    closes = _wavy(40)
    line = list(np.round(np.linspace(closes[19], closes[19] + 0.80, 12), 2))
    closes = closes[:19] + line + [x + line[-1] - closes[31] for x in closes[31:]]
    raw = _raw(closes)
    lo, hi = 19, 31
    raw.open[lo:hi] = raw.high[lo:hi] = raw.low[lo:hi] = raw.close[lo:hi]
    steps = np.diff(raw.close[lo:hi])
    assert np.ptp(steps) > 0.005  # not exactly straight: the rounding bends it
    # Act
    report = check_quality(raw, "1m")
    # Assert
    assert report.interpolated_runs == 1
    assert report.longest_interpolated >= 12
    assert not report.ok


def test_a_market_creeping_by_a_tick_a_bar_is_not_an_interpolated_run() -> None:
    # Arrange: 12 bars each one or two ticks above the last (steps within a tick of each
    # other, as real quiet markets do), with ranges around them
    closes = _wavy(40)
    creep = [closes[19] + 0.01 * k + 0.01 * (k % 2) for k in range(12)]
    closes = closes[:19] + creep + [x + creep[-1] - closes[31] for x in closes[31:]]
    raw = _raw([round(c, 2) for c in closes])
    lo, hi = 19, 31
    raw.open[lo:hi] = raw.high[lo:hi] = raw.low[lo:hi] = raw.close[lo:hi]
    # Act
    report = check_quality(raw, "1m")
    # Assert
    assert report.interpolated_runs == 0


def test_identical_bars_are_reported_as_stale_runs() -> None:
    closes = _wavy(30)
    closes[10:16] = [closes[10]] * 6
    raw = _raw(closes, open=closes, high=[c + 0.5 for c in closes], low=[c - 0.5 for c in closes])
    report = check_quality(raw, "1m")
    assert (report.stale_runs, report.stale_bars) == (1, 6)
    assert report.ok
    assert not check_quality(raw, "1m", QualityThresholds(max_stale_bars=5)).ok


def test_a_price_spike_is_an_outlier_by_zscore_and_iqr() -> None:
    closes = _wavy(400)
    closes[300] = closes[299] * 1.25
    report = check_quality(_raw(closes), "1m", QualityThresholds(outlier_window=200))
    assert report.outliers["zscore_returns"] >= 1
    assert report.outliers["iqr_returns"] >= 1
    assert report.ok
    assert not check_quality(_raw(closes), "1m", QualityThresholds(max_outliers=0)).ok


def test_fill_forward_marks_inserted_bars_synthetic_and_check_counts_them() -> None:
    # Arrange
    ts = np.array([0, M, 4 * M, 5 * M], dtype=np.int64)
    cols = {k: np.array([1.0, 2.0, 3.0, 4.0]) for k in ("open", "high", "low", "close", "volume")}
    # Act
    out_ts, out, synthetic = fill_forward(ts, cols, M)
    raw = RawOhlcv(
        "f", out_ts, out["open"], out["high"], out["low"], out["close"], out["volume"], synthetic
    )
    report = check_quality(raw, "1m")
    # Assert
    assert (out_ts // M).tolist() == [0, 1, 2, 3, 4, 5]
    assert synthetic.tolist() == [False, False, True, True, False, False]
    assert out["close"].tolist() == [1.0, 2.0, 2.0, 2.0, 3.0, 4.0]
    assert out["volume"][2:4].tolist() == [0.0, 0.0]
    assert len(find_gaps(out_ts, M)) == 0
    assert report.synthetic == 2
    assert report.zero_volume == 0
    assert report.stale_runs == 0


def _daily_raw(ts: np.ndarray) -> RawOhlcv:
    close = 100 + np.cumsum(np.random.default_rng(3).normal(0, 1, ts.size))
    return RawOhlcv("X", ts, close, close + 1, close - 1, close, np.full(ts.size, 10.0))


DAY_NS = 86_400 * 10**9


@pytest.mark.parametrize(
    ("name", "stamps", "off_grid"),
    [
        # a vendor's weekly bars stamped Sunday (the clock's weeks start Monday)
        ("weekly on Sunday", parse_time("2020-01-05") + np.arange(120) * 7 * DAY_NS, 0),
        # daily bars at New York midnight in UTC: 05:00 in winter, 04:00 with daylight saving
        (
            "daily at local midnight",
            np.array(
                [
                    parse_time(d.isoformat()) + (4 if 3 <= d.month <= 10 else 5) * 3_600 * 10**9
                    for d in np.arange("2023-01-02", "2023-12-30", dtype="datetime64[D]").tolist()
                ]
            ),
            0,
        ),
        # one daily bar at noon among midnights, one weekly bar on a Wednesday among Sundays
        ("daily, one at noon", np.r_[np.arange(60) * DAY_NS, 60 * DAY_NS + DAY_NS // 2], 1),
        (
            "weekly, one midweek",
            np.r_[
                parse_time("2020-01-05") + np.arange(60) * 7 * DAY_NS,
                parse_time("2020-01-05") + 60 * 7 * DAY_NS + 3 * DAY_NS,
            ],
            1,
        ),
    ],
)
def test_daily_and_weekly_bars_are_on_the_grid_of_their_own_phase(
    name: str, stamps: np.ndarray, off_grid: int
) -> None:
    # Arrange
    raw = _daily_raw(np.asarray(stamps, dtype=np.int64))
    timeframe = "1w" if name.startswith("weekly") else "1d"
    # Act
    report = check_quality(raw, timeframe)
    # Assert
    assert report.off_grid == off_grid, name


def test_monthly_bars_are_refused_with_what_to_use_instead(tmp_path: Path) -> None:
    from tradeloop.core.errors import DataError
    from tradeloop.data import load_ohlcv

    months = np.arange("2015-01", "2021-01", dtype="datetime64[M]").astype("datetime64[D]")
    lines = ["timestamp,open,high,low,close,volume"]
    lines += [f"{d}T00:00:00Z,100,101,99,100.5,5" for d in months.tolist()]
    path = tmp_path / "SPX-monthly.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"SPX-monthly\.csv.*calendar month or a quarter apart"):
        load_ohlcv(path)


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ({"max_gaps": -1}, "max_gaps (--max-gaps) must be 0 or more, got -1"),
        ({"outlier_window": 0}, "outlier_window (--window) must be 10 or more bars, got 0"),
        ({"zscore_limit": -1.0}, "zscore_limit (--zscore) must be above 0"),
        ({"iqr_multiplier": 0.0}, "iqr_multiplier (--iqr) must be above 0"),
        ({"interpolated_run": 2}, "must be 0 (off) or 3 or more, got 2"),
        ({"spike_factor": 0.5}, "spike_factor (--spike-factor) must be 0 (off) or above 1"),
    ],
)
def test_thresholds_that_would_check_nothing_are_refused_by_flag(
    given: dict[str, float], said: str
) -> None:
    from tradeloop.core.errors import ConfigError

    with pytest.raises(ConfigError, match=re.escape(said)):
        QualityThresholds(**given)  # type: ignore[arg-type]


def test_thresholds_zero_turns_the_optional_detectors_off() -> None:
    th = QualityThresholds(interpolated_run=0, spike_factor=0.0, max_gaps=0)
    assert (th.interpolated_run, th.spike_factor, th.max_gaps) == (0, 0.0, 0)
