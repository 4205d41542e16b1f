"""Regime detectors on a synthetic Markov-switching series with known states.

The series is generated here with a fixed seed: two states with different means and
volatilities and a persistent transition matrix. Detectors are fitted on the first 3000 bars
and judged on the 1000 bars after (out of sample), filtering causally.
"""

from __future__ import annotations

import itertools
import sys

import numpy as np
import pytest

from tradeloop.core.bar import BarArrays
from tradeloop.core.errors import ConfigError, DataError
from tradeloop.core.portfolio import Portfolio
from tradeloop.core.signal import Signal
from tradeloop.engine.config import RunConfig
from tradeloop.engine.kernel import BacktestEngine
from tradeloop.engine.market import MarketData
from tradeloop.engine.regime import RegimeSource
from tradeloop.ml.regimes import (
    ConsensusDetector,
    GBMDetector,
    HMMDetector,
    LSTMDetector,
    TransitionManager,
    build_detector,
    load_regime_model,
    save_regime_model,
)
from tradeloop.ml.regimes.base import UNCERTAIN
from tradeloop.ml.registry import ModelRegistry
from tradeloop.strategy.base import Strategy
from tradeloop.strategy.view import MarketView
from tradeloop.testing.kernels import test_instrument

N, TRAIN = 4000, 3000
HOUR = 3_600_000_000_000
T0 = 1_600_000_000 // 3600 * HOUR


def markov_switching(
    n: int = N,
    seed: int = 7,
    mus: tuple[float, ...] = (0.0005, -0.0015),
    sigmas: tuple[float, ...] = (0.004, 0.02),
    stay: float = 0.99,
) -> tuple[BarArrays, np.ndarray]:
    """Bars whose log returns switch between Gaussian states by a Markov chain."""
    rng = np.random.default_rng(seed)
    k = len(mus)
    trans = np.full((k, k), (1 - stay) / (k - 1))
    np.fill_diagonal(trans, stay)
    states = np.empty(n, dtype=np.int64)
    states[0] = 0
    for t in range(1, n):
        states[t] = rng.choice(k, p=trans[states[t - 1]])
    ret = np.asarray(mus)[states] + np.asarray(sigmas)[states] * rng.standard_normal(n)
    close = 100.0 * np.exp(np.cumsum(ret))
    open_ = np.r_[100.0, close[:-1]]
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.001, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.001, n)))
    volume = np.exp(rng.normal(10.0, 0.3, n) + 0.8 * states)
    ts = T0 + np.arange(n, dtype=np.int64) * HOUR
    return BarArrays("SYN/USD", "1h", ts, open_, high, low, close, volume), states


@pytest.fixture(scope="module")
def series() -> tuple[BarArrays, np.ndarray]:
    return markov_switching()


@pytest.fixture(scope="module")
def hmm(series) -> HMMDetector:
    bars, _ = series
    return HMMDetector(2, seed=0, n_init=1).fit(bars.slice(0, TRAIN))


@pytest.fixture(scope="module")
def consensus(series, hmm) -> ConsensusDetector:
    bars, _ = series
    train = bars.slice(0, TRAIN)
    gbm = GBMDetector(2, seed=0).fit(train, labeler=hmm)
    lstm = LSTMDetector(2, seed=0).fit(train, labeler=hmm)  # the default network
    return ConsensusDetector(2, [hmm, gbm, lstm])


@pytest.fixture(scope="module")
def detections(series, consensus) -> dict:
    """Each detector's causal run over the whole series, computed once."""
    bars, _ = series
    out = {m.method: m.detect(bars) for m in consensus.members}
    out["consensus"] = consensus.detect(bars)
    return out


def matched_accuracy(pred: np.ndarray, truth: np.ndarray, k: int) -> tuple[float, tuple]:
    """Best accuracy over the permutations of the predicted labels, and that permutation."""
    best, best_perm = -1.0, ()
    for perm in itertools.permutations(range(k)):
        mapped = np.asarray(perm)[pred]
        acc = float((mapped == truth).mean())
        if acc > best:
            best, best_perm = acc, perm
    return best, best_perm


