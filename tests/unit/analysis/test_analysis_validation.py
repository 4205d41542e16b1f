"""Statistical validation: t-test, bootstrap Sharpe interval, PSR/DSR, Monte Carlo, verdict."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from tradeloop.analysis._stats import norm_cdf, norm_ppf, t_sf
from tradeloop.analysis.validation import (
    ValidationConfig,
    ValidationReport,
    bootstrap_sharpe_ci,
    deflated_sharpe,
    expected_max_sharpe,
    monte_carlo_trades,
    probabilistic_sharpe,
    t_test_returns,
    validate,
)
from tradeloop.core.errors import ConfigError

HOURLY = 8_766.0  # 1h bars per 365.25-day year


def run_validation(
    trade_returns: np.ndarray, bar_returns: np.ndarray, seed: int = 42, **config: object
) -> ValidationReport:
    """Validate a synthetic run whose headline Sharpe and expectancy come from its returns."""
    sharpe = float(bar_returns.mean() / bar_returns.std(ddof=1) * math.sqrt(HOURLY))
    return validate(
        bar_returns,
        HOURLY,
        trade_returns,
        trade_returns,
        sharpe=sharpe,
        expectancy=float(trade_returns.mean() * 10_000) if trade_returns.size else math.nan,
        initial_equity=10_000.0,
        config=ValidationConfig(seed=seed, **config),  # type: ignore[arg-type]
    )


# --------------------------------------------------------------------------- distributions


@pytest.mark.parametrize("df", [1, 2, 5, 29, 300, 20_000])
def test_stats_t_sf_matches_scipy(df: int) -> None:
    # Arrange
    ts = np.linspace(-6, 6, 49)
    # Act
    ours = [t_sf(float(t), df) for t in ts]
    # Assert
    assert ours == pytest.approx(stats.t.sf(ts, df), rel=1e-9, abs=1e-15)


def test_stats_normal_cdf_and_ppf_match_scipy() -> None:
    # Arrange
    xs = np.linspace(-5, 5, 21)
    ps = np.linspace(0.001, 0.999, 25)
    # Act / Assert
    assert [norm_cdf(float(x)) for x in xs] == pytest.approx(stats.norm.cdf(xs), rel=1e-12)
    assert [norm_ppf(float(p)) for p in ps] == pytest.approx(stats.norm.ppf(ps), rel=1e-9)
    assert norm_ppf(0.0) == -math.inf
    assert norm_ppf(1.0) == math.inf


# --------------------------------------------------------------------------- t-test


def test_validation_t_test_matches_scipy_one_sided() -> None:
    # Arrange
    r = np.random.default_rng(7).normal(0.002, 0.02, 150)
    # Act
    ours = t_test_returns(r)
    theirs = stats.ttest_1samp(r, 0.0, alternative="greater")
    # Assert
    assert ours.t_stat == pytest.approx(theirs.statistic, rel=1e-12)
    assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-9)
    assert ours.n == 150


def test_validation_t_test_by_hand() -> None:
    # Arrange: mean 0.02, std (ddof=1) 0.01, n 3 -> t = 0.02 / (0.01 / sqrt(3)) = 3.4641
    # Act
    r = t_test_returns(np.array([0.01, 0.02, 0.03]))
    # Assert
    assert r.t_stat == pytest.approx(2 * math.sqrt(3))
    assert r.p_value == pytest.approx(stats.t.sf(2 * math.sqrt(3), 2))


def test_validation_t_test_degenerate_inputs() -> None:
    # Arrange / Act / Assert
    assert math.isnan(t_test_returns(np.array([0.01])).p_value)
    assert math.isnan(t_test_returns(np.array([])).p_value)
    assert t_test_returns(np.array([0.01, 0.01])).p_value == 0.0
    assert t_test_returns(np.array([-0.01, -0.01])).p_value == 1.0


def test_validation_zero_mean_random_trades_fail_the_p_value_rule_in_most_seeds() -> None:
    # Arrange: 100 seeds of 200 zero-mean trades; one-sided alpha 5% -> ~5 pass by chance
    failed = 0
    for seed in range(100):
        rng = np.random.default_rng(seed)
        trades = rng.normal(0.0, 0.02, 200)
        bars = rng.normal(0.0, 0.005, 2_000)
        # Act
        report = run_validation(trades, bars, seed=seed)
        rule = next(r for r in report.verdict.rules if r.name == "p_value")
        failed += not rule.passed
    # Assert
    assert failed >= 85


def test_validation_strong_positive_edge_passes_every_rule() -> None:
    # Arrange: trades with mean +1% and sd 2%; bars with a Sharpe of ~3 a year
    rng = np.random.default_rng(3)
    trades = rng.normal(0.01, 0.02, 300)
    bars = rng.normal(0.0004, 0.012, 20_000)
    # Act
    report = run_validation(trades, bars)
    # Assert
    assert report.verdict.passed
    assert [r.passed for r in report.verdict.rules] == [True, True, True]
    assert report.verdict.summary.startswith("PASSED (3 of 3")


def test_validation_verdict_names_each_rule_with_value_and_threshold() -> None:
    # Arrange: losing trades
    rng = np.random.default_rng(5)
    trades = rng.normal(-0.01, 0.02, 100)
    bars = rng.normal(-0.0002, 0.01, 5_000)
    # Act
    report = run_validation(trades, bars, min_sharpe=2.0, alpha=0.01)
    rules = {r.name: r for r in report.verdict.rules}
    # Assert
    assert set(rules) == {"p_value", "sharpe", "expectancy"}
    assert rules["p_value"].threshold == 0.01
    assert rules["sharpe"].threshold == 2.0
    assert rules["expectancy"].threshold == 0.0
    assert not any(r.passed for r in rules.values())
    assert not report.verdict.passed


def test_validation_no_trades_fails_trade_rules() -> None:
    # Arrange / Act
    report = run_validation(np.array([]), np.random.default_rng(1).normal(0, 0.01, 500))
    rules = {r.name: r for r in report.verdict.rules}
    # Assert
    assert not rules["p_value"].passed
    assert not rules["expectancy"].passed
    assert report.monte_carlo.sims == 0


# --------------------------------------------------------------------------- Sharpe


def test_validation_bootstrap_interval_is_deterministic_and_brackets_the_estimate() -> None:
    # Arrange
    r = np.random.default_rng(11).normal(0.0003, 0.01, 5_000)
    # Act
    a = bootstrap_sharpe_ci(r, HOURLY, seed=42)
    b = bootstrap_sharpe_ci(r, HOURLY, seed=42)
    c = bootstrap_sharpe_ci(r, HOURLY, seed=43)
    # Assert
    assert a == b
    assert a != c
    assert a.low < a.sharpe < a.high
    assert a.sharpe == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(HOURLY))
    assert a.block_length == math.ceil(5_000 ** (1 / 3))  # 18 bars


@pytest.mark.parametrize("n", [5_000, 5_001, 4_999, 1_000_003])
def test_validation_bootstrap_equals_the_resample_sums_by_hand(n: int) -> None:
    # Arrange: the textbook resample (gather every drawn block's sums and sizes), the same
    # draws; n not a multiple of the block length leaves a shorter last block
    r = np.random.default_rng(n).normal(0.0002, 0.01, n)
    length = max(math.ceil(n ** (1 / 3)), math.ceil(n / 2_000))
    starts = np.arange(0, n, length)
    mean = r.mean()
    s1 = np.add.reduceat(r - mean, starts)
    s2 = np.add.reduceat((r - mean) ** 2, starts)
    sizes = np.diff(np.append(starts, n)).astype(np.float64)
    idx = np.random.default_rng(42).integers(0, starts.size, size=(1000, starts.size))
    big_n = sizes[idx].sum(axis=1)
    m = s1[idx].sum(axis=1) / big_n
    var = (s2[idx].sum(axis=1) - big_n * m * m) / (big_n - 1.0)
    sharpes = (m + mean) / np.sqrt(var) * math.sqrt(HOURLY)
    tail = (1 - 0.95) / 2 * 100  # the 95% interval's tails, as a float (2.5000000000000022)
    low, high = np.percentile(sharpes, [tail, 100 - tail])
    # Act
    got = bootstrap_sharpe_ci(r, HOURLY, seed=42)
    # Assert: the same numbers, to the last bit
    assert got.block_length == length
    assert (got.low, got.high) == (low, high)


def test_validation_bootstrap_leaves_out_returns_that_are_not_finite() -> None:
    # Arrange: the same returns with NaN and infinities put in (a warm-up bar, a zero equity)
    r = np.random.default_rng(8).normal(0.0002, 0.01, 3_001)
    dirty = np.insert(r, [0, 1, 1_500, 3_001], [math.nan, math.inf, -math.inf, math.nan])
    # Act
    clean_ci = bootstrap_sharpe_ci(r, HOURLY, seed=7)
    dirty_ci = bootstrap_sharpe_ci(dirty, HOURLY, seed=7)
    # Assert: the interval of the finite returns alone, to the last bit, the input untouched
    assert dirty_ci == clean_ci
    assert math.isfinite(dirty_ci.low)
    assert math.isfinite(dirty_ci.high)
    assert np.count_nonzero(~np.isfinite(dirty)) == 4
    # and every other statistic that drops them: the same as on the finite returns alone
    assert t_test_returns(dirty) == t_test_returns(r)
    assert deflated_sharpe(dirty, 5) == deflated_sharpe(r, 5)
    assert probabilistic_sharpe(dirty) == probabilistic_sharpe(r)
    dirty_mc = monte_carlo_trades(dirty, 10_000.0, sims=200, seed=3)
    clean_mc = monte_carlo_trades(r, 10_000.0, sims=200, seed=3)
    assert (dirty_mc.trades, dirty_mc.max_drawdown, dirty_mc.final_equity) == (
        clean_mc.trades,
        clean_mc.max_drawdown,
        clean_mc.final_equity,
    )
    assert dirty_mc.trades == r.size


def test_validation_bootstrap_interval_shrinks_with_more_data() -> None:
    # Arrange
    rng = np.random.default_rng(2)
    short, long = rng.normal(0.0003, 0.01, 1_000), rng.normal(0.0003, 0.01, 100_000)
    # Act
    a, b = bootstrap_sharpe_ci(short, HOURLY), bootstrap_sharpe_ci(long, HOURLY)
    # Assert
    assert (b.high - b.low) < (a.high - a.low) / 5
    assert b.block_length == 50  # 100_000 / 2_000 blocks


def test_validation_psr_by_hand_for_normal_returns() -> None:
    # Arrange: PSR = Phi(SR sqrt(n-1) / sqrt(1 - g3 SR + (g4-1)/4 SR^2))
    r = np.random.default_rng(4).normal(0.001, 0.01, 400)
    sr = r.mean() / r.std(ddof=1)
    g3 = stats.skew(r)
    g4 = stats.kurtosis(r, fisher=False)
    expected = stats.norm.cdf(sr * math.sqrt(399) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2))
    # Act / Assert
    assert probabilistic_sharpe(r) == pytest.approx(expected, rel=1e-9)


def test_validation_expected_max_sharpe_by_hand() -> None:
    # Arrange: E[max] = (1 - g) Phi^-1(1 - 1/N) + g Phi^-1(1 - 1/(N e)), g = 0.5772...
    g = 0.5772156649015329
    n = 50
    expected = (1 - g) * stats.norm.ppf(1 - 1 / n) + g * stats.norm.ppf(1 - 1 / (n * math.e))
    # Act / Assert
    assert expected_max_sharpe(n, 1.0) == pytest.approx(expected, rel=1e-9)
    assert expected_max_sharpe(1, 1.0) == 0.0


def test_validation_deflated_sharpe_falls_as_trials_grow() -> None:
    # Arrange
    r = np.random.default_rng(9).normal(0.0004, 0.01, 5_000)
    # Act
    dsr = [deflated_sharpe(r, n).dsr for n in (1, 10, 100, 1_000)]
    # Assert
    assert dsr[0] == pytest.approx(probabilistic_sharpe(r))  # one trial: DSR = PSR vs 0
    assert dsr[0] > dsr[1] > dsr[2] > dsr[3]


def test_validation_deflated_sharpe_uses_given_trial_spread() -> None:
    # Arrange
    r = np.random.default_rng(9).normal(0.0004, 0.01, 5_000)
    # Act
    narrow = deflated_sharpe(r, 100, trials_sharpe_std=0.001)
    wide = deflated_sharpe(r, 100, trials_sharpe_std=0.05)
    # Assert
    assert narrow.deflated_benchmark == pytest.approx(expected_max_sharpe(100, 0.001))
    assert narrow.dsr > wide.dsr


# --------------------------------------------------------------------------- Monte Carlo


def test_validation_monte_carlo_is_deterministic_with_a_seed() -> None:
    # Arrange
    r = np.random.default_rng(1).normal(0.002, 0.03, 300)
    # Act
    a = monte_carlo_trades(r, 10_000.0, sims=500, seed=42)
    b = monte_carlo_trades(r, 10_000.0, sims=500, seed=42)
    # Assert
    assert a == b
    assert np.array_equal(a.drawdowns, b.drawdowns)
    assert a.max_drawdown[0] <= a.max_drawdown[1] <= a.max_drawdown[2] <= 0.0
    assert a.final_equity[0] <= a.final_equity[1] <= a.final_equity[2]


def test_validation_monte_carlo_shuffle_keeps_final_equity() -> None:
    # Arrange: compounding is order-independent: 10_000 * 1.1 * 0.8 * 1.05
    r = np.array([0.1, -0.2, 0.05])
    # Act
    mc = monte_carlo_trades(r, 10_000.0, sims=200, method="shuffle", seed=1)
    # Assert
    assert mc.final_equity == pytest.approx((9_240.0, 9_240.0, 9_240.0))
    # worst order -0.2 after +0.1 and +0.05 ... every order has the single loss of 20%
    # from a peak: max drawdown is -20% in every path
    assert mc.max_drawdown == pytest.approx((-0.2, -0.2, -0.2))
    assert mc.prob_loss == 1.0


def test_validation_monte_carlo_drawdown_of_only_losses_by_hand() -> None:
    # Arrange: three -10% trades in any order: 0.9 ** 3 - 1
    # Act
    mc = monte_carlo_trades(np.full(3, -0.1), 100.0, sims=50, seed=0)
    # Assert
    assert mc.max_drawdown == pytest.approx((0.9**3 - 1,) * 3)
    assert mc.final_equity == pytest.approx((72.9,) * 3)


def test_validation_monte_carlo_caps_paths_by_work_budget() -> None:
    # Arrange: single-trade steps: 5_000 trades * 1_000 paths > 1_000_000 steps -> 200 paths
    r = np.random.default_rng(0).normal(0.0, 0.01, 5_000)
    # Act
    mc = monte_carlo_trades(r, 1.0, sims=1_000, block=1, max_steps=1_000_000)
    blocks = monte_carlo_trades(r, 1.0, sims=1_000, max_steps=1_000_000)
    # Assert: blocks of round(5_000 ** (1/3)) = 17 trades make 295 steps per path: no cap
    assert mc.sims == 200
    assert mc.drawdowns.shape == (200,)
    assert blocks.block == 17
    assert blocks.sims == 1_000


def brute_force_path(logs: np.ndarray, block: int, starts: np.ndarray) -> tuple[float, float]:
    """Max drawdown and final log-equity of the path built trade by trade from ``starts``."""
    n = logs.size
    picks = np.concatenate([(s + np.arange(block)) % n for s in starts])[:n]
    path = np.concatenate(([0.0], np.cumsum(logs[picks])))
    peak = np.maximum.accumulate(path)
    return float(np.expm1((path - peak).min())), float(path[-1])


@pytest.mark.parametrize(("n", "block"), [(1, 1), (7, 1), (10, 3), (50, 7), (64, 8), (30, 30)])
def test_validation_monte_carlo_block_paths_match_brute_force(n: int, block: int) -> None:
    # Arrange: the tabulated block summaries must give the exact drawdown of the full path
    from tradeloop.analysis.validation import _block_paths, _block_table

    rng = np.random.default_rng(n * 100 + block)
    logs = np.log1p(rng.normal(0.0, 0.05, n))
    blocks = -(-n // block)
    starts = rng.integers(0, n, size=(40, blocks))
    table = _block_table(logs, block, n - (blocks - 1) * block)
    # Act
    drawdowns, finals = _block_paths(table, starts)
    # Assert
    for row in range(40):
        dd, final = brute_force_path(logs, block, starts[row])
        assert drawdowns[row] == pytest.approx(dd, abs=1e-12)
        assert finals[row] == pytest.approx(final, abs=1e-12)


def test_validation_seed_changes_random_parts_only() -> None:
    # Arrange
    rng = np.random.default_rng(8)
    trades, bars = rng.normal(0.003, 0.02, 200), rng.normal(0.0002, 0.01, 3_000)
    # Act
    a, b = run_validation(trades, bars, seed=1), run_validation(trades, bars, seed=2)
    # Assert
    assert a.t_test == b.t_test
    assert a.significance == b.significance
    assert a.sharpe_ci != b.sharpe_ci
    assert a.monte_carlo != b.monte_carlo


@pytest.mark.parametrize(
    "bad",
    [{"alpha": 0.0}, {"confidence": 1.0}, {"n_trials": 0}, {"mc_sims": 0}, {"mc_method": "x"}],
)
def test_validation_config_rejects_bad_values(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        ValidationConfig(**bad)  # type: ignore[arg-type]
