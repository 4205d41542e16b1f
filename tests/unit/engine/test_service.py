"""The backtest job of the engine service: what the CLI and the API both call."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tradeloop.analysis.validation import ValidationConfig
from tradeloop.core.errors import ConfigError, DataError
from tradeloop.data.loader import load_ohlcv
from tradeloop.engine.config import RunConfig
from tradeloop.engine.runner import DataSpec, run_on_bars
from tradeloop.engine.service import (
    BacktestJob,
    ModelOptions,
    load_run_record,
    run_backtest_job,
)
from tradeloop.strategy.examples.sma_cross import SmaCross

END = 1_530_403_200_000_000_000  # 2018-07-01: a short window keeps the runs quick


def _job(sample_1h: Path, root: Path, **kw: object) -> BacktestJob:
    return BacktestJob(
        strategy="sma_cross",
        data=(DataSpec(sample_1h),),
        config=RunConfig(fee=0.001, timeframe="4h", end=END),
        params={"fast": "10", "slow": "30"},
        validation=ValidationConfig(seed=7, mc_sims=100),
        report=False,
        output_root=root,
        strategies_dir=None,
        **kw,  # type: ignore[arg-type]
    )


def test_run_backtest_job_trades_as_the_kernel_and_records_the_run(
    sample_1h: Path, tmp_path: Path
) -> None:
    # Arrange
    job = _job(sample_1h, tmp_path / "output", command="test job")
    bars = load_ohlcv(sample_1h).bars
    direct = run_on_bars(SmaCross(fast=10, slow=30), {bars.symbol: bars}, job.config)
    progress: list[tuple[int, int]] = []
    # Act
    outcome = run_backtest_job(job, progress=lambda done, total: progress.append((done, total)))
    # Assert: the same trades as the kernel run directly, in a folder named by the run id
    assert outcome.result.trades == direct.trades
    assert outcome.folder == tmp_path / "output" / "runs" / outcome.run_id
    record = json.loads((outcome.folder / "run.json").read_text())
    assert record == json.loads(json.dumps(outcome.record))
    assert record["run_id"] == outcome.run_id
    assert (record["command"], record["seed"], record["model"]) == ("test job", 7, None)
    assert (record["params"]["fast"], record["params"]["slow"]) == (10, 30)
    assert {"trades", "equity", "summary", "metrics", "run", "risk_report"} <= set(outcome.paths)
    assert "report" not in outcome.paths
    assert (tmp_path / "output" / "latest").resolve() == outcome.folder.resolve()
    assert progress[-1][0] == progress[-1][1] > 0
    assert outcome.summary()["trade_count"] == len(direct.closed_trades)


def test_run_backtest_job_same_job_twice_gets_two_folders_latest_the_second(
    sample_1h: Path, tmp_path: Path
) -> None:
    # Arrange
    job = _job(sample_1h, tmp_path / "output")
    # Act
    first = run_backtest_job(job)
    second = run_backtest_job(job)
    # Assert: nothing of the first run is overwritten, whether or not the ids collide
    assert first.folder != second.folder
    assert json.loads((first.folder / "run.json").read_text())["run_id"] == first.run_id
    assert json.loads((second.folder / "run.json").read_text())["run_id"] == second.run_id
    assert second.run_id.split("-", 1)[1].startswith(first.run_id.split("-", 1)[1])
    assert (tmp_path / "output" / "latest").resolve() == second.folder.resolve()


def test_run_backtest_job_given_folder_is_used_and_latest_left_alone(
    sample_1h: Path, tmp_path: Path
) -> None:
    # Act
    outcome = run_backtest_job(_job(sample_1h, tmp_path / "output", out=tmp_path / "mine"))
    # Assert
    assert outcome.folder == tmp_path / "mine"
    assert (tmp_path / "mine" / "trades.csv").is_file()
    assert not (tmp_path / "output").exists()


def test_run_backtest_job_missing_file_raises_data_error_and_writes_nothing(
    tmp_path: Path,
) -> None:
    job = _job(tmp_path / "missing.csv", tmp_path / "output")
    with pytest.raises(DataError, match=r"missing\.csv"):
        run_backtest_job(job)
    assert not (tmp_path / "output").exists()


def test_load_run_record_reads_a_recorded_run_by_id(sample_1h: Path, tmp_path: Path) -> None:
    # Arrange
    outcome = run_backtest_job(_job(sample_1h, tmp_path / "output"))
    # Act
    record = load_run_record(outcome.run_id, tmp_path / "output")
    # Assert
    assert record == json.loads((outcome.folder / "run.json").read_text())
    assert load_run_record("20200101T000000Z-sma_cross-000000", tmp_path / "output") is None


@pytest.mark.parametrize("ref", ["../output", "runs/x", ".hidden", "", "a b"])
def test_load_run_record_refuses_what_is_not_a_run_id(tmp_path: Path, ref: str) -> None:
    with pytest.raises(ConfigError, match="is not a run id"):
        load_run_record(ref, tmp_path)


def test_backtest_job_without_data_is_refused() -> None:
    with pytest.raises(ConfigError, match="at least one data file or cached series"):
        BacktestJob(strategy="sma_cross", data=())


@pytest.mark.parametrize(("kw", "message"), [({"name": " "}, "empty"), ({"threads": 0}, ">= 1")])
def test_model_options_invalid_value_is_refused(kw: dict[str, object], message: str) -> None:
    options: dict[str, object] = {"name": "m", **kw}
    with pytest.raises(ConfigError, match=message):
        ModelOptions(**options)  # type: ignore[arg-type]


def test_data_gate_verdict_is_remembered_by_content(
    sample_1h: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange: a copy of the clean sample, and a counter around the gate's checks
    import gzip

    import tradeloop.data.gate as gate
    from tradeloop.engine.output import file_sha256
    from tradeloop.engine.service import GATE_CACHE_FOLDER

    data = tmp_path / "BTC_USDT-1h.csv"
    with gzip.open(sample_1h, "rt") if sample_1h.suffix == ".gz" else open(sample_1h) as fh:
        data.write_text(fh.read())
    checked: list[str] = []
    real_gate_report = gate.gate_report

    def counting(item, **kw):  # type: ignore[no-untyped-def]
        checked.append(item.source)
        return real_gate_report(item, **kw)

    monkeypatch.setattr(gate, "gate_report", counting)
    root = tmp_path / "output"
    # Act: the same file twice
    first = run_backtest_job(_job(data, root))
    second = run_backtest_job(_job(data, root))
    # Assert: checked once, one marker; the record's sha256 is the file's; same trades
    assert checked == [str(data)]
    assert len(list((root / GATE_CACHE_FOLDER).iterdir())) == 1
    assert second.record["data"][0]["sha256"] == file_sha256(data)
    assert second.result.trades == first.result.trades
    # Act: the same path with a bar made extreme (new content): checked again and refused
    lines = data.read_text().splitlines()
    fields = lines[200].split(",")
    fields[1:5] = ["1e300"] * 4
    lines[200] = ",".join(fields)
    data.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="extreme values"):
        run_backtest_job(_job(data, root))
    assert checked == [str(data)] * 2
    # Act: allowed through, the findings are recorded and the data is not remembered
    allowed = run_backtest_job(_job(data, root, allow_data_issues=True))
    run_backtest_job(_job(data, root, allow_data_issues=True))
    assert allowed.record["data_issues"]
    assert checked == [str(data)] * 4
    assert len(list((root / GATE_CACHE_FOLDER).iterdir())) == 1


def test_a_run_with_its_own_folder_checks_the_data_and_writes_nothing_else(
    sample_1h: Path, tmp_path: Path
) -> None:
    # Act: twice into a folder of its own
    run_backtest_job(_job(sample_1h, tmp_path / "output", out=tmp_path / "a"))
    run_backtest_job(_job(sample_1h, tmp_path / "output", out=tmp_path / "b"))
    # Assert: no run store, no gate marker
    assert not (tmp_path / "output").exists()
