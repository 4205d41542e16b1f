"""ML enrichment between the strategy and the risk gate: the one way a model enters a run.

:class:`ModelEnrichment` implements the step's :class:`~tradeloop.engine.step.Enrichment`
protocol with a meta-model from the model registry (``NAME[:VERSION]``, see
:class:`~tradeloop.ml.registry.ModelCatalog`). For every entry signal of the strategy it finds

- ``meta_confidence``: the model's calibrated probability that the trade makes money, from the
  features of the signal bar (0.5, the cold-start value, while the features warm up);
- ``toxicity``: the feature set's VPIN proxy of that bar (order-flow imbalance in [0, 1]);
- ``regime_weight``: 1.0 until a regime model exists;

and sets the signal's ``confidence`` to ``meta_confidence x regime_weight``, times
``1 - toxicity`` when ``use_toxicity`` is on (off by default: a busy, one-sided tape then
shrinks every position, which is a choice to make knowingly). Entries whose confidence is below
``min_confidence`` (default: the threshold the model was trained with) are dropped; exits pass
unchanged. The risk engine multiplies the confidence into the size after its caps
(:mod:`tradeloop.risk.engine`).

Features are computed once per run over ``view.arrays(symbol)`` by the same causal
:meth:`~tradeloop.ml.features.FeatureSet.compute` that training uses; paper and live runs
extend them as bars arrive (:meth:`ModelEnrichment.extend`), over the last ``extend_window``
bars, so a paper run's features equal the backtest replay's bit for bit while it holds fewer
bars than that (beyond, the EMA-based features agree to about 1e-10).

It counts what it did (:class:`EnrichmentCounts`) and keeps one :class:`EnrichmentRecord` per
entry signal (the last ``max_records``), ready to be published on a bus; :meth:`record_of`
finds an entry's record by its signal id (the id of the trade it opens) until ``max_records``
newer entries pushed it out, also after :meth:`~ModelEnrichment.drain`.

A running paper or live loop may replace the model with :meth:`~ModelEnrichment.swap` (a
retrained version of the same feature set, see :mod:`tradeloop.engine.retrain`): the model and
its version change together in one assignment, and each :meth:`~ModelEnrichment.enrich` call
scores all its signals with the one model it found when it started, so every record names the
version that scored it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tradeloop.core.bar import BarArrays
from tradeloop.core.errors import ConfigError
from tradeloop.core.signal import Signal, SignalAction
from tradeloop.ml.inference import COLD_START_CONFIDENCE
from tradeloop.ml.model import MetaModel
from tradeloop.ml.registry import ModelCatalog, ModelRef
from tradeloop.ml.threads import DEFAULT_ML_THREADS, check_threads
from tradeloop.strategy.view import MarketView

__all__ = [
    "DEFAULT_EXTEND_WINDOW",
    "EnrichmentCounts",
    "EnrichmentRecord",
    "ModelEnrichment",
    "ModelTimeline",
    "side_of",
]

logger = logging.getLogger(__name__)

#: Bars the paper/live feature update recomputes over (see the module doc).
DEFAULT_EXTEND_WINDOW = 2048

_SIDE = {SignalAction.OPEN_LONG: 1, SignalAction.OPEN_SHORT: -1}


def side_of(signal: Signal) -> int:
    """Return +1 for a long entry, -1 for a short entry and 0 for an exit."""
    return _SIDE.get(signal.action, 0)


@dataclass(frozen=True, slots=True)
class EnrichmentRecord:
    """What the enrichment found for one entry signal.

    Attributes
    ----------
    ts
        Open time (UTC ns) of the bar the signal was produced on.
    symbol, signal_id, side
        The signal (its id is the position id it opens; +1 long, -1 short).
    meta_confidence, toxicity, regime_weight
        The model's probability, the bar's VPIN proxy (NaN when the feature set has none)
        and the regime weight.
    confidence
        What the signal carries to the risk gate (see the module doc).
    kept
        False when the confidence was below the threshold and the signal was dropped.
    cold
        True when the features were not ready and ``meta_confidence`` is the cold-start 0.5.
    version
        The version of the model that scored the signal.
    """

    ts: int
    symbol: str
    signal_id: str | None
    side: int
    meta_confidence: float
    toxicity: float
    regime_weight: float
    confidence: float
    kept: bool
    cold: bool
    version: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The record as plain values (NaN toxicity as None), e.g. for a bus message."""
        out = dataclasses.asdict(self)
        if not math.isfinite(self.toxicity):
            out["toxicity"] = None
        return out


