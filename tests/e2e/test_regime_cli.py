"""``tradeloop regime fit | detect | report | list`` and ``backtest --regime`` as a user runs
them, on the bundled BTC/USDT 1h sample."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import numpy as np

from tradeloop.data.loader import load_ohlcv
from tradeloop.ml.regimes import load_regime_model


def test_fit_detect_report_and_backtest_with_a_regime(
    run_cli, sample_1h: Path, tmp_path: Path
) -> None:
    # the first 4000 hours of the sample (a fit on all of it is the benchmark's job)
    with gzip.open(sample_1h, "rt") as fh:
        head = [next(fh) for _ in range(4001)]
    sample_1h = tmp_path / "BTC_USDT-1h.csv"
    sample_1h.write_text("".join(head))
    models = tmp_path / "models"
    bars = load_ohlcv(sample_1h).bars
    assert len(bars) == 4000
    # fit: saved in the registry under the name
    fit = run_cli(
        "regime", "fit", "-d", str(sample_1h), "--method", "hmm", "--states", "3",
        "--name", "btc", "--registry", str(models),
    )  # fmt: skip
    assert fit.exit_code == 0, fit.output
    assert "saved btc:v0001" in fit.output
    detector, _, meta = load_regime_model("btc", models)
    assert meta["method"] == "hmm"
    assert meta["data"]["bars"] == len(bars)
    # detect: one row per bar, causal, equal to the library's own run
    out = tmp_path / "regimes.csv"
    det = run_cli(
        "regime", "detect", "-d", str(sample_1h), "--model", "btc", "--registry", str(models),
        "--out", str(out),
    )  # fmt: skip
    assert det.exit_code == 0, det.output
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["timestamp", "regime", "confidence"]
    assert len(rows) == len(bars)
    path = detector.detect(bars)
    assert [r["regime"] for r in rows] == path.labels()
    assert sum(1 for r in rows if not r["regime"]) == detector.lookback
    assert {r["regime"] for r in rows[detector.lookback :]} <= {"low_vol", "normal", "high_vol"}
    # report: every labelled bar counted once
    rep = tmp_path / "report.json"
    report = run_cli(
        "regime", "report", "-d", str(sample_1h), "--regimes", str(out), "--json", str(rep)
    )
    assert report.exit_code == 0, report.output
    table = json.loads(rep.read_text())
    assert sum(r["bars"] for r in table) == len(bars) - detector.lookback
    assert sum(r["episodes"] for r in table) == 1 + int(np.sum(np.diff(path.state[20:]) != 0))
    listed = run_cli("regime", "list", "--registry", str(models))
    assert "btc" in listed.output
    as_json = json.loads(run_cli("regime", "list", "--registry", str(models), "--json").stdout)
    assert [(m["name"], m["version"]) for m in as_json] == [("btc", "v0001")]
    assert set(as_json[0]["states"]) == {"low_vol", "normal", "high_vol"}
    assert as_json[0]["bars"] == len(bars)
    # backtest --regime: regimes.csv per step, the run record and the report show it
    run_dir = tmp_path / "run"
    bt = run_cli(
        "backtest", "-s", "sma_cross", "-d", str(sample_1h), "--regime", "btc",
        "--registry", str(models), "--regime-exposure", "high_vol=0.25", "--out", str(run_dir),
    )  # fmt: skip
    assert bt.exit_code == 0, bt.output
    record = json.loads((run_dir / "run.json").read_text())
    assert record["regime"]["name"] == "btc"
    assert record["regime"]["exposures"]["high_vol"] == 0.25
    with (run_dir / "regimes.csv").open() as fh:
        steps = list(csv.DictReader(fh))
    assert len(steps) == len(bars)
    assert {float(r["exposure"]) for r in steps} >= {1.0}
    assert min(float(r["exposure"]) for r in steps) == 0.25  # high_vol reached and ramped to
    html = (run_dir / "report.html").read_text()
    assert "Market regimes (btc:v0001" in html
    assert "Performance by regime" in html


def test_bad_input_is_refused_with_the_problem_named(run_cli, tmp_path: Path) -> None:
    # constant prices
    flat = tmp_path / "FLAT_USDT-1h.csv"
    lines = ["timestamp,open,high,low,close,volume"]
    lines += [f"2024-01-{1 + i // 24:02d}T{i % 24:02d}:00:00Z,10,10,10,10,5" for i in range(600)]
    flat.write_text("\n".join(lines) + "\n")
    res = run_cli("regime", "fit", "-d", str(flat), "--name", "x", "--registry", str(tmp_path))
    assert res.exit_code == 3
    assert "constant prices" in res.output
    # too little data
    short = tmp_path / "SHORT_USDT-1h.csv"
    short.write_text("\n".join(lines[:1] + [
        f"2024-01-01T{i:02d}:00:00Z,{10 + i},{11 + i},{9 + i},{10.5 + i},5" for i in range(20)
    ]) + "\n")  # fmt: skip
    res = run_cli("regime", "fit", "-d", str(short), "--name", "x", "--registry", str(tmp_path))
    assert res.exit_code == 3
    assert "too little data" in res.output
    # an unknown model, and a --regime-exposure without --regime
    res = run_cli("regime", "detect", "-d", str(short), "--model", "nope",
                  "--registry", str(tmp_path))  # fmt: skip
    assert res.exit_code == 2
    assert "unknown regime model 'nope'" in res.output
    assert "train" not in res.output  # a regime model is fitted, not trained
