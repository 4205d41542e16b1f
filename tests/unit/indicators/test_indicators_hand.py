"""Hand-computed values on tiny arrays for every indicator; the arithmetic is written out."""

from __future__ import annotations

import math

import numpy as np
from numpy.testing import assert_allclose, assert_array_equal

from tradeloop.indicators import (
    atr,
    bollinger,
    ema,
    macd,
    rolling_zscore,
    rsi,
    session_vwap,
    sma,
    stochastic,
    true_range,
    vwap,
    wma,
)

nan = math.nan
HOUR_NS = 3_600 * 10**9
DAY_NS = 24 * HOUR_NS


# --------------------------------------------------------------------------- moving averages


def test_sma_window_two_returns_pairwise_means() -> None:
    # Arrange
    x = [2.0, 4.0, 6.0, 8.0]
    expected = [nan, (2 + 4) / 2, (4 + 6) / 2, (6 + 8) / 2]
    # Act
    out = sma(x, 2)
    # Assert
    assert_allclose(out, expected, rtol=0, atol=1e-15)


def test_sma_window_one_returns_input() -> None:
    x = np.array([3.0, -1.0, 2.5])
    assert_array_equal(sma(x, 1), x)


def test_sma_window_longer_than_series_returns_all_nan() -> None:
    assert np.isnan(sma([1.0, 2.0], 3)).all()


def test_sma_window_with_nan_returns_nan_until_nan_leaves() -> None:
    # Arrange: windows of 2 touching index 2 are [1, 2] and [2, 3].
    x = [1.0, 2.0, nan, 4.0, 6.0]
    # Act
    out = sma(x, 2)
    # Assert
    assert_allclose(out, [nan, (1 + 2) / 2, nan, nan, (4 + 6) / 2])


def test_ema_span_three_returns_sma_seed_then_recursion() -> None:
    # Arrange: alpha = 2 / (3 + 1) = 0.5, seed = (1 + 2 + 3) / 3 = 2 at index 2.
    x = [1.0, 2.0, 3.0, 4.0, 5.0]
    seed = (1 + 2 + 3) / 3
    e3 = seed + 0.5 * (4 - seed)
    e4 = e3 + 0.5 * (5 - e3)
    # Act
    out = ema(x, 3)
    # Assert
    assert_allclose(out, [nan, nan, seed, e3, e4], rtol=1e-15)


def test_ema_with_leading_nan_returns_seed_delayed() -> None:
    # Arrange: the first valid values are 1, 2, 3 -> seed 2 at index 3.
    x = [nan, 1.0, 2.0, 3.0, 7.0]
    # Act
    out = ema(x, 3)
    # Assert
    assert_allclose(out, [nan, nan, nan, 2.0, 2.0 + 0.5 * (7 - 2.0)])


def test_ema_span_one_returns_input() -> None:
    # alpha = 2 / 2 = 1, so each value replaces the previous one.
    x = np.array([5.0, 1.0, 4.0])
    assert_allclose(ema(x, 1), x)


def test_wma_window_three_returns_linear_weights() -> None:
    # Arrange: weights 1, 2, 3 over the window, divided by 1 + 2 + 3 = 6.
    x = [1.0, 2.0, 3.0, 4.0]
    w2 = (1 * 1 + 2 * 2 + 3 * 3) / 6
    w3 = (1 * 2 + 2 * 3 + 3 * 4) / 6
    # Act
    out = wma(x, 3)
    # Assert
    assert_allclose(out, [nan, nan, w2, w3], rtol=1e-15)


def test_wma_long_series_matches_direct_weighted_sum() -> None:
    # The running update is rebuilt periodically; check it across several rebuilds.
    x = np.sin(np.arange(2_000) / 7.0) * 100 + 1_000
    n = 5
    weights = np.arange(1, n + 1, dtype=float)
    direct = np.lib.stride_tricks.sliding_window_view(x, n) @ weights / weights.sum()
    assert_allclose(wma(x, n)[n - 1 :], direct, rtol=1e-13)


# --------------------------------------------------------------------------- oscillators


