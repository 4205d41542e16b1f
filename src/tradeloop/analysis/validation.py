"""Statistical validation of a run: is the result more than luck?

* **t-test**: one-sided Student t-test of the per-trade returns (net P&L / entry notional)
  against a zero mean; the p-value is P(mean this high | true mean 0).
* **Bootstrap confidence interval of the Sharpe ratio**: the annualized per-bar Sharpe of
  :mod:`tradeloop.analysis.metrics`, resampled with a non-overlapping block bootstrap (blocks
  of ``max(n ** (1/3), n / 2000)`` bars, so held positions' autocorrelation is kept and the
  cost is independent of the bar count).
* **Probabilistic and deflated Sharpe ratio** (Bailey & López de Prado, 2012 and 2014) on the
  per-bar returns: PSR = P(true Sharpe > benchmark) given the sample's length, skewness and
  kurtosis; the deflated Sharpe ratio is the PSR against the Sharpe the best of ``n_trials``
  unskilled strategies would show, so it falls as more trials were tried.
* **Monte Carlo** over the closed trades' returns on the equity at their entry: ``bootstrap``
  (default) rebuilds the trade sequence from randomly chosen runs of ``mc_block`` consecutive
  trades (a circular block bootstrap; ``mc_block=1`` redraws single trades), giving
  distributions of the final equity and of the max drawdown; ``shuffle`` only reorders the
  single trades (the final equity is then the same in every path, the drawdown is not).
  Percentiles are 5/50/95. Blocks keep streaks of wins and losses together, and they make the
  simulation cheap: each block's sum, lowest and highest running sum and internal drawdown are
  tabulated once, so a path costs one step per block and its max drawdown is still exact.
* **Verdict**: rules ``p_value < alpha``, ``sharpe > min_sharpe`` and ``expectancy > 0``, each
  with its value, threshold and whether it passed.

Everything is deterministic for a given ``seed``; bootstrap and Monte Carlo draw from
independent streams spawned from it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from tradeloop.analysis._stats import norm_cdf, norm_ppf, t_sf
from tradeloop.core.errors import ConfigError

__all__ = [
    "MonteCarloResult",
    "Rule",
    "SharpeInterval",
    "SharpeSignificance",
    "TTestResult",
    "ValidationConfig",
    "ValidationReport",
    "Verdict",
    "bootstrap_sharpe_ci",
    "deflated_sharpe",
    "expected_max_sharpe",
    "monte_carlo_trades",
    "probabilistic_sharpe",
    "t_test_returns",
    "validate",
]

_EULER_GAMMA = 0.5772156649015329
_MAX_BLOCKS = 2000


@dataclass(frozen=True, slots=True)
class ValidationConfig:
    """How a run is validated.

    Attributes
    ----------
    seed
        Seed of every random draw (bootstrap, Monte Carlo).
    alpha
        The p-value rule passes when the t-test's p-value is below it.
    min_sharpe
        The Sharpe rule passes when the annualized Sharpe is above it.
    n_trials
        Strategies or parameter sets tried before this one, for the deflated Sharpe ratio.
    trials_sharpe_std
        Standard deviation of the annualized Sharpe across those trials, when known; None
        estimates it from this run's Sharpe estimator variance.
    bootstrap_samples
        Bootstrap resamples for the Sharpe interval.
    confidence
        Level of the Sharpe interval.
    mc_sims
        Monte Carlo paths.
    mc_method
        ``bootstrap`` (blocks of trades redrawn with replacement) or ``shuffle`` (single
        trades reordered).
    mc_block
        Trades per bootstrap block; None picks ``round(trades ** (1/3))`` (27 for 20,000
        trades), 1 redraws single trades.
    mc_max_steps
        Cap on ``paths * steps per path`` (blocks for ``bootstrap``, trades for ``shuffle``):
        above it fewer paths are drawn (at least 100); the result reports the number used.
    """

    seed: int = 42
    alpha: float = 0.05
    min_sharpe: float = 1.0
    n_trials: int = 1
    trials_sharpe_std: float | None = None
    bootstrap_samples: int = 1000
    confidence: float = 0.95
    mc_sims: int = 1000
    mc_method: Literal["bootstrap", "shuffle"] = "bootstrap"
    mc_block: int | None = None
    mc_max_steps: int = 20_000_000

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ConfigError(f"alpha must be in (0, 1), got {self.alpha}")
        if not 0 < self.confidence < 1:
            raise ConfigError(f"confidence must be in (0, 1), got {self.confidence}")
        if self.n_trials < 1:
            raise ConfigError(f"n_trials (--trials) must be >= 1, got {self.n_trials}")
        if self.bootstrap_samples < 1 or self.mc_sims < 1:
            raise ConfigError("bootstrap_samples and mc_sims must be >= 1")
        if self.mc_block is not None and self.mc_block < 1:
            raise ConfigError(f"mc_block must be >= 1, got {self.mc_block}")
        if self.mc_method not in ("bootstrap", "shuffle"):
            raise ConfigError(f"mc_method must be bootstrap or shuffle, got {self.mc_method!r}")


@dataclass(frozen=True, slots=True)
class TTestResult:
    """One-sided t-test of a mean against zero (H1: mean > 0)."""

    n: int
    mean: float
    std: float
    t_stat: float
    p_value: float


@dataclass(frozen=True, slots=True)
class SharpeInterval:
    """Bootstrap confidence interval of the annualized Sharpe ratio."""

    sharpe: float
    low: float
    high: float
    confidence: float
    samples: int
    block_length: int


@dataclass(frozen=True, slots=True)
class SharpeSignificance:
    """Probabilistic and deflated Sharpe ratio of per-bar returns.

    ``sharpe`` is per bar (not annualized); ``kurtosis`` is the raw (non-excess) kurtosis;
    ``deflated_benchmark`` is the expected maximum per-bar Sharpe of ``n_trials`` trials.
    """

    n: int
    sharpe: float
    skew: float
    kurtosis: float
    psr: float
    dsr: float
    deflated_benchmark: float
    n_trials: int


@dataclass(frozen=True, slots=True)
class MonteCarloResult:
    """Distributions of max drawdown and final equity over resampled trade sequences."""

    method: str
    sims: int
    trades: int
    block: int
    max_drawdown: tuple[float, float, float]
    final_equity: tuple[float, float, float]
    prob_loss: float
    drawdowns: np.ndarray = field(repr=False, compare=False)
    finals: np.ndarray = field(repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Return the summary (without the per-path arrays)."""
        return {
            "method": self.method,
            "sims": self.sims,
            "trades": self.trades,
            "block": self.block,
            "max_drawdown_p5_p50_p95": list(self.max_drawdown),
            "final_equity_p5_p50_p95": list(self.final_equity),
            "prob_loss": self.prob_loss,
        }


