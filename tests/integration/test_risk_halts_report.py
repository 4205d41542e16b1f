"""A halt lasting to the end of a run is recorded, reported and warned about; the README's
risk file (with kill_switch.resume_after) trades through the bundled sample's crashes."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from tradeloop.cli.app import app

RISK = """profile = "default"
[limits]
max_position_pct = 0.05
max_var_pct = false
[limits.regime_leverage]
high_vol = 0.25
[sizing]
method = "risk_per_trade"
risk_per_trade = 0.01
[stops]
stop_loss_pct = 0.03
[black_swan]
drop_pct = 0.15
window = "12h"
"""


def _run(tmp_path: Path, sample: Path, risk: str, name: str) -> tuple[str, str, dict]:  # type: ignore[type-arg]
    import json

    path = tmp_path / f"{name}.toml"
    path.write_text(risk)
    out = tmp_path / name
    result = CliRunner().invoke(
        app,
        ["backtest", "-s", "sma_cross", "-d", str(sample), "--risk", str(path),
         "--end", "2019-01-01", "--out", str(out), "--mc-sims", "50"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return (
        result.output,
        (out / "report.html").read_text(),
        json.loads((out / "run.json").read_text()),
    )


def test_halt_to_the_end_is_recorded_reported_and_warned(sample_1h: Path, tmp_path: Path) -> None:
    # Act
    output, html, record = _run(tmp_path, sample_1h, RISK, "halted")
    # Assert
    risk = record["risk"]
    assert risk["halted_at_end"] is True
    assert risk["state_at_end"] == "halted"
    last = risk["halts"][-1]
    assert last["cause"] == "black_swan"
    assert last["end"] is None
    assert risk["rejections_by_reason"]["halted"] > 0
    assert "to the end of the run" in output
    assert "Trading was halted from" in html
    assert last["start"] in html


def test_resume_after_lifts_black_swan_halts(sample_1h: Path, tmp_path: Path) -> None:
    # Act
    _, _, halted = _run(tmp_path, sample_1h, RISK, "halted")
    output, _html, record = _run(
        tmp_path, sample_1h, RISK + '[kill_switch]\nresume_after = "72h"\n', "cooldown"
    )
    # Assert
    risk = record["risk"]
    assert risk["halted_at_end"] is False
    assert len(risk["halts"]) >= 2
    assert {h["lifted_by"] for h in risk["halts"]} == {"cooldown"}
    assert all(h["days"] >= 3.0 for h in risk["halts"])  # 72h, from the latest trigger
    assert "to the end of the run" not in output
    assert risk["halted_days"] < halted["risk"]["halted_days"]
    # the terminal lists the first halts with their cause and what lifted them, and the
    # rejections by reason as words, not a raw dict
    first = risk["halts"][0]
    assert f"halted {first['start']}" in output
    assert "lifted by cooldown" in output
    assert f"orders rejected: {risk['rejections_by_reason']['halted']:,} halted" in output
    assert "{'" not in output
