"""Retrain monitor: a dropping stream triggers once, a stable one never."""

from __future__ import annotations

import numpy as np
import pytest

from tradeloop.core.errors import ConfigError
from tradeloop.ml.monitor import RetrainMonitor


def _stream(acc: float, n: int, rng: np.random.Generator):
    for _ in range(n):
        p = rng.uniform(0.5, 1.0)  # always predicts "win"
        yield p, bool(rng.random() < acc)


def test_monitor_dropping_accuracy_triggers_exactly_once():
    rng = np.random.default_rng(0)
    mon = RetrainMonitor(0.62, drop_threshold=0.05, min_samples=200, window=400)
    events = []
    for p, won in [*_stream(0.62, 1000, rng), *_stream(0.40, 2000, rng)]:
        ev = mon.record(p, won)
        if ev is not None:
            events.append(ev)
    assert len(events) == 1
    ev = events[0]
    assert ev.reason == "accuracy_drop"
    assert ev.baseline_accuracy == 0.62
    assert ev.baseline_accuracy - ev.live_accuracy > 0.05
    assert ev.window_samples >= 200
    assert ev.samples_since_retrain > 1000


def test_monitor_stable_stream_never_triggers():
    rng = np.random.default_rng(1)
    mon = RetrainMonitor(0.60, drop_threshold=0.08, min_samples=200, window=400)
    fired = [mon.record(p, w) for p, w in _stream(0.60, 20_000, rng)]
    assert not any(fired)


def test_monitor_every_n_samples_and_rearm():
    mon = RetrainMonitor(0.5, every_n=50, min_samples=10, window=20)
    fired = [i for i in range(200) if mon.record(0.9, i % 2 == 0)]
    assert fired == [49]
    mon.mark_retrained(0.55)
    assert not mon.pending
    fired = [i for i in range(60) if mon.record(0.9, i % 2 == 0)]
    assert fired == [49]


def test_monitor_bad_settings_raise():
    with pytest.raises(ConfigError):
        RetrainMonitor(0.5, drop_threshold=0)
    with pytest.raises(ConfigError):
        RetrainMonitor(0.5, min_samples=300, window=200)
