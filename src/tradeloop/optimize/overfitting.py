"""How much a study's best result is owed to the search: PBO and combinatorial purged CV.

Both read, for every trial, the (count, sum, sum of squares) of its bar returns over
:data:`~tradeloop.optimize.evaluate.FINE_BLOCKS` equal blocks of the data (an N x B x 3 array),
so no equity curve is kept per trial.

* :func:`probability_of_overfitting` — the CSCV estimate of the probability of backtest
  overfitting (Bailey, Borwein, Lopez de Prado and Zhu, 2015): the blocks are merged into
  ``groups`` (even) groups; for every way of picking half of them as in-sample, the trial with
  the best in-sample Sharpe is ranked among all trials on the other half; PBO is the share of
  splits where that rank is at or below the median (logit <= 0).
* :func:`combinatorial_purged_cv` — combinatorial purged cross-validation (Lopez de Prado,
  AFML ch. 12): ``groups`` groups, every choice of ``test_groups`` of them as the test set; the
  trial with the best Sharpe on the training groups (minus ``purge`` blocks on each side of
  every test group, so a trade spanning the boundary cannot leak) is scored on the test groups.

The deflated Sharpe ratio over the number of trials actually run is
:func:`tradeloop.analysis.validation.deflated_sharpe`; :func:`trials_sharpe_std` gives it the
spread of the trials' Sharpe ratios.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from tradeloop.core.errors import ConfigError

__all__ = [
    "CpcvResult",
    "PboResult",
    "combinatorial_purged_cv",
    "probability_of_overfitting",
    "trial_sharpes",
    "trials_sharpe_std",
]


def _sharpe(stats: np.ndarray) -> np.ndarray:
    """Per-period Sharpe (ddof=1) from (count, sum, sumsq) in the last axis; 0 when flat."""
    n, s, q = stats[..., 0], stats[..., 1], stats[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = s / n
        var = (q - n * mean * mean) / (n - 1)
        out = mean / np.sqrt(var)
    result: np.ndarray = np.where((n > 1) & (var > 1e-300), out, 0.0)
    return result


def trial_sharpes(blocks: np.ndarray) -> np.ndarray:
    """The whole-sample per-period Sharpe of every trial (N x B x 3 -> N)."""
    return np.asarray(_sharpe(np.asarray(blocks, dtype=np.float64).sum(axis=1)))


def trials_sharpe_std(blocks: np.ndarray) -> float | None:
    """The spread (ddof=1) of the trials' per-period Sharpe ratios (None for < 2 trials)."""
    sharpes = trial_sharpes(blocks)
    if sharpes.size < 2:
        return None
    return float(np.std(sharpes, ddof=1))


@dataclass(frozen=True, slots=True)
class PboResult:
    """The probability of backtest overfitting and what it was measured on."""

    pbo: float
    splits: int
    groups: int
    trials: int
    logits: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary."""
        return {
            "pbo": self.pbo,
            "splits": self.splits,
            "groups": self.groups,
            "trials": self.trials,
            "median_logit": float(np.median(self.logits)) if self.logits.size else math.nan,
        }


def _merge(blocks: np.ndarray, groups: int) -> np.ndarray:
    _n_trials, n_blocks, _ = blocks.shape
    if groups < 2 or groups > n_blocks:
        raise ConfigError(f"groups must be in [2, {n_blocks}], got {groups}")
    edges = np.linspace(0, n_blocks, groups + 1).astype(int)
    return np.stack([blocks[:, a:b].sum(axis=1) for a, b in itertools.pairwise(edges)], axis=1)


def _avg_rank(values: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Average 1-based rank of each ``x[c]`` within ``values[c]`` (rows: splits)."""
    below = (values < x[:, None]).sum(axis=1)
    equal = (values == x[:, None]).sum(axis=1)
    ranks: np.ndarray = below + (equal + 1) / 2.0
    return ranks