def test_hmm_detects_the_states_causally_with_85pct_accuracy_out_of_sample(
    series, hmm, detections
) -> None:
    # Arrange
    _, truth = series
    # Act
    path = detections["hmm"]
    # Assert: every bar after the warm-up has a state; judged on the unseen bars only
    assert (path.state[: hmm.lookback] == -1).all()
    assert (path.state[hmm.lookback :] >= 0).all()
    acc, perm = matched_accuracy(path.state[TRAIN:], truth[TRAIN:], 2)
    assert acc >= 0.85
    assert perm == (0, 1)  # ordered by volatility: state 0 is the calm one, no relabelling
    assert path.names == ("low_vol", "high_vol")


def test_states_are_named_alike_by_fits_on_different_data_and_seeds(series) -> None:
    # Arrange: two fits on disjoint halves with different seeds
    bars, _ = series
    a = HMMDetector(2, seed=1, n_init=1).fit(bars.slice(0, 2000))
    b = HMMDetector(2, seed=5, n_init=1).fit(bars.slice(2000, N))
    # Act
    pa, pb = a.detect(bars), b.detect(bars)
    # Assert: the same bars get the same names, and low_vol is the lower-volatility state
    ok = (pa.state >= 0) & (pb.state >= 0)
    assert float((pa.state[ok] == pb.state[ok]).mean()) > 0.95
    for det in (a, b):
        stats = {s["state"]: s for s in det.state_stats}
        assert stats["low_vol"]["mean_vol"] < stats["high_vol"]["mean_vol"]


def test_three_states_are_ordered_by_volatility(series) -> None:
    bars, truth = markov_switching(
        n=4000, seed=3, mus=(0.0008, 0.0, -0.002), sigmas=(0.004, 0.01, 0.025)
    )
    det = HMMDetector(3, seed=0, n_init=1).fit(bars.slice(0, TRAIN))
    path = det.detect(bars)
    acc, perm = matched_accuracy(path.state[TRAIN:], truth[TRAIN:], 3)
    assert acc >= 0.85
    assert perm == (0, 1, 2)
    vols = [s["mean_vol"] for s in det.state_stats]
    assert vols == sorted(vols)


def test_forward_filter_equals_hmmlearn_predict_proba_on_every_prefix(
    series, hmm, detections
) -> None:
    # Arrange: hmmlearn's forward-backward posterior of the last row of a prefix is the
    # filtered probability at that row (the peer check of our forward recursion)
    bars, _ = series
    x = hmm.standardized(bars)
    path = detections["hmm"]
    rows = [*range(0, 40), *range(40, x.shape[0], 97), x.shape[0] - 1]
    # Act
    theirs = np.array([hmm.model.predict_proba(x[: t + 1])[-1] for t in rows])
    ours = path.probs[[hmm.lookback + t for t in rows]]
    # Assert
    assert len(rows) > 70
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-9)


def test_bar_by_bar_filter_equals_the_batch_run_exactly(series, hmm, detections) -> None:
    # Arrange
    bars, _ = series
    batch = detections["hmm"]
    f = hmm.online()
    # Act: one bar at a time, as a live run sees them
    rows = [f.run(bars.slice(0, i + 1), i + 1) for i in range(len(bars))]
    online = np.vstack(rows)
    # Assert: every bar processed once, identical numbers
    assert online.shape == (len(bars), 2)
    assert f.position == len(bars)
    np.testing.assert_array_equal(online, batch.probs)


@pytest.mark.parametrize("method", ["hmm", "gbm", "lstm", "consensus"])
def test_detection_on_data_cut_at_t_equals_the_full_run_up_to_t(
    series, hmm, consensus, detections, method: str
) -> None:
    # Arrange
    bars, _ = series
    det = {
        "hmm": hmm,
        "gbm": consensus.members[1],
        "lstm": consensus.members[2],
        "consensus": consensus,
    }[method]
    full = detections[method]
    for t in (det.lookback + 1, 1234, N - 1):
        # Act
        cut = det.detect(bars.slice(0, t))
        # Assert: no future bar changes a past regime
        assert len(cut) == t
        np.testing.assert_array_equal(cut.state, full.state[:t])
        if method in ("lstm", "consensus"):  # torch sums may round differently by batch size
            np.testing.assert_allclose(cut.confidence, full.confidence[:t], rtol=0, atol=1e-12)
        else:
            np.testing.assert_array_equal(cut.confidence, full.confidence[:t])


