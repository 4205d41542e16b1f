"""`tradeloop data record` and `tradeloop data replay` as a user runs them, against a local
Binance stream server and the real PostgreSQL."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.e2e.conftest import RunCli

from tradeloop.testing.streams import MarketScript, StreamServer, load_script


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
        returncode, stdout, stderr, _ = _record_all(
            server, script, out, "--postgres", pg_url, "--table-prefix", "e2e_stream_"
        )
    assert returncode == 0, stderr[-3000:]
    assert "recorded" in stdout
    for output in (stdout, stderr):  # no user/password echoed
        assert "@" not in output.split("PostgreSQL")[-1]
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
    result = run_cli("data", "record", "--exchange", "binance", "--symbol", "BTC/USDT", "--out",
                     str(tmp_path), *args)  # fmt: skip
    assert result.exit_code == 2
    assert args[0] in result.output


def test_record_and_replay_take_the_old_spellings_with_a_warning(
    run_cli: RunCli, tmp_path: Path
) -> None:
    # Act: the spellings of the last release (--venue, -s, --stale-after-s), stopped by a
    # bad --outliers before connecting; replay's -s on an empty folder
    old = run_cli("data", "record", "--venue", "binance", "-s", "BTC/USDT", "--out",
                  str(tmp_path), "--stale-after-s", "5", "--outliers", "ignore")  # fmt: skip
    missing = run_cli("data", "record", "--symbol", "BTC/USDT", "--out", str(tmp_path))
    replay = run_cli("data", "replay", str(tmp_path), "-s", "BTC/USDT")
    # Assert: each old name said with its new one; the options still read
    flat = " ".join(old.output.split())
    assert "--venue/-e is deprecated (removed in the next release): use --exchange" in flat
    assert "-s is deprecated (removed in the next release): use --symbol" in flat
    assert "--stale-after-s is deprecated" in flat
    assert "--outliers must be flag, drop or halt" in flat
    assert missing.exit_code == 2
    assert "give --exchange" in missing.output
    assert "-s for a symbol is deprecated" in " ".join(replay.output.split())


def _scrape(url: str) -> dict[str, float]:
    """Every sample of a Prometheus text page as ``name{labels}`` -> value."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(httpx.get(url, timeout=5).text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}"] = s.value
    return out


def _record_all(
    server: StreamServer, script: MarketScript, out: Path, *args: str
) -> tuple[int, str, str, list[dict[str, float]]]:
    """Run ``data record`` as a user does (its own process, Ctrl-C to stop) until the server
    has sent every trade and bar of ``script`` and the command's quality metrics have counted
    them and stopped moving, whatever the machine's load. Returns the exit code, stdout,
    stderr and every metrics scrape."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tradeloop", "data", "record", "--exchange", "binance",
         "--symbol", "BTC/USDT", "--out", str(out), "--duration", "120",
         "--ws-url", server.ws_url, "--rest-url", server.http_url, "--metrics-port", "0",
         *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    scraped: list[dict[str, float]] = []
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        match = re.search(r"metrics on (http://\S+/metrics)", line)
        assert match, line
        url = match.group(1)
        key = "tradeloop_stream_messages_total{source=binance}"
        least = len(script.trades) + len(script.klines)
        deadline = time.monotonic() + 110
        while time.monotonic() < deadline:  # until every message has been counted
            scraped.append(_scrape(url))
            sent = server.sent["trades"] >= len(script.trades)
            sent = sent and server.sent["kline"] >= len(script.klines)
            done = sent and scraped[-1].get(key, 0) >= least
            if done and len(scraped) > 3 and scraped[-1] == scraped[-4]:
                break
            time.sleep(0.25)
    finally:
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    return proc.returncode, stdout, line + stderr, scraped


def test_record_serves_the_stream_quality_metrics_for_prometheus(
    shared_data: Path, tmp_path: Path
) -> None:
    """A running `data record --metrics-port 0` serves every quality family per source; once
    the stream is done the scraped counters equal the quality table the command prints."""
    script = load_script(shared_data, klines=60)
    with StreamServer("binance", script, interval_s=0.002) as server:
        server.send_malformed(2)
        returncode, out, err, scraped = _record_all(server, script, tmp_path / "rec")
    assert returncode == 0, err[-3000:]
    last = scraped[-1]
    src = "{source=binance}"
    for family in ("messages_total", "gaps_total", "outliers_total", "duplicates_total",
                   "out_of_order_total", "malformed_total", "resyncs_total", "failovers_total",
                   "lag_ms", "lag_ms_max", "messages_per_second"):  # fmt: skip
        assert f"tradeloop_stream_{family}{src}" in last, family
    assert last[f"tradeloop_stream_malformed_total{src}"] == 2
    assert last[f"tradeloop_stream_lag_ms_max{src}"] >= last[f"tradeloop_stream_lag_ms{src}"]
    # the counter grew while recording and ends where the command's own table ends
    messages = [m.get(f"tradeloop_stream_messages_total{src}", 0.0) for m in scraped]
    assert messages == sorted(messages)
    assert messages[-1] >= len(script.trades) + len(script.klines)
    row = next(r for r in out.splitlines() if r.lstrip("│┃ ").startswith("binance"))
    cells = [c.strip() for c in re.split(r"[│┃]", row) if c.strip()]
    assert int(cells[1].replace(",", "")) == messages[-1]
    assert int(cells[5]) == 2  # malformed, in the table too
