"""``tradeloop risk ...`` as a user runs it: reports of runs, VaR backtests, overrides."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tradeloop.cli.app import app
from tradeloop.cli.risk_cmd import backtest_risk_engine, risk_app, write_run_risk_report
from tradeloop.core.time import parse_time
from tradeloop.data.loader import load_ohlcv
from tradeloop.engine.config import RunConfig
from tradeloop.engine.runner import run_on_bars
from tradeloop.risk.config import BlackSwanConfig, OverridesConfig, RiskConfig
from tradeloop.risk.engine import RiskEngine
from tradeloop.risk.killswitch import TradingState
from tradeloop.strategy.examples.sma_cross import SmaCross

BTC_1H = "crypto_1h/binance_spot_2017_2024/BTC_USDT-1h.feather"
SECRET_ENV = "TRADELOOP_RISK_SECRET"

runner = CliRunner()


def test_backtest_risk_engine_reads_the_file_or_is_permissive(tmp_path: Path) -> None:
    # Arrange
    path = tmp_path / "risk.toml"
    path.write_text("[limits]\nmax_open_positions = 4\n", encoding="utf-8")
    # Act
    plain = backtest_risk_engine(None)
    custom = backtest_risk_engine(path)
    # Assert
    assert plain.config == RiskConfig.permissive()
    assert (custom.config.profile, custom.config.limits.max_open_positions) == ("default", 4)


def test_risk_report_of_a_run_with_risk_files(shared_data: Path, tmp_path: Path) -> None:
    # Arrange: a default-profile run whose risk report is written next to its outputs
    bars = load_ohlcv(shared_data / BTC_1H).bars.slice(0, 5_000)
    cfg = replace(RiskConfig.default(), black_swan=BlackSwanConfig(drop_pct=0.08))
    engine = RiskEngine(cfg)
    run_on_bars(SmaCross(fast=10, slow=30), {bars.symbol: bars}, RunConfig(risk=cfg), risk=engine)
    folder = tmp_path / "run"
    paths = write_run_risk_report(engine, folder)
    # Act
    result = runner.invoke(
        risk_app,
        [
            "report",
            str(folder),
            "--json",
            str(tmp_path / "r.json"),
            "--csv",
            str(tmp_path / "r.csv"),
        ],
    )
    # Assert
    assert result.exit_code == 0, result.output
    assert {"risk_report", "risk_csv", "risk_rejections"} <= set(paths)
    assert "Risk report" in result.output
    assert "Limit usage" in result.output
    assert "Kill-switch events" in result.output
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["profile"] == "default"
    assert data["events"][0]["cause"] == "black_swan"
    assert (tmp_path / "r.csv").read_text().startswith("section,name,value,limit,usage")


def test_risk_report_rebuilt_from_a_plain_backtest_folder(sample_1h: Path, tmp_path: Path) -> None:
    # Arrange: a run folder without risk files (as written before runs recorded them)
    out = tmp_path / "plain"
    ran = runner.invoke(
        app,
        ["backtest", "-s", "sma_cross", "-d", str(sample_1h), "--out", str(out), "--no-report"],
    )
    assert ran.exit_code == 0, ran.output
    assert (out / "risk_report.json").exists()
    for name in ("risk_report.json", "risk_report.csv", "risk_rejections.csv"):
        (out / name).unlink()
    # Act
    result = runner.invoke(risk_app, ["report", str(out), "--json", str(tmp_path / "r.json")])
    # Assert: profile from the run record, VaR of the equity curve
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["profile"] == "permissive"
    assert data["var"][1]["level"] == 0.99
    assert data["var_observations"] > 1_000


def test_risk_report_of_a_missing_run_is_a_config_error(tmp_path: Path) -> None:
    # Arrange / Act
    result = runner.invoke(risk_app, ["report", str(tmp_path / "nope")])
    # Assert
    assert result.exit_code == 2
    assert "no run folder" in result.output


def test_var_backtest_command_on_real_data(shared_data: Path) -> None:
    # Arrange / Act
    result = runner.invoke(
        risk_app,
        ["var-backtest", "--data", str(shared_data / "equities_daily/pandas_ta/SPY_D.csv")],
    )
    # Assert
    assert result.exit_code == 0, result.output
    assert "Kupiec" in result.output
    assert "historical" in result.output
    assert "parametric" in result.output


def test_override_issue_apply_log_and_replay_in_a_backtest(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange: the black swan of 2017-08-22 (10% in 24h) halts; the operator resumes a week
    # later with a token valid around that time
    monkeypatch.setenv(SECRET_ENV, "cli-secret")
    audit, inbox = tmp_path / "audit.jsonl", tmp_path / "inbox.jsonl"
    issued = runner.invoke(
        risk_app,
        [
            "override",
            "issue",
            "--action",
            "resume",
            "--who",
            "ops",
            "--why",
            "market calm",
            "--ttl",
            "2h",
            "--not-before",
            "2017-08-29T03:00:00Z",
        ],
    )
    assert issued.exit_code == 0, issued.output
    token = issued.output.strip()
    # Act
    tampered = runner.invoke(
        risk_app,
        [
            "override",
            "apply",
            token[:-3] + "xyz",
            "--at",
            "2017-08-29T04:00:00Z",
            "--audit-log",
            str(audit),
            "--inbox",
            str(inbox),
        ],
    )
    applied = runner.invoke(
        risk_app,
        [
            "override",
            "apply",
            token,
            "--at",
            "2017-08-29T04:00:00Z",
            "--audit-log",
            str(audit),
            "--inbox",
            str(inbox),
        ],
    )
    log = runner.invoke(risk_app, ["override", "log", str(audit)])
    log_json = runner.invoke(risk_app, ["override", "log", str(audit), "--json"])
    garbled = tmp_path / "garbled.jsonl"
    garbled.write_text(audit.read_text() + "{not json\n")
    broken = runner.invoke(risk_app, ["override", "log", str(garbled), "--json"])
    cfg = replace(
        RiskConfig.permissive(),
        black_swan=BlackSwanConfig(drop_pct=0.10, vol_shock_sigma=None),
        overrides=OverridesConfig(inbox=str(inbox)),
    )
    engine = RiskEngine(cfg)
    bars = load_ohlcv(shared_data / BTC_1H).bars.slice(0, 800)
    run_on_bars(SmaCross(fast=10, slow=30), {bars.symbol: bars}, RunConfig(risk=cfg), risk=engine)
    # Assert
    assert tampered.exit_code == 1
    assert "bad_signature" in tampered.output
    assert applied.exit_code == 0, applied.output
    assert log.exit_code == 0, log.output
    assert "records and head verified with the key (2 records)" in log.output
    verdict = json.loads(log_json.stdout)
    assert log_json.exit_code == 0, log_json.output
    assert [r["result"] for r in verdict["records"]] == ["refused", "queued"]
    assert verdict["verified_with_key"] is True
    assert verdict["problem"] is None
    # a line that is no JSON record: a verdict, exit 1, no traceback
    assert broken.exit_code == 1
    assert json.loads(broken.stdout)["problem"]
    assert broken.exception is None or isinstance(broken.exception, SystemExit)
    records = [json.loads(x) for x in audit.read_text().splitlines()]
    assert [r["result"] for r in records] == ["refused", "queued"]
    assert [(e.cause, e.state_to) for e in engine.events[:2]] == [
        ("black_swan", TradingState.HALTED),
        ("override", TradingState.ACTIVE),
    ]
    assert engine.events[1].ts == parse_time("2017-08-29T04:00:00Z")
    assert engine.overrides.audit.records[0]["result"] == "accepted"


def test_override_issue_without_secret_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    # Arrange
    monkeypatch.delenv(SECRET_ENV, raising=False)
    # Act
    result = runner.invoke(
        risk_app, ["override", "issue", "--action", "resume", "--who", "a", "--why", "b"]
    )
    # Assert
    assert result.exit_code == 2
    assert SECRET_ENV in result.output


def test_risk_report_rebuilt_marks_every_open_position_at_its_last_close(
    shared_data: Path, tmp_path: Path
) -> None:
    # Arrange: two symbols, always in the market (short=true), so both are open at the end
    folder = shared_data / "crypto_5m_multi" / "freqtrade_2018"
    files = [folder / "ADA_BTC-5m.feather", folder / "ETH_BTC-5m.feather"]
    out = tmp_path / "two"
    args = ["backtest", "-s", "sma_cross", "-p", "short=true", "-p", "size=0.5",
            "--end", "2018-01-25", "--out", str(out), "--no-report"]  # fmt: skip
    for path in files:
        args += ["-d", str(path)]
    ran = runner.invoke(app, args)
    assert ran.exit_code == 0, ran.output
    for name in ("risk_report.json", "risk_report.csv", "risk_rejections.csv"):
        (out / name).unlink()
    # Act
    result = runner.invoke(risk_app, ["report", str(out), "--json", str(tmp_path / "r.json")])
    # Assert: each position at its own symbol's last close (it was the entry price when more
    # than one was open)
    assert result.exit_code == 0, result.output
    exposure = {p["symbol"]: p for p in json.loads((tmp_path / "r.json").read_text())["exposure"]}
    assert set(exposure) == {"ADA/BTC", "ETH/BTC"}
    end = parse_time("2018-01-25")
    for path in files:
        bars = load_ohlcv(path).bars
        last_close = float(bars.close[int((bars.ts < end).sum()) - 1])
        assert exposure[bars.symbol]["price"] == pytest.approx(last_close, rel=1e-9)
