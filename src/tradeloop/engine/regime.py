"""The regime of a run: a fitted regime model filtered causally inside the one kernel step.

:class:`RegimeSource` is a side input (``view.input("regime")``) that the
:class:`~tradeloop.engine.step.Step` updates before the strategy at every step, in backtest,
paper and live alike. At each step it

1. runs the detector's causal filter over the primary symbol's bars completed since the last
   step (:class:`~tradeloop.ml.regimes.base.RegimeFilter`: bar ``t`` from bars ``[0, t]``
   only; a backtest filters its whole series once at the first step with the same filter,
   which a test holds equal to the bar-by-bar run);
2. passes the bar's regime and confidence through the
   :class:`~tradeloop.ml.regimes.transitions.TransitionManager` (hysteresis, exposure ramped
   over ``duration``) at the step's close time; a consensus bar whose agreement is below the
   threshold keeps its label as ``detected`` but is acted on as ``uncertain`` (its own
   exposure);
3. applies the result: ``view.regime`` is the adopted regime (the risk engine's
   ``MarketContext.regime``, which picks the ``regime_leverage`` cap), the risk engine's
   ``set_regime(label, exposure)`` scales entry sizes by the gradual exposure, and the ML
   enrichment's ``regime_weight`` becomes the detector's confidence (so the meta-confidence of
   a signal is discounted when the regime is unclear);
4. publishes a :class:`~tradeloop.bus.events.RegimeEvent` on ``tradeloop.regimes`` when the run
   has a bus, and keeps the step's :class:`~tradeloop.ml.regimes.transitions.RegimeState` in
   :attr:`RegimeSource.history` (the report's regime shading and performance by regime).

A paper or live run stores :meth:`RegimeSource.export_state` with every step (the kernel's
engine state, one transaction per step): the transition manager's adopted regime, pending
candidate and its count, the exposure ramp (from, target, start) and the switch count. A
restarted run restores them and refilters the bars it holds (the causal filter's own state is
recomputed from those bars, so it equals an uninterrupted run's while the held window holds the
run's bars), then continues: the same regimes, exposures and orders as a run never stopped.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tradeloop.analysis.regimes import RegimeSeries
from tradeloop.core.errors import ConfigError
from tradeloop.ml.regimes.base import RegimeDetector, RegimeFilter
from tradeloop.ml.regimes.consensus import ConsensusFilter
from tradeloop.ml.regimes.store import load_regime_model
from tradeloop.ml.regimes.transitions import RegimeState, TransitionManager
from tradeloop.risk.config import duration_ns
from tradeloop.strategy.view import MarketView

if TYPE_CHECKING:
    from tradeloop.engine.step import Step

__all__ = ["RegimeOptions", "RegimeSource", "transition_ns"]

logger = logging.getLogger(__name__)


def transition_ns(text: str) -> int:
    """A transition time such as ``30m``, ``2h`` or ``0`` (at once) in nanoseconds.

    Raises
    ------
    ConfigError
        For text that is not a duration.
    """
    t = text.strip()
    if t[:1] == "0" and not t.rstrip("smhdw").strip("0"):
        return 0
    return duration_ns(t, field_name="regime transition")


@dataclass(frozen=True, slots=True)
class RegimeOptions:
    """A regime model for a run (``--regime NAME`` or ``[regime]`` in a config file).

    Attributes
    ----------
    name
        ``NAME`` or ``NAME:VERSION`` of a regime model in ``registry``.
    registry
        The model folder.
    transition
        How long a full exposure change takes (``30m``, ``2h``, ``0s``...).
    confirm_bars
        Bars in a row a new regime must be detected before it is adopted.
    exposures
        Exposure by regime in [0, 1] (merged over the defaults: ``high_vol`` 0.5, ``crisis``
        0, ``uncertain`` 0.5, the others 1).
    symbol
        The symbol whose bars the regime is detected on (default: the strategy's first).

    Raises
    ------
    ConfigError
        On construction, for an empty name, a bad duration or ``confirm_bars < 1``.
    """

    name: str
    registry: Path = Path("models")
    transition: str = "30m"
    confirm_bars: int = 3
    exposures: Mapping[str, float] = field(default_factory=dict)
    symbol: str | None = None

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ConfigError("regime model name is empty; give NAME or NAME:VERSION")
        object.__setattr__(self, "registry", Path(self.registry))
        object.__setattr__(self, "exposures", dict(self.exposures))
        self.manager()  # validates the duration, exposures and confirm_bars

    def manager(self) -> TransitionManager:
        """A fresh transition manager with these settings."""
        ns = transition_ns(self.transition)
        return TransitionManager(
            self.exposures,
            duration_ns=ns,
            confirm_bars=self.confirm_bars,
        )

    def source(self) -> RegimeSource:
        """Load the model and return the run's regime source.

        Raises
        ------
        ConfigError
            For an unknown model or version (the saved ones are listed).
        """
        detector, ref, meta = load_regime_model(self.name, self.registry)
        return RegimeSource(
            detector, self.manager(), name=ref.name, version=ref.version, symbol=self.symbol,
            metadata=meta,
        )  # fmt: skip

    def describe(self) -> dict[str, Any]:
        """The options as plain values (run records)."""
        return {
            "name": self.name,
            "transition": self.transition,
            "confirm_bars": self.confirm_bars,
            "exposures": dict(self.exposures),
            "symbol": self.symbol,
        }


class RegimeSource:
    """The ``regime`` side input and its effects on risk and enrichment (see the module doc).

    Parameters
    ----------
    detector
        A fitted regime detector.
    manager
        The transition manager (default: 30-minute ramps, 3 confirming bars).
    name, version
        How the run record names the model.
    symbol
        The symbol whose bars are filtered (default: the view's first symbol).
    metadata
        The registry metadata of the model (run records).
    """

    name = "regime"

    def __init__(
        self,
        detector: RegimeDetector,
        manager: TransitionManager | None = None,
        *,
        name: str = "",
        version: str = "",
        symbol: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.detector = detector
        self.manager = manager if manager is not None else TransitionManager()
        self.model_name = name
        self.version = version
        self.symbol = symbol
        self.metadata = dict(metadata or {})
        self.labels = detector.names
        self._filter: RegimeFilter | None = None
        self._last_ts: int | None = None
        #: per processed bar of the series: state index (-1 warm-up) and confidence
        self._state: list[int] = []
        self._conf: list[float] = []
        self._pre: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._step: Step | None = None
        #: the state at every step (the report's shading and performance by regime) and the
        #: step's open time
        self.history: list[RegimeState] = []
        self.step_ts: list[int] = []
        #: bars filtered so far
        self.bars_seen = 0
        #: open time of the last bar counted in :attr:`bars_seen` before a restart
        self._counted_ts: int | None = None

    # -- wiring --------------------------------------------------------------------------------
    def attach(self, step: Step) -> None:
        """Called by the step that runs this source: its risk engine, enrichment and events."""
        self._step = step

    def describe(self) -> dict[str, Any]:
        """The model, the transition settings and what happened (run records, status)."""
        last = self.manager.last
        return {
            "name": self.model_name,
            "version": self.version,
            "method": self.detector.method,
            "states": list(self.labels),
            "transition_ns": self.manager.duration_ns,
            "confirm_bars": self.manager.confirm_bars,
            "exposures": dict(self.manager.exposures),
            "switches": self.manager.switches,
            "bars": self.bars_seen,
            "current": last.as_dict() if last is not None else None,
        }

    # -- persistence (paper/live: stored with every step) ------------------------------------
    def export_state(self) -> dict[str, Any]:
        """The state a restarted run needs: the transition manager's and the bar count."""
        return {
            "model": self.spec,
            "manager": self.manager.export_state(),
            "bars_seen": self.bars_seen,
            "last_ts": self._last_ts if self._last_ts is not None else self._counted_ts,
        }

    def restore_state(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`export_state` (an empty mapping: nothing stored, start fresh).

        The causal filter restarts on the bars the kernel holds at its next step; the bars
        up to ``last_ts`` are refiltered but not counted again.
        """
        if not state:
            return
        self.manager.restore_state(state.get("manager") or {})
        self.bars_seen = int(state.get("bars_seen", 0))
        last = state.get("last_ts")
        self._counted_ts = None if last is None else int(last)
        self._filter, self._last_ts, self._pre = None, None, None

    # -- the InputSource protocol --------------------------------------------------------------
    def update(self, view: MarketView) -> None:
        """Filter the bars completed since the last step, then apply the step's regime."""
        symbol = self.symbol or view.symbols[0]
        stop = view.index(symbol) + 1
        if stop <= 0:
            return
        bars = view.arrays(symbol)
        if self._filter is None:
            self._filter = self.detector.online()
            self._last_ts = None
            if len(bars) > stop:
                # a historical run: filter the whole series once with the same causal filter
                self._pre = self._run(bars, len(bars))
                self.bars_seen = len(bars)
        if self._pre is not None:
            i = stop - 1
            state, conf = int(self._pre[0][i]), float(self._pre[1][i])
        else:
            start = (
                0
                if self._last_ts is None
                else int(np.searchsorted(bars.ts, self._last_ts, side="right"))
            )
            if start < stop:
                self._filter.position = start  # the held window may have moved its front
                states, confs, _ = self._run(bars, stop)
                self._state.extend(states.tolist())
                self._conf.extend(confs.tolist())
                self._last_ts = int(bars.ts[stop - 1])
                counted = start
                if self._counted_ts is not None:  # refiltered after a restart: counted before
                    counted = max(start, int(np.searchsorted(bars.ts, self._counted_ts, "right")))
                    self._counted_ts = None
                self.bars_seen += stop - counted
                # keep only what the next step can need
                del self._state[:-1], self._conf[:-1]
            state, conf = (self._state[-1], self._conf[-1]) if self._state else (-1, math.nan)
        detected = self.labels[state] if state >= 0 else ""
        acted = getattr(self.detector, "acted_label", None)
        uncertain = acted is not None and acted(detected, conf) != detected
        self._apply(view, self.manager.update(view.now, detected, conf, uncertain=uncertain))

    def _run(self, bars: Any, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        f = self._filter
        assert f is not None
        if isinstance(f, ConsensusFilter):
            return f.step(bars, stop)
        from tradeloop.ml.regimes.base import argmax_rows

        probs = f.run(bars, stop)
        state, conf = argmax_rows(probs)
        return state, conf, probs

    def _apply(self, view: MarketView, state: RegimeState) -> None:
        view.regime = state.label
        view.inputs.setdefault(self.name, {})[self.symbol or view.symbols[0]] = state
        self.history.append(state)
        self.step_ts.append(view.ts)
        step = self._step
        if step is None:
            return
        step.risk.set_regime(state.label, state.exposure)
        enrichment = step.enrichment
        if enrichment is not None:
            weight = state.confidence if math.isfinite(state.confidence) else 1.0
            for target in getattr(enrichment, "versions", ((None, enrichment),)):
                if hasattr(target[1], "regime_weight"):
                    target[1].regime_weight = weight
        if step.events is not None:
            step.events.regime(view.ts, self.symbol or view.symbols[0], state, self.spec)

    # -- results -------------------------------------------------------------------------------
    @property
    def spec(self) -> str:
        """``name:version`` of the model ('' when not from the registry)."""
        if self.model_name and self.version:
            return f"{self.model_name}:{self.version}"
        return self.model_name or self.detector.method

    def series(self, ts: np.ndarray, symbol: str) -> RegimeSeries:
        """The history on the run's steps ``ts`` (steps never updated, e.g. warm-up steps
        skipped by ``trade_start``, have no regime)."""
        n = int(ts.shape[0])
        labels = [""] * n
        detected = [""] * n
        conf = np.full(n, np.nan)
        expo = np.ones(n)
        at = np.searchsorted(ts, np.asarray(self.step_ts, dtype=np.int64))
        for k, (i, state) in enumerate(zip(at.tolist(), self.history, strict=True)):
            if i < n and int(ts[i]) == self.step_ts[k]:
                labels[i] = state.label or ""
                detected[i] = state.detected
                conf[i] = state.confidence
                expo[i] = state.exposure
        return RegimeSeries(self.symbol or symbol, self.spec, ts, labels, detected, conf, expo)
