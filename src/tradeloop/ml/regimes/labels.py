"""Training labels of the supervised regime classifiers (boosted trees, LSTM).

A classifier learns to tell the current regime from causal features. Its labels are either
given (a known state per bar, e.g. from a synthetic series or a hand labelling) or the
after-the-fact Viterbi path of an HMM fitted on the same bars, which uses the whole series and
so is the best available description of each bar's regime; the classifier then approximates it
from the past alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tradeloop.core.bar import BarArrays
from tradeloop.core.errors import DataError

__all__ = ["regime_labels"]


def regime_labels(
    bars: BarArrays,
    labels: np.ndarray | None,
    n_states: int,
    *,
    seed: int = 0,
    labeler: Any = None,
) -> tuple[np.ndarray, Any]:
    """Return per-bar labels (``-1``: unlabelled) and the HMM that made them (None if given).

    Raises
    ------
    DataError
        For labels of the wrong length or outside ``0..n_states-1``.
    """
    if labels is not None:
        out = np.asarray(labels, dtype=np.int64)
        if out.shape != (len(bars),):
            raise DataError(
                f"labels must hold one state per bar: {out.shape[0]} labels for {len(bars)} bars",
                file=bars.symbol,
                field="regime",
            )
        bad = (out < -1) | (out >= n_states)
        if bad.any():
            row = int(np.argmax(bad))
            raise DataError(
                f"label {out[row]} is not a state 0..{n_states - 1} (or -1 for none)",
                file=bars.symbol,
                row=row,
                field="regime",
            )
        return out, None
    from tradeloop.ml.regimes.hmm import HMMDetector

    hmm = labeler if labeler is not None else HMMDetector(n_states, seed=seed).fit(bars)
    return hmm.viterbi(bars), hmm
