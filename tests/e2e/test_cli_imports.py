"""What the ``tradeloop`` process imports: ``--help`` and a plain backtest stay lean.

The whole-process speed of ``tradeloop backtest`` depends on not importing the ML stack, the
venue and bus machinery or pandas/plotly. Each case runs the CLI's own ``main`` in a fresh
interpreter and reads its ``sys.modules`` at the end: modules are counted, not timed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tradeloop.data.loader import load_ohlcv

_CHILD = r"""
import contextlib, io, json, sys
sys.argv = json.loads(sys.argv[1])
from tradeloop.cli.app import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    else:
        code = 0
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""

#: packages a plain backtest (or --help) has no use for
_HEAVY = (
    "numba",
    "scipy",
    "sklearn",
    "lightgbm",
    "torch",
    "pandas",
    "plotly",
    "duckdb",
    "redis",
    "fastapi",
    "ccxt",
    "alpaca",
    "optuna",
    "hmmlearn",
    "exchange_calendars",
)


def _modules(args: list[str], cwd: Path) -> tuple[int, set[str]]:
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(["tradeloop", *args])],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout.strip().splitlines()[-1])
    return int(answer["code"] or 0), set(answer["modules"])


def _tops(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


def test_help_imports_only_the_cli_toolkit(tmp_path: Path) -> None:
    # Act
    code, modules = _modules(["--help"], tmp_path)
    # Assert: typer and rich, no numpy, no engine, no asyncio (only the commands that run an
    # event loop import it, when they run)
    assert code == 0
    assert not _tops(modules) & {*_HEAVY, "numpy", "pyarrow", "pydantic", "asyncio"}
    assert "tradeloop.engine.kernel" not in modules
    assert len(modules) < 400


@pytest.mark.parametrize("stops", [False, True], ids=["plain", "stops"])
def test_a_backtest_imports_no_ml_venue_bus_pandas_or_plotly(
    tmp_path: Path, sample_1h: Path, stops: bool
) -> None:
    # Arrange: the bundled sample as Parquet (the fast path; CSV text needs pandas)
    bars = load_ohlcv(sample_1h).bars
    data = tmp_path / "BTC_USDT-1h.parquet"
    stamps = pa.array(bars.ts, type=pa.int64()).cast(pa.timestamp("ns", tz="UTC"))
    columns = {"date": stamps, **{k: getattr(bars, k) for k in ("open", "high", "low", "close")}}
    pq.write_table(pa.table({**columns, "volume": bars.volume}), data)
    args = ["backtest", "-s", "sma_cross", "-d", str(data), "--out", str(tmp_path / "run")]
    if stops:
        args += ["-p", "stop_loss=0.02", "-p", "take_profit=0.04", "-p", "trailing_stop=0.03"]
    # Act
    code, modules = _modules(args, tmp_path)
    # Assert: the run happened (files written) without the heavy packages
    assert code == 0
    assert (tmp_path / "run" / "trades.csv").is_file()
    assert (tmp_path / "run" / "equity.parquet").is_file()
    assert (tmp_path / "run" / "report.html").is_file()
    assert not _tops(modules) & {*_HEAVY, "asyncio", "pydantic"}  # typer converts without it
    for name in ("tradeloop.ml.features", "tradeloop.bus.events", "tradeloop.execution.venue"):
        assert name not in modules
    # the kernels the writers and the loader use are called without pyarrow.compute's
    # wrappers (about 30 ms to build on import)
    assert "pyarrow.compute" not in modules
    # nor the stream event classes (a candle backtest has no book to read)
    assert "tradeloop.core.market_events" not in modules
    assert len(modules) < 800


_SESSION_CHILD = r"""
import json, sys
import tradeloop.cli.live_cmd, tradeloop.cli.paper_cmd, tradeloop.cli.run_cmd
import tradeloop.engine.live_session, tradeloop.engine.loop, tradeloop.engine.paper
from tradeloop.alerts import alerter_from_settings
from tradeloop.engine.scheduler import AlwaysOpen, schedule_for
assert isinstance(schedule_for("binance"), AlwaysOpen)
assert isinstance(schedule_for("24/7"), AlwaysOpen)
alerter_from_settings(None).close()
print(json.dumps(sorted(sys.modules)))
"""

#: packages a crypto paper/live/run session without a regime model, an ML model or a Discord
#: webhook has no use for at start-up (pandas and exchange_calendars: only a stock calendar;
#: httpx: only a webhook; the ML stack: only ``--model`` / ``--regime``)
_SESSION_HEAVY = (
    "pandas",
    "exchange_calendars",
    "httpx",
    "sklearn",
    "hmmlearn",
    "lightgbm",
    "torch",
    "plotly",
    "optuna",
    "duckdb",
    "fastapi",
)


def test_a_crypto_session_starts_without_pandas_calendars_httpx_or_the_ml_stack(
    tmp_path: Path,
) -> None:
    # Act: the session modules of `tradeloop paper|live|run`, the schedule of a ccxt venue and
    # the default (log) alerter, in a fresh interpreter
    proc = subprocess.run(
        [sys.executable, "-c", _SESSION_CHILD],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    # Assert
    assert proc.returncode == 0, proc.stderr
    modules = set(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert "ccxt.pro" in modules  # the session's own feed is there: the check is not vacuous
    assert not _tops(modules) & set(_SESSION_HEAVY)
    assert "tradeloop.alerts.discord" in modules  # imported, but httpx only when it posts