def test_consensus_is_at_least_as_accurate_as_its_best_member_on_every_bar(
    series, detections
) -> None:
    # Arrange
    _, truth = series
    ev = slice(TRAIN, N)
    singles = {
        m: float((detections[m].state[ev] == truth[ev]).mean()) for m in ("hmm", "gbm", "lstm")
    }
    # Act
    path = detections["consensus"]
    state = path.state[ev]
    # Assert: a label on every unseen bar (the vote's winner), judged on ALL of them
    assert path.names == ("low_vol", "high_vol")
    assert set(singles) == {"hmm", "gbm", "lstm"}
    assert min(singles.values()) > 0.85
    assert ((state == 0) | (state == 1)).all()
    acc = float((state == truth[ev]).mean())
    assert acc >= max(singles.values())
    # disagreement is a separate flag: exactly the bars whose agreement is below 75%
    assert path.uncertain is not None
    flagged = path.uncertain[ev]
    assert 0 < flagged.sum() <= 0.1 * flagged.size
    np.testing.assert_array_equal(flagged, path.confidence[ev] < 0.75)
    rows = path.rows()
    assert len(rows) == N
    assert sum(r["uncertain"] for r in rows) == int(path.uncertain.sum())


class _Flat(Strategy):
    """Trades nothing: the run only carries the regime."""

    name = "flat"

    def on_bar(self, view: MarketView, portfolio: Portfolio) -> list[Signal]:
        return []


def test_below_the_threshold_the_run_acts_on_uncertain_with_its_exposure(
    series, consensus, detections
) -> None:
    # Arrange: the consensus as a run's regime source (adopt at once, no ramp)
    bars, _ = series
    path = detections["consensus"]
    source = RegimeSource(consensus, TransitionManager(duration_ns=0, confirm_bars=1))
    market = MarketData({bars.symbol: bars}, {bars.symbol: test_instrument(bars.symbol)}, "1h")
    # Act
    BacktestEngine(_Flat(), market, RunConfig(balance=1_000), inputs=(source,)).run()
    # Assert: every bar counted; a flagged bar is acted on as uncertain (exposure 0.5) while
    # its detected label stays the winner; an unflagged bar acts on the winner
    hist = source.history
    assert len(hist) == N
    assert path.uncertain is not None
    ready = path.state >= 0
    flagged = np.flatnonzero(path.uncertain & ready)
    assert flagged.size > 0
    for i in flagged.tolist():
        assert hist[i].uncertain
        assert hist[i].label == UNCERTAIN
        assert hist[i].exposure == 0.5
        assert hist[i].detected == path.names[path.state[i]]
    for i in np.flatnonzero(~path.uncertain & ready).tolist():
        assert not hist[i].uncertain
        assert hist[i].label == hist[i].detected == path.names[path.state[i]]
    assert sum(s.label == UNCERTAIN for s in hist) == flagged.size


def test_weighted_vote_with_the_threshold_by_hand(hmm) -> None:
    # Arrange: three members with weights 0.5, 0.3, 0.2
    cons = ConsensusDetector(2, [hmm, hmm, hmm], weights=[5, 3, 2], threshold=0.75)
    a = np.array([[0.9, 0.1], [0.9, 0.1], [0.2, 0.8]])
    b = np.array([[0.8, 0.2], [0.1, 0.9], [0.3, 0.7]])
    c = np.array([[0.7, 0.3], [0.2, 0.8], [np.nan, np.nan]])
    # Act
    state, conf, mean = cons.combine([a, b, c])
    # Assert: row 0 mean 0.83 >= 0.75; row 1 mean 0.5*0.9+0.3*0.1+0.2*0.2 = 0.52 < 0.75:
    # still labelled with the winner, flagged uncertain
    np.testing.assert_allclose(mean[0], [0.83, 0.17])
    assert state.tolist() == [0, 0, -1]
    np.testing.assert_allclose(conf[:2], [0.83, 0.52])
    assert np.isnan(conf[2])
    assert cons.is_uncertain(conf).tolist() == [False, True, False]
    assert cons.acted_label("low_vol", 0.52) == UNCERTAIN
    assert cons.acted_label("low_vol", 0.83) == "low_vol"
    # hard voting: row 1 votes 0.5 for state 0 and 0.5 for state 1 -> uncertain
    cons.voting = "hard"
    state, conf, _ = cons.combine([a, b, c])
    assert state.tolist()[2] == -1
    np.testing.assert_allclose(conf[:2], [1.0, 0.5])
    assert cons.is_uncertain(conf).tolist() == [False, True, False]


