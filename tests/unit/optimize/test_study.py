"""Studies: the grid equals a serial loop of plain backtests, backends agree, bad input is clear."""

from __future__ import annotations

import csv
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

from tradeloop.core.errors import ConfigError
from tradeloop.engine.config import RunConfig
from tradeloop.engine.runner import DataSpec, _instrument, load_data, run_on_bars
from tradeloop.optimize.objective import Constraints, metric_row, parse_objectives
from tradeloop.optimize.overfitting import (
    combinatorial_purged_cv,
    probability_of_overfitting,
)
from tradeloop.optimize.service import OptimizeJob, run_optimize_job
from tradeloop.optimize.space import SearchSpace
from tradeloop.optimize.study import StudyOptions
from tradeloop.strategy.examples.sma_cross import SmaCross

SMALL = "crypto_1m/freqtrade/UNITTEST_BTC-1m.feather"
FAST = [5, 10, 15]
SLOW = [30, 60, 90]


def _job(shared_data: Path, tmp_path: Path, name: str, **kw) -> OptimizeJob:  # type: ignore[no-untyped-def]
    options = kw.pop(
        "options",
        StudyOptions(method="grid", storage=f"sqlite:///{tmp_path}/{name}.db"),
    )
    return OptimizeJob(
        "sma_cross",
        DataSpec(shared_data / SMALL),
        kw.pop("params", ("fast=5:15:5", "slow=30:90:30")),
        options=options,
        config=RunConfig(fee=0.001),
        out=tmp_path / name,
        record=kw.pop("record", False),
        report=kw.pop("report", False),
        output_root=tmp_path / "output",
        strategies_dir=None,
        **kw,
    )


