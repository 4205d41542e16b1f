"""Regime transitions: exposure moves gradually to the new regime's level, with hysteresis.

:class:`TransitionManager` turns the detector's bar-by-bar regime into the regime the run acts
on and the exposure it trades with (a multiplier in [0, 1] of position sizes):

- **hysteresis**: a new regime is adopted only after the detector has named it on
  ``confirm_bars`` bars in a row, so a detector that flickers between two states does not
  churn the portfolio (a single contrary bar resets the count);
- **gradual exposure**: after a switch the exposure moves linearly from where it was to the
  new regime's level (``exposures``) over ``duration`` (seed 003: 30 minutes), measured in
  the bars' time; a switch during a ramp starts a new ramp from the current exposure, so the
  exposure never jumps between two bars closer than ``duration`` apart. On bars as long as
  the duration or longer the ramp completes by the next bar.

Before the first regime is adopted the exposure is 1 (no regime effect). ``uncertain`` (the
consensus below its agreement threshold: :meth:`TransitionManager.update` with
``uncertain=True``) is a regime like the others for hysteresis and exposure, with its own
exposure; the state still records the consensus's winning label as ``detected``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tradeloop.core.errors import ConfigError
from tradeloop.ml.regimes.base import UNCERTAIN

__all__ = ["DEFAULT_EXPOSURES", "RegimeState", "TransitionManager"]

logger = logging.getLogger(__name__)

#: exposure by regime: full in calm and normal markets, half in high volatility and when the
#: models disagree, none in a crisis
DEFAULT_EXPOSURES: dict[str, float] = {
    "calm": 1.0,
    "low_vol": 1.0,
    "normal": 1.0,
    "high_vol": 0.5,
    "crisis": 0.0,
    "uncertain": 0.5,
}
_MINUTE_NS = 60_000_000_000


@dataclass(frozen=True, slots=True)
class RegimeState:
    """The regime a run acts on at one bar.

    Attributes
    ----------
    ts
        Time of the update (UTC ns; the bar's close).
    label
        The adopted regime (None before the first one).
    detected
        What the detector named at this bar ('' in its warm-up).
    confidence
        The detector's confidence in ``detected`` (NaN in its warm-up).
    exposure
        The exposure in force now (ramping towards ``target``).
    target
        The adopted regime's exposure.
    uncertain
        The consensus's agreement was below its threshold at this bar (acted on as
        ``uncertain``; ``detected`` is still the vote's winner).
    """

    ts: int
    label: str | None
    detected: str
    confidence: float
    exposure: float
    target: float
    uncertain: bool = False

    def as_dict(self) -> dict[str, Any]:
        """Plain values (NaN confidence as None)."""
        return {
            "ts": self.ts,
            "label": self.label,
            "detected": self.detected,
            "confidence": self.confidence if math.isfinite(self.confidence) else None,
            "exposure": self.exposure,
            "target": self.target,
            "uncertain": self.uncertain,
        }


class TransitionManager:
    """Hysteresis and gradual exposure (see the module doc).

    Parameters
    ----------
    exposures
        Exposure by regime name (merged over :data:`DEFAULT_EXPOSURES`); a regime not in it
        gets ``default_exposure``.
    duration_ns
        How long a full exposure change takes (default 30 minutes).
    confirm_bars
        Bars in a row a new regime must be detected before it is adopted (1: at once).
    default_exposure
        Exposure of a regime the table does not name.

    Raises
    ------
    ConfigError
        For an exposure outside [0, 1], a negative duration or ``confirm_bars < 1``.
    """

    def __init__(
        self,
        exposures: Mapping[str, float] | None = None,
        *,
        duration_ns: int = 30 * _MINUTE_NS,
        confirm_bars: int = 3,
        default_exposure: float = 1.0,
    ) -> None:
        table = {**DEFAULT_EXPOSURES, **dict(exposures or {})}
        for name, value in [*table.items(), ("default_exposure", default_exposure)]:
            if not (isinstance(value, int | float) and 0.0 <= value <= 1.0):
                raise ConfigError(f"regime exposure {name} must be in [0, 1], got {value!r}")
        if duration_ns < 0:
            raise ConfigError(f"transition duration must be >= 0, got {duration_ns} ns")
        if confirm_bars < 1:
            raise ConfigError(f"confirm_bars must be >= 1, got {confirm_bars}")
        self.exposures = {k: float(v) for k, v in table.items()}
        self.duration_ns = int(duration_ns)
        self.confirm_bars = confirm_bars
        self.default_exposure = float(default_exposure)
        self.label: str | None = None
        self._candidate: str | None = None
        self._count = 0
        self._from = 1.0
        self._target = 1.0
        self._since: int | None = None
        #: regimes adopted so far (the first one included)
        self.switches = 0
        self.last: RegimeState | None = None

    def exposure_of(self, label: str) -> float:
        """The target exposure of regime ``label``."""
        return self.exposures.get(label, self.default_exposure)

    def exposure_at(self, ts: int) -> float:
        """The exposure in force at ``ts`` (on the current ramp)."""
        if self._since is None:
            return self._target
        if self.duration_ns == 0 or ts >= self._since + self.duration_ns:
            return self._target
        frac = max(0.0, (ts - self._since) / self.duration_ns)
        return self._from + (self._target - self._from) * frac

    def update(
        self, ts: int, detected: str, confidence: float, *, uncertain: bool = False
    ) -> RegimeState:
        """Take the detector's regime at ``ts`` (the bar's close) and return the state.

        ``uncertain`` (the consensus's agreement below its threshold): the bar counts as
        ``uncertain`` for hysteresis and exposure; ``detected`` keeps the vote's winner.
        """
        label_in = UNCERTAIN if (uncertain and detected) else detected
        state = self._advance(ts, label_in)
        state = RegimeState(
            ts, state.label, detected, confidence, state.exposure, state.target, uncertain
        )
        self.last = state
        return state

    def _advance(self, ts: int, detected: str) -> RegimeState:
        if detected and detected != self.label:
            if detected == self._candidate:
                self._count += 1
            else:
                self._candidate, self._count = detected, 1
            if self._count >= self.confirm_bars:
                self._from = self.exposure_at(ts)
                self._target = self.exposure_of(detected)
                self._since = ts
                previous, self.label = self.label, detected
                self._candidate, self._count = None, 0
                self.switches += 1
                logger.info(
                    "regime %s -> %s (exposure %.2f -> %.2f over %d min)",
                    previous, detected, self._from, self._target, self.duration_ns // _MINUTE_NS,
                )  # fmt: skip
        elif detected:
            self._candidate, self._count = None, 0
        return RegimeState(ts, self.label, detected, math.nan, self.exposure_at(ts), self._target)

    def export_state(self) -> dict[str, Any]:
        """Everything :meth:`update` carries from bar to bar, as plain values (stored with every
        step of a paper/live run, so a restarted run continues the same ramp and hysteresis)."""
        return {
            "label": self.label,
            "candidate": self._candidate,
            "count": self._count,
            "from": self._from,
            "target": self._target,
            "since": self._since,
            "switches": self.switches,
            "last": self.last.as_dict() if self.last is not None else None,
        }

    def restore_state(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`export_state`'s values (an empty mapping: a fresh manager)."""
        if not state:
            return
        self.label = state.get("label")
        self._candidate = state.get("candidate")
        self._count = int(state.get("count", 0))
        self._from = float(state.get("from", 1.0))
        self._target = float(state.get("target", 1.0))
        since = state.get("since")
        self._since = None if since is None else int(since)
        self.switches = int(state.get("switches", 0))
        last = state.get("last")
        self.last = None
        if last:
            conf = last.get("confidence")
            self.last = RegimeState(
                int(last["ts"]), last.get("label"), str(last.get("detected", "")),
                math.nan if conf is None else float(conf),
                float(last["exposure"]), float(last["target"]), bool(last.get("uncertain")),
            )  # fmt: skip