def test_rsi_period_three_returns_wilder_values() -> None:
    # Arrange: changes +1, -0.5, +1.5, -1, +2.
    x = [10.0, 11.0, 10.5, 12.0, 11.0, 13.0]
    g3, l3 = (1 + 0 + 1.5) / 3, (0 + 0.5 + 0) / 3  # seeds over the first 3 changes
    g4, l4 = (g3 * 2 + 0) / 3, (l3 * 2 + 1) / 3  # Wilder: (prev * (n - 1) + value) / n
    g5, l5 = (g4 * 2 + 2) / 3, (l4 * 2 + 0) / 3
    expected = [nan, nan, nan] + [100 * g / (g + lo) for g, lo in ((g3, l3), (g4, l4), (g5, l5))]
    # Act
    out = rsi(x, 3)
    # Assert
    assert_allclose(out, expected, rtol=1e-14)
    assert_allclose(out[3:], [100 * 2.5 / 3.0, 100 * 5 / 9, 100 * 28 / 36], rtol=1e-14)


def test_rsi_on_constant_series_returns_0_like_talib() -> None:
    # Average gain and loss are both 0: TA-Lib outputs 0.0 (not 50).
    out = rsi(np.full(10, 7.0), 3)
    assert_array_equal(out, [nan] * 3 + [0.0] * 7)


def test_rsi_on_rising_series_returns_100() -> None:
    out = rsi(np.arange(10.0), 4)
    assert_array_equal(out[4:], 100.0)


def test_rsi_on_falling_series_returns_0() -> None:
    out = rsi(-np.arange(10.0), 4)
    assert_array_equal(out[4:], 0.0)


def test_macd_small_spans_returns_hand_computed_lines() -> None:
    # Arrange: fast span 2 (alpha 2/3), slow span 3 (alpha 1/2), signal span 2 (alpha 2/3).
    x = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
    a_f, a_s = 2 / 3, 1 / 2
    f1 = (1 + 2) / 2
    f2 = f1 + a_f * (4 - f1)
    f3 = f2 + a_f * (8 - f2)
    f4 = f3 + a_f * (16 - f3)
    f5 = f4 + a_f * (32 - f4)
    s2 = (1 + 2 + 4) / 3
    s3 = s2 + a_s * (8 - s2)
    s4 = s3 + a_s * (16 - s3)
    s5 = s4 + a_s * (32 - s4)
    m = [nan, nan, f2 - s2, f3 - s3, f4 - s4, f5 - s5]
    g3 = (m[2] + m[3]) / 2
    g4 = g3 + a_f * (m[4] - g3)
    g5 = g4 + a_f * (m[5] - g4)
    sig = [nan, nan, nan, g3, g4, g5]
    # Act
    line, signal, hist = macd(x, fast=2, slow=3, signal=2)
    # Assert: also the exact fractions 5/6, 11/9, 239/108, 2791/648 and 37/36.
    assert_allclose(line, m, rtol=1e-14)
    assert_allclose(line[2:], [5 / 6, 11 / 9, 239 / 108, 2791 / 648], rtol=1e-14)
    assert_allclose(signal, sig, rtol=1e-14)
    assert math.isclose(signal[3], 37 / 36, rel_tol=1e-14)
    assert_allclose(hist, np.array(m) - np.array(sig), rtol=1e-14)


def test_stochastic_fast_returns_hand_computed_k_and_d() -> None:
    # Arrange
    high = [3.0, 4.0, 5.0, 4.0]
    low = [1.0, 2.0, 3.0, 1.0]
    close = [2.0, 3.0, 5.0, 2.0]
    k1 = 100 * (3 - 1) / (4 - 1)  # HH = max(3, 4), LL = min(1, 2)
    k2 = 100 * (5 - 2) / (5 - 2)  # HH = max(4, 5), LL = min(2, 3)
    k3 = 100 * (2 - 1) / (5 - 1)  # HH = max(5, 4), LL = min(3, 1)
    # Act
    pk, pd_ = stochastic(high, low, close, k=2, d=2)
    # Assert
    assert_allclose(pk, [nan, k1, k2, k3], rtol=1e-15)
    assert_allclose(pd_, [nan, nan, (k1 + k2) / 2, (k2 + k3) / 2], rtol=1e-15)


