"""Gaussian hidden Markov model regimes (hmmlearn), filtered forward in log space for live use.

:class:`HMMDetector` fits a :class:`hmmlearn.hmm.GaussianHMM` (Baum-Welch, full covariances)
on standardized causal features (default: return, volatility, relative volume; see
:mod:`tradeloop.ml.regimes.features`), then reorders its states by volatility, then mean return
(:func:`~tradeloop.ml.regimes.base.state_names`), so the labels never permute between fits.

Detection is the forward recursion with the fitted parameters, one bar at a time::

    log a_t(k) = log b_k(x_t) + logsumexp_j(log a_{t-1}(j) + log A[j, k]),  normalised

O(K^2 + K d^2) per bar and compiled with numba: the probability of each state given the bars
so far, never a later one. It equals hmmlearn's ``predict_proba`` on the prefix ending at the
bar (the last row of the forward-backward posterior is the filtered one); a test holds them
equal. :meth:`HMMDetector.viterbi` gives after-the-fact labels (the most likely path given the
whole series), e.g. to train the boosted-tree and LSTM classifiers; it reads the future and is
never used to trade.
"""

from __future__ import annotations

import logging
import math
import warnings
from typing import Any

import numpy as np
from numba import njit

from tradeloop.core.bar import BarArrays
from tradeloop.core.errors import ConfigError, DataError
from tradeloop.core.extras import needs_extra
from tradeloop.ml.regimes.base import RegimeDetector, RegimeFilter, require_fitted, state_names
from tradeloop.ml.regimes.features import (
    BASE_FEATURES,
    FeatureSpec,
    check_bars,
    compute_features,
    ensure_finite,
    feature_range,
)

__all__ = ["HMMDetector", "HMMFilter", "min_fit_rows"]

logger = logging.getLogger(__name__)


