"""LSTM regimes: a small recurrent classifier of labelled regimes (PyTorch, CPU).

Optional: it needs the ``regimes-lstm`` extra (``pip install 'tradeloop[regimes-lstm]'``,
which installs PyTorch's CPU build). torch is imported only when an LSTM is fitted or run;
without it those calls raise a :class:`~tradeloop.core.errors.ConfigError` naming the extra,
and everything else works.

:class:`LSTMDetector` reads the last ``seq_len`` rows of standardized causal features (the
classifier features of :mod:`~tradeloop.ml.regimes.features`) and classifies the regime of the
last bar, so a bar's regime depends on it and the bars before it only. Labels are given or the
Viterbi path of an HMM fitted on the same bars (:mod:`~tradeloop.ml.regimes.labels`). Training
runs in float32; detection runs in float64, so a bar's probabilities do not depend on how many
bars are scored together (batch detection equals the bar-by-bar filter). The weights are kept as
numpy arrays, so a saved model loads without torch (running it needs torch).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from tradeloop.core.bar import BarArrays
from tradeloop.core.errors import ConfigError, DataError
from tradeloop.core.extras import needs_extra
from tradeloop.ml.regimes.base import (
    RegimeDetector,
    RegimeFilter,
    WindowFilter,
    require_fitted,
    state_names,
)
from tradeloop.ml.regimes.features import (
    CLASSIFIER_FEATURES,
    FeatureSpec,
    check_bars,
    compute_features,
    ensure_finite,
    feature_range,
)
from tradeloop.ml.regimes.labels import regime_labels

__all__ = ["LSTMDetector", "require_torch"]

_CHUNK = 2048


def require_torch() -> Any:
    """Import and return torch, or raise a :class:`MissingExtraError` (a
    :class:`ConfigError`) naming the extra (the CPU build; or use --method hmm or gbm)."""
    with needs_extra("regimes-lstm", "the LSTM regime detector (PyTorch)"):
        import torch
    return torch


@contextmanager
def _torch_threads(torch: Any, n: int) -> Iterator[None]:
    """Run with ``n`` torch threads, then restore the previous count."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _module(torch: Any, n_in: int, hidden: int, layers: int, n_out: int) -> Any:
    nn = torch.nn

    class _Net(nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(n_in, hidden, num_layers=layers, batch_first=True)
            self.head = nn.Linear(hidden, n_out)

        def forward(self, x: Any) -> Any:
            out, _ = self.lstm(x)
            return self.head(out[:, -1, :])

    return _Net()


class LSTMDetector(RegimeDetector):
    """LSTM regime classifier (see the module doc).

    Parameters
    ----------
    n_states
        2 to 5 states (names as the HMM's).
    features, window
        Feature columns and the window of ``vol``/``volume``.
    seq_len
        Feature rows per sequence.
    hidden, layers
        LSTM size (seed 003: 2 layers of 128; the default is smaller to train fast on CPU).
    epochs, batch_size, learning_rate, max_train
        Training: passes, batch, Adam step and the most sequences drawn per epoch.
    threads
        torch threads while training and detecting (restored after; 1 is fastest for this
        small network on a shared CPU).
    seed
        Random seed (torch, sampling and the labelling HMM).
    """

    method = "lstm"

    def __init__(
        self,
        n_states: int = 3,
        *,
        features: tuple[str, ...] = CLASSIFIER_FEATURES,
        window: int = 20,
        seq_len: int = 24,
        hidden: int = 32,
        layers: int = 2,
        epochs: int = 4,
        batch_size: int = 256,
        learning_rate: float = 5e-3,
        max_train: int = 20_000,
        threads: int = 1,
        seed: int = 0,
    ) -> None:
        self._names = state_names(n_states)
        if seq_len < 2 or hidden < 1 or layers < 1 or epochs < 1 or batch_size < 1:
            raise ConfigError("seq_len must be >= 2 and hidden, layers, epochs, batch_size >= 1")
        self.n_states = n_states
        self.spec = FeatureSpec(tuple(features), window)
        self.seq_len = seq_len
        self.hidden = hidden
        self.layers = layers
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.max_train = max_train
        self.threads = max(1, int(threads))
        self.seed = seed
        self.center: np.ndarray | None = None
        self.scale: np.ndarray | None = None
        #: trained weights (name -> float32 array); None until fitted
        self.weights: dict[str, np.ndarray] | None = None
        self.holdout_accuracy = math.nan
        self.train_loss = math.nan
        self._net: Any = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_net"] = None  # rebuilt from the weights on first use
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    @property
    def names(self) -> tuple[str, ...]:
        """State names, calmest first."""
        return self._names

    @property
    def lookback(self) -> int:
        """Bars before a bar that its regime reads: the features' warm-up plus the sequence."""
        return self.spec.lookback + self.seq_len - 1

    def fit(
        self, bars: BarArrays, labels: np.ndarray | None = None, *, labeler: Any = None
    ) -> LSTMDetector:
        """Train on ``bars`` and their labels (None: an HMM's Viterbi path, or ``labeler``'s).

        Raises
        ------
        ConfigError
            Without PyTorch (names the extra).
        DataError
            For too little data, constant prices, bad values or labels.
        """
        torch = require_torch()
        with _torch_threads(torch, self.threads):
            return self._fit(torch, bars, labels, labeler)

    def _fit(
        self, torch: Any, bars: BarArrays, labels: np.ndarray | None, labeler: Any
    ) -> LSTMDetector:
        flb = self.spec.lookback
        check_bars(bars, min_bars=self.lookback + 100, what="an LSTM regime fit")
        y_all, _ = regime_labels(bars, labels, self.n_states, seed=self.seed, labeler=labeler)
        rows = compute_features(bars, self.spec)[flb:]
        ensure_finite(rows, self.spec.names, flb, bars.symbol)
        center, scale = rows.mean(axis=0), rows.std(axis=0)
        scale = np.where(scale > 1e-12, scale, 1.0)
        x = ((rows - center) / scale).astype(np.float32)
        y = y_all[flb:]
        ends = np.arange(self.seq_len - 1, x.shape[0])  # sequence ends (row index)
        ends = ends[y[ends] >= 0]
        if np.unique(y[ends]).size < 2:
            raise DataError(
                "the labels hold fewer than two regimes; a classifier needs at least two",
                file=bars.symbol,
                field="regime",
            )
        cut = int(len(ends) * 0.8)
        train_ends, test_ends = ends[:cut], ends[cut:]
        rng = np.random.default_rng(self.seed)
        torch.manual_seed(self.seed)
        net = _module(torch, x.shape[1], self.hidden, self.layers, self.n_states)
        opt = torch.optim.Adam(net.parameters(), lr=self.learning_rate)
        loss_fn = torch.nn.CrossEntropyLoss()
        offsets = np.arange(-self.seq_len + 1, 1)
        xt = torch.from_numpy(x)
        yt = torch.from_numpy(y.astype(np.int64))
        loss_value = math.nan
        net.train()
        for _ in range(self.epochs):
            order = rng.permutation(train_ends)[: self.max_train]
            for b in range(0, order.size, self.batch_size):
                batch = order[b : b + self.batch_size]
                seqs = xt[torch.from_numpy(batch[:, None] + offsets[None, :])]
                opt.zero_grad()
                loss = loss_fn(net(seqs), yt[torch.from_numpy(batch)])
                loss.backward()
                opt.step()
                loss_value = float(loss.item())
        net.eval()
        self.center, self.scale = center, scale
        self.weights = {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}
        self._net = None
        self.train_loss = loss_value
        if test_ends.size:
            probs = self._predict(x.astype(np.float64), test_ends)
            self.holdout_accuracy = float((probs.argmax(axis=1) == y[test_ends]).mean())
        return self

    def _network(self) -> Any:
        """The float64 inference network (built from :attr:`weights` once)."""
        if self._net is None:
            torch = require_torch()
            assert self.weights is not None
            assert self.center is not None
            net = _module(torch, self.center.shape[0], self.hidden, self.layers, self.n_states)
            net.load_state_dict({k: torch.from_numpy(v) for k, v in self.weights.items()})
            self._net = net.double().eval()
        return self._net

    def _predict(self, x: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Probabilities of the sequences of standardized rows ``x`` ending at ``ends``."""
        torch = require_torch()
        net = self._network()
        offsets = np.arange(-self.seq_len + 1, 1)
        out = np.empty((ends.size, self.n_states))
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))
        with torch.inference_mode(), _torch_threads(torch, getattr(self, "threads", 1)):
            for b in range(0, ends.size, _CHUNK):
                idx = ends[b : b + _CHUNK]
                seqs = xt[torch.from_numpy(idx[:, None] + offsets[None, :])]
                out[b : b + idx.size] = torch.softmax(net(seqs), dim=1).numpy()
        return out

    def online(self) -> RegimeFilter:
        """A fresh causal filter (each bar from its own last ``seq_len`` feature rows)."""
        require_fitted(self, "weights", "lstm")
        return _SequenceFilter(self)

    def describe(self) -> dict[str, Any]:
        """Settings and holdout accuracy against the labels."""
        out = super().describe()
        out.update(
            features=self.spec.to_dict(),
            seq_len=self.seq_len,
            hidden=self.hidden,
            layers=self.layers,
            epochs=self.epochs,
            holdout_accuracy=self.holdout_accuracy,
            train_loss=self.train_loss,
            seed=self.seed,
        )
        return out


class _SequenceFilter(WindowFilter):
    """Each bar from the ``seq_len`` feature rows ending at it (no state between bars)."""

    def __init__(self, detector: LSTMDetector) -> None:
        super().__init__(detector.lookback, detector.n_states)
        self.detector = detector

    def score(self, bars: BarArrays, first: int, stop: int) -> np.ndarray:
        det = self.detector
        lo = first - det.seq_len + 1  # the first sequence's first feature row
        rows = feature_range(bars, det.spec, lo, stop)
        ensure_finite(rows, det.spec.names, lo, bars.symbol)
        assert det.center is not None
        assert det.scale is not None
        x = (rows - det.center) / det.scale
        ends = np.arange(det.seq_len - 1, x.shape[0])
        return det._predict(x, ends)
