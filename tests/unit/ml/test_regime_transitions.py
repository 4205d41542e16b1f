"""The transition manager: exposure ramps linearly over the duration, hysteresis stops churn."""

from __future__ import annotations

import itertools

import pytest

from tradeloop.core.errors import ConfigError
from tradeloop.ml.regimes import TransitionManager

MIN = 60_000_000_000


def feed(manager: TransitionManager, labels: list[str], bar: int = 5 * MIN, t0: int = 0):
    return [manager.update(t0 + k * bar, label, 0.9) for k, label in enumerate(labels)]


def test_exposure_ramps_linearly_over_the_duration_and_never_jumps() -> None:
    # Arrange: 30-minute ramps, 5-minute bars, a regime needs 2 bars in a row
    m = TransitionManager(duration_ns=30 * MIN, confirm_bars=2)
    # Act: calm for 4 bars, then high volatility (exposure 0.5) for 12
    states = feed(m, ["low_vol"] * 4 + ["high_vol"] * 12)
    # Assert: adopted on the 2nd bar of each; the ramp is 1 -> 0.5 over 6 bars of 5 minutes
    assert [s.label for s in states[:5]] == [None, "low_vol", "low_vol", "low_vol", "low_vol"]
    assert states[5].label == "high_vol"  # confirmed at bar 5 (t = 25 min)
    ramp = [s.exposure for s in states[5:]]
    expected = [1.0 - 0.5 * min(1.0, k * 5 / 30) for k in range(len(ramp))]
    assert ramp == pytest.approx(expected, abs=1e-12)
    assert states[-1].exposure == 0.5
    assert states[-1].target == 0.5
    assert m.switches == 2


def test_a_reversal_mid_ramp_starts_from_the_current_exposure() -> None:
    m = TransitionManager(duration_ns=30 * MIN, confirm_bars=1)
    states = feed(m, ["low_vol", "crisis", "crisis", "crisis", "low_vol", "low_vol"])
    # crisis (exposure 0) adopted at bar 1 (t = 5 min): at t = 15 min the ramp is at 2/3
    assert states[3].exposure == pytest.approx(1 - 10 / 30)
    # low_vol adopted at t = 20 min: the new ramp starts where the old one is (1/2), no jump
    assert states[4].label == "low_vol"
    assert states[4].exposure == pytest.approx(1 - 15 / 30)
    # and rises from there to 1 over 30 minutes
    assert states[5].exposure == pytest.approx(0.5 + 0.5 * 5 / 30)
    steps = [abs(b.exposure - a.exposure) for a, b in itertools.pairwise(states)]
    assert max(steps) <= 5 / 30 + 1e-12


def test_a_flickering_detector_does_not_churn() -> None:
    # Arrange: the detector alternates every bar, or gives a contrary bar now and then
    m = TransitionManager(confirm_bars=3)
    flicker = ["low_vol", "low_vol", "low_vol"] + ["high_vol", "low_vol"] * 50
    blips = ["low_vol"] * 3 + (["low_vol"] * 5 + ["high_vol"] * 2) * 20
    # Act
    states = feed(m, flicker)
    other = TransitionManager(confirm_bars=3)
    states2 = feed(other, blips)
    # Assert: one switch (the first regime) each, exposure never moves
    assert m.switches == 1
    assert other.switches == 1
    assert {s.label for s in states[3:]} == {"low_vol"}
    assert {s.exposure for s in states + states2} == {1.0}


def test_warm_up_bars_keep_the_exposure_at_one() -> None:
    m = TransitionManager()
    states = feed(m, ["", "", ""])
    assert [s.label for s in states] == [None, None, None]
    assert {s.exposure for s in states} == {1.0}


def test_zero_duration_applies_at_once_and_custom_exposures() -> None:
    m = TransitionManager({"high_vol": 0.2}, duration_ns=0, confirm_bars=1)
    states = feed(m, ["low_vol", "high_vol", "uncertain", "mystery"])
    assert [s.exposure for s in states] == [1.0, 0.2, 0.5, 1.0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"exposures": {"high_vol": 1.5}}, r"high_vol must be in \[0, 1\]"),
        ({"duration_ns": -1}, "duration must be >= 0"),
        ({"confirm_bars": 0}, "confirm_bars must be >= 1"),
    ],
)
def test_bad_settings_are_refused(kwargs, message) -> None:
    with pytest.raises(ConfigError, match=message):
        TransitionManager(**kwargs)
