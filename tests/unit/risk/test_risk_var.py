"""VaR/CVaR against numpy and scipy computed by hand; Kupiec against its formula; the 99% VaR
breach rate of real price series."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from tradeloop.data.loader import load_ohlcv
from tradeloop.risk.backtest_var import kupiec_pof, rolling_var, var_backtest
from tradeloop.risk.var import (
    historical_cvar,
    historical_var,
    parametric_cvar,
    parametric_var,
    portfolio_pnl,
    var_estimates,
)

RNG = np.random.default_rng(20240101)
SAMPLE = RNG.standard_t(4, size=2_000) * 0.01 + 0.0002


@pytest.mark.parametrize("level", [0.95, 0.99])
def test_historical_var_and_cvar_match_numpy_by_hand(level: float) -> None:
    # Arrange: the quantile by numpy, the tail mean by a boolean mask
    q = np.quantile(SAMPLE, 1 - level)
    expected_var = -q
    expected_cvar = -SAMPLE[q >= SAMPLE].mean()
    # Act / Assert
    assert historical_var(SAMPLE, level) == pytest.approx(expected_var, rel=1e-15)
    assert historical_cvar(SAMPLE, level) == pytest.approx(expected_cvar, rel=1e-15)


def test_historical_var_five_values_by_hand() -> None:
    # Arrange: sorted [-3, -1, 0, 1, 2]; 25% quantile at position 4 * 0.25 = 1 -> -1
    x = [2.0, -1.0, 0.0, -3.0, 1.0]
    # Act / Assert
    assert historical_var(x, 0.75) == 1.0
    assert historical_cvar(x, 0.75) == 2.0  # mean of -3 and -1


@pytest.mark.parametrize("level", [0.95, 0.99])
def test_parametric_var_and_cvar_match_scipy(level: float) -> None:
    # Arrange
    mu, sigma = float(SAMPLE.mean()), float(SAMPLE.std(ddof=1))
    z = stats.norm.ppf(level)
    expected_var = -stats.norm.ppf(1 - level, loc=mu, scale=sigma)
    expected_cvar = sigma * stats.norm.pdf(z) / (1 - level) - mu
    # Act / Assert
    assert parametric_var(mu, sigma, level) == pytest.approx(expected_var, rel=1e-12)
    assert parametric_cvar(mu, sigma, level) == pytest.approx(expected_cvar, rel=1e-12)
    # expected shortfall of a normal is also its tail integral
    tail = stats.norm.expect(lambda x: x, loc=mu, scale=sigma, ub=-expected_var) / (1 - level)
    assert parametric_cvar(mu, sigma, level) == pytest.approx(-tail, rel=1e-6)


def test_portfolio_pnl_and_var_of_two_positions_by_hand() -> None:
    # Arrange: long 1,000 of A, short 500 of B; a missing B return counts as 0
    r = np.array([[0.01, 0.02], [-0.02, np.nan], [0.03, -0.01]])
    # Act
    pnl = portfolio_pnl(r, np.array([1_000.0, -500.0]))
    # Assert: 10 - 10, -20 - 0, 30 + 5
    assert pnl.tolist() == pytest.approx([0.0, -20.0, 35.0])


def test_portfolio_pnl_drops_rows_without_any_bar() -> None:
    # Arrange
    r = np.array([[np.nan, np.nan], [0.01, 0.02]])
    # Act / Assert
    assert portfolio_pnl(r, np.array([100.0, 100.0])).tolist() == pytest.approx([3.0])


def test_var_estimates_scale_every_figure() -> None:
    # Arrange
    one, four = var_estimates(SAMPLE, (0.99,)), var_estimates(SAMPLE, (0.99,), scale=2.0)
    # Act / Assert
    assert four[0].historical_var == pytest.approx(2 * one[0].historical_var)
    assert four[0].parametric_cvar == pytest.approx(2 * one[0].parametric_cvar)


# --------------------------------------------------------------------------- Kupiec


@pytest.mark.parametrize(("x", "t"), [(0, 500), (5, 500), (12, 1000), (40, 1000), (1000, 1000)])
def test_kupiec_statistic_matches_its_formula_and_scipy_chi2(x: int, t: int) -> None:
    # Arrange: LR = -2 ln[(1-p)^(T-x) p^x] + 2 ln[(1-x/T)^(T-x) (x/T)^x], 0 ln 0 = 0
    p = 0.01

    def xlogy(a: float, b: float) -> float:
        return 0.0 if a == 0 else a * math.log(b)

    lr = -2 * (xlogy(t - x, 1 - p) + xlogy(x, p)) + 2 * (xlogy(t - x, 1 - x / t) + xlogy(x, x / t))
    # Act
    result = kupiec_pof(x, t, 0.99)
    # Assert
    assert result.lr == pytest.approx(lr, rel=1e-12, abs=1e-12)
    assert result.p_value == pytest.approx(stats.chi2.sf(lr, 1), rel=1e-9, abs=1e-300)
    assert result.breach_rate == x / t


def test_kupiec_calibrated_count_does_not_reject() -> None:
    # Arrange / Act
    result = kupiec_pof(10, 1000, 0.99)
    # Assert
    assert result.lr == pytest.approx(0.0, abs=1e-12)
    assert not result.rejects()
    assert kupiec_pof(30, 1000, 0.99).rejects()


# --------------------------------------------------------------------------- rolling VaR


def test_rolling_var_uses_only_the_window_before_each_bar() -> None:
    # Arrange
    window = 50
    x = SAMPLE[:300]
    # Act
    hist = rolling_var(x, 0.99, window, "historical")
    param = rolling_var(x, 0.99, window, "parametric")
    # Assert: element t from x[t - window : t], by hand
    assert np.isnan(hist[:window]).all()
    for t in (window, 123, 299):
        past = x[t - window : t]
        assert hist[t] == pytest.approx(-np.quantile(past, 0.01), rel=1e-13)
        z = stats.norm.ppf(0.99)
        assert param[t] == pytest.approx(z * past.std(ddof=1) - past.mean(), rel=1e-12)


def test_rolling_var_appending_data_does_not_change_past_forecasts() -> None:
    # Arrange / Act
    short = rolling_var(SAMPLE[:400], 0.99, 100)
    long = rolling_var(SAMPLE, 0.99, 100)
    # Assert
    np.testing.assert_array_equal(short[100:], long[100:400])


def test_var_backtest_counts_breaches_below_minus_var() -> None:
    # Arrange
    window = 250
    # Act
    result = var_backtest(SAMPLE, 0.99, window)
    # Assert
    var = rolling_var(SAMPLE, 0.99, window)
    expected = int((SAMPLE[window:] < -var[window:]).sum())
    assert result.kupiec.breaches == expected
    assert result.kupiec.observations == SAMPLE.size - window
    assert (
        result.breach_index.tolist()
        == (np.flatnonzero(SAMPLE[window:] < -var[window:]) + window).tolist()
    )


# --------------------------------------------------------------------------- real series


@pytest.mark.parametrize(
    ("path", "window"),
    [
        ("crypto_1h/binance_spot_2017_2024/BTC_USDT-1h.feather", 500),
        ("equities_daily/pandas_ta/SPY_D.csv", 500),
    ],
)
def test_var_backtest_on_real_series_reports_99pct_breach_rate(
    shared_data: Path, path: str, window: int, record_property: pytest.RecordProperty
) -> None:
    # Arrange
    close = load_ohlcv(shared_data / path).bars.close
    returns = close[1:] / close[:-1] - 1.0
    # Act
    hist = var_backtest(returns, 0.99, window, "historical")
    param = var_backtest(returns, 0.99, window, "parametric")
    # Assert: the report is complete and plausible; fat tails make the normal model breach
    # more often than the historical one
    for name, result in (("historical", hist), ("parametric", param)):
        k = result.kupiec
        record_property(f"{Path(path).stem}_{name}_breach_rate", k.breach_rate)
        record_property(f"{Path(path).stem}_{name}_kupiec_p", k.p_value)
        assert k.observations == returns.size - window
        assert 0.002 < k.breach_rate < 0.05
        assert k.p_value == pytest.approx(stats.chi2.sf(k.lr, 1), rel=1e-9, abs=1e-300)
    assert param.kupiec.breach_rate > hist.kupiec.breach_rate