def probability_of_overfitting(blocks: np.ndarray, groups: int = 16) -> PboResult:
    """CSCV probability of backtest overfitting of the trials' block returns (see module doc).

    Raises
    ------
    ConfigError
        For fewer than two trials or an odd/invalid group count.
    """
    blocks = np.asarray(blocks, dtype=np.float64)
    if blocks.ndim != 3 or blocks.shape[0] < 2:
        raise ConfigError("PBO needs at least two trials")
    if groups % 2:
        raise ConfigError(f"PBO needs an even number of groups, got {groups}")
    grouped = _merge(blocks, groups)  # N x S x 3
    combos = np.array(list(itertools.combinations(range(groups), groups // 2)), dtype=int)
    member = np.zeros((len(combos), groups))
    member[np.arange(len(combos))[:, None], combos] = 1.0
    is_stats = np.einsum("cs,nsk->cnk", member, grouped)
    oos_stats = np.einsum("cs,nsk->cnk", 1.0 - member, grouped)
    is_sharpe = _sharpe(is_stats)  # C x N
    oos_sharpe = _sharpe(oos_stats)
    best = np.argmax(is_sharpe, axis=1)
    chosen = oos_sharpe[np.arange(len(combos)), best]
    n = blocks.shape[0]
    w = _avg_rank(oos_sharpe, chosen) / (n + 1)
    logits = np.log(w / (1.0 - w))
    return PboResult(float(np.mean(logits <= 0)), len(combos), groups, n, logits)


@dataclass(frozen=True, slots=True)
class CpcvResult:
    """Combinatorial purged CV: the test Sharpe of the trial chosen on each split's training
    groups (per period; multiply by sqrt(periods per year) to annualise)."""

    groups: int
    test_groups: int
    purge_blocks: int
    chosen: np.ndarray
    test_sharpe: np.ndarray

    def to_dict(self, periods_per_year: float) -> dict[str, Any]:
        """JSON-safe summary with annualised figures."""
        ann = self.test_sharpe * math.sqrt(periods_per_year)
        return {
            "splits": int(self.chosen.size),
            "groups": self.groups,
            "test_groups": self.test_groups,
            "purge_blocks": self.purge_blocks,
            "oos_sharpe_mean": float(np.mean(ann)) if ann.size else math.nan,
            "oos_sharpe_std": float(np.std(ann, ddof=1)) if ann.size > 1 else math.nan,
            "oos_sharpe_positive": float(np.mean(ann > 0)) if ann.size else math.nan,
            "distinct_choices": int(np.unique(self.chosen).size),
        }


def combinatorial_purged_cv(
    blocks: np.ndarray, groups: int = 8, test_groups: int = 2, purge: int = 1
) -> CpcvResult:
    """Combinatorial purged CV over the trials' block returns (see the module doc).

    Raises
    ------
    ConfigError
        For fewer than one trial, or group counts that do not fit the blocks.
    """
    blocks = np.asarray(blocks, dtype=np.float64)
    if blocks.ndim != 3 or blocks.shape[0] < 1:
        raise ConfigError("combinatorial purged CV needs at least one trial")
    n_blocks = blocks.shape[1]
    if not 1 <= test_groups < groups <= n_blocks:
        raise ConfigError(
            f"need 1 <= test groups ({test_groups}) < groups ({groups}) <= {n_blocks}"
        )
    owner = np.minimum(np.arange(n_blocks) * groups // n_blocks, groups - 1)
    chosen, scores = [], []
    for test in itertools.combinations(range(groups), test_groups):
        is_test = np.isin(owner, test)
        near = np.zeros(n_blocks, dtype=bool)
        for k in np.flatnonzero(is_test):
            near[max(0, k - purge) : k + purge + 1] = True
        train = ~is_test & ~near
        if not train.any():
            continue
        train_sharpe = _sharpe(blocks[:, train].sum(axis=1))
        best = int(np.argmax(train_sharpe))
        chosen.append(best)
        scores.append(float(_sharpe(blocks[best, is_test].sum(axis=0))))
    return CpcvResult(groups, test_groups, purge, np.array(chosen), np.array(scores))