def test_registry_round_trip_and_kinds_kept_apart(tmp_path, series, hmm, detections) -> None:
    # Arrange
    bars, _ = series
    ref = save_regime_model(tmp_path, "syn_hmm", hmm, bars=bars)
    # Act
    loaded, ref2, meta = load_regime_model("syn_hmm", tmp_path)
    # Assert
    assert ref2.spec == ref.spec == "syn_hmm:v0001"
    assert meta["kind"] == "regime"
    assert meta["states"] == ["low_vol", "high_vol"]
    assert meta["data"]["bars"] == N
    np.testing.assert_array_equal(loaded.detect(bars).probs, detections["hmm"].probs)
    with pytest.raises(ConfigError, match=r"regime model.*--regime"):
        ModelRegistry(tmp_path / "syn_hmm").load()
    with pytest.raises(ConfigError, match=r"unknown regime model 'nope'.*regime fit"):
        load_regime_model("nope", tmp_path)


def _bars(close: np.ndarray, volume: np.ndarray | None = None) -> BarArrays:
    n = close.shape[0]
    ts = T0 + np.arange(n, dtype=np.int64) * HOUR
    vol = np.full(n, 1000.0) if volume is None else volume
    return BarArrays("BAD/USD", "1h", ts, close, close * 1.001, close * 0.999, close, vol)


def test_too_little_data_is_refused_naming_the_problem(series) -> None:
    bars, _ = series
    with pytest.raises(DataError, match=r"too little data for a 2-state HMM fit: 150 bars"):
        HMMDetector(2).fit(bars.slice(0, 150))
    with pytest.raises(DataError, match="too little data for a boosted-tree"):
        GBMDetector(2).fit(bars.slice(0, 100))


def test_constant_prices_are_refused(series) -> None:
    with pytest.raises(DataError, match="constant prices"):
        HMMDetector(2, n_init=1).fit(_bars(np.full(2000, 50.0)))


def test_nan_feature_inputs_name_the_row_and_field(series) -> None:
    bars, _ = series
    vol = bars.volume.copy()
    vol[777] = np.nan
    bad = BarArrays("SYN/USD", "1h", bars.ts, bars.open, bars.high, bars.low, bars.close, vol)
    with pytest.raises(DataError, match="volume must be a number") as err:
        HMMDetector(2).fit(bad)
    assert err.value.row == 777
    assert err.value.field == "volume"
    close = bars.close.copy()
    close[901] = np.nan
    bad = BarArrays("SYN/USD", "1h", bars.ts, bars.open, bars.high, bars.low, close, bars.volume)
    with pytest.raises(DataError, match="close must be a positive number") as err:
        GBMDetector(2).fit(bad)
    assert err.value.row == 901


def test_a_constant_feature_is_refused_by_name(series) -> None:
    bars, _ = series
    flat = _bars(bars.close, np.full(N, 5.0))
    with pytest.raises(DataError, match="volume are constant") as err:
        HMMDetector(2).fit(flat)
    assert err.value.field == "volume"
    HMMDetector(2, features=("ret", "vol"), n_init=1).fit(flat)  # without volume it fits


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"regime states must be 2\.\.5, got 6"):
        HMMDetector(6)
    with pytest.raises(ConfigError, match=r"unknown regime method 'hmmm'.*hmm"):
        build_detector("hmmm")
    with pytest.raises(ConfigError, match="unknown regime feature 'rsi'"):
        HMMDetector(2, features=("ret", "rsi"))
    with pytest.raises(ConfigError, match="threshold must be in"):
        ConsensusDetector(2, threshold=0.3)


def test_lstm_without_torch_names_the_extra(monkeypatch, series) -> None:
    bars, _ = series
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    with pytest.raises(ConfigError, match=r"tradeloop\[regimes-lstm\]"):
        LSTMDetector(2).fit(bars)


def test_gbm_probabilities_are_lightgbms_own(series, consensus) -> None:
    # the booster is called directly for speed; the numbers must be the classifier's
    from tradeloop.ml.regimes.features import compute_features

    bars, _ = series
    gbm = consensus.members[1]
    rows = compute_features(bars, gbm.spec)[gbm.lookback :]
    np.testing.assert_array_equal(gbm.predict_rows(rows), gbm.model.predict_proba(rows))
