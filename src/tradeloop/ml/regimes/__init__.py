"""Market regimes: detectors behind one interface, consensus, transitions, registry.

- :mod:`~tradeloop.ml.regimes.base` - the interface (fit on history, filter causally) and
  :class:`RegimePath`;
- :mod:`~tradeloop.ml.regimes.features` - causal features;
- :mod:`~tradeloop.ml.regimes.hmm` - Gaussian HMM (hmmlearn) with a log-space forward filter;
- :mod:`~tradeloop.ml.regimes.gbm` - LightGBM classifier of labelled regimes;
- :mod:`~tradeloop.ml.regimes.lstm` - LSTM classifier (PyTorch CPU, the ``regimes-lstm`` extra);
- :mod:`~tradeloop.ml.regimes.consensus` - weighted voting with an agreement threshold;
- :mod:`~tradeloop.ml.regimes.transitions` - hysteresis and gradual exposure changes;
- :mod:`~tradeloop.ml.regimes.store` - regime models in the model registry.

Counts, durations and returns by regime are in :mod:`tradeloop.analysis.regimes`.
"""

from __future__ import annotations

from typing import Any

from tradeloop.core.errors import ConfigError, did_you_mean
from tradeloop.ml.regimes.base import (
    UNCERTAIN,
    RegimeDetector,
    RegimeFilter,
    RegimePath,
    state_names,
)
from tradeloop.ml.regimes.consensus import ConsensusDetector
from tradeloop.ml.regimes.gbm import GBMDetector
from tradeloop.ml.regimes.hmm import HMMDetector
from tradeloop.ml.regimes.lstm import LSTMDetector
from tradeloop.ml.regimes.store import load_regime_model, save_regime_model
from tradeloop.ml.regimes.transitions import DEFAULT_EXPOSURES, RegimeState, TransitionManager

__all__ = [
    "DEFAULT_EXPOSURES",
    "METHODS",
    "UNCERTAIN",
    "ConsensusDetector",
    "GBMDetector",
    "HMMDetector",
    "LSTMDetector",
    "RegimeDetector",
    "RegimeFilter",
    "RegimePath",
    "RegimeState",
    "TransitionManager",
    "build_detector",
    "load_regime_model",
    "save_regime_model",
    "state_names",
]

#: method name -> detector class
METHODS: dict[str, type[RegimeDetector]] = {
    "hmm": HMMDetector,
    "gbm": GBMDetector,
    "lstm": LSTMDetector,
    "consensus": ConsensusDetector,
}


def build_detector(method: str, n_states: int = 3, **options: Any) -> RegimeDetector:
    """An unfitted detector of ``method`` (``hmm``, ``gbm``, ``lstm``, ``consensus``).

    Raises
    ------
    ConfigError
        For an unknown method or bad options.
    """
    cls = METHODS.get(method)
    if cls is None:
        raise ConfigError(
            f"unknown regime method {method!r}.{did_you_mean(method, list(METHODS))} "
            f"Methods: {', '.join(METHODS)}"
        )
    try:
        return cls(n_states, **options)  # type: ignore[call-arg]
    except TypeError as exc:
        raise ConfigError(f"regime method {method}: {exc}") from None
