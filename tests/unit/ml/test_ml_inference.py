"""Inference loop: cold start, enrichment, latency breakdown, atomic hot-swap under load."""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest

from tradeloop.core.errors import ConfigError
from tradeloop.ml.features import DEFAULT_FEATURE_SET
from tradeloop.ml.inference import COLD_START_CONFIDENCE, InferenceLoop, SignalEvent
from tradeloop.ml.model import MetaModel
from tradeloop.ml.orchestrator import MLOrchestrator
from tradeloop.ml.training import TrainConfig, train_meta_model


class _Const:
    """A stand-in classifier with a fixed probability."""

    def __init__(self, p: float) -> None:
        self.p = p

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        out = np.empty((x.shape[0], 2))
        out[:, 1] = self.p
        out[:, 0] = 1 - self.p
        return out


def _feed(loop, bars, n=None):
    for i in range(n or len(bars)):
        loop.on_bar(bars.bar(i))


def _sig(i: int, symbol: str = "SYN/USDT", side: int = 1) -> SignalEvent:
    return SignalEvent(f"s{i}", symbol, 0, side)


def test_inference_cold_start_is_half_with_regime_weight_one(bars):
    loop = InferenceLoop()
    out = loop.process(_sig(0))
    assert out.meta_confidence == COLD_START_CONFIDENCE
    assert out.regime_weight == 1.0
    assert out.model_version == "none"
    _feed(loop, bars, 300)
    out = loop.process(_sig(1))
    assert out.meta_confidence == COLD_START_CONFIDENCE
    assert 0 <= out.toxicity <= 1


def test_inference_with_model_enriches_and_reports_latency(bars):
    # Arrange
    idx = np.arange(120, len(bars) - 1, 3)
    res = train_meta_model(
        bars, idx, np.ones(idx.size, np.int64), TrainConfig(estimator_params={"n_estimators": 10})
    )
    res.model.version = "v0007"
    loop = InferenceLoop(model=res.model)
    _feed(loop, bars)
    # Act
    out = loop.process(_sig(1))
    # Assert
    row = DEFAULT_FEATURE_SET.compute_bars(bars)[-1]
    expected = res.model.predict_one(DEFAULT_FEATURE_SET.with_signal(row, 1.0)[0])
    assert out.meta_confidence == pytest.approx(expected)
    assert out.model_version == "v0007"
    assert out.total_ns >= out.features_ns + out.predict_ns > 0
    meta = out.to_meta_output()
    assert meta.confidence == pytest.approx(expected)
    assert meta.take == (expected >= 0.5)
    assert loop.processed == 1


def test_inference_refuses_a_model_of_another_feature_set():
    other = dataclasses.replace(DEFAULT_FEATURE_SET, name="other")
    with pytest.raises(ConfigError):
        InferenceLoop().hot_swap_model(MetaModel(_Const(0.9), other))


def test_hot_swap_under_load_answers_each_signal_once_with_monotonic_versions(bars):
    # Arrange: 4 threads x 5,000 signals while the model is swapped 50 times
    loop = InferenceLoop()
    _feed(loop, bars, 400)
    results: dict[int, list] = {t: [] for t in range(4)}
    start = threading.Barrier(5)

    def submit(t: int) -> None:
        start.wait()
        out = results[t]
        for k in range(5000):
            out.append(loop.process(_sig(t * 5000 + k)))

    def swapper() -> None:
        start.wait()
        for k in range(50):
            model = MetaModel(_Const(0.01 * (k + 1)), DEFAULT_FEATURE_SET, version=f"g{k + 1:03d}")
            loop.hot_swap_model(model)

    threads = [threading.Thread(target=submit, args=(t,)) for t in range(4)]
    threads.append(threading.Thread(target=swapper))
    # Act
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    # Assert
    ids = [e.signal.signal_id for r in results.values() for e in r]
    assert len(ids) == 20_000
    assert len(set(ids)) == 20_000
    assert loop.processed == 20_000
    assert loop.generation == 50
    for r in results.values():
        gens = [0 if e.model_version == "none" else int(e.model_version[1:]) for e in r]
        assert gens == sorted(gens)
        for e in r:  # each answer came from the model it names
            if e.model_version != "none":
                assert e.meta_confidence == pytest.approx(0.01 * int(e.model_version[1:]))


def test_orchestrator_start_process_outcome_retrain(tmp_path, bars):
    orch = MLOrchestrator(registry=tmp_path, monitor_kwargs={"min_samples": 20, "window": 40})
    with pytest.raises(ConfigError):
        orch.process_signal(_sig(0))
    orch.start()
    _feed(orch.inference, bars, 300)
    assert orch.process_signal(_sig(0)).model_version == "none"
    idx = np.arange(120, len(bars) - 1, 3)
    res = orch.train(
        bars, idx, np.ones(idx.size, np.int64), TrainConfig(estimator_params={"n_estimators": 10})
    )
    assert orch.inference.model_version == res.model.version == "v0001"
    fired = []
    for k in range(80):
        out = orch.process_signal(_sig(100 + k))
        won = out.meta_confidence < 0.5  # always wrong
        ev = orch.record_outcome(out.signal.signal_id, won)
        if ev is not None:
            fired.append(ev)
    assert len(fired) == 1
    assert fired[0].reason == "accuracy_drop"
    orch2 = MLOrchestrator(registry=tmp_path)
    orch2.start()
    assert orch2.inference.model_version == "v0001"
    orch2.stop()
