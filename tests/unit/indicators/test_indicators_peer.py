"""Indicators on real BTC/USDT 1h bars against independent peers.

Two peers: a reference written here with pandas (``Series.rolling``, ``Series.ewm(alpha=...,
adjust=False)``) that follows the same TA-Lib-style conventions exactly, and the ``ta``
package, whose EMA-based indicators seed differently (``ewm`` from the first bar rather than an
SMA seed) and are therefore compared only after the seeds have decayed away.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
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

# Bars after which SMA- and first-value-seeded EMAs agree to machine precision.
_BURN_IN = 2_000


@pytest.fixture(scope="module")
def btc(sample_1h: Path) -> pd.DataFrame:
    """Return the bundled BTC/USDT 1h bars."""
    df = pd.read_csv(sample_1h)
    df["ts_ns"] = pd.to_datetime(df["timestamp"], utc=True).dt.as_unit("ns").astype("int64")
    return df


# --------------------------------------------------------------------------- pandas reference


def ref_seeded_ewm(s: pd.Series, n: int, alpha: float) -> np.ndarray:
    """Return the SMA-seeded recursive EWM of the non-NaN values of ``s`` (TA-Lib style)."""
    valid = s.dropna()
    seeded = valid.copy()
    seeded.iloc[: n - 1] = np.nan
    seeded.iloc[n - 1] = valid.iloc[:n].mean()
    out = seeded.ewm(alpha=alpha, adjust=False).mean()
    return out.reindex(s.index).to_numpy()


def ref_ema(s: pd.Series, n: int) -> np.ndarray:
    return ref_seeded_ewm(s, n, 2.0 / (n + 1))


def ref_rsi(close: pd.Series, n: int) -> np.ndarray:
    d = close.diff()
    gain = ref_seeded_ewm(d.clip(lower=0.0), n, 1.0 / n)
    loss = ref_seeded_ewm((-d).clip(lower=0.0), n, 1.0 / n)
    total = gain + loss
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total == 0.0, 0.0, 100.0 * gain / total)


def ref_true_range(df: pd.DataFrame) -> pd.Series:
    prev_close = df["close"].shift(1)
    parts = pd.concat(
        [
            df["high"] - df["low"],
            (df["high"] - prev_close).abs(),
            (df["low"] - prev_close).abs(),
        ],
        axis=1,
    )
    return parts.max(axis=1)  # skips the NaN previous close on bar 0


def ref_stochastic(df: pd.DataFrame, k: int, d: int, smooth_k: int) -> tuple[pd.Series, pd.Series]:
    ll = df["low"].rolling(k).min()
    hh = df["high"].rolling(k).max()
    rng = hh - ll
    raw = (100.0 * (df["close"] - ll) / rng).where(rng != 0.0, 50.0).where(rng.notna())
    pct_k = raw.rolling(smooth_k).mean()
    return pct_k, pct_k.rolling(d).mean()


def typical_pv(df: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    tp = (df["high"] + df["low"] + df["close"]) / 3.0
    return tp * df["volume"], df["volume"]


# --------------------------------------------------------------------------- vs pandas


@pytest.mark.parametrize("n", [1, 10, 200])
def test_sma_btc_matches_pandas_rolling_mean(btc: pd.DataFrame, n: int) -> None:
    expected = btc["close"].rolling(n).mean().to_numpy()
    assert_allclose(sma(btc["close"], n), expected, rtol=1e-12)


@pytest.mark.parametrize("n", [1, 12, 200])
def test_ema_btc_matches_pandas_seeded_ewm(btc: pd.DataFrame, n: int) -> None:
    expected = ref_ema(btc["close"], n)
    assert_allclose(ema(btc["close"], n), expected, rtol=1e-12)


@pytest.mark.parametrize("n", [2, 9, 50])
def test_wma_btc_matches_pandas_rolling_apply(btc: pd.DataFrame, n: int) -> None:
    weights = np.arange(1.0, n + 1.0)
    expected = btc["close"].rolling(n).apply(lambda w: w @ weights / weights.sum(), raw=True)
    assert_allclose(wma(btc["close"], n), expected.to_numpy(), rtol=1e-12)


@pytest.mark.parametrize("n", [2, 14, 50])
def test_rsi_btc_matches_pandas_wilder_reference(btc: pd.DataFrame, n: int) -> None:
    out = rsi(btc["close"], n)
    assert np.isnan(out[:n]).all()
    assert_allclose(out, ref_rsi(btc["close"], n), rtol=1e-10, atol=1e-9)


def test_macd_btc_matches_pandas_ema_formulas(btc: pd.DataFrame) -> None:
    # Arrange: pandas-ta style, each EMA seeded independently; signal = EMA of the MACD line.
    close = btc["close"]
    line_ref = ref_ema(close, 12) - ref_ema(close, 26)
    signal_ref = ref_ema(pd.Series(line_ref), 9)
    # Act
    line, signal, hist = macd(close, 12, 26, 9)
    # Assert
    assert np.isnan(line[:25]).all()
    assert not np.isnan(line[25])
    assert np.isnan(signal[:33]).all()
    assert not np.isnan(signal[33])
    assert_allclose(line, line_ref, rtol=1e-9, atol=1e-9)
    assert_allclose(signal, signal_ref, rtol=1e-9, atol=1e-9)
    assert_allclose(hist, line_ref - signal_ref, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(("k", "d", "smooth_k"), [(14, 3, 1), (14, 3, 3), (5, 1, 2)])
def test_stochastic_btc_matches_pandas_rolling_extremes(
    btc: pd.DataFrame, k: int, d: int, smooth_k: int
) -> None:
    k_ref, d_ref = ref_stochastic(btc, k, d, smooth_k)
    pk, pd_ = stochastic(btc["high"], btc["low"], btc["close"], k, d, smooth_k)
    assert_allclose(pk, k_ref.to_numpy(), rtol=1e-10, atol=1e-9)
    assert_allclose(pd_, d_ref.to_numpy(), rtol=1e-10, atol=1e-9)


def test_true_range_btc_matches_pandas_max_of_three(btc: pd.DataFrame) -> None:
    expected = ref_true_range(btc).to_numpy()
    assert_array_equal(true_range(btc["high"], btc["low"], btc["close"]), expected)


@pytest.mark.parametrize("n", [1, 14, 100])
def test_atr_btc_matches_pandas_wilder_reference(btc: pd.DataFrame, n: int) -> None:
    expected = ref_seeded_ewm(ref_true_range(btc), n, 1.0 / n)
    assert_allclose(atr(btc["high"], btc["low"], btc["close"], n), expected, rtol=1e-10)


@pytest.mark.parametrize(("n", "k", "ddof"), [(20, 2.0, 0), (50, 1.5, 1), (2, 2.0, 0)])
def test_bollinger_btc_matches_pandas_rolling_std(
    btc: pd.DataFrame, n: int, k: float, ddof: int
) -> None:
    close = btc["close"]
    mid_ref = close.rolling(n).mean().to_numpy()
    sd_ref = close.rolling(n).std(ddof=ddof).to_numpy()
    mid, upper, lower = bollinger(close, n, k, ddof)
    assert_allclose(mid, mid_ref, rtol=1e-12)
    # pandas' own rolling std is off by up to ~2e-5 absolute on these prices (1.7e-5 instead
    # of 0 for two equal closes near 60 000, i.e. ~3e-10 of the price), so the tolerance is
    # loose; the two-pass test below is tight.
    assert_allclose((upper - mid) / k, sd_ref, rtol=1e-6, atol=1e-4)
    assert_allclose((mid - lower) / k, sd_ref, rtol=1e-6, atol=1e-4)


@pytest.mark.parametrize(("n", "ddof"), [(2, 0), (16, 1), (17, 0), (20, 0), (500, 1)])
def test_bollinger_btc_matches_two_pass_window_std(btc: pd.DataFrame, n: int, ddof: int) -> None:
    # Arrange: exact two-pass mean and std of every window.
    close = btc["close"].to_numpy()
    windows = np.lib.stride_tricks.sliding_window_view(close, n)
    mean_ref = windows.mean(axis=1)
    sd_ref = windows.std(axis=1, ddof=ddof)
    # Act
    mid, upper, _ = bollinger(close, n, 1.0, ddof)
    # Assert
    assert_allclose(mid[n - 1 :], mean_ref, rtol=1e-14)
    assert_allclose(upper[n - 1 :] - mid[n - 1 :], sd_ref, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("n", [2, 20, 500])
def test_rolling_zscore_btc_matches_pandas_rolling(btc: pd.DataFrame, n: int) -> None:
    x = btc["close"]
    mean = x.rolling(n).mean()
    sd = x.rolling(n).std(ddof=0)
    expected = ((x - mean) / sd).where(sd != 0.0, 0.0).where(sd.notna()).to_numpy()
    # Loose for the same reason as the Bollinger test (pandas' rolling std is the noisy side).
    assert_allclose(rolling_zscore(x, n), expected, rtol=1e-5, atol=1e-5)


def test_vwap_cumulative_btc_matches_pandas_cumsum(btc: pd.DataFrame) -> None:
    pv, v = typical_pv(btc)
    expected = (pv.cumsum() / v.cumsum()).to_numpy()
    out = vwap(btc["high"], btc["low"], btc["close"], btc["volume"])
    assert_allclose(out, expected, rtol=1e-10)


@pytest.mark.parametrize("window", [1, 24, 168])
def test_vwap_rolling_btc_matches_pandas_rolling_sums(btc: pd.DataFrame, window: int) -> None:
    pv, v = typical_pv(btc)
    num = pv.rolling(window).sum()
    den = v.rolling(window).sum()
    expected = (num / den).where(den != 0.0).to_numpy()
    out = vwap(btc["high"], btc["low"], btc["close"], btc["volume"], window=window)
    assert_allclose(out, expected, rtol=1e-9)


@pytest.mark.parametrize(("period", "freq"), [("1d", "D"), ("4h", "4h")])
def test_session_vwap_btc_matches_pandas_groupby_cumsum(
    btc: pd.DataFrame, period: str, freq: str
) -> None:
    pv, v = typical_pv(btc)
    session = pd.to_datetime(btc["ts_ns"], utc=True).dt.floor(freq)
    expected = (pv.groupby(session).cumsum() / v.groupby(session).cumsum()).to_numpy()
    out = session_vwap(btc["high"], btc["low"], btc["close"], btc["volume"], btc["ts_ns"], period)
    assert_allclose(out, expected, rtol=1e-10)


# --------------------------------------------------------------------------- lookahead


def _all_outputs(df: pd.DataFrame) -> list[np.ndarray]:
    h, lo, c, v = (df[col].to_numpy() for col in ("high", "low", "close", "volume"))
    return [
        sma(c, 20),
        ema(c, 20),
        wma(c, 20),
        rsi(c, 14),
        *macd(c),
        *stochastic(h, lo, c, 14, 3, 3),
        true_range(h, lo, c),
        atr(h, lo, c, 14),
        *bollinger(c, 20),
        rolling_zscore(c, 20),
        vwap(h, lo, c, v),
        vwap(h, lo, c, v, window=24),
        session_vwap(h, lo, c, v, df["ts_ns"].to_numpy()),
    ]


@pytest.mark.parametrize("cut", [5, 300, 10_001])
def test_all_indicators_appending_future_bars_returns_identical_past(
    btc: pd.DataFrame, cut: int
) -> None:
    # Arrange
    past = btc.iloc[:cut]
    # Act
    full = _all_outputs(btc)
    prefix = _all_outputs(past)
    # Assert: bit-for-bit equal on the common part.
    for whole, part in zip(full, prefix, strict=True):
        assert_array_equal(whole[:cut], part)


# --------------------------------------------------------------------------- vs the ta package


def test_sma_btc_matches_ta_package(btc: pd.DataFrame) -> None:
    import ta

    expected = ta.trend.SMAIndicator(btc["close"], window=30).sma_indicator().to_numpy()
    assert_allclose(sma(btc["close"], 30), expected, rtol=1e-12)


def test_ema_btc_matches_ta_package_after_burn_in(btc: pd.DataFrame) -> None:
    import ta

    expected = ta.trend.EMAIndicator(btc["close"], window=20).ema_indicator().to_numpy()
    out = ema(btc["close"], 20)
    assert_allclose(out[_BURN_IN:], expected[_BURN_IN:], rtol=1e-12)


def test_wma_btc_matches_ta_package(btc: pd.DataFrame) -> None:
    import ta

    expected = ta.trend.WMAIndicator(btc["close"], window=9).wma().to_numpy()
    assert_allclose(wma(btc["close"], 9), expected, rtol=1e-12)


def test_rsi_btc_matches_ta_package_after_burn_in(btc: pd.DataFrame) -> None:
    import ta

    expected = ta.momentum.RSIIndicator(btc["close"], window=14).rsi().to_numpy()
    out = rsi(btc["close"], 14)
    assert_allclose(out[_BURN_IN:], expected[_BURN_IN:], rtol=1e-9, atol=1e-9)


def test_macd_btc_matches_ta_package_after_burn_in(btc: pd.DataFrame) -> None:
    import ta

    peer = ta.trend.MACD(btc["close"], window_slow=26, window_fast=12, window_sign=9)
    line, signal, hist = macd(btc["close"], 12, 26, 9)
    tail = slice(_BURN_IN, None)
    assert_allclose(line[tail], peer.macd().to_numpy()[tail], rtol=1e-9, atol=1e-8)
    assert_allclose(signal[tail], peer.macd_signal().to_numpy()[tail], rtol=1e-9, atol=1e-8)
    assert_allclose(hist[tail], peer.macd_diff().to_numpy()[tail], rtol=1e-9, atol=1e-8)


def test_stochastic_btc_matches_ta_package(btc: pd.DataFrame) -> None:
    import ta

    peer = ta.momentum.StochasticOscillator(
        btc["high"], btc["low"], btc["close"], window=14, smooth_window=3
    )
    pk, pd_ = stochastic(btc["high"], btc["low"], btc["close"], k=14, d=3)
    assert_allclose(pk, peer.stoch().to_numpy(), rtol=1e-10, atol=1e-9)
    assert_allclose(pd_, peer.stoch_signal().to_numpy(), rtol=1e-10, atol=1e-9)


def test_atr_btc_matches_ta_package(btc: pd.DataFrame) -> None:
    import ta

    n = 14
    peer = ta.volatility.AverageTrueRange(btc["high"], btc["low"], btc["close"], window=n)
    expected = peer.average_true_range().to_numpy()  # zeros, not NaN, during warm-up
    out = atr(btc["high"], btc["low"], btc["close"], n)
    assert np.isnan(out[: n - 1]).all()
    assert_allclose(out[n - 1 :], expected[n - 1 :], rtol=1e-10)


def test_bollinger_btc_matches_ta_package(btc: pd.DataFrame) -> None:
    import ta

    peer = ta.volatility.BollingerBands(btc["close"], window=20, window_dev=2)
    mid, upper, lower = bollinger(btc["close"], 20, 2.0)
    assert_allclose(mid, peer.bollinger_mavg().to_numpy(), rtol=1e-12)
    assert_allclose(upper, peer.bollinger_hband().to_numpy(), rtol=1e-9)
    assert_allclose(lower, peer.bollinger_lband().to_numpy(), rtol=1e-9)


def test_vwap_rolling_btc_matches_ta_package(btc: pd.DataFrame) -> None:
    import ta

    peer = ta.volume.VolumeWeightedAveragePrice(
        btc["high"], btc["low"], btc["close"], btc["volume"], window=14
    )
    out = vwap(btc["high"], btc["low"], btc["close"], btc["volume"], window=14)
    assert_allclose(out, peer.volume_weighted_average_price().to_numpy(), rtol=1e-9)
