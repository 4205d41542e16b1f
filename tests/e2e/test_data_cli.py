"""``tradeloop data fetch | list | check`` as a user runs them, against the local venue server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import Result
from typer.testing import CliRunner

from tradeloop.cli.app import app
from tradeloop.data.cache import CacheKey, ParquetCache
from tradeloop.testing.venue import LocalVenueServer

runner = CliRunner()


@pytest.fixture
def env(venue: LocalVenueServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)
    return {
        "TRADELOOP_BINANCE_URL": venue.url,
        "TRADELOOP_BINANCE_RATE_LIMIT_MS": "1",
        "TRADELOOP_BYBIT_URL": venue.url,
        "TRADELOOP_RETRY__BACKOFF_BASE_S": "0.01",
        "TRADELOOP_RETRY__MAX_RETRIES": "2",
        "TRADELOOP_CACHE_ROOT": str(tmp_path / "cache"),
        "COLUMNS": "200",  # a wide terminal: table cells are not folded
    }


def _fetch(env: dict[str, str], *args: str) -> Result:
    return runner.invoke(app, ["data", "fetch", "--exchange", "binance", *args], env=env)


def test_fetch_list_check_round_trip(env: dict[str, str], venue: LocalVenueServer) -> None:
    # Act: fetch the real 1h history, then again (nothing missing), then list and check it
    args = [
        "--symbol",
        "BTC/USDT",
        "--timeframe",
        "1h",
        "--start",
        "2017-08-01",
        "--end",
        "2024-05-01",
    ]
    first = _fetch(env, *args)
    pages = venue.count("/api/v3/klines")
    second = _fetch(env, *args)
    listed = runner.invoke(app, ["data", "list"], env=env)
    checked = runner.invoke(
        app, ["data", "check", "BTC/USDT", "--exchange", "binance", "--show-gaps", "3"], env=env
    )
    gated = runner.invoke(app, ["data", "check", "BTC/USDT", "--max-gaps", "10"], env=env)
    # Assert
    assert first.exit_code == 0, first.output
    assert "58,419" in first.output
    assert "fetched" in first.output
    assert second.exit_code == 0
    assert "up to date" in second.output
    assert venue.count("/api/v3/klines") == pages  # the re-run asked for no candles
    assert listed.exit_code == 0
    assert "binance" in listed.output
    assert "BTC/USDT" in listed.output
    assert "128" in listed.output
    assert checked.exit_code == 0, checked.output
    assert "2018-02-08T00:00:00Z" in checked.output  # the longest outage, listed
    assert "2023-03-24T12:00:00Z" in checked.output  # a zero-volume bar, listed
    assert "PASS" in checked.output
    assert gated.exit_code == 1
    assert "gaps 28 > limit 10" in gated.output


def test_check_reports_bad_rows_instead_of_stopping(tmp_path: Path, env: dict[str, str]) -> None:
    # Arrange: a CSV that load_ohlcv would refuse at its first bad row
    frame = pd.DataFrame(
        {
            "timestamp": [
                "2024-01-01T00:00Z",
                "2024-01-01T00:01Z",
                "2024-01-01T00:01Z",
                "2024-01-01T00:03Z",
                "2024-01-01T00:04:30Z",
            ],
            "open": [10.0, 11, 11, 12, 12],
            "high": [11.0, 12, 12, 11, 13],
            "low": [9.0, 10, 10, 11, 11],
            "close": [11.0, 11, 11, 12, 12],
            "volume": [1.0, 0, 0, 1, 1],
        }
    )
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    # Act
    result = runner.invoke(app, ["data", "check", str(path), "--timeframe", "1m"], env=env)
    # Assert
    assert result.exit_code == 1
    out = " ".join(result.output.split())
    for fragment in (
        "duplicate timestamps 1",
        "OHLC violations 1",
        "off-grid timestamps 1",
        "FAIL",
    ):
        assert fragment in out.replace(" │ ", " ").replace("│", ""), fragment


def test_corrupt_cache_file_gives_a_clear_error_and_needs_force(
    env: dict[str, str], tmp_path: Path
) -> None:
    # Arrange
    path = tmp_path / "cache/binance/spot/BTC_USDT/1m.parquet"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a parquet file")
    args = ["--symbol", "BTC/USDT", "--start", "2025-06-01", "--end", "2025-06-02"]
    # Act
    refused = _fetch(env, *args)
    forced = _fetch(env, *args, "--force")
    # Assert
    assert refused.exit_code == 3
    assert "corrupt" in refused.output
    assert "--force" in refused.output
    assert forced.exit_code == 0, forced.output
    table = ParquetCache(tmp_path / "cache").read(CacheKey("binance", "spot", "BTC/USDT", "1m"))
    assert table is not None
    assert table.num_rows == 1440


def test_perp_fetch_caches_funding_open_interest_and_trades_option(
    env: dict[str, str], tmp_path: Path
) -> None:
    # Act
    result = _fetch(
        env,
        "--market",
        "perp",
        "--symbol",
        "ETH/USDT",
        "--timeframe",
        "5m",
        "--start",
        "2025-05-25",
        "--end",
        "2025-06-25",
    )
    spot_trades = _fetch(
        env, "--symbol", "XRP/ETH", "--trades", "--start", "2019-10-11", "--end", "2019-10-14"
    )
    listed = runner.invoke(app, ["data", "list", "--symbol", "ETH/USDT"], env=env)
    # Assert
    assert result.exit_code == 0, result.output
    assert spot_trades.exit_code == 0, spot_trades.output
    folder = tmp_path / "cache/binance/perp/ETH_USDT_USDT"
    assert sorted(p.name for p in folder.glob("*.parquet")) == [
        "5m.parquet",
        "funding_rate.parquet",
        "open_interest_5m.parquet",
    ]
    assert (tmp_path / "cache/binance/spot/XRP_ETH/trades.parquet").is_file()
    assert "funding_rate" in listed.output
    assert "open_interest_5m" in listed.output


def test_fill_forward_stores_synthetic_bars(env: dict[str, str], tmp_path: Path) -> None:
    # Act
    result = _fetch(
        env,
        "--symbol",
        "BTC/USDT",
        "--timeframe",
        "1h",
        "--start",
        "2018-02-01",
        "--end",
        "2018-03-01",
        "--fill",
        "forward",
    )
    checked = runner.invoke(app, ["data", "check", "BTC/USDT", "-t", "1h"], env=env)
    # Assert: the 33 hours of the Feb-2018 outage are filled and flagged
    assert result.exit_code == 0, result.output
    table = ParquetCache(tmp_path / "cache").read(CacheKey("binance", "spot", "BTC/USDT", "1h"))
    assert table is not None
    synthetic = table.column("synthetic").to_numpy()
    assert int(synthetic.sum()) == 33
    assert table.num_rows == 28 * 24
    assert checked.exit_code == 0
    assert "synthetic" in checked.output


def test_bybit_fetch_through_the_cli(env: dict[str, str], tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "data",
            "fetch",
            "--exchange",
            "bybit",
            "--symbol",
            "BTC/USDT",
            "--start",
            "2025-06-01",
            "--end",
            "2025-06-02",
        ],
        env=env,
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cache/bybit/spot/BTC_USDT/1m.parquet").is_file()


def test_killed_fetch_resumes_and_equals_an_uninterrupted_fetch(
    venue: LocalVenueServer, env: dict[str, str], tmp_path: Path
) -> None:
    # Arrange: an uninterrupted reference, then a slow server so the fetch can be killed
    args = ["--symbol", "BTC/USDT", "--start", "2025-05-20", "--end", "2025-07-01"]
    reference_env = {**env, "TRADELOOP_CACHE_ROOT": str(tmp_path / "reference")}
    assert _fetch(reference_env, *args).exit_code == 0
    key = CacheKey("binance", "spot", "BTC/USDT", "1m")
    cache = ParquetCache(tmp_path / "cache")
    venue.delay_s = 0.05
    child_env = {**os.environ, **env}
    child = subprocess.Popen(
        [sys.executable, "-m", "tradeloop", "data", "fetch", "--exchange", "binance", *args],
        env=child_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(1200):  # wait (bounded) until two chunks of pages are on disk
            if cache.pending_parts(key) >= 2 or child.poll() is not None:
                break
            time.sleep(0.05)
        assert child.poll() is None, "the fetch ended before it could be interrupted"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=60)
    venue.delay_s = 0.0
    kept = cache.coverage(key)
    before = venue.count("/api/v3/klines")
    # Act
    resumed = _fetch(env, *args)
    # Assert
    assert child.returncode == -signal.SIGKILL
    assert kept
    assert kept[0][0] == 1747699200 * 10**9
    assert resumed.exit_code == 0, resumed.output
    total_pages = int(np.ceil((42 * 1440) / 1000))
    assert venue.count("/api/v3/klines") - before < total_pages
    assert (
        cache.path(key).read_bytes() == ParquetCache(tmp_path / "reference").path(key).read_bytes()
    )


def test_check_reads_a_file_named_as_backtest_reads_it(tmp_path: Path) -> None:
    # Arrange: a venue's monthly archive of epoch-second bars, its own column names, no volume
    ts = 1_704_067_200 + np.arange(48) * 3600
    close = 100 + np.cumsum(np.random.default_rng(7).normal(0, 0.5, 48))
    text = "Date,O,H,L,C\n" + "".join(
        f"{t},{c:.2f},{c + 1:.2f},{c - 1:.2f},{c + 0.5:.2f}\n"
        for t, c in zip(ts, close, strict=True)
    )
    path = tmp_path / "BTCUSDT-1h-2024-01.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("BTCUSDT-1h-2024-01.csv", text)
    names = ["--ts-col", "Date", "--open-col", "O", "--high-col", "H", "--low-col", "L",
             "--close-col", "C", "--volume-col", "none", "--time-unit", "s"]  # fmt: skip
    # Act
    checked = runner.invoke(app, ["data", "check", str(path), *names], env={"COLUMNS": "200"})
    unnamed = runner.invoke(app, ["data", "check", str(path)], env={"COLUMNS": "200"})
    out = ["--out", str(tmp_path / "o"), "--no-report"]
    tested = runner.invoke(app, ["backtest", "-s", "sma_cross", "-d", str(path), "--symbol",
                                 "BTC/USDT", *names, *out])  # fmt: skip
    # Assert: both commands read it with the same options
    assert checked.exit_code == 0, checked.output
    assert "48 rows · 2024-01-01T00:00:00Z → 2024-01-02T23:00:00Z" in " ".join(
        checked.output.split()
    )
    assert "zero-volume bars:" not in checked.output  # no volume is no finding
    assert unnamed.exit_code == 3
    assert "pass --volume-col none for data without volume" in unnamed.output
    assert tested.exit_code == 0, tested.output


def test_check_json_holds_the_verdict_and_every_finding_with_its_rows(
    tmp_path: Path, sample_1h: Path
) -> None:
    # Arrange: the sample with one bar near 1e300 at data row 700, and the clean sample
    frame = pd.read_csv(sample_1h).head(1_500)
    frame.loc[700, ["open", "high", "low", "close"]] = 1e300
    bad = tmp_path / "BTC_USDT-1h.csv"
    frame.to_csv(bad, index=False)
    # Act
    failed = runner.invoke(app, ["data", "check", str(bad), "--json"])
    passed = runner.invoke(app, ["data", "check", str(sample_1h), "--json"])
    # Assert: the same exit codes as the table; stdout is JSON only
    assert failed.exit_code == 1
    (report,) = json.loads(failed.stdout)
    assert report["ok"] is False
    assert report["rows"] == 1_500
    assert report["extreme_bars"] == 1
    extreme = next(f for f in report["findings"] if f["check"] == "extreme values")
    assert extreme["rows"] == [700]
    assert extreme["fails"] is True
    assert any("extreme values" in text for text in report["failures"])
    assert passed.exit_code == 0, passed.output
    assert json.loads(passed.stdout)[0]["ok"] is True