def test_stochastic_slow_returns_smoothed_k() -> None:
    # Arrange: same bars as above, raw %K = 200/3, 100, 25.
    high = [3.0, 4.0, 5.0, 4.0]
    low = [1.0, 2.0, 3.0, 1.0]
    close = [2.0, 3.0, 5.0, 2.0]
    sk2 = (200 / 3 + 100) / 2
    sk3 = (100 + 25) / 2
    # Act
    pk, pd_ = stochastic(high, low, close, k=2, d=2, smooth_k=2)
    # Assert
    assert_allclose(pk, [nan, nan, sk2, sk3], rtol=1e-15)
    assert_allclose(pd_, [nan, nan, nan, (sk2 + sk3) / 2], rtol=1e-15)


def test_stochastic_zero_range_returns_50() -> None:
    flat = np.full(5, 10.0)
    pk, pd_ = stochastic(flat, flat, flat, k=3, d=2)
    assert_array_equal(pk[2:], 50.0)
    assert_array_equal(pd_[3:], 50.0)


# --------------------------------------------------------------------------- volatility


H = [10.0, 12.0, 11.0, 15.0]
L = [8.0, 11.0, 9.0, 13.0]
C = [9.0, 11.5, 10.0, 14.0]


def test_true_range_gaps_returns_distance_to_previous_close() -> None:
    expected = [
        10 - 8,  # bar 0: high - low
        max(12 - 11, abs(12 - 9), abs(11 - 9)),  # 3
        max(11 - 9, abs(11 - 11.5), abs(9 - 11.5)),  # 2.5
        max(15 - 13, abs(15 - 10), abs(13 - 10)),  # 5
    ]
    assert_array_equal(true_range(H, L, C), expected)


def test_atr_period_two_returns_sma_seed_then_wilder() -> None:
    # Arrange: TR = 2, 3, 2.5, 5.
    a1 = (2 + 3) / 2
    a2 = (a1 * 1 + 2.5) / 2
    a3 = (a2 * 1 + 5) / 2
    # Act
    out = atr(H, L, C, n=2)
    # Assert
    assert_allclose(out, [nan, a1, a2, a3], rtol=1e-15)
    assert_allclose(out[1:], [2.5, 2.5, 3.75])


def test_bollinger_population_std_returns_hand_computed_bands() -> None:
    # Arrange: windows [1, 2, 3], [2, 3, 4], [3, 4, 10].
    x = [1.0, 2.0, 3.0, 4.0, 10.0]
    sd2 = math.sqrt(((1 - 2) ** 2 + 0 + (3 - 2) ** 2) / 3)
    mean4 = (3 + 4 + 10) / 3
    sd4 = math.sqrt(((3 - mean4) ** 2 + (4 - mean4) ** 2 + (10 - mean4) ** 2) / 3)
    assert math.isclose(sd4, math.sqrt(86 / 9))
    mid_expected = [nan, nan, 2.0, 3.0, mean4]
    sd_expected = np.array([nan, nan, sd2, sd2, sd4])
    # Act
    mid, upper, lower = bollinger(x, n=3, k=2.0)
    # Assert
    assert_allclose(mid, mid_expected, rtol=1e-15)
    assert_allclose(upper, mid_expected + 2 * sd_expected, rtol=1e-14)
    assert_allclose(lower, mid_expected - 2 * sd_expected, rtol=1e-14)


def test_bollinger_sample_std_returns_ddof_one_bands() -> None:
    # Window [1, 2, 3]: sample variance (1 + 0 + 1) / (3 - 1) = 1.
    mid, upper, lower = bollinger([1.0, 2.0, 3.0], n=3, k=1.5, ddof=1)
    assert_allclose([mid[2], upper[2], lower[2]], [2.0, 2.0 + 1.5 * 1.0, 2.0 - 1.5 * 1.0])


