"""Fetch through ccxt into the cache, then backtest from the cache by exchange and symbol."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from tradeloop.cli.app import app
from tradeloop.testing.venue import LocalVenueServer

runner = CliRunner()


@pytest.fixture
def env(venue: LocalVenueServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)
    return {
        "TRADELOOP_BINANCE_URL": venue.url,
        "TRADELOOP_BINANCE_RATE_LIMIT_MS": "1",
        "TRADELOOP_CACHE_ROOT": str(tmp_path / "cache"),
        "COLUMNS": "200",
    }


def test_backtest_from_cache_resamples_1m_and_equals_a_file_backtest(
    env: dict[str, str], shared_data: Path, tmp_path: Path
) -> None:
    # Arrange: 1m bars cached through the real ccxt client and the local venue server
    fetched = runner.invoke(
        app,
        [
            "data",
            "fetch",
            "--exchange",
            "binance",
            "--symbol",
            "BTC/USDT",
            "--timeframe",
            "1m",
            "--start",
            "2025-06-01",
            "--end",
            "2025-06-08",
        ],
        env=env,
    )
    assert fetched.exit_code == 0, fetched.output
    common = [
        "-s",
        "sma_cross",
        "-t",
        "15m",
        "--fee",
        "0.001",
        "--start",
        "2025-06-01",
        "--end",
        "2025-06-08",
        "--no-report",
    ]
    # Act
    cached = runner.invoke(
        app,
        [
            "backtest",
            "--exchange",
            "binance",
            "--symbol",
            "BTC/USDT",
            *common,
            "--out",
            str(tmp_path / "cached"),
        ],
        env=env,
    )
    from_file = runner.invoke(
        app,
        [
            "backtest",
            "-d",
            str(shared_data / "crypto_1m/binance_spot_2025/BTC_USDT-1m.feather"),
            *common,
            "--out",
            str(tmp_path / "file"),
        ],
        env=env,
    )
    # Assert: same trades from the cache as from the original file
    assert cached.exit_code == 0, cached.output
    assert from_file.exit_code == 0, from_file.output
    a = pd.read_csv(tmp_path / "cached" / "trades.csv")
    b = pd.read_csv(tmp_path / "file" / "trades.csv")
    assert len(a) > 5
    pd.testing.assert_frame_equal(a, b)


def test_backtest_without_data_or_exchange_explains_both_ways(tmp_path: Path) -> None:
    result = runner.invoke(app, ["backtest", "-s", "sma_cross", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "--data FILE" in result.output
    assert "--exchange" in result.output