@dataclass(frozen=True, slots=True)
class Rule:
    """One verdict rule: ``value`` compared with ``threshold``."""

    name: str
    description: str
    value: float
    threshold: float
    passed: bool


@dataclass(frozen=True, slots=True)
class Verdict:
    """All rules and whether every one passed."""

    rules: tuple[Rule, ...]

    @property
    def passed(self) -> bool:
        """True when every rule passed."""
        return all(r.passed for r in self.rules)

    @property
    def summary(self) -> str:
        """One line, e.g. ``FAILED (2 of 3 rules passed: p_value, expectancy)``."""
        ok = [r.name for r in self.rules if r.passed]
        word = "PASSED" if self.passed else "FAILED"
        return f"{word} ({len(ok)} of {len(self.rules)} rules passed" + (
            f": {', '.join(ok)})" if ok else ")"
        )


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """Everything :func:`validate` found."""

    config: ValidationConfig
    t_test: TTestResult
    sharpe_ci: SharpeInterval
    significance: SharpeSignificance
    monte_carlo: MonteCarloResult
    verdict: Verdict

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict."""
        return {
            "config": asdict(self.config),
            "t_test": asdict(self.t_test),
            "sharpe_ci": asdict(self.sharpe_ci),
            "significance": asdict(self.significance),
            "monte_carlo": self.monte_carlo.to_dict(),
            "verdict": {
                "passed": self.verdict.passed,
                "summary": self.verdict.summary,
                "rules": [asdict(r) for r in self.verdict.rules],
            },
        }


# --------------------------------------------------------------------------- tests


def _finite(values: np.ndarray) -> np.ndarray:
    """``values`` as float64 without its NaN and infinite entries (not copied when it has
    none: a run's bar returns are 1M values)."""
    r = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(r)
    return r if finite.all() else r[finite]


def t_test_returns(returns: np.ndarray) -> TTestResult:
    """One-sided t-test of ``returns`` against a zero mean (H1: the mean is positive).

    With fewer than two values the p-value is NaN; with zero spread it is 0 for a positive
    mean and 1 otherwise.

    >>> r = t_test_returns(np.array([0.01, 0.02, 0.03]))
    >>> round(r.t_stat, 4), round(r.p_value, 4)
    (3.4641, 0.0371)
    """
    r = _finite(returns)
    n = int(r.size)
    if n < 2:
        mean = float(r.mean()) if n else math.nan
        return TTestResult(n, mean, math.nan, math.nan, math.nan)
    mean = float(r.mean())
    std = float(r.std(ddof=1))
    if std == 0:
        t_stat = math.inf if mean > 0 else (-math.inf if mean < 0 else 0.0)
        return TTestResult(n, mean, 0.0, t_stat, 0.0 if mean > 0 else 1.0)
    t_stat = mean / (std / math.sqrt(n))
    return TTestResult(n, mean, std, t_stat, t_sf(t_stat, n - 1))


#: values gathered at a time by :func:`bootstrap_sharpe_ci` (rows of drawn blocks)
_GATHER_VALUES = 1 << 17


def _block_length(n: int) -> int:
    return int(max(1, math.ceil(n ** (1.0 / 3.0)), math.ceil(n / _MAX_BLOCKS)))


def bootstrap_sharpe_ci(
    returns: np.ndarray,
    periods_per_year: float,
    *,
    samples: int = 1000,
    confidence: float = 0.95,
    seed: int | np.random.Generator = 42,
    block_length: int | None = None,
) -> SharpeInterval:
    """Return a block-bootstrap percentile interval of the annualized Sharpe of ``returns``.

    Blocks are consecutive, non-overlapping runs of ``block_length`` returns (default
    ``max(n ** (1/3), n / 2000)``; the last block may be shorter); each resample draws as many
    blocks as there are, with replacement.
    """
    r = _finite(returns)
    n = int(r.size)
    scale = math.sqrt(periods_per_year)
    if n < 2:
        return SharpeInterval(math.nan, math.nan, math.nan, confidence, 0, 0)
    std = float(r.std(ddof=1))
    mean = float(r.mean())
    point = mean / std * scale if std > 0 else 0.0
    length = block_length or _block_length(n)
    starts = np.arange(0, n, length)
    centred = r - mean  # sums of centred values keep the variance formula well conditioned
    s1 = np.add.reduceat(centred, starts)
    s2 = np.add.reduceat(np.multiply(centred, centred, out=centred), starts)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    idx = rng.integers(0, starts.size, size=(samples, starts.size))
    # each resample's length: every block holds `length` returns but the last, which may hold
    # fewer (exact integers, as the sum of the drawn blocks' sizes; no gather of them)
    big_n = np.full(samples, float(length * starts.size))
    short = length - (n - int(starts[-1]))
    sum1, sum2 = np.empty(samples), np.empty(samples)
    # the resamples' sums a few rows at a time, gathered into one reused buffer: the same
    # row sums as gathering all at once, without two more arrays the size of ``idx`` (each
    # new one costs its page faults, more than the sums themselves on a long run)
    rows = max(1, _GATHER_VALUES // starts.size)
    buf = np.empty((min(rows, samples), starts.size))
    for lo in range(0, samples, rows):
        part = idx[lo : lo + rows]
        out = buf[: part.shape[0]]
        if short:
            big_n[lo : lo + rows] -= short * np.count_nonzero(part == starts.size - 1, axis=1)
        np.take(s1, part, out=out)
        out.sum(axis=1, out=sum1[lo : lo + rows])
        np.take(s2, part, out=out)
        out.sum(axis=1, out=sum2[lo : lo + rows])
    m = sum1 / big_n
    var = (sum2 - big_n * m * m) / np.maximum(big_n - 1.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpes = np.where(var > 0, (m + mean) / np.sqrt(np.maximum(var, 0.0)), 0.0) * scale
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(sharpes, [tail, 100.0 - tail])
    return SharpeInterval(point, float(low), float(high), confidence, samples, length)


def _moments(r: np.ndarray) -> tuple[float, float, float, float]:
    """Per-period Sharpe (ddof=1), skewness and raw kurtosis (population moments)."""
    n = r.size
    mean = float(r.mean())
    dev = r - mean
    dev2 = dev * dev
    m2 = float(dev2.mean())
    std = math.sqrt(m2 * n / (n - 1))
    sharpe = mean / std if std > 0 else 0.0
    if m2 <= 0:
        return sharpe, 0.0, 3.0, std
    m3 = float(np.dot(dev2, dev)) / n
    m4 = float(np.dot(dev2, dev2)) / n
    return sharpe, m3 / m2**1.5, m4 / (m2 * m2), std


def _psr(sharpe: float, benchmark: float, n: int, skew: float, kurtosis: float) -> float:
    denom = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe * sharpe
    if n < 2:
        return math.nan
    if denom <= 0:
        denom = 1e-12
    return norm_cdf((sharpe - benchmark) * math.sqrt(n - 1) / math.sqrt(denom))


def probabilistic_sharpe(returns: np.ndarray, benchmark: float = 0.0) -> float:
    """Probability that the true per-period Sharpe of ``returns`` exceeds ``benchmark``.

    PSR = Phi((SR - SR*) sqrt(n - 1) / sqrt(1 - skew SR + (kurtosis - 1) / 4 SR^2)), with the
    per-period (not annualized) Sharpe SR.
    """
    r = _finite(returns)
    if r.size < 2:
        return math.nan
    sharpe, skew, kurt, _ = _moments(r)
    return _psr(sharpe, benchmark, int(r.size), skew, kurt)


def expected_max_sharpe(n_trials: int, sharpe_std: float) -> float:
    """Expected maximum Sharpe of ``n_trials`` unskilled trials with spread ``sharpe_std``.

    E[max] ~ std * ((1 - g) Phi^-1(1 - 1/N) + g Phi^-1(1 - 1/(N e))), g = Euler's constant;
    0 for a single trial.

    >>> expected_max_sharpe(1, 0.5)
    0.0
    >>> round(expected_max_sharpe(100, 1.0), 4)
    2.5306
    """
    if n_trials <= 1 or sharpe_std <= 0:
        return 0.0
    return sharpe_std * (
        (1.0 - _EULER_GAMMA) * norm_ppf(1.0 - 1.0 / n_trials)
        + _EULER_GAMMA * norm_ppf(1.0 - 1.0 / (n_trials * math.e))
    )


def deflated_sharpe(
    returns: np.ndarray, n_trials: int, trials_sharpe_std: float | None = None
) -> SharpeSignificance:
    """Return the PSR (against 0) and the deflated Sharpe ratio of per-period ``returns``.

    ``trials_sharpe_std`` is the per-period spread of the trials' Sharpe ratios; None uses the
    standard error of this run's Sharpe estimate,
    sqrt((1 - skew SR + (kurtosis - 1) / 4 SR^2) / (n - 1)).
    """
    r = _finite(returns)
    n = int(r.size)
    if n < 2:
        return SharpeSignificance(
            n, math.nan, math.nan, math.nan, math.nan, math.nan, 0.0, n_trials
        )
    sharpe, skew, kurt, _ = _moments(r)
    if trials_sharpe_std is None:
        var = (1.0 - skew * sharpe + (kurt - 1.0) / 4.0 * sharpe * sharpe) / (n - 1)
        trials_sharpe_std = math.sqrt(max(var, 0.0))
    benchmark = expected_max_sharpe(n_trials, trials_sharpe_std)
    return SharpeSignificance(
        n=n,
        sharpe=sharpe,
        skew=skew,
        kurtosis=kurt,
        psr=_psr(sharpe, 0.0, n, skew, kurt),
        dsr=_psr(sharpe, benchmark, n, skew, kurt),
        deflated_benchmark=benchmark,
        n_trials=n_trials,
    )


@dataclass(frozen=True, slots=True)
class _BlockTable:
    """Per possible block start: the block's log-return sum, its lowest running sum, highest
    running sum (at least 0, the block's start) and internal max drawdown, for full blocks and
    for the shorter last block of a path."""

    total: np.ndarray
    low: np.ndarray
    high: np.ndarray
    drop: np.ndarray
    last_total: np.ndarray
    last_low: np.ndarray
    last_drop: np.ndarray


def _block_table(logs: np.ndarray, block: int, last: int) -> _BlockTable:
    """Tabulate every circular block of ``block`` trades (and its first ``last`` trades)."""
    wrapped = np.concatenate((logs, logs[: block - 1]))  # circular: every trade starts a block
    cum = np.cumsum(np.lib.stride_tricks.sliding_window_view(wrapped, block), axis=1)
    peak = np.maximum(np.maximum.accumulate(cum, axis=1), 0.0)
    drop = peak - cum
    return _BlockTable(
        total=cum[:, -1].copy(),
        low=cum.min(axis=1),
        high=peak[:, -1].copy(),
        drop=drop.max(axis=1),
        last_total=cum[:, last - 1].copy(),
        last_low=cum[:, :last].min(axis=1),
        last_drop=drop[:, :last].max(axis=1),
    )


def _block_paths(table: _BlockTable, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Max drawdown (a fraction <= 0) and final log-equity of paths made of the blocks that
    start at ``starts`` (one row per path; the last column is the shorter last block)."""
    total = table.total[starts]
    total[:, -1] = table.last_total[starts[:, -1]]
    low = table.low[starts]
    low[:, -1] = table.last_low[starts[:, -1]]
    drop = table.drop[starts]
    drop[:, -1] = table.last_drop[starts[:, -1]]
    end = np.cumsum(total, axis=1)
    begin = end - total
    # the highest log-equity before each block: the start (0) or any earlier block's high
    reach = np.maximum.accumulate(begin + table.high[starts], axis=1)
    before = np.empty_like(reach)
    before[:, 0] = 0.0
    np.maximum(reach[:, :-1], 0.0, out=before[:, 1:])
    worst = np.maximum(before - (begin + low), drop).max(axis=1)
    return np.expm1(-worst), end[:, -1]


def _shuffle_paths(
    logs: np.ndarray, rows: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    paths = rng.permuted(np.broadcast_to(logs, (rows, logs.size)), axis=1)
    np.cumsum(paths, axis=1, out=paths)
    peaks = np.maximum(np.maximum.accumulate(paths, axis=1), 0.0)
    return np.expm1((paths - peaks).min(axis=1)), paths[:, -1].copy()


def monte_carlo_trades(
    trade_returns: np.ndarray,
    initial_equity: float,
    *,
    sims: int = 1000,
    method: Literal["bootstrap", "shuffle"] = "bootstrap",
    seed: int | np.random.Generator = 42,
    block: int | None = None,
    max_steps: int | None = None,
    chunk: int = 256,
) -> MonteCarloResult:
    """Simulate equity paths from the trades' returns and return percentile summaries.

    Each path compounds ``initial_equity`` by ``1 + r`` per trade over as many trades as there
    are, in a resampled order (see the module docstring for ``bootstrap`` with ``block`` and
    ``shuffle``); a return at or below -100% ends the path at zero equity. ``max_steps`` caps
    ``sims * steps per path`` (at least 100 paths are kept).
    """
    r = _finite(trade_returns)
    n = int(r.size)
    if n == 0:
        empty = np.zeros(0)
        flat = (initial_equity, initial_equity, initial_equity)
        return MonteCarloResult(method, 0, 0, 0, (0.0, 0.0, 0.0), flat, math.nan, empty, empty)
    length = 1 if method == "shuffle" else min(n, block or max(1, round(n ** (1.0 / 3.0))))
    blocks = -(-n // length)
    if max_steps is not None:
        sims = min(sims, max(100, max_steps // (n if method == "shuffle" else blocks)))
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    logs = np.log1p(np.maximum(r, -1.0 + 1e-12))
    table = _block_table(logs, length, n - (blocks - 1) * length) if method != "shuffle" else None
    drawdowns = np.empty(sims)
    finals = np.empty(sims)
    for lo in range(0, sims, chunk):
        rows = min(chunk, sims - lo)
        if table is None:
            dd, fin = _shuffle_paths(logs, rows, rng)
        else:
            dd, fin = _block_paths(table, rng.integers(0, n, size=(rows, blocks)))
        drawdowns[lo : lo + rows] = dd
        finals[lo : lo + rows] = fin
    finals = initial_equity * np.exp(finals)
    dd_pct = np.percentile(drawdowns, [5.0, 50.0, 95.0])  # drawdowns are <= 0: p5 is deepest
    fe = np.percentile(finals, [5.0, 50.0, 95.0])
    return MonteCarloResult(
        method=method,
        sims=sims,
        trades=n,
        block=length,
        max_drawdown=(float(dd_pct[0]), float(dd_pct[1]), float(dd_pct[2])),
        final_equity=(float(fe[0]), float(fe[1]), float(fe[2])),
        prob_loss=float(np.mean(finals < initial_equity)),
        drawdowns=drawdowns,
        finals=finals,
    )


def validate(
    bar_returns: np.ndarray,
    periods_per_year: float,
    trade_returns: np.ndarray,
    trade_equity_returns: np.ndarray,
    *,
    sharpe: float,
    expectancy: float,
    initial_equity: float,
    config: ValidationConfig | None = None,
) -> ValidationReport:
    """Run every test on a run and give the verdict.

    Parameters
    ----------
    bar_returns
        Simple returns of the equity curve per bar (the first from the starting equity).
    periods_per_year
        Bars per year, as used for the headline Sharpe.
    trade_returns
        Closed trades' net returns on their entry notional, for the t-test.
    trade_equity_returns
        Closed trades' net P&L over the equity at their entry, in exit order, for Monte Carlo.
    sharpe, expectancy
        The run's headline annualized Sharpe and average net P&L per trade (the rules use them).
    initial_equity
        Starting equity of the Monte Carlo paths.
    config
        Thresholds, sample counts and the seed.
    """
    cfg = config or ValidationConfig()
    boot_seed, mc_seed = np.random.SeedSequence(cfg.seed).spawn(2)
    t_test = t_test_returns(trade_returns)
    interval = bootstrap_sharpe_ci(
        bar_returns,
        periods_per_year,
        samples=cfg.bootstrap_samples,
        confidence=cfg.confidence,
        seed=np.random.default_rng(boot_seed),
    )
    spread = (
        None
        if cfg.trials_sharpe_std is None
        else cfg.trials_sharpe_std / math.sqrt(periods_per_year)
    )
    significance = deflated_sharpe(bar_returns, cfg.n_trials, spread)
    monte_carlo = monte_carlo_trades(
        trade_equity_returns,
        initial_equity,
        sims=cfg.mc_sims,
        method=cfg.mc_method,
        seed=np.random.default_rng(mc_seed),
        block=cfg.mc_block,
        max_steps=cfg.mc_max_steps,
    )
    p = t_test.p_value
    rules = (
        Rule(
            "p_value",
            f"t-test of per-trade returns: p < {cfg.alpha:g}",
            p,
            cfg.alpha,
            bool(p < cfg.alpha),
        ),
        Rule(
            "sharpe",
            f"annualized Sharpe > {cfg.min_sharpe:g}",
            sharpe,
            cfg.min_sharpe,
            bool(sharpe > cfg.min_sharpe),
        ),
        Rule(
            "expectancy",
            "expectancy (average net P&L per trade) > 0",
            expectancy,
            0.0,
            bool(expectancy > 0),
        ),
    )
    return ValidationReport(cfg, t_test, interval, significance, monte_carlo, Verdict(rules))