def test_bollinger_constant_window_returns_collapsed_bands() -> None:
    x = [0.1, 0.3, 0.3, 0.3, 0.3]
    mid, upper, lower = bollinger(x, n=3)
    assert_array_equal(mid[3:], 0.3)
    assert_array_equal(upper[3:], 0.3)
    assert_array_equal(lower[3:], 0.3)


def test_rolling_zscore_window_three_returns_hand_computed_scores() -> None:
    # Arrange: windows [1,2,3] and [2,3,4] give z = 1 / sqrt(2/3); [3,4,10] gives
    # (10 - 17/3) / sqrt(86/9) = 13 / sqrt(86).
    x = [1.0, 2.0, 3.0, 4.0, 10.0]
    z = 1 / math.sqrt(2 / 3)
    # Act
    out = rolling_zscore(x, 3)
    # Assert
    assert_allclose(out, [nan, nan, z, z, 13 / math.sqrt(86)], rtol=1e-14)


def test_rolling_zscore_zero_std_returns_zero() -> None:
    out = rolling_zscore([5.0, 5.0, 5.0, 5.0, 6.0], 3)
    assert_array_equal(out[:4], [nan, nan, 0.0, 0.0])
    assert out[4] > 0


# --------------------------------------------------------------------------- volume


VH = [11.0, 12.0, 13.0]
VL = [9.0, 10.0, 11.0]
VC = [10.0, 11.0, 12.0]  # typical prices (h + l + c) / 3 = 10, 11, 12


def test_vwap_cumulative_returns_running_weighted_mean() -> None:
    out = vwap(VH, VL, VC, [1.0, 2.0, 0.0])
    assert_allclose(out, [10.0, (10 * 1 + 11 * 2) / 3, (10 * 1 + 11 * 2 + 12 * 0) / 3])


def test_vwap_rolling_window_returns_window_weighted_mean() -> None:
    out = vwap(VH, VL, VC, [1.0, 2.0, 4.0], window=2)
    assert_allclose(out, [nan, (10 * 1 + 11 * 2) / (1 + 2), (11 * 2 + 12 * 4) / (2 + 4)])


def test_vwap_zero_volume_returns_nan() -> None:
    cumulative = vwap(VH, VL, VC, [0.0, 0.0, 2.0])
    rolling = vwap(VH, VL, VC, [1.0, 0.0, 0.0], window=1)
    assert_array_equal(cumulative, [nan, nan, 12.0])
    assert_array_equal(rolling, [10.0, nan, nan])


def test_session_vwap_day_boundary_returns_restarted_average() -> None:
    # Arrange: 22:00 and 23:00 on day 0, then 00:00 and 01:00 on day 1.
    ts = np.array([22, 23, 24, 25], dtype=np.int64) * HOUR_NS
    price = [10.0, 20.0, 30.0, 40.0]
    volume = [1.0, 1.0, 1.0, 3.0]
    expected = [10.0, (10 + 20) / 2, 30.0, (30 * 1 + 40 * 3) / (1 + 3)]
    # Act
    out = session_vwap(price, price, price, volume, ts, "1d")
    # Assert
    assert_allclose(out, expected)


def test_session_vwap_datetime64_input_returns_same_as_int_ns() -> None:
    ts = np.array([0, HOUR_NS, DAY_NS, DAY_NS + HOUR_NS], dtype=np.int64)
    price = [1.0, 3.0, 5.0, 9.0]
    volume = [1.0, 1.0, 1.0, 1.0]
    as_int = session_vwap(price, price, price, volume, ts)
    as_dt = session_vwap(price, price, price, volume, ts.astype("datetime64[ns]"))
    assert_array_equal(as_int, [1.0, 2.0, 5.0, 7.0])
    assert_array_equal(as_dt, as_int)


def test_session_vwap_bar_sized_period_returns_typical_price() -> None:
    ts = np.arange(3, dtype=np.int64) * HOUR_NS
    out = session_vwap(VH, VL, VC, [1.0, 5.0, 2.0], ts, "1h")
    assert_allclose(out, [10.0, 11.0, 12.0])
