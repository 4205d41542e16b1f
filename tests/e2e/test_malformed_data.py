"""Malformed data: one small file per defect, each through `backtest` and `data check`.

Every file is the bundled BTC/USDT 1h sample's first 800 rows with exactly one defect. A
defect the data check fails on must stop `backtest` by default (exit 3, naming the check, the
row and the time) and be listed by `data check` (exit 1) at the same row; with
`--allow-data-issues` the run proceeds and records the finding in run.json. Unreadable files
get a named error from both commands. Layout variants (headerless, `;`, banner lines, newest
first) must load and trade exactly like the clean file.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import Result

RunCli = Callable[..., Result]

ROWS = 800


@pytest.fixture(scope="module")
def clean(sample_1h: Path) -> pd.DataFrame:
    return pd.read_csv(sample_1h).iloc[:ROWS].reset_index(drop=True)


def _write(frame: pd.DataFrame, path: Path, **kwargs: object) -> Path:
    frame.to_csv(path, index=False, **kwargs)  # type: ignore[arg-type]
    return path


def _extreme(df: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    df = df.copy()
    df.loc[500, ["open", "high", "low", "close"]] = 1e300
    return df, 500


def _spike_100x(df: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    df = df.copy()
    df.loc[300, ["high", "close"]] = df.loc[300, "close"] * 100
    return df, 300


def _interpolated(df: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    # a linear gap filler: rows 400..419 on straight lines between rows 399 and 420
    df = df.copy()
    for col in ("open", "high", "low", "close"):
        a, b = df.loc[399, col], df.loc[420, col]
        df.loc[400:419, col] = a + (b - a) * np.arange(1, 21) / 21
    return df, 399


def _off_grid(df: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    df = df.copy()
    ts = pd.to_datetime(df.timestamp, utc=True, format="ISO8601")
    ts.iloc[250] = ts.iloc[250] + pd.Timedelta(minutes=7)
    df["timestamp"] = ts.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return df, 250


def _ohlc_violation(df: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    df = df.copy()
    df.loc[600, "high"] = min(df.loc[600, "open"], df.loc[600, "close"]) * 0.99
    return df, 600


REFUSED = {
    "extreme_1e300": (_extreme, "extreme values"),
    "spike_100x": (_spike_100x, "extreme values"),
    "interpolated_stretch": (_interpolated, "interpolated"),
    "off_grid_stamp": (_off_grid, "off-grid"),
    "ohlc_violation": (_ohlc_violation, "high"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_defect_refused_by_backtest_listed_by_check_allowed_on_request(
    case: str, clean: pd.DataFrame, run_cli: RunCli, tmp_path: Path
) -> None:
    # Arrange
    make, check_name = REFUSED[case]
    frame, row = make(clean)
    path = _write(frame, tmp_path / f"{case}.csv")
    when = str(clean.timestamp[row])[:13]  # "2017-09-07T12"
    where = "rows 399-420" if case == "interpolated_stretch" else f"row {row:,}"
    # Act
    refused = run_cli("backtest", "-s", "sma_cross", "-d", str(path), "--no-report",
                      "--out", str(tmp_path / "refused"))  # fmt: skip
    checked = run_cli("data", "check", str(path), "--show", "3")
    allowed = run_cli("backtest", "-s", "sma_cross", "-d", str(path), "--no-report",
                      "--allow-data-issues", "--out", str(tmp_path / "run"))  # fmt: skip
    # Assert: refused, naming the check, the row and the time
    assert refused.exit_code == 3, refused.output
    assert "DataError" in refused.output
    assert check_name in refused.output
    assert where in refused.output
    assert not (tmp_path / "refused" / "run.json").exists()
    # the data check fails and says where
    assert checked.exit_code == 1, checked.output
    assert where in checked.output
    if case != "ohlc_violation":  # the loader names it by field; the gate by its time
        assert when in refused.output.replace("\n", "")
    assert when in checked.output
    # allowed: the run proceeds and the record holds the finding
    assert allowed.exit_code == 0, allowed.output
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    issues = record["data_issues"]
    assert len(issues) == 1
    assert issues[0]["rows"][0] == row
    assert issues[0]["times"][0].startswith(when)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["bars"] == ROWS


def test_nan_price_refused_even_with_allow(
    clean: pd.DataFrame, run_cli: RunCli, tmp_path: Path
) -> None:
    # Arrange
    frame = clean.copy()
    frame.loc[123, "close"] = np.nan
    path = _write(frame, tmp_path / "nan.csv")
    # Act
    allowed = run_cli("backtest", "-s", "sma_cross", "-d", str(path), "--no-report",
                      "--allow-data-issues", "--out", str(tmp_path / "run"))  # fmt: skip
    checked = run_cli("data", "check", str(path))
    # Assert
    assert allowed.exit_code == 3
    assert "row 123" in allowed.output
    assert "close" in allowed.output
    assert checked.exit_code == 1
    assert "row 123" in checked.output


def _truncated_gz(df: pd.DataFrame, path: Path) -> Path:
    data = gzip.compress(df.to_csv(index=False).encode())
    path.write_bytes(data[: len(data) // 2])
    return path


def _corrupt_gz(df: pd.DataFrame, path: Path) -> Path:
    data = bytearray(gzip.compress(df.to_csv(index=False).encode()))
    data[200:260] = b"\x00" * 60
    path.write_bytes(bytes(data))
    return path


def _truncated_zst(df: pd.DataFrame, path: Path) -> Path:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, "zstd") as out:
        out.write(df.to_csv(index=False).encode())
    data = sink.getvalue().to_pybytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _truncated_parquet(df: pd.DataFrame, path: Path) -> Path:
    full = path.with_name("full.parquet")
    df.to_parquet(full)
    data = full.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


UNREADABLE = {
    "truncated.csv.gz": (_truncated_gz, "truncated gz file"),
    "corrupt.csv.gz": (_corrupt_gz, "gz file"),
    "truncated.csv.zst": (_truncated_zst, "zst file"),
    "truncated.parquet": (_truncated_parquet, "truncated or corrupt"),
}


@pytest.mark.parametrize("name", sorted(UNREADABLE))
def test_unreadable_file_named_error_in_backtest_and_check(
    name: str, clean: pd.DataFrame, run_cli: RunCli, tmp_path: Path
) -> None:
    # Arrange
    make, message = UNREADABLE[name]
    path = make(clean, tmp_path / name)
    # Act
    backtest = run_cli("backtest", "-s", "sma_cross", "-d", str(path), "--no-report",
                       "--out", str(tmp_path / "run"))  # fmt: skip
    checked = run_cli("data", "check", str(path))
    # Assert: a named DataError, never click's bare "Aborted."
    for result in (backtest, checked):
        assert result.exit_code == 3, result.output
        assert "DataError" in result.output
        assert message in result.output
        assert name in result.output
        assert "Aborted" not in result.output


def _headerless_semicolon(df: pd.DataFrame, path: Path) -> Path:
    df.to_csv(path, index=False, header=False, sep=";")
    return path


def _banner(df: pd.DataFrame, path: Path) -> Path:
    path.write_text(
        "# Exported by SomeTerminal 4.2\nBTC/USDT 1h candles, UTC\n" + df.to_csv(index=False)
    )
    return path


def _newest_first(df: pd.DataFrame, path: Path) -> Path:
    df.iloc[::-1].to_csv(path, index=False)
    return path


def _zst(df: pd.DataFrame, path: Path) -> Path:
    import pyarrow as pa

    with pa.CompressedOutputStream(str(path), "zstd") as out:
        out.write(df.to_csv(index=False).encode())
    return path


LAYOUTS = {
    "headerless_semicolon.csv": _headerless_semicolon,
    "bannered.csv": _banner,
    "newest_first.csv": _newest_first,
    "clean.csv.zst": _zst,
}


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_layout_variants_load_and_trade_like_the_clean_file(
    name: str, clean: pd.DataFrame, run_cli: RunCli, tmp_path: Path
) -> None:
    # Arrange
    reference = _write(clean, tmp_path / "BTC_USDT-1h.csv")
    variant = LAYOUTS[name](clean, tmp_path / name)
    # Act
    base = run_cli("backtest", "-s", "sma_cross", "-d", str(reference), "--no-report",
                   "--symbol", "BTC/USDT", "--out", str(tmp_path / "base"))  # fmt: skip
    other = run_cli("backtest", "-s", "sma_cross", "-d", str(variant), "--no-report",
                    "--symbol", "BTC/USDT", "--out", str(tmp_path / "other"))  # fmt: skip
    checked = run_cli("data", "check", str(variant))
    # Assert: same bars, same trades
    assert base.exit_code == 0, base.output
    assert other.exit_code == 0, other.output
    assert checked.exit_code == 0, checked.output
    a = pd.read_csv(tmp_path / "base" / "trades.csv")
    b = pd.read_csv(tmp_path / "other" / "trades.csv")
    assert len(a) > 0
    pd.testing.assert_frame_equal(a, b)
    summary = json.loads((tmp_path / "other" / "summary.json").read_text())
    assert summary["bars"] == ROWS
    if name == "newest_first.csv":
        record = json.loads((tmp_path / "other" / "run.json").read_text())
        assert record["data"][0]["repaired"] == {"reversed_newest_first": ROWS}


def test_headerless_file_with_explicit_columns_and_skip_rows(
    clean: pd.DataFrame, run_cli: RunCli, tmp_path: Path
) -> None:
    # Arrange: volume first, a one-line banner, no header
    reordered = clean[["timestamp", "volume", "open", "high", "low", "close"]]
    path = tmp_path / "odd.csv"
    path.write_text("banner line\n" + reordered.to_csv(index=False, header=False))
    reference = _write(clean, tmp_path / "ref.csv")
    # Act
    result = run_cli("backtest", "-s", "sma_cross", "-d", str(path), "--no-report",
                     "--no-header", "--columns", "timestamp,volume,open,high,low,close",
                     "--skip-rows", "1", "--symbol", "BTC/USDT",
                     "--out", str(tmp_path / "run"))  # fmt: skip
    base = run_cli("backtest", "-s", "sma_cross", "-d", str(reference), "--no-report",
                   "--symbol", "BTC/USDT", "--out", str(tmp_path / "base"))  # fmt: skip
    # Assert
    assert base.exit_code == 0, base.output
    assert result.exit_code == 0, result.output
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "run" / "trades.csv"), pd.read_csv(tmp_path / "base" / "trades.csv")
    )
