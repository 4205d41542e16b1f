"""The CLI reproduces trade lists that three independent engines agree on."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from tradeloop.cli.app import app

ORACLES = [
    (
        "sma_10_30_btcusdt_1m_fee0.csv",
        "crypto_1m/binance_spot_2025/BTC_USDT-1m.normalized.csv",
        0.0,
    ),
    ("sma_10_30_btcusdt_1m_fee0.001.csv", "crypto_1m/binance_spot_2025/BTC_USDT-1m.feather", 0.001),
    ("sma_10_30_synth100k_fee0.csv", "oracles/synth_100000.parquet", 0.0),
]


def _times(series: pd.Series) -> pd.Series:
    return pd.to_datetime(series, utc=True, format="ISO8601")


@pytest.mark.parametrize(("oracle", "data", "fee"), ORACLES, ids=[o[0] for o in ORACLES])
def test_backtest_cli_sma_cross_reproduces_oracle_trades(
    shared_data: Path, tmp_path: Path, oracle: str, data: str, fee: float
) -> None:
    # Arrange
    expected = pd.read_csv(shared_data / "oracles" / oracle)
    out = tmp_path / "run"
    # Act
    result = CliRunner().invoke(
        app,
        [
            "backtest",
            "--strategy",
            "sma_cross",
            "--data",
            str(shared_data / data),
            "--param",
            "fast=10",
            "--param",
            "slow=30",
            "--balance",
            "10000",
            "--fee",
            str(fee),
            "--out",
            str(out),
            "--no-report",
        ],
    )
    # Assert
    assert result.exit_code == 0, result.output
    ours = pd.read_csv(out / "trades.csv")
    assert list(ours.columns[:6]) == [
        "entry_time",
        "exit_time",
        "entry_price",
        "exit_price",
        "size",
        "pnl",
    ]
    assert len(ours) == len(expected)
    assert (_times(ours.entry_time) == _times(expected.entry_time)).all()
    exits_ours, exits_ref = _times(ours.exit_time), _times(expected.exit_time)
    assert ((exits_ours == exits_ref) | (exits_ours.isna() & exits_ref.isna())).all()
    assert (ours.entry_price == expected.entry_price).all()
    closed = expected.exit_price.notna()
    assert (ours.exit_price[closed] == expected.exit_price[closed]).all()
    assert ours.exit_price[~closed].isna().all()
    assert ours["size"].to_numpy() == pytest.approx(expected["size"].to_numpy(), rel=1e-12)
    total_ours = math.fsum(ours.pnl[closed])
    total_ref = math.fsum(expected.pnl[closed])
    assert abs(total_ours - total_ref) <= 1e-9 * abs(total_ref)