def min_fit_rows(n_states: int, n_features: int) -> int:
    """Feature rows (after the warm-up) a fit needs: enough for every state's mean and
    covariance and the transition matrix."""
    params = n_states * (n_features + n_features * (n_features + 1) // 2 + n_states)
    return max(100, 10 * params)


@njit(cache=True)
def _forward(
    x: np.ndarray,
    mu: np.ndarray,
    linv: np.ndarray,
    lognorm: np.ndarray,
    log_a: np.ndarray,
    log_pi: np.ndarray,
    alpha: np.ndarray,
    started: bool,
) -> tuple[np.ndarray, np.ndarray, bool]:  # pragma: no cover - compiled
    n, d = x.shape
    k_n = mu.shape[0]
    out = np.empty((n, k_n))
    cur = alpha.copy()
    nxt = np.empty(k_n)
    lb = np.empty(k_n)
    for t in range(n):
        for k in range(k_n):
            s = 0.0
            for i in range(d):
                z = 0.0
                for j in range(i + 1):
                    z += linv[k, i, j] * (x[t, j] - mu[k, j])
                s += z * z
            lb[k] = lognorm[k] - 0.5 * s
        if not started:
            for k in range(k_n):
                nxt[k] = log_pi[k] + lb[k]
            started = True
        else:
            for k in range(k_n):
                m = -np.inf
                for j in range(k_n):
                    v = cur[j] + log_a[j, k]
                    if v > m:
                        m = v
                acc = 0.0
                if m > -np.inf:
                    for j in range(k_n):
                        acc += math.exp(cur[j] + log_a[j, k] - m)
                    nxt[k] = m + math.log(acc) + lb[k]
                else:
                    nxt[k] = -np.inf
        m = -np.inf
        for k in range(k_n):
            if nxt[k] > m:
                m = nxt[k]
        acc = 0.0
        for k in range(k_n):
            acc += math.exp(nxt[k] - m)
        lz = m + math.log(acc)
        for k in range(k_n):
            cur[k] = nxt[k] - lz
            out[t, k] = math.exp(cur[k])
    return out, cur, started


class HMMDetector(RegimeDetector):
    """Gaussian HMM regimes (see the module doc).

    Parameters
    ----------
    n_states
        2 to 5 states (seed 003: 5).
    features
        Feature columns (:mod:`~tradeloop.ml.regimes.features`).
    window
        Window of the volatility and volume features.
    n_iter, tol
        Baum-Welch iterations and convergence tolerance.
    n_init
        Fits from different random starts; the one with the best likelihood is kept.
    seed
        Random seed of the first start.

    Raises
    ------
    ConfigError
        For a state count outside 2..5 or an unknown feature.
    """

    method = "hmm"

    def __init__(
        self,
        n_states: int = 3,
        *,
        features: tuple[str, ...] = BASE_FEATURES,
        window: int = 20,
        n_iter: int = 100,
        tol: float = 1e-3,
        n_init: int = 2,
        seed: int = 0,
    ) -> None:
        self._names = state_names(n_states)
        if n_init < 1 or n_iter < 1:
            raise ConfigError(f"n_init and n_iter must be >= 1, got {n_init}, {n_iter}")
        self.n_states = n_states
        self.spec = FeatureSpec(tuple(features), window)
        self.n_iter = n_iter
        self.tol = tol
        self.n_init = n_init
        self.seed = seed
        #: the fitted hmmlearn model, states reordered (None until fitted)
        self.model: Any = None
        self.center: np.ndarray | None = None
        self.scale: np.ndarray | None = None
        self._params: tuple[np.ndarray, ...] | None = None
        self.log_likelihood = math.nan
        self.state_stats: list[dict[str, float]] = []

    @property
    def names(self) -> tuple[str, ...]:
        """State names, calmest first."""
        return self._names

    @property
    def lookback(self) -> int:
        """The features' warm-up in bars."""
        return self.spec.lookback

    # -- fitting ------------------------------------------------------------------------------
    def standardized(self, bars: BarArrays) -> np.ndarray:
        """The fitted standardization of ``bars``' features after the warm-up."""
        require_fitted(self, "center", "hmm")
        assert self.center is not None
        assert self.scale is not None
        rows = compute_features(bars, self.spec)[self.lookback :]
        ensure_finite(rows, self.spec.names, self.lookback, bars.symbol)
        out: np.ndarray = (rows - self.center) / self.scale
        return out

    def fit(self, bars: BarArrays) -> HMMDetector:
        """Fit on ``bars`` (Baum-Welch), order and name the states.

        Raises
        ------
        DataError
            For too little data, constant prices, a constant feature or bad values.
        """
        with needs_extra("ml", "the hmm regime detector"):
            from hmmlearn.hmm import GaussianHMM

        names = self.spec.names
        need = min_fit_rows(self.n_states, len(names))
        check_bars(bars, min_bars=self.lookback + need, what=f"a {self.n_states}-state HMM fit")
        rows = compute_features(bars, self.spec)[self.lookback :]
        ensure_finite(rows, names, self.lookback, bars.symbol)
        center = rows.mean(axis=0)
        scale = rows.std(axis=0)
        flat = [names[i] for i in np.flatnonzero(~(scale > 1e-12))]
        if flat:
            raise DataError(
                f"feature(s) {', '.join(flat)} are constant over the data, so they cannot tell "
                "regimes apart; fit with other features (e.g. without volume for data with no "
                "volume)",
                file=bars.symbol,
                field=flat[0],
            )
        x = (rows - center) / scale
        best: Any = None
        best_score = -math.inf
        for k in range(self.n_init):
            model = GaussianHMM(
                n_components=self.n_states,
                covariance_type="full",
                n_iter=self.n_iter,
                tol=self.tol,
                random_state=self.seed + k,
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(x)
                score = float(model.score(x))
            if math.isfinite(score) and score > best_score:
                best, best_score = model, score
        if best is None:
            raise DataError(
                "the HMM fit did not converge to finite parameters (degenerate data?)",
                file=bars.symbol,
            )
        self.center, self.scale = center, scale
        self.model = _ordered(best, names)
        self.log_likelihood = best_score
        self._params = _filter_params(self.model)
        self.state_stats = self._stats(rows, self.model.predict(x))
        return self

    def _stats(self, rows: np.ndarray, states: np.ndarray) -> list[dict[str, float]]:
        """Per state: share of training bars (Viterbi), mean feature values, expected
        duration in bars (``1 / (1 - A[k, k])``)."""
        out = []
        for k, name in enumerate(self._names):
            mask = states == k
            item: dict[str, Any] = {"state": name, "share": float(mask.mean())}
            for j, feat in enumerate(self.spec.names):
                item[f"mean_{feat}"] = float(rows[mask, j].mean()) if mask.any() else math.nan
            stay = float(self.model.transmat_[k, k])
            item["expected_bars"] = 1.0 / (1.0 - stay) if stay < 1 else math.inf
            out.append(item)
        return out

    # -- detection ----------------------------------------------------------------------------
    def online(self) -> HMMFilter:
        """A fresh forward filter."""
        require_fitted(self, "_params", "hmm")
        return HMMFilter(self)

    def viterbi(self, bars: BarArrays) -> np.ndarray:
        """After-the-fact labels (the most likely state path given ALL the bars; -1 in the
        warm-up). Reads the future: for training labels and reports, never for trading."""
        x = self.standardized(bars)
        out = np.full(len(bars), -1, dtype=np.int64)
        if x.shape[0]:
            out[self.lookback :] = self.model.predict(x)
        return out

    def transition_matrix(self) -> np.ndarray:
        """The fitted transition matrix, states in name order."""
        require_fitted(self, "model", "hmm")
        return np.asarray(self.model.transmat_).copy()

    def describe(self) -> dict[str, Any]:
        """Settings, transition matrix and per-state statistics."""
        out = super().describe()
        out.update(
            features=self.spec.to_dict(),
            n_iter=self.n_iter,
            n_init=self.n_init,
            seed=self.seed,
            log_likelihood=self.log_likelihood,
        )
        if self.model is not None:
            out["transition_matrix"] = self.transition_matrix().round(6).tolist()
            out["state_stats"] = self.state_stats
        return out


def _order(model: Any, names: tuple[str, ...]) -> np.ndarray:
    """State order: volatility ascending, then mean return descending."""
    means = np.asarray(model.means_)
    covars = np.asarray(model.covars_)
    if "vol" in names:
        vol = means[:, names.index("vol")]
    elif "ret" in names:
        vol = covars[:, names.index("ret"), names.index("ret")]
    else:
        vol = np.array([np.trace(c) for c in covars])
    ret = means[:, names.index("ret")] if "ret" in names else np.zeros(len(vol))
    return np.lexsort((-ret, vol))


def _ordered(model: Any, names: tuple[str, ...]) -> Any:
    """``model`` with its states renumbered by :func:`_order`."""
    perm = _order(model, names)
    covars = np.asarray(model.covars_)[perm]
    model.startprob_ = np.asarray(model.startprob_)[perm]
    model.transmat_ = np.asarray(model.transmat_)[perm][:, perm]
    model.means_ = np.asarray(model.means_)[perm]
    model.covars_ = covars
    return model


def _filter_params(model: Any) -> tuple[np.ndarray, ...]:
    """``(mu, inverse Cholesky factors, log normalisers, log A, log pi)`` of the emissions."""
    mu = np.ascontiguousarray(model.means_, dtype=np.float64)
    covars = np.asarray(model.covars_, dtype=np.float64)
    k_n, d = mu.shape
    linv = np.zeros((k_n, d, d))
    lognorm = np.empty(k_n)
    for k in range(k_n):
        chol = np.linalg.cholesky(covars[k])
        linv[k] = np.linalg.inv(chol)
        lognorm[k] = -0.5 * d * math.log(2.0 * math.pi) - float(np.log(np.diag(chol)).sum())
    with np.errstate(divide="ignore"):
        log_a = np.log(np.asarray(model.transmat_, dtype=np.float64))
        log_pi = np.log(np.asarray(model.startprob_, dtype=np.float64))
    return mu, np.tril(linv), lognorm, log_a, log_pi


class HMMFilter(RegimeFilter):
    """The forward filter of one fitted :class:`HMMDetector` over one series."""

    def __init__(self, detector: HMMDetector) -> None:
        self.detector = detector
        self.position = 0
        self.alpha = np.zeros(detector.n_states)
        self.started = False

    def run(self, bars: BarArrays, stop: int) -> np.ndarray:
        """Filter bars ``[position, stop)``; return their state probabilities."""
        det = self.detector
        start = self.position
        k_n = det.n_states
        out = np.full((max(0, stop - start), k_n), np.nan)
        if stop <= start:
            return out
        lb = det.lookback
        first = max(start, lb)  # rows before the warm-up end have no features
        if first < stop:
            rows = feature_range(bars, det.spec, first, stop)
            ensure_finite(rows, det.spec.names, first, bars.symbol)
            assert det.center is not None
            assert det.scale is not None
            assert det._params is not None
            x = np.ascontiguousarray((rows - det.center) / det.scale)
            mu, linv, lognorm, log_a, log_pi = det._params
            probs, self.alpha, self.started = _forward(
                x, mu, linv, lognorm, log_a, log_pi, self.alpha, self.started
            )
            out[first - start :] = probs
        self.position = stop
        return out
