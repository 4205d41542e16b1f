"""The command line as a user runs it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import Result

RunCli = Callable[..., Result]  # the ``run_cli`` and ``run_sma_cross_backtest`` fixtures


#: a user strategy file: buy once and hold
ALWAYS_LONG = (
    "from tradeloop.core.signal import Signal\n"
    "from tradeloop.strategy import NO_SIGNALS, Strategy\n\n"
    "class AlwaysLong(Strategy):\n"
    '    """Buy once and hold."""\n\n'
    "    def on_bar(self, view, portfolio):\n"
    "        sym = view.symbols[0]\n"
    "        return [Signal.open_long(sym)] if portfolio.is_flat(sym) else NO_SIGNALS\n"
)


def test_backtest_on_bundled_sample_writes_trades_equity_summary_and_report(
    run_sma_cross_backtest: RunCli, sample_1h: Path, tmp_path: Path
) -> None:
    # Arrange
    out = tmp_path / "demo"
    # Act
    result = run_sma_cross_backtest(
        sample_1h, "-t", "4h", "--fee", "0.001", "-p", "fast=10", "-p", "slow=30",
        "--start", "2020-01-01", "--end", "2023-01-01", "--out", str(out), "--equity-csv",
    )  # fmt: skip
    # Assert
    assert result.exit_code == 0, result.output
    assert "total_return" in result.output
    trades = pd.read_csv(out / "trades.csv")
    equity = pd.read_csv(out / "equity.csv")
    # the CSV (asked for) and the Parquet file (always written) hold the same curve
    parquet = pd.read_parquet(out / "equity.parquet")
    assert (parquet.equity.to_numpy() == equity.equity.to_numpy()).all()
    assert (parquet.timestamp == pd.to_datetime(equity.timestamp, utc=True)).all()
    summary = json.loads((out / "summary.json").read_text())
    assert len(trades) == summary["trade_count"] + summary["open_positions_at_end"]
    assert summary["timeframe"] == "4h"
    first = pd.to_datetime(equity.timestamp, utc=True, format="ISO8601")
    assert first.iloc[0] == pd.Timestamp("2020-01-01", tz="UTC")
    assert first.iloc[-1] < pd.Timestamp("2023-01-01", tz="UTC")
    # 4h steps: every timestamp is on a 4h boundary
    assert ((first - first.iloc[0]) % pd.Timedelta(hours=4) == pd.Timedelta(0)).all()
    assert equity.equity.iloc[-1] == summary["final_equity"]
    html = (out / "report.html").read_text()
    assert "<html>" in html
    assert "Equity and drawdown" in html


def test_backtest_two_files_share_one_portfolio(
    run_sma_cross_backtest: RunCli, sample_1h: Path, tmp_path: Path
) -> None:
    # Arrange: the same series under two symbols, a 4h resample makes them independent-ish
    out = tmp_path / "multi"
    # Act
    result = run_sma_cross_backtest(
        sample_1h, "-d", str(sample_1h), "--symbol", "BTC/USDT", "--symbol", "BTC2/USDT",
        "--end", "2019-01-01", "--out", str(out), "--no-report",
    )  # fmt: skip
    # Assert
    assert result.exit_code == 0, result.output
    trades = pd.read_csv(out / "trades.csv")
    assert set(trades.symbol) == {"BTC/USDT", "BTC2/USDT"}
    # each symbol gets half the equity: first entries of both use ~5000 of notional
    first = trades.groupby("symbol").first()
    notional = first.entry_price * first["size"]
    assert notional.between(4900, 5001).all()


def test_backtest_same_symbol_twice_is_refused(
    run_sma_cross_backtest: RunCli, sample_1h: Path, tmp_path: Path
) -> None:
    result = run_sma_cross_backtest(sample_1h, "-d", str(sample_1h), "--out", str(tmp_path / "x"))
    assert result.exit_code == 2
    assert "name one with --symbol" in result.output


def test_backtest_malformed_file_exits_3_and_names_the_row(
    run_sma_cross_backtest: RunCli, tmp_path: Path
) -> None:
    # Arrange
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "timestamp,open,high,low,close,volume\n"
        "2024-01-01T00:00:00Z,10,11,9,10.5,1\n"
        "2024-01-01T00:01:00Z,10,9.5,9,10.5,1\n"
    )
    # Act
    result = run_sma_cross_backtest(bad, "--out", str(tmp_path / "o"))
    # Assert
    assert result.exit_code == 3
    assert "DataError" in result.output
    assert "row 1" in result.output
    assert not (tmp_path / "o").exists()


def test_backtest_unknown_parameter_exits_2_with_hint(
    run_sma_cross_backtest: RunCli, sample_1h: Path, tmp_path: Path
) -> None:
    result = run_sma_cross_backtest(sample_1h, "-p", "slwo=20", "--out", str(tmp_path / "o"))
    assert result.exit_code == 2
    assert "Did you mean: 'slow'" in result.output


def test_backtest_timeframe_finer_than_data_is_refused(
    run_sma_cross_backtest: RunCli, sample_1h: Path, tmp_path: Path
) -> None:
    result = run_sma_cross_backtest(sample_1h, "-t", "15m", "--out", str(tmp_path / "o"))
    assert result.exit_code != 0
    assert "15m" in result.output


def test_backtest_user_strategy_from_strategies_folder(
    run_cli: RunCli, sample_1h: Path, tmp_path: Path
) -> None:
    # Arrange
    folder = tmp_path / "strategies"
    folder.mkdir()
    (folder / "always_long.py").write_text(ALWAYS_LONG)
    # Act
    result = run_cli(
        "backtest", "-s", "always_long", "-d", str(sample_1h), "--strategies-dir", str(folder),
        "--end", "2018-01-01", "--close-at-end", "--out", str(tmp_path / "o"), "--no-report",
    )  # fmt: skip
    # Assert
    assert result.exit_code == 0, result.output
    trades = pd.read_csv(tmp_path / "o" / "trades.csv")
    assert len(trades) == 1
    assert trades.exit_reason.iloc[0] == "end"


def test_a_broken_strategy_file_hides_only_its_own_strategies(
    run_cli: RunCli, sample_1h: Path, tmp_path: Path
) -> None:
    # Arrange: one file that imports, one a half-written draft beside it
    folder = tmp_path / "strategies"
    folder.mkdir()
    (folder / "always_long.py").write_text(ALWAYS_LONG)
    (folder / "draft.py").write_text("class Half(:\n")
    common = ("-d", str(sample_1h), "--strategies-dir", str(folder), "--end", "2017-09-01")
    # Act
    bundled = run_cli(
        "backtest", "-s", "sma_cross", *common, "--out", str(tmp_path / "a"), "--no-report"
    )
    user = run_cli(
        "backtest", "-s", "always_long", *common, "--out", str(tmp_path / "b"), "--no-report"
    )
    missing = run_cli("backtest", "-s", "half", *common, "--out", str(tmp_path / "c"))
    listing = run_cli("strategies", "--strategies-dir", str(folder), "--json")
    # Assert: the others still run, with a warning naming the broken file
    assert bundled.exit_code == 0, bundled.output
    assert user.exit_code == 0, user.output
    assert "draft.py" in bundled.output
    assert "SyntaxError" in bundled.output
    assert (tmp_path / "b" / "trades.csv").exists()
    # a name that is in no importable file: the broken file is the likely reason
    assert missing.exit_code == 2
    assert "unknown strategy 'half'" in missing.output
    assert "draft.py" in missing.output
    assert listing.exit_code == 0
    names = {s["name"] for s in json.loads(listing.stdout)}
    assert {"always_long", "sma_cross"} <= names
    assert "draft.py" in listing.stderr


def test_strategies_lists_examples_with_defaults(run_cli: RunCli) -> None:
    result = run_cli("strategies", env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for name in ("sma_cross", "rsi_reversion", "donchian_breakout", "vwap_momentum", "mtf_trend"):
        assert name in result.output
    assert "fast=10" in result.output


def test_help_explains_backtest_options(run_cli: RunCli) -> None:
    result = run_cli("backtest", "--help", env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for flag in ("--strategy", "--data", "--timeframe", "--param", "--fee", "--start"):
        assert flag in result.output


def test_backtest_with_risk_profile_cuts_positions_and_reports_rejections(
    run_sma_cross_backtest: RunCli, sample_1h: Path, tmp_path: Path
) -> None:
    # Arrange: the default profile caps a position at 10% of equity
    risk_file = tmp_path / "risk.toml"
    risk_file.write_text('profile = "default"\n[limits]\nmax_position_pct = 0.1\n')
    out = tmp_path / "risky"
    # Act
    result = run_sma_cross_backtest(
        sample_1h, "--end", "2019-01-01", "--risk", str(risk_file), "--out", str(out), "--no-report"
    )
    # Assert
    assert result.exit_code == 0, result.output
    trades = pd.read_csv(out / "trades.csv")
    notional = trades.entry_price * trades["size"]
    summary = json.loads((out / "summary.json").read_text())
    assert (notional <= 0.1 * 10_000 * 3).all()  # a tenth of equity, equity stays < 3x start
    assert notional.iloc[0] == pytest.approx(1_000, rel=0.01)
    assert summary["config"]["risk"]["profile"] == "default"
    assert isinstance(summary["rejections_by_reason"], dict)
    assert (out / "risk_report.json").exists()


def test_backtest_with_misspelt_risk_key_exits_2_with_hint(
    run_sma_cross_backtest: RunCli, sample_1h: Path, tmp_path: Path
) -> None:
    risk_file = tmp_path / "risk.toml"
    risk_file.write_text("[limits]\nmax_positon_pct = 0.1\n")
    result = run_sma_cross_backtest(
        sample_1h, "--risk", str(risk_file), "--out", str(tmp_path / "o")
    )
    assert result.exit_code == 2
    assert "max_position_pct" in result.output


def test_backtest_with_a_registered_model_drops_weak_entries_and_names_the_model(
    run_cli: RunCli, run_sma_cross_backtest: RunCli, sample_1h: Path, tmp_path: Path
) -> None:
    # Arrange: a model trained by `tradeloop train` on the bundled sample
    models = tmp_path / "models"
    trained = run_cli(
        "train", "-s", "sma_cross", "-d", str(sample_1h), "--name", "btc_meta",
        "--registry", str(models), "--n-estimators", "30", "--folds", "3",
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    window = ("--start", "2022-01-01", "--fee", "0.001", "--no-report")
    # Act
    plain = run_sma_cross_backtest(sample_1h, *window, "--out", str(tmp_path / "plain"))
    result = run_sma_cross_backtest(
        sample_1h, *window, "--out", str(tmp_path / "ml"), "--model", "btc_meta",
        "--registry", str(models), "--min-confidence", "0.5", "--ml-threads", "1",
    )  # fmt: skip
    # Assert
    assert plain.exit_code == 0, plain.output
    assert result.exit_code == 0, result.output
    assert "model btc_meta:v0001" in result.output
    run = json.loads((tmp_path / "ml" / "run.json").read_text())
    assert json.loads((tmp_path / "plain" / "run.json").read_text())["model"] is None
    model = run["model"]
    assert (model["name"], model["version"], model["min_confidence"]) == ("btc_meta", "v0001", 0.5)
    assert model["threads"] == 1
    assert model["counts"]["dropped"] > 0
    assert model["counts"]["enriched"] == model["counts"]["signals"] - model["counts"]["exits"]
    ml_trades = pd.read_csv(tmp_path / "ml" / "trades.csv")
    plain_trades = pd.read_csv(tmp_path / "plain" / "trades.csv")
    assert 0 < len(ml_trades) < len(plain_trades)
    assert set(ml_trades.entry_time) <= set(plain_trades.entry_time)  # only entries left out


@pytest.mark.parametrize(
    ("args", "message"),
    [(("--model", "btc_mta"), "Available: btc_meta"),
     (("--model", "btc_meta:v0002"), "versions: v0001"),
     (("--min-confidence", "0.5"), "need --model")],
)  # fmt: skip
def test_backtest_model_errors_exit_2_and_say_what_exists(
    run_cli: RunCli, run_sma_cross_backtest: RunCli, sample_1h: Path, tmp_path: Path,
    args: tuple[str, ...], message: str,
) -> None:  # fmt: skip
    # Arrange: one saved model, trained on the project's own code
    from tradeloop.data.loader import load_ohlcv
    from tradeloop.ml.registry import ModelCatalog
    from tradeloop.ml.training import TrainConfig, train_meta_model

    bars = load_ohlcv(sample_1h).bars.slice(0, 2_000)
    events = np.arange(150, 1_900, 7)
    cfg = TrainConfig(estimator_params={"n_estimators": 10}, n_splits=3)
    model = train_meta_model(bars, events, np.ones(events.size, np.int64), cfg).model
    ModelCatalog(tmp_path / "models").registry("btc_meta").save(model)
    # Act
    result = run_sma_cross_backtest(
        sample_1h, "--registry", str(tmp_path / "models"), *args, "--out", str(tmp_path / "o")
    )
    # Assert
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "o").exists()


def test_backtest_window_outside_the_data_names_both_ranges(
    run_sma_cross_backtest: RunCli, sample_1h: Path, tmp_path: Path
) -> None:
    result = run_sma_cross_backtest(sample_1h, "--start", "2030-01-01", "--out", str(tmp_path))
    flat = " ".join(result.output.split())
    assert result.exit_code == 3
    assert "the data runs 2017-08-17 04:00 to 2024-04-21 14:00" in flat
    assert "the run 2030-01-01 00:00 to its end" in flat
