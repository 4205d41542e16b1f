"""`tradeloop optimize` and `tradeloop learn` as a user runs them."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

RunCli = Callable[..., Result]


def test_optimize_grid_prints_table_and_writes_outputs(
    run_cli: RunCli, sample_1h: Path, tmp_path: Path
) -> None:
    out = tmp_path / "opt"
    result = run_cli(
        "optimize", "-s", "sma_cross", "-d", str(sample_1h), "-p", "fast=5:15:5",
        "-p", "slow=30:60:30", "--fee", "0.001", "--backend", "serial", "--out", str(out),
        "--output-root", str(tmp_path / "output"), "--min-trades", "5", "--no-record",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Top 6 of 6 trials" in result.output
    assert "Deflated Sharpe" in result.output
    with (out / "trials.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6
    assert list(rows[0])[:3] == ["trial", "fast", "slow"]
    best = json.loads((out / "best.json").read_text())
    feasible = [r for r in rows if r["feasible"] == "True"]
    top = max(feasible, key=lambda r: float(r["sharpe"]))
    assert best["best"]["params"] == {"fast": int(top["fast"]), "slow": int(top["slow"])}
    assert best["deflated_sharpe"]["n_trials"] == 6
    assert (out / "report.html").stat().st_size > 1000
    # the same command again resumes: nothing runs twice
    again = run_cli(
        "optimize", "-s", "sma_cross", "-d", str(sample_1h), "-p", "fast=5:15:5",
        "-p", "slow=30:60:30", "--fee", "0.001", "--backend", "serial", "--out", str(out),
        "--output-root", str(tmp_path / "output"), "--min-trades", "5", "--no-record",
    )  # fmt: skip
    assert again.exit_code == 0, again.output
    assert "0 trial(s) run now, 6 resumed" in again.output


def test_optimize_bad_input_is_a_clear_error(
    run_cli: RunCli, sample_1h: Path, tmp_path: Path
) -> None:
    base = ("optimize", "-s", "sma_cross", "-d", str(sample_1h), "--backend", "serial",
            "--out", str(tmp_path / "o"))  # fmt: skip
    unknown = run_cli(*base, "-p", "fats=5:50:5")
    assert unknown.exit_code == 2
    assert "Did you mean: 'fast'" in unknown.output
    empty = run_cli(*base, "-p", "fast=50:5:5")
    assert empty.exit_code == 2
    assert "empty range" in empty.output
    metric = run_cli(*base, "-p", "fast=5:10:5", "--objective", "sharpee")
    assert metric.exit_code == 2
    assert "not a run metric" in metric.output
    none = run_cli(*base, "-p", "fast=5:10:5", "--min-trades", "100000", "--no-record")
    assert none.exit_code == 0
    assert "no trial meets the constraints" in none.output


def test_learn_apply_refuses_a_file_that_is_not_a_proposal(run_cli: RunCli, tmp_path: Path) -> None:
    bogus = tmp_path / "p.json"
    bogus.write_text('{"kind": "other"}')
    result = run_cli("learn", "apply", str(bogus))
    assert result.exit_code == 2
    assert "not a tradeloop proposal" in result.output


def test_learn_record_takes_a_risk_file_and_prints_a_table_or_json(
    run_cli: RunCli, sample_1h: Path, tmp_path: Path
) -> None:
    # Arrange: a risk file that caps positions at 10% (as backtest --risk reads it)
    risk_file = tmp_path / "risk.toml"
    risk_file.write_text('profile = "default"\n[limits]\nmax_position_pct = 0.1\n')
    journal = tmp_path / "j.duckdb"
    common = ["learn", "record", "-s", "sma_cross", "-d", str(sample_1h), "--journal",
              str(journal)]  # fmt: skip
    # Act
    table = run_cli(*common, "--risk", str(risk_file), "--source", "capped", env={"COLUMNS": "80"})
    as_json = run_cli(*common, "--risk", "permissive", "--source", "free", "--json")
    typo = run_cli(*common, "--risk", str(tmp_path / "missing.toml"))
    # Assert
    assert table.exit_code == 0, table.output
    assert "Journaled in" in table.output
    assert "signals" in table.output
    counts = json.loads(as_json.stdout)
    assert as_json.exit_code == 0, as_json.output
    assert counts["source"] == "free"
    assert counts["signals"] > 0
    assert typo.exit_code == 2
    assert "missing.toml" in typo.output


@pytest.mark.parametrize("command", ["optimize", "learn record"])
def test_search_commands_refuse_data_the_data_check_fails(
    run_cli: RunCli, sample_1h: Path, tmp_path: Path, command: str
) -> None:
    # Arrange: 3,000 bars of the sample with one bar's prices near 1e300 at data row 1,500
    from tradeloop.data.loader import load_ohlcv

    bars = load_ohlcv(sample_1h).bars.slice(0, 3_000)
    lines = ["timestamp,open,high,low,close,volume"]
    for k in range(len(bars)):
        o, h, lo, c = (float(a[k]) for a in (bars.open, bars.high, bars.low, bars.close))
        if k == 1_500:
            o = h = lo = c = 1e300
        lines.append(
            f"{int(bars.ts[k]) // 10**6},{o!r},{h!r},{lo!r},{c!r},{float(bars.volume[k])!r}"
        )
    data = tmp_path / "BTC_USDT-1h.csv"
    data.write_text("\n".join(lines) + "\n")
    args = {
        "optimize": ["optimize", "-s", "sma_cross", "-d", str(data), "-p", "fast=5:10:5",
                     "--backend", "serial", "--out", str(tmp_path / "opt"), "--no-record"],
        "learn record": ["learn", "record", "-s", "sma_cross", "-d", str(data), "--journal",
                         str(tmp_path / "j.duckdb")],
    }[command]  # fmt: skip
    # Act
    refused = run_cli(*args)
    left_behind = sorted(p.name for p in tmp_path.iterdir())
    allowed = run_cli(*args, "--allow-data-issues")
    # Assert: refused by the gate with the row named; allowed on request
    flat = " ".join(refused.output.split())
    assert refused.exit_code == 3, refused.output
    assert "extreme values" in flat
    assert "row 1,500" in flat
    assert left_behind == ["BTC_USDT-1h.csv"]  # no empty journal, study or output folder
    assert allowed.exit_code == 0, allowed.output


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--top", "-1"], "--top must be 1 or more, got -1"),
        (["--workers", "0"], "--workers must be 1 or more, got 0"),
        (["--trials", "0", "--method", "random"], "--trials must be >= 1, got 0"),
    ],
)
def test_optimize_numbers_out_of_range_are_refused_by_flag(
    run_cli: RunCli, sample_1h: Path, tmp_path: Path, args: list[str], said: str
) -> None:
    result = run_cli("optimize", "-s", "sma_cross", "-d", str(sample_1h), "-p", "fast=5:10:5",
                     "--no-record", "--out", str(tmp_path / "o"), *args)  # fmt: skip
    assert result.exit_code == 2
    assert said in result.output
    assert not (tmp_path / "o").exists()
