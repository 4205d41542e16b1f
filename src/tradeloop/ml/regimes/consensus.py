"""Consensus of several regime detectors: weighted voting with an agreement threshold.

Every member filters the same bars causally; at each bar the consensus takes the weighted mean
of the members' state probabilities (soft voting; ``voting="hard"`` counts each member's most
probable state with its weight instead). The agreement is the winning state's share.

The consensus **names the weighted-vote winner on every bar** (its ``state``), with the
agreement as its confidence. The agreement threshold (seed 003: 75%) does not withhold the
label: a bar whose agreement is below it is flagged *uncertain*
(:attr:`~tradeloop.ml.regimes.base.RegimePath.uncertain`, :meth:`ConsensusDetector.is_uncertain`),
and that flag drives the exposure rule — a run's regime source hands the transition manager
:data:`~tradeloop.ml.regimes.base.UNCERTAIN` for a flagged bar, which has its own exposure
(default 0.5). So the consensus label is judged on every bar (its accuracy over all bars is at
least its best member's on the synthetic Markov-switching test series, with the seed's
weights) while disagreement still reduces exposure. Members must name their states alike (the
classifiers learn the HMM's ordered states, so they do).

:class:`ConsensusDetector` fitted by itself (:meth:`~ConsensusDetector.fit`) builds the seed's
members: an HMM, a boosted-tree classifier and, when PyTorch is installed, an LSTM, the
classifiers trained on the HMM's after-the-fact labels; weights default to the seed's (HMM
0.25, LSTM 0.30, boosted trees 0.20, renormalised over the members present). It counts the bars
where the members' own choices differ (:attr:`ConsensusFilter.disagreements`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from tradeloop.core.bar import BarArrays
from tradeloop.core.errors import ConfigError
from tradeloop.ml.regimes.base import (
    UNCERTAIN,
    RegimeDetector,
    RegimeFilter,
    RegimePath,
    state_names,
)

__all__ = ["DEFAULT_WEIGHTS", "ConsensusDetector", "ConsensusFilter"]

logger = logging.getLogger(__name__)

#: seed 003's member weights by method
DEFAULT_WEIGHTS = {"hmm": 0.25, "lstm": 0.30, "gbm": 0.20}
VOTING = ("soft", "hard")


class ConsensusDetector(RegimeDetector):
    """Weighted vote of member detectors (see the module doc).

    Parameters
    ----------
    n_states
        States of every member (2 to 5).
    members
        Fitted detectors (empty: :meth:`fit` builds the seed's members).
    weights
        One weight per member (default: :data:`DEFAULT_WEIGHTS` by method).
    threshold
        Agreement below which a bar is flagged uncertain (0.5 to 1; the label is still the
        vote's winner).
    voting
        ``soft`` (mean probabilities) or ``hard`` (weighted votes of each member's choice).
    use_lstm
        Include an LSTM when :meth:`fit` builds the members (None: when torch is installed).
    seed
        Random seed of the members.

    Raises
    ------
    ConfigError
        For a bad threshold, weights, voting rule or members that name their states apart.
    """

    method = "consensus"

    def __init__(
        self,
        n_states: int = 3,
        members: Sequence[RegimeDetector] = (),
        *,
        weights: Sequence[float] | None = None,
        threshold: float = 0.75,
        voting: str = "soft",
        use_lstm: bool | None = None,
        seed: int = 0,
    ) -> None:
        self._names = state_names(n_states)
        if not 0.5 <= threshold <= 1.0:
            raise ConfigError(f"consensus threshold must be in [0.5, 1], got {threshold}")
        if voting not in VOTING:
            raise ConfigError(f"voting must be one of {list(VOTING)}, got {voting!r}")
        self.n_states = n_states
        self.threshold = threshold
        self.voting = voting
        self.use_lstm = use_lstm
        self.seed = seed
        self.members: list[RegimeDetector] = []
        self.weights: np.ndarray = np.empty(0)
        self._given_weights = None if weights is None else list(weights)
        if members:
            self._set_members(list(members))

    def _set_members(self, members: list[RegimeDetector]) -> None:
        for m in members:
            if tuple(m.names) != self._names:
                raise ConfigError(
                    f"consensus member {m.method} names its states {list(m.names)}, the "
                    f"consensus {list(self._names)}; give every member {self.n_states} states"
                )
        if self._given_weights is not None:
            w = np.asarray(self._given_weights, dtype=float)
            if w.shape != (len(members),):
                raise ConfigError(f"consensus weights: {w.size} weights for {len(members)} members")
        else:
            w = np.asarray([DEFAULT_WEIGHTS.get(m.method, 0.25) for m in members])
        if not (np.isfinite(w).all() and (w >= 0).all() and w.sum() > 0):
            raise ConfigError(f"consensus weights must be >= 0 with a positive sum, got {w}")
        self.members = members
        self.weights = w / w.sum()

    @property
    def names(self) -> tuple[str, ...]:
        """The members' state names (every bar is labelled with one of them; agreement below
        the threshold is a separate flag, :meth:`is_uncertain`)."""
        return self._names

    def is_uncertain(self, confidence: np.ndarray) -> np.ndarray:
        """True where the agreement ``confidence`` is below the threshold (False in the
        warm-up, where there is no label)."""
        conf = np.asarray(confidence, dtype=float)
        with np.errstate(invalid="ignore"):
            flags: np.ndarray = np.isfinite(conf) & (conf < self.threshold - 1e-12)
        return flags

    def acted_label(self, label: str, confidence: float) -> str:
        """The regime a run acts on for a bar: :data:`UNCERTAIN` below the threshold."""
        if label and bool(self.is_uncertain(np.asarray([confidence]))[0]):
            return UNCERTAIN
        return label

    @property
    def lookback(self) -> int:
        """The longest member warm-up."""
        return max((m.lookback for m in self.members), default=0)

    def fit(self, bars: BarArrays) -> ConsensusDetector:
        """Fit the seed's members on ``bars`` (HMM, boosted trees, LSTM when available).

        Raises
        ------
        DataError
            As the members' fits.
        """
        from tradeloop.ml.regimes.gbm import GBMDetector
        from tradeloop.ml.regimes.hmm import HMMDetector

        hmm = HMMDetector(self.n_states, seed=self.seed).fit(bars)
        members: list[RegimeDetector] = [hmm, GBMDetector(self.n_states, seed=self.seed)]
        members[1].fit(bars, labeler=hmm)  # type: ignore[call-arg]
        use_lstm = self.use_lstm
        if use_lstm is None:
            try:
                import torch  # noqa: F401
            except ImportError:
                use_lstm = False
                logger.warning("consensus without an LSTM: the regimes-lstm extra is missing")
            else:
                use_lstm = True
        if use_lstm:
            from tradeloop.ml.regimes.lstm import LSTMDetector

            lstm = LSTMDetector(self.n_states, seed=self.seed).fit(bars, labeler=hmm)
            members.append(lstm)
        self._set_members(members)
        return self

    def online(self) -> ConsensusFilter:
        """A fresh filter running every member's filter."""
        if not self.members:
            raise ConfigError("the consensus has no members; call fit() or pass members")
        return ConsensusFilter(self)

    def combine(
        self, member_probs: Sequence[np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(state, confidence, mean probabilities)`` of rows from the members'
        probabilities: the weighted-vote winner and its agreement (-1 and NaN where a member
        is still warming up; see :meth:`is_uncertain` for the threshold)."""
        stack = np.stack(member_probs)  # (M, n, K)
        m_n, n, k_n = stack.shape
        ready = np.isfinite(stack).all(axis=(0, 2))
        w = self.weights[:, None, None]
        mean = np.full((n, k_n), np.nan)
        state = np.full(n, -1, dtype=np.int64)
        conf = np.full(n, np.nan)
        if ready.any():
            sub = stack[:, ready]
            mean[ready] = (w * sub).sum(axis=0)
            if self.voting == "soft":
                score = mean[ready]
            else:
                votes = np.argmax(sub, axis=2)  # (M, r)
                score = np.zeros((votes.shape[1], k_n))
                for j in range(m_n):
                    score[np.arange(votes.shape[1]), votes[j]] += self.weights[j]
            best = np.argmax(score, axis=1)
            agree = score[np.arange(best.size), best]
            rows = np.flatnonzero(ready)
            state[rows] = best
            conf[rows] = agree
        return state, conf, mean

    def detect(self, bars: BarArrays) -> RegimePath:
        """Consensus regimes of every bar, causally."""
        f = self.online()
        state, conf, mean = f.step(bars, len(bars))
        return RegimePath(
            np.asarray(bars.ts), self.names, state, conf, mean, self.is_uncertain(conf)
        )

    def describe(self) -> dict[str, Any]:
        """Threshold, voting, weights and every member's description."""
        out = super().describe()
        out.update(
            threshold=self.threshold,
            voting=self.voting,
            weights=[float(w) for w in self.weights],
            members=[m.describe() for m in self.members],
        )
        return out


class ConsensusFilter(RegimeFilter):
    """Runs every member's filter over the same bars and combines them."""

    def __init__(self, detector: ConsensusDetector) -> None:
        self.detector = detector
        self.filters = [m.online() for m in detector.members]
        self.position = 0
        #: bars where the members' own most probable states differ
        self.disagreements = 0
        self.bars = 0

    def step(self, bars: BarArrays, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Process bars ``[position, stop)``; return their state, confidence and mean
        probabilities (see :meth:`ConsensusDetector.combine`)."""
        probs = [f.run(bars, stop) for f in self.filters]
        self.position = max(self.position, stop)
        state, conf, mean = self.detector.combine(probs)
        stack = np.stack(probs)
        ready = np.isfinite(stack).all(axis=(0, 2))
        if ready.any():
            choice = np.argmax(stack[:, ready], axis=2)
            self.disagreements += int((choice != choice[0]).any(axis=0).sum())
            self.bars += int(ready.sum())
        return state, conf, mean

    def run(self, bars: BarArrays, stop: int) -> np.ndarray:
        """The mean member probabilities of bars ``[position, stop)`` (use :meth:`step` for the
        consensus state and its agreement)."""
        return self.step(bars, stop)[2]