def _table(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_grid_equals_serial_loop_of_plain_backtests(shared_data: Path, tmp_path: Path) -> None:
    # Arrange: the plain way - one backtest per combination through the event kernel
    (loaded,) = load_data([DataSpec(shared_data / SMALL)])
    config = RunConfig(fee=0.001)
    symbol = loaded.bars.symbol
    instruments = {symbol: _instrument(loaded, config)}
    expected = {}
    for fast, slow in itertools.product(FAST, SLOW):
        result = run_on_bars(
            SmaCross(fast=fast, slow=slow), {symbol: loaded.bars}, config, instruments=instruments
        )
        expected[(fast, slow)] = metric_row(result.metrics)
    # Act
    outcome = run_optimize_job(
        _job(shared_data, tmp_path, "grid", backend="serial", record=True, report=True)
    )
    # Assert: one row per combination, in grid order, with the plain backtest's metrics
    rows = _table(tmp_path / "grid" / "trials.csv")
    assert [(int(r["fast"]), int(r["slow"])) for r in rows] == list(itertools.product(FAST, SLOW))
    assert list(rows[0])[:3] == ["trial", "fast", "slow"]
    for r in rows:
        want = expected[(int(r["fast"]), int(r["slow"]))]
        for name, value in want.items():
            got = float(r[name]) if r[name] != "" else math.nan
            assert got == value or (math.isnan(got) and math.isnan(value)), name
    best_key = max(expected, key=lambda k: expected[k]["sharpe"])
    best = json.loads((tmp_path / "grid" / "best.json").read_text())
    assert (best["best"]["params"]["fast"], best["best"]["params"]["slow"]) == best_key
    assert best["best"]["metrics"]["sharpe"] == expected[best_key]["sharpe"]
    # every result carries its overfitting statistics over the trials actually run
    assert best["deflated_sharpe"]["n_trials"] == 9
    assert 0.0 <= best["pbo"]["pbo"] <= 1.0
    assert best["pbo"]["trials"] == 9
    assert best["cpcv"]["splits"] == 28
    assert outcome.run_id is not None
    run = json.loads((tmp_path / "output" / "runs" / outcome.run_id / "run.json").read_text())
    assert run["params"]["fast"] == best_key[0]
    assert "heatmap" in (tmp_path / "grid" / "report.html").read_text().lower()


def test_pool_and_serial_give_identical_trial_tables(shared_data: Path, tmp_path: Path) -> None:
    # Act
    run_optimize_job(_job(shared_data, tmp_path, "serial", backend="serial", fast="off"))
    run_optimize_job(_job(shared_data, tmp_path, "pool", backend="pool", workers=2))
    # Assert: the event kernel (serial) and the fast kernel (pool) give the same bytes
    serial = (tmp_path / "serial" / "trials.csv").read_text()
    pool = (tmp_path / "pool" / "trials.csv").read_text()
    assert serial == pool
    assert len(_table(tmp_path / "pool" / "trials.csv")) == 9


def test_constraint_no_trial_meets_gives_clear_empty_result(
    shared_data: Path, tmp_path: Path
) -> None:
    options = StudyOptions(
        method="grid", storage=None, constraints=Constraints(min_trades=1_000_000)
    )
    outcome = run_optimize_job(
        _job(shared_data, tmp_path, "none", backend="serial", options=options, record=True)
    )
    assert outcome.study.best is None
    assert outcome.summary["message"] == "no trial meets the constraints"
    assert outcome.run_id is None
    rows = _table(tmp_path / "none" / "trials.csv")
    assert len(rows) == 9
    assert all(r["feasible"] == "False" for r in rows)


def test_refused_parameter_sets_are_rows_with_the_reason(shared_data: Path, tmp_path: Path) -> None:
    # fast >= slow is refused by the strategy: a row with the error, never a crash
    outcome = run_optimize_job(
        _job(
            shared_data,
            tmp_path,
            "refused",
            backend="serial",
            params=("fast=20:40:20", "slow=20:40:20"),
            options=StudyOptions(method="grid", storage=None),
        )
    )
    errors = [r.error for r in outcome.study.rows if r.metrics is None]
    assert len(outcome.study.rows) == 4
    assert len(errors) == 3
    assert outcome.study.best is not None
    assert outcome.study.best.params["fast"] == 20
    assert all("must be below slow" in str(e) for e in errors)


def test_random_and_tpe_respect_trial_count_and_seed(shared_data: Path, tmp_path: Path) -> None:
    params = ("fast=2:30", "slow=40:120:10")
    a = run_optimize_job(
        _job(
            shared_data,
            tmp_path,
            "r1",
            backend="serial",
            params=params,
            options=StudyOptions(method="random", trials=6, storage=None),
        )
    )
    b = run_optimize_job(
        _job(
            shared_data,
            tmp_path,
            "r2",
            backend="serial",
            params=params,
            options=StudyOptions(method="random", trials=6, storage=None),
        )
    )
    assert [r.params for r in a.study.rows] == [r.params for r in b.study.rows]
    assert len(a.study.rows) == 6
    t = run_optimize_job(
        _job(
            shared_data,
            tmp_path,
            "tpe",
            backend="serial",
            params=params,
            options=StudyOptions(
                method="tpe",
                trials=5,
                storage=None,
                objectives=parse_objectives(["sharpe", "-max_drawdown"]),
            ),
        )
    )
    assert len(t.study.rows) == 5
    assert t.study.pareto


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("fats=5:50:5", "Did you mean"),
        ("fast=50:5:5", "empty range"),
        ("fast=5:50:0", "step must be > 0"),
        ("fast=5.5:10:1", "integer parameter"),
        ("fast", "expected NAME=SPEC"),
    ],
)
def test_bad_param_specs_are_clear_errors(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SearchSpace.parse([spec], SmaCross.parameters())


def test_space_parses_ranges_choices_and_log() -> None:
    space = SearchSpace.parse(
        ["fast=5:15:5", "stop_loss=0.001:0.1:log3", "short=true,false", "size=0.5"],
        SmaCross.parameters(),
    )
    grid = space.grid()
    assert len(grid) == 3 * 3 * 2
    assert sorted({g["stop_loss"] for g in grid}) == pytest.approx([0.001, 0.01, 0.1])
    assert space.full(grid[0])["size"] == 0.5
    with pytest.raises(ConfigError, match="needs a step"):
        SearchSpace.parse(["stop_loss=0.001:0.1"], SmaCross.parameters()).grid()


def test_unknown_objective_suggests_metric() -> None:
    with pytest.raises(ConfigError, match="Did you mean"):
        parse_objectives(["sharp"])


def _pbo_loop(blocks: np.ndarray, groups: int) -> float:
    """The CSCV definition written as plain loops (the reference for the vectorized one)."""
    n = blocks.shape[0]
    edges = np.linspace(0, blocks.shape[1], groups + 1).astype(int)
    g = [blocks[:, a:b].sum(axis=1) for a, b in itertools.pairwise(edges)]

    def sharpe(st: np.ndarray) -> float:
        cnt, s, q = st
        mean = s / cnt
        return mean / math.sqrt((q - cnt * mean * mean) / (cnt - 1))

    below = 0
    combos = list(itertools.combinations(range(groups), groups // 2))
    for combo in combos:
        is_st = [sum(g[k][i] for k in combo) for i in range(n)]
        oos_st = [sum(g[k][i] for k in range(groups) if k not in combo) for i in range(n)]
        is_sr = [sharpe(x) for x in is_st]
        oos_sr = [sharpe(x) for x in oos_st]
        best = int(np.argmax(is_sr))
        rank = (
            sum(1 for v in oos_sr if v < oos_sr[best])
            + (sum(1 for v in oos_sr if v == oos_sr[best]) + 1) / 2
        )
        w = rank / (n + 1)
        below += math.log(w / (1 - w)) <= 0
    return below / len(combos)


def _blocks_from_returns(rets: np.ndarray, n_blocks: int) -> np.ndarray:
    parts = np.array_split(rets, n_blocks, axis=1)
    return np.stack(
        [
            np.stack([np.full(p.shape[0], p.shape[1]), p.sum(1), (p * p).sum(1)], axis=1)
            for p in parts
        ],
        axis=1,
    )


def test_pbo_matches_loop_definition_and_separates_noise_from_skill() -> None:
    rng = np.random.default_rng(7)
    noise = rng.normal(0, 0.01, size=(12, 640))
    blocks = _blocks_from_returns(noise, 16)
    result = probability_of_overfitting(blocks, groups=8)
    assert result.pbo == pytest.approx(_pbo_loop(blocks, 8))
    assert 0.2 < result.pbo < 0.8  # pure noise: the IS winner is a coin flip OOS
    skilled = noise.copy()
    skilled[3] += 0.01  # one trial truly better in every block
    assert probability_of_overfitting(_blocks_from_returns(skilled, 16), groups=8).pbo == 0.0
    cpcv = combinatorial_purged_cv(_blocks_from_returns(skilled, 16), groups=8, test_groups=2)
    assert set(cpcv.chosen.tolist()) == {3}
    assert cpcv.chosen.size == 28
