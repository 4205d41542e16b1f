"""Paper trading and parity on the core install alone (no extra), against the local venue.

The paper session runs as ``tradeloop paper`` in a fresh interpreter where every package
outside the core's dependencies is unimportable (see ``tests/e2e/test_lean_core.py``), fed by
the local REST venue and the WebSocket replay of the recorded 1m bars.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.e2e.test_lean_core import _RUN_CLI, _lean

from tradeloop.core.time import to_iso
from tradeloop.store.state import open_state_store
from tradeloop.testing.replay import ReplayServer
from tradeloop.testing.venue import LocalVenueServer, VenueData

START_MS = 1_747_699_200_000 + 1_000 * 60_000  # inside the 1m recording
RUN_ID = "paper-sma_cross-binance-BTCUSDT-1m"


def test_paper_and_parity_run_on_the_core_alone(
    rest: LocalVenueServer, venue: VenueData, tmp_path: Path
) -> None:
    # Arrange
    end_ms = START_MS + 120 * 60_000
    state, status = tmp_path / "state.db", tmp_path / "status.json"
    args = ["paper", "-s", "sma_cross", "--exchange", "binance", "--symbol", "BTC/USDT"]
    args += ["--timeframe", "1m", "-p", "fast=5", "-p", "slow=20", "-p", "short=true"]
    args += ["--state", str(state), "--status-file", str(status), "--warmup", "60"]
    args += ["--until", to_iso((end_ms - 60_000) * 1_000_000)]
    with ReplayServer(
        venue, start_ms=START_MS, end_ms=end_ms, bar_interval_s=0.01, advance_when_idle=False
    ) as ws:
        env = {**os.environ, "TRADELOOP_BINANCE_URL": rest.url, "TRADELOOP_BINANCE_WS_URL": ws.url}
        env.pop("TRADELOOP_DISCORD_WEBHOOK_URL", None)
        # Act
        paper = _lean(_RUN_CLI, *args, cwd=tmp_path, env=env)
    parity = _lean(_RUN_CLI, "parity", RUN_ID, "--state", str(state), cwd=tmp_path)
    # Assert: every streamed bar traded through, and the backtest replay is identical
    assert paper.returncode == 0, paper.stderr[-3000:]
    assert json.loads(status.read_text())["steps"] == 120
    with open_state_store(str(state)) as store:
        assert len([r for r in store.load_bars(RUN_ID, "BTC/USDT", "1m") if r[6]]) == 120
        assert store.load_trades(RUN_ID)
    assert parity.returncode == 0, parity.stdout + parity.stderr
    assert "identical" in parity.stdout
