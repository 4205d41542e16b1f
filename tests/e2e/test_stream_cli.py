"""`tradeloop data record` and `tradeloop data replay` as a user runs them, against a local
Binance stream server and the real PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest
from tests.e2e.conftest import RunCli

from tradeloop.testing.streams import StreamServer, load_script


def _json(output: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(output[output.index("{") :])
    return data


def test_record_to_parquet_and_postgres_then_replay_through_a_strategy(
    run_cli: RunCli, shared_data: Path, tmp_path: Path, pg_url: str
) -> None:
    script = load_script(shared_data, klines=150)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for kind in ("trades", "bars", "book", "funding", "open_interest"):
            conn.execute(f"drop table if exists e2e_stream_{kind} cascade")
    out = tmp_path / "rec"
    with StreamServer("binance", script, interval_s=0.001) as server:
        result = run_cli(
            "data", "record", "--venue", "binance", "-s", "BTC/USDT", "--out", str(out),
            "--duration", "8", "--ws-url", server.ws_url, "--rest-url", server.http_url,
            "--postgres", pg_url, "--table-prefix", "e2e_stream_",
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "recorded" in result.output
    assert "@" not in result.output.split("PostgreSQL")[-1]  # no user/password echoed
    replay = run_cli("data", "replay", str(out), "--json")
    assert replay.exit_code == 0, replay.output
    summary = _json(replay.output)
    assert summary["market_trades"] == len(script.trades)
    assert summary["bars"] == len(script.klines)
    with psycopg.connect(pg_url) as conn:
        n_trades = conn.execute("select count(*) from e2e_stream_trades").fetchone()
        n_bars = conn.execute("select count(*) from e2e_stream_bars where closed").fetchone()
        first = conn.execute(
            "select trade_id, price, time from e2e_stream_trades order by ts limit 1"
        ).fetchone()
        parts = conn.execute(
            "select count(*) from pg_inherits where inhparent = 'e2e_stream_trades'::regclass"
        ).fetchone()
    assert n_trades is not None
    assert n_trades[0] == len(script.trades)
    assert n_bars is not None
    assert n_bars[0] == len(script.klines)
    assert first is not None
    assert first[0] == str(script.trades[0].trade_id)
    assert first[1] == script.trades[0].price
    assert parts is not None
    assert parts[0] == 1
    # through a strategy, twice: the same orders and trades (deterministic)
    runs = [
        _json(run_cli("data", "replay", str(out), "--strategy", "sma_cross", "-p", "fast=5",
                      "-p", "slow=20", "--json").output)
        for _ in range(2)
    ]  # fmt: skip
    assert runs[0]["orders"] > 0
    assert runs[0]["trades"] == runs[1]["trades"]
    assert runs[0]["equity"] == runs[1]["equity"]


def test_replay_refuses_bad_input_with_a_clear_error(run_cli: RunCli, tmp_path: Path) -> None:
    empty = run_cli("data", "replay", str(tmp_path))
    assert empty.exit_code == 3
    assert "no recording" in empty.output
    assert str(tmp_path) in empty.output.replace("\n", "")
    bad_speed = run_cli("data", "replay", str(tmp_path), "--speed", "fast")
    assert bad_speed.exit_code == 2
    assert "--speed" in bad_speed.output


@pytest.mark.parametrize("args", [["--outliers", "ignore"], ["--market", "options"]])
def test_record_refuses_bad_options(run_cli: RunCli, tmp_path: Path, args: list[str]) -> None:
    result = run_cli("data", "record", "--venue", "binance", "-s", "BTC/USDT", "--out",
                     str(tmp_path), *args)  # fmt: skip
    assert result.exit_code == 2
    assert args[0] in result.output
