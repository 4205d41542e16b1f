"""Walk-forward: OOS never overlaps IS, no future bar reaches a choice, stitching is exact."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from tradeloop.core.bar import BarArrays
from tradeloop.engine.config import RunConfig
from tradeloop.engine.runner import DataSpec, _instrument, load_data, run_on_bars
from tradeloop.optimize.evaluate import EvalSpec, TrialEvaluator
from tradeloop.optimize.space import SearchSpace
from tradeloop.optimize.study import StudyOptions
from tradeloop.optimize.walkforward import fold_config, plan_folds, walk_forward
from tradeloop.strategy.examples.sma_cross import SmaCross

SMALL = "crypto_1m/freqtrade/UNITTEST_BTC-1m.feather"
SPACE = SearchSpace.parse(["fast=5:20:5", "slow=30:90:30"], SmaCross.parameters())


@pytest.fixture(scope="module")
def small(shared_data: Path):  # type: ignore[no-untyped-def]
    (loaded,) = load_data([DataSpec(shared_data / SMALL)])
    return loaded


def _evaluator(loaded, bars: BarArrays | None = None) -> TrialEvaluator:  # type: ignore[no-untyped-def]
    config = RunConfig(fee=0.001)
    spec = EvalSpec("sma_cross", None, config, _instrument(loaded, config))
    return TrialEvaluator(spec, bars if bars is not None else loaded.bars)


@pytest.mark.parametrize("mode", ["rolling", "anchored"])
def test_folds_never_overlap(mode: str) -> None:
    folds = plan_folds(10_000, 5, 3.0, mode)
    assert len(folds) == 5
    for prev, cur in itertools.pairwise(folds):
        assert prev.oos_end == cur.oos_start  # OOS segments tile the tail
    for f in folds:
        assert f.is_start < f.is_end == f.oos_start < f.oos_end
        assert (
            (f.is_start == 0) if mode == "anchored" else (f.is_end - f.is_start == folds[0].is_end)
        )
    assert folds[-1].oos_end == 10_000


def _poisoned(bars: BarArrays, start: int) -> BarArrays:
    """The same bars with every price from ``start`` on scrambled (a different future)."""
    factor = np.ones(len(bars))
    factor[start:] = 1.0 + 0.01 * np.sin(np.arange(len(bars) - start) / 7.0)
    return BarArrays(
        bars.symbol,
        bars.timeframe,
        bars.ts,
        bars.open * factor,
        bars.high * factor * 1.01,
        bars.low * factor * 0.99,
        bars.close * factor,
        bars.volume,
    )


@pytest.mark.parametrize("mode", ["rolling", "anchored"])
def test_in_sample_choice_never_sees_the_out_of_sample_bars(small, mode: str) -> None:  # type: ignore[no-untyped-def]
    # Arrange
    options = StudyOptions(method="grid")
    clean = walk_forward(_evaluator(small), SPACE, options, folds=3, ratio=2.0, mode=mode)
    first_oos = clean.folds[0].oos_start
    # Act: rewrite every bar from the first OOS bar on
    dirty = walk_forward(
        _evaluator(small, _poisoned(small.bars, first_oos)),
        SPACE,
        options,
        folds=3,
        ratio=2.0,
        mode=mode,
    )
    # Assert: fold 0's choice and in-sample figures are unchanged (a leak would change them),
    # while its out-of-sample result does change (the poison is real)
    assert dirty.chosen[0] == clean.chosen[0]
    assert dirty.is_metrics[0] == clean.is_metrics[0]
    assert dirty.oos_metrics[0] != clean.oos_metrics[0]


def test_stitched_equity_equals_segment_by_segment_runs(small) -> None:  # type: ignore[no-untyped-def]
    # Arrange
    evaluator = _evaluator(small)
    wf = walk_forward(evaluator, SPACE, StudyOptions(method="grid"), folds=3, ratio=2.0)
    # Act: each fold's chosen parameters through the event kernel, one segment after the other
    symbol = small.bars.symbol
    balance = 10_000.0
    parts = []
    for fold, params in zip(wf.folds, wf.chosen, strict=True):
        config = fold_config(evaluator, fold, balance)
        result = run_on_bars(
            SmaCross(**params),
            {symbol: small.bars},
            config,
            instruments={symbol: evaluator.spec.instrument},
        )
        segment = result.equity[fold.oos_start - fold.is_start :]
        assert all(t.entry_ts >= small.bars.ts[fold.oos_start] for t in result.trades)
        parts.append(segment)
        balance = float(segment[-1])
    # Assert
    expected = np.concatenate(parts)
    assert expected.size == len(small.bars) - wf.folds[0].oos_start
    np.testing.assert_array_equal(wf.equity, expected)
    assert wf.metrics.final_equity == balance
