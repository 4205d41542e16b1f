"""The one interface every regime detector implements, and what detection returns.

A detector is fitted on history (:meth:`RegimeDetector.fit`), then filters causally: the
regime of bar ``t`` is computed from bars ``[0, t]`` only. :meth:`RegimeDetector.online`
returns a :class:`RegimeFilter` that carries the filter's state from bar to bar; it processes
any contiguous range of bars, one bar at a time in live use or the whole history at once, with
the same arithmetic, so both give the same regimes. :meth:`RegimeDetector.detect` is the batch
form (one filter over all the bars).

States are ordered by volatility (then mean return) and named by that rank
(:func:`state_names`), so a refit on other data keeps ``low_vol`` the calm state and
``crisis`` the wildest one; the names match the risk engine's ``regime_leverage`` table.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any

import numpy as np

from tradeloop.core.bar import BarArrays
from tradeloop.core.errors import ConfigError
from tradeloop.core.time import to_iso

__all__ = [
    "MAX_STATES",
    "MIN_STATES",
    "UNCERTAIN",
    "RegimeDetector",
    "RegimeFilter",
    "RegimePath",
    "WindowFilter",
    "state_names",
]

MIN_STATES = 2
MAX_STATES = 5
#: the consensus label when the models agree less than the threshold
UNCERTAIN = "uncertain"

_NAMES = {
    2: ("low_vol", "high_vol"),
    3: ("low_vol", "normal", "high_vol"),
    4: ("low_vol", "normal", "high_vol", "crisis"),
    5: ("calm", "low_vol", "normal", "high_vol", "crisis"),
}


def state_names(n_states: int) -> tuple[str, ...]:
    """Names of ``n_states`` states ordered from the calmest to the most volatile.

    >>> state_names(3)
    ('low_vol', 'normal', 'high_vol')

    Raises
    ------
    ConfigError
        Outside 2..5 states.
    """
    if n_states not in _NAMES:
        raise ConfigError(f"regime states must be {MIN_STATES}..{MAX_STATES}, got {n_states}")
    return _NAMES[n_states]


@dataclass(slots=True)
class RegimePath:
    """Causal regimes of a series of bars.

    Attributes
    ----------
    ts
        Bar open times (UTC ns).
    names
        State names; ``state[i]`` indexes them (-1: no regime yet, in the warm-up).
    state
        The state of each bar.
    confidence
        How sure the detector is of each bar's state in [0, 1] (its probability; for the
        consensus, the weighted agreement), NaN in the warm-up.
    probs
        ``(n, K)`` probabilities of the detector's K states (NaN rows in the warm-up).
    uncertain
        The consensus's flag: True where its agreement is below the threshold (the bar keeps
        its label; a run acts on ``uncertain`` there). None for single detectors.
    """

    ts: np.ndarray
    names: tuple[str, ...]
    state: np.ndarray
    confidence: np.ndarray
    probs: np.ndarray
    uncertain: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def labels(self) -> list[str]:
        """Each bar's regime name ('' in the warm-up)."""
        names = self.names
        return [names[s] if s >= 0 else "" for s in self.state.tolist()]

    def rows(self) -> list[dict[str, Any]]:
        """``timestamp, regime, confidence`` rows (ISO-8601 UTC), warm-up bars included with
        an empty regime and no confidence; with an :attr:`uncertain` flag also ``uncertain``
        (1 below the consensus threshold, else 0)."""
        out = [
            {
                "timestamp": to_iso(int(t)),
                "regime": label,
                "confidence": None if not np.isfinite(c) else float(c),
            }
            for t, label, c in zip(
                self.ts.tolist(), self.labels(), self.confidence.tolist(), strict=True
            )
        ]
        if self.uncertain is not None:
            for row, flag in zip(out, self.uncertain.tolist(), strict=True):
                row["uncertain"] = int(flag)
        return out


class RegimeFilter(abc.ABC):
    """A detector's causal filter over one series: call :meth:`run` on consecutive ranges."""

    #: bars processed so far (the next :meth:`run` starts here)
    position: int = 0

    @abc.abstractmethod
    def run(self, bars: BarArrays, stop: int) -> np.ndarray:
        """Process bars ``[position, stop)`` of ``bars`` (the same series as before, possibly
        longer); return their ``(stop - position, K)`` probabilities (NaN rows in the warm-up).

        Reads bars before ``stop`` only.
        """


class WindowFilter(RegimeFilter):
    """A filter without state between bars: each bar's probabilities come from the window of
    bars before it, so a range is scored in one batch by :meth:`score`.

    Bars before the detector's ``lookback`` get NaN rows.
    """

    def __init__(self, lookback: int, n_states: int) -> None:
        self.lookback = lookback
        self.n_states = n_states
        self.position = 0

    @abc.abstractmethod
    def score(self, bars: BarArrays, first: int, stop: int) -> np.ndarray:
        """The ``(stop - first, K)`` probabilities of bars ``[first, stop)``, with
        ``first >= lookback``."""

    def run(self, bars: BarArrays, stop: int) -> np.ndarray:
        start = self.position
        out = np.full((max(0, stop - start), self.n_states), np.nan)
        first = max(start, self.lookback)
        if first < stop:
            out[first - start :] = self.score(bars, first, stop)
        self.position = max(start, stop)
        return out


class RegimeDetector(abc.ABC):
    """Fit on history, then detect regimes causally (see the module doc)."""

    #: ``hmm``, ``gbm``, ``lstm`` or ``consensus``
    method: str = ""

    @property
    @abc.abstractmethod
    def names(self) -> tuple[str, ...]:
        """The state names, calmest first."""

    @property
    @abc.abstractmethod
    def lookback(self) -> int:
        """Bars before a bar that its regime reads (earlier bars have no regime)."""

    @abc.abstractmethod
    def fit(self, bars: BarArrays) -> RegimeDetector:
        """Fit on ``bars`` and return self.

        Raises
        ------
        DataError
            For too little data, constant prices or bad values (naming the problem).
        """

    @abc.abstractmethod
    def online(self) -> RegimeFilter:
        """A fresh causal filter (fitted detectors only)."""

    def detect(self, bars: BarArrays) -> RegimePath:
        """Regimes of every bar, causally (bar ``t`` from bars ``[0, t]`` only)."""
        probs = self.online().run(bars, len(bars))
        return path_from_probs(bars.ts, self.names, probs)

    def describe(self) -> dict[str, Any]:
        """Settings and fitted facts for the registry's metadata."""
        return {"method": self.method, "states": list(self.names)}


def path_from_probs(ts: np.ndarray, names: tuple[str, ...], probs: np.ndarray) -> RegimePath:
    """A :class:`RegimePath` whose state is each row's most probable (-1 on NaN rows)."""
    state, confidence = argmax_rows(probs)
    return RegimePath(np.asarray(ts), names, state, confidence, probs)


def argmax_rows(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's most probable state and its probability (-1 and NaN on NaN rows)."""
    n = probs.shape[0]
    ok = np.isfinite(probs).all(axis=1)
    state = np.full(n, -1, dtype=np.int64)
    confidence = np.full(n, np.nan)
    if ok.any():
        rows = np.flatnonzero(ok)
        best = np.argmax(probs[rows], axis=1)
        state[rows] = best
        confidence[rows] = probs[rows, best]
    return state, confidence


def require_fitted(obj: object, attr: str, what: str) -> None:
    """Raise a :class:`ConfigError` when ``obj`` has not been fitted."""
    if getattr(obj, attr, None) is None:
        raise ConfigError(f"the {what} regime detector is not fitted; call fit() first")