@dataclass(slots=True)
class EnrichmentCounts:
    """Signals through the enrichment: in, exits passed, entries scored, cold, dropped."""

    signals: int = 0
    exits: int = 0
    enriched: int = 0
    cold: int = 0
    dropped: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counts as a plain dict (run records, status files)."""
        return dataclasses.asdict(self)


class _Features:
    """One symbol's feature rows aligned with the view's bars: ``rows[start + i]`` is bar ``i``.

    The buffer grows at the end and drops from the front (paper/live windows), compacting
    when it runs out of room, so a step costs the new rows only.
    """

    __slots__ = ("rows", "start", "stop", "ts")

    def __init__(self, rows: np.ndarray, ts: np.ndarray) -> None:
        self.rows = rows
        self.start: int = 0
        self.stop: int = rows.shape[0]
        self.ts = ts

    def __len__(self) -> int:
        return self.stop - self.start

    def drop_front(self, k: int) -> None:
        self.start += k

    def append(self, new: np.ndarray) -> None:
        k = new.shape[0]
        if self.stop + k > self.rows.shape[0]:
            live = self.stop - self.start
            grown = np.empty((max(64, 2 * (live + k)), self.rows.shape[1]))
            grown[:live] = self.rows[self.start : self.stop]
            self.rows, self.start, self.stop = grown, 0, live
        self.rows[self.stop : self.stop + k] = new
        self.stop += k


class ModelEnrichment:
    """Score entry signals with a meta-model; drop the weak ones (see the module doc).

    Parameters
    ----------
    model
        The fitted meta-model.
    name, version
        How the run record names the model (``version`` defaults to ``model.version``).
    min_confidence
        Entries whose confidence is below it are dropped; default: the model's trained
        threshold. 0 keeps every entry and only sizes them.
    use_toxicity
        Multiply the confidence by ``1 - toxicity``.
    threads
        Threads per prediction (LightGBM ``num_threads``); see :mod:`tradeloop.ml.threads`.
        None leaves the library's default (every core), which benchmarks compare against.
    extend_window
        Bars the paper/live feature update recomputes over.
    max_records
        Per-signal records kept (the oldest are dropped beyond it; :meth:`drain` takes them).
    metadata
        The registry metadata of the model (training data, metrics), for the run record.

    Raises
    ------
    ConfigError
        For a threshold outside [0, 1], a thread count below 1 or a window shorter than the
        feature set's lookback.
    """

    def __init__(
        self,
        model: MetaModel,
        *,
        name: str = "",
        version: str | None = None,
        min_confidence: float | None = None,
        use_toxicity: bool = False,
        threads: int | None = DEFAULT_ML_THREADS,
        extend_window: int = DEFAULT_EXTEND_WINDOW,
        max_records: int = 100_000,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        threshold = model.threshold if min_confidence is None else min_confidence
        if not (isinstance(threshold, int | float) and 0.0 <= threshold <= 1.0):
            raise ConfigError(f"min_confidence must be in [0, 1], got {threshold!r}")
        fs = model.feature_set
        if extend_window < fs.lookback:
            raise ConfigError(
                f"extend_window must be >= the feature set's lookback ({fs.lookback}), "
                f"got {extend_window}"
            )
        #: the model and its version, replaced together by :meth:`swap`
        self._active: tuple[MetaModel, str] = (
            model,
            version if version is not None else (model.version or ""),
        )
        self.feature_set = fs
        self.name = name
        self.min_confidence = float(threshold)
        self.use_toxicity = use_toxicity
        self.threads = None if threads is None else check_threads(threads)
        self.extend_window = extend_window
        self.metadata: dict[str, Any] = dict(metadata or {})
        #: where the model came from when loaded with :meth:`from_registry`
        self.ref: ModelRef | None = None
        #: 1.0 until a regime model exists
        self.regime_weight = 1.0
        self.counts = EnrichmentCounts()
        self.records: deque[EnrichmentRecord] = deque(maxlen=max_records)
        #: seconds each :meth:`enrich` call that scored an entry took (newest kept; the
        #: service's metrics drain it)
        self.latencies: deque[float] = deque(maxlen=4096)
        #: models installed by :meth:`swap`
        self.swaps = 0
        self._max_records = max_records
        self._by_signal: dict[str, EnrichmentRecord] = {}
        self._features: dict[str, _Features] = {}
        n_bar = len(fs.bar_features)
        self._n_bar = n_bar
        self._x = np.empty((1, n_bar + 2))  # + side and strength, as FeatureSet.with_signal
        self._tox_col = fs.bar_features.index("vpin_50") if "vpin_50" in fs.bar_features else -1

    @classmethod
    def from_registry(cls, spec: str, registry: str | Path, **options: Any) -> ModelEnrichment:
        """Load ``NAME[:VERSION]`` (no version: the latest) from the model folder ``registry``.

        ``options`` are the constructor's keyword arguments.

        Raises
        ------
        ConfigError
            For an unknown name (the available ones are listed), an unknown version (the saved
            versions are listed) or bad options.
        """
        model, ref, meta = ModelCatalog(registry).load(spec)
        enrichment = cls(model, name=ref.name, version=ref.version, metadata=meta, **options)
        enrichment.ref = ref
        return enrichment

    @property
    def model(self) -> MetaModel:
        """The meta-model scoring entries now."""
        return self._active[0]

    @property
    def version(self) -> str:
        """The version of :attr:`model` (the run record's and every new record's)."""
        return self._active[1]

    def swap(
        self,
        model: MetaModel,
        version: str | None = None,
        *,
        metadata: Mapping[str, Any] | None = None,
        ref: ModelRef | None = None,
    ) -> str:
        """Install ``model`` for the signals of the next :meth:`enrich` call; return the
        version it replaced.

        The model and its version change in one assignment; call it between two steps (on
        the kernel's thread), never from inside one. The features held are kept: they are
        the same feature set's. The threshold stays the configured ``min_confidence``.

        Parameters
        ----------
        model
            A fitted meta-model of the same feature set.
        version
            Its version (default: ``model.version``).
        metadata
            Its registry metadata (replaces the run record's; kept when None).
        ref
            Where it was saved (kept when None).

        Raises
        ------
        ConfigError
            For a model of another feature set, or an empty version.
        """
        if model.feature_set.to_dict() != self.feature_set.to_dict():
            raise ConfigError(
                f"cannot swap in a model of feature set {model.feature_set.key}: the run "
                f"uses {self.feature_set.key}"
            )
        label = version if version is not None else (model.version or "")
        if not label:
            raise ConfigError("a swapped-in model needs a version (save it to the registry)")
        previous = self._active[1]
        self._active = (model, label)
        if metadata is not None:
            self.metadata = dict(metadata)
        if ref is not None:
            self.ref = ref
        self.swaps += 1
        logger.info(
            "model %s swapped: %s -> %s", self.name, previous, label,
            extra={"model": self.name, "from": previous, "to": label},
        )  # fmt: skip
        return previous

    def record_of(self, signal_id: str) -> EnrichmentRecord | None:
        """The record of the entry signal with this id (None when it was never scored or
        ``max_records`` newer entries pushed it out)."""
        return self._by_signal.get(signal_id)

    def meta_confidence_of(self, signal_id: str) -> float | None:
        """The model's probability for the entry with this id (None when unknown)."""
        record = self._by_signal.get(signal_id)
        return None if record is None else record.meta_confidence

    @property
    def spec(self) -> str:
        """``name:version`` of the model."""
        return f"{self.name}:{self.version}" if self.name else self.version

    def describe(self) -> dict[str, Any]:
        """The model and settings of the run, and the counts so far (for the run record)."""
        data = self.metadata.get("data", {})
        return {
            "name": self.name,
            "version": self.version,
            "feature_set": self.feature_set.key,
            "min_confidence": self.min_confidence,
            "use_toxicity": self.use_toxicity,
            "regime_weight": self.regime_weight,
            "threads": self.threads,
            "trained_on": {
                k: data[k] for k in ("symbol", "timeframe", "start_ns", "end_ns") if k in data
            },
            "counts": self.counts.as_dict(),
        }

    # -- the Enrichment protocol ------------------------------------------------------------
    def prepare(self, view: MarketView) -> None:
        """Compute the features of every symbol's base-timeframe bars (causal formulas)."""
        trained_tf = self.metadata.get("data", {}).get("timeframe")
        if trained_tf and trained_tf != view.base_timeframe:
            logger.warning(
                "model %s was trained on %s bars; this run trades %s bars",
                self.spec,
                trained_tf,
                view.base_timeframe,
            )
        self._features = {s: self._compute_all(view.arrays(s)) for s in view.symbols}

    def extend(self, view: MarketView) -> None:
        """Bring the features up to date with bars appended to the view (and dropped from its
        front); only the new bars' rows are computed."""
        for symbol in view.symbols:
            arrays = view.arrays(symbol)
            held = self._features.get(symbol)
            if held is None or not len(held) or not len(arrays):
                self._features[symbol] = self._compute_all(arrays)
                continue
            old_ts, new_ts = held.ts, arrays.ts
            last = old_ts[-1]
            j = int(np.searchsorted(new_ts, last, side="right"))  # first new bar
            k0 = int(np.searchsorted(old_ts, new_ts[0], side="left"))  # bars that left
            if (
                j == 0
                or new_ts[j - 1] != last
                or k0 >= old_ts.shape[0]
                or old_ts[k0] != new_ts[0]
                or old_ts.shape[0] - k0 != j
            ):
                # not an append to the held bars (a replaced window): start over
                self._features[symbol] = self._compute_all(arrays)
                continue
            held.drop_front(k0)
            n = len(arrays)
            if j < n:
                lo = max(0, j - self.extend_window)
                rows = self.feature_set.compute(
                    new_ts[lo:], arrays.high[lo:], arrays.low[lo:], arrays.close[lo:],
                    arrays.volume[lo:],
                )  # fmt: skip
                held.append(rows[j - lo :])
            held.ts = new_ts

    def enrich(self, signals: Sequence[Signal], view: MarketView) -> list[Signal]:
        """Return the signals for the risk gate: entries with their confidence set, those
        below ``min_confidence`` dropped, exits unchanged."""
        started = time.perf_counter()
        counts = self.counts
        counts.signals += len(signals)
        model, version = self._active  # one model for the whole call (see swap)
        out: list[Signal] = []
        scored = counts.enriched
        for signal in signals:
            side = _SIDE.get(signal.action)
            if side is None:
                counts.exits += 1
                out.append(signal)
                continue
            meta, toxicity, cold = self._score(
                model, signal.symbol, view.index(signal.symbol), side
            )
            confidence = meta * self.regime_weight
            if self.use_toxicity and math.isfinite(toxicity):
                confidence *= 1.0 - toxicity
            confidence = min(1.0, max(0.0, confidence))
            kept = confidence >= self.min_confidence
            counts.enriched += 1
            if cold:
                counts.cold += 1
            if kept:
                out.append(dataclasses.replace(signal, confidence=confidence))
            else:
                counts.dropped += 1
            record = EnrichmentRecord(
                view.ts, signal.symbol, signal.position_id, side, meta, toxicity,
                self.regime_weight, confidence, kept, cold, version,
            )  # fmt: skip
            self.records.append(record)
            if signal.position_id is not None:
                self._index(signal.position_id, record)
        if counts.enriched != scored:
            self.latencies.append(time.perf_counter() - started)
        return out

    # -- helpers -----------------------------------------------------------------------------
    def drain(self) -> list[EnrichmentRecord]:
        """Return the records kept so far and forget them (e.g. after publishing them)."""
        out = list(self.records)
        self.records.clear()
        return out

    def _index(self, signal_id: str, record: EnrichmentRecord) -> None:
        by_signal = self._by_signal
        by_signal.pop(signal_id, None)  # a repeated id moves to the newest end
        by_signal[signal_id] = record
        if len(by_signal) > self._max_records:
            del by_signal[next(iter(by_signal))]

    def _compute_all(self, arrays: BarArrays) -> _Features:
        return _Features(self.feature_set.compute_bars(arrays), arrays.ts)

    def _score(self, model: MetaModel, symbol: str, i: int, side: int) -> tuple[float, float, bool]:
        """``(meta_confidence, toxicity, cold)`` for an entry on bar ``i`` of ``symbol``."""
        held = self._features.get(symbol)
        if held is None:
            raise ConfigError(
                f"the enrichment has no features for {symbol!r}: prepare() saw "
                f"{sorted(self._features)}"
            )
        if i < 0 or i >= len(held):
            return COLD_START_CONFIDENCE, math.nan, True
        row = held.rows[held.start + i]
        toxicity = float(row[self._tox_col]) if self._tox_col >= 0 else math.nan
        if np.isnan(row).any():
            return COLD_START_CONFIDENCE, toxicity, True
        x = self._x
        x[0, : self._n_bar] = row
        x[0, self._n_bar] = side
        x[0, self._n_bar + 1] = 1.0  # strength: signals carry none, training used 1.0
        meta = float(model.predict_proba(x, self.threads)[0])
        if not math.isfinite(meta):
            return COLD_START_CONFIDENCE, toxicity, True
        return min(1.0, max(0.0, meta)), toxicity, False


class ModelTimeline:
    """The enrichment of a run whose model was swapped while it ran (a retrained version):
    each signal is scored by the model that was in force at its step.

    ``versions`` are ``(after_ts, enrichment)`` pairs, the first with ``after_ts`` None: an
    enrichment scores the steps whose time is after its ``after_ts`` (a swap is applied
    between two events, so the step after the one at ``after_ts`` is the first to use it).
    Replays (``tradeloop parity``) use it to score every step as the live run did.
    """

    def __init__(self, versions: Sequence[tuple[int | None, ModelEnrichment]]) -> None:
        if not versions or versions[0][0] is not None:
            raise ValueError("the first version of a model timeline has no after_ts")
        self.versions = list(versions)
        self._after = [ts for ts, _ in versions[1:]]

    def _at(self, ts: int) -> ModelEnrichment:
        k = 0
        while k < len(self._after) and ts > self._after[k]:  # type: ignore[operator]
            k += 1
        return self.versions[k][1]

    @property
    def records(self) -> deque[EnrichmentRecord]:
        """The records of the version in force last."""
        return self.versions[-1][1].records

    def prepare(self, view: MarketView) -> None:
        """Prepare every version (each keeps its own features)."""
        for _, enrichment in self.versions:
            enrichment.prepare(view)

    def extend(self, view: MarketView) -> None:
        """Extend every version's features."""
        for _, enrichment in self.versions:
            enrichment.extend(view)

    def enrich(self, signals: Sequence[Signal], view: MarketView) -> list[Signal]:
        """Score with the version in force at the view's step."""
        return self._at(view.ts).enrich(signals, view)
